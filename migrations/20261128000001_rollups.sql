-- Exact rollups of closed days (ADR-027).
--
-- Every user gets a dense per-project ordinal when first seen, assigned at
-- ingest inside the first-seen upkeep from `projects.next_user_ordinal` and
-- never reused; the rollups hold sets of these ordinals as Roaring bitmaps.

ALTER TABLE projects ADD COLUMN next_user_ordinal bigint NOT NULL DEFAULT 0
    CHECK (next_user_ordinal BETWEEN 0 AND 4294967296);

-- Users already seen are numbered in the order they were first seen.
ALTER TABLE user_first_seen ADD COLUMN ordinal bigint;
UPDATE user_first_seen f
   SET ordinal = n.ordinal
  FROM (SELECT project_id, user_id,
               row_number() OVER (PARTITION BY project_id ORDER BY first_ts, user_id) - 1 AS ordinal
          FROM user_first_seen) n
 WHERE f.project_id = n.project_id AND f.user_id = n.user_id;
UPDATE projects p
   SET next_user_ordinal = coalesce((SELECT max(ordinal) + 1 FROM user_first_seen f
                                      WHERE f.project_id = p.id), 0);
ALTER TABLE user_first_seen ALTER COLUMN ordinal SET NOT NULL;
ALTER TABLE user_first_seen ADD CONSTRAINT user_first_seen_ordinal_range
    CHECK (ordinal BETWEEN 0 AND 4294967295);
CREATE UNIQUE INDEX user_first_seen_ordinal ON user_first_seen (project_id, ordinal);

-- Per (project, closed day): the day's events and users over all event
-- types (`event_type` = '', which no event can have), and per event type.
-- `users` is a Roaring bitmap of user ordinals in the portable format.
CREATE TABLE day_rollups (
    project_id  bigint NOT NULL,
    day         date NOT NULL,
    event_type  text NOT NULL,
    events      bigint NOT NULL CHECK (events > 0),
    users       bytea NOT NULL,
    PRIMARY KEY (project_id, day, event_type)
);

-- What a day's rollup rows were computed from: the day's cold files
-- (`cold_files`, counted, with the sum of their rows). The planner uses a
-- day's rollup only when both still equal the manifest's in the same
-- snapshot; otherwise it reads that day's Parquet, so a missing or stale
-- rollup costs time, never exactness.
CREATE TABLE day_rollup_sources (
    project_id  bigint NOT NULL,
    day         date NOT NULL,
    cold_files  integer NOT NULL CHECK (cold_files > 0),
    cold_rows   bigint NOT NULL CHECK (cold_rows > 0),
    built_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, day)
);
