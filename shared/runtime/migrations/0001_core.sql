-- Core schema: the system of record for documents, chunks, links, ingest jobs
-- and conversations. Later changes go in new files; never edit an applied one.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE documents (
    id           uuid PRIMARY KEY,
    project      text NOT NULL DEFAULT '',
    path         text NOT NULL,
    title        text NOT NULL DEFAULT '',
    type         text NOT NULL DEFAULT 'note',
    tags         text[] NOT NULL DEFAULT '{}',
    media_type   text NOT NULL,
    content_hash text NOT NULL,
    warnings     text[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project, path)
);

CREATE TABLE chunks (
    id           uuid PRIMARY KEY,
    document_id  uuid NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ord          int NOT NULL,
    text         text NOT NULL,
    heading_path text[] NOT NULL DEFAULT '{}',
    char_start   int NOT NULL,
    char_end     int NOT NULL,
    line_start   int NOT NULL,
    line_end     int NOT NULL,
    tsv          tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    embedding    vector(384),
    model_id     text,
    UNIQUE (document_id, ord)
);
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
CREATE INDEX chunks_embedding ON chunks USING hnsw (embedding vector_cosine_ops);

CREATE TABLE links (
    source_id uuid NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    target_id uuid NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    score     real NOT NULL,
    PRIMARY KEY (source_id, target_id)
);

CREATE TABLE ingest_jobs (
    id          uuid PRIMARY KEY,
    root        text NOT NULL,
    project     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

CREATE TABLE ingest_files (
    job_id      uuid NOT NULL REFERENCES ingest_jobs(id) ON DELETE CASCADE,
    path        text NOT NULL,
    document_id uuid,
    state       text NOT NULL,
    reason      text NOT NULL DEFAULT '',
    chunks      int NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, path)
);

CREATE TABLE conversations (
    id         uuid PRIMARY KEY,
    title      text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE messages (
    id              uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role            text NOT NULL,
    content         text NOT NULL,
    citations       jsonb NOT NULL DEFAULT '[]',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation ON messages (conversation_id, created_at);

-- Moves whenever the searchable index changes; search caches key on it.
CREATE TABLE index_state (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    generation bigint NOT NULL DEFAULT 0
);
INSERT INTO index_state DEFAULT VALUES;
