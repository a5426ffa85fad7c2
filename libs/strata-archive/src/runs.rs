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
