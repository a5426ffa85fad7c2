-- Retention reads its cohorts with an index-only scan of
-- user_first_seen_cohorts over the newest first-seen times. New users are
-- inserts, and PostgreSQL's default vacuums a table for inserts only after
-- 20% of its rows (plus 1,000) are new: the newest cohorts, the ones
-- retention reads, sat on pages not yet marked all-visible, and each of
-- their index entries cost a heap fetch (6,326 of 8,854 in one measured
-- query, which took 10.6 ms against 6 ms after a VACUUM). Vacuum after
-- every 1,000 new users whatever the table's size: such a vacuum reads only
-- the pages not yet all-visible, and skips the indexes when nothing is dead
-- (ADR-036).
ALTER TABLE user_first_seen SET (
    autovacuum_vacuum_insert_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0
);
