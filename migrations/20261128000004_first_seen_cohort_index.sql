-- Retention's cohorts as user ordinals (ADR-030) are read by first-seen
-- time: with the ordinal in the index, that read touches no table page.
CREATE INDEX user_first_seen_cohorts ON user_first_seen (project_id, first_ts) INCLUDE (ordinal);
DROP INDEX user_first_seen_first_ts;
