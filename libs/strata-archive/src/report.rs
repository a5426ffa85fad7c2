//! What an archive run reports back: per chunk, and per run.

use chrono::{DateTime, Utc};
use strata_cold::WrittenFile;
use strata_store::catalog::runs::{ChunkRecord, RunTotals};

/// What happened to one chunk.
#[derive(Debug, Clone)]
pub enum ChunkOutcome {
    Archived {
        files: Vec<WrittenFile>,
        /// Most record batches alive at once between reader and writer.
        max_batches_in_flight: usize,
    },
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct ChunkReport {
    pub chunk: String,
    pub day: chrono::NaiveDate,
    pub seconds: f64,
    pub outcome: ChunkOutcome,
}

impl ChunkReport {
    pub fn rows(&self) -> u64 {
        match &self.outcome {
            ChunkOutcome::Archived { files, .. } => files.iter().map(|f| f.rows).sum(),
            ChunkOutcome::Failed(_) => 0,
        }
    }

    pub fn bytes(&self) -> u64 {
        match &self.outcome {
            ChunkOutcome::Archived { files, .. } => files.iter().map(|f| f.bytes).sum(),
            ChunkOutcome::Failed(_) => 0,
        }
    }

    /// The row of the run history.
    pub(crate) fn record(&self, run_id: i64) -> ChunkRecord {
        let (status, files, error) = match &self.outcome {
            ChunkOutcome::Archived { files, .. } => ("archived", files.len() as i32, None),
            ChunkOutcome::Failed(e) => ("failed", 0, Some(e.clone())),
        };
        ChunkRecord {
            run_id,
            chunk: self.chunk.clone(),
            day: self.day,
            status: status.to_owned(),
            files,
            rows: self.rows() as i64,
            bytes: self.bytes() as i64,
            seconds: self.seconds,
            error,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub run_id: i64,
    pub cutoff: DateTime<Utc>,
    pub orphans_removed: usize,
    pub chunks: Vec<ChunkReport>,
    /// Eligible chunks not attempted because the object store failed.
    pub not_attempted: Vec<String>,
    /// What stopped the run early, if anything.
    pub error: Option<String>,
    /// Closed hot days sealed after the moves (ADR-028).
    pub sealed: strata_store::SealReport,
    /// What the retention policies expired before the moves (ADR-031).
    pub expired: Box<strata_store::Expired>,
    /// Erasures finished before the moves (ADR-032).
    pub erasures: Vec<ErasureReport>,
    /// Days compacted after the moves (ADR-033).
    pub compacted: Vec<CompactionReport>,
}

/// One erasure finished by a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureReport {
    pub erasure_id: i64,
    /// Cold days looked at, and of them the ones rewritten.
    pub days: usize,
    pub days_rewritten: usize,
    pub files_rewritten: usize,
    pub cold_rows: i64,
    pub hot_rows: i64,
    /// Rows read and written again by the rewrites.
    pub rows_rewritten: u64,
}

/// One day compacted by a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    pub project_id: i64,
    pub day: chrono::NaiveDate,
    pub files_before: usize,
    pub rows: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl RunReport {
    /// Every eligible chunk moved.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
            && self.not_attempted.is_empty()
            && self
                .chunks
                .iter()
                .all(|c| matches!(c.outcome, ChunkOutcome::Archived { .. }))
    }

    /// The run history's totals, `eligible` chunks having been planned.
    pub(crate) fn totals(&self, eligible: usize) -> RunTotals {
        let moved = self
            .chunks
            .iter()
            .filter(|c| matches!(c.outcome, ChunkOutcome::Archived { .. }))
            .count();
        RunTotals {
            chunks_total: eligible as i32,
            chunks_moved: moved as i32,
            chunks_failed: (eligible - moved) as i32,
            rows: self.chunks.iter().map(|c| c.rows() as i64).sum(),
            bytes: self.chunks.iter().map(|c| c.bytes() as i64).sum(),
            orphans_removed: self.orphans_removed as i32,
            expired_files: self.expired.object_keys.len() as i32,
            expired_rows: self.expired.cold_rows + self.expired.hot_rows,
            erasures_done: self.erasures.len() as i32,
            compacted_days: self.compacted.len() as i32,
            compacted_files: self.compacted.iter().map(|c| c.files_before as i32).sum(),
            error: self.error.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum RunOutcome {
    /// Another archiver holds the lock; nothing was done.
    Skipped,
    Completed(RunReport),
}
