//! Writing one chunk: its rows stream out of PostgreSQL (ordered by project,
//! then time, straight off the `(project_id, ts)` index) through a bounded
//! channel into one Parquet writer per project, then every file is read
//! back and verified.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use strata_cold::{Batch, BatchBuilder, FileWriter, ObjectKey, WrittenFile, verify_file};
use strata_store::{Chunk, EventKey};
use tokio::sync::mpsc;

use crate::{ArchiveError, Archiver};

/// Rows whose arrival (the ingest transaction's start, by the database
/// clock) is at most this long before a chunk's read are remembered by id:
/// a row that commits after the read started can only be one of those, as
/// no ingest transaction lives this long (requests time out in seconds).
const RECENT_WINDOW: chrono::Duration = chrono::Duration::minutes(10);

/// At most this many recent ids are remembered per chunk (16 bytes each).
/// Past it, rows that arrive during the run cannot be told apart from the
/// rows read, and the chunk is committed only if none arrived.
const RECENT_IDS_MAX: usize = 100_000;

/// What a chunk's read saw of recent arrivals.
#[derive(Debug)]
pub(crate) struct ReadMark {
    /// Arrivals at or after this (database clock) are remembered.
    pub since: DateTime<Utc>,
    /// Their projects and ids (ids are unique per project only); `None`
    /// once more than [`RECENT_IDS_MAX`] were seen.
    pub recent: Option<HashSet<EventKey>>,
}

impl ReadMark {
    fn remember(&mut self, key: EventKey) {
        if let Some(set) = &mut self.recent {
            if set.len() >= RECENT_IDS_MAX {
                self.recent = None;
            } else {
                set.insert(key);
            }
        }
    }
}

/// One chunk written and verified.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub files: Vec<WrittenFile>,
    /// The sequence number each project's file took.
    pub seqs: BTreeMap<i64, i32>,
    pub max_in_flight: usize,
    pub mark: ReadMark,
}

/// Cancels the task when the chunk's pipeline is abandoned (the reader
/// failed), so that no half-written file is completed behind it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Archiver {
    /// Writes and verifies one chunk.
    pub(crate) async fn prepare_chunk(
        &self,
        chunk: &Chunk,
        run_id: i64,
    ) -> Result<Prepared, ArchiveError> {
        let seqs = self.hot.manifest().next_seqs(chunk.day()).await?;
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

    /// The reader (this task: decodes rows into batches) and the writer (its
    /// own task: Arrow → Parquet → ZSTD → upload) joined by a channel of
    /// `channel_batches`.
    async fn write_chunk(
        &self,
        chunk: &Chunk,
        seqs: &BTreeMap<i64, i32>,
        run_id: i64,
    ) -> Result<(Vec<WrittenFile>, usize, ReadMark), ArchiveError> {
        let opts = self.config.writer;
        let (tx, mut rx) = mpsc::channel::<(i64, Batch)>(self.config.channel_batches);
        let alive = Arc::new(AtomicUsize::new(0));
        let max_alive = Arc::new(AtomicUsize::new(0));

        let hot = self.hot.clone();
        let producer_alive = Arc::clone(&alive);
        let producer_max = Arc::clone(&max_alive);
        let producer = async move {
            let mut read = hot.begin_chunk_read().await?;
            let mut mark = ReadMark {
                since: read.read_at() - RECENT_WINDOW,
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
            {
                // Dropped on error without `finish`: the connection, left
                // mid-COPY, is closed instead of going back to the pool.
                let mut rows = read.rows(chunk).await?;
                while let Some(row) = rows.next().await? {
                    let project = row.project_id;
                    if let Some(p) = current.filter(|p| *p != project && !builder.is_empty()) {
                        send(p, &mut builder).await?;
                    }
                    current = Some(project);
                    if row.received_micros >= since_micros {
                        mark.remember((project, row.event_id));
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
            read.finish();
            if let Some(p) = current.filter(|_| !builder.is_empty()) {
                send(p, &mut builder).await?;
            }
            Ok::<ReadMark, ArchiveError>(mark)
        };

        let cold = self.cold.clone();
        let day = chunk.day();
        let seqs = seqs.clone();
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
                    let key = ObjectKey {
                        project_id: project,
                        day,
                        seq: seqs.get(&project).copied().unwrap_or(0) as u32,
                        run: run_id,
                    };
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
            Ok::<Vec<WrittenFile>, ArchiveError>(files)
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
}
