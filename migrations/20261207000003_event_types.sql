-- Every project's distinct event types (ADR-037), capped per project by
-- STRATA_MAX_EVENT_TYPES: each type is a rollup row per day and a group in
-- top events, so the cap bounds their cost. Filled from what is stored.
CREATE TABLE IF NOT EXISTS project_event_types (
    project_id bigint NOT NULL REFERENCES projects (id),
    event_type text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, event_type)
);
INSERT INTO project_event_types (project_id, event_type)
SELECT project_id, event_type FROM events
UNION
SELECT project_id, event_type FROM day_rollups WHERE event_type <> ''
ON CONFLICT DO NOTHING;
