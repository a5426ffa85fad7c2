-- The idempotency records partitioned by UTC arrival day (ADR-025): new
-- claims go into one small, cached index per day instead of one btree of
-- random UUIDs over the whole 90-day window, and expiry drops whole days.
-- `day` is the date of the claiming transaction; the primary key of each
-- day's partition decides within that day, and the claim protocol in
-- strata-hot's `claims.rs` (a claiming transaction probes every earlier,
-- sealed day first) decides across days.
--
-- Existing records move to the partition of their arrival day. The api
-- binaries of the previous version write the old table and fail loudly
-- against this one: upgrade them together.

ALTER TABLE event_ids RENAME TO event_ids_unpartitioned;
ALTER INDEX IF EXISTS event_ids_pkey RENAME TO event_ids_unpartitioned_pkey;

CREATE TABLE event_ids (
    project_id  bigint NOT NULL,
    event_id    uuid NOT NULL,
    day         date NOT NULL,
    PRIMARY KEY (project_id, event_id, day)
) PARTITION BY RANGE (day);

-- Every day before `sealed_before` is closed to new claims.
CREATE TABLE claim_watermark (
    id            int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    sealed_before date NOT NULL
);
INSERT INTO claim_watermark (sealed_before) VALUES ((now() AT TIME ZONE 'UTC')::date);

DO $$
DECLARE
    d date;
BEGIN
    FOR d IN SELECT DISTINCT (received_at AT TIME ZONE 'UTC')::date FROM event_ids_unpartitioned LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF event_ids FOR VALUES FROM (%L) TO (%L)',
                       'event_ids_p' || to_char(d, 'YYYYMMDD'), d, d + 1);
    END LOOP;
END
$$;

INSERT INTO event_ids (project_id, event_id, day)
SELECT project_id, event_id, (received_at AT TIME ZONE 'UTC')::date
  FROM event_ids_unpartitioned;

DROP TABLE event_ids_unpartitioned;
