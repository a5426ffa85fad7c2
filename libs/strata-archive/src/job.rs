//! One archive run, start to finish: take the archiver lock and the lease,
//! sweep orphans, then write, verify and commit eligible chunks group by
//! group, recording every outcome in the run history.

use std::time::Instant;

use chrono::{DateTime, Utc};
use strata_cold::WrittenFile;
use strata_store::Chunk;
use strata_store::catalog::runs::ArchiverSession;
use tracing::Instrument;

use crate::commit::Written;
use crate::report::{ChunkOutcome, ChunkReport, RunOutcome, RunReport};
use crate::sweep::Survey;
use crate::{ArchiveError, Archiver};

/// A run begun: the lock's session, the cutoff, the run's id and what it
/// found in the cold store.
type BegunRun = (
    ArchiverSession,
    DateTime<Utc>,
    i64,
    Result<Survey, ArchiveError>,
);

impl Archiver {
    /// The cutoff of a run starting now: chunks ending at or before it move.
    pub fn cutoff(&self) -> DateTime<Utc> {
        let retention =
            chrono::Duration::from_std(self.config.hot_retention).unwrap_or(chrono::Duration::MAX);
        Utc::now()
            .checked_sub_signed(retention)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The chunks a run starting now would move (for `--dry-run`).
    pub async fn plan(&self) -> Result<Vec<Chunk>, ArchiveError> {
        self.eligible(self.cutoff()).await
    }

    async fn eligible(&self, cutoff: DateTime<Utc>) -> Result<Vec<Chunk>, ArchiveError> {
        Ok(self
            .hot
            .list_chunks()
            .await?
            .into_iter()
            .filter(|c| c.end <= cutoff)
            .collect())
    }

    /// One archive pass. Holds the archiver lock for its whole duration on a
    /// dedicated connection, so a crashed process releases it.
    pub async fn run_once(&self) -> Result<RunOutcome, ArchiveError> {
        self.run_steps(Steps::ALL).await
    }

    /// A run that only finishes the open erasures (`strata-api users
    /// erase`, `POST /v1/admin/erasures`).
    pub async fn erase_once(&self) -> Result<RunOutcome, ArchiveError> {
        self.run_steps(Steps::ERASE).await
    }

    /// A run that only compacts (`strata-archiver compact`).
    pub async fn compact_once(&self) -> Result<RunOutcome, ArchiveError> {
        self.run_steps(Steps::COMPACT).await
    }

    async fn run_steps(&self, steps: Steps) -> Result<RunOutcome, ArchiveError> {
        let Some((lock_conn, cutoff, run_id, survey)) = self.begin_run().await? else {
            return Ok(RunOutcome::Skipped);
        };
        let result = self.run_locked(cutoff, run_id, survey, steps).await;
        // Closing the session releases the lock whatever happened.
        lock_conn.release().await;
        result.map(RunOutcome::Completed)
    }

    /// Starts a run in the background and returns its id at once (`None`
    /// when another archiver is running). The outcome lands in the run
    /// history.
    pub async fn start_in_background(&self) -> Result<Option<i64>, ArchiveError> {
        self.start_steps(Steps::ALL).await
    }

    /// Starts a run that only finishes the open erasures, in the
    /// background (`None` when another archiver is running: that run, or
    /// the next scheduled one, does them).
    pub async fn start_erasures_in_background(&self) -> Result<Option<i64>, ArchiveError> {
        self.start_steps(Steps::ERASE).await
    }

    async fn start_steps(&self, steps: Steps) -> Result<Option<i64>, ArchiveError> {
        let Some((lock_conn, cutoff, run_id, survey)) = self.begin_run().await? else {
            return Ok(None);
        };
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.run_locked(cutoff, run_id, survey, steps).await {
                tracing::error!(run_id, error = %e, "archive run failed");
            }
            lock_conn.release().await;
        });
        Ok(Some(run_id))
    }

    /// Takes the archiver lock on a dedicated session (a crashed process
    /// releases it), claims and lists the cold store (a store another
    /// deployment owns refuses the run: an error, no run recorded) and
    /// records a new run. An unreachable store does not stop the run from
    /// being recorded: it attempts nothing and says why.
    async fn begin_run(&self) -> Result<Option<BegunRun>, ArchiveError> {
        let Some(lock_conn) = self.hot.archiver_session().await? else {
            tracing::warn!("another archiver is running; skipping this run");
            return Ok(None);
        };
        let survey = match self.survey().await {
            Err(e @ ArchiveError::Cold(strata_cold::ColdError::Owned { .. })) => {
                tracing::error!(error = %e, "archive run refused");
                lock_conn.release().await;
                return Err(e);
            }
            other => other,
        };
        let above = survey.as_ref().map_or(0, |s| s.max_run);
        let cutoff = self.cutoff();
        let runs = self.hot.runs();
        let run_id = runs.start(cutoff, above).await?;
        // From here on, a run that held the job before (and lost its lock
        // session) can no longer commit; only then may orphans be swept.
        runs.take_lease(run_id).await?;
        Ok(Some((lock_conn, cutoff, run_id, survey)))
    }

    async fn run_locked(
        &self,
        cutoff: DateTime<Utc>,
        run_id: i64,
        survey: Result<Survey, ArchiveError>,
        steps: Steps,
    ) -> Result<RunReport, ArchiveError> {
        let started = Instant::now();
        let mut report = RunReport {
            run_id,
            cutoff,
            orphans_removed: 0,
            chunks: Vec::new(),
            not_attempted: Vec::new(),
            error: None,
            sealed: Default::default(),
            expired: Default::default(),
            erasures: Vec::new(),
            compacted: Vec::new(),
        };
        let chunks = if steps.archive {
            self.eligible(cutoff).await?
        } else {
            Vec::new()
        };
        tracing::info!(run_id, %cutoff, eligible = chunks.len(), "archive run started");
        // Orphans must be gone before keys are reused; a store that cannot
        // even be listed would fail every chunk, so nothing is attempted.
        let swept = match survey {
            Ok(survey) => self.remove_orphans(&survey, run_id).await,
            Err(e) => Err(e),
        };
        let mut store_down = match swept {
            Ok(n) => {
                report.orphans_removed = n;
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot list the cold tier; no chunk is attempted");
                true
            }
        };
        if !store_down {
            // The lake catalog shows the manifest (a deployment from before
            // the catalog has its files registered by its first run).
            match self.sync_lake().await {
                Ok(s) if s.added + s.ended > 0 => {
                    tracing::info!(
                        run_id,
                        added = s.added,
                        ended = s.ended,
                        "lake catalog caught up with the manifest"
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(run_id, error = %e, "lake catalog not caught up; the next run tries again")
                }
            }
            self.delete_due_logged(run_id).await;
        }
        let mut fenced: Option<String> = None;
        // Expired data goes before anything moves, so no expired row is
        // archived. A failure here stops nothing else: stats never read
        // expired days anyway, and the next run tries again.
        if !store_down && steps.archive {
            match self.expire(run_id).await {
                Ok(expired) => report.expired = Box::new(expired),
                Err(e @ ArchiveError::Fenced { .. }) => fenced = Some(e.to_string()),
                Err(e) => tracing::error!(run_id, error = %e, "retention policies not enforced"),
            }
        }
        // Erasures before the moves: the chunks archived after them no
        // longer hold the users.
        if !store_down && fenced.is_none() && steps.erase {
            match self.erase_pending(run_id).await {
                Ok(done) => report.erasures = done,
                Err(e @ ArchiveError::Fenced { .. }) => fenced = Some(e.to_string()),
                Err(e) => {
                    tracing::error!(run_id, error = %e, "erasures not done; the next run tries again")
                }
            }
        }
        // Chunks are written and verified one by one, then committed in
        // groups: one transaction (one wait for the table lock) per group.
        for (g, group) in chunks.chunks(self.config.commit_group.max(1)).enumerate() {
            if fenced.is_some() {
                break;
            }
            let mut written: Vec<Written> = Vec::new();
            for (j, chunk) in group.iter().enumerate() {
                if store_down {
                    report.not_attempted.push(chunk.name.clone());
                    continue;
                }
                if g + j > 0 {
                    self.failpoint("between_chunks");
                }
                // A run that lost the job stops writing as soon as it can
                // tell (its commit would be refused anyway): fewer orphans
                // for the successor's next sweep.
                if let Some(holder) = self.hot.runs().lease_holder(run_id).await? {
                    fenced = Some(
                        ArchiveError::Fenced {
                            run_id,
                            holder: Some(holder),
                        }
                        .to_string(),
                    );
                    tracing::error!(run_id, holder, "archive run fenced off; stopping");
                    break;
                }
                let started = Instant::now();
                let span = tracing::info_span!("archive_chunk", run_id, chunk = %chunk.name, day = %chunk.day());
                match self.prepare_chunk(chunk, run_id).instrument(span).await {
                    Ok(p) => written.push(Written {
                        chunk,
                        files: p.files,
                        seqs: p.seqs,
                        max_batches_in_flight: p.max_in_flight,
                        mark: p.mark,
                        seconds: started.elapsed().as_secs_f64(),
                    }),
                    Err(e) => {
                        store_down = e.is_object_store();
                        let seconds = started.elapsed().as_secs_f64();
                        self.finish_chunk(run_id, chunk, seconds, Err(e), &mut report)
                            .await?;
                    }
                }
            }
            if written.is_empty() {
                if fenced.is_some() {
                    break;
                }
                continue;
            }
            let commit_started = Instant::now();
            let outcomes = match self.commit_chunks(run_id, &written).await {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    let msg = e.to_string();
                    if matches!(e, ArchiveError::Fenced { .. }) {
                        // Another run owns the job: stop here, commit nothing.
                        tracing::error!(run_id, error = %e, "archive run fenced off");
                        fenced = Some(msg.clone());
                    }
                    written
                        .iter()
                        .map(|_| Err(ArchiveError::GroupCommit(msg.clone())))
                        .collect()
                }
            };
            // Each chunk's time: its own writing and checking, plus the
            // group's commit.
            let commit_secs = commit_started.elapsed().as_secs_f64();
            for (w, outcome) in written.into_iter().zip(outcomes) {
                let outcome = outcome.map(|()| (w.files, w.max_batches_in_flight));
                let seconds = w.seconds + commit_secs;
                self.finish_chunk(run_id, w.chunk, seconds, outcome, &mut report)
                    .await?;
            }
            if fenced.is_some() {
                break;
            }
        }
        // Compaction after the moves, so that the late files this run
        // wrote are merged in the same run.
        if !store_down && fenced.is_none() && steps.compact {
            match self.compact_due(run_id).await {
                Ok(done) => report.compacted = done,
                Err(e @ ArchiveError::Fenced { .. }) => fenced = Some(e.to_string()),
                Err(e) => {
                    tracing::error!(run_id, error = %e, "no day compacted; the next run tries again")
                }
            }
        }
        // What this run replaced, when the grace period is zero; what
        // earlier runs replaced, once theirs has passed.
        if !store_down && fenced.is_none() {
            self.delete_due_logged(run_id).await;
        }
        if let Some(msg) = fenced {
            report.error = Some(msg);
        } else if store_down {
            report.error = Some(format!(
                "object store failed; {} chunk(s) left for the next run",
                report.not_attempted.len()
            ));
        }
        // The hot days that stay are closed ones too: their rollups let
        // stats skip their rows (a failure only costs speed; the api's
        // sealer retries).
        if steps.archive {
            match self
                .hot
                .seal_closed_days(
                    cutoff.date_naive(),
                    Utc::now(),
                    self.config.commit_lock_timeout,
                )
                .await
            {
                Ok(sealed) => report.sealed = sealed,
                Err(e) => tracing::warn!(run_id, error = %e, "closed hot days not sealed"),
            }
        }
        let totals = report.totals(chunks.len());
        self.hot.runs().finish(run_id, &totals).await?;
        tracing::info!(
            run_id,
            chunks_moved = totals.chunks_moved,
            chunks_failed = totals.chunks_failed,
            rows = totals.rows,
            bytes = totals.bytes,
            orphans_removed = totals.orphans_removed,
            sealed_days = report.sealed.days.len(),
            erasures = report.erasures.len(),
            compacted_days = report.compacted.len(),
            seconds = started.elapsed().as_secs_f64(),
            "archive run finished"
        );
        Ok(report)
    }

    /// Logs and records one chunk's outcome and adds it to the report.
    async fn finish_chunk(
        &self,
        run_id: i64,
        chunk: &Chunk,
        seconds: f64,
        outcome: Result<(Vec<WrittenFile>, usize), ArchiveError>,
        report: &mut RunReport,
    ) -> Result<(), ArchiveError> {
        let outcome = match outcome {
            Ok((files, max_batches_in_flight)) => ChunkOutcome::Archived {
                files,
                max_batches_in_flight,
            },
            Err(e) => {
                tracing::error!(chunk = %chunk.name, day = %chunk.day(), error = %e,
                    "chunk not archived; it stays hot and is retried on the next run");
                ChunkOutcome::Failed(e.to_string())
            }
        };
        let chunk_report = ChunkReport {
            chunk: chunk.name.clone(),
            day: chunk.day(),
            seconds,
            outcome,
        };
        if let ChunkOutcome::Archived { files, .. } = &chunk_report.outcome {
            for f in files {
                tracing::info!(
                    project = f.key.project_id,
                    day = %chunk.day(),
                    rows = f.rows,
                    bytes = f.bytes,
                    seconds,
                    rows_per_sec = (f.rows as f64 / seconds.max(1e-9)).round(),
                    key = %f.key,
                    "archived"
                );
            }
            tracing::info!(
                chunk = %chunk.name,
                day = %chunk.day(),
                files = files.len(),
                rows = chunk_report.rows(),
                bytes = chunk_report.bytes(),
                seconds,
                rows_per_sec = (chunk_report.rows() as f64 / seconds.max(1e-9)).round(),
                "chunk archived"
            );
        }
        self.hot
            .runs()
            .record_chunk(&chunk_report.record(run_id))
            .await?;
        report.chunks.push(chunk_report);
        Ok(())
    }
}

/// The steps of one run.
#[derive(Debug, Clone, Copy)]
struct Steps {
    /// Expire, archive the eligible chunks, seal the closed hot days.
    archive: bool,
    erase: bool,
    compact: bool,
}

impl Steps {
    const ALL: Self = Self {
        archive: true,
        erase: true,
        compact: true,
    };
    const ERASE: Self = Self {
        archive: false,
        erase: true,
        compact: false,
    };
    const COMPACT: Self = Self {
        archive: false,
        erase: false,
        compact: true,
    };
}

impl Archiver {
    /// [`Archiver::delete_due`], its outcome logged: a failure stops
    /// nothing (the objects stay recorded for the next run).
    async fn delete_due_logged(&self, run_id: i64) {
        match self.delete_due().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                run_id,
                objects = n,
                "deleted objects replaced by earlier swaps"
            ),
            Err(e) => {
                tracing::warn!(run_id, error = %e, "replaced objects not deleted; the next run tries again")
            }
        }
    }
}
