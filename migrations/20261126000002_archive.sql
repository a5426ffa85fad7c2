-- Cold tier manifest and archive run history.

-- One row per committed Parquet object. Written in the same transaction that
-- drops the hot chunk: that transaction is the only commit point, so a file
-- is cold data exactly when it is listed here.
CREATE TABLE cold_files (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  bigint NOT NULL,
    day         date NOT NULL,
    seq         integer NOT NULL CHECK (seq >= 0),
    object_key  text NOT NULL UNIQUE,
    rows        bigint NOT NULL CHECK (rows > 0),
    bytes       bigint NOT NULL CHECK (bytes > 0),
    min_ts      timestamptz NOT NULL,
    max_ts      timestamptz NOT NULL,
    checksum    text NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now(),
    run_id      bigint,
    UNIQUE (project_id, day, seq)
);

CREATE TABLE archive_runs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    status         text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    cutoff         timestamptz NOT NULL,
    chunks_total   integer NOT NULL DEFAULT 0,
    chunks_moved   integer NOT NULL DEFAULT 0,
    chunks_failed  integer NOT NULL DEFAULT 0,
    rows_moved     bigint NOT NULL DEFAULT 0,
    bytes_written  bigint NOT NULL DEFAULT 0,
    orphans_removed integer NOT NULL DEFAULT 0,
    error          text
);

CREATE TABLE archive_chunk_results (
    run_id      bigint NOT NULL REFERENCES archive_runs (id),
    chunk       text NOT NULL,
    day         date NOT NULL,
    status      text NOT NULL CHECK (status IN ('archived', 'failed')),
    files       integer NOT NULL DEFAULT 0,
    rows        bigint NOT NULL DEFAULT 0,
    bytes       bigint NOT NULL DEFAULT 0,
    seconds     double precision NOT NULL,
    error       text,
    finished_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX archive_chunk_results_run ON archive_chunk_results (run_id);
