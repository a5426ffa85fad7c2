//! Compaction (ADR-033), a step of the archive run and
//! `strata-archiver compact`: a day whose late events left it more than
//! `compact_max_files` files, or at least two with one smaller than
//! `compact_min_bytes`, gets its files merged into one (sorted by `ts`),
//! written and verified, then swapped in by one fenced transaction; the
//! old objects are deleted after it commits. The day's rollup covers the
//! same rows and stays current.

use std::time::Instant;

use strata_cold::{ObjectKey, RewriteInput, rewrite};
use strata_store::{ColdSwap, DayFiles, RollupEdit};

use crate::erase::checksum;
use crate::report::CompactionReport;
use crate::{ArchiveError, Archiver};

impl Archiver {
    /// The days a compaction would merge now (for `--dry-run`).
    pub async fn compaction_plan(&self) -> Result<Vec<DayFiles>, ArchiveError> {
        Ok(self
            .hot
            .compaction_days(self.config.compact_max_files, self.config.compact_min_bytes)
            .await?)
    }

    /// Compacts every due day. A day that fails is logged and left as it
    /// is (the next run tries again); a fenced run stops.
    pub(crate) async fn compact_due(
        &self,
        run_id: i64,
    ) -> Result<Vec<CompactionReport>, ArchiveError> {
        let mut done = Vec::new();
        for day in self.compaction_plan().await? {
            let started = Instant::now();
            match self.compact_day(run_id, &day).await {
                Ok(report) => {
                    tracing::info!(project = day.project.0, day = %day.day,
                        files = report.files_before, rows = report.rows,
                        bytes_before = report.bytes_before, bytes_after = report.bytes_after,
                        seconds = started.elapsed().as_secs_f64(), "day compacted");
                    done.push(report);
                }
                Err(e @ ArchiveError::Fenced { .. }) => return Err(e),
                Err(e) => tracing::error!(project = day.project.0, day = %day.day, error = %e,
                    "day not compacted; the next run tries again"),
            }
        }
        Ok(done)
    }

    async fn compact_day(
        &self,
        run_id: i64,
        day: &DayFiles,
    ) -> Result<CompactionReport, ArchiveError> {
        let seq = day.next_seq();
        let key = ObjectKey {
            project_id: day.project.0,
            day: day.day,
            seq: u32::try_from(seq).unwrap_or(u32::MAX),
            run: run_id,
        };
        let inputs = day
            .files
            .iter()
            .map(|f| {
                Ok(RewriteInput {
                    key: f.object_key.clone(),
                    checksum: checksum(&f.checksum)?,
                })
            })
            .collect::<Result<Vec<_>, ArchiveError>>()?;
        let out = rewrite(&self.cold, &inputs, key, &self.config.writer, None).await?;
        let file = out.file.ok_or_else(|| {
            ArchiveError::Pipeline(format!("compacting {} left no rows", day.day))
        })?;
        self.failpoint("compaction_written");
        let remove: Vec<String> = day.files.iter().map(|f| f.object_key.clone()).collect();
        let swap = ColdSwap {
            project: day.project,
            day: day.day,
            remove: remove.clone(),
            add: vec![crate::commit::manifest_entry(&file, seq)],
            edit: RollupEdit::SameRows,
        };
        if let Err(holder) = self
            .hot
            .swap_cold_files(run_id, &swap, None, self.swap_waits(false))
            .await?
        {
            return Err(ArchiveError::Fenced { run_id, holder });
        }
        self.failpoint("compaction_committed");
        Ok(CompactionReport {
            project_id: day.project.0,
            day: day.day,
            files_before: day.files.len(),
            rows: file.rows,
            bytes_before: u64::try_from(day.bytes()).unwrap_or(0),
            bytes_after: file.bytes,
        })
    }
}
