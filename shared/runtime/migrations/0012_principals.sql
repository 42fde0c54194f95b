-- Teams: people, their keys, an append-only audit, and row-level security that carries the caller into every query.
--
-- The services' pool sets three settings on each connection it hands out (shared/runtime/principal.py):
--   tessera.principal  the user's name ('' for the system: background work, the admin key);
--   tessera.projects   '*' for every project, '!' for none, else the projects the key may see, comma-separated;
--   tessera.admin      '1' when the caller is an admin (sees every person's conversations and jobs).
-- A session that sets none of them (a maintenance connection, the owner's migrations) is the system.
-- The gateway owns users, api_keys and audit_log.
CREATE TABLE users (
    id         uuid PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    role       text NOT NULL CHECK (role IN ('reader', 'writer', 'admin')),
    disabled   boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    digest     bytea NOT NULL UNIQUE,          -- sha256 of the key; the key itself is shown once and never kept
    prefix     text NOT NULL,                  -- its first characters, to tell keys apart in lists
    projects   text[],                         -- NULL: every project
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    principal  text NOT NULL,                  -- a user's name, 'admin' (the setup key) or '' (no valid key)
    key_id     text NOT NULL DEFAULT '',
    surface    text NOT NULL,                  -- rest, openai, mcp, web, grpc
    action     text NOT NULL,                  -- write, read, denied
    method     text NOT NULL DEFAULT '',
    object     text NOT NULL DEFAULT '',       -- the path or the object's id
    project    text NOT NULL DEFAULT '',
    status     int NOT NULL DEFAULT 0,
    request_id text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only, whoever asks: the runtime role is granted every verb on every table at start, so a trigger refuses.
CREATE FUNCTION tessera_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION tessera_audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION tessera_audit_append_only();

-- What the caller may see. Each policy calls these in a scalar subquery, which PostgreSQL evaluates once per statement
-- (an InitPlan), so a row costs one comparison: none at all for the system's '*', which reads every row.
CREATE FUNCTION tessera_every_project() RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('tessera.projects', true), '') IN ('', '*')
$$;
CREATE FUNCTION tessera_projects() RETURNS text[] LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN coalesce(current_setting('tessera.projects', true), '') IN ('', '*', '!') THEN '{}'::text[]
                ELSE string_to_array(current_setting('tessera.projects', true), ',') END
$$;
-- Everyone's conversations and jobs: the system and admins.
CREATE FUNCTION tessera_every_owner() RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('tessera.principal', true), '') = '' OR coalesce(current_setting('tessera.admin', true), '') = '1'
$$;
CREATE FUNCTION tessera_principal() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('tessera.principal', true), '')
$$;

ALTER TABLE conversations ADD COLUMN owner text NOT NULL DEFAULT coalesce(current_setting('tessera.principal', true), '');
ALTER TABLE ingest_jobs ADD COLUMN owner text NOT NULL DEFAULT coalesce(current_setting('tessera.principal', true), '');

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['documents', 'chunks', 'postings', 'chunk_vectors', 'query_log', 'clusters',
                               'cluster_runs', 'term_stats', 'lexical_stats', 'lexical_weights'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY scope ON %I USING ((SELECT tessera_every_project()) OR project = ANY ((SELECT tessera_projects())::text[])) '
                       'WITH CHECK ((SELECT tessera_every_project()) OR project = ANY ((SELECT tessera_projects())::text[]))', t);
    END LOOP;
END $$;

ALTER TABLE ingest_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE ingest_jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY scope ON ingest_jobs
    USING (((SELECT tessera_every_project()) OR project = ANY ((SELECT tessera_projects())::text[]))
           AND ((SELECT tessera_every_owner()) OR owner = (SELECT tessera_principal())))
    WITH CHECK (((SELECT tessera_every_project()) OR project = ANY ((SELECT tessera_projects())::text[]))
                AND ((SELECT tessera_every_owner()) OR owner = (SELECT tessera_principal())));

ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations FORCE ROW LEVEL SECURITY;
CREATE POLICY scope ON conversations USING ((SELECT tessera_every_owner()) OR owner = (SELECT tessera_principal()))
    WITH CHECK ((SELECT tessera_every_owner()) OR owner = (SELECT tessera_principal()));

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
CREATE POLICY scope ON messages USING (EXISTS (SELECT 1 FROM conversations c WHERE c.id = conversation_id))
    WITH CHECK (EXISTS (SELECT 1 FROM conversations c WHERE c.id = conversation_id));
