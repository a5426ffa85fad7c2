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
    /// The properties object as sent (`Null`: none, or not tracked).
    pub props: serde_json::Value,
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

/// `(step, users at least at it)` of a funnel over `steps` with `window`:
/// for every event of step 1 on a day of `[from, to]`, the chain that takes
/// at each next step the earliest event of its type strictly after the
/// previous one (no chain from that start reaches further: an earlier
/// event leaves every later choice open), cut where it leaves the window;
/// a user's level is the best of their chains.
pub fn funnel(
    events: &[Ev],
    from: NaiveDate,
    to: NaiveDate,
    steps: &[&str],
    window: Duration,
) -> Vec<(String, u64)> {
    funnel_from(events, (from, to), steps, window, &|_| true)
}

/// [`funnel`] with chains started only by the events `starts` accepts.
fn funnel_from(
    events: &[Ev],
    (from, to): (NaiveDate, NaiveDate),
    steps: &[&str],
    window: Duration,
    starts: &dyn Fn(&Ev) -> bool,
) -> Vec<(String, u64)> {
    let mut by_user: HashMap<&str, Vec<&Ev>> = HashMap::new();
    for e in events {
        by_user.entry(&e.user).or_default().push(e);
    }
    let mut at_least = vec![0u64; steps.len()];
    for mine in by_user.values() {
        let mut best = 0;
        for first in mine
            .iter()
            .filter(|e| e.event_type == steps[0] && from <= e.day() && e.day() <= to && starts(e))
        {
            let mut level = 1;
            let mut last = first.ts;
            for step in &steps[1..] {
                let next = mine
                    .iter()
                    .filter(|e| e.event_type == *step && e.ts > last && e.ts - first.ts <= window)
                    .map(|e| e.ts)
                    .min();
                match next {
                    Some(t) => {
                        level += 1;
                        last = t;
                    }
                    None => break,
                }
            }
            best = best.max(level);
        }
        for n in at_least.iter_mut().take(best) {
            *n += 1;
        }
    }
    steps
        .iter()
        .zip(at_least)
        .map(|(s, n)| ((*s).to_owned(), n))
        .collect()
}

/// A breakdown's group: `("value" | "missing" | "other", value, numbers)`.
pub type Group<T> = (String, Option<String>, T);

/// A DAU group's numbers: its total and its days.
pub type DauNumbers = (u64, Vec<(NaiveDate, u64)>);

/// A top-events group's numbers: its events and its top event types.
pub type TopNumbers = (u64, Vec<(String, u64, u64)>);

/// The group value of `e`'s property `key`: a string as itself, `null`
/// or no such key as `None`, anything else as serde_json prints it.
pub fn property(e: &Ev, key: &str) -> Option<String> {
    match e.props.get(key)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        v => Some(v.to_string()),
    }
}

/// The groups of a breakdown from each value's total: the `limit` largest
/// (ties by value, `None` last), then the rest as one set (when any).
fn rank(
    totals: BTreeMap<Option<String>, u64>,
    limit: usize,
) -> Vec<(String, Option<String>, Vec<Option<String>>)> {
    let mut values: Vec<(Option<String>, u64)> =
        totals.into_iter().filter(|(_, n)| *n > 0).collect();
    values.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| a.0.is_none().cmp(&b.0.is_none()))
            .then_with(|| a.0.cmp(&b.0))
    });
    let rest: Vec<Option<String>> = values.iter().skip(limit).map(|(v, _)| v.clone()).collect();
    let mut out: Vec<(String, Option<String>, Vec<Option<String>>)> = values
        .into_iter()
        .take(limit)
        .map(|(v, _)| {
            let kind = if v.is_some() { "value" } else { "missing" };
            (kind.to_owned(), v.clone(), vec![v])
        })
        .collect();
    if !rest.is_empty() {
        out.push(("other".to_owned(), None, rest));
    }
    out
}

/// DAU per group of `key`'s values: `(total, days)` each.
pub fn dau_by(
    events: &[Ev],
    (from, to): (NaiveDate, NaiveDate),
    key: &str,
    limit: usize,
) -> Vec<Group<DauNumbers>> {
    let in_range: Vec<&Ev> = events
        .iter()
        .filter(|e| from <= e.day() && e.day() <= to)
        .collect();
    let of = |values: &[Option<String>]| -> Vec<(NaiveDate, u64)> {
        let mine: Vec<Ev> = in_range
            .iter()
            .filter(|e| values.contains(&property(e, key)))
            .map(|e| (*e).clone())
            .collect();
        dau(&mine, from, to)
    };
    let mut totals = BTreeMap::new();
    for e in &in_range {
        let v = property(e, key);
        totals
            .entry(v.clone())
            .or_insert_with(|| of(&[v]).iter().map(|(_, n)| n).sum());
    }
    rank(totals, limit)
        .into_iter()
        .map(|(kind, v, values)| {
            let days = of(&values);
            (kind, v, (days.iter().map(|(_, n)| n).sum(), days))
        })
        .collect()
}

/// Top events per group of `key`'s values: `(total events, top events)`.
pub fn top_events_by(
    events: &[Ev],
    (from, to): (NaiveDate, NaiveDate),
    limit: usize,
    key: &str,
    limit_groups: usize,
) -> Vec<Group<TopNumbers>> {
    let in_range: Vec<Ev> = events
        .iter()
        .filter(|e| from <= e.day() && e.day() <= to)
        .cloned()
        .collect();
    let mut totals: BTreeMap<Option<String>, u64> = BTreeMap::new();
    for e in &in_range {
        *totals.entry(property(e, key)).or_default() += 1;
    }
    rank(totals, limit_groups)
        .into_iter()
        .map(|(kind, v, values)| {
            let mine: Vec<Ev> = in_range
                .iter()
                .filter(|e| values.contains(&property(e, key)))
                .cloned()
                .collect();
            let top = top_events(&mine, from, to, limit);
            (kind, v, (mine.len() as u64, top))
        })
        .collect()
}

/// Funnels per group of the first step's `key` values.
pub fn funnel_by(
    events: &[Ev],
    range: (NaiveDate, NaiveDate),
    (steps, window): (&[&str], Duration),
    key: &str,
    limit: usize,
) -> Vec<Group<Vec<(String, u64)>>> {
    let mut totals = BTreeMap::new();
    for e in events.iter().filter(|e| e.event_type == steps[0]) {
        let v = property(e, key);
        totals.entry(v.clone()).or_insert_with(|| {
            funnel_from(events, range, steps, window, &|s| property(s, key) == v)[0].1
        });
    }
    rank(totals, limit)
        .into_iter()
        .map(|(kind, v, values)| {
            let f = funnel_from(events, range, steps, window, &|s| {
                values.contains(&property(s, key))
            });
            (kind, v, f)
        })
        .collect()
}
