-- Exact rollups of closed days (ADR-027).
--
-- Every user gets a dense per-project ordinal when first seen, assigned at
-- ingest inside the first-seen upkeep from the project's own sequence
-- (`user_ordinals_<project id>`, made with the project) and never reused;
-- the rollups hold sets of these ordinals as Roaring bitmaps. A sequence
-- takes no lock that lasts until commit, so batches that first see users
-- never queue behind each other (two batches that first see the same user
-- at once leave a gap, never a duplicate).

CREATE FUNCTION strata_user_ordinals(project bigint) RETURNS regclass
    LANGUAGE sql STABLE AS $$ SELECT format('user_ordinals_%s', project)::regclass $$;

CREATE FUNCTION strata_create_user_ordinals() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE SEQUENCE IF NOT EXISTS user_ordinals_%s AS bigint MINVALUE 0 MAXVALUE 4294967295 START 0', NEW.id);
    RETURN NEW;
END $$;

CREATE TRIGGER projects_user_ordinals AFTER INSERT ON projects
    FOR EACH ROW EXECUTE FUNCTION strata_create_user_ordinals();

-- Users already seen are numbered in the order they were first seen.
ALTER TABLE user_first_seen ADD COLUMN ordinal bigint;
UPDATE user_first_seen f
   SET ordinal = n.ordinal
  FROM (SELECT project_id, user_id,
               row_number() OVER (PARTITION BY project_id ORDER BY first_ts, user_id) - 1 AS ordinal
          FROM user_first_seen) n
 WHERE f.project_id = n.project_id AND f.user_id = n.user_id;
ALTER TABLE user_first_seen ALTER COLUMN ordinal SET NOT NULL;
ALTER TABLE user_first_seen ADD CONSTRAINT user_first_seen_ordinal_range
    CHECK (ordinal BETWEEN 0 AND 4294967295);
CREATE UNIQUE INDEX user_first_seen_ordinal ON user_first_seen (project_id, ordinal);

DO $$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT id, (SELECT coalesce(max(ordinal) + 1, 0) FROM user_first_seen f
                          WHERE f.project_id = projects.id) AS next
               FROM projects LOOP
        EXECUTE format('CREATE SEQUENCE IF NOT EXISTS user_ordinals_%s AS bigint MINVALUE 0 MAXVALUE 4294967295 START %s',
                       p.id, p.next);
    END LOOP;
END $$;

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
-- (`cold_files`, counted, with the sum of their rows), and how many rows
-- it has. The planner uses a
-- day's rollup only when both still equal the manifest's in the same
-- snapshot; otherwise it reads that day's Parquet, so a missing or stale
-- rollup costs time, never exactness.
CREATE TABLE day_rollup_sources (
    project_id  bigint NOT NULL,
    day         date NOT NULL,
    cold_files  integer NOT NULL CHECK (cold_files > 0),
    cold_rows   bigint NOT NULL CHECK (cold_rows > 0),
    -- Per-type rows written beside the all-types row: a day with any other
    -- number of rows is incomplete and read from its files.
    types       integer NOT NULL CHECK (types > 0),
    built_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, day)
);
