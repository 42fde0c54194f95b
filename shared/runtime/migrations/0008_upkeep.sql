-- Near-duplicate documents by their text: each document's MinHash bands over its word triples (services/ingest/dedup.py).
-- Documents that share a band are compared exactly at ingest, and a near-duplicate is reported on its file.
ALTER TABLE documents ADD COLUMN shingle_bands bigint[] NOT NULL DEFAULT '{}';
CREATE INDEX documents_shingle_bands ON documents USING gin (shingle_bands);

-- Enrichment's pace: when chat's enrichment last finished with a document (enriched, or given up), for the backlog
-- and its ETA in `tessera status`. A new state, 'deferred': a document of an import larger than
-- TESSERA_ENRICH_IMPORT_MAX waits until it is opened, cited or asked for (`tessera enrich`).
ALTER TABLE documents ADD COLUMN enriched_at timestamptz;
CREATE INDEX documents_enriched_at ON documents (enriched_at) WHERE enriched_at IS NOT NULL;
CREATE INDEX documents_enrich_deferred ON documents (project) WHERE enrich_state = 'deferred';
CREATE INDEX chunk_vectors_created ON chunk_vectors (created_at);

-- The map (search owns these): each document's place on its project's map (t-SNE of its vector, in [0, 1]²), and
-- each full run's cluster count and silhouette (services/search/clusters.py).
ALTER TABLE document_clusters ADD COLUMN x real NOT NULL DEFAULT 0.5, ADD COLUMN y real NOT NULL DEFAULT 0.5;
ALTER TABLE cluster_runs ADD COLUMN clusters int NOT NULL DEFAULT 0, ADD COLUMN silhouette real NOT NULL DEFAULT 0;
