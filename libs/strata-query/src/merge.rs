//! Exact merging of the two tiers' partial answers (ADR-013), kept apart
//! from the I/O so that it can be tested and benchmarked on its own.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use roaring::RoaringBitmap;
use strata_model::{DayRange, from_day_number};

use crate::response::{Cohort, DauPoint};

/// Distinct users per day. A day one tier holds alone arrives as a count;
/// a day both tiers hold arrives as each tier's users, and counts their
/// union, so a user active in both tiers that day counts once.
#[derive(Debug, Default)]
pub struct DauMerge {
    counts: HashMap<NaiveDate, u64>,
    union: HashMap<NaiveDate, HashSet<String>>,
}

impl DauMerge {
    /// The count of a day only one tier holds.
    pub fn count(&mut self, day: NaiveDate, users: u64) {
        self.counts.insert(day, users);
    }

    /// One user of a day both tiers hold.
    pub fn user(&mut self, day: NaiveDate, user: String) {
        self.union.entry(day).or_default().insert(user);
    }

    /// Every day of `range`, zero-filled.
    pub fn finish(mut self, range: &DayRange) -> Vec<DauPoint> {
        for (d, set) in self.union {
            self.counts.insert(d, set.len() as u64);
        }
        range
            .days()
            .map(|date| DauPoint {
                date,
                users: self.counts.get(&date).copied().unwrap_or(0),
            })
            .collect()
    }
}

/// Each cohort user's active periods as bits k = 0..periods (so at most
/// 128 periods), set from either tier's (user, period) pairs in any order.
#[derive(Debug)]
pub struct RetentionMerge<'a> {
    active: HashMap<&'a str, (i32, u128)>,
    len: i32,
    periods: u32,
}

impl<'a> RetentionMerge<'a> {
    /// `cohort_users`: (user, first day number of the user's cohort
    /// period); `len`: days per period.
    pub fn new(cohort_users: &'a [(String, i32)], len: i32, periods: u32) -> Self {
        Self {
            active: cohort_users
                .iter()
                .map(|(user, c)| (user.as_str(), (*c, 0u128)))
                .collect(),
            len,
            periods,
        }
    }

    /// `user` was active in the period starting on day number `p`.
    pub fn mark(&mut self, user: &str, p: i32) {
        if let Some((c, bits)) = self.active.get_mut(user) {
            let k = (p - *c).div_euclid(self.len);
            if p >= *c && (0..self.periods as i32).contains(&k) {
                *bits |= 1u128 << k;
            }
        }
    }

    /// The cohorts starting on day numbers `first..=last`; see
    /// [`cohorts`].
    pub fn finish(self, first: i32, last: i32, today: i32) -> Vec<Cohort> {
        let n = self.periods as usize;
        let mut by_cohort: HashMap<i32, (u64, Vec<u64>)> = HashMap::new();
        for (c, bits) in self.active.values() {
            let (size, retained) = by_cohort.entry(*c).or_insert_with(|| (0, vec![0; n]));
            *size += 1;
            for (k, slot) in retained.iter_mut().enumerate() {
                if bits & (1u128 << k) != 0 {
                    *slot += 1;
                }
            }
        }
        cohorts(by_cohort, (first, last, today), self.len, n)
    }
}

/// Cohorts from counts aggregated elsewhere (DuckDB, for ranges reaching
/// the cold tier): `sizes` (cohort start, users) and `retained` (cohort
/// start, k, users active in period k).
pub fn cohorts_from_counts(
    sizes: &[(i32, i64)],
    retained: &[(i32, i32, i64)],
    (first, last, today): (i32, i32, i32),
    len: i32,
    periods: u32,
) -> Vec<Cohort> {
    let n = periods as usize;
    let mut by_cohort: HashMap<i32, (u64, Vec<u64>)> = HashMap::new();
    for (c, size) in sizes {
        by_cohort.entry(*c).or_insert_with(|| (0, vec![0; n])).0 =
            u64::try_from(*size).unwrap_or(0);
    }
    for (c, k, users) in retained {
        let entry = by_cohort.entry(*c).or_insert_with(|| (0, vec![0; n]));
        if let Some(slot) = usize::try_from(*k).ok().and_then(|k| entry.1.get_mut(k)) {
            *slot = u64::try_from(*users).unwrap_or(0);
        }
    }
    cohorts(by_cohort, (first, last, today), len, n)
}

/// [`cohorts_from_counts`] for cohorts and period activity held as sets of
/// user ordinals (keyed by period start): sizes are set sizes, retained
/// users intersection sizes.
pub(crate) fn cohorts_from_sets(
    cohorts: &BTreeMap<i32, RoaringBitmap>,
    active: &BTreeMap<i32, RoaringBitmap>,
    bounds: (i32, i32, i32),
    len: i32,
    periods: u32,
) -> Vec<Cohort> {
    let sizes: Vec<(i32, i64)> = cohorts.iter().map(|(c, s)| (*c, s.len() as i64)).collect();
    let mut retained = Vec::new();
    for (c, set) in cohorts {
        for k in 0..periods as i32 {
            if let Some(act) = active.get(&(c + k * len)) {
                let kept = set.intersection_len(act);
                if kept > 0 {
                    retained.push((*c, k, kept as i64));
                }
            }
        }
    }
    cohorts_from_counts(&sizes, &retained, bounds, len, periods)
}

/// The cohorts starting on day numbers `first..=last` (one per period,
/// empty ones included), each with `retained[k]` for k = 0 … n−1; periods
/// starting after `today` are left out, and so are cohorts whose period
/// has not started (a user whose first event is future-dated forms no
/// cohort until that period begins).
fn cohorts(
    mut by_cohort: HashMap<i32, (u64, Vec<u64>)>,
    (first, last, today): (i32, i32, i32),
    len: i32,
    n: usize,
) -> Vec<Cohort> {
    (0..)
        .map(|i| first + i * len)
        .take_while(|c| *c <= last && *c <= today)
        .map(|c| {
            let (size, mut retained) = by_cohort.remove(&c).unwrap_or_else(|| (0, vec![0; n]));
            let started = (0..n as i32).take_while(|k| c + k * len <= today).count();
            retained.truncate(started);
            Cohort {
                cohort: from_day_number(c),
                size,
                retained,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_model::day_number;

    #[test]
    fn dau_unions_shared_days_and_zero_fills() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let range = DayRange::new(d("2026-01-01"), d("2026-01-03"), 10).unwrap();
        let mut m = DauMerge::default();
        m.count(d("2026-01-01"), 5);
        for u in ["a", "b", "a", "c"] {
            m.user(d("2026-01-02"), u.into());
        }
        let got: Vec<u64> = m.finish(&range).iter().map(|p| p.users).collect();
        assert_eq!(got, vec![5, 3, 0]);
    }

    #[test]
    fn retention_counts_each_user_once_per_period() {
        let c = day_number(NaiveDate::from_ymd_opt(2026, 1, 5).unwrap());
        let users = vec![("a".to_owned(), c), ("b".to_owned(), c)];
        let mut m = RetentionMerge::new(&users, 7, 3);
        m.mark("a", c);
        m.mark("a", c); // the other tier's copy of the same period
        m.mark("b", c);
        m.mark("a", c + 14);
        m.mark("stranger", c); // not in a cohort: ignored
        m.mark("b", c + 21); // past the tracked periods
        let cohorts = m.finish(c, c + 7, c + 100);
        assert_eq!(cohorts.len(), 2);
        assert_eq!(
            (cohorts[0].size, cohorts[0].retained.clone()),
            (2, vec![2, 0, 1])
        );
        assert_eq!(
            (cohorts[1].size, cohorts[1].retained.clone()),
            (0, vec![0, 0, 0])
        );
        // A cohort whose later periods have not started yet.
        let m = RetentionMerge::new(&users, 7, 3);
        assert_eq!(m.finish(c, c, c + 8)[0].retained.len(), 2);
        // A cohort whose own period has not started is left out, even
        // with users (first events dated in the future).
        let users = vec![("early".to_owned(), c), ("future".to_owned(), c + 1)];
        let mut m = RetentionMerge::new(&users, 1, 3);
        m.mark("early", c);
        m.mark("future", c + 1);
        let cohorts = m.finish(c, c + 1, c);
        assert_eq!(cohorts.len(), 1, "{cohorts:?}");
        assert_eq!((cohorts[0].size, cohorts[0].retained.clone()), (1, vec![1]));
        // The same answer from counts aggregated elsewhere.
        let counted = cohorts_from_counts(&[(c, 1), (c + 1, 1)], &[(c, 0, 1)], (c, c + 1, c), 1, 3);
        assert_eq!(counted, cohorts);
    }
}
