//! Erasing users (ADR-032), a step of the archive run: for each open
//! erasure, every cold file that holds the user is rewritten without the
//! user's rows and swapped in, one fenced transaction per day; then one
//! transaction removes the user from the hot tier and closes the erasure
//! (`strata_store::Store::finish_erasure`). A crash anywhere leaves each
//! day either as it was or wholly rewritten, and the next run starts the
//! erasure over from what is left (finding the days already done clean).

use std::collections::BTreeMap;

use strata_cold::{IdChecksum, ObjectKey, RewriteInput, holds_user, rewrite};
use strata_store::{ColdSwap, DayFiles, ErasureStep, OpenErasure, RollupEdit};
use tracing::Instrument;

use crate::report::ErasureReport;
use crate::{ArchiveError, Archiver};

impl Archiver {
    /// Every open erasure, oldest first. One that fails is recorded with
    /// its error and tried again by the next run; a fenced run stops.
    pub(crate) async fn erase_pending(
        &self,
        run_id: i64,
    ) -> Result<Vec<ErasureReport>, ArchiveError> {
        let mut done = Vec::new();
        for erasure in self.hot.open_erasures().await? {
            let span = tracing::info_span!("erasure", run_id, erasure = erasure.id);
            match self.erase(run_id, &erasure).instrument(span).await {
                Ok(report) => {
                    tracing::info!(
                        erasure = report.erasure_id,
                        cold_rows = report.cold_rows,
                        hot_rows = report.hot_rows,
                        files_rewritten = report.files_rewritten,
                        "user erased"
                    );
                    done.push(report);
                }
                Err(e @ ArchiveError::Fenced { .. }) => return Err(e),
                Err(e) => {
                    tracing::error!(erasure = erasure.id, error = %e,
                        "erasure not finished; the next run tries again");
                    self.hot.erasure_failed(erasure.id, &e.to_string()).await?;
                }
            }
        }
        Ok(done)
    }

    async fn erase(
        &self,
        run_id: i64,
        erasure: &OpenErasure,
    ) -> Result<ErasureReport, ArchiveError> {
        let ordinal = self
            .hot
            .user_ordinal(erasure.project, &erasure.user_id)
            .await?;
        // Every stored event's user has a first-seen record: without one,
        // no file holds the user.
        let days = match ordinal {
            Some(o) => self.hot.erasure_days(erasure.project, o).await?,
            None => Vec::new(),
        };
        self.hot
            .start_erasure(erasure.id, run_id, days.len())
            .await?;
        let mut report = ErasureReport {
            erasure_id: erasure.id,
            days: days.len(),
            days_rewritten: 0,
            files_rewritten: 0,
            cold_rows: 0,
            hot_rows: 0,
            rows_rewritten: 0,
        };
        for day in &days {
            let (files, rows_read, rows_removed) =
                self.erase_day(run_id, erasure, ordinal, day).await?;
            report.rows_rewritten += rows_read;
            if files > 0 {
                report.days_rewritten += 1;
                report.files_rewritten += files;
                report.cold_rows += rows_removed;
            }
        }
        self.failpoint("erasure_cold_done");
        report.hot_rows = match self
            .hot
            .finish_erasure(run_id, erasure, self.config.commit_lock_timeout)
            .await?
        {
            Ok(rows) => rows,
            Err(holder) => return Err(ArchiveError::Fenced { run_id, holder }),
        };
        Ok(report)
    }

    /// Rewrites the day's files that hold the user and swaps them in;
    /// returns the files replaced, the rows read and the rows removed.
    async fn erase_day(
        &self,
        run_id: i64,
        erasure: &OpenErasure,
        ordinal: Option<u32>,
        day: &DayFiles,
    ) -> Result<(usize, u64, i64), ArchiveError> {
        let mut next_seq = day.next_seq();
        let (mut remove, mut add) = (Vec::new(), Vec::new());
        let mut removed: BTreeMap<String, i64> = BTreeMap::new();
        let mut rows_read = 0;
        for file in &day.files {
            if !holds_user(&self.cold, &file.object_key, &erasure.user_id).await? {
                continue;
            }
            let key = ObjectKey {
                project_id: day.project.0,
                day: day.day,
                seq: u32::try_from(next_seq).unwrap_or(u32::MAX),
                run: run_id,
            };
            let input = RewriteInput {
                key: file.object_key.clone(),
                checksum: checksum(&file.checksum)?,
            };
            let out = rewrite(
                &self.cold,
                &[input],
                key,
                &self.config.writer,
                Some(&erasure.user_id),
            )
            .await?;
            rows_read += out.rows_read;
            for (t, n) in &out.removed {
                *removed.entry(t.clone()).or_default() += n;
            }
            remove.push(file.object_key.clone());
            if let Some(f) = &out.file {
                add.push(crate::commit::manifest_entry(f, next_seq));
                next_seq += 1;
            }
        }
        if remove.is_empty() {
            self.hot.erasure_day_skipped(erasure.id).await?;
            return Ok((0, rows_read, 0));
        }
        self.failpoint("erasure_written");
        let rows_removed: i64 = removed.values().sum();
        let swap = ColdSwap {
            project: day.project,
            day: day.day,
            remove: remove.clone(),
            add,
            edit: RollupEdit::UserRemoved { ordinal, removed },
        };
        let step = ErasureStep {
            erasure_id: erasure.id,
            rows_removed,
            rows_rewritten: i64::try_from(rows_read).unwrap_or(i64::MAX),
        };
        if let Err(holder) = self
            .hot
            .swap_cold_files(run_id, &swap, Some(step), self.swap_waits(true))
            .await?
        {
            return Err(ArchiveError::Fenced { run_id, holder });
        }
        self.failpoint("erasure_day_committed");
        // The swap kept the day's rollup but not its values of declared
        // properties (an erasure does not say which it removed): they come
        // back from the day's new files.
        self.reroll_values(day.project, day.day).await?;
        Ok((remove.len(), rows_read, rows_removed))
    }
}

/// The manifest's checksum of a file.
pub(crate) fn checksum(hex: &str) -> Result<IdChecksum, ArchiveError> {
    IdChecksum::from_hex(hex).ok_or_else(|| {
        ArchiveError::Pipeline(format!("the manifest holds an unreadable checksum {hex:?}"))
    })
}
