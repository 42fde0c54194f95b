-- Knowledge pipeline: lexical fields for BM25, denormalised project for filters,
-- queue bookkeeping for embedding, per-root documents for folder sync.
CREATE FUNCTION tessera_tsv_length(tsvector) RETURNS int
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0)::int FROM unnest($1) $$;

ALTER TABLE chunks DROP COLUMN tsv;
ALTER TABLE chunks ADD COLUMN project text NOT NULL DEFAULT '';
ALTER TABLE chunks ADD COLUMN context text NOT NULL DEFAULT '';   -- title and heading path
ALTER TABLE chunks ADD COLUMN tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('english', context || ' ' || text)) STORED;
ALTER TABLE chunks ADD COLUMN doc_len int
    GENERATED ALWAYS AS (tessera_tsv_length(to_tsvector('english', context || ' ' || text))) STORED;
ALTER TABLE chunks ADD COLUMN queued_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
CREATE INDEX chunks_unembedded ON chunks (queued_at) WHERE embedding IS NULL;
CREATE INDEX chunks_document ON chunks (document_id);

ALTER TABLE documents ADD COLUMN root text NOT NULL DEFAULT '';
ALTER TABLE documents ADD COLUMN size_bytes bigint NOT NULL DEFAULT 0;
ALTER TABLE documents ADD COLUMN embedded boolean NOT NULL DEFAULT false;
CREATE INDEX documents_tags ON documents USING gin (tags);
CREATE INDEX documents_root ON documents (project, root);

ALTER TABLE ingest_files ADD COLUMN warnings text[] NOT NULL DEFAULT '{}';
ALTER TABLE ingest_files ADD COLUMN content_hash text NOT NULL DEFAULT '';
ALTER TABLE ingest_files ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX ingest_files_document ON ingest_files (document_id);
ALTER TABLE ingest_jobs ADD COLUMN total_files int NOT NULL DEFAULT 0;
