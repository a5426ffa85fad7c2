//! DAU: distinct users per day, from one tier per day, or from the union
//! of both tiers' user sets on a day both hold. A cold day comes from its
//! rollup when current, else its files; a sealed hot day from its rollup
//! plus its late events, else its rows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use chrono::NaiveDate;
use roaring::RoaringBitmap;
use strata_model::{DayRange, EventType, ProjectId, from_day_number};
use strata_store::{ALL_TYPES, RollupRows};
use tracing::Instrument;

use crate::duck::{rows, source, sql_text};
use crate::merge::DauMerge;
use crate::plan::{ms, u};
use crate::response::DauResponse;
use crate::{Planner, QueryError};

impl Planner {
    /// Distinct users per day of `range`, zero-filled; with `event_type`,
    /// the users who had an event of that type that day.
    pub async fn dau(
        &self,
        project: ProjectId,
        range: DayRange,
        event_type: Option<&EventType>,
    ) -> Result<DauResponse, QueryError> {
        let (from, to) = (range.from(), range.to());
        let only: Option<String> = event_type.map(|t| t.as_str().to_owned());
        let (which, key) = match event_type {
            Some(t) => (RollupRows::Type(t.as_str()), t.as_str()),
            None => (RollupRows::AllTypes, ALL_TYPES),
        };
        let (mut snap, plan) = self.plan(project, from, to, Some(which)).await?;
        // Days both tiers hold whose cold day is read from its files: their
        // user sets are unioned as user ids, every hot row read.
        let both_files: BTreeSet<NaiveDate> = plan
            .both
            .iter()
            .filter(|d| !plan.rollups.days.contains_key(d))
            .copied()
            .collect();
        // Days answered as sets of ordinals: a cold rollup and/or a hot
        // seal, plus the hot rows the seal does not hold.
        let set_days: BTreeSet<NaiveDate> = plan
            .rollups
            .days
            .keys()
            .chain(plan.sealed.days.keys())
            .filter(|d| !both_files.contains(d))
            .copied()
            .collect();
        let scope = plan.hot_scope(&set_days);
        // Hot days counted by PostgreSQL alone.
        let counted: BTreeSet<NaiveDate> = plan
            .hot_days
            .iter()
            .filter(|d| !plan.both.contains(d) && !set_days.contains(d))
            .copied()
            .collect();
        let both_cold = both_files.clone();
        // The hot half ends the snapshot as soon as it is done: the cold
        // files it listed are immutable, so the lock need not outlive it.
        let hot_only = only.clone();
        let hot = async move {
            let started = Instant::now();
            let only = hot_only.as_deref();
            let counts = snap.dau(project, &counted, only).await?;
            let pairs = snap.day_users(project, &both_files, only).await?;
            let ordinals = snap.day_ordinals(project, &scope, only).await?;
            snap.finish().await?;
            Ok::<_, QueryError>((counts, pairs, ordinals, ms(started)))
        }
        .instrument(tracing::info_span!("hot_tier", stat = "dau"));
        let cold = self.cold(&plan.parquet, move |conn, files| {
            let (shared, alone): (Vec<_>, Vec<_>) =
                files.into_iter().partition(|(d, _)| both_cold.contains(d));
            let paths = |v: Vec<(NaiveDate, PathBuf)>| -> Vec<PathBuf> {
                v.into_iter().map(|(_, p)| p).collect()
            };
            let filter = only.as_deref().map_or_else(String::new, |t| {
                format!("WHERE event_type = {}", sql_text(t))
            });
            let counts: Vec<(i32, i64)> = if alone.is_empty() {
                Vec::new()
            } else {
                rows(
                    conn,
                    &format!(
                        "SELECT day_n, count(DISTINCT user_id) FROM {} {filter} GROUP BY day_n",
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
                        "SELECT DISTINCT day_n, user_id FROM {} {filter}",
                        source(&paths(shared))
                    ),
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
            };
            Ok((counts, pairs))
        });
        let ((hot_counts, hot_pairs, hot_ordinals, hot_ms), cold) = tokio::try_join!(hot, cold)?;

        let mut merge = DauMerge::default();
        let mut hot_rows = 0;
        for c in &hot_counts {
            hot_rows += u(c.rows);
            merge.count(c.day, u(c.users));
        }
        for (d, user) in hot_pairs {
            merge.user(d, user);
        }
        let mut day_sets: BTreeMap<NaiveDate, RoaringBitmap> = BTreeMap::new();
        for d in &set_days {
            let set = day_sets.entry(*d).or_default();
            for rollups in [&plan.rollups, &plan.sealed] {
                if let Some(t) = rollups.days.get(d).and_then(|r| r.types.get(key)) {
                    *set |= &t.users;
                }
            }
        }
        for (d, users) in hot_ordinals {
            if let Some(set) = day_sets.get_mut(&d) {
                *set |= users;
            }
        }
        for (d, set) in day_sets {
            merge.count(d, set.len());
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
            group_by: None,
            groups: None,
            meta,
        })
    }
}
