"""What search knows beyond one query: the log of hits and queries (staleness, knowledge gaps), topic clusters
kept current as notes arrive, stale notes, and the weekly review.

One search instance at a time maintains the clusters (a PostgreSQL advisory lock): every
TESSERA_CLUSTER_ASSIGN_S it puts new documents into their nearest cluster, and it re-clusters a project when
its last full run is older than TESSERA_CLUSTER_INTERVAL_S or the project grew by a quarter since.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from services.search import clusters as cl
from shared.gen.tessera.v1 import search_pb2
from shared.runtime.db import fetch_dicts
from shared.runtime.service import Runtime

log = logging.getLogger("tessera.search.knowledge")
CLUSTER_LOCK = "tessera-clusters"
#: Links at least this similar are near-duplicates worth merging.
NEAR_DUPLICATE = 0.92
#: A note nobody changed or found in a search for %(days)s days (documents d).
STALE = ("d.updated_at < now() - make_interval(days => %(days)s) AND NOT EXISTS (SELECT 1 FROM search_hits h"
         " WHERE h.document_id = d.id AND h.at >= now() - make_interval(days => %(days)s))")
#: How many rows of each section the review lists.
REVIEW_ROWS = 10


def ts(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(value)
    return out


@dataclass
class Logged:
    kind: str
    query: str
    project: str
    hits: int
    top_score: float
    answered: bool
    documents: list[tuple[str, int]]


def logged_search(req: search_pb2.SearchRequest, reply: search_pb2.SearchResponse, floor: float) -> Logged:
    """A search as the log keeps it: answered when it found something close enough (the vector signal's cosine at
    least the chat's relevance floor; any hit when there was no vector signal)."""
    cosines = [s.score for h in reply.hits for s in h.signals if s.name == "vector" and s.rank]
    top = max(cosines, default=0.0)
    answered = bool(reply.hits) and (top >= floor if req.mode != search_pb2.SEARCH_MODE_LEXICAL else True)
    return Logged("search", req.query[:500], req.filters.project, len(reply.hits), top, answered,
                  [(h.source.document_id, i + 1) for i, h in enumerate(reply.hits)])


class Knowledge:
    def __init__(self, rt: Runtime) -> None:
        self.rt, self.pool, self.settings = rt, rt.db, rt.settings
        self._buffer: list[Logged] = []
        self._since_prune = 0  # log rows written since the last prune
        self.stopping = asyncio.Event()

    # -- the log ----------------------------------------------------------------------------------------------------
    def record(self, entry: Logged) -> None:
        """Queue a search for the log; written within a second, in batches, off the query's path."""
        if len(self._buffer) < 10_000:  # the database is away: drop rather than grow without bound
            self._buffer.append(entry)

    async def flush(self) -> None:
        rows, self._buffer = self._buffer, []
        if not rows:
            return
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany("INSERT INTO query_log (kind, query, project, hits, top_score, answered) VALUES (%s,%s,%s,%s,%s,%s)",
                                  [(r.kind, r.query, r.project, r.hits, r.top_score, r.answered) for r in rows])
            hits = [(uuid.UUID(d), rank) for r in rows for d, rank in r.documents]
            await cur.executemany("INSERT INTO search_hits (document_id, rank) VALUES (%s, %s)", hits)
        self._since_prune += len(hits) + len(rows)

    async def prune(self) -> int:
        """Delete log rows older than TESSERA_SEARCH_LOG_DAYS, and the oldest beyond TESSERA_SEARCH_LOG_ROWS per table
        (a flood of searches cannot grow the log without bound within the retention)."""
        days, cap = self.settings.knowledge.search_log_days, self.settings.knowledge.search_log_rows
        self._since_prune = 0
        async with self.pool.connection() as conn:
            a = (await conn.execute("DELETE FROM search_hits WHERE at < now() - make_interval(days => %s)", (days,))).rowcount
            b = (await conn.execute("DELETE FROM query_log WHERE at < now() - make_interval(days => %s)", (days,))).rowcount
            a += (await conn.execute("DELETE FROM search_hits WHERE at <= (SELECT at FROM search_hits ORDER BY at DESC OFFSET %s LIMIT 1)",
                                     (cap,))).rowcount
            b += (await conn.execute("DELETE FROM query_log WHERE id <= (SELECT id FROM query_log ORDER BY id DESC OFFSET %s LIMIT 1)",
                                     (cap,))).rowcount
        return a + b

    async def run_log(self) -> None:
        last_prune = 0.0
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=1.0)
            try:
                await self.flush()
                if loop.time() - last_prune > 600 or self._since_prune > self.settings.knowledge.search_log_rows // 10:
                    last_prune = loop.time()
                    await self.prune()
            except Exception as exc:  # noqa: BLE001 — the database may be restarting; rows wait in the buffer... or are dropped
                log.warning("search log not written: %s", exc)

    # -- stale notes ------------------------------------------------------------------------------------------------
    async def stale(self, project: str, days: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Documents nobody changed or found in a search for ``days`` days, the longest untouched first; (rows, total)."""
        where = f"d.type <> 'review' AND (%(p)s = '' OR d.project = %(p)s) AND {STALE}"
        args = {"p": project, "days": days, "n": limit}
        async with self.pool.connection() as conn:
            rows = await fetch_dicts(conn, f"SELECT d.id, d.title, d.path, d.updated_at, (SELECT max(at) FROM search_hits h"
                                           f" WHERE h.document_id = d.id) AS last_hit FROM documents d WHERE {where}"
                                           " ORDER BY d.updated_at, d.path LIMIT %(n)s", args)
            total = await (await conn.execute(f"SELECT count(*) FROM documents d WHERE {where}", args)).fetchone()
        return rows, int(total[0]) if total else 0

    # -- clusters ---------------------------------------------------------------------------------------------------
    async def _document_vectors(self, conn: Any, project: str, only_unassigned: bool = False) -> list[tuple[uuid.UUID, str, np.ndarray, str]]:
        rows = await (await conn.execute(
            "SELECT d.id, d.title, avg(c.embedding), left(string_agg(c.text, ' ' ORDER BY c.ord) FILTER (WHERE c.ord < 3), 4000)"
            " FROM documents d JOIN chunks c ON c.document_id = d.id"
            " WHERE d.project = %s AND d.embedded AND d.type <> 'review' AND c.embedding IS NOT NULL"
            + (" AND NOT EXISTS (SELECT 1 FROM document_clusters dc WHERE dc.document_id = d.id)" if only_unassigned else "")
            + " GROUP BY d.id, d.title", (project,))).fetchall()
        return [(r[0], str(r[1]), np.asarray(r[2].to_numpy(), dtype=np.float32), f"{r[1]} {r[3] or ''}") for r in rows]

    async def recluster(self, project: str) -> int:
        """Cluster a project's documents again; the number of clusters."""
        async with self.pool.connection() as conn:
            docs = await self._document_vectors(conn, project)
        if len(docs) < max(2, self.settings.knowledge.cluster_min_documents):
            return 0
        labels, centroids = await asyncio.to_thread(cl.cluster, np.stack([d[2] for d in docs]))
        members: dict[int, set[str]] = defaultdict(set)
        texts: dict[int, list[str]] = defaultdict(list)
        for (doc_id, _title, _v, text), label in zip(docs, labels, strict=True):
            members[int(label)].add(str(doc_id))
            texts[int(label)].append(text)
        names = await asyncio.to_thread(cl.ctfidf_names, texts)
        x = cl.normalise(np.stack([d[2] for d in docs]))
        sims = (x * centroids[labels]).sum(axis=1)
        async with self.pool.connection() as conn, conn.transaction():
            old: dict[int, set[str]] = defaultdict(set)
            for doc_id, cid in await (await conn.execute(
                    "SELECT dc.document_id, dc.cluster_id FROM document_clusters dc JOIN clusters c ON c.id = dc.cluster_id"
                    " WHERE c.project = %s", (project,))).fetchall():
                old[int(cid)].add(str(doc_id))
            fresh = [int(r[0]) for r in await (await conn.execute(
                "SELECT nextval('cluster_ids') FROM generate_series(1, %s)", (len(members),))).fetchall()]
            ids = cl.stable_ids(members, old, iter(fresh))
            await conn.execute("DELETE FROM clusters WHERE project = %s AND NOT id = ANY(%s)", (project, list(ids.values())))
            await conn.execute("DELETE FROM document_clusters WHERE document_id = ANY(%s)", ([d[0] for d in docs],))
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO clusters (id, project, name, terms, size, centroid) VALUES (%s,%s,%s,%s,%s,%s)"
                    " ON CONFLICT (id) DO UPDATE SET name = excluded.name, terms = excluded.terms, size = excluded.size,"
                    " centroid = excluded.centroid, updated_at = now()",
                    [(ids[label], project, cl.name_of(names[label]), names[label], len(members[label]), centroids[label])
                     for label in members])
                await cur.executemany("INSERT INTO document_clusters (document_id, cluster_id, similarity) VALUES (%s,%s,%s)",
                                      [(d[0], ids[int(label)], float(sim)) for d, label, sim in zip(docs, labels, sims, strict=True)])
            await conn.execute("INSERT INTO cluster_runs (project, documents) VALUES (%s, %s) ON CONFLICT (project)"
                               " DO UPDATE SET documents = excluded.documents, at = now()", (project, len(docs)))
        log.info("clusters: project %r re-clustered: %d documents in %d clusters", project, len(docs), len(members))
        return len(members)

    async def assign_new(self, project: str) -> int:
        """Put a project's unclustered documents into their nearest cluster; how many."""
        async with self.pool.connection() as conn, conn.transaction():
            docs = await self._document_vectors(conn, project, only_unassigned=True)
            if not docs:
                return 0
            rows = await (await conn.execute("SELECT id, centroid FROM clusters WHERE project = %s ORDER BY id", (project,))).fetchall()
            if not rows:
                return 0
            ids = [int(r[0]) for r in rows]
            centroids = cl.normalise(np.stack([np.asarray(r[1].to_numpy(), dtype=np.float32) for r in rows]))
            sims = cl.normalise(np.stack([d[2] for d in docs])) @ centroids.T
            best = sims.argmax(axis=1)
            async with conn.cursor() as cur:
                await cur.executemany("INSERT INTO document_clusters (document_id, cluster_id, similarity) VALUES (%s,%s,%s)"
                                      " ON CONFLICT (document_id) DO NOTHING",
                                      [(d[0], ids[int(b)], float(sims[i, b])) for i, (d, b) in enumerate(zip(docs, best, strict=True))])
            await conn.execute("UPDATE clusters c SET size = (SELECT count(*) FROM document_clusters dc WHERE dc.cluster_id = c.id),"
                               " updated_at = now() WHERE c.project = %s", (project,))
        return len(docs)

    async def maintain_once(self, force: bool = False, only: str | None = None) -> dict[str, str]:
        """One pass over the projects (``only`` one) by the instance holding the lock: a periodic pass skips when another
        holds it, a forced one (a re-cluster asked for) waits for it. What was done, per project."""
        done: dict[str, str] = {}
        k = self.settings.knowledge
        async with self.pool.connection() as lock_conn:
            if force:
                await lock_conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (CLUSTER_LOCK,))
            else:
                got = await (await lock_conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (CLUSTER_LOCK,))).fetchone()
                if not (got and got[0]):
                    return done
            try:
                async with self.pool.connection() as conn:
                    projects = await (await conn.execute(
                        "SELECT d.project, count(*), r.documents, extract(epoch FROM now() - r.at) FROM documents d"
                        " LEFT JOIN cluster_runs r ON r.project = d.project WHERE d.embedded AND d.type <> 'review'"
                        " GROUP BY d.project, r.documents, r.at")).fetchall()
                for project, n, last_n, age in projects:
                    if only is not None and project != only:
                        continue
                    if n < k.cluster_min_documents:
                        continue
                    if force or last_n is None or age > k.cluster_interval_s or (n >= last_n * 1.25 and n - last_n >= 3):
                        done[project] = f"{await self.recluster(project)} clusters"
                    elif (moved := await self.assign_new(project)):
                        done[project] = f"{moved} documents assigned"
            finally:
                await lock_conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (CLUSTER_LOCK,))
        return done

    async def run_clusters(self) -> None:
        while not self.stopping.is_set():
            try:
                await self.maintain_once()
            except Exception:  # the next pass tries again
                log.exception("clusters: maintenance failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=self.settings.knowledge.cluster_assign_s)

    async def map(self, project: str, examples: int, since_days: float) -> search_pb2.MapResponse:
        async with self.pool.connection() as conn:
            rows = await fetch_dicts(conn,
                "SELECT c.id, c.project, c.name, c.terms, c.size, c.centroid, c.created_at, (SELECT count(*) FROM document_clusters dc"
                " JOIN documents d ON d.id = dc.document_id WHERE dc.cluster_id = c.id AND d.created_at >= now() - make_interval(secs => %(s)s))"
                " AS fresh FROM clusters c WHERE (%(p)s = '' OR c.project = %(p)s) ORDER BY c.project, c.size DESC, c.id",
                {"p": project, "s": since_days * 86400})
            ex = await fetch_dicts(conn,
                "SELECT * FROM (SELECT dc.cluster_id, d.id, d.title, d.path, dc.similarity, row_number() OVER"
                " (PARTITION BY dc.cluster_id ORDER BY dc.similarity DESC, d.path) AS n FROM document_clusters dc"
                " JOIN documents d ON d.id = dc.document_id JOIN clusters c ON c.id = dc.cluster_id WHERE (%(p)s = '' OR c.project = %(p)s)) x"
                " WHERE n <= %(k)s", {"p": project, "k": examples})
            un = await (await conn.execute(
                "SELECT count(*) FROM documents d WHERE d.embedded AND d.type <> 'review' AND (%s = '' OR d.project = %s)"
                " AND NOT EXISTS (SELECT 1 FROM document_clusters dc WHERE dc.document_id = d.id)", (project, project))).fetchone()
            at = await (await conn.execute("SELECT max(at) FROM cluster_runs WHERE %s = '' OR project = %s", (project, project))).fetchone()
        by_cluster: dict[int, list[search_pb2.RelatedDocument]] = defaultdict(list)
        for e in ex:
            by_cluster[int(e["cluster_id"])].append(search_pb2.RelatedDocument(document_id=str(e["id"]), title=e["title"], path=e["path"],
                                                                               score=float(e["similarity"])))
        out = search_pb2.MapResponse(unassigned=int(un[0]) if un else 0, clustered_at=ts(at[0]) if at else None)
        for r in rows:
            out.clusters.append(search_pb2.Cluster(cluster_id=r["id"], project=r["project"], name=r["name"], terms=r["terms"], size=r["size"],
                                                   new_documents=r["fresh"], examples=by_cluster[int(r["id"])], created_at=ts(r["created_at"])))
        by_project: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            by_project[r["project"]].append(r)
        for group in by_project.values():
            merges = cl.merge_suggestions([int(r["id"]) for r in group], np.stack([np.asarray(r["centroid"].to_numpy()) for r in group]),
                                          self.settings.knowledge.cluster_merge_similarity)
            out.merges.extend(search_pb2.MergeSuggestion(a=m.a, b=m.b, similarity=m.similarity) for m in merges)
        return out

    # -- the weekly review --------------------------------------------------------------------------------------------
    async def claim(self, key: str) -> bool:
        async with self.pool.connection() as conn:
            row = await (await conn.execute("INSERT INTO reviews (key) VALUES (%s) ON CONFLICT (key) DO NOTHING RETURNING key", (key,))).fetchone()
        return row is not None

    async def review(self, since_days: float, project: str) -> tuple[str, str, dt.datetime]:
        """(markdown, title, since) of the review of the last ``since_days`` days."""
        now = dt.datetime.now(dt.UTC)
        since = now - dt.timedelta(days=since_days)
        args = {"p": project, "since": since, "days": self.settings.knowledge.stale_days, "floor": NEAR_DUPLICATE, "n": REVIEW_ROWS}
        in_project = "(%(p)s = '' OR d.project = %(p)s) AND d.type <> 'review'"
        async with self.pool.connection() as conn:
            new = await fetch_dicts(conn,
                "SELECT d.id, d.title, d.path, d.kind, dc.cluster_id, c.name AS cluster FROM documents d"
                " LEFT JOIN document_clusters dc ON dc.document_id = d.id LEFT JOIN clusters c ON c.id = dc.cluster_id"
                f" WHERE {in_project} AND d.created_at >= %(since)s ORDER BY c.name NULLS LAST, d.created_at", args)
            links = await fetch_dicts(conn,
                "SELECT a.title AS a, a.path AS a_path, b.title AS b, b.path AS b_path, l.score FROM links l"
                " JOIN documents a ON a.id = l.source_id JOIN documents b ON b.id = l.target_id"
                " WHERE l.created_at >= %(since)s AND l.source_id < l.target_id AND (%(p)s = '' OR a.project = %(p)s)"
                " AND a.type <> 'review' AND b.type <> 'review' ORDER BY l.score DESC LIMIT %(n)s", args)
            counts = await fetch_dicts(conn,
                "SELECT c.id, c.name, count(*) AS size, count(*) FILTER (WHERE d.created_at >= %(since)s) AS fresh FROM clusters c"
                " JOIN document_clusters dc ON dc.cluster_id = c.id JOIN documents d ON d.id = dc.document_id"
                " WHERE (%(p)s = '' OR c.project = %(p)s) GROUP BY c.id, c.name", args)
            grown = emerging(counts)[:REVIEW_ROWS]
            stale_filter = STALE
            stale_clusters = await fetch_dicts(conn,
                f"SELECT c.name, count(*) AS size, count(*) FILTER (WHERE {stale_filter}) AS stale FROM clusters c"
                " JOIN document_clusters dc ON dc.cluster_id = c.id JOIN documents d ON d.id = dc.document_id"
                " WHERE (%(p)s = '' OR c.project = %(p)s) GROUP BY c.id, c.name HAVING"
                f" count(*) FILTER (WHERE {stale_filter}) * 5 >= count(*) * 4 ORDER BY count(*) DESC LIMIT %(n)s", args)
            stale_notes = await fetch_dicts(conn,
                f"SELECT d.title, d.path, d.updated_at FROM documents d WHERE {in_project} AND {stale_filter}"
                " ORDER BY d.updated_at LIMIT %(n)s", args)
            stale_total = await (await conn.execute(f"SELECT count(*) FROM documents d WHERE {in_project} AND {stale_filter}", args)).fetchone()
            dups = await fetch_dicts(conn,
                "SELECT a.title AS a, a.path AS a_path, b.title AS b, b.path AS b_path, l.score FROM links l"
                " JOIN documents a ON a.id = l.source_id JOIN documents b ON b.id = l.target_id"
                " WHERE l.score >= %(floor)s AND l.source_id < l.target_id AND (%(p)s = '' OR a.project = %(p)s)"
                " AND a.type <> 'review' AND b.type <> 'review' ORDER BY l.score DESC LIMIT %(n)s", args)
            gaps = await fetch_dicts(conn,
                "SELECT lower(query) AS q, min(query) AS query, max(top_score) AS best, bool_or(kind = 'question') AS asked,"
                " CASE WHEN bool_or(kind = 'question') THEN count(*) FILTER (WHERE kind = 'question') ELSE count(*) END AS times"
                " FROM query_log WHERE at >= %(since)s AND NOT answered AND (%(p)s = '' OR project = %(p)s) GROUP BY 1"
                " HAVING NOT bool_or(answered) ORDER BY count(*) DESC, max(at) DESC LIMIT %(n)s", args)
            closest = await fetch_dicts(conn,
                "SELECT a.name AS a, b.name AS b, 1 - (a.centroid <=> b.centroid) AS sim FROM clusters a JOIN clusters b"
                " ON a.project = b.project AND a.id < b.id WHERE (%(p)s = '' OR a.project = %(p)s) ORDER BY a.centroid <=> b.centroid LIMIT 1", args)
        title = f"Weekly review {since:%Y-%m-%d} to {now:%Y-%m-%d}" + (f" ({project})" if project else "")
        md = [f"# {title}", ""]
        md.append(f"{count(len(new), 'new note')}, {count(len(links), 'new link')}, {count(len(grown), 'emerging cluster')}, "
                  f"{count(int(stale_total[0]) if stale_total else 0, 'stale note')}, {count(len(gaps), 'knowledge gap')}.")
        md += ["", "## New notes by cluster", ""]
        if not new:
            md.append("No new notes.")
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in new:
            groups[r["cluster"] or "Not clustered yet"].append(r)
        for name, rows in groups.items():
            md.append(f"### {name} ({len(rows)})")
            md += [f"- {r['title']}" + (f" ({r['kind']})" if r["kind"] else "") + f" `{Path(r['path']).name}`" for r in rows[:REVIEW_ROWS]]
            if len(rows) > REVIEW_ROWS:
                md.append(f"- … and {len(rows) - REVIEW_ROWS} more")
            md.append("")
        md += ["## New links", ""]
        md += [f"- {r['a']} ↔ {r['b']} ({r['score']:.2f})" for r in links] or ["No new links."]
        md += ["", "## Emerging clusters", ""]
        md += [(f"- **{r['name']}**: new, {r['fresh']} of its {r['size']} notes are from this window" if r["fresh"] * 2 >= r["size"] else
                f"- **{r['name']}**: +{r['fresh']} notes ({100 * r['fresh'] / (r['size'] - r['fresh']):.0f}% growth, "
                f"{100 * r['fresh'] / max(1, len(new)):.0f}% of the window's notes), {r['size']} in all")
               for r in grown] or ["None."]
        md += ["", "## Stale", ""]
        md += [f"- cluster **{r['name']}**: {r['stale']} of {r['size']} notes stale" for r in stale_clusters]
        md += [f"- {r['title']} `{Path(r['path']).name}`: unchanged since {r['updated_at']:%Y-%m-%d} and not found in a search since" for r in stale_notes]
        if not stale_clusters and not stale_notes:
            md.append(f"Nothing has gone {self.settings.knowledge.stale_days} days without a change or a search hit.")
        md += ["", "## Near-duplicates to merge", ""]
        md += [f"- {r['a']} `{Path(r['a_path']).name}` and {r['b']} `{Path(r['b_path']).name}` ({r['score']:.2f})" for r in dups] or ["None."]
        md += ["", "## Knowledge gaps", ""]
        md += [gap_line(r) for r in gaps] or ["Every search found something."]
        md += ["", "## Questions to explore", ""]
        md += [f"{i}. {q}" for i, q in enumerate(questions(gaps, grown, links, closest), start=1)]
        return "\n".join(md).rstrip() + "\n", title, since


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def emerging(clusters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Clusters with at least two notes from the window that are mostly new, grew by 15 % or more, or drew a share of the
    window's notes three times their share of the library; most new notes first."""
    total = sum(int(c["size"]) for c in clusters) or 1
    fresh_total = sum(int(c["fresh"]) for c in clusters) or 1
    out = []
    for c in clusters:
        fresh, size = int(c["fresh"]), int(c["size"])
        prior = size - fresh
        if fresh >= 2 and (fresh * 2 >= size or fresh * 20 >= prior * 3 or (fresh >= 3 and fresh / fresh_total >= 3 * size / total)):
            out.append(c)
    return sorted(out, key=lambda c: (-int(c["fresh"]), -int(c["size"])))


def gap_line(r: dict[str, Any]) -> str:
    best = f"best match {float(r['best']):.2f}" if r["best"] else "no good match"
    return f"- \"{r['query']}\": {'asked' if r['asked'] else 'searched'} {r['times']}×, {best}"


def questions(gaps: list[dict[str, Any]], grown: list[dict[str, Any]], links: list[dict[str, Any]],
              closest: list[dict[str, Any]]) -> list[str]:
    """Three questions from what the week showed: a gap, an emerging cluster, a connection."""
    out: list[str] = []
    for g in gaps[:1]:
        out.append(f"What should a note on \"{g['query']}\" say? Your notes had no good answer.")
    for c in grown[:1]:
        out.append(f"What is driving the new notes on {c['name']}, and what do they have in common?")
    for link in links[:1]:
        out.append(f"How does \"{link['a']}\" relate to \"{link['b']}\"?")
    for c in closest[:1]:
        if len(out) < 3:
            out.append(f"What connects {c['a']} and {c['b']}? Their clusters are close ({float(c['sim']):.2f}).")
    for g in gaps[1:]:
        if len(out) < 3:
            out.append(f"What is known about \"{g['query']}\"?")
    fallback = ["Which note from this week would you explain to someone else first, and what is missing from it?",
                "Which old note does this week's work change?", "What did you decide this week that no note records yet?"]
    return (out + fallback)[:3]
