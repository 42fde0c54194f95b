-- Conversations carry who they are for (chat owns this table): "user" (a person, listed by default), "eval" or
-- "bench" (set by `tessera eval` and the benchmarks), so a person's own are not buried under the tools' runs.
ALTER TABLE conversations ADD COLUMN purpose text NOT NULL DEFAULT 'user'
    CONSTRAINT conversations_purpose CHECK (purpose IN ('user', 'eval', 'bench'));
CREATE INDEX conversations_purpose_updated ON conversations (purpose, updated_at DESC);
