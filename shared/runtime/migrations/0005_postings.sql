-- Lexical inverted index. Ingest writes one postings row per (term, chunk) in the
-- transaction that writes the chunk; terms come from shared/runtime/analyzer.py.
-- Search reads, per query term, at most a bounded number of postings in impact
-- order, then scores its candidates with exact BM25 from tf, dl and the live
-- statistics below, so its cost follows the query, not the corpus.
ALTER TABLE chunks DROP COLUMN tsv;
ALTER TABLE chunks DROP COLUMN doc_len;
DROP FUNCTION tessera_tsv_length(tsvector);
ALTER TABLE chunks ADD COLUMN lex_len real;           -- terms in context + text; NULL until indexed

CREATE TABLE postings (
    term        text NOT NULL,
    project     text NOT NULL,
    chunk_id    uuid NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    document_id uuid NOT NULL,
    tf          real NOT NULL,                          -- the term's (field-weighted) count in the chunk
    dl          real NOT NULL,                          -- the chunk's length in terms
    impact      real NOT NULL                           -- BM25 term weight without idf, at the avgdl of its write
);
-- candidate reads: a term's postings, best first (index-only; a project filter is applied on the way)
CREATE INDEX postings_impact ON postings (term, impact DESC) INCLUDE (project, chunk_id, document_id, tf, dl);
-- exact rescoring of candidates, and the cascade from chunks
CREATE INDEX postings_chunk ON postings (chunk_id, term) INCLUDE (tf, dl);

-- Document frequency per (term, project), and chunk count and total length per
-- (project, shard): they change in the writing transaction. Shards spread
-- concurrent ingests over rows.
CREATE TABLE term_stats (
    term    text NOT NULL,
    project text NOT NULL,
    df      bigint NOT NULL,
    PRIMARY KEY (term, project)
);
CREATE TABLE lexical_stats (
    project   text NOT NULL,
    shard     int NOT NULL,
    chunks    bigint NOT NULL DEFAULT 0,
    terms     double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (project, shard)
);
-- the avgdl postings.impact was computed with, per project; re-weighting moves it
CREATE TABLE lexical_weights (
    project text PRIMARY KEY,
    avgdl   double precision NOT NULL
);

CREATE FUNCTION tessera_postings_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO term_stats (term, project, df)
        SELECT term, project, count(*) FROM added GROUP BY term, project ORDER BY term, project
        ON CONFLICT (term, project) DO UPDATE SET df = term_stats.df + excluded.df;
    RETURN NULL;
END $$;
CREATE FUNCTION tessera_postings_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM term_stats t JOIN (SELECT DISTINCT term, project FROM removed) r USING (term, project)
        ORDER BY t.term, t.project FOR UPDATE OF t;          -- one lock order for every writer: no deadlocks
    UPDATE term_stats t SET df = t.df - r.n
        FROM (SELECT term, project, count(*) AS n FROM removed GROUP BY term, project ORDER BY term, project) r
        WHERE t.term = r.term AND t.project = r.project;
    RETURN NULL;
END $$;
CREATE TRIGGER postings_added AFTER INSERT ON postings REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION tessera_postings_added();
CREATE TRIGGER postings_removed AFTER DELETE ON postings REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION tessera_postings_removed();

CREATE FUNCTION tessera_chunks_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lexical_stats s SET chunks = s.chunks - r.n, terms = s.terms - r.len
        FROM (SELECT project, abs(hashtext(document_id::text)) % 16 AS shard, count(*) AS n, sum(lex_len) AS len
              FROM removed WHERE lex_len IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2) r
        WHERE s.project = r.project AND s.shard = r.shard;
    RETURN NULL;
END $$;
CREATE TRIGGER chunks_removed AFTER DELETE ON chunks REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION tessera_chunks_removed();

-- Ingest adds a document's chunks to lexical_stats when it writes them; this trigger
-- takes them out however they go (a replaced document, a deleted one, a cascade).
-- Chunks written before this migration get their postings from ingest's backfill
-- (lex_len IS NULL).
CREATE INDEX chunks_unlexed ON chunks (document_id) WHERE lex_len IS NULL;
