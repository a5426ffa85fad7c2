//! The archive job: every hot chunk that ends before `now - hot_retention`
//! is streamed out of PostgreSQL into one Parquet file per project, read
//! back and verified, then committed — manifest rows inserted and the chunk
//! dropped in one PostgreSQL transaction, the only commit point.
//!
//! Crash safety: an object key names its run (`part-<seq>-r<run>`, `seq`
//! one more than the highest committed for that project and day), so no
//! run overwrites what another committed; and each run first deletes
//! objects the manifest does not list (orphans of crashed runs). One
//! archiver runs at a time, under a PostgreSQL advisory lock.
//!
//! The same run also enforces retention policies (`expire.rs`), erases
//! users (`erase.rs`) and compacts days with many small files
//! (`compact.rs`): each rewrite is written and verified before a fenced
//! transaction swaps it into the manifest.

mod commit;
mod compact;
mod demo;
mod erase;
mod error;
mod expire;
mod job;
mod lake;
mod pipeline;
mod report;
mod rollups;
mod sweep;

use std::time::Duration;

use strata_cold::{ColdStore, WriterOptions};
use strata_store::Store;

pub use demo::{DemoReport, load_demo};
pub use error::ArchiveError;
pub use report::{
    ChunkOutcome, ChunkReport, CompactionReport, ErasureReport, RunOutcome, RunReport,
};
pub use rollups::RebuildReport;

/// Called at named points of a chunk's life; used by tests to act or to
/// kill the process there (`STRATA_ARCHIVER_FAILPOINT`).
pub use strata_model::FailPointHook;

/// The named points, in the order a chunk passes them; then the retention
/// expiry's (its commit done, its objects not yet deleted); then an
/// erasure's (a day's rewrite written, its swap committed, every cold day
/// done before the hot tier); then a compaction's.
pub const FAIL_POINTS: [&str; 11] = [
    "after_write",
    "after_verify",
    "before_drop",
    "after_drop",
    "between_chunks",
    "expired_committed",
    "erasure_written",
    "erasure_day_committed",
    "erasure_cold_done",
    "compaction_written",
    "compaction_committed",
];

#[derive(Clone)]
pub struct ArchiveConfig {
    pub hot_retention: Duration,
    pub writer: WriterOptions,
    /// Record batches allowed in the channel between the PostgreSQL reader
    /// and the Parquet writer.
    pub channel_batches: usize,
    /// Longest wait of the commit for its days' archive locks (in-flight
    /// late ingest into those days; nothing else waits meanwhile).
    pub commit_lock_timeout: Duration,
    /// Wait for the exclusive lock on `events` in the first commit attempt;
    /// each retry doubles it, up to 8×. Ingest and stats queue behind that
    /// wait, so it starts short.
    pub exclusive_lock_timeout: Duration,
    /// Commit attempts per group before its chunks are left for the next
    /// run (each attempt after an exclusive-lock timeout).
    pub commit_attempts: u32,
    /// Chunks committed together in one transaction (one wait for the
    /// table lock, which briefly holds ingest).
    pub commit_group: usize,
    /// Compaction (ADR-033): a day with more files than this is merged
    /// into one…
    pub compact_max_files: usize,
    /// …and so is a day with at least two files, one smaller than this.
    pub compact_min_bytes: u64,
    /// How long objects replaced by a swap (erasure, compaction) stay in
    /// the store after its commit, for stats requests planned before it
    /// (ADR-037): longer than the longest request.
    pub cold_delete_grace: Duration,
    /// How long the lake catalog keeps snapshots, and with them the objects
    /// that compaction and retention replaced (ADR-041); an erasure's are
    /// gone after the grace period.
    pub lake_history: Duration,
    pub failpoint: Option<FailPointHook>,
}

impl std::fmt::Debug for ArchiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveConfig")
            .field("hot_retention", &self.hot_retention)
            .field("writer", &self.writer)
            .field("channel_batches", &self.channel_batches)
            .field("commit_group", &self.commit_group)
            .field("compact_max_files", &self.compact_max_files)
            .field("compact_min_bytes", &self.compact_min_bytes)
            .field("cold_delete_grace", &self.cold_delete_grace)
            .field("lake_history", &self.lake_history)
            .finish_non_exhaustive()
    }
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            hot_retention: Duration::from_secs(30 * 86_400),
            writer: WriterOptions::default(),
            channel_batches: 2,
            commit_lock_timeout: Duration::from_secs(10),
            exclusive_lock_timeout: Duration::from_millis(500),
            commit_attempts: 8,
            commit_group: 16,
            compact_max_files: 4,
            compact_min_bytes: 8 * 1024 * 1024,
            cold_delete_grace: Duration::from_secs(300),
            lake_history: Duration::from_secs(3 * 86_400),
            failpoint: None,
        }
    }
}

/// Moves eligible hot chunks to the cold tier.
#[derive(Debug, Clone)]
pub struct Archiver {
    hot: Store,
    cold: ColdStore,
    config: ArchiveConfig,
}

impl Archiver {
    pub fn new(hot: Store, cold: ColdStore, config: ArchiveConfig) -> Self {
        Self { hot, cold, config }
    }

    fn failpoint(&self, name: &'static str) {
        if let Some(hook) = &self.config.failpoint {
            hook(name);
        }
    }
}
