"""Stream tickets: an unguessable single-use token, handed out by a gRPC call, redeemed on a QUIC stream. No I/O.

A ticket binds the token to a producer (an async iterator of protobuf frames)
and an expiry. Redeeming it once hands out the producer; a second time, after
expiry, or with a token never issued, it is refused with a code and a sentence.
Tokens are kept by their SHA-256 digest; used and expired ones are remembered
for a while so that the refusal can say what happened.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from shared.quic.errors import StreamRefused

TOKEN_BYTES = 32
#: How long a used or expired token is remembered (to say "already used" rather than "unknown").
REMEMBER_S = 600.0


@dataclass
class Ticket:
    frame_type: str  # full protobuf name of the frames that follow, e.g. "tessera.v1.ChatEvent"
    producer: Callable[[], AsyncIterator[Any]]
    expires: float  # time.monotonic()
    on_expire: Callable[[], None] | None = None
    used: bool = False


class TicketBook:
    def __init__(self, ttl_s: float, max_pending: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_pending = max_pending
        self.clock = clock
        self._tickets: dict[bytes, Ticket] = {}

    @staticmethod
    def _key(token: bytes) -> bytes:
        return hashlib.sha256(token).digest()

    @property
    def pending(self) -> int:
        return sum(1 for t in self._tickets.values() if not t.used and t.expires > self.clock())

    def issue(self, frame_type: str, producer: Callable[[], AsyncIterator[Any]], *, on_expire: Callable[[], None] | None = None,
              ttl_s: float | None = None) -> tuple[bytes, float]:
        """(token, seconds it is valid); StreamRefused RESOURCE_EXHAUSTED when too many wait to be redeemed."""
        self.sweep()
        if self.pending >= self.max_pending:
            raise StreamRefused("RESOURCE_EXHAUSTED", f"quic: {self.max_pending} stream tickets wait to be redeemed; try again shortly")
        ttl = self.ttl_s if ttl_s is None else ttl_s
        token = secrets.token_bytes(TOKEN_BYTES)
        self._tickets[self._key(token)] = Ticket(frame_type, producer, self.clock() + ttl, on_expire)
        return token, ttl

    def redeem(self, token: bytes) -> Ticket:
        """The ticket for ``token``, once; StreamRefused with PERMISSION_DENIED or DEADLINE_EXCEEDED otherwise."""
        ticket = self._tickets.get(self._key(token)) if len(token) == TOKEN_BYTES else None
        if ticket is None:
            raise StreamRefused("PERMISSION_DENIED", "quic: this stream ticket was never issued here (wrong token or wrong server)")
        if ticket.used:
            raise StreamRefused("PERMISSION_DENIED", "quic: this stream ticket was already used; ask for a new one")
        if self.clock() > ticket.expires:
            self._expire(ticket)
            raise StreamRefused("DEADLINE_EXCEEDED", f"quic: this stream ticket expired {self.clock() - ticket.expires:.1f} s ago; "
                                                     "ask for a new one")
        ticket.used = True
        ticket.expires = self.clock()  # from now on only remembered
        return ticket

    def _expire(self, ticket: Ticket) -> None:
        if ticket.on_expire is not None:
            callback, ticket.on_expire = ticket.on_expire, None
            callback()

    def sweep(self) -> None:
        """Call on_expire for tickets that lapsed; forget old ones."""
        now = self.clock()
        for key, ticket in list(self._tickets.items()):
            if now > ticket.expires and not ticket.used:
                self._expire(ticket)
            if now > ticket.expires + REMEMBER_S:
                del self._tickets[key]

    def close(self) -> None:
        for ticket in self._tickets.values():
            if not ticket.used:
                self._expire(ticket)
        self._tickets.clear()
