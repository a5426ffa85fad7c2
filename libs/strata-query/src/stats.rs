//! The three stats, planned over both tiers and merged exactly.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use duckdb::Connection;
use serde::Serialize;
use strata_cold::FileRef;
use strata_hot::{ColdFile, ReadSnapshot};
use strata_model::{DayRange, Period, ProjectId, day_number, from_day_number};
use tracing::Instrument;
use utoipa::ToSchema;

use crate::duck::{rows, source};
use crate::merge::{DauMerge, RetentionMerge, cohorts_from_counts};
use crate::meta::{CacheMeta, ColdMeta, HotMeta, Meta, ranges};
use crate::{Planner, QueryError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DauPoint {
    pub date: NaiveDate,
    pub users: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DauResponse {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub days: Vec<DauPoint>,
    pub meta: Meta,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TopEvent {
    pub event_type: String,
    pub count: u64,
    pub users: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopEventsResponse {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub events: Vec<TopEvent>,
    pub meta: Meta,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Cohort {
    /// First day of the cohort's period (a Monday for weeks).
    pub cohort: NaiveDate,
    pub size: u64,
    /// `retained[k]` for k = 0 … periods−1: cohort users active in period
    /// cohort+k (`retained[0]` = `size`); periods that have not started yet
    /// are left out, so a recent cohort has fewer than `periods` values.
    pub retained: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetentionResponse {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub period: &'static str,
    /// Periods tracked per cohort: the length of a complete `retained`.
    pub periods: u32,
    /// Cohorts whose period has started, oldest first; a period in the
    /// future forms no cohort, even for users whose first event is dated
    /// in it.
    pub cohorts: Vec<Cohort>,
    pub meta: Meta,
}

/// Hot (event_type, user) pairs per batch streamed into DuckDB, and
/// batches buffered between the two halves: bounds the memory of a
/// mixed-tier top-events request, whatever the range.
const PAIR_BATCH: usize = 8_192;
const PAIR_BATCHES_IN_FLIGHT: usize = 2;

/// What one snapshot says about the days of a request.
struct Plan {
    files: Vec<ColdFile>,
    hot_days: BTreeSet<NaiveDate>,
    both: BTreeSet<NaiveDate>,
    started: Instant,
}

/// A cold query's output and what it cost.
struct ColdPart<T> {
    value: T,
    meta: ColdMeta,
}

fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Rows of DuckDB's `count(*)` etc. as unsigned.
fn u(n: i64) -> u64 {
    n.max(0) as u64
}

impl Planner {
    async fn plan(
        &self,
        project: ProjectId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<(ReadSnapshot, Plan), QueryError> {
        let started = Instant::now();
        let mut snap = self.hot.read_snapshot(self.config.lock_timeout).await?;
        let files = snap.manifest(project, from, to).await?;
        let hot_days = snap.hot_days(from, to).await?;
        let cold_days: BTreeSet<NaiveDate> = files.iter().map(|f| f.day).collect();
        let both = hot_days.intersection(&cold_days).copied().collect();
        Ok((
            snap,
            Plan {
                files,
                hot_days,
                both,
                started,
            },
        ))
    }

    /// Fetches `files` (through the cache when remote) and runs `work` over
    /// their local paths, each with its day. `None` when there are no files.
    /// The future owns everything it uses, so it can run beside the hot half.
    fn cold<T: Send + 'static>(
        &self,
        files: &[ColdFile],
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
            let refs: Vec<FileRef> = files
                .iter()
                .map(|f| FileRef {
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
            };
            drop(lease);
            Ok(Some(ColdPart { value, meta }))
        }
        .instrument(span)
    }

    fn meta(&self, plan: &Plan, hot_rows: u64, hot_ms: u64, cold: Option<ColdMeta>) -> Meta {
        let meta = Meta {
            hot: HotMeta {
                days: plan.hot_days.len(),
                day_ranges: ranges(&plan.hot_days),
                rows: hot_rows,
                ms: hot_ms,
            },
            cold: cold.unwrap_or_else(|| ColdMeta {
                cache: CacheMeta {
                    in_place: self.files.is_local(),
                    ..CacheMeta::default()
                },
                ..ColdMeta::default()
            }),
            both_days: plan.both.iter().copied().collect(),
            ms: ms(plan.started),
        };
        self.counters.add(&meta);
        meta
    }

    /// Distinct users per day of `range`, zero-filled.
    pub async fn dau(
        &self,
        project: ProjectId,
        range: DayRange,
    ) -> Result<DauResponse, QueryError> {
        let (from, to) = (range.from(), range.to());
        let (mut snap, plan) = self.plan(project, from, to).await?;
        let both = plan.both.clone();
        let both_cold = both.clone();
        // The hot half ends the snapshot as soon as it is done: the cold
        // files it listed are immutable, so the lock need not outlive it.
        let hot = async move {
            let started = Instant::now();
            let counts = snap.dau(project, from, to).await?;
            let pairs = snap.day_users(project, &both).await?;
            snap.finish().await?;
            Ok::<_, QueryError>((counts, pairs, ms(started)))
        }
        .instrument(tracing::info_span!("hot_tier", stat = "dau"));
        let cold = self.cold(&plan.files, move |conn, files| {
            let (shared, alone): (Vec<_>, Vec<_>) =
                files.into_iter().partition(|(d, _)| both_cold.contains(d));
            let paths = |v: Vec<(NaiveDate, PathBuf)>| -> Vec<PathBuf> {
                v.into_iter().map(|(_, p)| p).collect()
            };
            let counts: Vec<(i32, i64)> = if alone.is_empty() {
                Vec::new()
            } else {
                rows(
                    conn,
                    &format!(
                        "SELECT day_n, count(DISTINCT user_id) FROM {} GROUP BY day_n",
                        source(&paths(alone))
                    ),
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
            };
            let pairs: Vec<(i32, String)> = if shared.is_empty() {
                Vec::new()
            } else {
                rows(
                    conn,
                    &format!(
                        "SELECT DISTINCT day_n, user_id FROM {}",
                        source(&paths(shared))
                    ),
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
            };
            Ok((counts, pairs))
        });
        let ((hot_counts, hot_pairs, hot_ms), cold) = tokio::try_join!(hot, cold)?;

        let mut merge = DauMerge::default();
        let mut hot_rows = 0;
        for c in &hot_counts {
            hot_rows += u(c.rows);
            if !plan.both.contains(&c.day) {
                merge.count(c.day, u(c.users));
            }
        }
        for (d, user) in hot_pairs {
            merge.user(d, user);
        }
        let cold_meta = cold.map(|part| {
            let (counts, pairs) = part.value;
            for (d, n) in counts {
                merge.count(from_day_number(d), u(n));
            }
            for (d, user) in pairs {
                merge.user(from_day_number(d), user);
            }
            part.meta
        });
        let days = merge.finish(&range);
        let meta = self.meta(&plan, hot_rows, hot_ms, cold_meta);
        Ok(DauResponse {
            from,
            to,
            days,
            meta,
        })
    }

    /// Event types by count (descending, ties by name), with distinct users.
    pub async fn top_events(
        &self,
        project: ProjectId,
        range: DayRange,
        limit: u32,
    ) -> Result<TopEventsResponse, QueryError> {
        let (from, to) = (range.from(), range.to());
        let (mut snap, plan) = self.plan(project, from, to).await?;
        let hot_started = Instant::now();
        let (mut events, hot_rows, hot_ms, cold_meta) = if plan.files.is_empty() {
            // Hot only: PostgreSQL's answer is final.
            let hot = async {
                let hot = snap.top_events(project, from, to).await?;
                snap.finish().await?;
                Ok::<_, QueryError>(hot)
            }
            .instrument(tracing::info_span!("hot_tier", stat = "top_events"))
            .await?;
            let rows = hot.iter().map(|t| u(t.count)).sum();
            let events = hot
                .into_iter()
                .map(|t| TopEvent {
                    event_type: t.event_type,
                    count: u(t.count),
                    users: u(t.users),
                })
                .collect();
            (events, rows, ms(hot_started), None)
        } else if plan.hot_days.is_empty() {
            // Cold only: DuckDB's answer is final.
            snap.finish().await?;
            let part = self
                .cold(&plan.files, |conn, files| {
                    let paths: Vec<PathBuf> = files.into_iter().map(|(_, p)| p).collect();
                    rows(
                        conn,
                        &format!(
                            "SELECT event_type, count(*), count(DISTINCT user_id) FROM {}
                              GROUP BY event_type",
                            source(&paths)
                        ),
                        |r| Ok(top_event(r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                })
                .await?
                .ok_or_else(|| QueryError::Internal("cold files vanished".into()))?;
            (part.value, 0, 0, Some(part.meta))
        } else {
            // Both: DuckDB groups the cold (event_type, user) pairs while
            // PostgreSQL groups the hot ones; the hot pairs are streamed into
            // DuckDB in bounded batches (two in flight) and distinct users
            // counted over the union.
            let (tx, mut rx) =
                tokio::sync::mpsc::channel::<Vec<(String, String, i64)>>(PAIR_BATCHES_IN_FLIGHT);
            let hot = async move {
                let started = Instant::now();
                let rows = snap
                    .type_users_into(project, (from, to), PAIR_BATCH, &tx)
                    .await?;
                drop(tx);
                snap.finish().await?;
                Ok::<_, QueryError>((rows, ms(started)))
            }
            .instrument(tracing::info_span!("hot_tier", stat = "top_events"));
            let cold = self.cold(&plan.files, move |conn, files| {
                let paths: Vec<PathBuf> = files.into_iter().map(|(_, p)| p).collect();
                conn.execute_batch(&format!(
                    "CREATE TEMP TABLE cold_pairs AS
                       SELECT event_type, user_id, count(*) AS n FROM {}
                        GROUP BY event_type, user_id;
                     CREATE TEMP TABLE hot_pairs (event_type VARCHAR, user_id VARCHAR, n BIGINT);",
                    source(&paths)
                ))?;
                append_batches(conn, "hot_pairs", &mut rx, |app, (t, user, n)| {
                    app.append_row(duckdb::params![t, user, n])
                })?;
                rows(
                    conn,
                    "SELECT event_type, CAST(sum(n) AS BIGINT), count(DISTINCT user_id)
                       FROM (SELECT * FROM cold_pairs UNION ALL SELECT * FROM hot_pairs)
                      GROUP BY event_type",
                    |r| Ok(top_event(r.get(0)?, r.get(1)?, r.get(2)?)),
                )
            });
            let ((hot_rows, hot_ms), part) = tokio::try_join!(hot, cold)?;
            let part = part.ok_or_else(|| QueryError::Internal("cold files vanished".into()))?;
            (part.value, hot_rows, hot_ms, Some(part.meta))
        };
        events.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.event_type.cmp(&b.event_type))
        });
        events.truncate(limit as usize);
        let meta = self.meta(&plan, hot_rows, hot_ms, cold_meta);
        Ok(TopEventsResponse {
            from,
            to,
            events,
            meta,
        })
    }

    /// Cohorts by the period of each user's first event, and how many of
    /// them were active in each following period.
    pub async fn retention(
        &self,
        project: ProjectId,
        range: DayRange,
        period: Period,
        periods: u32,
    ) -> Result<RetentionResponse, QueryError> {
        let (from, to) = (range.from(), range.to());
        let len = period.days();
        let today = day_number(Utc::now().date_naive());
        let first_cohort = period.start_of_number(day_number(from));
        let last_cohort = period.start_of_number(day_number(to));
        let n = periods as i32;
        // Activity that can count: from the first cohort to the last
        // cohort's last tracked period, never past the current period (a
        // future-dated event in it counts; the period has started).
        let current_end = period.start_of_number(today) + len - 1;
        let activity_to = (last_cohort + n * len - 1).min(current_end);
        let cohort_days = (
            from_day_number(first_cohort),
            from_day_number(last_cohort + len - 1),
        );
        let activity = (
            from_day_number(first_cohort),
            from_day_number(activity_to.max(first_cohort)),
        );

        let (mut snap, mut plan) = self.plan(project, activity.0, activity.1).await?;
        if activity_to < first_cohort {
            plan.files.clear();
        }
        let bounds = (first_cohort, last_cohort, today);
        let hot_started = Instant::now();
        let (cohorts, meta) = if plan.files.is_empty() {
            // Hot only (bounded by the hot window): merged here.
            let hot = async {
                let cohort_users = snap
                    .cohort_users(project, period, cohort_days.0, cohort_days.1)
                    .await?;
                let act = if activity_to < first_cohort || cohort_users.is_empty() {
                    Vec::new()
                } else {
                    snap.cohort_activity(project, period, cohort_days, activity)
                        .await?
                };
                snap.finish().await?;
                Ok::<_, QueryError>((cohort_users, act))
            }
            .instrument(tracing::info_span!("hot_tier", stat = "retention"))
            .await?;
            let (cohort_users, act) = hot;
            let mut merge = RetentionMerge::new(&cohort_users, len, periods);
            let mut hot_rows = 0;
            for (user, p, events) in &act {
                hot_rows += u(*events);
                merge.mark(user, *p);
            }
            let cohorts = merge.finish(first_cohort, last_cohort, today);
            (cohorts, self.meta(&plan, hot_rows, ms(hot_started), None))
        } else {
            // Both tiers: PostgreSQL streams the cohort users and their hot
            // activity into DuckDB in bounded batches, and DuckDB counts the
            // retained users per cohort and period over the union of both
            // tiers' activity. Nothing here grows with users or the range.
            let (users_tx, mut users_rx) =
                tokio::sync::mpsc::channel::<Vec<(String, i32)>>(PAIR_BATCHES_IN_FLIGHT);
            let (act_tx, mut act_rx) =
                tokio::sync::mpsc::channel::<Vec<(String, i32, i64)>>(PAIR_BATCHES_IN_FLIGHT);
            let hot = async move {
                snap.cohort_users_into(project, period, cohort_days, PAIR_BATCH, &users_tx)
                    .await?;
                drop(users_tx);
                let events = snap
                    .cohort_activity_into(
                        project,
                        period,
                        cohort_days,
                        activity,
                        PAIR_BATCH,
                        &act_tx,
                    )
                    .await?;
                drop(act_tx);
                snap.finish().await?;
                Ok::<_, QueryError>((events, ms(hot_started)))
            }
            .instrument(tracing::info_span!("hot_tier", stat = "retention"));
            let cold = self.cold(&plan.files, move |conn, files| {
                let paths: Vec<PathBuf> = files.into_iter().map(|(_, p)| p).collect();
                conn.execute_batch(
                    "CREATE TEMP TABLE cohort (user_id VARCHAR PRIMARY KEY, c INTEGER);
                 CREATE TEMP TABLE hot_act (user_id VARCHAR, p INTEGER);",
                )?;
                append_batches(conn, "cohort", &mut users_rx, |app, (user, c)| {
                    app.append_row(duckdb::params![user, c])
                })?;
                append_batches(conn, "hot_act", &mut act_rx, |app, (user, p, _)| {
                    app.append_row(duckdb::params![user, p])
                })?;
                let sizes = rows(conn, "SELECT c, count(*) FROM cohort GROUP BY c", |r| {
                    Ok((r.get::<_, i32>(0)?, r.get::<_, i64>(1)?))
                })?;
                let p = period.start_sql("day_n");
                let retained = rows(
                    conn,
                    &format!(
                        "WITH act AS (
                       SELECT DISTINCT user_id, p FROM (
                         SELECT user_id, CAST({p} AS INTEGER) AS p FROM {}
                          WHERE user_id IN (SELECT user_id FROM cohort)
                         UNION ALL SELECT user_id, p FROM hot_act))
                     SELECT c.c, CAST((a.p - c.c) // {len} AS INTEGER), count(*)
                       FROM act a JOIN cohort c USING (user_id)
                      WHERE a.p >= c.c AND a.p < c.c + {len} * {periods}
                      GROUP BY 1, 2",
                        source(&paths)
                    ),
                    |r| {
                        Ok((
                            r.get::<_, i32>(0)?,
                            r.get::<_, i32>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    },
                )?;
                Ok((sizes, retained))
            });
            let ((hot_rows, hot_ms), cold) = tokio::try_join!(hot, cold)?;
            let part = cold.ok_or_else(|| QueryError::Internal("cold files vanished".into()))?;
            let (sizes, retained) = &part.value;
            let cohorts = cohorts_from_counts(sizes, retained, bounds, len, periods);
            (cohorts, self.meta(&plan, hot_rows, hot_ms, Some(part.meta)))
        };
        Ok(RetentionResponse {
            from,
            to,
            period: period.as_str(),
            periods,
            cohorts,
            meta,
        })
    }
}

/// Appends every batch the hot half sends to `table`, until it is done (or
/// has failed, and then its error is the one reported).
fn append_batches<T>(
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

fn top_event(event_type: String, count: i64, users: i64) -> TopEvent {
    TopEvent {
        event_type,
        count: u(count),
        users: u(users),
    }
}

/// DuckDB errors that come from reading a file rather than from our SQL.
fn is_file_error(e: &duckdb::Error) -> bool {
    let msg = e.to_string();
    msg.contains(".parquet") || msg.contains("IO Error")
}
