//! Rollups of closed hot days (ADR-028): the hot half of ADR-027.
//!
//! This module owns `hot_rollups`, `hot_rollup_seals`, `hot_sealed_days`
//! and `hot_late_events`. A sealed day's hot rows of a project are exactly
//! its rollup (`hot_rollups`, as the seal computed it) plus the late events
//! ingest recorded since (`hot_late_events`). That holds by the day's
//! archive lock, not by any clock:
//!
//! - the seal holds the lock exclusively while it aggregates the day, folds
//!   in and deletes its late events, and marks the day sealed;
//! - ingest into a closed day holds the lock shared from before it writes
//!   until it commits, and, when the day is marked sealed, records what it
//!   adds in `hot_late_events` in the same transaction. A batch's rows are
//!   therefore either all seen by the seal or all recorded as late.
//!
//! Ingest takes the lock for days that end before its clock plus ten
//! minutes; the seal waits [`SEAL_MARGIN`] after a day's end, so the api
//! clocks may lag the sealer's by more than an hour before the rule fails.
//!
//! Dropping a day's chunk (the archive commit) forgets the day's seal in
//! the same transaction: its rows are cold from then on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use strata_model::{ProjectId, ValidEvent};

use crate::shared::days::day_start;
use crate::summaries::rollup_cache::RollupCache;
use crate::summaries::rollups::{Expected, RollupRead, RollupRows};
use crate::{Store, StoreError};

/// How long after a UTC day ends it may be sealed.
pub const SEAL_MARGIN: chrono::Duration = chrono::Duration::hours(1);

/// What one pass of [`Store::seal_closed_days`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealReport {
    /// Days sealed (first time or again).
    pub days: Vec<NaiveDate>,
    /// Events the new rollups cover, over every project.
    pub events: i64,
    /// Late events folded into them.
    pub late_events: i64,
}

impl Store {
    /// Seals every hot day from `since` on that ended at least
    /// [`SEAL_MARGIN`] before `now` and is not sealed yet or has late
    /// events since its seal. Each day is one transaction that waits at
    /// most `lock_timeout` for ingest into the day.
    pub async fn seal_closed_days(
        &self,
        since: NaiveDate,
        now: DateTime<Utc>,
        lock_timeout: Duration,
    ) -> Result<SealReport, StoreError> {
        let closed = self.closed_hot_days((since, NaiveDate::MAX), now).await?;
        if closed.is_empty() {
            return Ok(SealReport::default());
        }
        let due: Vec<NaiveDate> = sqlx::query_scalar(
            "SELECT d FROM unnest($1::date[]) AS t(d)
              WHERE NOT EXISTS (SELECT 1 FROM hot_sealed_days s WHERE s.day = t.d)
                 OR EXISTS (SELECT 1 FROM hot_late_events l WHERE l.day = t.d)
              ORDER BY d",
        )
        .bind(&closed)
        .fetch_all(&self.pool)
        .await?;
        self.seal_days(&due, lock_timeout).await
    }

    /// Seals every closed hot day in `[from, to]` again, whatever its
    /// state (`rollups rebuild`: mends a damaged seal).
    pub async fn reseal(
        &self,
        (from, to): (NaiveDate, NaiveDate),
        now: DateTime<Utc>,
        lock_timeout: Duration,
    ) -> Result<SealReport, StoreError> {
        let closed = self.closed_hot_days((from, to), now).await?;
        self.seal_days(&closed, lock_timeout).await
    }

    /// Hot days in `[from, to]` that ended [`SEAL_MARGIN`] before `now`.
    async fn closed_hot_days(
        &self,
        (from, to): (NaiveDate, NaiveDate),
        now: DateTime<Utc>,
    ) -> Result<Vec<NaiveDate>, StoreError> {
        Ok(self
            .list_chunks()
            .await?
            .iter()
            .map(|c| c.day())
            .filter(|d| {
                (from..=to).contains(d)
                    && day_start(*d) + chrono::Duration::days(1) + SEAL_MARGIN <= now
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    async fn seal_days(
        &self,
        days: &[NaiveDate],
        lock_timeout: Duration,
    ) -> Result<SealReport, StoreError> {
        let mut report = SealReport::default();
        for day in days {
            let (events, late) = self.seal_day(*day, lock_timeout).await?;
            report.days.push(*day);
            report.events += events;
            report.late_events += late;
        }
        Ok(report)
    }

    /// Seals one day (see the module docs); returns the events its rollups
    /// cover and the late events folded in.
    async fn seal_day(
        &self,
        day: NaiveDate,
        lock_timeout: Duration,
    ) -> Result<(i64, i64), StoreError> {
        let mut tx = self.pool.begin().await?;
        crate::shared::locks::set_lock_timeout(&mut tx, lock_timeout).await?;
        crate::shared::locks::lock_days_for_archive(&mut tx, &BTreeSet::from([day])).await?;
        let sealed = seal_day_in(&mut tx, day).await?;
        tx.commit().await?;
        Ok(sealed)
    }
}

/// Seals `day` inside the caller's transaction, which holds the day's
/// archive lock exclusively.
pub(crate) async fn seal_day_in(
    tx: &mut PgConnection,
    day: NaiveDate,
) -> Result<(i64, i64), StoreError> {
    let start = day_start(day);
    let by_project = crate::summaries::rollups::aggregate_events(
        &mut *tx,
        (start, start + chrono::Duration::days(1)),
        &[],
    )
    .await?;
    delete_day(&mut *tx, &["hot_rollups", "hot_rollup_seals"], day).await?;
    let late: i64 = sqlx::query_scalar(
        "WITH gone AS (DELETE FROM hot_late_events WHERE day = $1 RETURNING events)
             SELECT coalesce(sum(events), 0)::int8 FROM gone",
    )
    .bind(day)
    .fetch_one(&mut *tx)
    .await?;
    let mut events = 0;
    for (project, rollup) in &by_project {
        let written =
            crate::summaries::rollups::write_rows(&mut *tx, "hot_rollups", *project, day, rollup)
                .await?;
        let n = rollup.types.get(crate::ALL_TYPES).map_or(0, |r| r.events);
        sqlx::query(
            "INSERT INTO hot_rollup_seals (project_id, day, events, types, value_rows, properties)
                 VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(project)
        .bind(day)
        .bind(n)
        .bind(written.types)
        .bind(written.value_rows)
        .bind(&written.properties)
        .execute(&mut *tx)
        .await?;
        events += n;
    }
    sqlx::query(
        "INSERT INTO hot_sealed_days (day) VALUES ($1)
             ON CONFLICT (day) DO UPDATE SET sealed_at = now()",
    )
    .bind(day)
    .execute(&mut *tx)
    .await?;
    Ok((events, late))
}

/// Deletes the day's rows (every project) from each of `tables`.
async fn delete_day(
    conn: &mut PgConnection,
    tables: &[&str],
    day: NaiveDate,
) -> Result<(), StoreError> {
    for table in tables {
        sqlx::query(&format!("DELETE FROM {table} WHERE day = $1"))
            .bind(day)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The day's hot rows are leaving `events` (its chunk is dropped, in this
/// transaction): forgets its seal, rollups, mark and late events.
pub(crate) async fn forget_day(conn: &mut PgConnection, day: NaiveDate) -> Result<(), StoreError> {
    delete_day(
        conn,
        &[
            "hot_rollups",
            "hot_rollup_seals",
            "hot_late_events",
            "hot_sealed_days",
        ],
        day,
    )
    .await
}

/// Ingest, holding the archive lock of `closed` days shared: records what
/// `events` add to those of them that are sealed.
pub(crate) async fn record_late(
    conn: &mut PgConnection,
    project: ProjectId,
    closed: &[NaiveDate],
    events: &[&ValidEvent],
) -> Result<(), sqlx::Error> {
    if closed.is_empty() {
        return Ok(());
    }
    let sealed: Vec<NaiveDate> =
        sqlx::query_scalar("SELECT day FROM hot_sealed_days WHERE day = ANY($1)")
            .bind(closed)
            .fetch_all(&mut *conn)
            .await?;
    if sealed.is_empty() {
        return Ok(());
    }
    let mut late: BTreeMap<(NaiveDate, &str, &str), i32> = BTreeMap::new();
    for e in events {
        let day = e.timestamp.as_datetime().date_naive();
        if sealed.contains(&day) {
            *late
                .entry((day, e.event_type.as_str(), e.user_id.as_str()))
                .or_default() += 1;
        }
    }
    if late.is_empty() {
        return Ok(());
    }
    let (mut days, mut types, mut users, mut counts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((d, t, u), n) in late {
        days.push(d);
        types.push(t);
        users.push(u);
        counts.push(n);
    }
    sqlx::query(
        "INSERT INTO hot_late_events (day, project_id, event_type, user_id, events)
         SELECT d, $1, t, u, n FROM unnest($2::date[], $3::text[], $4::text[], $5::int4[])
                AS r(d, t, u, n)",
    )
    .bind(project.0)
    .bind(&days)
    .bind(&types)
    .bind(&users)
    .bind(&counts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The seals of `project`'s hot days in `[from, to]` as a snapshot reads
/// them: a day is returned only when complete (as many rows as its seal
/// says, its all-types row, every bitmap decoding).
pub(crate) async fn read(
    conn: &mut PgConnection,
    cache: &RollupCache,
    project: ProjectId,
    (from, to): (NaiveDate, NaiveDate),
    which: RollupRows<'_>,
) -> Result<RollupRead, StoreError> {
    let seals: Vec<(NaiveDate, i32, i32, Vec<String>, i64)> = sqlx::query_as(
        "SELECT day, types, value_rows, properties, version FROM hot_rollup_seals
          WHERE project_id = $1 AND day BETWEEN $2 AND $3",
    )
    .bind(project.0)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    let expected: BTreeMap<NaiveDate, Expected> = seals
        .into_iter()
        .map(|(d, types, value_rows, properties, version)| {
            (
                d,
                Expected {
                    rows: i64::from(types) + 1 + i64::from(value_rows),
                    version,
                    properties,
                },
            )
        })
        .collect();
    let (days, bytes) =
        crate::summaries::rollups::read_rows(conn, cache, "hot_rollups", project, which, &expected)
            .await?;
    Ok(RollupRead {
        sources: BTreeMap::new(),
        days,
        bytes,
    })
}

/// Seals closed hot days every `interval` (the first pass at once), from
/// `hot_retention` ago on (older days are the archiver's next work). A zero
/// interval seals nothing (the archive run still does).
pub fn spawn_sealer(
    store: Store,
    hot_retention: Duration,
    interval: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    if interval.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Utc::now();
            if let Err(e) = store.prepare_days(now.date_naive()).await {
                tracing::warn!(error = %e, "creating tomorrow's hot partition failed; will retry");
            }
            let since =
                (now - chrono::Duration::from_std(hot_retention).unwrap_or_default()).date_naive();
            match store
                .seal_closed_days(since, now, Duration::from_secs(10))
                .await
            {
                Ok(r) if r.days.is_empty() => {}
                Ok(r) => tracing::info!(
                    days = r.days.len(),
                    events = r.events,
                    late_events = r.late_events,
                    "sealed closed hot days"
                ),
                Err(e) => tracing::warn!(error = %e, "sealing closed hot days failed; will retry"),
            }
        }
    }))
}
