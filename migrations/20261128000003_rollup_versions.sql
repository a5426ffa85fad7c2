-- Versions of rollups (ADR-030).
--
-- Every write of a day's rollup (a cold day's by the archive commit or a
-- rebuild, a hot day's by a seal) gives its source row a new version from
-- one sequence, in the same transaction as the rollup rows. A process may
-- then keep decoded rollups and reuse one for as long as the snapshot it
-- reads shows the same version: versions are never reused, so the same
-- version means the same rows.

CREATE SEQUENCE rollup_versions AS bigint;

ALTER TABLE day_rollup_sources
    ADD COLUMN version bigint NOT NULL DEFAULT nextval('rollup_versions');
ALTER TABLE hot_rollup_seals
    ADD COLUMN version bigint NOT NULL DEFAULT nextval('rollup_versions');
