-- Operator keys (ADR-024): a key that belongs to no project and carries only
-- the `operator` scope, for the service-wide admin views and actions (every
-- project's footprint, archive runs). Project keys keep a project and never
-- carry `operator`; a project's admin key sees its own project only.
ALTER TABLE api_keys ALTER COLUMN project_id DROP NOT NULL;
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_scopes_check;
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_scopes_known;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_known
    CHECK (scopes <@ ARRAY['ingest', 'read', 'admin', 'operator'] AND cardinality(scopes) > 0);
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_owner;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_owner
    CHECK ((project_id IS NULL) = (scopes = ARRAY['operator']));
