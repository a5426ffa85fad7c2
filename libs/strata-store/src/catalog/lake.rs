//! The archive published as a DuckLake table (ADR-041): schema
//! `strata_lake` holds the catalog tables of the DuckLake 1.0
//! specification, written only here and only inside the transactions that
//! change `cold_files` (the archive commit, a swap, a retention expiry), so
//! that every snapshot a reader sees is a state of the manifest.
//!
//! One table, `main.events`: the archive's six file columns and its two
//! Hive partition columns, `project_id` and `date`, by which the table is
//! partitioned. A data file's path is its object key, relative to the
//! catalog's `data_path` (the cold store's root, set by the archiver): the
//! files are registered where they are, never copied. A file added in
//! snapshot `b` and replaced or expired in snapshot `e` is visible in the
//! snapshots `b <= s < e`.
//!
//! History: [`Store::expire_lake`] drops the snapshots older than the
//! configured history (never the latest) and, for an erasure whose replaced
//! objects are due for deletion, every snapshot before the one that replaced
//! them; then it forgets the files that no remaining snapshot shows. An
//! object is deleted only once the catalog no longer lists it
//! ([`Store::due_deletes`]).

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use strata_model::ColumnStats;

use crate::catalog::manifest::NewManifestEntry;
use crate::{Store, StoreError};

/// The table, its partition spec and its name mapping (the migration
/// creates them in snapshot 0).
const TABLE_ID: i64 = 1;
const PARTITION_ID: i64 = 9;
const MAPPING_ID: i64 = 0;

/// The table's columns and their ids.
const COLUMN_IDS: [(&str, i64); 8] = [
    ("project_id", 1),
    ("date", 2),
    ("event_id", 3),
    ("user_id", 4),
    ("event_type", 5),
    ("ts", 6),
    ("properties", 7),
    ("received_at", 8),
];

fn column_id(name: &str) -> Option<i64> {
    COLUMN_IDS.iter().find(|c| c.0 == name).map(|c| c.1)
}

/// What [`Store::expire_lake`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LakeExpiry {
    pub snapshots: u64,
    pub files: u64,
}

/// What [`Store::sync_lake`] found and mended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LakeSync {
    /// Manifest files the catalog did not show, now added.
    pub added: u64,
    /// Files the catalog showed that the manifest no longer lists, now ended.
    pub ended: u64,
}

/// Records, inside the manifest's transaction `tx`, the catalog's next
/// snapshot: `added` files begin in it, the live files at the object keys
/// `removed` end in it. Nothing when both are empty. Returns the snapshot.
pub(crate) async fn commit(
    tx: &mut PgConnection,
    added: &[NewManifestEntry],
    removed: &[String],
    message: &str,
) -> Result<Option<i64>, StoreError> {
    if added.is_empty() && removed.is_empty() {
        return Ok(None);
    }
    // One writer at a time (snapshot ids are consecutive); readers' plain
    // SELECTs are not blocked, and see the snapshot whole or not at all.
    sqlx::query("LOCK TABLE strata_lake.ducklake_snapshot IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let (last, schema_version, next_catalog_id, next_file_id): (i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT snapshot_id, schema_version, next_catalog_id, next_file_id
               FROM strata_lake.ducklake_snapshot ORDER BY snapshot_id DESC LIMIT 1",
        )
        .fetch_one(&mut *tx)
        .await?;
    let snapshot = last + 1;
    let (ended, ended_rows, ended_bytes): (i64, i64, i64) = sqlx::query_as(
        "WITH e AS (
             UPDATE strata_lake.ducklake_data_file SET end_snapshot = $1
              WHERE end_snapshot IS NULL AND table_id = $3 AND path = ANY($2)
             RETURNING record_count, file_size_bytes)
         SELECT count(*), coalesce(sum(record_count), 0)::int8,
                coalesce(sum(file_size_bytes), 0)::int8 FROM e",
    )
    .bind(snapshot)
    .bind(removed)
    .bind(TABLE_ID)
    .fetch_one(&mut *tx)
    .await?;
    let next_row_id: i64 = sqlx::query_scalar(
        "SELECT next_row_id FROM strata_lake.ducklake_table_stats WHERE table_id = $1",
    )
    .bind(TABLE_ID)
    .fetch_one(&mut *tx)
    .await?;
    insert_files(tx, snapshot, next_file_id, next_row_id, added).await?;
    let added_rows: i64 = added.iter().map(|f| f.rows).sum();
    let added_bytes: i64 = added.iter().map(|f| f.bytes).sum();
    sqlx::query(
        "UPDATE strata_lake.ducklake_table_stats
            SET record_count = record_count + $2, next_row_id = next_row_id + $3,
                file_size_bytes = file_size_bytes + $4
          WHERE table_id = $1",
    )
    .bind(TABLE_ID)
    .bind(added_rows - ended_rows)
    .bind(added_rows)
    .bind(added_bytes - ended_bytes)
    .execute(&mut *tx)
    .await?;
    let mut changes = Vec::new();
    if !added.is_empty() {
        changes.push(format!("inserted_into_table:{TABLE_ID}"));
    }
    if ended > 0 {
        changes.push(format!("deleted_from_table:{TABLE_ID}"));
    }
    sqlx::query(
        "INSERT INTO strata_lake.ducklake_snapshot
             (snapshot_id, snapshot_time, schema_version, next_catalog_id, next_file_id)
         VALUES ($1, now(), $2, $3, $4)",
    )
    .bind(snapshot)
    .bind(schema_version)
    .bind(next_catalog_id)
    .bind(next_file_id + added.len() as i64)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO strata_lake.ducklake_snapshot_changes
             (snapshot_id, changes_made, author, commit_message)
         VALUES ($1, $2, 'strata', $3)",
    )
    .bind(snapshot)
    .bind(changes.join(","))
    .bind(message)
    .execute(&mut *tx)
    .await?;
    Ok(Some(snapshot))
}

/// The data file rows of `files` (ids from `first_id`, row ids from
/// `first_row`), their partition values and their column statistics.
async fn insert_files(
    tx: &mut PgConnection,
    snapshot: i64,
    first_id: i64,
    first_row: i64,
    files: &[NewManifestEntry],
) -> Result<(), StoreError> {
    if files.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = (first_id..).take(files.len()).collect();
    let mut row_starts = Vec::with_capacity(files.len());
    let mut next = first_row;
    for f in files {
        row_starts.push(next);
        next += f.rows;
    }
    let paths: Vec<&str> = files.iter().map(|f| f.object_key.as_str()).collect();
    let rows: Vec<i64> = files.iter().map(|f| f.rows).collect();
    let bytes: Vec<i64> = files.iter().map(|f| f.bytes).collect();
    sqlx::query(
        "INSERT INTO strata_lake.ducklake_data_file
             (data_file_id, table_id, begin_snapshot, path, path_is_relative, file_format,
              record_count, file_size_bytes, row_id_start, partition_id, mapping_id)
         SELECT id, $2, $3, path, true, 'parquet', n, b, r, $4, $5
           FROM unnest($1::int8[], $6::text[], $7::int8[], $8::int8[], $9::int8[])
                AS f (id, path, n, b, r)",
    )
    .bind(&ids)
    .bind(TABLE_ID)
    .bind(snapshot)
    .bind(PARTITION_ID)
    .bind(MAPPING_ID)
    .bind(&paths)
    .bind(&rows)
    .bind(&bytes)
    .bind(&row_starts)
    .execute(&mut *tx)
    .await?;
    let (mut pv_ids, mut pv_index, mut pv_values) = (Vec::new(), Vec::new(), Vec::new());
    let mut stats = StatRows::default();
    for (f, id) in files.iter().zip(&ids) {
        let date = f.day.format("%Y-%m-%d").to_string();
        for (index, value) in [f.project_id.to_string(), date.clone()]
            .into_iter()
            .enumerate()
        {
            pv_ids.push(*id);
            pv_index.push(index as i64);
            pv_values.push(value.clone());
            // A partition column holds one value in the whole file.
            stats.push(
                *id,
                index as i64 + 1,
                &ColumnStats {
                    column: String::new(),
                    bytes: 0,
                    values: f.rows,
                    nulls: 0,
                    min: Some(value.clone()),
                    max: Some(value),
                },
            );
        }
        for c in &f.columns {
            if let Some(column) = column_id(&c.column) {
                stats.push(*id, column, c);
            }
        }
    }
    sqlx::query(
        "INSERT INTO strata_lake.ducklake_file_partition_value
             (data_file_id, table_id, partition_key_index, partition_value)
         SELECT id, $2, i, v FROM unnest($1::int8[], $3::int8[], $4::text[]) AS p (id, i, v)",
    )
    .bind(&pv_ids)
    .bind(TABLE_ID)
    .bind(&pv_index)
    .bind(&pv_values)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO strata_lake.ducklake_file_column_stats
             (data_file_id, table_id, column_id, column_size_bytes, value_count, null_count,
              min_value, max_value)
         SELECT id, $2, c, b, v, n, lo, hi
           FROM unnest($1::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[],
                       $7::text[], $8::text[]) AS s (id, c, b, v, n, lo, hi)",
    )
    .bind(&stats.ids)
    .bind(TABLE_ID)
    .bind(&stats.columns)
    .bind(&stats.bytes)
    .bind(&stats.values)
    .bind(&stats.nulls)
    .bind(&stats.mins)
    .bind(&stats.maxs)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// `ducklake_file_column_stats` rows, column-wise for `unnest`.
#[derive(Default)]
struct StatRows {
    ids: Vec<i64>,
    columns: Vec<i64>,
    bytes: Vec<i64>,
    values: Vec<i64>,
    nulls: Vec<i64>,
    mins: Vec<Option<String>>,
    maxs: Vec<Option<String>>,
}

impl StatRows {
    fn push(&mut self, id: i64, column: i64, c: &ColumnStats) {
        self.ids.push(id);
        self.columns.push(column);
        self.bytes.push(c.bytes);
        self.values.push(c.values);
        self.nulls.push(c.nulls);
        self.mins.push(c.min.clone());
        self.maxs.push(c.max.clone());
    }
}

impl Store {
    /// The manifest's files that the catalog's latest snapshot does not
    /// show (a deployment from before the catalog, or a catalog restored
    /// from elsewhere), without their column statistics: what
    /// [`Store::sync_lake`] adds once the caller has read them.
    pub async fn unpublished_files(&self) -> Result<Vec<NewManifestEntry>, StoreError> {
        type Row = (
            i64,
            NaiveDate,
            i32,
            String,
            i64,
            i64,
            DateTime<Utc>,
            DateTime<Utc>,
            String,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT project_id, day, seq, object_key, rows, bytes, min_ts, max_ts, checksum
               FROM cold_files c
              WHERE NOT EXISTS (SELECT 1 FROM strata_lake.ducklake_data_file f
                                 WHERE f.path = c.object_key AND f.end_snapshot IS NULL)
              ORDER BY project_id, day, seq",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(project_id, day, seq, object_key, rows, bytes, min_ts, max_ts, checksum)| {
                    NewManifestEntry {
                        project_id,
                        day,
                        seq,
                        object_key,
                        rows,
                        bytes,
                        min_ts,
                        max_ts,
                        checksum,
                        // The caller reads them from the file's footer.
                        columns: Vec::new(),
                    }
                },
            )
            .collect())
    }

    /// Makes the catalog's latest snapshot show exactly the manifest, in
    /// one snapshot (none when it already does): adds `files` (from
    /// [`Store::unpublished_files`], with their footers' statistics) that the
    /// manifest still lists and the catalog still lacks, and ends the
    /// catalog's files that the manifest no longer lists. Also records the
    /// cold store's root as the catalog's `data_path`.
    pub async fn sync_lake(
        &self,
        files: &[NewManifestEntry],
        data_path: &str,
    ) -> Result<LakeSync, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE strata_lake.ducklake_snapshot IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "MERGE INTO strata_lake.ducklake_metadata m
             USING (SELECT 'data_path' AS key, $1::text AS value) v
                ON m.key = v.key AND m.scope IS NULL
             WHEN MATCHED AND m.value <> v.value THEN UPDATE SET value = v.value
             WHEN NOT MATCHED THEN INSERT (key, value) VALUES (v.key, v.value)",
        )
        .bind(data_path)
        .execute(&mut *tx)
        .await?;
        // Rechecked under the lock: only files still listed and still absent.
        let keys: Vec<&str> = files.iter().map(|f| f.object_key.as_str()).collect();
        let missing: HashSet<String> = sqlx::query_scalar(
            "SELECT object_key FROM cold_files c
              WHERE object_key = ANY($1)
                AND NOT EXISTS (SELECT 1 FROM strata_lake.ducklake_data_file f
                                 WHERE f.path = c.object_key AND f.end_snapshot IS NULL)",
        )
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let add: Vec<NewManifestEntry> = files
            .iter()
            .filter(|f| missing.contains(&f.object_key))
            .cloned()
            .collect();
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT path FROM strata_lake.ducklake_data_file f
              WHERE end_snapshot IS NULL
                AND NOT EXISTS (SELECT 1 FROM cold_files c WHERE c.object_key = f.path)",
        )
        .fetch_all(&mut *tx)
        .await?;
        commit(&mut tx, &add, &stale, "published the manifest's files").await?;
        tx.commit().await?;
        Ok(LakeSync {
            added: add.len() as u64,
            ended: stale.len() as u64,
        })
    }

    /// Expires the catalog's snapshots older than `history` (never the
    /// latest) and, for each erasure whose replaced objects are due for
    /// deletion, every snapshot before the one that replaced them; then
    /// forgets the files no remaining snapshot shows, so that their objects
    /// may be deleted.
    pub async fn expire_lake(&self, history: Duration) -> Result<LakeExpiry, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE strata_lake.ducklake_snapshot IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let keep_from: i64 = sqlx::query_scalar(
            "SELECT greatest(
                 coalesce((SELECT min(snapshot_id) FROM strata_lake.ducklake_snapshot
                            WHERE snapshot_time >= now() - make_interval(secs => $1)),
                          (SELECT max(snapshot_id) FROM strata_lake.ducklake_snapshot)),
                 (SELECT max(f.end_snapshot)
                    FROM cold_deletes d
                    JOIN strata_lake.ducklake_data_file f ON f.path = d.object_key
                   WHERE d.erasure_id IS NOT NULL AND d.delete_after <= now()))",
        )
        .bind(history.as_secs_f64())
        .fetch_one(&mut *tx)
        .await?;
        let snapshots =
            sqlx::query("DELETE FROM strata_lake.ducklake_snapshot WHERE snapshot_id < $1")
                .bind(keep_from)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        sqlx::query("DELETE FROM strata_lake.ducklake_snapshot_changes WHERE snapshot_id < $1")
            .bind(keep_from)
            .execute(&mut *tx)
            .await?;
        let gone: Vec<i64> = sqlx::query_scalar(
            "DELETE FROM strata_lake.ducklake_data_file WHERE end_snapshot <= $1
             RETURNING data_file_id",
        )
        .bind(keep_from)
        .fetch_all(&mut *tx)
        .await?;
        for table in [
            "ducklake_file_column_stats",
            "ducklake_file_partition_value",
        ] {
            sqlx::query(&format!(
                "DELETE FROM strata_lake.{table} WHERE data_file_id = ANY($1)"
            ))
            .bind(&gone)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(LakeExpiry {
            snapshots,
            files: gone.len() as u64,
        })
    }

    /// The ids of the catalog's snapshots, oldest first.
    pub async fn lake_snapshot_ids(&self) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT snapshot_id FROM strata_lake.ducklake_snapshot ORDER BY snapshot_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
