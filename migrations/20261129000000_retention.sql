-- Retention policies (ADR-031): per project, keep events for this many UTC
-- days, today included (NULL: forever). Stats never read a day before the
-- horizon once the policy commits; the archiver's run deletes what is
-- before it from both tiers, with the derived rollups, in one transaction.
ALTER TABLE projects ADD COLUMN IF NOT EXISTS retention_days integer
    CHECK (retention_days BETWEEN 1 AND 365000);

-- What each archive run expired.
ALTER TABLE archive_runs ADD COLUMN IF NOT EXISTS expired_files integer NOT NULL DEFAULT 0;
ALTER TABLE archive_runs ADD COLUMN IF NOT EXISTS expired_rows bigint NOT NULL DEFAULT 0;
