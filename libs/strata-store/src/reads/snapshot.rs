//! Reads for the stats planner, all from one PostgreSQL snapshot.
//!
//! [`Store::read_snapshot`] opens a READ ONLY, REPEATABLE READ
//! transaction and, *before* its snapshot is taken, locks `events` in ACCESS
//! SHARE mode. The archiver's commit (manifest insert + chunk drop) holds
//! `events` in ACCESS EXCLUSIVE mode, so a snapshot is taken either wholly
//! before or wholly after each commit, and no chunk can be dropped while the
//! snapshot reads it: the manifest and the hot rows it returns never both hold
//! a row, and never both miss one. (Catalog lookups that expand partitions
//! are not MVCC-safe; the lock is what makes the hot half trustworthy.)
//!
//! Day arithmetic is done on day numbers (days since 1970-01-01) of
//! `ts AT TIME ZONE 'UTC'`, the same integers the cold tier's SQL computes
//! (both written in `strata_model`'s `days.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use roaring::RoaringBitmap;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::QueryAs;
use sqlx::{Executor, Postgres, Transaction};
use strata_model::{Period, ProjectId, RetentionDays};

use crate::catalog::manifest::ManifestEntry;
use crate::events::chunks::{Layout, list_chunks_on};
use crate::shared::days::day_start;
use crate::summaries::ordinals::Ordinals;
use crate::summaries::rollup_cache::RollupCache;
use crate::{Store, StoreError};

/// The day number of an event, in SQL (`strata_model::pg_day_number`).
const DAY_SQL: &str = "(((ts) AT TIME ZONE 'UTC')::date - DATE '1970-01-01')";

fn day_end(day: NaiveDate) -> DateTime<Utc> {
    day_start(day) + chrono::Duration::days(1)
}

/// Which hot rows a statistic reads from PostgreSQL: every row of `whole`
/// days, and only the late events (`seal.rs`) of `late` days, whose
/// rollups hold the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HotScope {
    pub whole: BTreeSet<NaiveDate>,
    pub late: BTreeSet<NaiveDate>,
}

impl HotScope {
    /// Every row of `days`.
    pub fn whole(days: &BTreeSet<NaiveDate>) -> Self {
        Self {
            whole: days.clone(),
            late: BTreeSet::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.whole.is_empty() && self.late.is_empty()
    }
}

/// The rows of `scope` as `(d, user_id, event_type, n)`: the day number,
/// the user, the type and how many events the row stands for. Each whole
/// day is its own range scan whose day number is a parameter, never
/// computed per row: PostgreSQL's `AT TIME ZONE` conversion cost about as
/// much as the scan itself (ADR-036), and one range over days far apart
/// would read every day between. Parameters: `$1` the project, `$2`, `$3`
/// the instants starting and ending each whole day, `$4` their day
/// numbers, `$5` the late days (see [`scoped`]).
fn scope_sql(scope: &HotScope) -> String {
    scope_sql_with(scope, false)
}

/// [`scope_sql`], with the rows' `properties` when `properties` (late
/// days' rows have none: NULL).
fn scope_sql_with(scope: &HotScope, properties: bool) -> String {
    let (events_col, late_col) = if properties {
        (", properties", ", NULL::jsonb")
    } else {
        ("", "")
    };
    // Without whole days, one branch over the empty arrays still names
    // every parameter (its bounds are NULL: no partition, no row).
    let mut parts: Vec<String> = (1..=scope.whole.len().max(1))
        .map(|i| {
            format!(
                "SELECT ($4::int4[])[{i}] AS d, user_id, event_type, 1::int8 AS n{events_col}
                   FROM events
                  WHERE project_id = $1
                    AND ts >= ($2::timestamptz[])[{i}] AND ts < ($3::timestamptz[])[{i}]"
            )
        })
        .collect();
    parts.push(format!(
        "SELECT (day - DATE '1970-01-01')::int4, user_id, event_type, events::int8{late_col}
           FROM hot_late_events WHERE day = ANY($5) AND project_id = $1"
    ));
    format!("({})", parts.join(" UNION ALL "))
}

/// `sql` (which reads [`scope_sql`] of `scope`) bound for `scope`; callers
/// bind `$6` on.
fn scoped<'q, O>(
    sql: &'q str,
    project: ProjectId,
    scope: &HotScope,
) -> QueryAs<'q, Postgres, O, PgArguments>
where
    O: for<'r> sqlx::FromRow<'r, PgRow>,
{
    let starts: Vec<DateTime<Utc>> = scope.whole.iter().map(|&d| day_start(d)).collect();
    let ends: Vec<DateTime<Utc>> = scope.whole.iter().map(|&d| day_end(d)).collect();
    let numbers: Vec<i32> = scope
        .whole
        .iter()
        .map(|&d| strata_model::day_number(d))
        .collect();
    let late: Vec<NaiveDate> = scope.late.iter().copied().collect();
    sqlx::query_as(sql)
        .bind(project.0)
        .bind(starts)
        .bind(ends)
        .bind(numbers)
        .bind(late)
}

/// `sql` bound with `$1` = the project and `$2`, `$3` = the instants that
/// bound the days `[from, to]`; callers bind any further parameters.
fn in_days<'q, O>(
    sql: &'q str,
    project: ProjectId,
    (from, to): (NaiveDate, NaiveDate),
) -> QueryAs<'q, Postgres, O, PgArguments>
where
    O: for<'r> sqlx::FromRow<'r, PgRow>,
{
    sqlx::query_as(sql)
        .bind(project.0)
        .bind(day_start(from))
        .bind(day_end(to))
}

/// `sql` bound for [`CohortActivity`] `a`: `$1`-`$3` as [`in_days`] over
/// `a.days`, `$4`, `$5` the instants bounding `a.cohort_days`, `$6` the
/// event type or NULL.
fn for_activity<'q, O>(
    sql: &'q str,
    project: ProjectId,
    a: CohortActivity<'q>,
) -> QueryAs<'q, Postgres, O, PgArguments>
where
    O: for<'r> sqlx::FromRow<'r, PgRow>,
{
    in_days(sql, project, a.days)
        .bind(day_start(a.cohort_days.0))
        .bind(day_end(a.cohort_days.1))
        .bind(a.event_type)
}

/// `user`'s ordinal in `ordinals`; every stored event's user has one
/// (written in the same transaction), so a missing one is an error, never
/// a user left out.
fn ordinal(ordinals: &HashMap<&str, u32>, user: &str) -> Result<u32, StoreError> {
    ordinals
        .get(user)
        .copied()
        .ok_or_else(|| StoreError::Unexpected(format!("user {user:?} has no first-seen record")))
}

/// Where streamed rows go, in batches.
pub type Sink<T> = tokio::sync::mpsc::Sender<Vec<T>>;

/// Sends the rows of `rows` to `sink` in batches of at most `batch` as
/// PostgreSQL streams them: memory is the batches in flight, never the
/// whole result. Returns the sum of `weight` over the rows; stops early,
/// without error, when the receiver is gone (its side reports why).
async fn stream_into<T: Send>(
    mut rows: futures::stream::BoxStream<'_, Result<T, sqlx::Error>>,
    batch: usize,
    sink: &Sink<T>,
    weight: fn(&T) -> i64,
) -> Result<u64, StoreError> {
    use futures::TryStreamExt;
    let batch = batch.max(1);
    let mut buf = Vec::with_capacity(batch);
    let mut total = 0u64;
    while let Some(row) = rows.try_next().await? {
        total += u64::try_from(weight(&row)).unwrap_or(0);
        buf.push(row);
        if buf.len() >= batch {
            let full = std::mem::replace(&mut buf, Vec::with_capacity(batch));
            if sink.send(full).await.is_err() {
                return Ok(total);
            }
        }
    }
    if !buf.is_empty() {
        let _ = sink.send(buf).await;
    }
    Ok(total)
}

/// Users first seen in a range of days: `what` (`user_id` or `ordinal`) and
/// the first event's time as stored, whose period [`cohort_of`] computes.
/// Parameters as [`in_days`].
fn cohort_sql(what: &str) -> String {
    format!(
        "SELECT {what}, first_ts FROM user_first_seen
          WHERE project_id = $1 AND first_ts >= $2 AND first_ts < $3"
    )
}

/// The start (day number) of the `period` holding the UTC day of
/// `first_ts`. Computed here rather than in SQL: PostgreSQL's per-row
/// time-zone conversion took more time than the index-only scan of the
/// cohort (6–10 ms against 2.5–3.5 ms for 8,800 cohort users at the
/// bench's default scale; ADR-036).
fn cohort_of(period: Period, first_ts: DateTime<Utc>) -> i32 {
    period.start_of_number(strata_model::day_number(first_ts.date_naive()))
}

fn cohort_activity_sql(period: Period) -> String {
    let p = period.start_sql(DAY_SQL);
    format!(
        "SELECT e.user_id, {p}::int4 AS p, count(*) FROM events e
           JOIN user_first_seen f ON f.project_id = e.project_id AND f.user_id = e.user_id
          WHERE e.project_id = $1 AND e.ts >= $2 AND e.ts < $3
            AND f.first_ts >= $4 AND f.first_ts < $5
            AND ($6::text IS NULL OR e.event_type = $6)
          GROUP BY e.user_id, p"
    )
}

/// Which activity of which cohorts a retention query reads: events in
/// `days` (of `event_type` only, when given) by users whose first event
/// falls in `cohort_days`, grouped by `period`.
#[derive(Debug, Clone, Copy)]
pub struct CohortActivity<'a> {
    pub period: Period,
    pub cohort_days: (NaiveDate, NaiveDate),
    pub days: (NaiveDate, NaiveDate),
    pub event_type: Option<&'a str>,
}

/// Distinct users and events of one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCount {
    pub day: NaiveDate,
    pub users: i64,
    pub rows: i64,
}

/// Events and distinct users of one event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeCount {
    pub event_type: String,
    pub count: i64,
    pub users: i64,
}

/// A consistent read of the manifest and the hot tier (see the module docs).
#[derive(Debug)]
pub struct ReadSnapshot {
    tx: Transaction<'static, Postgres>,
    layout: Layout,
    ordinals: Arc<Ordinals>,
    rollups: Arc<RollupCache>,
    /// Per project read so far: its `ordinals_epoch` in this snapshot.
    pub(crate) epochs: HashMap<i64, i64>,
}

impl Store {
    /// Opens a snapshot. Waits at most `lock_timeout` for an archive commit
    /// in progress to finish.
    pub async fn read_snapshot(&self, lock_timeout: Duration) -> Result<ReadSnapshot, StoreError> {
        let mut tx = self.pool.begin().await?;
        // One round trip (see `locks.rs`).
        let setup = crate::shared::locks::lock_for_snapshot(lock_timeout);
        (&mut *tx).execute(setup.as_str()).await?;
        Ok(ReadSnapshot {
            tx,
            layout: self.layout,
            ordinals: Arc::clone(&self.ordinals),
            rollups: Arc::clone(&self.rollups),
            epochs: HashMap::new(),
        })
    }
}

impl ReadSnapshot {
    pub(crate) fn conn(&mut self) -> &mut sqlx::PgConnection {
        &mut self.tx
    }

    /// Ends the (read-only) transaction.
    pub async fn finish(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// The project's committed cold files for days in `[from, to]`.
    pub async fn manifest(
        &mut self,
        project: ProjectId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<ManifestEntry>, StoreError> {
        crate::catalog::manifest::files_for_days(&mut self.tx, project, from, to).await
    }

    /// Days in `[from, to]` that have a hot chunk.
    pub async fn hot_days(
        &mut self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<BTreeSet<NaiveDate>, StoreError> {
        Ok(list_chunks_on(&mut self.tx, self.layout)
            .await?
            .iter()
            .map(|c| c.day())
            .filter(|d| (from..=to).contains(d))
            .collect())
    }

    /// Per day of `days` with events (of `event_type` only, when given):
    /// distinct users and events.
    pub async fn dau(
        &mut self,
        project: ProjectId,
        days: &BTreeSet<NaiveDate>,
        event_type: Option<&str>,
    ) -> Result<Vec<DayCount>, StoreError> {
        if days.is_empty() {
            return Ok(Vec::new());
        }
        let scope = HotScope::whole(days);
        // Users per day by hashing (day, user) pairs first: a plain
        // `count(DISTINCT …)` sorts every row.
        let sql = format!(
            "SELECT d, count(*), sum(n)::int8 FROM (
               SELECT e.d, e.user_id, sum(e.n) AS n FROM {} e
                WHERE ($6::text IS NULL OR e.event_type = $6) GROUP BY 1, 2) pairs
              GROUP BY d",
            scope_sql(&scope)
        );
        let rows: Vec<(i32, i64, i64)> = scoped(&sql, project, &scope)
            .bind(event_type)
            .fetch_all(&mut *self.tx)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(d, users, rows)| DayCount {
                day: strata_model::from_day_number(d),
                users,
                rows,
            })
            .collect())
    }

    /// The distinct (day, user) pairs of `days` (of `event_type` events only,
    /// when given).
    pub async fn day_users(
        &mut self,
        project: ProjectId,
        days: &BTreeSet<NaiveDate>,
        event_type: Option<&str>,
    ) -> Result<Vec<(NaiveDate, String)>, StoreError> {
        self.day_pairs(project, &HotScope::whole(days), event_type)
            .await
    }

    /// The project's rollups for days in `[from, to]`, the rows `which`
    /// names: of cold days (`rollups.rs`; the caller checks them against
    /// the manifest) and the complete ones of sealed hot days (`seal.rs`).
    pub async fn rollups(
        &mut self,
        project: ProjectId,
        (from, to): (NaiveDate, NaiveDate),
        which: crate::RollupRows<'_>,
    ) -> Result<(crate::RollupRead, crate::RollupRead), StoreError> {
        let cache = &self.rollups;
        let cold = crate::summaries::rollups::read(&mut self.tx, cache, project, (from, to), which)
            .await?;
        let hot =
            crate::summaries::seal::read(&mut self.tx, cache, project, (from, to), which).await?;
        Ok((cold, hot))
    }

    /// The users of the hot rows of `scope` (of `event_type` only, when
    /// given) as a set of ordinals per day.
    pub async fn day_ordinals(
        &mut self,
        project: ProjectId,
        scope: &HotScope,
        event_type: Option<&str>,
    ) -> Result<BTreeMap<NaiveDate, RoaringBitmap>, StoreError> {
        let pairs = self.day_pairs(project, scope, event_type).await?;
        let rows = pairs
            .into_iter()
            .map(|(day, user)| (day, user, 0))
            .collect();
        Ok(self
            .sets_by_key(project, rows)
            .await?
            .into_iter()
            .map(|(day, (_, users))| (day, users))
            .collect())
    }

    /// The ordinals of `users` of `project` as this snapshot sees them
    /// (users without one are left out): for user ids read elsewhere in the
    /// same request (a cold day's files), so that an erasure committing
    /// meanwhile cannot make one of them unknown or give it a new ordinal.
    pub async fn user_ordinals<'a>(
        &mut self,
        project: ProjectId,
        users: &[&'a str],
    ) -> Result<HashMap<&'a str, u32>, StoreError> {
        self.ordinals_of(project, users.iter().copied()).await
    }

    /// The ordinals of the distinct `users` of `project`, through the
    /// process's memory of them (`ordinals.rs`).
    async fn ordinals_of<'a>(
        &mut self,
        project: ProjectId,
        users: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<&'a str, u32>, StoreError> {
        let distinct: HashSet<&str> = users.collect();
        let epoch = match self.epochs.get(&project.0) {
            Some(e) => *e,
            None => {
                let e = crate::summaries::ordinals::epoch(&mut self.tx, project).await?;
                self.epochs.insert(project.0, e);
                e
            }
        };
        self.ordinals
            .of(&mut self.tx, project, epoch, distinct)
            .await
    }

    /// `(key, user, events)` rows as, per key, the events and the set of
    /// the users' ordinals.
    async fn sets_by_key<K: Ord + Clone>(
        &mut self,
        project: ProjectId,
        rows: Vec<(K, String, i64)>,
    ) -> Result<BTreeMap<K, (i64, RoaringBitmap)>, StoreError> {
        let ordinals = self
            .ordinals_of(project, rows.iter().map(|(_, u, _)| u.as_str()))
            .await?;
        let mut out: BTreeMap<K, (i64, RoaringBitmap)> = BTreeMap::new();
        for (key, user, n) in &rows {
            let o = ordinal(&ordinals, user)?;
            let e = out.entry(key.clone()).or_default();
            e.0 += n;
            e.1.insert(o);
        }
        Ok(out)
    }

    /// The distinct (day, user) pairs of the hot rows of `scope` (of
    /// `event_type` only, when given).
    async fn day_pairs(
        &mut self,
        project: ProjectId,
        scope: &HotScope,
        event_type: Option<&str>,
    ) -> Result<Vec<(NaiveDate, String)>, StoreError> {
        if scope.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT DISTINCT e.d, e.user_id FROM {} e
              WHERE ($6::text IS NULL OR e.event_type = $6)",
            scope_sql(scope)
        );
        let rows: Vec<(i32, String)> = scoped(&sql, project, scope)
            .bind(event_type)
            .fetch_all(&mut *self.tx)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(d, v)| (strata_model::from_day_number(d), v))
            .collect())
    }

    /// Per event type of the hot rows of `scope`: its events and the set
    /// of its users' ordinals.
    pub async fn type_ordinals(
        &mut self,
        project: ProjectId,
        scope: &HotScope,
    ) -> Result<BTreeMap<String, (i64, RoaringBitmap)>, StoreError> {
        if scope.is_empty() {
            return Ok(BTreeMap::new());
        }
        let sql = format!(
            "SELECT e.event_type, e.user_id, sum(e.n)::int8 FROM {} e GROUP BY 1, 2",
            scope_sql(scope)
        );
        let rows: Vec<(String, String, i64)> = scoped(&sql, project, scope)
            .fetch_all(&mut *self.tx)
            .await?;
        self.sets_by_key(project, rows).await
    }

    /// Events and distinct users per event type in `[from, to]`.
    pub async fn top_events(
        &mut self,
        project: ProjectId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<TypeCount>, StoreError> {
        let rows: Vec<(String, i64, i64)> = in_days(
            "SELECT event_type, count(*), count(DISTINCT user_id) FROM events
              WHERE project_id = $1 AND ts >= $2 AND ts < $3 GROUP BY event_type",
            project,
            (from, to),
        )
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(event_type, count, users)| TypeCount {
                event_type,
                count,
                users,
            })
            .collect())
    }

    /// Every (event_type, user) pair of hot events in `[from, to]` with
    /// its event count, streamed into `sink` (see [`stream_into`]).
    /// Returns how many events the pairs cover.
    pub async fn type_users_into(
        &mut self,
        project: ProjectId,
        days: (NaiveDate, NaiveDate),
        batch: usize,
        sink: &Sink<(String, String, i64)>,
    ) -> Result<u64, StoreError> {
        let q = in_days(
            "SELECT event_type, user_id, count(*) FROM events
              WHERE project_id = $1 AND ts >= $2 AND ts < $3 GROUP BY event_type, user_id",
            project,
            days,
        );
        stream_into(q.fetch(&mut *self.tx), batch, sink, |r| r.2).await
    }

    /// Every hot event of `types` with `from <= ts < to`, as `(user, time
    /// in microseconds, mask, property)` where the mask is the `masks`
    /// value of its type and the property the JSON text of its `property`
    /// (when one is asked for and present), handed to `each` as PostgreSQL
    /// streams them; returns how many.
    pub async fn funnel_events(
        &mut self,
        project: ProjectId,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        (types, masks): (&[String], &[i16]),
        property: Option<&str>,
        mut each: impl FnMut(&str, i64, u16, Option<&str>) + Send,
    ) -> Result<u64, StoreError> {
        use futures::TryStreamExt;
        let mut rows = sqlx::query_as::<_, (String, DateTime<Utc>, i16, Option<String>)>(
            "SELECT e.user_id, e.ts, s.m, (e.properties -> $6::text)::text FROM events e
               JOIN unnest($4::text[], $5::int2[]) AS s(t, m) ON s.t = e.event_type
              WHERE e.project_id = $1 AND e.ts >= $2 AND e.ts < $3",
        )
        .bind(project.0)
        .bind(from)
        .bind(to)
        .bind(types)
        .bind(masks)
        .bind(property)
        .fetch(&mut *self.tx);
        let mut n = 0;
        while let Some((user, ts, mask, value)) = rows.try_next().await? {
            n += 1;
            each(&user, ts.timestamp_micros(), mask as u16, value.as_deref());
        }
        Ok(n)
    }

    /// The distinct (day number, property, user) triples of the hot rows of
    /// `days` (of `event_type` only, when given), the property the JSON
    /// text of `property` (`None`: missing), handed to `each`; returns how
    /// many events they cover.
    pub async fn day_property_users(
        &mut self,
        project: ProjectId,
        days: &BTreeSet<NaiveDate>,
        (property, event_type): (&str, Option<&str>),
        mut each: impl FnMut(i32, Option<&str>, &str) + Send,
    ) -> Result<u64, StoreError> {
        use futures::TryStreamExt;
        if days.is_empty() {
            return Ok(0);
        }
        let scope = HotScope::whole(days);
        let sql = format!(
            "SELECT e.d, (e.properties -> $6::text)::text AS v, e.user_id, sum(e.n)::int8
               FROM {} e WHERE ($7::text IS NULL OR e.event_type = $7)
              GROUP BY 1, 2, 3",
            scope_sql_with(&scope, true)
        );
        let mut rows = scoped::<(i32, Option<String>, String, i64)>(&sql, project, &scope)
            .bind(property)
            .bind(event_type)
            .fetch(&mut *self.tx);
        let mut n = 0;
        while let Some((d, value, user, events)) = rows.try_next().await? {
            n += u64::try_from(events).unwrap_or(0);
            each(d, value.as_deref(), &user);
        }
        Ok(n)
    }

    /// Per (event type, property, user) of the hot events of `days`: how
    /// many, handed to `each`; the property as for
    /// [`Self::day_property_users`]. Returns how many events.
    pub async fn type_property_users(
        &mut self,
        project: ProjectId,
        days: &BTreeSet<NaiveDate>,
        property: &str,
        mut each: impl FnMut(&str, Option<&str>, &str, i64) + Send,
    ) -> Result<u64, StoreError> {
        use futures::TryStreamExt;
        if days.is_empty() {
            return Ok(0);
        }
        let scope = HotScope::whole(days);
        let sql = format!(
            "SELECT e.event_type, (e.properties -> $6::text)::text, e.user_id, sum(e.n)::int8
               FROM {} e GROUP BY 1, 2, 3",
            scope_sql_with(&scope, true)
        );
        let mut rows = scoped::<(String, Option<String>, String, i64)>(&sql, project, &scope)
            .bind(property)
            .fetch(&mut *self.tx);
        let mut n = 0;
        while let Some((t, value, user, events)) = rows.try_next().await? {
            n += u64::try_from(events).unwrap_or(0);
            each(&t, value.as_deref(), &user, events);
        }
        Ok(n)
    }

    /// The days among `days` with late events of `project` not yet folded
    /// into their seal (`seal.rs`).
    pub async fn late_days(
        &mut self,
        project: ProjectId,
        days: &BTreeSet<NaiveDate>,
    ) -> Result<BTreeSet<NaiveDate>, StoreError> {
        let days: Vec<NaiveDate> = days.iter().copied().collect();
        let late: Vec<NaiveDate> = sqlx::query_scalar(
            "SELECT DISTINCT day FROM hot_late_events WHERE project_id = $1 AND day = ANY($2)",
        )
        .bind(project.0)
        .bind(&days)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(late.into_iter().collect())
    }

    /// [`Self::cohort_users`], streamed into `sink`.
    pub async fn cohort_users_into(
        &mut self,
        project: ProjectId,
        period: Period,
        days: (NaiveDate, NaiveDate),
        batch: usize,
        sink: &Sink<(String, i32)>,
    ) -> Result<u64, StoreError> {
        use futures::{StreamExt, TryStreamExt};
        let sql = cohort_sql("user_id");
        let rows = in_days::<(String, DateTime<Utc>)>(&sql, project, days)
            .fetch(&mut *self.tx)
            .map_ok(move |(user, ts)| (user, cohort_of(period, ts)))
            .boxed();
        stream_into(rows, batch, sink, |_| 1).await
    }

    /// [`Self::cohort_activity`], streamed into `sink`; returns how many
    /// events the pairs cover.
    pub async fn cohort_activity_into(
        &mut self,
        project: ProjectId,
        a: CohortActivity<'_>,
        batch: usize,
        sink: &Sink<(String, i32, i64)>,
    ) -> Result<u64, StoreError> {
        let sql = cohort_activity_sql(a.period);
        let q = for_activity(&sql, project, a);
        stream_into(q.fetch(&mut *self.tx), batch, sink, |r| r.2).await
    }

    /// [`Self::cohort_users`] as user ordinals.
    pub async fn cohort_ordinals(
        &mut self,
        project: ProjectId,
        period: Period,
        first_from: NaiveDate,
        first_to: NaiveDate,
    ) -> Result<Vec<(i64, i32)>, StoreError> {
        let sql = cohort_sql("ordinal");
        let rows: Vec<(i64, DateTime<Utc>)> = in_days(&sql, project, (first_from, first_to))
            .fetch_all(&mut *self.tx)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(o, ts)| (o, cohort_of(period, ts)))
            .collect())
    }

    /// Per period start (day number) of the hot rows of `scope` (of
    /// `a.event_type` only, when given): the events read, and the set of
    /// their users' ordinals. Every user is kept, whatever their cohort: the
    /// caller intersects these sets with the cohorts'.
    pub async fn activity_ordinals(
        &mut self,
        project: ProjectId,
        a: CohortActivity<'_>,
        scope: &HotScope,
    ) -> Result<BTreeMap<i32, (i64, RoaringBitmap)>, StoreError> {
        if scope.is_empty() {
            return Ok(BTreeMap::new());
        }
        let p = a.period.start_sql("e.d");
        let sql = format!(
            "SELECT {p}::int4 AS p, e.user_id, sum(e.n)::int8 FROM {} e
              WHERE ($6::text IS NULL OR e.event_type = $6)
              GROUP BY 1, 2",
            scope_sql(scope)
        );
        let rows: Vec<(i32, String, i64)> = scoped(&sql, project, scope)
            .bind(a.event_type)
            .fetch_all(&mut *self.tx)
            .await?;
        self.sets_by_key(project, rows).await
    }

    /// Users whose first event ever falls in `[first_from, first_to]` (days),
    /// with the start (day number) of the period holding it.
    pub async fn cohort_users(
        &mut self,
        project: ProjectId,
        period: Period,
        first_from: NaiveDate,
        first_to: NaiveDate,
    ) -> Result<Vec<(String, i32)>, StoreError> {
        let sql = cohort_sql("user_id");
        let rows: Vec<(String, DateTime<Utc>)> = in_days(&sql, project, (first_from, first_to))
            .fetch_all(&mut *self.tx)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(user, ts)| (user, cohort_of(period, ts)))
            .collect())
    }

    /// Distinct (user, period start) pairs of events in `[from, to]` (days;
    /// of `event_type` only, when given) by users whose first event falls in
    /// `[first_from, first_to]`, with how many events each pair covers.
    pub async fn cohort_activity(
        &mut self,
        project: ProjectId,
        a: CohortActivity<'_>,
    ) -> Result<Vec<(String, i32, i64)>, StoreError> {
        let sql = cohort_activity_sql(a.period);
        Ok(for_activity(&sql, project, a)
            .fetch_all(&mut *self.tx)
            .await?)
    }
}

impl ReadSnapshot {
    /// The first day of `project` that stats may read on `today`, in this
    /// snapshot (`None`: every day).
    pub async fn horizon(
        &mut self,
        project: ProjectId,
        today: NaiveDate,
    ) -> Result<Option<(RetentionDays, NaiveDate)>, StoreError> {
        let stored = crate::lifecycle::retention::stored(self.conn(), project).await?;
        if let Some((_, epoch)) = stored {
            self.epochs.insert(project.0, epoch);
        }
        Ok(
            crate::lifecycle::retention::policy(stored.and_then(|s| s.0))?
                .map(|d| (d, d.horizon(today))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_day_is_the_model_s_day_number_sql() {
        assert_eq!(DAY_SQL, strata_model::pg_day_number("ts"));
    }

    #[test]
    fn each_whole_day_is_its_own_scan_and_the_late_days_one_more() {
        let d = |n: u32| NaiveDate::from_ymd_opt(2026, 11, n).unwrap();
        let scope = HotScope {
            whole: [d(1), d(2), d(3), d(7)].into_iter().collect(),
            late: [d(4), d(5)].into_iter().collect(),
        };
        let sql = scope_sql(&scope);
        assert_eq!(sql.matches("FROM events").count(), 4, "{sql}");
        assert!(sql.contains("($4::int4[])[4] AS d"), "{sql}");
        assert!(!sql.contains("AT TIME ZONE"), "{sql}");
        assert_eq!(sql.matches("FROM hot_late_events").count(), 1, "{sql}");
        let late_only = HotScope {
            whole: BTreeSet::new(),
            late: scope.late.clone(),
        };
        assert_eq!(scope_sql(&late_only).matches("FROM events").count(), 1);
    }
}
