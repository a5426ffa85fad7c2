//! Run history in PostgreSQL (`archive_runs`, `archive_chunk_results`), for
//! operators and the admin views.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;

use crate::ArchiveError;
use crate::job::{ChunkOutcome, ChunkReport};

pub(crate) async fn start_run(pool: &PgPool, cutoff: DateTime<Utc>) -> Result<i64, ArchiveError> {
    // We hold the archiver lock, so a run still marked running is one whose
    // process died.
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

/// Makes `run_id` the owner of the archive job (see the `archive_lease`
/// migration). Waits for a commit of the previous owner in flight.
pub(crate) async fn take_lease(pool: &PgPool, run_id: i64) -> Result<(), ArchiveError> {
    sqlx::query(
        "INSERT INTO archive_lease (id, run_id) VALUES (1, $1)
         ON CONFLICT (id) DO UPDATE SET run_id = EXCLUDED.run_id, taken_at = now()",
    )
    .bind(run_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// `Some(holder)` when another run than `run_id` holds the archive lease.
pub(crate) async fn lease_holder(pool: &PgPool, run_id: i64) -> Result<Option<i64>, ArchiveError> {
    let holder: Option<i64> = sqlx::query_scalar("SELECT run_id FROM archive_lease WHERE id = 1")
        .fetch_optional(pool)
        .await?;
    Ok(holder.filter(|h| *h != run_id))
}

pub(crate) async fn record_chunk(
    pool: &PgPool,
    run_id: i64,
    day: NaiveDate,
    report: &ChunkReport,
) -> Result<(), ArchiveError> {
    let (status, files, error) = match &report.outcome {
        ChunkOutcome::Archived { files, .. } => ("archived", files.len() as i32, None),
        ChunkOutcome::Failed(e) => ("failed", 0, Some(e.clone())),
    };
    let (rows, bytes) = (report.rows() as i64, report.bytes() as i64);
    sqlx::query(
        "INSERT INTO archive_chunk_results (run_id, chunk, day, status, files, rows, bytes, seconds, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(run_id)
    .bind(&report.chunk)
    .bind(day)
    .bind(status)
    .bind(files)
    .bind(rows)
    .bind(bytes)
    .bind(report.seconds)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) struct RunTotals {
    pub chunks_total: i32,
    pub chunks_moved: i32,
    pub chunks_failed: i32,
    pub rows: i64,
    pub bytes: i64,
    pub orphans_removed: i32,
    pub error: Option<String>,
}

pub(crate) async fn finish_run(
    pool: &PgPool,
    run_id: i64,
    t: &RunTotals,
) -> Result<(), ArchiveError> {
    let status = if t.chunks_failed == 0 && t.error.is_none() {
        "succeeded"
    } else {
        "failed"
    };
    sqlx::query(
        "UPDATE archive_runs SET status = $2, finished_at = now(), chunks_total = $3,
                chunks_moved = $4, chunks_failed = $5, rows_moved = $6, bytes_written = $7,
                orphans_removed = $8, error = $9
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
    .execute(pool)
    .await?;
    Ok(())
}

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
    pub status: String,
    pub files: i32,
    pub rows: i64,
    pub bytes: i64,
    pub seconds: f64,
    pub error: Option<String>,
}

/// The newest `limit` runs, newest first, each with its chunk outcomes.
pub async fn list_runs(
    pool: &PgPool,
    limit: i64,
) -> Result<Vec<(RunRecord, Vec<ChunkRecord>)>, ArchiveError> {
    let runs: Vec<RunRecord> = sqlx::query_as(
        "SELECT id, started_at, finished_at, status, cutoff, chunks_total, chunks_moved,
                chunks_failed, rows_moved, bytes_written, orphans_removed, error
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
