-- Knowledge that keeps itself current: enrichment, capture dedup, recency and staleness, clusters, reviews.

-- Enrichment (chat's background worker). The user's frontmatter always wins: user_fields names what the
-- file itself set (title, type, tags), and the worker never writes those. `kind` is one of the five
-- enrichment types (insight, snippet, decision, bug, reference): the user's own type mapped to it, or
-- the model's. auto_tags are kept apart from the user's tags; tag filters match either.
ALTER TABLE documents ADD COLUMN user_fields  text[] NOT NULL DEFAULT '{}';
ALTER TABLE documents ADD COLUMN kind         text NOT NULL DEFAULT '';
ALTER TABLE documents ADD COLUMN summary      text NOT NULL DEFAULT '';
ALTER TABLE documents ADD COLUMN auto_tags    text[] NOT NULL DEFAULT '{}';
ALTER TABLE documents ADD COLUMN entities     jsonb NOT NULL DEFAULT '[]';
-- pending: waits for the worker; enriched; unenriched (bad model output twice: enrich_reason says why); off
ALTER TABLE documents ADD COLUMN enrich_state  text NOT NULL DEFAULT 'pending';
ALTER TABLE documents ADD COLUMN enrich_reason text NOT NULL DEFAULT '';
ALTER TABLE documents ADD COLUMN enrich_hash   text NOT NULL DEFAULT '';   -- the content_hash that was enriched
CREATE INDEX documents_enrich_pending ON documents (updated_at) WHERE enrich_state = 'pending' AND embedded;
CREATE INDEX documents_auto_tags ON documents USING gin (auto_tags);
CREATE INDEX documents_kind ON documents (kind);
-- Capture dedup: the note's body (frontmatter removed, whitespace folded) hashed, per project.
ALTER TABLE documents ADD COLUMN body_hash text NOT NULL DEFAULT '';
CREATE INDEX documents_body_hash ON documents (project, body_hash);

-- Every hit a search returned (the document, when) and every query with how well it was answered:
-- staleness ("nobody hit it in N days") and knowledge gaps. Kept TESSERA_SEARCH_LOG_DAYS days.
CREATE TABLE search_hits (
    at          timestamptz NOT NULL DEFAULT now(),
    document_id uuid NOT NULL,
    rank        int NOT NULL
);
CREATE INDEX search_hits_document ON search_hits (document_id, at DESC);
CREATE INDEX search_hits_at ON search_hits (at);
CREATE TABLE query_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    kind      text NOT NULL,               -- search | question
    query     text NOT NULL,
    project   text NOT NULL DEFAULT '',
    hits      int NOT NULL,
    top_score real NOT NULL DEFAULT 0,     -- the best hit's cosine to the query (0: no vector signal)
    answered  boolean NOT NULL             -- false: no hit, nothing close enough, or the chat abstained
);
CREATE INDEX query_log_at ON query_log (at);

-- Topic clusters over document vectors (the mean of a document's chunk vectors), per project.
CREATE TABLE clusters (
    id          bigint PRIMARY KEY,
    project     text NOT NULL,
    name        text NOT NULL,
    terms       text[] NOT NULL,
    size        int NOT NULL,
    centroid    vector(384) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE cluster_ids;
CREATE TABLE document_clusters (
    document_id uuid PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE,
    cluster_id  bigint NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
    similarity  real NOT NULL,
    assigned_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX document_clusters_cluster ON document_clusters (cluster_id);
CREATE TABLE cluster_runs (
    project    text PRIMARY KEY,
    documents  int NOT NULL,               -- documents clustered by the last full run
    at         timestamptz NOT NULL DEFAULT now()
);

-- The weekly reviews: one row per scheduled run key, so several instances never write two.
CREATE TABLE reviews (
    key         text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    path        text NOT NULL DEFAULT ''
);

-- When two documents were first linked (the review's "new links"): re-linking keeps it.
ALTER TABLE links ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX links_created ON links (created_at);
