-- Chat: an answer is stored when generation starts (finish_reason 'generating') with the instance that owns it,
-- so that a chat process that dies mid-answer leaves a turn that the next sweep marks 'failed'.
ALTER TABLE messages ADD COLUMN owner text NOT NULL DEFAULT '';
CREATE INDEX messages_generating ON messages (owner) WHERE finish_reason = 'generating';
