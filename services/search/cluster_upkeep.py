"""Topic clusters over document vectors (the mean of a document's chunk vectors, per project), which search owns
(clusters, document_clusters, cluster_runs): kept current as notes arrive, and drawn as the map. The clustering
itself is pure (clusters.py).

One search instance at a time maintains the clusters (a PostgreSQL advisory lock): every
TESSERA_CLUSTER_ASSIGN_S it puts new documents into their nearest cluster, and it re-clusters a project when
it was never clustered, its last full run is older than TESSERA_CLUSTER_INTERVAL_S, or the project grew by a quarter
since and has stopped growing (an import in progress is re-clustered when it ends, not at each quarter of its way: each
run clusters all of the project's documents, and during an import they compete with the encoder for the cores).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from typing import Any

import numpy as np

from services.search import clusters as cl
from shared.conversions import timestamp
from shared.gen.tessera.v1 import search_pb2
from shared.runtime.cpu import mesh_cores, upkeep_threads
from shared.runtime.db import fetch_dicts
from shared.runtime.service import Runtime

log = logging.getLogger("tessera.search.clusters")
CLUSTER_LOCK = "tessera-clusters"
#: The most map points one answer carries.
MAX_POINTS = 20_000


def full_run_due(n: int, last_n: int | None, age_s: float | None, seen_before: int | None, interval_s: float) -> bool:
    """Whether a project of ``n`` embedded documents is clustered (again): it never was (its map appears at once, and
    a first run is over few documents), its last full run (of ``last_n`` documents, ``age_s`` ago) is older than
    ``interval_s``, or it grew by a quarter (and at least 3) since and has stopped growing (``seen_before``: its count
    at this instance's previous pass)."""
    if last_n is None or (age_s is not None and age_s > interval_s):
        return True
    return n >= last_n * 1.25 and n - last_n >= 3 and seen_before == n


class ClusterUpkeep:
    def __init__(self, rt: Runtime) -> None:
        self.rt, self.pool, self.settings = rt, rt.db, rt.settings
        self._seen: dict[str, int] = {}  # each project's embedded documents at the previous pass

    # -- keeping them current ---------------------------------------------------------------------------------------------------
    async def _document_vectors(self, conn: Any, project: str, only_unassigned: bool = False) -> list[tuple[uuid.UUID, str, np.ndarray, str]]:
        rows = await (await conn.execute(
            "SELECT d.id, d.title, avg(v.embedding), left(string_agg(c.text, ' ' ORDER BY c.ord) FILTER (WHERE c.ord < 3), 4000)"
            " FROM documents d JOIN chunks c ON c.document_id = d.id JOIN chunk_vectors v ON v.chunk_id = c.id"
            " WHERE d.project = %s AND d.embedded AND d.type <> 'review'"
            + (" AND NOT EXISTS (SELECT 1 FROM document_clusters dc WHERE dc.document_id = d.id)" if only_unassigned else "")
            + " GROUP BY d.id, d.title", (project,))).fetchall()
        return [(r[0], str(r[1]), np.asarray(r[2].to_numpy(), dtype=np.float32), f"{r[1]} {r[3] or ''}") for r in rows]

    async def recluster(self, project: str) -> int:
        """Cluster a project's documents again; the number of clusters."""
        async with self.pool.connection() as conn:
            docs = await self._document_vectors(conn, project)
        if len(docs) < max(2, self.settings.knowledge.cluster_min_documents):
            return 0
        vectors = np.stack([d[2] for d in docs])
        # Upkeep is background work: scikit-learn's and NumPy's native pools get its share of the cores, not every one.
        threads = upkeep_threads(mesh_cores(self.settings.core.cpu_cores))
        labels, centroids, score, xy = await asyncio.to_thread(cl.cluster_and_layout, vectors, threads)
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
                await cur.executemany("INSERT INTO document_clusters (document_id, cluster_id, similarity, x, y) VALUES (%s,%s,%s,%s,%s)",
                                      [(d[0], ids[int(label)], float(sim), float(p[0]), float(p[1]))
                                       for d, label, sim, p in zip(docs, labels, sims, xy, strict=True)])
            await conn.execute("INSERT INTO cluster_runs (project, documents, clusters, silhouette) VALUES (%s, %s, %s, %s) ON CONFLICT (project)"
                               " DO UPDATE SET documents = excluded.documents, clusters = excluded.clusters, silhouette = excluded.silhouette,"
                               " at = now()", (project, len(docs), len(members), score))
        log.info("clusters: project %r re-clustered: %d documents in %d clusters (silhouette %.3f)", project, len(docs), len(members), score)
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
            # placed beside their cluster's notes on the map until the next full run lays it out again
            places = {int(r[0]): (float(r[1]), float(r[2])) for r in await (await conn.execute(
                "SELECT dc.cluster_id, avg(dc.x), avg(dc.y) FROM document_clusters dc JOIN clusters c ON c.id = dc.cluster_id"
                " WHERE c.project = %s GROUP BY dc.cluster_id", (project,))).fetchall()}
            async with conn.cursor() as cur:
                await cur.executemany("INSERT INTO document_clusters (document_id, cluster_id, similarity, x, y) VALUES (%s,%s,%s,%s,%s)"
                                      " ON CONFLICT (document_id) DO NOTHING",
                                      [(d[0], ids[int(b)], float(sims[i, b]), *cl.near(places.get(ids[int(b)]), d[0]))
                                       for i, (d, b) in enumerate(zip(docs, best, strict=True))])
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
                    seen_before, self._seen[project] = self._seen.get(project), n
                    if force or full_run_due(n, last_n, None if age is None else float(age), seen_before, k.cluster_interval_s):
                        done[project] = f"{await self.recluster(project)} clusters"
                    elif (moved := await self.assign_new(project)):
                        done[project] = f"{moved} documents assigned"
            finally:
                await lock_conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (CLUSTER_LOCK,))
        return done

    async def map(self, project: str, examples: int, since_days: float, with_points: bool = False) -> search_pb2.MapResponse:
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
                "SELECT count(*) FILTER (WHERE dc.document_id IS NULL), count(dc.document_id) FROM documents d"
                " LEFT JOIN document_clusters dc ON dc.document_id = d.id"
                " WHERE d.embedded AND d.type <> 'review' AND (%s = '' OR d.project = %s)", (project, project))).fetchone()
            at = await (await conn.execute("SELECT max(at) FROM cluster_runs WHERE %s = '' OR project = %s", (project, project))).fetchone()
            runs = await fetch_dicts(conn, "SELECT * FROM cluster_runs WHERE %(p)s = '' OR project = %(p)s ORDER BY project", {"p": project})
            points = await fetch_dicts(conn,
                "SELECT d.id, d.title, d.path, d.project, d.created_at, dc.cluster_id, dc.x, dc.y FROM document_clusters dc"
                " JOIN documents d ON d.id = dc.document_id WHERE (%(p)s = '' OR d.project = %(p)s) ORDER BY d.created_at, d.id"
                " LIMIT %(n)s", {"p": project, "n": MAX_POINTS + 1}) if with_points else []
        by_cluster: dict[int, list[search_pb2.RelatedDocument]] = defaultdict(list)
        for e in ex:
            by_cluster[int(e["cluster_id"])].append(search_pb2.RelatedDocument(document_id=str(e["id"]), title=e["title"], path=e["path"],
                                                                               score=float(e["similarity"])))
        out = search_pb2.MapResponse(unassigned=int(un[0]) if un else 0, clustered_at=timestamp(at[0]) if at else None)
        out.runs.extend(search_pb2.ClusterRun(project=r["project"], documents=r["documents"], clusters=r["clusters"],
                                              silhouette=r["silhouette"], at=timestamp(r["at"])) for r in runs)
        out.points.extend(search_pb2.MapPoint(document_id=str(p["id"]), title=p["title"], path=p["path"], project=p["project"],
                                              cluster_id=p["cluster_id"], x=p["x"], y=p["y"], created_at=timestamp(p["created_at"]))
                          for p in points[:MAX_POINTS])
        if len(points) > MAX_POINTS:
            out.points_left_out = int(un[1]) - MAX_POINTS if un else 0
        for r in rows:
            out.clusters.append(search_pb2.Cluster(cluster_id=r["id"], project=r["project"], name=r["name"], terms=r["terms"], size=r["size"],
                                                   new_documents=r["fresh"], examples=by_cluster[int(r["id"])], created_at=timestamp(r["created_at"])))
        by_project: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            by_project[r["project"]].append(r)
        for group in by_project.values():
            merges = cl.merge_suggestions([int(r["id"]) for r in group], np.stack([np.asarray(r["centroid"].to_numpy()) for r in group]),
                                          self.settings.knowledge.cluster_merge_similarity)
            out.merges.extend(search_pb2.MergeSuggestion(a=m.a, b=m.b, similarity=m.similarity) for m in merges)
        return out

