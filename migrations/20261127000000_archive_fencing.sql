-- The archive lease (ADR-024): which run owns the archive job. A run takes
-- it under the archiver's advisory lock, before its orphan sweep; every
-- commit reads it FOR SHARE and refuses to commit unless it still names the
-- committing run. A run whose lock session died (idle timeout, terminated
-- backend, failover, a pooler) therefore cannot commit once a successor has
-- taken over and swept its uncommitted files.
CREATE TABLE IF NOT EXISTS archive_lease (
    id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    run_id bigint NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now()
);

-- Arrival times come from the database's clock (the ingest transaction's
-- start), the clock the archiver compares them with to tell rows that
-- arrived while it was writing a chunk from those it read.
ALTER TABLE events ALTER COLUMN received_at SET DEFAULT now();
