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
from services.search.store import SearchStore, Walked, filter_sql, vector_sql
from shared.gen.tessera.v1 import common_pb2
from shared.runtime.config import Settings

ITERATIVE_SCAN = "SET LOCAL hnsw.iterative_scan = relaxed_order"
PREVIOUS_EF_SEARCH = 1000  # the default then


def previous_lexical_sql(settings: Settings, terms: dict[str, int], filters: common_pb2.Filters, limit: int,
                         explain: bool = False) -> tuple[str, dict[str, Any]]:
    """Exact BM25 over the postings table, reading at most ``search.lexical_depth`` postings per query term.

    Candidates come from each term's postings in impact order (the BM25 weight without
    idf); the best ``limit`` by their partial sums are then scored exactly from their
    own postings (tf, dl) and the live corpus statistics (N, avgdl, df). When no term
    has more postings than the depth, candidates and scores equal a full BM25.
    """
    s = settings.search
    params: dict[str, Any] = {"terms": list(terms), "qtf": [float(v) for v in terms.values()], "n": limit,
                              "depth": s.lexical_depth, "k1": s.bm25_k1, "b": s.bm25_b, "project": filters.project}
    rest = common_pb2.Filters()
    rest.CopyFrom(filters)
    rest.ClearField("project")
    where = filter_sql(rest, params)
    in_project = " AND project = %(project)s" if filters.project else ""
    weight = "w.idf * {p}.tf * (%(k1)s + 1) / ({p}.tf + %(k1)s * (1 - %(b)s + %(b)s * {p}.dl / st.avgdl))"
    docs = f" JOIN documents d ON d.id = x.document_id WHERE {where}" if where != "true" else ""
    explained = ", array_agg(p.term ORDER BY p.term), array_agg(" + weight.format(p="p") + " ORDER BY p.term)" if explain else ""
    sql = (
        "WITH q(term, qtf) AS (SELECT * FROM unnest(%(terms)s::text[], %(qtf)s::float8[])),"
        " st AS (SELECT coalesce(sum(chunks), 0)::float8 AS n, coalesce(sum(terms) / nullif(sum(chunks), 0), 1)::float8 AS avgdl"
        f"       FROM lexical_stats WHERE true{in_project}),"
        " w AS (SELECT q.term, q.qtf * ln(1 + (st.n - d.df + 0.5) / (d.df + 0.5)) AS idf FROM q JOIN"
        "       (SELECT term, sum(df)::float8 AS df FROM term_stats WHERE term = ANY(%(terms)s)"
        f"        {in_project} GROUP BY term) d USING (term), st WHERE d.df > 0),"
        " x AS (SELECT r.chunk_id, r.document_id, sum(" + weight.format(p="r") + ") AS partial"
        "       FROM w CROSS JOIN LATERAL (SELECT p.chunk_id, p.document_id, p.tf, p.dl FROM postings p"
        f"                                  WHERE p.term = w.term{' AND p.project = %(project)s' if filters.project else ''}"
        "                                  ORDER BY p.impact DESC LIMIT %(depth)s) r, st GROUP BY 1, 2),"
        f" top AS (SELECT x.chunk_id, x.document_id FROM x{docs} ORDER BY x.partial DESC LIMIT %(n)s)"
        " SELECT top.chunk_id, top.document_id, sum(" + weight.format(p="p") + f") AS score{explained}"
        " FROM top JOIN postings p ON p.chunk_id = top.chunk_id AND p.term = ANY(%(terms)s) JOIN w ON w.term = p.term, st"
        " GROUP BY 1, 2 ORDER BY score DESC, 1")
    return sql, params


class PreviousStore(SearchStore):
    """SearchStore with the previous lexical SQL, vector signal and feedback (the details are today's). One search at a
    time: the second walk reuses the first one's filters."""

    async def lexical(self, terms: dict[str, int], filters: common_pb2.Filters, limit: int, explain: bool = False) -> list[Candidate]:
        sql, params = previous_lexical_sql(self.settings, terms, filters, limit, explain)
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(sql, params)).fetchall()
        return [Candidate(str(r[0]), str(r[1]), float(r[2]), tuple(zip(r[3], r[4], strict=True)) if explain else ()) for r in rows]

    async def vector(self, vec: np.ndarray, filters: common_pb2.Filters, limit: int) -> list[Candidate]:
        self._filters = filters  # the second walk searches with the same filters, as the previous Searcher passed them
        return await self._walk(vec, vec, filters, min(limit, max(self.settings.search.candidates, 1)))

    async def walk(self, vec: np.ndarray, filters: common_pb2.Filters, limit: int) -> Walked:
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
