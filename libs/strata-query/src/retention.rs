//! Retention: cohorts from first-seen times; each tier gives the (user,
//! period) pairs of cohort users, counted once per period: as ordinals
//! when every cold day has a current rollup (set intersections), else as
//! user ids inside DuckDB.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use chrono::Utc;
use roaring::RoaringBitmap;
use strata_model::{DayRange, EventType, Period, ProjectId, day_number, from_day_number};
use strata_store::{ALL_TYPES, CohortActivity, RollupRows};
use tracing::Instrument;

use crate::duck::{rows, source, sql_text};
use crate::first_event::FirstEventRetention;
use crate::merge::{RetentionMerge, cohorts_from_counts, cohorts_from_sets};
use crate::plan::{PAIR_BATCH, PAIR_BATCHES_IN_FLIGHT, append_batches, ms, u};
use crate::response::RetentionResponse;
use crate::{Planner, QueryError};

impl Planner {
    /// Cohorts by the period of each user's first event (of `start_event`,
    /// when given), and how many of them were active in each following
    /// period (active: had an event of `return_event`, when given).
    pub async fn retention(
        &self,
        project: ProjectId,
        range: DayRange,
        (period, periods): (Period, u32),
        start_event: Option<&EventType>,
        return_event: Option<&EventType>,
    ) -> Result<RetentionResponse, QueryError> {
        let returned: Option<String> = return_event.map(|t| t.as_str().to_owned());
        let (which, key) = match return_event {
            Some(t) => (RollupRows::Type(t.as_str()), t.as_str()),
            None => (RollupRows::AllTypes, ALL_TYPES),
        };
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

        let bounds = (first_cohort, last_cohort, today);
        if let Some(start) = start_event {
            let (cohorts, meta) = self
                .retention_from_event(FirstEventRetention {
                    project,
                    period,
                    periods,
                    start_event: start.as_str(),
                    return_event: returned.as_deref(),
                    bounds,
                    cohort_days,
                    activity: (activity_to >= first_cohort).then_some(activity),
                })
                .await?;
            return Ok(RetentionResponse::new(
                range,
                (period, periods),
                cohorts,
                meta,
            ));
        }
        let (mut snap, mut plan) = self
            .plan(project, activity.0, activity.1, Some(which))
            .await?;
        if activity_to < first_cohort {
            plan.files.clear();
            plan.parquet.clear();
            plan.cold_days.clear();
            plan.rollups = Default::default();
            plan.sealed = Default::default();
        } else if !plan.parquet.is_empty() {
            // A cold day without a current rollup: activity is then a union
            // of user ids, so every cold day comes from its files.
            plan.without_rollups();
        }
        let wanted = |event_type| CohortActivity {
            period,
            cohort_days,
            days: activity,
            event_type,
        };
        let hot_started = Instant::now();
        let (cohorts, meta) = if plan.has_rollups() {
            // Every cold day from its rollup: cohorts and period activity
            // as sets of ordinals, retained users as intersections.
            let hot = async {
                let cohort_users = snap
                    .cohort_ordinals(project, period, cohort_days.0, cohort_days.1)
                    .await?;
                let act = if cohort_users.is_empty() {
                    BTreeMap::new()
                } else {
                    let scope = plan.hot_scope(&plan.hot_days);
                    snap.activity_ordinals(project, wanted(returned.as_deref()), &scope)
                        .await?
                };
                snap.finish().await?;
                Ok::<_, QueryError>((cohort_users, act))
            }
            .instrument(tracing::info_span!("hot_tier", stat = "retention"))
            .await?;
            let (cohort_users, act) = hot;
            let mut cohorts: BTreeMap<i32, RoaringBitmap> = BTreeMap::new();
            for (o, c) in cohort_users {
                if let Ok(o) = u32::try_from(o) {
                    cohorts.entry(c).or_default().insert(o);
                }
            }
            let mut active: BTreeMap<i32, RoaringBitmap> = BTreeMap::new();
            let mut hot_rows = 0;
            for (p, (events, users)) in act {
                hot_rows += u(events);
                *active.entry(p).or_default() |= users;
            }
            for (day, rollup) in plan.rollups.days.iter().chain(&plan.sealed.days) {
                if let Some(all) = rollup.types.get(key) {
                    let p = period.start_of_number(day_number(*day));
                    *active.entry(p).or_default() |= &all.users;
                }
            }
            let cohorts = cohorts_from_sets(&cohorts, &active, bounds, len, periods);
            (cohorts, self.meta(&plan, hot_rows, ms(hot_started), None))
        } else if plan.files.is_empty() {
            // Hot only (bounded by the hot window): merged here.
            let hot = async {
                let cohort_users = snap
                    .cohort_users(project, period, cohort_days.0, cohort_days.1)
                    .await?;
                let act = if activity_to < first_cohort || cohort_users.is_empty() {
                    Vec::new()
                } else {
                    snap.cohort_activity(project, wanted(returned.as_deref()))
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
            let hot_returned = returned.clone();
            let hot = async move {
                snap.cohort_users_into(project, period, cohort_days, PAIR_BATCH, &users_tx)
                    .await?;
                drop(users_tx);
                let events = snap
                    .cohort_activity_into(
                        project,
                        CohortActivity {
                            period,
                            cohort_days,
                            days: activity,
                            event_type: hot_returned.as_deref(),
                        },
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
                let filter = returned
                    .as_deref()
                    .map_or_else(String::new, |t| format!("AND event_type = {}", sql_text(t)));
                let retained = rows(
                    conn,
                    &format!(
                        "WITH act AS (
                       SELECT DISTINCT user_id, p FROM (
                         SELECT user_id, CAST({p} AS INTEGER) AS p FROM {}
                          WHERE user_id IN (SELECT user_id FROM cohort) {filter}
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
        Ok(RetentionResponse::new(
            range,
            (period, periods),
            cohorts,
            meta,
        ))
    }
}
