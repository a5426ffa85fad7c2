-- Client keys (ADR-040): ingest-only project keys fit to embed in a browser
-- or mobile app. Their rate limit applies per client address, not per key,
-- so one app's users do not share one bucket.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS client boolean NOT NULL DEFAULT false;
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_client_ingest_only;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_client_ingest_only
    CHECK (NOT client OR (project_id IS NOT NULL AND scopes = ARRAY['ingest']));
