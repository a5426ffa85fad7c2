//! Retention with `start_event`: a user's cohort is the period of their
//! first event of that type ever, in either tier.
//!
//! First events of a type are not kept at ingest (that would be one more
//! upkeep per user and type); they are derived, exactly, from the same
//! per-day user sets as everything else. Days are walked in order from the
//! project's first: a day's new users of the type are its set less every
//! earlier day's, and the new users of the cohort days form the cohorts.
//! Every day's set comes from its rollups (cold and sealed hot) where
//! current, else from its rows or files: the hot rows' ordinals come from
//! `user_first_seen`, and the ids read from a cold day without a rollup are
//! mapped to theirs in the same snapshot (ordinals are never reused). Activity is the union of
//! the same day sets of `return_event` (or of every type) per period, and
//! retained users are intersection sizes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use chrono::NaiveDate;
use roaring::RoaringBitmap;
use strata_model::{Period, ProjectId, day_number, from_day_number};
use strata_store::{ALL_TYPES, RollupRows};
use tracing::Instrument;

use crate::duck::{rows, source, sql_text};
use crate::merge::cohorts_from_sets;
use crate::plan::ms;
use crate::response::Cohort;
use crate::{Meta, Planner, QueryError};

/// One `start_event` retention request, its bounds already worked out.
pub(crate) struct FirstEventRetention<'a> {
    pub project: ProjectId,
    pub period: Period,
    pub periods: u32,
    pub start_event: &'a str,
    pub return_event: Option<&'a str>,
    /// First and last cohort start, and today (day numbers).
    pub bounds: (i32, i32, i32),
    pub cohort_days: (NaiveDate, NaiveDate),
    /// Activity that counts (`None`: none can yet).
    pub activity: Option<(NaiveDate, NaiveDate)>,
}

/// Per day: users who had the start event, and users active (of the
/// return event, or any).
#[derive(Default)]
struct DaySets {
    started: BTreeMap<NaiveDate, RoaringBitmap>,
    active: BTreeMap<NaiveDate, RoaringBitmap>,
}

impl DaySets {
    fn add(&mut self, day: NaiveDate, started: bool, active: bool, ordinal: u32) {
        if started {
            self.started.entry(day).or_default().insert(ordinal);
        }
        if active {
            self.active.entry(day).or_default().insert(ordinal);
        }
    }
}

impl Planner {
    pub(crate) async fn retention_from_event(
        &self,
        r: FirstEventRetention<'_>,
    ) -> Result<(Vec<Cohort>, Meta), QueryError> {
        let start = r.start_event;
        let key = r.return_event.unwrap_or(ALL_TYPES);
        let last_day = r
            .activity
            .map_or(r.cohort_days.1, |a| a.1.max(r.cohort_days.1));
        let (mut snap, plan) = self
            .plan(
                r.project,
                from_day_number(0),
                last_day,
                Some(RollupRows::Types(start, key)),
            )
            .await?;
        let in_activity = |d: &NaiveDate| r.activity.is_some_and(|(a, b)| (a..=b).contains(d));
        let started_days: BTreeSet<NaiveDate> = plan
            .hot_days
            .iter()
            .filter(|d| **d <= r.cohort_days.1)
            .copied()
            .collect();
        let active_days: BTreeSet<NaiveDate> = plan
            .hot_days
            .iter()
            .filter(|d| in_activity(d))
            .copied()
            .collect();
        let (started_scope, active_scope) =
            (plan.hot_scope(&started_days), plan.hot_scope(&active_days));
        let hot_started = Instant::now();
        let hot = async {
            let s = snap
                .day_ordinals(r.project, &started_scope, Some(start))
                .await?;
            let a = snap
                .day_ordinals(r.project, &active_scope, r.return_event)
                .await?;
            Ok::<_, QueryError>((s, a, ms(hot_started)))
        }
        .instrument(tracing::info_span!(
            "hot_tier",
            stat = "retention_start_event"
        ));
        // Cold days without a current rollup: their (day, user) pairs with
        // whether each user had the start event and was active.
        let (start_sql, key_sql) = (sql_text(start), r.return_event.map(sql_text));
        let (cohort_end, activity) = (day_number(r.cohort_days.1), r.activity);
        let cold = self.cold(&plan.parquet, move |conn, files| {
            let paths: Vec<PathBuf> = files.into_iter().map(|(_, p)| p).collect();
            let active = match (&key_sql, activity) {
                (_, None) => "false".to_owned(),
                (Some(k), Some((a, b))) => format!(
                    "bool_or(event_type = {k} AND day_n BETWEEN {} AND {})",
                    day_number(a),
                    day_number(b)
                ),
                (None, Some((a, b))) => format!(
                    "bool_or(day_n BETWEEN {} AND {})",
                    day_number(a),
                    day_number(b)
                ),
            };
            rows(
                conn,
                &format!(
                    "SELECT * FROM (
                       SELECT day_n, user_id,
                              bool_or(event_type = {start_sql} AND day_n <= {cohort_end}) AS s,
                              {active} AS a
                         FROM {} GROUP BY day_n, user_id)
                      WHERE s OR a",
                    source(&paths)
                ),
                |row| {
                    Ok((
                        row.get::<_, i32>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, bool>(2)?,
                        row.get::<_, bool>(3)?,
                    ))
                },
            )
        });
        let ((hot_s, hot_a, hot_ms), cold) = tokio::try_join!(hot, cold)?;

        let mut sets = DaySets::default();
        for rollups in [&plan.rollups, &plan.sealed] {
            for (day, rollup) in &rollups.days {
                if *day <= r.cohort_days.1
                    && let Some(t) = rollup.types.get(start)
                {
                    *sets.started.entry(*day).or_default() |= &t.users;
                }
                if in_activity(day)
                    && let Some(t) = rollup.types.get(key)
                {
                    *sets.active.entry(*day).or_default() |= &t.users;
                }
            }
        }
        for (day, users) in hot_s {
            *sets.started.entry(day).or_default() |= users;
        }
        for (day, users) in hot_a {
            *sets.active.entry(day).or_default() |= users;
        }
        let cold_meta = match cold {
            Some(part) => {
                let users: BTreeSet<&str> =
                    part.value.iter().map(|(_, u, _, _)| u.as_str()).collect();
                let wanted: Vec<&str> = users.into_iter().collect();
                if let Some(hook) = &self.config().failpoint.0 {
                    hook("retention_cold_ordinals");
                }
                // In the request's snapshot: an erasure committed since
                // cannot make a user of these files unknown.
                let ordinals = snap.user_ordinals(r.project, &wanted).await?;
                for (d, user, s, a) in &part.value {
                    let o = ordinals.get(user.as_str()).ok_or_else(|| {
                        QueryError::Internal(format!(
                            "user {user:?} of a cold file has no first-seen record"
                        ))
                    })?;
                    sets.add(from_day_number(*d), *s, *a, *o);
                }
                Some(part.meta)
            }
            None => None,
        };
        snap.finish().await?;

        // Walk the days in order: a day's newcomers are its start-event
        // users not seen on any earlier day.
        let len = r.period.days();
        let (first_cohort, _, _) = r.bounds;
        let mut seen = RoaringBitmap::new();
        let mut cohorts: BTreeMap<i32, RoaringBitmap> = BTreeMap::new();
        for (day, users) in &sets.started {
            let n = day_number(*day);
            if n >= first_cohort {
                let new = users - &seen;
                *cohorts.entry(r.period.start_of_number(n)).or_default() |= new;
            }
            seen |= users;
        }
        let mut active: BTreeMap<i32, RoaringBitmap> = BTreeMap::new();
        for (day, users) in &sets.active {
            *active
                .entry(r.period.start_of_number(day_number(*day)))
                .or_default() |= users;
        }
        let cohorts = cohorts_from_sets(&cohorts, &active, r.bounds, len, r.periods);
        // The hot rows were read as (day, user) pairs, not counted.
        let meta = self.meta(&plan, 0, hot_ms, cold_meta);
        Ok((cohorts, meta))
    }
}
