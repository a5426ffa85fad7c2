//! One request's plan: a PostgreSQL snapshot's manifest, current rollups
//! and hot days, the cold executor (cache, then DuckDB over local files), and the `meta`
//! every answer carries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use duckdb::Connection;
use strata_cold::WantedFile;
use strata_model::ProjectId;
use strata_store::{HotScope, ManifestEntry, ReadSnapshot, RollupRead, RollupRows, RollupSource};
use tracing::Instrument;

use crate::meta::{CacheMeta, ColdMeta, HotMeta, Meta, RetentionMeta, RollupMeta, ranges};
use crate::{Planner, QueryError};

/// Hot (event_type, user) pairs per batch streamed into DuckDB, and
/// batches buffered between the two halves: bounds the memory of a
/// mixed-tier top-events request, whatever the range.
pub(crate) const PAIR_BATCH: usize = 8_192;
pub(crate) const PAIR_BATCHES_IN_FLIGHT: usize = 2;

/// What one snapshot says about the days of a request.
pub(crate) struct Plan {
    /// Every cold file of the range.
    pub files: Vec<ManifestEntry>,
    /// The files of the cold days no current rollup answers: the ones to read.
    pub parquet: Vec<ManifestEntry>,
    pub cold_days: BTreeSet<NaiveDate>,
    /// Rollups of cold days that cover exactly the day's files now.
    pub rollups: RollupRead,
    pub hot_days: BTreeSet<NaiveDate>,
    /// Rollups of sealed hot days: each day's rows are its rollup plus
    /// its late events.
    pub sealed: RollupRead,
    pub both: BTreeSet<NaiveDate>,
    /// The project's retention policy, when the request reaches before
    /// its horizon: those days are not read (ADR-031).
    pub expired: Option<RetentionMeta>,
    /// The first day read: the request's, or the retention horizon when
    /// later. Ranges read outside the plan's day lists start here.
    pub from: NaiveDate,
    pub started: Instant,
}

impl Plan {
    /// Answer every day from its files and rows after all.
    pub fn without_rollups(&mut self) {
        self.rollups = RollupRead::default();
        self.sealed = RollupRead::default();
        self.parquet = self.files.clone();
    }

    /// Whether any day has a rollup to answer from.
    pub fn has_rollups(&self) -> bool {
        !self.rollups.days.is_empty() || !self.sealed.days.is_empty()
    }

    /// The hot rows still read when rollups answer: every row of the
    /// unsealed hot days of `days`, the late events of the sealed ones.
    pub fn hot_scope(&self, days: &BTreeSet<NaiveDate>) -> HotScope {
        let (late, whole) = self
            .hot_days
            .intersection(days)
            .copied()
            .partition(|d| self.sealed.days.contains_key(d));
        HotScope { whole, late }
    }
}

/// Keeps the rollups whose source is exactly the day's files in `files`.
fn current_rollups(mut read: RollupRead, files: &[ManifestEntry]) -> RollupRead {
    let mut per_day: BTreeMap<NaiveDate, RollupSource> = BTreeMap::new();
    for f in files {
        let s = per_day.entry(f.day).or_default();
        s.cold_files += 1;
        s.cold_rows += f.rows;
    }
    read.days.retain(|day, _| {
        per_day
            .get(day)
            .is_some_and(|now| read.sources.get(day) == Some(now))
    });
    read.sources.retain(|day, _| read.days.contains_key(day));
    read
}

/// A cold query's output and what it cost.
pub(crate) struct ColdPart<T> {
    pub value: T,
    pub meta: ColdMeta,
}

/// The cold part's value (the default when no file was read) with the hot
/// half's value absorbed into it, and the cold part's meta.
pub(crate) fn with_hot<T: Default>(
    cold: Option<ColdPart<T>>,
    hot: T,
    absorb: fn(&mut T, T),
) -> (T, Option<ColdMeta>) {
    let (mut value, meta) = match cold {
        Some(part) => (part.value, Some(part.meta)),
        None => (T::default(), None),
    };
    absorb(&mut value, hot);
    (value, meta)
}

pub(crate) fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Rows of DuckDB's `count(*)` etc. as unsigned.
pub(crate) fn u(n: i64) -> u64 {
    n.max(0) as u64
}

impl Planner {
    pub(crate) async fn plan(
        &self,
        project: ProjectId,
        from: NaiveDate,
        to: NaiveDate,
        rollups: Option<RollupRows<'_>>,
    ) -> Result<(ReadSnapshot, Plan), QueryError> {
        let started = Instant::now();
        let mut snap = self.hot.read_snapshot(self.config.lock_timeout).await?;
        // Days before the retention horizon are never read, whether or not
        // the archiver has deleted them yet.
        let horizon = snap.horizon(project, Utc::now().date_naive()).await?;
        let expired = horizon
            .filter(|(_, h)| from < *h)
            .map(|(days, h)| RetentionMeta {
                days: days.days(),
                expired_before: h,
            });
        let from = horizon.map_or(from, |(_, h)| from.max(h));
        let files = snap.manifest(project, from, to).await?;
        let hot_days = snap.hot_days(from, to).await?;
        let cold_days: BTreeSet<NaiveDate> = files.iter().map(|f| f.day).collect();
        let both = hot_days.intersection(&cold_days).copied().collect();
        // A statistic that cannot use rollups (`None`) does not read them.
        let (rollups, mut sealed) = match rollups {
            Some(which) => snap.rollups(project, (from, to), which).await?,
            None => Default::default(),
        };
        sealed.days.retain(|d, _| hot_days.contains(d));
        let rollups = current_rollups(rollups, &files);
        let parquet = files
            .iter()
            .filter(|f| !rollups.days.contains_key(&f.day))
            .cloned()
            .collect();
        Ok((
            snap,
            Plan {
                files,
                parquet,
                cold_days,
                rollups,
                hot_days,
                sealed,
                both,
                expired,
                from,
                started,
            },
        ))
    }

    /// Fetches `files` (through the cache when remote) and runs `work` over
    /// their local paths, each with its day. `None` when there are no files.
    /// The future owns everything it uses, so it can run beside the hot half.
    pub(crate) fn cold<T: Send + 'static>(
        &self,
        files: &[ManifestEntry],
        work: impl FnOnce(&Connection, Vec<(NaiveDate, PathBuf)>) -> Result<T, QueryError>
        + Send
        + 'static,
    ) -> impl Future<Output = Result<Option<ColdPart<T>>, QueryError>> + Send + 'static {
        let files = files.to_vec();
        let cache = self.files.clone();
        let duck = Arc::clone(&self.duck);
        let span = tracing::info_span!("cold_tier", files = files.len());
        async move {
            if files.is_empty() {
                return Ok(None);
            }
            let started = Instant::now();
            let refs: Vec<WantedFile> = files
                .iter()
                .map(|f| WantedFile {
                    day: f.day,
                    key: f.object_key.clone(),
                    bytes: u(f.bytes),
                })
                .collect();
            let lease = cache.materialize(&refs).await?;
            let days: Vec<NaiveDate> = files.iter().map(|f| f.day).collect();
            let located: Vec<(NaiveDate, PathBuf)> = days
                .iter()
                .copied()
                .zip(lease.paths.iter().cloned())
                .collect();
            let value = match duck.run(move |conn| work(conn, located)).await {
                Ok(v) => v,
                Err(QueryError::Engine(e)) if is_file_error(&e) => {
                    // A cached file passed the size and magic checks but does
                    // not read: discard it so the next request fetches it again.
                    lease.invalidate();
                    return Err(QueryError::ColdUnavailable {
                        days: days.into_iter().collect(),
                        reason: format!("a cold file could not be read and was discarded: {e}"),
                    });
                }
                Err(e) => return Err(e),
            };
            let cold_days: BTreeSet<NaiveDate> = days.into_iter().collect();
            let meta = ColdMeta {
                days: cold_days.len(),
                day_ranges: ranges(&cold_days),
                files: files.len() as u64,
                rows: files.iter().map(|f| u(f.rows)).sum(),
                bytes: files.iter().map(|f| u(f.bytes)).sum(),
                ms: ms(started),
                cache: CacheMeta {
                    in_place: !lease.cached,
                    hits: lease.hits,
                    misses: lease.misses,
                    fetched_bytes: lease.fetched_bytes,
                },
                rollups: RollupMeta::default(),
            };
            drop(lease);
            Ok(Some(ColdPart { value, meta }))
        }
        .instrument(span)
    }

    pub(crate) fn meta(
        &self,
        plan: &Plan,
        hot_rows: u64,
        hot_ms: u64,
        cold: Option<ColdMeta>,
    ) -> Meta {
        let mut cold = cold.unwrap_or_else(|| ColdMeta {
            cache: CacheMeta {
                in_place: self.files.is_local(),
                ..CacheMeta::default()
            },
            ..ColdMeta::default()
        });
        // Every cold day of the range, whether its files or its rollup
        // answered; files, rows and bytes are what was read.
        cold.days = plan.cold_days.len();
        cold.day_ranges = ranges(&plan.cold_days);
        let rollup_days: BTreeSet<NaiveDate> = plan.rollups.days.keys().copied().collect();
        cold.rollups = RollupMeta {
            days: rollup_days.len(),
            day_ranges: ranges(&rollup_days),
            bytes: plan.rollups.bytes,
        };
        let sealed_days: BTreeSet<NaiveDate> = plan.sealed.days.keys().copied().collect();
        let meta = Meta {
            hot: HotMeta {
                days: plan.hot_days.len(),
                day_ranges: ranges(&plan.hot_days),
                rows: hot_rows,
                ms: hot_ms,
                rollups: RollupMeta {
                    days: sealed_days.len(),
                    day_ranges: ranges(&sealed_days),
                    bytes: plan.sealed.bytes,
                },
            },
            cold,
            both_days: plan.both.iter().copied().collect(),
            retention: plan.expired,
            ms: ms(plan.started),
        };
        self.counters.add(&meta);
        meta
    }
}

/// Appends every batch the hot half sends to `table`, until it is done (or
/// has failed, and then its error is the one reported).
pub(crate) fn append_batches<T>(
    conn: &Connection,
    table: &str,
    rx: &mut tokio::sync::mpsc::Receiver<Vec<T>>,
    row: impl Fn(&mut duckdb::Appender<'_>, &T) -> duckdb::Result<()>,
) -> Result<(), QueryError> {
    while let Some(batch) = rx.blocking_recv() {
        let mut app = conn.appender(table)?;
        for item in &batch {
            row(&mut app, item)?;
        }
        app.flush()?;
    }
    Ok(())
}

/// DuckDB errors that come from reading a file rather than from our SQL.
fn is_file_error(e: &duckdb::Error) -> bool {
    let msg = e.to_string();
    msg.contains(".parquet") || msg.contains("IO Error")
}
