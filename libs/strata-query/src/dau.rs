//! DAU: distinct users per day, from one tier per day (a cold day from its
//! rollup when current, else its files), or from the union of both tiers'
//! user sets on a day both hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use chrono::NaiveDate;
use roaring::RoaringBitmap;
use strata_hot::ALL_TYPES;
use strata_model::{DayRange, ProjectId, from_day_number};
use tracing::Instrument;

use crate::duck::{rows, source};
use crate::merge::DauMerge;
use crate::plan::{RollupUse, ms, u};
use crate::response::DauResponse;
use crate::{Planner, QueryError};

impl Planner {
    /// Distinct users per day of `range`, zero-filled.
    pub async fn dau(
        &self,
        project: ProjectId,
        range: DayRange,
    ) -> Result<DauResponse, QueryError> {
        let (from, to) = (range.from(), range.to());
        let (mut snap, plan) = self.plan(project, from, to, RollupUse::AllTypes).await?;
        // Days both tiers hold: their user sets are unioned, as ordinals
        // where the cold day has a rollup, as user ids where it has files.
        let (both_rollup, both_files): (BTreeSet<NaiveDate>, BTreeSet<NaiveDate>) = plan
            .both
            .iter()
            .partition(|d| plan.rollups.days.contains_key(d));
        let both_cold = both_files.clone();
        // The hot half ends the snapshot as soon as it is done: the cold
        // files it listed are immutable, so the lock need not outlive it.
        let hot = async move {
            let started = Instant::now();
            let counts = snap.dau(project, from, to).await?;
            let pairs = snap.day_users(project, &both_files).await?;
            let ordinals = snap.day_ordinals(project, &both_rollup).await?;
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
        let ((hot_counts, hot_pairs, hot_ordinals, hot_ms), cold) = tokio::try_join!(hot, cold)?;

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
        let mut rollup_users: BTreeMap<NaiveDate, RoaringBitmap> = plan
            .rollups
            .days
            .iter()
            .filter_map(|(d, r)| Some((*d, r.get(ALL_TYPES)?.users.clone())))
            .collect();
        for (d, ordinal) in hot_ordinals {
            if let (Some(set), Ok(o)) = (rollup_users.get_mut(&d), u32::try_from(ordinal)) {
                set.insert(o);
            }
        }
        for (d, set) in rollup_users {
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
            meta,
        })
    }
}
