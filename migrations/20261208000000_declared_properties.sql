-- Declared properties (ADR-043).
--
-- A project may declare up to 8 top-level properties whose values the
-- exact rollups keep: per closed day, per value of each declared property
-- (as `strata_model::property_text` gives it; NULL for null and a missing
-- key, one bucket) and per event type ('' for all of them), the events and
-- the Roaring set of user ordinals, so breakdowns by them answer from the
-- rollups as the plain stats do. The cap is kept by the store, which
-- declares under a lock on the project's row.
CREATE TABLE project_properties (
    project_id   bigint NOT NULL REFERENCES projects (id),
    property     text NOT NULL CHECK (octet_length(property) BETWEEN 1 AND 256),
    declared_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, property)
);

-- A rollup row is either an event type's ('' property) or one value's of a
-- declared property. The old key (project_id, day, event_type) becomes
-- unique per (property, value) as well.
ALTER TABLE day_rollups ADD COLUMN property text NOT NULL DEFAULT '',
                        ADD COLUMN value text;
ALTER TABLE day_rollups DROP CONSTRAINT day_rollups_pkey;
ALTER TABLE day_rollups ADD CONSTRAINT day_rollups_key
    UNIQUE NULLS NOT DISTINCT (project_id, day, property, value, event_type);
ALTER TABLE hot_rollups ADD COLUMN property text NOT NULL DEFAULT '',
                        ADD COLUMN value text;
ALTER TABLE hot_rollups DROP CONSTRAINT hot_rollups_pkey;
ALTER TABLE hot_rollups ADD CONSTRAINT hot_rollups_key
    UNIQUE NULLS NOT DISTINCT (project_id, day, property, value, event_type);

-- What a day's rollup holds per value: the declared properties it was
-- computed for (a property declared later is not among them until a
-- rebuild, and breakdowns by it read that day's events) and how many value
-- rows it has beside its type rows (a day with any other number of rows is
-- incomplete and read from its events).
ALTER TABLE day_rollup_sources ADD COLUMN properties text[] NOT NULL DEFAULT '{}',
                               ADD COLUMN value_rows integer NOT NULL DEFAULT 0;
ALTER TABLE hot_rollup_seals ADD COLUMN properties text[] NOT NULL DEFAULT '{}',
                             ADD COLUMN value_rows integer NOT NULL DEFAULT 0;
