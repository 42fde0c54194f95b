-- Near-duplicate documents by their text: each document's MinHash bands over its word triples (services/ingest/dedup.py).
-- Documents that share a band are compared exactly at ingest, and a near-duplicate is reported on its file.
ALTER TABLE documents ADD COLUMN shingle_bands bigint[] NOT NULL DEFAULT '{}';
CREATE INDEX documents_shingle_bands ON documents USING gin (shingle_bands);
