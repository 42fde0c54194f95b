"""Search as it ran before issue 31, kept as the same-run baseline of `make bench-search` and of the test that
compares rankings (tests/integration/search/test_previous_design.py).

Before: BM25's candidates ranked by partial sums of the full BM25 weight, and their exact scores came from one join
of the read postings with the candidates (the planner could not see how few rows either held). Every vector search
opened a transaction to SET LOCAL the iterative scan and ef_search (1000), walked the HNSW graph for the signal's
`candidates`, and pseudo-relevance feedback read the top documents' mean chunk vector and walked the graph a second
time with the moved query. Now candidates rank by idf x the stored impact and each is scored from its own postings;
the pgvector settings are the pooled connections' startup options (ef_search 100); the one walk finds
`feedback_candidates` chunks with their vectors, and feedback re-ranks those in the process.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from services.search.fusion import Candidate
from services.search.store import BM25_WEIGHT, SearchStore, Walked, lexical_head, vector_sql
from shared.gen.tessera.v1 import common_pb2
from shared.runtime.config import Settings

ITERATIVE_SCAN = "SET LOCAL hnsw.iterative_scan = relaxed_order"
PREVIOUS_EF_SEARCH = 1000  # the default then
PREVIOUS_DEPTH = 2000  # search.lexical_depth then


def previous_lexical_sql(settings: Settings, terms: dict[str, int], filters: common_pb2.Filters, limit: int,
                         explain: bool = False) -> tuple[str, dict[str, Any]]:
    """services.search.store.lexical_sql before issue 31: partial sums of the full BM25 weight, and the exact scores
    from one join of the candidates with the query terms' postings."""
    head, params, docs = lexical_head(settings, terms, filters, limit)
    params["depth"] = PREVIOUS_DEPTH
    weight = BM25_WEIGHT.format(p="p")
    explained = f", array_agg(p.term ORDER BY p.term), array_agg({weight} ORDER BY p.term)" if explain else ""
    sql = (
        head +
        " x AS (SELECT r.chunk_id, r.document_id, sum(" + BM25_WEIGHT.format(p="r") + ") AS partial"
        "       FROM w CROSS JOIN LATERAL (SELECT p.chunk_id, p.document_id, p.tf, p.dl FROM postings p"
        f"                                  WHERE p.term = w.term{' AND p.project = %(project)s' if filters.project else ''}"
        "                                  ORDER BY p.impact DESC LIMIT %(depth)s) r, st GROUP BY 1, 2),"
        f" top AS (SELECT x.chunk_id, x.document_id FROM x{docs} ORDER BY x.partial DESC LIMIT %(n)s)"
        f" SELECT top.chunk_id::text, top.document_id::text, sum({weight}) AS score{explained}"  # ids as text, as SearchStore reads them
        " FROM top JOIN postings p ON p.chunk_id = top.chunk_id AND p.term = ANY(%(terms)s) JOIN w ON w.term = p.term, st"
        " GROUP BY 1, 2 ORDER BY score DESC, 1")
    return sql, params


class PreviousStore(SearchStore):
    """SearchStore with the previous lexical SQL, vector signal and feedback (the details are today's). One search at a
    time: the second walk reuses the first one's filters."""

    lexical_sql = staticmethod(previous_lexical_sql)

    async def vector(self, vec: np.ndarray, filters: common_pb2.Filters, limit: int) -> list[Candidate]:
        self._filters = filters  # the second walk searches with the same filters, as the previous Searcher passed them
        return await self._walk(vec, vec, filters, min(limit, max(self.settings.search.candidates, 1)))

    async def walk(self, vec: np.ndarray, filters: common_pb2.Filters, limit: int) -> Walked:
        """The first walk alone: the previous feedback walked again instead of reading the walked chunks' vectors."""
        return Walked(await self.vector(vec, filters, limit), np.zeros((0, len(vec)), np.float32))

    async def feedback(self, vec: np.ndarray, documents: list[str], weight: float, walked: Walked) -> list[Candidate]:
        if not walked.found or not documents:
            return walked.found
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT avg(embedding) FROM chunk_vectors WHERE document_id = ANY(%s::uuid[])",
                                            (documents,))).fetchone()
        if not row or row[0] is None:
            return walked.found
        target = vec + weight * np.asarray(row[0].to_numpy(), dtype=np.float32)
        return await self._walk(vec, target, self._filters, max(self.settings.search.candidates, 1))

    async def _walk(self, query: np.ndarray, target: np.ndarray, filters: common_pb2.Filters, limit: int) -> list[Candidate]:
        sql, params = vector_sql(target, filters, limit)
        sql = sql.replace("1 - (v.embedding <=> %(v)s) AS score", "1 - (v.embedding <=> %(q)s) AS score, 1 - (v.embedding <=> %(v)s)")
        params["q"] = query
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(ITERATIVE_SCAN)
            await conn.execute(f"SET LOCAL hnsw.ef_search = {PREVIOUS_EF_SEARCH}")
            rows = await (await conn.execute(sql, params)).fetchall()
        out = [Candidate(str(r[0]), str(r[1]), float(r[2]), rank_score=float(r[3]) if target is not query else None) for r in rows]
        return sorted(out, key=lambda c: -c.fusing)
