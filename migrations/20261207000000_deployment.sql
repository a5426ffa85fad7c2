-- This database's deployment id (ADR-037). The archiver writes it into the
-- cold store's `_strata/owner` marker on its first run and refuses a store
-- whose marker names another deployment. A restore of this database keeps
-- the id (it is the same deployment); another database gets its own.
CREATE TABLE IF NOT EXISTS deployment (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO deployment DEFAULT VALUES ON CONFLICT DO NOTHING;
