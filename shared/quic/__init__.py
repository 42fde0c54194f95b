"""The QUIC data plane: stream tickets and length-prefixed protobuf frames over aioquic (TLS 1.3, ALPN tessera/1).

A gRPC call issues a ticket (:meth:`QuicServer.issue`); the caller redeems it
with :meth:`QuicClient.open` and reads the frames. See DESIGN.md, "data plane".
"""

from shared.quic.client import FrameStream, QuicClient, split_addr
from shared.quic.errors import ConnectionLost, FrameError, QuicError, StreamClosed, StreamRefused
from shared.quic.frames import FrameDecoder, encode
from shared.quic.server import QuicServer
from shared.quic.tickets import TicketBook
from shared.quic.tls import ALPN

__all__ = ["ALPN", "ConnectionLost", "FrameDecoder", "FrameError", "FrameStream", "QuicClient", "QuicError", "QuicServer", "StreamClosed",
           "StreamRefused", "TicketBook", "encode", "split_addr"]
