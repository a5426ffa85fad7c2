-- Strata hot tier: projects, API keys, idempotency records, first-seen times
-- and the day-partitioned events table.
--
-- This migration supersedes 20261126000001_hot_tier, which created the
-- TimescaleDB extension itself and so killed the session (FATAL, not an
-- error a migration can catch) on a server that has TimescaleDB installed
-- but not preloaded. The layout is now decided by `strata-api migrate`
-- before any migration runs (STRATA_HOT_LAYOUT; see docs/ADR.md, ADR-023):
-- it creates the extension when it chose the hypertable and passes its
-- choice in the session setting `strata.hot_layout`. Every statement is
-- idempotent, so databases that applied 20261126000001 run this as a no-op.

CREATE TABLE IF NOT EXISTS projects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys are stored only as SHA-256; `prefix` is the clear part shown in
-- `keys list` and accepted by `keys revoke`.
CREATE TABLE IF NOT EXISTS api_keys (
    id          uuid PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects (id),
    prefix      text NOT NULL UNIQUE,
    key_hash    bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    scopes      text[] NOT NULL CHECK (scopes <@ ARRAY['ingest', 'read', 'admin'] AND cardinality(scopes) > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- The idempotency judge: one row per (project, event_id) ever accepted,
-- independent of the hot chunks so it outlives archiving. Pruned by
-- `received_at` once older than the dedup window; rows arrive in time order,
-- so a BRIN index serves the prune at almost no storage cost.
CREATE TABLE IF NOT EXISTS event_ids (
    project_id  bigint NOT NULL,
    event_id    uuid NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, event_id)
);
CREATE INDEX IF NOT EXISTS event_ids_received_at ON event_ids USING brin (received_at);

-- Each user's earliest accepted event, kept at ingest: retention cohorts need
-- it across both tiers, and it survives archiving.
CREATE TABLE IF NOT EXISTS user_first_seen (
    project_id  bigint NOT NULL,
    user_id     text NOT NULL,
    first_ts    timestamptz NOT NULL,
    PRIMARY KEY (project_id, user_id)
);

-- Events, partitioned by UTC day: a TimescaleDB hypertable with 1-day chunks
-- (strata.hot_layout = 'timescaledb'; the extension already exists), native
-- range partitions otherwise (created on demand by ingest; no DEFAULT
-- partition, so a row can never land outside its day). Run by hand without
-- the setting, the hypertable is chosen only where the extension already
-- exists in this database; this file never creates it.
DO $$
DECLARE
    layout text := coalesce(
        nullif(current_setting('strata.hot_layout', true), ''),
        CASE WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
             THEN 'timescaledb' ELSE 'native' END);
    columns constant text := '
        project_id  bigint NOT NULL,
        event_id    uuid NOT NULL,
        user_id     text NOT NULL,
        event_type  text NOT NULL,
        ts          timestamptz NOT NULL,
        properties  jsonb,
        received_at timestamptz NOT NULL';
BEGIN
    IF to_regclass('events') IS NOT NULL THEN
        RETURN;
    END IF;
    IF layout = 'timescaledb' THEN
        EXECUTE format('CREATE TABLE events (%s)', columns);
        PERFORM create_hypertable('events', 'ts',
                                  chunk_time_interval => INTERVAL '1 day',
                                  create_default_indexes => false);
    ELSIF layout = 'native' THEN
        EXECUTE format('CREATE TABLE events (%s) PARTITION BY RANGE (ts)', columns);
    ELSE
        RAISE EXCEPTION 'strata.hot_layout must be timescaledb or native, not %', layout;
    END IF;
    CREATE INDEX events_project_ts ON events (project_id, ts);
END
$$;
