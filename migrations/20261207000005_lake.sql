-- The archive as a DuckLake table (ADR-041): the catalog of the DuckLake 1.0
-- specification in schema `strata_lake`, written by Strata only, in the same
-- transactions that change `cold_files` (libs/strata-store/src/catalog/lake.rs).
-- Readers attach it read-only: docs/cold-tier.md.
CREATE SCHEMA strata_lake;
SET LOCAL search_path = strata_lake;

-- The catalog tables of the DuckLake 1.0 specification, as DuckDB's
-- `ducklake` extension creates them.
CREATE TABLE ducklake_metadata (key varchar NOT NULL, value varchar NOT NULL, scope varchar, scope_id bigint);
CREATE TABLE ducklake_snapshot (snapshot_id bigint PRIMARY KEY, snapshot_time timestamptz, schema_version bigint, next_catalog_id bigint, next_file_id bigint);
CREATE TABLE ducklake_snapshot_changes (snapshot_id bigint PRIMARY KEY, changes_made varchar, author varchar, commit_message varchar, commit_extra_info varchar);
CREATE TABLE ducklake_schema (schema_id bigint PRIMARY KEY, schema_uuid uuid, begin_snapshot bigint, end_snapshot bigint, schema_name varchar, path varchar, path_is_relative boolean);
CREATE TABLE ducklake_table (table_id bigint, table_uuid uuid, begin_snapshot bigint, end_snapshot bigint, schema_id bigint, table_name varchar, path varchar, path_is_relative boolean);
CREATE TABLE ducklake_view (view_id bigint, view_uuid uuid, begin_snapshot bigint, end_snapshot bigint, schema_id bigint, view_name varchar, dialect varchar, sql varchar, column_aliases varchar);
CREATE TABLE ducklake_tag (object_id bigint, begin_snapshot bigint, end_snapshot bigint, key varchar, value varchar);
CREATE TABLE ducklake_column_tag (table_id bigint, column_id bigint, begin_snapshot bigint, end_snapshot bigint, key varchar, value varchar);
CREATE TABLE ducklake_data_file (data_file_id bigint PRIMARY KEY, table_id bigint, begin_snapshot bigint, end_snapshot bigint, file_order bigint, path varchar, path_is_relative boolean, file_format varchar, record_count bigint, file_size_bytes bigint, footer_size bigint, row_id_start bigint, partition_id bigint, encryption_key varchar, mapping_id bigint, partial_max bigint);
CREATE TABLE ducklake_file_column_stats (data_file_id bigint, table_id bigint, column_id bigint, column_size_bytes bigint, value_count bigint, null_count bigint, min_value varchar, max_value varchar, contains_nan boolean, extra_stats varchar);
CREATE TABLE ducklake_file_variant_stats (data_file_id bigint, table_id bigint, column_id bigint, variant_path varchar, shredded_type varchar, column_size_bytes bigint, value_count bigint, null_count bigint, min_value varchar, max_value varchar, contains_nan boolean, extra_stats varchar);
CREATE TABLE ducklake_delete_file (delete_file_id bigint PRIMARY KEY, table_id bigint, begin_snapshot bigint, end_snapshot bigint, data_file_id bigint, path varchar, path_is_relative boolean, format varchar, delete_count bigint, file_size_bytes bigint, footer_size bigint, encryption_key varchar, partial_max bigint);
CREATE TABLE ducklake_column (column_id bigint, begin_snapshot bigint, end_snapshot bigint, table_id bigint, column_order bigint, column_name varchar, column_type varchar, initial_default varchar, default_value varchar, nulls_allowed boolean, parent_column bigint, default_value_type varchar, default_value_dialect varchar);
CREATE TABLE ducklake_table_stats (table_id bigint, record_count bigint, next_row_id bigint, file_size_bytes bigint);
CREATE TABLE ducklake_table_column_stats (table_id bigint, column_id bigint, contains_null boolean, contains_nan boolean, min_value varchar, max_value varchar, extra_stats varchar);
CREATE TABLE ducklake_partition_info (partition_id bigint, table_id bigint, begin_snapshot bigint, end_snapshot bigint);
CREATE TABLE ducklake_partition_column (partition_id bigint, table_id bigint, partition_key_index bigint, column_id bigint, transform varchar);
CREATE TABLE ducklake_file_partition_value (data_file_id bigint, table_id bigint, partition_key_index bigint, partition_value varchar);
CREATE TABLE ducklake_files_scheduled_for_deletion (data_file_id bigint, path varchar, path_is_relative boolean, schedule_start timestamptz);
CREATE TABLE ducklake_inlined_data_tables (table_id bigint, table_name varchar, schema_version bigint);
CREATE TABLE ducklake_column_mapping (mapping_id bigint, table_id bigint, type varchar);
CREATE TABLE ducklake_name_mapping (mapping_id bigint, column_id bigint, source_name varchar, target_field_id bigint, parent_column bigint, is_partition boolean);
CREATE TABLE ducklake_schema_versions (begin_snapshot bigint, schema_version bigint, table_id bigint);
CREATE TABLE ducklake_macro (schema_id bigint, macro_id bigint, macro_name varchar, begin_snapshot bigint, end_snapshot bigint);
CREATE TABLE ducklake_macro_impl (macro_id bigint, impl_id bigint, dialect varchar, sql varchar, type varchar);
CREATE TABLE ducklake_macro_parameters (macro_id bigint, impl_id bigint, column_id bigint, parameter_name varchar, parameter_type varchar, default_value varchar, default_value_type varchar);
CREATE TABLE ducklake_sort_info (sort_id bigint, table_id bigint, begin_snapshot bigint, end_snapshot bigint);
CREATE TABLE ducklake_sort_expression (sort_id bigint, table_id bigint, sort_key_index bigint, expression varchar, dialect varchar, sort_direction varchar, null_order varchar);

CREATE INDEX ducklake_data_file_path ON ducklake_data_file (path);
CREATE INDEX ducklake_file_column_stats_file ON ducklake_file_column_stats (data_file_id);
CREATE INDEX ducklake_file_partition_value_file ON ducklake_file_partition_value (data_file_id);

-- Snapshot 0: schema `main` (id 0), table `main.events` (id 1) of the
-- archive's six columns and its two Hive partition columns (ids 1-8),
-- partitioned by project_id and date (partition 9), files mapped to the
-- columns by name (mapping 0). Catalog ids 0-9 are taken; file ids start at 0.
INSERT INTO ducklake_metadata VALUES
    ('version', '1.0', NULL, NULL),
    ('created_by', 'Strata', NULL, NULL),
    ('encrypted', 'false', NULL, NULL);
INSERT INTO ducklake_snapshot VALUES (0, now(), 0, 10, 0);
INSERT INTO ducklake_snapshot_changes VALUES
    (0, 'created_schema:"main",created_table:"main"."events"', 'strata', 'the archive table', NULL);
INSERT INTO ducklake_schema VALUES (0, gen_random_uuid(), 0, NULL, 'main', '', true);
-- Paths are relative to `data_path` (the archiver records the cold store's
-- root there): a file's path is its object key, `events/project_id=…`.
INSERT INTO ducklake_table VALUES (1, gen_random_uuid(), 0, NULL, 0, 'events', '', true);
INSERT INTO ducklake_column (column_id, begin_snapshot, table_id, column_order, column_name, column_type,
                             default_value, nulls_allowed, default_value_type, default_value_dialect) VALUES
    (1, 0, 1, 1, 'project_id', 'int64', 'NULL', false, 'literal', 'duckdb'),
    (2, 0, 1, 2, 'date', 'date', 'NULL', false, 'literal', 'duckdb'),
    (3, 0, 1, 3, 'event_id', 'varchar', 'NULL', false, 'literal', 'duckdb'),
    (4, 0, 1, 4, 'user_id', 'varchar', 'NULL', false, 'literal', 'duckdb'),
    (5, 0, 1, 5, 'event_type', 'varchar', 'NULL', false, 'literal', 'duckdb'),
    (6, 0, 1, 6, 'ts', 'timestamptz', 'NULL', false, 'literal', 'duckdb'),
    (7, 0, 1, 7, 'properties', 'varchar', 'NULL', true, 'literal', 'duckdb'),
    (8, 0, 1, 8, 'received_at', 'timestamptz', 'NULL', false, 'literal', 'duckdb');
INSERT INTO ducklake_schema_versions VALUES (0, 0, 1);
INSERT INTO ducklake_partition_info VALUES (9, 1, 0, NULL);
INSERT INTO ducklake_partition_column VALUES (9, 1, 0, 1, 'identity'), (9, 1, 1, 2, 'identity');
INSERT INTO ducklake_column_mapping VALUES (0, 1, 'map_by_name');
INSERT INTO ducklake_name_mapping VALUES
    (0, 0, 'event_id', 3, NULL, false), (0, 1, 'user_id', 4, NULL, false),
    (0, 2, 'event_type', 5, NULL, false), (0, 3, 'ts', 6, NULL, false),
    (0, 4, 'properties', 7, NULL, false), (0, 5, 'received_at', 8, NULL, false),
    (0, 6, 'date', 2, NULL, true), (0, 7, 'project_id', 1, NULL, true);
INSERT INTO ducklake_table_stats VALUES (1, 0, 0, 0);

RESET search_path;

-- Replaced objects waiting for deletion know their project and day, so that
-- an erasure can take over those of the days it rewrites (ADR-041).
ALTER TABLE cold_deletes ADD COLUMN IF NOT EXISTS project_id bigint, ADD COLUMN IF NOT EXISTS day date;
CREATE INDEX IF NOT EXISTS cold_deletes_day ON cold_deletes (project_id, day);

-- Each run's time in archive commits, and the lake catalog's part of it
-- (`make bench` reports the ratio).
ALTER TABLE archive_runs
    ADD COLUMN IF NOT EXISTS commit_seconds double precision NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS lake_seconds double precision NOT NULL DEFAULT 0;
