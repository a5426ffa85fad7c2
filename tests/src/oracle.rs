//! The stats of docs/CONTRACT.md §3 computed the plain way, over the list of events
//! a project stored: an independent check of the planner (no SQL, no day
//! numbers, no tiers). Dates are computed with chrono's calendar functions.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ev {
    pub user: String,
    pub event_type: String,
    pub ts: DateTime<Utc>,
}

impl Ev {
    fn day(&self) -> NaiveDate {
        self.ts.date_naive()
    }
}

pub fn dau(events: &[Ev], from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, u64)> {
    let mut users: HashMap<NaiveDate, HashSet<&str>> = HashMap::new();
    for e in events {
        users.entry(e.day()).or_default().insert(&e.user);
    }
    let mut out = Vec::new();
    let mut d = from;
    while d <= to {
        out.push((d, users.get(&d).map_or(0, |s| s.len() as u64)));
        d += Duration::days(1);
    }
    out
}

pub fn top_events(
    events: &[Ev],
    from: NaiveDate,
    to: NaiveDate,
    limit: usize,
) -> Vec<(String, u64, u64)> {
    let mut by_type: BTreeMap<&str, (u64, HashSet<&str>)> = BTreeMap::new();
    for e in events.iter().filter(|e| from <= e.day() && e.day() <= to) {
        let entry = by_type.entry(&e.event_type).or_default();
        entry.0 += 1;
        entry.1.insert(&e.user);
    }
    let mut out: Vec<(String, u64, u64)> = by_type
        .into_iter()
        .map(|(t, (n, users))| (t.to_owned(), n, users.len() as u64))
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.truncate(limit);
    out
}

fn period_start(day: NaiveDate, week: bool) -> NaiveDate {
    if week {
        day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
    } else {
        day
    }
}

/// (cohort start, size, retained) for every cohort period in `[from, to]`.
pub fn retention(
    events: &[Ev],
    from: NaiveDate,
    to: NaiveDate,
    week: bool,
    periods: usize,
    today: NaiveDate,
) -> Vec<(NaiveDate, u64, Vec<u64>)> {
    retention_filtered(events, from, to, (week, periods), today, (None, None))
}

/// [`retention`] where cohorts come from each user's first event of
/// `start_event`, and only events of `return_event` make a user active in
/// a period (each when given).
pub fn retention_filtered(
    events: &[Ev],
    from: NaiveDate,
    to: NaiveDate,
    (week, periods): (bool, usize),
    today: NaiveDate,
    (start_event, return_event): (Option<&str>, Option<&str>),
) -> Vec<(NaiveDate, u64, Vec<u64>)> {
    let step = Duration::days(if week { 7 } else { 1 });
    let mut first: HashMap<&str, NaiveDate> = HashMap::new();
    for e in events {
        if start_event.is_some_and(|t| t != e.event_type) {
            continue;
        }
        let d = first.entry(&e.user).or_insert(e.day());
        *d = (*d).min(e.day());
    }
    let mut active: HashSet<(&str, NaiveDate)> = HashSet::new();
    for e in events {
        if return_event.is_none_or(|t| t == e.event_type) {
            active.insert((&e.user, period_start(e.day(), week)));
        }
    }
    let mut out = Vec::new();
    let mut cohort = period_start(from, week);
    // A period that has not started forms no cohort (future-dated firsts).
    while cohort <= period_start(to, week) && cohort <= today {
        let members: Vec<&str> = first
            .iter()
            .filter(|(_, d)| period_start(**d, week) == cohort)
            .map(|(u, _)| *u)
            .collect();
        let mut retained = Vec::new();
        for k in 0..periods {
            let p = cohort + step * k as i32;
            if p > today {
                break;
            }
            retained.push(
                members
                    .iter()
                    .filter(|u| active.contains(&(**u, p)))
                    .count() as u64,
            );
        }
        out.push((cohort, members.len() as u64, retained));
        cohort += step;
    }
    out
}
