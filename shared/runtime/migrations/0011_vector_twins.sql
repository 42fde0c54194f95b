-- A document's chunks with the same embedded text (a line repeated through a log, a table's repeated rows, a pasted
-- block) get the same vector. HNSW links a group of identical vectors only to one another, and a walk that enters the
-- group cannot leave it: notes stored after such a document went missing from vector search (bench/twins.py). One
-- vector of each such group is in the graph (``indexed``); its twins keep their rows (counted, averaged, read) outside
-- it. ``digest`` (md5 of the vector's bytes) finds a twin in the document without comparing vectors. Embed owns it.
ALTER TABLE chunk_vectors ADD COLUMN digest bytea GENERATED ALWAYS AS (decode(md5(vector_send(embedding)), 'hex')) STORED;
ALTER TABLE chunk_vectors ADD COLUMN indexed boolean NOT NULL DEFAULT true;
UPDATE chunk_vectors v SET indexed = false FROM (
    SELECT chunk_id, model_id, row_number() OVER (PARTITION BY document_id, model_id, digest ORDER BY created_at, chunk_id) AS n
    FROM chunk_vectors) r
WHERE r.chunk_id = v.chunk_id AND r.model_id = v.model_id AND r.n > 1;
DROP INDEX chunk_vectors_embedding;
CREATE INDEX chunk_vectors_embedding ON chunk_vectors USING hnsw (embedding vector_cosine_ops) WHERE indexed;
DROP INDEX chunk_vectors_document;
CREATE INDEX chunk_vectors_document ON chunk_vectors (document_id, digest);
