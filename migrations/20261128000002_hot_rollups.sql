-- Exact rollups of closed hot days (ADR-028).
--
-- Once a UTC day is over (by an hour, margin for clock skew between the
-- api processes, whose ingest holds a closed day's archive lock shared,
-- and the sealer), a seal takes that day's archive lock exclusively,
-- aggregates the day's hot rows per project into the same Roaring sets of
-- user ordinals as `day_rollups`, and marks the day sealed. Ingest into a
-- sealed day (it holds the day's lock shared, so the mark cannot change
-- under it) copies what it adds, per (event type, user), into
-- `hot_late_events` in the same transaction: a sealed day's hot rows are
-- then exactly its rollup plus its late events, with no clock involved.
-- The next seal folds the late events in; dropping the day's chunk (the
-- archive commit) removes all of it in the same transaction.

CREATE TABLE hot_rollups (
    project_id  bigint NOT NULL,
    day         date NOT NULL,
    event_type  text NOT NULL,
    events      bigint NOT NULL CHECK (events > 0),
    users       bytea NOT NULL,
    PRIMARY KEY (project_id, day, event_type)
);

-- One row per (project, sealed day) with hot rows at the seal: how many
-- events the rollup covers and how many per-type rows it has beside the
-- all-types row (a day with any other number of rows is read from
-- `events`). A project without a row here has its day read from `events`.
CREATE TABLE hot_rollup_seals (
    project_id  bigint NOT NULL,
    day         date NOT NULL,
    events      bigint NOT NULL CHECK (events > 0),
    types       integer NOT NULL CHECK (types > 0),
    sealed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, day)
);

-- Days sealed (for every project at once): ingest into one of these
-- records its late events.
CREATE TABLE hot_sealed_days (
    day         date PRIMARY KEY,
    sealed_at   timestamptz NOT NULL DEFAULT now()
);

-- What ingest added to a sealed day, per batch, event type and user.
CREATE TABLE hot_late_events (
    day         date NOT NULL,
    project_id  bigint NOT NULL,
    event_type  text NOT NULL,
    user_id     text NOT NULL,
    events      integer NOT NULL CHECK (events > 0)
);
CREATE INDEX hot_late_events_day ON hot_late_events (day, project_id);
