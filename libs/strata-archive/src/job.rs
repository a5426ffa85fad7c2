use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use sqlx::Connection;
use strata_cold::layout::{self, EVENTS_PREFIX};
use strata_cold::{Batch, BatchBuilder, FileStats, FileWriter, verify_file};
use strata_hot::Chunk;
use strata_hot::copy::{CopyRows, copy_chunk_sql};
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use crate::runs::{self, RunTotals};
use crate::{ArchiveError, Archiver};

/// Advisory lock key held by the one running archiver ('STRA' 'ARCH').
pub const ARCHIVER_LOCK: i64 = 0x5354_5241_4152_4348;

/// Rows whose arrival (the ingest transaction's start, by the database
/// clock) is at most this long before a chunk's read are remembered by id:
/// a row that commits after the read started can only be one of those, as
/// no ingest transaction lives this long (requests time out in seconds).
const RECENT_WINDOW: chrono::Duration = chrono::Duration::minutes(10);

/// At most this many recent ids are remembered per chunk (16 bytes each).
/// Past it, rows that arrive during the run cannot be told apart from the
/// rows read, and the chunk is committed only if none arrived.
const RECENT_IDS_MAX: usize = 100_000;

/// What happened to one chunk.
#[derive(Debug, Clone)]
pub enum ChunkOutcome {
    Archived {
        files: Vec<FileStats>,
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
}

#[derive(Debug, Clone)]
pub enum RunOutcome {
    /// Another archiver holds the lock; nothing was done.
    Skipped,
    Completed(RunReport),
}

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
        let Some((lock_conn, cutoff, run_id)) = self.begin_run().await? else {
            return Ok(RunOutcome::Skipped);
        };
        let result = self.run_locked(cutoff, run_id).await;
        // Closing the session releases the lock whatever happened.
        let _ = lock_conn.close().await;
        result.map(RunOutcome::Completed)
    }

    /// Starts a run in the background and returns its id at once (`None`
    /// when another archiver is running). The outcome lands in the run
    /// history.
    pub async fn start_in_background(&self) -> Result<Option<i64>, ArchiveError> {
        let Some((lock_conn, cutoff, run_id)) = self.begin_run().await? else {
            return Ok(None);
        };
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.run_locked(cutoff, run_id).await {
                tracing::error!(run_id, error = %e, "archive run failed");
            }
            let _ = lock_conn.close().await;
        });
        Ok(Some(run_id))
    }

    /// Takes the archiver lock on a dedicated session (a crashed process
    /// releases it) and records a new run.
    async fn begin_run(
        &self,
    ) -> Result<Option<(sqlx::PgConnection, DateTime<Utc>, i64)>, ArchiveError> {
        let mut lock_conn = self.hot.pool().acquire().await?.detach();
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(ARCHIVER_LOCK)
            .fetch_one(&mut lock_conn)
            .await?;
        if !locked {
            tracing::warn!("another archiver is running; skipping this run");
            return Ok(None);
        }
        let cutoff = self.cutoff();
        let run_id = runs::start_run(self.hot.pool(), cutoff).await?;
        // From here on, a run that held the job before (and lost its lock
        // session) can no longer commit; only then may orphans be swept.
        runs::take_lease(self.hot.pool(), run_id).await?;
        Ok(Some((lock_conn, cutoff, run_id)))
    }

    async fn run_locked(
        &self,
        cutoff: DateTime<Utc>,
        run_id: i64,
    ) -> Result<RunReport, ArchiveError> {
        let pool = self.hot.pool();
        let started = Instant::now();
        let mut report = RunReport {
            run_id,
            cutoff,
            orphans_removed: 0,
            chunks: Vec::new(),
            not_attempted: Vec::new(),
            error: None,
        };
        let chunks = self.eligible(cutoff).await?;
        tracing::info!(run_id, %cutoff, eligible = chunks.len(), "archive run started");
        // Orphans must be gone before keys are reused; a store that cannot
        // even be listed would fail every chunk, so nothing is attempted.
        let mut store_down = match self.remove_orphans().await {
            Ok(n) => {
                report.orphans_removed = n;
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot list the cold tier; no chunk is attempted");
                true
            }
        };
        let mut fenced: Option<String> = None;
        // Chunks are written and verified one by one, then committed in
        // groups: one transaction (one wait for the table lock) per group.
        for (g, group) in chunks.chunks(self.config.commit_group.max(1)).enumerate() {
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
                if let Some(holder) = runs::lease_holder(self.hot.pool(), run_id).await? {
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
        if let Some(msg) = fenced {
            report.error = Some(msg);
        } else if store_down {
            report.error = Some(format!(
                "object store failed; {} chunk(s) left for the next run",
                report.not_attempted.len()
            ));
        }
        let moved = report
            .chunks
            .iter()
            .filter(|c| matches!(c.outcome, ChunkOutcome::Archived { .. }))
            .count();
        let totals = RunTotals {
            chunks_total: chunks.len() as i32,
            chunks_moved: moved as i32,
            chunks_failed: (chunks.len() - moved) as i32,
            rows: report.chunks.iter().map(|c| c.rows() as i64).sum(),
            bytes: report.chunks.iter().map(|c| c.bytes() as i64).sum(),
            orphans_removed: report.orphans_removed as i32,
            error: report.error.clone(),
        };
        runs::finish_run(pool, run_id, &totals).await?;
        tracing::info!(
            run_id,
            chunks_moved = totals.chunks_moved,
            chunks_failed = totals.chunks_failed,
            rows = totals.rows,
            bytes = totals.bytes,
            orphans_removed = totals.orphans_removed,
            seconds = started.elapsed().as_secs_f64(),
            "archive run finished"
        );
        Ok(report)
    }

    /// Deletes event objects that no manifest row lists: leftovers of runs
    /// that died between writing and committing. Runs under the archiver
    /// lock, so nothing is being written meanwhile.
    async fn remove_orphans(&self) -> Result<usize, ArchiveError> {
        let committed: HashSet<String> = sqlx::query_scalar("SELECT object_key FROM cold_files")
            .fetch_all(self.hot.pool())
            .await?
            .into_iter()
            .collect();
        let store = self.cold.object_store();
        let prefix = object_store::path::Path::from(EVENTS_PREFIX);
        let objects: Vec<_> = store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(strata_cold::ColdError::from)?;
        let mut removed = 0;
        for o in objects {
            if layout::parse_file_key(&o.location).is_some()
                && !committed.contains(o.location.as_ref())
            {
                tracing::warn!(key = %o.location, "removing uncommitted object left by a crashed run");
                store
                    .delete(&o.location)
                    .await
                    .map_err(strata_cold::ColdError::from)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Writes and verifies one chunk: its files, the sequence numbers they
    /// took per project, and the most record batches alive at once.
    async fn prepare_chunk(&self, chunk: &Chunk, run_id: i64) -> Result<Prepared, ArchiveError> {
        let day = chunk.day();
        let seqs: BTreeMap<i64, i32> = sqlx::query_as(
            "SELECT project_id, count(*)::int FROM cold_files WHERE day = $1 GROUP BY project_id",
        )
        .bind(day)
        .fetch_all(self.hot.pool())
        .await?
        .into_iter()
        .collect();

        let (files, max_in_flight, mark) = self.write_chunk(chunk, &seqs, run_id).await?;
        self.failpoint("after_write");
        for f in &files {
            verify_file(&self.cold, f).await?;
        }
        self.failpoint("after_verify");
        Ok(Prepared {
            files,
            seqs,
            max_in_flight,
            mark,
        })
    }

    /// Logs and records one chunk's outcome and adds it to the report.
    async fn finish_chunk(
        &self,
        run_id: i64,
        chunk: &Chunk,
        seconds: f64,
        outcome: Result<(Vec<FileStats>, usize), ArchiveError>,
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
            let seconds = chunk_report.seconds;
            for f in files {
                let project = layout::parse_file_key(&f.key).map(|(p, _)| p);
                tracing::info!(
                    project,
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
        runs::record_chunk(self.hot.pool(), run_id, chunk.day(), &chunk_report).await?;
        report.chunks.push(chunk_report);
        Ok(())
    }

    /// Streams the chunk's rows (ordered by project, then time, straight off
    /// the `(project_id, ts)` index) through a bounded channel into one
    /// Parquet writer per project.
    async fn write_chunk(
        &self,
        chunk: &Chunk,
        seqs: &BTreeMap<i64, i32>,
        run_id: i64,
    ) -> Result<(Vec<FileStats>, usize, ReadMark), ArchiveError> {
        let opts = self.config.writer;
        let (tx, mut rx) = mpsc::channel::<(i64, Batch)>(self.config.channel_batches);
        let alive = Arc::new(AtomicUsize::new(0));
        let max_alive = Arc::new(AtomicUsize::new(0));

        let pool = self.hot.pool().clone();
        let (start, end) = (chunk.start, chunk.end);
        let producer_alive = Arc::clone(&alive);
        let producer_max = Arc::clone(&max_alive);
        let producer = async move {
            let mut conn = pool.acquire().await?;
            // The database's clock, before the COPY takes its snapshot.
            let read_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
                .fetch_one(&mut *conn)
                .await?;
            let mut mark = ReadMark {
                since: read_at - RECENT_WINDOW,
                recent: Some(HashSet::new()),
            };
            let since_micros = mark.since.timestamp_micros();
            let mut builder = BatchBuilder::with_capacity(opts.batch_rows);
            let mut current: Option<i64> = None;
            let send = |project: i64, builder: &mut BatchBuilder| {
                let batch = builder.finish();
                let tx = tx.clone();
                let alive = Arc::clone(&producer_alive);
                let max = Arc::clone(&producer_max);
                async move {
                    let batch = batch?;
                    let now = alive.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    tx.send((project, batch))
                        .await
                        .map_err(|_| ArchiveError::Pipeline("writer stopped".into()))
                }
            };
            let streamed = async {
                let mut stream = conn.copy_out_raw(&copy_chunk_sql(start, end)).await?;
                let mut rows = CopyRows::default();
                while let Some(piece) = stream.try_next().await? {
                    rows.extend(&piece);
                    while let Some(row) = rows.next_row()? {
                        let project = row.project_id;
                        if let Some(p) = current.filter(|p| *p != project && !builder.is_empty()) {
                            send(p, &mut builder).await?;
                        }
                        current = Some(project);
                        if row.received_micros >= since_micros {
                            mark.remember(row.event_id);
                        }
                        builder.push(
                            row.event_id,
                            row.user_id,
                            row.event_type,
                            row.ts_micros,
                            row.properties,
                            row.received_micros,
                        );
                        if builder.len() >= opts.batch_rows {
                            send(project, &mut builder).await?;
                        }
                    }
                }
                if !rows.finished() {
                    return Err(ArchiveError::Pipeline(
                        "the COPY stream of the chunk ended early".into(),
                    ));
                }
                Ok::<(), ArchiveError>(())
            }
            .await;
            if streamed.is_err() {
                // A stream abandoned halfway leaves the connection mid-COPY:
                // it must not go back to the pool.
                conn.close_on_drop();
            }
            streamed?;
            if let Some(p) = current.filter(|_| !builder.is_empty()) {
                send(p, &mut builder).await?;
            }
            Ok::<ReadMark, ArchiveError>(mark)
        };

        let cold = self.cold.clone();
        let day = chunk.day();
        let seqs = seqs.clone();
        // The writer (Arrow → Parquet → ZSTD → upload) runs as its own task,
        // so that it encodes on one core while this one decodes rows.
        let consumer = tokio::spawn(async move {
            let mut files = Vec::new();
            let mut open: Option<(i64, FileWriter)> = None;
            while let Some((project, b)) = rx.recv().await {
                if open.as_ref().is_some_and(|(p, _)| *p != project)
                    && let Some((_, w)) = open.take()
                {
                    files.push(w.close().await?);
                }
                if open.is_none() {
                    let seq = seqs.get(&project).copied().unwrap_or(0) as u32;
                    let key = layout::file_key(project, day, seq, run_id);
                    open = Some((project, FileWriter::create(&cold, key, &opts)?));
                }
                if let Some((_, w)) = open.as_mut() {
                    w.write(&b).await?;
                }
                drop(b);
                alive.fetch_sub(1, Ordering::SeqCst);
            }
            if let Some((_, w)) = open.take() {
                files.push(w.close().await?);
            }
            Ok::<Vec<FileStats>, ArchiveError>(files)
        });
        let mut consumer = AbortOnDrop(consumer);
        let consumer = async move {
            (&mut consumer.0)
                .await
                .map_err(|e| ArchiveError::Pipeline(format!("the file writer task failed: {e}")))?
        };
        let (mark, files) = tokio::try_join!(producer, consumer)?;
        Ok((files, max_alive.load(Ordering::SeqCst), mark))
    }

    /// The commit point of a group of written chunks, retried while the
    /// wait for the exclusive lock on `events` times out. Each wait holds
    /// ingest and stats back for at most its timeout, which starts at
    /// `exclusive_lock_timeout` and doubles per attempt up to 8× — a
    /// stats query already running longer than the first waits would
    /// otherwise starve the commit forever.
    async fn commit_chunks(
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
                    let pause =
                        std::time::Duration::from_millis((50u64 << attempt.min(6)).min(2_000));
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

    /// One attempt at the commit, in one transaction:
    ///
    /// 1. Fence: the archive lease must still name this run (read FOR
    ///    SHARE, so a successor cannot take it until this commits).
    /// 2. Take the group's days' archive locks: no row can arrive in them
    ///    until commit, while ingest into other days and stats go on.
    /// 3. Recount each chunk (outside any lock on `events`): rows that
    ///    arrived after the chunk was read — recent arrivals the read did not
    ///    see — are set aside to stay hot; anything else that differs fails
    ///    the chunk (it stays hot, its objects become orphans).
    /// 4. The exclusive section, constant work per chunk: lock `events`
    ///    (`lock_timeout` = `exclusive_wait`), record the files, drop the chunks, put the
    ///    set-aside rows back. Commit.
    async fn try_commit(
        &self,
        run_id: i64,
        written: &[Written<'_>],
        exclusive_wait: std::time::Duration,
    ) -> Result<Vec<Result<(), ArchiveError>>, ArchiveError> {
        let mut tx = self.hot.pool().begin().await?;
        set_lock_timeout(&mut tx, self.config.commit_lock_timeout).await?;
        let holder: Option<i64> =
            sqlx::query_scalar("SELECT run_id FROM archive_lease WHERE id = 1 FOR SHARE")
                .fetch_optional(&mut *tx)
                .await?;
        if holder != Some(run_id) {
            return Err(ArchiveError::Fenced { run_id, holder });
        }
        let days: BTreeSet<chrono::NaiveDate> = written.iter().map(|w| w.chunk.day()).collect();
        strata_hot::lock_days_for_archive(&mut tx, &days).await?;

        let mut outcomes = Vec::with_capacity(written.len());
        let mut kept_days = BTreeSet::new();
        for w in written {
            let outcome = self.recount(&mut tx, w).await?;
            if let Ok(kept) = &outcome
                && *kept > 0
            {
                kept_days.insert(w.chunk.day());
            }
            outcomes.push(outcome.map(|_| ()));
        }

        set_lock_timeout(&mut tx, exclusive_wait).await?;
        sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        for (w, outcome) in written.iter().zip(&outcomes) {
            if outcome.is_err() {
                continue;
            }
            for f in &w.files {
                let (project, day) = layout::parse_file_key(&f.key).ok_or_else(|| {
                    ArchiveError::Pipeline(format!("unexpected object key {}", f.key))
                })?;
                sqlx::query(
                    "INSERT INTO cold_files (project_id, day, seq, object_key, rows, bytes, min_ts, max_ts, checksum, run_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(project)
                .bind(day)
                .bind(w.seqs.get(&project).copied().unwrap_or(0))
                .bind(f.key.as_ref())
                .bind(f.rows as i64)
                .bind(f.bytes as i64)
                .bind(micros(f.min_ts))
                .bind(micros(f.max_ts))
                .bind(f.checksum.to_hex())
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            }
            self.failpoint("before_drop");
            self.hot.drop_chunk(&mut tx, w.chunk).await?;
            self.failpoint("after_drop");
        }
        if !kept_days.is_empty() {
            for day in &kept_days {
                self.hot.recreate_day(&mut tx, *day).await?;
            }
            sqlx::query("INSERT INTO events SELECT * FROM strata_kept")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Step 3 of [`Self::try_commit`] for one chunk, under its day's lock:
    /// `Ok(n)` when the chunk holds exactly the rows written plus `n` that
    /// arrived after its read (copied aside into `strata_kept`).
    async fn recount(
        &self,
        tx: &mut sqlx::PgConnection,
        w: &Written<'_>,
    ) -> Result<Result<usize, ArchiveError>, ArchiveError> {
        let chunk = w.chunk;
        let now: Vec<(i64, i64, Vec<Uuid>)> = sqlx::query_as(
            "SELECT project_id, count(*),
                    coalesce(array_agg(event_id) FILTER (WHERE received_at >= $3), '{}')
               FROM events WHERE ts >= $1 AND ts < $2 GROUP BY project_id",
        )
        .bind(chunk.start)
        .bind(chunk.end)
        .bind(w.mark.since)
        .fetch_all(&mut *tx)
        .await?;
        let written: BTreeMap<i64, i64> = w
            .files
            .iter()
            .filter_map(|f| Some((layout::parse_file_key(&f.key)?.0, f.rows as i64)))
            .collect();
        let mut arrived: Vec<Uuid> = Vec::new();
        let mut now_rows = BTreeMap::new();
        for (project, rows, recent) in now {
            let new: Vec<Uuid> = match &w.mark.recent {
                Some(seen) => recent.into_iter().filter(|id| !seen.contains(id)).collect(),
                None => Vec::new(),
            };
            now_rows.insert(project, rows - new.len() as i64);
            arrived.extend(new);
        }
        now_rows.retain(|_, rows| *rows > 0);
        if now_rows != written {
            return Ok(Err(ArchiveError::ChunkChanged {
                chunk: chunk.name.clone(),
                detail: format!(
                    "rows per project now {now_rows:?} besides {} newly arrived, written {written:?}",
                    arrived.len()
                ),
            }));
        }
        if !arrived.is_empty() {
            sqlx::query(
                "CREATE TEMP TABLE IF NOT EXISTS strata_kept (LIKE events INCLUDING DEFAULTS) ON COMMIT DROP",
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO strata_kept SELECT * FROM events
                  WHERE ts >= $1 AND ts < $2 AND event_id = ANY($3)",
            )
            .bind(chunk.start)
            .bind(chunk.end)
            .bind(&arrived)
            .execute(&mut *tx)
            .await?;
            tracing::info!(chunk = %chunk.name, rows = arrived.len(),
                "events arrived while the chunk was archived; they stay hot for the next run");
        }
        Ok(Ok(arrived.len()))
    }
}

async fn set_lock_timeout(
    tx: &mut sqlx::PgConnection,
    timeout: std::time::Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "SET LOCAL lock_timeout = '{}ms'",
        timeout.as_millis().max(1)
    ))
    .execute(tx)
    .await?;
    Ok(())
}

/// What a chunk's read saw of recent arrivals.
#[derive(Debug)]
struct ReadMark {
    /// Arrivals at or after this (database clock) are remembered.
    since: DateTime<Utc>,
    /// Their ids; `None` once more than [`RECENT_IDS_MAX`] were seen.
    recent: Option<HashSet<Uuid>>,
}

impl ReadMark {
    fn remember(&mut self, id: Uuid) {
        if let Some(set) = &mut self.recent {
            if set.len() >= RECENT_IDS_MAX {
                self.recent = None;
            } else {
                set.insert(id);
            }
        }
    }
}

/// One chunk written and verified by [`Archiver::prepare_chunk`].
struct Prepared {
    files: Vec<FileStats>,
    seqs: BTreeMap<i64, i32>,
    max_in_flight: usize,
    mark: ReadMark,
}

/// A chunk written and verified, waiting for its group's commit.
struct Written<'a> {
    chunk: &'a Chunk,
    files: Vec<FileStats>,
    seqs: BTreeMap<i64, i32>,
    max_batches_in_flight: usize,
    mark: ReadMark,
    /// Spent writing and checking it.
    seconds: f64,
}

/// Cancels the task when the chunk's pipeline is abandoned (the reader
/// failed), so that no half-written file is completed behind it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MIN_UTC)
}
