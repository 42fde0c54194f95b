"""The postings table against an in-test BM25, on the real PostgreSQL: exact scores, filters,
incremental add and delete, bounded reads, re-weighting, the backfill and concurrent writers."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import Counter

from psycopg_pool import AsyncConnectionPool

from services.ingest.chunk import Chunk
from services.ingest.pipeline import NewDocument
from services.ingest.postings import LexicalParams, PostingsStore
from services.ingest.store import IngestStore
from services.search.store import SearchStore
from shared.gen.tessera.v1 import common_pb2
from shared.runtime import analyzer
from shared.runtime.config import Settings

K1, B = 0.9, 0.4
CORPUS = {
    "kettle": ["Descale the kettle with citric acid. Kettles scale fast in hard water.", "Rinse the kettle twice after descaling."],
    "bike": ["Oil the bike chain every month; a dry chain wears the cassette."],
    "tea": ["Green tea wants water below boiling: 80 degrees. Boiling water makes it bitter.", "Black tea takes boiling water."],
    "water": ["Hard water leaves scale; soft water does not. Scale in a kettle wastes energy."],
    "garden": ["Water the garden early in the morning, before the sun is high."],
}


def doc(project: str, name: str, texts: list[str], doc_type: str = "note", tags: tuple[str, ...] = ()) -> NewDocument:
    path = f"/lex/{project}/lx-{name}.md"  # a name no other test's glob matches
    chunks = [Chunk(ord=i, text=t, char_start=0, char_end=len(t), line_start=i + 1, line_end=i + 1, heading_path=(), tokens=len(t.split()))
              for i, t in enumerate(texts)]
    return NewDocument(uuid.uuid5(uuid.NAMESPACE_URL, path), project, path, name.title(), doc_type, list(tags), "text/markdown",
                       f"h-{name}-{len(texts)}-{hash(tuple(texts))}", [], None, f"/lex/{project}", 1, chunks)


def reference_bm25(chunks: dict[tuple[str, int], str], query: str, title_of: dict[str, str]) -> dict[tuple[str, int], float]:
    """Plain BM25 (Lucene idf) over chunk = title + text, written from the formula, not from the service."""
    tfs = {key: Counter(analyzer.terms(text)) + Counter(analyzer.terms(title_of[key[0]])) for key, text in chunks.items()}
    n = len(tfs)
    avgdl = sum(sum(c.values()) for c in tfs.values()) / n
    q = Counter(analyzer.terms(query))
    out = {}
    for key, tf in tfs.items():
        dl = sum(tf.values())
        score = 0.0
        for term, qtf in q.items():
            if tf[term]:
                df = sum(1 for c in tfs.values() if c[term])
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                score += qtf * idf * tf[term] * (K1 + 1) / (tf[term] + K1 * (1 - B + B * dl / avgdl))
        if score:
            out[key] = score
    return out


async def ingest(store: IngestStore, project: str, docs: list[NewDocument]) -> dict[str, tuple[str, int]]:
    """Write the documents; chunk id -> (document name, ord)."""
    job = await store.new_job("", project, [d.path for d in docs])
    for d in docs:
        await store.replace_document(job, d)
    out = {}
    async with store.pool.connection() as conn:
        for cid, path, ord_ in await (await conn.execute(
                "SELECT c.id::text, d.path, c.ord FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.project = %s",
                (project,))).fetchall():
            out[cid] = (path.rsplit("/", 1)[1][3:-3], ord_)
    return out


def settings(depth: int = 2000) -> Settings:
    return Settings().with_overrides(bm25_k1=K1, bm25_b=B, search_lexical_depth=depth)


async def scores(pool: AsyncConnectionPool, project: str, query: str, names: dict[str, tuple[str, int]], depth: int = 2000,
                 **filters: object) -> dict[tuple[str, int], float]:
    hits = await SearchStore(pool, settings(depth)).lexical(analyzer.query_terms(query), common_pb2.Filters(project=project, **filters), 100)  # type: ignore[arg-type]
    return {names[h.chunk_id]: h.score for h in hits}


QUERIES = ["descale the kettle", "boiling water for tea", "hard water scale in a kettle wastes energy", "chain", "garden morning sun water"]


async def test_scores_equal_a_reference_bm25(pool: AsyncConnectionPool) -> None:
    store, project = IngestStore(pool), f"lex-{uuid.uuid4().hex[:8]}"
    names = await ingest(store, project, [doc(project, n, t) for n, t in CORPUS.items()])
    chunks = {(n, i): t for n, ts in CORPUS.items() for i, t in enumerate(ts)}
    titles = {n: n.title() for n in CORPUS}
    for query in QUERIES:
        expected = reference_bm25(chunks, query, titles)
        got = await scores(pool, project, query, names)
        assert got.keys() == expected.keys(), query
        for key in expected:
            assert abs(got[key] - expected[key]) < 1e-9, (query, key, got[key], expected[key])
        ranked = sorted(got, key=lambda k: -got[k])
        assert ranked == sorted(expected, key=lambda k: (-expected[k], ranked.index(k))), "best first"


async def test_bounded_reads_return_exact_scores_for_the_candidates_they_find(pool: AsyncConnectionPool) -> None:
    store, project = IngestStore(pool), f"lex-{uuid.uuid4().hex[:8]}"
    names = await ingest(store, project, [doc(project, n, t) for n, t in CORPUS.items()])
    full = await scores(pool, project, "hard water kettle", names)
    shallow = await scores(pool, project, "hard water kettle", names, depth=1)
    assert 0 < len(shallow) < len(full)
    for key, score in shallow.items():
        assert abs(score - full[key]) < 1e-9


async def test_filters_and_projects_scope_the_index_and_its_statistics(pool: AsyncConnectionPool) -> None:
    store, project, other = IngestStore(pool), f"lex-{uuid.uuid4().hex[:8]}", f"lex-{uuid.uuid4().hex[:8]}"
    docs = [doc(project, n, t, "howto" if n in ("kettle", "bike") else "note", ("home",) if n != "bike" else ("outdoor",))
            for n, t in CORPUS.items()]
    names = await ingest(store, project, docs)
    names |= await ingest(store, other, [doc(other, "kettle2", ["kettle kettle kettle descale"] * 1)])
    in_project = await scores(pool, project, "kettle water", names)
    assert {n for n, _ in in_project} == {"kettle", "water", "tea", "garden"}
    howto = await scores(pool, project, "kettle water", names, types=["howto"])
    assert {n for n, _ in howto} == {"kettle"}
    assert all(abs(howto[k] - in_project[k]) < 1e-9 for k in howto), "a filter narrows; it does not change the statistics"
    assert await scores(pool, project, "chain", names, tags=["home"]) == {}
    assert set(await scores(pool, project, "chain", names, tags=["outdoor"])) == {("bike", 0)}
    everywhere = await SearchStore(pool, settings()).lexical({"kettl": 1}, common_pb2.Filters(), 100)
    assert {h.document_id for h in everywhere} >= {str(docs[0].id), str(uuid.uuid5(uuid.NAMESPACE_URL, f"/lex/{other}/lx-kettle2.md"))}


async def test_added_documents_are_found_at_once_and_deleted_ones_are_gone_with_their_statistics(pool: AsyncConnectionPool) -> None:
    store, project = IngestStore(pool), f"lex-{uuid.uuid4().hex[:8]}"
    first = {n: CORPUS[n] for n in ("kettle", "bike", "tea")}
    names = await ingest(store, project, [doc(project, n, t) for n, t in first.items()])
    titles = {n: n.title() for n in CORPUS}
    assert await scores(pool, project, "garden", names) == {}
    names |= await ingest(store, project, [doc(project, "garden", CORPUS["garden"]), doc(project, "water", CORPUS["water"])])
    now = {n: CORPUS[n] for n in ("kettle", "bike", "tea", "garden", "water")}
    got = await scores(pool, project, "water garden", names)
    expected = reference_bm25({(n, i): t for n, ts in now.items() for i, t in enumerate(ts)}, "water garden", titles)
    assert got.keys() == expected.keys() and all(abs(got[k] - expected[k]) < 1e-9 for k in got)
    await store.delete_document(doc(project, "water", []).id)
    await store.replace_document(await store.new_job("", project, []), doc(project, "tea", ["Oolong is between green and black."]))
    now = {"kettle": CORPUS["kettle"], "bike": CORPUS["bike"], "garden": CORPUS["garden"], "tea": ["Oolong is between green and black."]}
    names = await ingest(store, project, [])
    for query in ("water garden", "green tea", "kettle scale"):
        got = await scores(pool, project, query, names)
        expected = reference_bm25({(n, i): t for n, ts in now.items() for i, t in enumerate(ts)}, query, titles)
        assert got.keys() == expected.keys(), query
        assert all(abs(got[k] - expected[k]) < 1e-9 for k in got), query
    async with pool.connection() as conn:
        stats = await (await conn.execute("SELECT sum(chunks), sum(terms) FROM lexical_stats WHERE project = %s", (project,))).fetchone()
        recount = await (await conn.execute("SELECT count(*), sum(lex_len) FROM chunks WHERE project = %s", (project,))).fetchone()
        assert stats is not None and recount is not None and (int(stats[0]), float(stats[1])) == (int(recount[0]), float(recount[1]))
        drift = await (await conn.execute(
            "SELECT count(*) FROM term_stats t FULL JOIN (SELECT term, count(*) AS df FROM postings WHERE project = %(p)s GROUP BY term) p"
            " USING (term) WHERE coalesce(t.project, %(p)s) = %(p)s AND coalesce(t.df, 0) <> coalesce(p.df, 0)", {"p": project})).fetchone()
        assert drift == (0,), "document frequencies equal a recount"


async def test_concurrent_writers_keep_statistics_exact(pool: AsyncConnectionPool) -> None:
    store, project = IngestStore(pool), f"lex-{uuid.uuid4().hex[:8]}"
    job = await store.new_job("", project, [])
    docs = [doc(project, f"n{i}", [f"water kettle tea number {i}", "shared words in every note"]) for i in range(12)]
    await asyncio.gather(*(store.replace_document(job, d) for d in docs))
    await asyncio.gather(*(store.replace_document(job, doc(project, f"n{i}", ["only water now"])) for i in range(0, 12, 2)),
                         *(store.delete_document(d.id) for d in docs[1::4]))
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT df FROM term_stats WHERE project = %s AND term = 'water'", (project,))).fetchone()
        actual = await (await conn.execute("SELECT count(*) FROM postings WHERE project = %s AND term = 'water'", (project,))).fetchone()
        assert row is not None and actual is not None and row[0] == actual[0] == 12 - 3


async def test_reweighting_and_the_backfill(pool: AsyncConnectionPool) -> None:
    store, project = IngestStore(pool), f"lex-{uuid.uuid4().hex[:8]}"
    names = await ingest(store, project, [doc(project, "bike", CORPUS["bike"])])
    names |= await ingest(store, project, [doc(project, n, t) for n, t in CORPUS.items() if n != "bike"])
    drift = dict(await PostingsStore(pool).weight_drift())
    assert project in drift
    assert await PostingsStore(pool).reweight(project, LexicalParams(1.0, K1, B)) > 0
    assert abs(dict(await PostingsStore(pool).weight_drift())[project]) < 1e-9
    async with pool.connection() as conn:  # the impacts now use the live mean length
        bad = await (await conn.execute(
            "SELECT count(*) FROM postings p, (SELECT sum(terms) / sum(chunks) AS avgdl FROM lexical_stats WHERE project = %(p)s) s"
            " WHERE p.project = %(p)s AND abs(p.impact - p.tf * (%(k1)s + 1) / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.dl / s.avgdl))) > 1e-5",
            {"p": project, "k1": K1, "b": B})).fetchone()
        assert bad == (0,)
        # a chunk written before the postings table existed: no lex_len, no postings
        d = doc(project, "old", ["An old note about the kettle"])
        await conn.execute("INSERT INTO documents (id, project, path, media_type, content_hash) VALUES (%s, %s, %s, 'text/markdown', 'x')",
                           (d.id, project, d.path))
        await conn.execute("INSERT INTO chunks (id, document_id, ord, text, char_start, char_end, line_start, line_end, project, context)"
                           " VALUES (%s, %s, 0, %s, 0, 10, 1, 1, %s, 'Old')", (uuid.uuid4(), d.id, d.chunks[0].text, project))
    while await PostingsStore(pool).backfill_postings(LexicalParams(1.0, K1, B)):
        pass
    names = await ingest(store, project, [])
    chunks = {(n, i): t for n, ts in {**CORPUS, "old": ["An old note about the kettle"]}.items() for i, t in enumerate(ts)}
    expected = reference_bm25(chunks, "old kettle", {**{n: n.title() for n in CORPUS}, "old": "Old"})
    got = await scores(pool, project, "old kettle", names)
    assert got.keys() == expected.keys() and all(abs(got[k] - expected[k]) < 1e-9 for k in got)
