-- Objects that a committed swap (erasure, compaction) or expiry took out of
-- the manifest (ADR-037). They are deleted by an archive run once
-- `delete_after` has passed (a grace period longer than any stats request,
-- so a request planned before the swap can still read them), and only
-- then. An erasure whose replaced objects are not all deleted yet is
-- `deleting`, not `done`: `done` means nothing of the user is left in the
-- store.
CREATE TABLE IF NOT EXISTS cold_deletes (
    object_key   text PRIMARY KEY,
    erasure_id   bigint REFERENCES erasures (id),
    replaced_at  timestamptz NOT NULL DEFAULT now(),
    delete_after timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS cold_deletes_due ON cold_deletes (delete_after);
CREATE INDEX IF NOT EXISTS cold_deletes_erasure ON cold_deletes (erasure_id)
    WHERE erasure_id IS NOT NULL;

DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
              WHERE conrelid = 'erasures'::regclass AND contype = 'c' LOOP
        EXECUTE format('ALTER TABLE erasures DROP CONSTRAINT %I', c.conname);
    END LOOP;
END $$;
ALTER TABLE erasures
    ADD CONSTRAINT erasures_status
        CHECK (status IN ('pending', 'running', 'deleting', 'done')),
    ADD CONSTRAINT erasures_user_id_while_open
        CHECK ((status IN ('pending', 'running')) = (user_id IS NOT NULL));
DROP INDEX IF EXISTS erasures_open;
CREATE UNIQUE INDEX erasures_open ON erasures (project_id, user_hash)
    WHERE status IN ('pending', 'running');

-- Queue workers drop the events of users whose erasure finished after the
-- events were accepted (ADR-037): one indexed look per transaction.
CREATE INDEX IF NOT EXISTS erasures_finished ON erasures (project_id, finished_at)
    WHERE finished_at IS NOT NULL;
