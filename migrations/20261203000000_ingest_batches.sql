-- Buffered ingest through NATS JetStream (ADR-034): one row per applied
-- part of a queued batch, written in the transaction that stored the part's
-- events, so a redelivered part finds its row and its counts stay those of
-- the first (and only) application. A batch is `applied` once all of its
-- `parts` have a row. Rows are kept for `--batch-status-ttl` (the worker
-- prunes older ones).
CREATE TABLE IF NOT EXISTS ingest_batches (
    batch_id    uuid NOT NULL,
    part        integer NOT NULL CHECK (part >= 0),
    parts       integer NOT NULL CHECK (parts > part),
    project_id  bigint NOT NULL,
    accepted    bigint NOT NULL CHECK (accepted >= 0),
    duplicates  bigint NOT NULL CHECK (duplicates >= 0),
    queued_at   timestamptz NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, part)
);

CREATE INDEX IF NOT EXISTS ingest_batches_applied_at ON ingest_batches (applied_at);
