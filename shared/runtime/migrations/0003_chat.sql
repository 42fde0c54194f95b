-- Chat: conversations sort by their last message; an answer keeps how it ended and what it cost.
ALTER TABLE conversations ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE messages ADD COLUMN finish_reason text NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN prompt_tokens int NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN completion_tokens int NOT NULL DEFAULT 0;
CREATE INDEX conversations_updated ON conversations (updated_at DESC);
