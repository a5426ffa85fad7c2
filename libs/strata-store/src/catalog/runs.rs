//! The archive job's history and lease: `archive_runs`,
//! `archive_chunk_results` and `archive_lease`. This module owns the three
//! tables; the archiver writes through it and the admin views read through
//! it.
//!
//! The lease (one row) names the run that owns the archive job. A run takes
//! it after taking the archiver's session lock; the archive commit reads it
//! `FOR SHARE` and commits nothing unless it still names its own run, so a
//! run that lost its lock session (and was succeeded) is fenced off.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

use crate::{Store, StoreError};

/// One archive run as the history records it (and the admin API shows it).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct RunRecord {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: String,
    pub cutoff: DateTime<Utc>,
    pub chunks_total: i32,
    pub chunks_moved: i32,
    pub chunks_failed: i32,
    pub rows_moved: i64,
    pub bytes_written: i64,
    pub orphans_removed: i32,
    /// Cold files and rows (of both tiers) the retention policies expired.
    pub expired_files: i32,
    pub expired_rows: i64,
    /// Erasures finished (ADR-032).
    pub erasures_done: i32,
    /// Days compacted, and the files they had before (ADR-033).
    pub compacted_days: i32,
    pub compacted_files: i32,
    pub error: Option<String>,
}

/// One chunk's outcome within a run.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct ChunkRecord {
    /// Shown nested under its run.
    #[serde(skip)]
    pub run_id: i64,
    pub chunk: String,
    pub day: NaiveDate,
    /// `archived` or `failed`.
    pub status: String,
    pub files: i32,
    pub rows: i64,
    pub bytes: i64,
    pub seconds: f64,
    pub error: Option<String>,
}

/// What a finished run adds up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunTotals {
    pub chunks_total: i32,
    pub chunks_moved: i32,
    pub chunks_failed: i32,
    pub rows: i64,
    pub bytes: i64,
    pub orphans_removed: i32,
    pub expired_files: i32,
    pub expired_rows: i64,
    pub erasures_done: i32,
    pub compacted_days: i32,
    pub compacted_files: i32,
    pub error: Option<String>,
}

/// The run history.
#[derive(Debug, Clone, Copy)]
pub struct RunLog<'a> {
    hot: &'a Store,
}

impl Store {
    pub fn runs(&self) -> RunLog<'_> {
        RunLog { hot: self }
    }
}

impl RunLog<'_> {
    /// This database's deployment id (ADR-037): what the cold store's owner
    /// marker must name.
    pub async fn deployment(&self) -> Result<uuid::Uuid, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM deployment")
            .fetch_one(&self.hot.pool)
            .await?)
    }

    /// The runs this database recorded, below `before` (object keys name
    /// their run: the sweep deletes unlisted objects of these runs only).
    pub async fn ids_before(&self, before: i64) -> Result<HashSet<i64>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM archive_runs WHERE id < $1")
            .bind(before)
            .fetch_all(&self.hot.pool)
            .await?;
        Ok(ids.into_iter().collect())
    }

    /// Records a new run, with an id above `above` (the highest run named
    /// by any object in the cold store: after a restore of an older
    /// backup, run ids the lost history used are never issued again, so
    /// no new object can take the key of an existing one). The caller holds
    /// the archiver lock, so a run still marked running is one whose
    /// process died: it is marked failed.
    pub async fn start(&self, cutoff: DateTime<Utc>, above: i64) -> Result<i64, StoreError> {
        let pool = &self.hot.pool;
        let advanced: Option<i64> = sqlx::query_scalar(
            "SELECT setval(s::regclass, $1) FROM pg_get_serial_sequence('archive_runs', 'id') AS s
              WHERE $1 > coalesce(pg_sequence_last_value(s::regclass), 0)",
        )
        .bind(above)
        .fetch_optional(pool)
        .await?;
        if let Some(to) = advanced {
            tracing::warn!(
                to,
                "the cold store holds objects of runs this database never issued \
                 (a restore older than the cold tier?); run ids continue above them"
            );
        }
        sqlx::query(
            "UPDATE archive_runs SET status = 'failed', finished_at = now(),
                    error = 'the archiver process died during this run'
              WHERE status = 'running'",
        )
        .execute(pool)
        .await?;
        Ok(sqlx::query_scalar(
            "INSERT INTO archive_runs (status, cutoff) VALUES ('running', $1) RETURNING id",
        )
        .bind(cutoff)
        .fetch_one(pool)
        .await?)
    }

    /// Makes `run_id` the owner of the archive job. Waits for a commit of
    /// the previous owner in flight (it holds the lease row `FOR SHARE`).
    pub async fn take_lease(&self, run_id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO archive_lease (id, run_id) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET run_id = EXCLUDED.run_id, taken_at = now()",
        )
        .bind(run_id)
        .execute(&self.hot.pool)
        .await?;
        Ok(())
    }

    /// `Some(holder)` when another run than `run_id` holds the lease.
    pub async fn lease_holder(&self, run_id: i64) -> Result<Option<i64>, StoreError> {
        let holder: Option<i64> =
            sqlx::query_scalar("SELECT run_id FROM archive_lease WHERE id = 1")
                .fetch_optional(&self.hot.pool)
                .await?;
        Ok(holder.filter(|h| *h != run_id))
    }

    pub async fn record_chunk(&self, c: &ChunkRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO archive_chunk_results (run_id, chunk, day, status, files, rows, bytes, seconds, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(c.run_id)
        .bind(&c.chunk)
        .bind(c.day)
        .bind(&c.status)
        .bind(c.files)
        .bind(c.rows)
        .bind(c.bytes)
        .bind(c.seconds)
        .bind(&c.error)
        .execute(&self.hot.pool)
        .await?;
        Ok(())
    }

    pub async fn finish(&self, run_id: i64, t: &RunTotals) -> Result<(), StoreError> {
        let status = if t.chunks_failed == 0 && t.error.is_none() {
            "succeeded"
        } else {
            "failed"
        };
        sqlx::query(
            "UPDATE archive_runs SET status = $2, finished_at = now(), chunks_total = $3,
                    chunks_moved = $4, chunks_failed = $5, rows_moved = $6, bytes_written = $7,
                    orphans_removed = $8, error = $9, expired_files = $10, expired_rows = $11,
                    erasures_done = $12, compacted_days = $13, compacted_files = $14
              WHERE id = $1",
        )
        .bind(run_id)
        .bind(status)
        .bind(t.chunks_total)
        .bind(t.chunks_moved)
        .bind(t.chunks_failed)
        .bind(t.rows)
        .bind(t.bytes)
        .bind(t.orphans_removed)
        .bind(&t.error)
        .bind(t.expired_files)
        .bind(t.expired_rows)
        .bind(t.erasures_done)
        .bind(t.compacted_days)
        .bind(t.compacted_files)
        .execute(&self.hot.pool)
        .await?;
        Ok(())
    }

    /// The newest `limit` runs, newest first, each with its chunk outcomes.
    pub async fn list(&self, limit: i64) -> Result<Vec<(RunRecord, Vec<ChunkRecord>)>, StoreError> {
        let pool = &self.hot.pool;
        let runs: Vec<RunRecord> = sqlx::query_as(
            "SELECT id, started_at, finished_at, status, cutoff, chunks_total, chunks_moved,
                    chunks_failed, rows_moved, bytes_written, orphans_removed, expired_files,
                    expired_rows, erasures_done, compacted_days, compacted_files, error
               FROM archive_runs ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(pool)
        .await?;
        let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
        let chunks: Vec<ChunkRecord> = sqlx::query_as(
            "SELECT run_id, chunk, day, status, files, rows, bytes, seconds, error
               FROM archive_chunk_results WHERE run_id = ANY($1) ORDER BY run_id, day",
        )
        .bind(&ids)
        .fetch_all(pool)
        .await?;
        Ok(runs
            .into_iter()
            .map(|r| {
                let mine = chunks
                    .iter()
                    .filter(|c| c.run_id == r.id)
                    .cloned()
                    .collect();
                (r, mine)
            })
            .collect())
    }

    /// Runs, rows moved and bytes written per status (`running`,
    /// `succeeded`, `failed`).
    pub async fn by_status(&self) -> Result<Vec<RunsByStatus>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT status, count(*) AS runs, coalesce(sum(rows_moved), 0)::int8 AS rows,
                    coalesce(sum(bytes_written), 0)::int8 AS bytes
               FROM archive_runs GROUP BY status",
        )
        .fetch_all(&self.hot.pool)
        .await?)
    }
}

/// [`RunLog::by_status`].
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RunsByStatus {
    pub status: String,
    pub runs: i64,
    pub rows: i64,
    pub bytes: i64,
}

/// The start of every transaction an archive run commits: waits for locks
/// at most `lock_timeout`, reads the lease (`Ok(Err(holder))`, nothing
/// locked, unless it names `run_id`), then takes `days`' archive locks.
pub(crate) async fn begin_fenced(
    pool: &sqlx::PgPool,
    run_id: i64,
    days: &std::collections::BTreeSet<NaiveDate>,
    lock_timeout: std::time::Duration,
) -> Result<Result<sqlx::Transaction<'static, sqlx::Postgres>, Option<i64>>, StoreError> {
    let mut tx = pool.begin().await?;
    crate::shared::locks::set_lock_timeout(&mut tx, lock_timeout).await?;
    let holder = lease_for_commit(&mut tx).await?;
    if holder != Some(run_id) {
        return Ok(Err(holder));
    }
    crate::shared::locks::lock_days_for_archive(&mut tx, days).await?;
    Ok(Ok(tx))
}

/// Inside the archive commit: the run the lease names, read `FOR SHARE` so
/// that no successor can take it before this transaction ends.
pub(crate) async fn lease_for_commit(tx: &mut PgConnection) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT run_id FROM archive_lease WHERE id = 1 FOR SHARE")
            .fetch_optional(tx)
            .await?,
    )
}

/// The archiver's session lock ([`crate::shared::locks::ARCHIVER`]) on a connection
/// of its own, outside the pool: held until [`ArchiverSession::release`], or
/// until the process dies and PostgreSQL ends the session.
#[derive(Debug)]
pub struct ArchiverSession(PgConnection);

impl ArchiverSession {
    /// Releases the lock, then ends the session. The explicit unlock
    /// matters: PostgreSQL ends a closed session's backend (and frees its
    /// locks) after the client has moved on, so an archiver started right
    /// after this one would otherwise find the lock still held.
    pub async fn release(mut self) {
        use sqlx::Connection;
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(crate::shared::locks::ARCHIVER)
            .execute(&mut self.0)
            .await;
        let _ = self.0.close().await;
    }
}

impl Store {
    /// Takes the archiver lock, or `None` when another archiver holds it.
    pub async fn archiver_session(&self) -> Result<Option<ArchiverSession>, StoreError> {
        let mut conn = self.pool.acquire().await?.detach();
        if crate::shared::locks::try_session_lock(&mut conn, crate::shared::locks::ARCHIVER).await?
        {
            Ok(Some(ArchiverSession(conn)))
        } else {
            use sqlx::Connection;
            let _ = conn.close().await;
            Ok(None)
        }
    }
}
