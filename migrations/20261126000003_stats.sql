-- Retention cohorts select users by the time of their first event.
CREATE INDEX user_first_seen_first_ts ON user_first_seen (project_id, first_ts);
