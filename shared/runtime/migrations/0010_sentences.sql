-- Each answer's sentences with the source lines that support them, or marked unsupported (chat owns this table):
-- services/chat/support.py makes them when the answer ends; the API and the page show them with the answer.
ALTER TABLE messages ADD COLUMN sentences jsonb NOT NULL DEFAULT '[]'::jsonb;
