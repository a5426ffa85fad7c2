//! The commit point of a group of written chunks: manifest rows in, chunks
//! out, in one PostgreSQL transaction (its steps and locks are
//! `strata_store::ArchiveCommit`'s), retried while the wait for the exclusive
//! lock on `events` times out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use strata_cold::WrittenFile;
use strata_store::{Chunk, NewManifestEntry};

use crate::pipeline::ReadMark;
use crate::{ArchiveError, Archiver};

/// A chunk written and verified, waiting for its group's commit.
#[derive(Debug)]
pub(crate) struct Written<'a> {
    pub chunk: &'a Chunk,
    pub files: Vec<WrittenFile>,
    pub seqs: BTreeMap<i64, i32>,
    pub max_batches_in_flight: usize,
    pub mark: ReadMark,
    /// Spent writing and checking it.
    pub seconds: f64,
}

impl Written<'_> {
    /// Rows written per project.
    fn rows(&self) -> BTreeMap<i64, i64> {
        self.files
            .iter()
            .map(|f| (f.key.project_id, f.rows as i64))
            .collect()
    }

    /// New files per project.
    fn files_per_project(&self) -> BTreeMap<i64, i64> {
        let mut out = BTreeMap::new();
        for f in &self.files {
            *out.entry(f.key.project_id).or_insert(0) += 1;
        }
        out
    }

    fn manifest_entries(&self) -> Vec<NewManifestEntry> {
        self.files
            .iter()
            .map(|f| manifest_entry(f, self.seqs.get(&f.key.project_id).copied().unwrap_or(0)))
            .collect()
    }
}

/// The manifest row of a written file.
pub(crate) fn manifest_entry(f: &WrittenFile, seq: i32) -> NewManifestEntry {
    NewManifestEntry {
        project_id: f.key.project_id,
        day: f.key.day,
        seq,
        object_key: f.key.to_string(),
        rows: f.rows as i64,
        bytes: f.bytes as i64,
        min_ts: micros(f.min_ts),
        max_ts: micros(f.max_ts),
        checksum: f.checksum.to_hex(),
        columns: f.columns.clone(),
    }
}

impl Archiver {
    /// Each attempt's wait for `events` holds ingest and stats back for at
    /// most its timeout, which starts at `exclusive_lock_timeout` and
    /// doubles per attempt up to 8× — a stats query already running longer
    /// than the first waits would otherwise starve the commit forever.
    pub(crate) async fn commit_chunks(
        &self,
        run_id: i64,
        written: &[Written<'_>],
    ) -> Result<Vec<Result<(), ArchiveError>>, ArchiveError> {
        let attempts = self.config.commit_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let wait = self.config.exclusive_lock_timeout * (1u32 << (attempt - 1).min(3));
            match self.try_commit(run_id, written, wait).await {
                Err(e) if attempt < attempts && e.is_lock_timeout() => {
                    let pause = Duration::from_millis((50u64 << attempt.min(6)).min(2_000));
                    tracing::info!(
                        run_id,
                        attempt,
                        ?wait,
                        ?pause,
                        "archive commit could not take its lock in time; retrying"
                    );
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
    }

    /// One attempt. A chunk whose rows changed otherwise than by arrivals
    /// after its read fails alone (it stays hot; its objects become
    /// orphans); the others commit.
    async fn try_commit(
        &self,
        run_id: i64,
        written: &[Written<'_>],
        exclusive_wait: Duration,
    ) -> Result<Vec<Result<(), ArchiveError>>, ArchiveError> {
        let days: BTreeSet<chrono::NaiveDate> = written.iter().map(|w| w.chunk.day()).collect();
        let mut commit = match self
            .hot
            .begin_archive_commit(run_id, &days, self.config.commit_lock_timeout)
            .await?
        {
            Ok(commit) => commit,
            Err(holder) => return Err(ArchiveError::Fenced { run_id, holder }),
        };
        let mut outcomes = Vec::with_capacity(written.len());
        for w in written {
            let now = commit
                .recount(w.chunk, w.mark.since, w.mark.recent.as_ref())
                .await?;
            let written_rows = w.rows();
            if now.rows != written_rows {
                outcomes.push(Err(ArchiveError::ChunkChanged {
                    chunk: w.chunk.name.clone(),
                    detail: format!(
                        "rows per project now {:?} besides {} newly arrived, written {written_rows:?}",
                        now.rows,
                        now.arrived.len()
                    ),
                }));
                continue;
            }
            if !now.arrived.is_empty() {
                commit.set_aside(w.chunk, &now.arrived).await?;
                tracing::info!(chunk = %w.chunk.name, rows = now.arrived.len(),
                    "events arrived while the chunk was archived; they stay hot for the next run");
            }
            let stale = commit
                .record_rollups(w.chunk, &now.arrived, &w.files_per_project())
                .await?;
            if !stale.is_empty() {
                tracing::warn!(chunk = %w.chunk.name, projects = ?stale,
                    "the day's rollup did not cover its earlier files and stays stale; \
                     stats read that day's Parquet until `strata-archiver rollups rebuild`");
            }
            outcomes.push(Ok(()));
        }
        commit.lock_events(exclusive_wait).await?;
        for (w, outcome) in written.iter().zip(&outcomes) {
            if outcome.is_err() {
                continue;
            }
            commit.record_files(w.manifest_entries()).await?;
            self.failpoint("before_drop");
            commit.drop_chunk(w.chunk).await?;
            self.failpoint("after_drop");
        }
        commit.commit().await?;
        Ok(outcomes)
    }
}

fn micros(us: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}
