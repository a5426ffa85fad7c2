-- Erasing a user (ADR-032) and compacting a day's cold files (ADR-033).

-- One row per erasure request: its progress and, once done, its audit
-- record. The user id is kept in clear only while the work needs it
-- (pending or running); the transaction that finishes the erasure clears
-- it, and `user_hash` (hex SHA-256 of the id) stays.
CREATE TABLE IF NOT EXISTS erasures (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id      bigint NOT NULL REFERENCES projects (id),
    user_id         text,
    user_hash       text NOT NULL,
    requested_by    text NOT NULL,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'done')),
    run_id          bigint,
    started_at      timestamptz,
    finished_at     timestamptz,
    -- Cold days that may hold the user, and those rewritten so far.
    days_total      integer,
    days_done       integer NOT NULL DEFAULT 0,
    files_rewritten integer NOT NULL DEFAULT 0,
    -- Rows of those files, read and written again (less the user's).
    rows_rewritten  bigint NOT NULL DEFAULT 0,
    hot_rows        bigint NOT NULL DEFAULT 0,
    cold_rows       bigint NOT NULL DEFAULT 0,
    -- The last attempt's failure (the next archive run tries again).
    error           text,
    CHECK ((status = 'done') = (user_id IS NULL))
);
-- One open erasure per user: asking again returns it.
CREATE UNIQUE INDEX IF NOT EXISTS erasures_open ON erasures (project_id, user_hash)
    WHERE status <> 'done';

-- Bumped by every erasure's last transaction, which deletes first-seen
-- records: a process's memory of users (their ordinals, their first-seen
-- bounds) is valid only for the epoch it was read at.
ALTER TABLE projects ADD COLUMN IF NOT EXISTS ordinals_epoch bigint NOT NULL DEFAULT 0;

-- What each archive run erased and compacted.
ALTER TABLE archive_runs ADD COLUMN IF NOT EXISTS erasures_done integer NOT NULL DEFAULT 0;
ALTER TABLE archive_runs ADD COLUMN IF NOT EXISTS compacted_days integer NOT NULL DEFAULT 0;
ALTER TABLE archive_runs ADD COLUMN IF NOT EXISTS compacted_files integer NOT NULL DEFAULT 0;
