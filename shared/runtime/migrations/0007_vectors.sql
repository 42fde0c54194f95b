-- One owner per table: the vectors leave ingest's chunks for a table embed owns, keyed by (chunk, model),
-- and embed's queue bookkeeping leaves chunks for a table of its own. Nothing is re-embedded: the
-- vectors are copied over.
CREATE TABLE chunk_vectors (
    chunk_id    uuid NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    model_id    text NOT NULL,
    document_id uuid NOT NULL,   -- the chunk's, copied: nearest-neighbour scans filter without a join
    project     text NOT NULL,   -- the chunk's, copied, likewise
    embedding   vector(384) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chunk_id, model_id)
);
INSERT INTO chunk_vectors (chunk_id, model_id, document_id, project, embedding)
    SELECT id, coalesce(model_id, ''), document_id, project, embedding FROM chunks WHERE embedding IS NOT NULL;
CREATE INDEX chunk_vectors_embedding ON chunk_vectors USING hnsw (embedding vector_cosine_ops);
CREATE INDEX chunk_vectors_document ON chunk_vectors (document_id);

-- When embed last queued a document's chunks (its sweep re-queues those whose message was lost).
CREATE TABLE embed_queue (
    document_id uuid PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE,
    queued_at   timestamptz NOT NULL DEFAULT now()
);

DROP INDEX IF EXISTS chunks_unembedded;
DROP INDEX IF EXISTS chunks_embedding;
ALTER TABLE chunks DROP COLUMN embedding, DROP COLUMN model_id, DROP COLUMN queued_at;
CREATE INDEX documents_unembedded ON documents (updated_at) WHERE NOT embedded;
