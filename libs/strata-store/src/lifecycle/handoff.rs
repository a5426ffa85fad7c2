//! The hot side of archiving: reading a day chunk out, and the commit that
//! hands it to the cold tier (manifest rows in, chunk out, in one
//! transaction). The archiver orchestrates; every statement it needs on
//! `events`, `cold_files` and `archive_lease` is here.
//!
//! The commit, in one transaction ([`Store::begin_archive_commit`] …
//! [`ArchiveCommit::commit`]):
//! 1. Fence: the archive lease must still name the run (read `FOR SHARE`,
//!    so a successor cannot take it until this commits).
//! 2. Take the days' archive locks (`locks.rs`): no row can arrive in them
//!    until commit, while ingest into other days and stats go on.
//! 3. Recount each chunk (outside any lock on `events`): rows that arrived
//!    after the chunk was read are set aside to stay hot; anything else
//!    that differs fails the chunk (the archiver leaves it hot). The rows
//!    that do move are rolled up into their day's rollups (ADR-027).
//! 4. The exclusive section, constant work per chunk: lock `events`, record
//!    the files, drop the chunks, put the set-aside rows back. Commit.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use futures::stream::BoxStream;
use sqlx::pool::PoolConnection;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::catalog::manifest::{NewManifestEntry, insert_files};
use crate::shared::copy::{CopyRows, EventRow, copy_chunk_sql};
use crate::shared::event_key::{EventKey, split_keys};
use crate::{Chunk, Store, StoreError, shared::locks};

/// A connection reading chunks out with `COPY`. Dropped without
/// [`ChunkRead::finish`] (a read abandoned halfway), its connection is
/// closed instead of going back to the pool mid-`COPY`.
#[derive(Debug)]
pub struct ChunkRead {
    conn: PoolConnection<Postgres>,
    read_at: DateTime<Utc>,
    finished: bool,
}

impl Store {
    /// A connection for reading chunks, and the database's clock before any
    /// of its reads takes a snapshot.
    pub async fn begin_chunk_read(&self) -> Result<ChunkRead, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let read_at = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *conn)
            .await?;
        Ok(ChunkRead {
            conn,
            read_at,
            finished: false,
        })
    }
}

impl ChunkRead {
    /// The database clock when the read began.
    pub fn read_at(&self) -> DateTime<Utc> {
        self.read_at
    }

    /// The rows of `chunk`, ordered by project and time.
    pub async fn rows(&mut self, chunk: &Chunk) -> Result<ChunkRows<'_>, StoreError> {
        let stream = self
            .conn
            .copy_out_raw(&copy_chunk_sql(chunk.start, chunk.end))
            .await?;
        Ok(ChunkRows {
            stream,
            rows: CopyRows::default(),
        })
    }

    /// The read completed: the connection goes back to the pool.
    pub fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for ChunkRead {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.close_on_drop();
        }
    }
}

/// Rows streaming out of one chunk.
pub struct ChunkRows<'c> {
    stream: BoxStream<'c, Result<bytes::Bytes, sqlx::Error>>,
    rows: CopyRows,
}

impl std::fmt::Debug for ChunkRows<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkRows").finish_non_exhaustive()
    }
}

impl ChunkRows<'_> {
    /// The next row; `None` at the end of a complete stream (a stream that
    /// ends early is an error).
    pub async fn next(&mut self) -> Result<Option<EventRow<'_>>, StoreError> {
        loop {
            if self.rows.has_row()? {
                return self.rows.next_row();
            }
            match self.stream.try_next().await? {
                // After the trailer the stream still ends the COPY on the
                // connection: read it to its end before saying so.
                Some(_) if self.rows.finished() => {}
                Some(piece) => self.rows.extend(&piece),
                None if self.rows.finished() => return Ok(None),
                None => {
                    return Err(StoreError::Unexpected(
                        "the COPY stream of the chunk ended early".into(),
                    ));
                }
            }
        }
    }
}

/// One archive commit in progress (see the module docs).
#[derive(Debug)]
pub struct ArchiveCommit<'h> {
    hot: &'h Store,
    tx: Transaction<'static, Postgres>,
    run_id: i64,
    /// Days with rows set aside to put back.
    kept_days: BTreeSet<NaiveDate>,
    /// The files recorded, published in the lake catalog at commit.
    recorded: Vec<NewManifestEntry>,
    /// When the transaction began (the run's commit time is recorded).
    began: std::time::Instant,
}

/// A chunk's rows now, per project, besides those that arrived after its
/// read (their project and id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recount {
    pub rows: BTreeMap<i64, i64>,
    pub arrived: Vec<EventKey>,
}

impl Store {
    /// Steps 1 and 2: `Ok(Err(holder))` when the lease no longer names
    /// `run_id` (nothing may be committed). Waits at most `lock_timeout`
    /// for the days' locks.
    pub async fn begin_archive_commit(
        &self,
        run_id: i64,
        days: &BTreeSet<NaiveDate>,
        lock_timeout: Duration,
    ) -> Result<Result<ArchiveCommit<'_>, Option<i64>>, StoreError> {
        let tx = match crate::catalog::runs::begin_fenced(&self.pool, run_id, days, lock_timeout)
            .await?
        {
            Ok(tx) => tx,
            Err(holder) => return Ok(Err(holder)),
        };
        Ok(Ok(ArchiveCommit {
            hot: self,
            tx,
            run_id,
            kept_days: BTreeSet::new(),
            recorded: Vec::new(),
            began: std::time::Instant::now(),
        }))
    }
}

impl ArchiveCommit<'_> {
    /// Step 3 for one chunk: its rows per project now, not counting rows
    /// that arrived at or after `since` whose (project, id) are not in
    /// `seen` (`None`: the read remembered too many to tell; then no row
    /// counts as arrived).
    pub async fn recount(
        &mut self,
        chunk: &Chunk,
        since: DateTime<Utc>,
        seen: Option<&HashSet<EventKey>>,
    ) -> Result<Recount, StoreError> {
        let now: Vec<(i64, i64, Vec<Uuid>)> = sqlx::query_as(
            "SELECT project_id, count(*),
                    coalesce(array_agg(event_id) FILTER (WHERE received_at >= $3), '{}')
               FROM events WHERE ts >= $1 AND ts < $2 GROUP BY project_id",
        )
        .bind(chunk.start)
        .bind(chunk.end)
        .bind(since)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut arrived = Vec::new();
        let mut rows = BTreeMap::new();
        for (project, n, recent) in now {
            let new: Vec<EventKey> = match seen {
                Some(seen) => recent
                    .into_iter()
                    .map(|id| (project, id))
                    .filter(|key| !seen.contains(key))
                    .collect(),
                None => Vec::new(),
            };
            let n = n - new.len() as i64;
            if n > 0 {
                rows.insert(project, n);
            }
            arrived.extend(new);
        }
        Ok(Recount { rows, arrived })
    }

    /// Copies the rows of `chunk` with the keys `keys` aside; they go back
    /// into the day at [`Self::commit`] and stay hot.
    pub async fn set_aside(&mut self, chunk: &Chunk, keys: &[EventKey]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "CREATE TEMP TABLE IF NOT EXISTS strata_kept (LIKE events INCLUDING DEFAULTS) ON COMMIT DROP",
        )
        .execute(&mut *self.tx)
        .await?;
        let (projects, ids) = split_keys(keys);
        sqlx::query(
            "INSERT INTO strata_kept SELECT * FROM events
              WHERE ts >= $1 AND ts < $2
                AND (project_id, event_id) IN (SELECT * FROM unnest($3::int8[], $4::uuid[]))",
        )
        .bind(chunk.start)
        .bind(chunk.end)
        .bind(projects)
        .bind(ids)
        .execute(&mut *self.tx)
        .await?;
        self.kept_days.insert(chunk.day());
        Ok(())
    }

    /// Step 3, continued, for a chunk that passed its recount: the rollups
    /// (ADR-027, `rollups.rs`) of the rows it archives (the chunk less the
    /// rows set aside), merged per project into the day's rollup in this
    /// transaction, before the exclusive section. `files`: the new files
    /// per project. Returns the projects whose rollup was left stale (it
    /// did not cover the day's earlier files; a rebuild mends it).
    pub async fn record_rollups(
        &mut self,
        chunk: &Chunk,
        arrived: &[EventKey],
        files: &BTreeMap<i64, i64>,
    ) -> Result<Vec<i64>, StoreError> {
        let day = chunk.day();
        let by_project = crate::summaries::rollups::aggregate_events(
            &mut self.tx,
            (chunk.start, chunk.end),
            arrived,
        )
        .await?;
        let mut stale = Vec::new();
        for (project, rollup) in &by_project {
            let n = files.get(project).copied().unwrap_or(0);
            if !crate::summaries::rollups::merge_archived(&mut self.tx, *project, day, rollup, n)
                .await?
            {
                stale.push(*project);
            }
        }
        Ok(stale)
    }

    /// Step 4 begins: `events` exclusively, waiting at most `wait`.
    pub async fn lock_events(&mut self, wait: Duration) -> Result<(), StoreError> {
        Ok(locks::lock_events_exclusive(&mut self.tx, wait).await?)
    }

    /// Records a chunk's files in the manifest.
    pub async fn record_files(&mut self, files: Vec<NewManifestEntry>) -> Result<(), StoreError> {
        insert_files(&mut self.tx, self.run_id, &files).await?;
        self.recorded.extend(files);
        Ok(())
    }

    /// Drops the chunk (an error if it no longer exists).
    pub async fn drop_chunk(&mut self, chunk: &Chunk) -> Result<(), StoreError> {
        self.hot.drop_chunk(&mut self.tx, chunk).await?;
        crate::summaries::seal::forget_day(&mut self.tx, chunk.day()).await
    }

    /// Puts the set-aside rows back, publishes the recorded files as the
    /// lake catalog's next snapshot and commits.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let message = format!("archive run {}", self.run_id);
        let lake = std::time::Instant::now();
        crate::catalog::lake::commit(&mut self.tx, &self.recorded, &[], &message).await?;
        let lake = lake.elapsed();
        if !self.kept_days.is_empty() {
            for day in &self.kept_days {
                self.hot.recreate_day(&mut self.tx, *day).await?;
            }
            sqlx::query("INSERT INTO events SELECT * FROM strata_kept")
                .execute(&mut *self.tx)
                .await?;
        }
        // What the commit cost, and the lake catalog's part of it (before
        // the COMMIT itself, which is counted in neither).
        sqlx::query(
            "UPDATE archive_runs SET commit_seconds = commit_seconds + $2,
                    lake_seconds = lake_seconds + $3 WHERE id = $1",
        )
        .bind(self.run_id)
        .bind(self.began.elapsed().as_secs_f64())
        .bind(lake.as_secs_f64())
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await?;
        Ok(())
    }
}
