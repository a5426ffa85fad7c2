//! Top events: counts add across tiers; distinct users come from the
//! union of both tiers' users: as ordinals when every cold day of the range
//! has a current rollup (sealed hot days then add theirs), else as
//! (event_type, user) pairs inside DuckDB.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use roaring::{MultiOps, RoaringBitmap};
use strata_model::{DayRange, ProjectId};
use strata_store::{ALL_TYPES, DayRollup, RollupRows, TypeRollup};
use tracing::Instrument;

use crate::duck::{rows, source};
use crate::plan::{PAIR_BATCH, PAIR_BATCHES_IN_FLIGHT, append_batches, ms, u};
use crate::response::{TopEvent, TopEventsResponse, top_event};
use crate::{Planner, QueryError};

impl Planner {
    /// Event types by count (descending, ties by name), with distinct users.
    pub async fn top_events(
        &self,
        project: ProjectId,
        range: DayRange,
        limit: u32,
    ) -> Result<TopEventsResponse, QueryError> {
        let (from, to) = (range.from(), range.to());
        let (mut snap, mut plan) = self
            .plan(project, from, to, Some(RollupRows::PerType))
            .await?;
        if !plan.parquet.is_empty() {
            // Some cold day has no current rollup: the users of a type over
            // the range are then a union of ids, so every day comes from
            // its files (the rollups cannot join ids).
            plan.without_rollups();
        }
        let hot_started = Instant::now();
        let (mut events, hot_rows, hot_ms, cold_meta) = if plan.has_rollups() {
            // Every cold day from its rollup, sealed hot days from theirs
            // plus their late events, other hot days from their rows:
            // counts add, and each type's users are the union of its day
            // sets and the hot users' ordinals.
            let scope = plan.hot_scope(&plan.hot_days);
            // The rollups' unions (CPU) run while PostgreSQL reads the hot
            // rows.
            let days: Vec<Arc<DayRollup>> = plan
                .rollups
                .days
                .values()
                .chain(plan.sealed.days.values())
                .cloned()
                .collect();
            let unions = tokio::task::spawn_blocking(move || type_unions(&days));
            let hot = async {
                let hot = snap.type_ordinals(project, &scope).await?;
                snap.finish().await?;
                Ok::<_, QueryError>(hot)
            }
            .instrument(tracing::info_span!("hot_tier", stat = "top_events"))
            .await?;
            let mut types = unions
                .await
                .map_err(|e| QueryError::Internal(format!("rollup unions failed: {e}")))?;
            let mut rows = 0;
            for (t, (n, users)) in hot {
                rows += u(n);
                let r = types.entry(t).or_default();
                r.events += n;
                r.users |= users;
            }
            let events = types
                .into_iter()
                .map(|(event_type, r)| TopEvent {
                    event_type,
                    count: u(r.events),
                    users: r.users.len(),
                })
                .collect();
            (events, rows, ms(hot_started), None)
        } else if plan.files.is_empty() {
            // Hot only: PostgreSQL's answer is final.
            let hot = async {
                let hot = snap.top_events(project, plan.from, to).await?;
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
                    .type_users_into(project, (plan.from, to), PAIR_BATCH, &tx)
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
            group_by: None,
            groups: None,
            meta,
        })
    }
}

/// Per event type over `days`: events summed, users unioned (every set of
/// a type at once, not one pair at a time).
fn type_unions(days: &[Arc<DayRollup>]) -> BTreeMap<String, TypeRollup> {
    let mut parts: BTreeMap<&str, (i64, Vec<&RoaringBitmap>)> = BTreeMap::new();
    for day in days {
        for (t, r) in day.types.iter().filter(|(t, _)| t.as_str() != ALL_TYPES) {
            let p = parts.entry(t.as_str()).or_default();
            p.0 += r.events;
            p.1.push(&r.users);
        }
    }
    parts
        .into_iter()
        .map(|(t, (events, sets))| {
            let users = sets.into_iter().union();
            (t.to_owned(), TypeRollup { events, users })
        })
        .collect()
}
