"""The index generation (table index_state), which ingest owns: every write that changes what search can find
advances it in the same transaction, and ingest announces the new value on INDEX_SUBJECT after the commit."""

from __future__ import annotations

from typing import Any


async def bump_generation(conn: Any) -> int:
    """Advance the index generation inside the caller's transaction; the new value."""
    row = await (await conn.execute("UPDATE index_state SET generation = generation + 1 RETURNING generation")).fetchone()
    return int(row[0])
