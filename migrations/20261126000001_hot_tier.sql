-- Strata hot tier: projects, API keys, idempotency records, first-seen times
-- and the day-partitioned events table.

CREATE TABLE projects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys are stored only as SHA-256; `prefix` is the clear part shown in
-- `keys list` and accepted by `keys revoke`.
CREATE TABLE api_keys (
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
CREATE TABLE event_ids (
    project_id  bigint NOT NULL,
    event_id    uuid NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, event_id)
);
CREATE INDEX event_ids_received_at ON event_ids USING brin (received_at);

-- Each user's earliest accepted event, kept at ingest: retention cohorts need
-- it across both tiers, and it survives archiving.
CREATE TABLE user_first_seen (
    project_id  bigint NOT NULL,
    user_id     text NOT NULL,
    first_ts    timestamptz NOT NULL,
    PRIMARY KEY (project_id, user_id)
);

-- Events, partitioned by UTC day: a TimescaleDB hypertable with 1-day chunks
-- where the extension can be created, native range partitions otherwise
-- (created on demand by ingest; no DEFAULT partition, so a row can never land
-- outside its day).
DO $$
DECLARE
    timescale boolean := false;
    columns constant text := '
        project_id  bigint NOT NULL,
        event_id    uuid NOT NULL,
        user_id     text NOT NULL,
        event_type  text NOT NULL,
        ts          timestamptz NOT NULL,
        properties  jsonb,
        received_at timestamptz NOT NULL';
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        timescale := true;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'timescaledb is not available (%); using native day partitions', SQLERRM;
    END;

    IF timescale THEN
        EXECUTE format('CREATE TABLE events (%s)', columns);
        PERFORM create_hypertable('events', 'ts',
                                  chunk_time_interval => INTERVAL '1 day',
                                  create_default_indexes => false);
    ELSE
        EXECUTE format('CREATE TABLE events (%s) PARTITION BY RANGE (ts)', columns);
    END IF;

    CREATE INDEX events_project_ts ON events (project_id, ts);
END
$$;
