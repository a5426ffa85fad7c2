//! The cold tier's manifest: `cold_files`, one row per committed Parquet
//! object. This module owns the table; a cold object exists for readers
//! exactly when its row does (rows are inserted in the archive commit, in
//! the same transaction that drops the hot chunk).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use strata_model::{ColumnStats, ProjectId};

use crate::{Store, StoreError};

/// One committed cold file, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ManifestEntry {
    pub day: NaiveDate,
    pub object_key: String,
    pub rows: i64,
    pub bytes: i64,
}

/// A file to record in the archive commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewManifestEntry {
    pub project_id: i64,
    pub day: NaiveDate,
    /// Files of this project and day committed before it.
    pub seq: i32,
    pub object_key: String,
    pub rows: i64,
    pub bytes: i64,
    pub min_ts: DateTime<Utc>,
    pub max_ts: DateTime<Utc>,
    /// Hex of the file's id checksum.
    pub checksum: String,
    /// What its footer says about each column (published in the lake
    /// catalog, `lake.rs`).
    pub columns: Vec<ColumnStats>,
}

/// Files, rows and bytes of the manifest (or of one project's part).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManifestTotals {
    pub files: i64,
    pub rows: i64,
    pub bytes: i64,
}

/// One project's part of the manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct ProjectManifest {
    pub project_id: i64,
    pub days: i64,
    pub files: i64,
    pub rows: i64,
    pub bytes: i64,
    /// The most files any one day has, and the days with more than one
    /// (what compaction reduces).
    pub max_files_per_day: i64,
    pub days_with_several_files: i64,
}

/// The manifest, read outside any stats snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Manifest<'a> {
    hot: &'a Store,
}

impl Store {
    pub fn manifest(&self) -> Manifest<'_> {
        Manifest { hot: self }
    }
}

impl Manifest<'_> {
    /// Which of `keys` the manifest lists now.
    pub async fn listed(&self, keys: &[String]) -> Result<HashSet<String>, StoreError> {
        let listed: Vec<String> =
            sqlx::query_scalar("SELECT object_key FROM cold_files WHERE object_key = ANY($1)")
                .bind(keys)
                .fetch_all(&self.hot.pool)
                .await?;
        Ok(listed.into_iter().collect())
    }

    /// Every object key the orphan sweep keeps: the committed files, and
    /// the replaced ones waiting out their grace period (`cold_deletes`,
    /// deleted by [`Store::due_deletes`]'s caller).
    pub async fn kept_keys(&self) -> Result<HashSet<String>, StoreError> {
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT object_key FROM cold_files UNION SELECT object_key FROM cold_deletes",
        )
        .fetch_all(&self.hot.pool)
        .await?;
        Ok(keys.into_iter().collect())
    }

    /// Per project, one more than the highest seq committed for `day` (a
    /// rewrite replaces files with higher seqs, so not their count): the
    /// next file of that project and day takes this sequence number.
    pub async fn next_seqs(&self, day: NaiveDate) -> Result<BTreeMap<i64, i32>, StoreError> {
        let rows: Vec<(i64, i32)> = sqlx::query_as(
            "SELECT project_id, max(seq) + 1 FROM cold_files WHERE day = $1 GROUP BY project_id",
        )
        .bind(day)
        .fetch_all(&self.hot.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Files, rows and bytes of every project, or of `project`.
    pub async fn totals(&self, project: Option<ProjectId>) -> Result<ManifestTotals, StoreError> {
        let (files, rows, bytes) = sqlx::query_as(
            "SELECT count(*)::int8, coalesce(sum(rows), 0)::int8, coalesce(sum(bytes), 0)::int8
               FROM cold_files WHERE $1::int8 IS NULL OR project_id = $1",
        )
        .bind(project.map(|p| p.0))
        .fetch_one(&self.hot.pool)
        .await?;
        Ok(ManifestTotals { files, rows, bytes })
    }

    /// The files of every (project, day) with days in `[from, to]` (each
    /// bound optional; of `project`, or of every project), ordered by
    /// project, day and seq.
    pub async fn days(
        &self,
        project: Option<ProjectId>,
        (from, to): (Option<NaiveDate>, Option<NaiveDate>),
    ) -> Result<Vec<(i64, ManifestEntry)>, StoreError> {
        let rows: Vec<(i64, NaiveDate, String, i64, i64)> = sqlx::query_as(
            "SELECT project_id, day, object_key, rows, bytes FROM cold_files
              WHERE ($1::int8 IS NULL OR project_id = $1)
                AND ($2::date IS NULL OR day >= $2) AND ($3::date IS NULL OR day <= $3)
              ORDER BY project_id, day, seq",
        )
        .bind(project.map(|p| p.0))
        .bind(from)
        .bind(to)
        .fetch_all(&self.hot.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(p, day, object_key, rows, bytes)| {
                (
                    p,
                    ManifestEntry {
                        day,
                        object_key,
                        rows,
                        bytes,
                    },
                )
            })
            .collect())
    }

    /// Each project's days, files, rows and bytes.
    pub(crate) async fn per_project(&self) -> Result<Vec<ProjectManifest>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT project_id, count(*) AS days, sum(n)::int8 AS files,
                    sum(r)::int8 AS rows, sum(b)::int8 AS bytes, max(n) AS max_files_per_day,
                    count(*) FILTER (WHERE n > 1) AS days_with_several_files
               FROM (SELECT project_id, day, count(*) AS n, sum(rows) AS r, sum(bytes) AS b
                       FROM cold_files GROUP BY 1, 2) d
              GROUP BY project_id",
        )
        .fetch_all(&self.hot.pool)
        .await?)
    }
}

/// The project's files for days in `[from, to]`, inside a stats snapshot.
pub(crate) async fn files_for_days(
    conn: &mut PgConnection,
    project: ProjectId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<ManifestEntry>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT day, object_key, rows, bytes FROM cold_files
          WHERE project_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day, seq",
    )
    .bind(project.0)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?)
}

/// Records `files` as written by archive run `run_id` (inside its commit).
pub(crate) async fn insert_files(
    tx: &mut PgConnection,
    run_id: i64,
    files: &[NewManifestEntry],
) -> Result<(), StoreError> {
    for f in files {
        sqlx::query(
            "INSERT INTO cold_files (project_id, day, seq, object_key, rows, bytes, min_ts, max_ts, checksum, run_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(f.project_id)
        .bind(f.day)
        .bind(f.seq)
        .bind(&f.object_key)
        .bind(f.rows)
        .bind(f.bytes)
        .bind(f.min_ts)
        .bind(f.max_ts)
        .bind(&f.checksum)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
