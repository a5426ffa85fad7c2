//! Funnels: how many users went from step 1 to step 2 … to step k within a
//! window (docs/CONTRACT.md, "Funnel"; ClickHouse's `windowFunnel` in its
//! `strict_increase` mode).
//!
//! A funnel needs each event's time, which no rollup keeps: both tiers give
//! their events of the steps' types (hot rows from PostgreSQL, cold files
//! through DuckDB, concurrently) as (user, microseconds, step mask), and
//! each user's level is computed here over the union. Each tier interns
//! its own user ids; the hot ones are mapped into the cold ones' once, per
//! distinct user. Duplicates across tiers cannot occur (an event lives in
//! one tier) and would not matter: a copy of an event adds no chain.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use duckdb::arrow::array::AsArray;
use duckdb::arrow::datatypes::{Int64Type, UInt16Type};
use strata_model::{DayRange, FunnelSteps, FunnelWindow, GroupBy, ProjectId};
use tracing::Instrument;

use crate::breakdown::{
    Interner, MISSING, Ranking, RawValues, Values, batches, property_sql, remap_raw, strings,
};
use crate::duck::{source, sql_text};
use crate::plan::{ms, with_hot};
use crate::response::{FunnelGroup, FunnelResponse, FunnelStep, GroupKey};
use crate::{Planner, QueryError};

fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// Events of the steps' types, one tier's or both: `(user, µs, mask,
/// property text of a first-step event)`, users and texts interned.
#[derive(Debug, Default)]
pub(crate) struct FunnelEvents {
    users: Interner<Box<str>>,
    raw: RawValues,
    events: Vec<(u32, i64, u16, u32)>,
}

/// Users per level (index 0: level 0 … `steps`), in all and per group.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Tally {
    pub all: Vec<u64>,
    pub groups: Vec<(GroupKey, Vec<u64>)>,
}

impl FunnelEvents {
    fn push(&mut self, user: &str, ts: i64, mask: u16, raw: Option<&str>) {
        let u = self.users.id(user);
        let r = if mask & 1 != 0 {
            self.raw.id(raw)
        } else {
            MISSING
        };
        self.events.push((u, ts, mask, r));
    }

    /// Adds `other`'s events, its users and texts mapped onto these.
    fn absorb(&mut self, other: FunnelEvents) {
        let users = self.users.map(other.users);
        let raw = self.raw.map(other.raw);
        self.events.extend(
            other
                .events
                .into_iter()
                .map(|(u, ts, m, r)| (users[u as usize], ts, m, remap_raw(&raw, r))),
        );
    }

    /// Each user's level, in all and (with `limit_groups`) per group of
    /// the first step's property: a user is in a group when a chain of
    /// theirs can start with an event of its value, at the best level
    /// such chains reach.
    fn tally(mut self, steps: usize, window: i64, limit_groups: Option<u32>) -> Tally {
        let mut values = Values::default();
        let group_of = self.raw.groups(&mut values);
        self.events.sort_unstable();
        let users: Vec<&[(u32, i64, u16, u32)]> = self.events.chunk_by(|a, b| a.0 == b.0).collect();
        // A user's events with only the starts `keep` accepts.
        let mut times: Vec<(i64, u16)> = Vec::new();
        let mut level_with = |user: &[(u32, i64, u16, u32)], keep: &dyn Fn(u32) -> bool| {
            times.clear();
            times.extend(user.iter().map(|&(_, t, m, r)| {
                let start = m & 1 != 0 && keep(group_of.of(r));
                (t, if start { m } else { m & !1 })
            }));
            level(&times, steps, window)
        };
        let mut tally = Tally {
            all: vec![0; steps + 1],
            groups: Vec::new(),
        };
        for user in &users {
            tally.all[level_with(user, &|_| true)] += 1;
        }
        let Some(limit) = limit_groups else {
            return tally;
        };
        // Users at step 1 per value: those with a start of that value.
        let starts = |user: &[(u32, i64, u16, u32)]| -> Vec<u32> {
            let mut g: Vec<u32> = user
                .iter()
                .filter(|e| e.2 & 1 != 0)
                .map(|e| group_of.of(e.3))
                .collect();
            g.sort_unstable();
            g.dedup();
            g
        };
        let starts: Vec<Vec<u32>> = users.iter().map(|u| starts(u)).collect();
        let mut totals = vec![0u64; values.list.len()];
        for g in starts.iter().flatten() {
            totals[*g as usize] += 1;
        }
        let ranking = Ranking::new(&values, &totals, limit);
        let position: HashMap<u32, usize> = ranking
            .shown
            .iter()
            .enumerate()
            .map(|(i, g)| (*g, i))
            .collect();
        let others: std::collections::HashSet<u32> = ranking.other.iter().copied().collect();
        let keys = ranking.keys(&values);
        let mut counts = vec![vec![0u64; steps + 1]; keys.len()];
        for (user, mine) in users.iter().zip(&starts) {
            for g in mine {
                if let Some(&i) = position.get(g) {
                    counts[i][level_with(user, &|h| h == *g)] += 1;
                }
            }
            if mine.iter().any(|g| others.contains(g)) {
                let last = keys.len() - 1;
                counts[last][level_with(user, &|h| others.contains(&h))] += 1;
            }
        }
        tally.groups = keys.into_iter().zip(counts).collect();
        tally
    }
}

/// Users at least at each step, from users per level.
fn at_least(levels: &[u64]) -> Vec<u64> {
    let n = levels.len() - 1;
    let mut users = vec![0u64; n];
    let mut sum = 0;
    for k in (1..=n).rev() {
        sum += levels[k];
        users[k - 1] = sum;
    }
    users
}

/// A user's level: the largest k for which the user has events e1 … ek of
/// steps 1 … k with strictly increasing times and tk − t1 ≤ `window`.
/// `events` are the user's, by time; bit i of a mask says the event is of
/// step i+1's type (bit 0 set only for events that may start a chain).
///
/// One pass: `start[j]` is the latest first-step time of any chain reaching
/// step j+1 among the events before the current instant. Events of one
/// instant extend only chains of earlier instants (strict increase), so
/// each instant's updates are computed from the state before it, then
/// applied. The latest start is the best a chain can have: every later
/// event it can still be extended by, an earlier start can only be too.
pub(crate) fn level(events: &[(i64, u16)], steps: usize, window: i64) -> usize {
    let mut start: [Option<i64>; strata_model::MAX_STEPS] = [None; strata_model::MAX_STEPS];
    let mut reached = 0;
    for instant in events.chunk_by(|a, b| a.0 == b.0) {
        let t = instant[0].0;
        let mut next = start;
        for &(_, mask) in instant {
            let mut bits = mask;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if i >= steps {
                    continue;
                }
                let s = if i == 0 {
                    Some(t)
                } else {
                    start[i - 1].filter(|&s| t - s <= window)
                };
                if let Some(s) = s
                    && next[i].is_none_or(|n| n < s)
                {
                    next[i] = Some(s);
                    reached = reached.max(i + 1);
                }
            }
        }
        start = next;
        if reached == steps {
            break;
        }
    }
    reached
}

impl Planner {
    /// Users per funnel level (docs/CONTRACT.md, "Funnel").
    pub async fn funnel(
        &self,
        project: ProjectId,
        range: DayRange,
        steps: &FunnelSteps,
        window: FunnelWindow,
        group_by: Option<(&GroupBy, u32)>,
    ) -> Result<FunnelResponse, QueryError> {
        let (from, to) = (range.from(), range.to());
        let window_us = window.micros();
        // A chain starts on a day of the range and ends at most `window`
        // after: events from `from` up to the end of `to` plus the window.
        let end = day_start(to) + Duration::days(1) + Duration::microseconds(window_us);
        let read_to = (end - Duration::microseconds(1)).date_naive();
        let (mut snap, plan) = self.plan(project, from, read_to, None).await?;
        let starts = (
            day_start(plan.from).timestamp_micros(),
            day_start(to + Duration::days(1)).timestamp_micros(),
        );
        let masks = steps.masks();
        let types: Vec<String> = masks.iter().map(|(t, _)| (*t).to_owned()).collect();
        let bits: Vec<i16> = masks.iter().map(|(_, m)| *m as i16).collect();
        let keep = move |ts: i64, mask: u16| -> u16 {
            // Only an event of the range's days can start a chain.
            if (starts.0..starts.1).contains(&ts) {
                mask
            } else {
                mask & !1
            }
        };
        let lo = day_start(plan.from);
        let key: Option<String> = group_by.map(|(g, _)| g.key().to_owned());
        let hot_key = key.clone();
        let hot = async move {
            let started = Instant::now();
            let mut events = FunnelEvents::default();
            let rows = snap
                .funnel_events(
                    project,
                    (lo, end),
                    (&types, &bits),
                    hot_key.as_deref(),
                    |user, ts, m, raw| {
                        let m = keep(ts, m);
                        if m != 0 {
                            events.push(user, ts, m, raw);
                        }
                    },
                )
                .await?;
            snap.finish().await?;
            Ok::<_, QueryError>((events, rows, ms(started)))
        }
        .instrument(tracing::info_span!("hot_tier", stat = "funnel"));
        let mask_sql = masks
            .iter()
            .map(|(t, m)| format!("WHEN {} THEN {m}", sql_text(t)))
            .collect::<Vec<_>>()
            .join(" ");
        let type_list = masks
            .iter()
            .map(|(t, _)| sql_text(t))
            .collect::<Vec<_>>()
            .join(", ");
        let end_us = end.timestamp_micros();
        let cold = self.cold(&plan.files, move |conn, files| {
            let paths: Vec<PathBuf> = files.into_iter().map(|(_, p)| p).collect();
            let property = key
                .as_deref()
                .map_or_else(|| "CAST(NULL AS VARCHAR)".to_owned(), property_sql);
            let sql = format!(
                "SELECT user_id, epoch_us(ts) AS t,
                        CAST(CASE event_type {mask_sql} END AS USMALLINT) AS m, {property} AS v
                   FROM {} WHERE event_type IN ({type_list}) AND epoch_us(ts) < {end_us}",
                source(&paths)
            );
            let mut events = FunnelEvents::default();
            batches(conn, &sql, |b| {
                let ts = b.column(1).as_primitive::<Int64Type>();
                let masks = b.column(2).as_primitive::<UInt16Type>();
                let (users, values) = (strings(b.column(0)), strings(b.column(3)));
                for i in 0..b.num_rows() {
                    let m = keep(ts.value(i), masks.value(i));
                    if m != 0 {
                        let user = users(i).unwrap_or_default();
                        events.push(user, ts.value(i), m, values(i));
                    }
                }
            })?;
            Ok(events)
        });
        let ((hot_events, hot_rows, hot_ms), cold) = tokio::try_join!(hot, cold)?;
        let (events, cold_meta) = with_hot(cold, hot_events, FunnelEvents::absorb);
        let n = steps.len();
        let limit_groups = group_by.map(|(_, l)| l);
        let tally = tokio::task::spawn_blocking(move || events.tally(n, window_us, limit_groups))
            .await
            .map_err(QueryError::Task)?;
        let meta = self.meta(&plan, hot_rows, hot_ms, cold_meta);
        let groups = group_by.map(|_| {
            tally
                .groups
                .iter()
                .map(|(group, levels)| FunnelGroup {
                    group: group.clone(),
                    steps: FunnelStep::list(steps, &at_least(levels)),
                })
                .collect()
        });
        Ok(FunnelResponse {
            from,
            to,
            window_seconds: window.seconds(),
            read_to,
            steps: FunnelStep::list(steps, &at_least(&tally.all)),
            group_by: group_by.map(|(g, _)| g.as_param()),
            groups,
            meta,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 100;

    #[test]
    fn a_level_is_the_longest_chain_in_the_window() {
        // a=1, b=2, c=4 (bits).
        assert_eq!(level(&[(0, 1), (5, 2), (9, 4)], 3, W), 3);
        // Out of order: b before a.
        assert_eq!(level(&[(0, 2), (5, 1), (9, 4)], 3, W), 1);
        // The window counts from the first step to the last.
        assert_eq!(level(&[(0, 1), (60, 2), (101, 4)], 3, W), 2);
        assert_eq!(level(&[(0, 1), (60, 2), (100, 4)], 3, W), 3);
        // A later start rescues the chain.
        assert_eq!(level(&[(0, 1), (50, 1), (60, 2), (140, 4)], 3, W), 3);
        // Equal times never chain (strict increase)…
        assert_eq!(level(&[(5, 1), (5, 2), (5, 4)], 3, W), 1);
        // …but an earlier start still can, whatever order an instant's
        // events come in.
        assert_eq!(level(&[(1, 1), (2, 1), (2, 2), (3, 4)], 3, W), 3);
        assert_eq!(level(&[(1, 1), (2, 2), (2, 1), (3, 4)], 3, W), 3);
        // A type at two steps (a, b, a): one event is never two steps.
        assert_eq!(level(&[(0, 0b101), (5, 2)], 3, W), 2);
        assert_eq!(level(&[(0, 0b101), (5, 2), (6, 0b101)], 3, W), 3);
        // An event that may not start a chain (bit 0 cleared) only extends.
        assert_eq!(level(&[(0, 0), (5, 2)], 2, W), 0);
        assert_eq!(level(&[], 2, W), 0);
    }

    /// The definition searched directly: every chain from every start.
    fn brute(events: &[(i64, u16)], steps: usize, window: i64) -> usize {
        fn reach(events: &[(i64, u16)], i: usize, t: i64, t1: i64, steps: usize, w: i64) -> usize {
            if i == steps {
                return i;
            }
            let mut best = i;
            for &(te, m) in events {
                if te > t && te - t1 <= w && m & (1 << i) != 0 {
                    best = best.max(reach(events, i + 1, te, t1, steps, w));
                }
            }
            best
        }
        events
            .iter()
            .filter(|(_, m)| m & 1 != 0)
            .map(|&(t, _)| reach(events, 1, t, t, steps, window))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn the_one_pass_equals_the_search_on_random_users() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(37);
        for _ in 0..20_000 {
            let steps = rng.random_range(2..=4);
            let n = rng.random_range(0..9);
            let mut events: Vec<(i64, u16)> = (0..n)
                .map(|_| {
                    (
                        rng.random_range(0..40) * 10,
                        rng.random_range(0..(1u16 << steps)),
                    )
                })
                .collect();
            events.sort_unstable();
            assert_eq!(
                level(&events, steps, W),
                brute(&events, steps, W),
                "{events:?} over {steps} steps"
            );
        }
    }

    #[test]
    fn users_are_merged_across_tiers_by_id() {
        let mut cold = FunnelEvents::default();
        cold.push("u1", 0, 1, None);
        cold.push("u2", 0, 1, None);
        let mut hot = FunnelEvents::default();
        hot.push("u3", 5, 1, None);
        hot.push("u1", 5, 2, None);
        cold.absorb(hot);
        assert_eq!(cold.tally(2, W, None).all, vec![0, 2, 1]);
    }

    #[test]
    fn a_user_is_in_each_group_a_chain_of_theirs_can_start_in() {
        let pro = Some("\"pro\"");
        let mut e = FunnelEvents::default();
        // u1 starts as free and as pro; only the pro start converts.
        e.push("u1", 0, 1, Some("\"free\""));
        e.push("u1", 200, 1, pro);
        e.push("u1", 250, 2, None);
        // u2: pro, converts; u3: no property, stops at step 1; u4: "x".
        e.push("u2", 0, 1, pro);
        e.push("u2", 10, 2, None);
        e.push("u3", 0, 1, None);
        e.push("u4", 0, 1, Some("\"x\""));
        let t = e.tally(2, W, Some(2));
        assert_eq!(t.all, vec![0, 2, 2]);
        let groups: Vec<(GroupKey, Vec<u64>)> = vec![
            (GroupKey::value(Some("pro".into())), vec![0, 0, 2]),
            (GroupKey::value(Some("free".into())), vec![0, 1, 0]),
            (GroupKey::other(2), vec![0, 2, 0]),
        ];
        assert_eq!(t.groups, groups);
        assert_eq!(at_least(&[0, 1, 2]), vec![3, 2]);
    }
}
