//! Breakdowns by a property (`group_by=property:<key>`): DAU and top events
//! split by the value of one top-level property of the events (funnels by
//! that of their first step's event, in `funnel.rs`).
//!
//! Both tiers give their rows with the property's JSON text as each
//! engine prints it: the hot rows from PostgreSQL, the cold files through
//! DuckDB, concurrently. Each text is turned into the value the groups use
//! once per distinct text ([`strata_model::property_text`]), so a value
//! reads the same from either tier. Users are interned per tier and mapped
//! once per distinct user; each group's users are sets, so a user is
//! counted once per group and the "other" group is the union of the sets
//! of the values it holds, never a sum.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use duckdb::Connection;
use duckdb::arrow::array::{Array, AsArray, RecordBatch};
use duckdb::arrow::datatypes::{DataType, Int32Type, Int64Type};
use roaring::RoaringBitmap;
use strata_model::{DayRange, EventType, GroupBy, ProjectId, property_text};
use tracing::Instrument;

use crate::duck::{source, sql_text};
use crate::plan::{ms, u, with_hot};
use crate::response::{
    DauGroup, DauPoint, DauResponse, GroupKey, TopEvent, TopEventsGroup, TopEventsResponse,
};
use crate::{Planner, QueryError};

/// Distinct strings as dense ids.
#[derive(Debug, Default)]
pub(crate) struct Interner<K: std::hash::Hash + Eq> {
    ids: HashMap<K, u32>,
}

impl<K: std::hash::Hash + Eq> Interner<K> {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The ids of `other`'s keys here (index: `other`'s id).
    pub(crate) fn map(&mut self, other: Interner<K>) -> Vec<u32> {
        let mut map = vec![0u32; other.ids.len()];
        for (k, id) in other.ids {
            map[id as usize] = self.id_owned(k);
        }
        map
    }

    fn id_owned(&mut self, k: K) -> u32 {
        let next = self.ids.len() as u32;
        *self.ids.entry(k).or_insert(next)
    }
}

impl Interner<Box<str>> {
    pub(crate) fn id(&mut self, k: &str) -> u32 {
        match self.ids.get(k) {
            Some(id) => *id,
            None => self.id_owned(k.into()),
        }
    }
}

/// The raw id of a missing property (or a missing `properties`).
pub(crate) const MISSING: u32 = u32::MAX;

/// Property texts as ids ([`MISSING`] for none).
#[derive(Debug, Default)]
pub(crate) struct RawValues(Interner<Box<str>>);

impl RawValues {
    pub(crate) fn id(&mut self, raw: Option<&str>) -> u32 {
        raw.map_or(MISSING, |r| self.0.id(r))
    }

    /// The ids of `other`'s texts here.
    pub(crate) fn map(&mut self, other: RawValues) -> Vec<u32> {
        self.0.map(other.0)
    }

    /// Each text's group value ([`property_text`]) as an id of `values`.
    pub(crate) fn groups(&self, values: &mut Values) -> GroupOf {
        let mut ids = vec![0u32; self.0.len()];
        for (raw, id) in &self.0.ids {
            ids[*id as usize] = values.id(property_text(Some(raw)));
        }
        GroupOf {
            ids,
            missing: values.id(None),
        }
    }
}

/// Raw id → group value id.
pub(crate) struct GroupOf {
    ids: Vec<u32>,
    missing: u32,
}

impl GroupOf {
    pub(crate) fn of(&self, raw: u32) -> u32 {
        if raw == MISSING {
            self.missing
        } else {
            self.ids[raw as usize]
        }
    }
}

pub(crate) fn remap_raw(map: &[u32], raw: u32) -> u32 {
    if raw == MISSING {
        MISSING
    } else {
        map[raw as usize]
    }
}

/// The distinct group values of a request, in first-seen order.
#[derive(Debug, Default)]
pub(crate) struct Values {
    ids: HashMap<Option<String>, u32>,
    pub(crate) list: Vec<Option<String>>,
}

impl Values {
    fn id(&mut self, v: Option<String>) -> u32 {
        if let Some(id) = self.ids.get(&v) {
            return *id;
        }
        let id = self.list.len() as u32;
        self.ids.insert(v.clone(), id);
        self.list.push(v);
        id
    }
}

/// One tier's rows of a breakdown: `(key, property text, user, events)`,
/// the key a day number (DAU) or an interned event type (top events).
#[derive(Debug, Default)]
pub(crate) struct Rows {
    users: Interner<Box<str>>,
    raw: RawValues,
    types: Interner<Box<str>>,
    rows: Vec<(i64, u32, u32, i64)>,
}

impl Rows {
    fn push(&mut self, key: i64, raw: Option<&str>, user: &str, n: i64) {
        let (r, u) = (self.raw.id(raw), self.users.id(user));
        self.rows.push((key, r, u, n));
    }

    fn push_typed(&mut self, event_type: &str, raw: Option<&str>, user: &str, n: i64) {
        let t = i64::from(self.types.id(event_type));
        self.push(t, raw, user, n);
    }

    /// Adds `other`'s rows, its ids mapped onto these.
    fn absorb(&mut self, other: Rows) {
        let users = self.users.map(other.users);
        let raw = self.raw.map(other.raw);
        let types = self.types.map(other.types);
        let typed = !types.is_empty();
        self.rows.extend(other.rows.into_iter().map(|(k, r, u, n)| {
            let k = if typed {
                i64::from(types[k as usize])
            } else {
                k
            };
            (k, remap_raw(&raw, r), users[u as usize], n)
        }));
    }
}

/// The groups a breakdown answers with: the `limit` values of the largest
/// totals (ties: by value, the missing group last), and the rest as one.
pub(crate) struct Ranking {
    pub(crate) shown: Vec<u32>,
    pub(crate) other: Vec<u32>,
}

impl Ranking {
    pub(crate) fn new(values: &Values, totals: &[u64], limit: u32) -> Self {
        // A value no counted row has (the missing group when every event
        // has the property) is no group.
        let mut ids: Vec<u32> = (0..values.list.len() as u32)
            .filter(|&g| totals[g as usize] > 0)
            .collect();
        ids.sort_by(|&a, &b| {
            let (va, vb) = (&values.list[a as usize], &values.list[b as usize]);
            totals[b as usize]
                .cmp(&totals[a as usize])
                .then_with(|| va.is_none().cmp(&vb.is_none()))
                .then_with(|| va.cmp(vb))
        });
        let other = ids.split_off(ids.len().min(limit as usize));
        Self { shown: ids, other }
    }

    /// The key of each shown group, then of the other group (when any
    /// value is left for it).
    pub(crate) fn keys(&self, values: &Values) -> Vec<GroupKey> {
        let mut keys: Vec<GroupKey> = self
            .shown
            .iter()
            .map(|&g| GroupKey::value(values.list[g as usize].clone()))
            .collect();
        if !self.other.is_empty() {
            keys.push(GroupKey::other(self.other.len() as u64));
        }
        keys
    }
}

/// `json_extract`'s path for a top-level `key`: a JSON pointer.
pub(crate) fn json_pointer(key: &str) -> String {
    sql_text(&format!("/{}", key.replace('~', "~0").replace('/', "~1")))
}

/// DuckDB's text of `key`'s value in `properties` (NULL: missing).
pub(crate) fn property_sql(key: &str) -> String {
    format!(
        "CAST(json_extract(properties, {}) AS VARCHAR)",
        json_pointer(key)
    )
}

/// Strings of a DuckDB result column, whichever string type it came as.
pub(crate) fn strings<'a>(col: &'a dyn Array) -> Box<dyn Fn(usize) -> Option<&'a str> + 'a> {
    match col.data_type() {
        DataType::Null => Box::new(|_| None),
        DataType::Utf8View => {
            let a = col.as_string_view();
            Box::new(move |i| (!a.is_null(i)).then(|| a.value(i)))
        }
        _ => {
            let a = col.as_string::<i32>();
            Box::new(move |i| (!a.is_null(i)).then(|| a.value(i)))
        }
    }
}

/// Runs `sql` and hands every Arrow batch to `each`.
pub(crate) fn batches(
    conn: &Connection,
    sql: &str,
    mut each: impl FnMut(&RecordBatch),
) -> Result<(), QueryError> {
    let mut stmt = conn.prepare(sql)?;
    for batch in stmt.query_arrow([])? {
        each(&batch);
    }
    Ok(())
}

impl Planner {
    /// DAU per value of `group_by` (see the module docs), with the plain
    /// DAU beside.
    pub async fn dau_by(
        &self,
        project: ProjectId,
        range: DayRange,
        event_type: Option<&EventType>,
        (group_by, limit): (&GroupBy, u32),
    ) -> Result<DauResponse, QueryError> {
        let (from, to) = (range.from(), range.to());
        let (mut snap, plan) = self.plan(project, from, to, None).await?;
        let only = event_type.map(|t| t.as_str().to_owned());
        let key = group_by.key().to_owned();
        let (hot_only, hot_key) = (only.clone(), key.clone());
        let hot_days = plan.hot_days.clone();
        let hot = async move {
            let started = Instant::now();
            let mut rows = Rows::default();
            let n = snap
                .day_property_users(
                    project,
                    &hot_days,
                    (&hot_key, hot_only.as_deref()),
                    |d, raw, user| rows.push(i64::from(d), raw, user, 1),
                )
                .await?;
            snap.finish().await?;
            Ok::<_, QueryError>((rows, n, ms(started)))
        }
        .instrument(tracing::info_span!("hot_tier", stat = "dau", group_by = %key));
        let cold = self.cold(&plan.files, move |conn, files| {
            let paths: Vec<PathBuf> = files.into_iter().map(|(_, p)| p).collect();
            let filter = only.as_deref().map_or_else(String::new, |t| {
                format!("WHERE event_type = {}", sql_text(t))
            });
            let sql = format!(
                "SELECT day_n, {} AS v, user_id FROM {} {filter} GROUP BY ALL",
                property_sql(&key),
                source(&paths)
            );
            let mut rows = Rows::default();
            batches(conn, &sql, |b| {
                let days = b.column(0).as_primitive::<Int32Type>();
                let (values, users) = (strings(b.column(1)), strings(b.column(2)));
                for i in 0..b.num_rows() {
                    let user = users(i).unwrap_or_default();
                    rows.push(i64::from(days.value(i)), values(i), user, 1);
                }
            })?;
            Ok(rows)
        });
        let ((hot_rows, hot_n, hot_ms), cold) = tokio::try_join!(hot, cold)?;
        let (rows, cold_meta) = with_hot(cold, hot_rows, Rows::absorb);
        let (days, groups) = tokio::task::spawn_blocking(move || dau_groups(rows, range, limit))
            .await
            .map_err(QueryError::Task)?;
        let meta = self.meta(&plan, hot_n, hot_ms, cold_meta);
        Ok(DauResponse {
            from,
            to,
            days,
            group_by: Some(group_by.as_param()),
            groups: Some(groups),
            meta,
        })
    }

    /// Top events per value of `group_by` (see the module docs), with the
    /// plain top events beside.
    pub async fn top_events_by(
        &self,
        project: ProjectId,
        range: DayRange,
        limit: u32,
        (group_by, limit_groups): (&GroupBy, u32),
    ) -> Result<TopEventsResponse, QueryError> {
        let (from, to) = (range.from(), range.to());
        let (mut snap, plan) = self.plan(project, from, to, None).await?;
        let key = group_by.key().to_owned();
        let hot_key = key.clone();
        let days = (plan.from, to);
        let read_hot = !plan.hot_days.is_empty();
        let hot = async move {
            let started = Instant::now();
            let mut rows = Rows::default();
            let n = if read_hot {
                snap.type_property_users(project, days, &hot_key, |t, raw, user, n| {
                    rows.push_typed(t, raw, user, n)
                })
                .await?
            } else {
                0
            };
            snap.finish().await?;
            Ok::<_, QueryError>((rows, n, ms(started)))
        }
        .instrument(tracing::info_span!("hot_tier", stat = "top_events", group_by = %key));
        let cold = self.cold(&plan.files, move |conn, files| {
            let paths: Vec<PathBuf> = files.into_iter().map(|(_, p)| p).collect();
            let sql = format!(
                "SELECT event_type, {} AS v, user_id, count(*) FROM {} GROUP BY ALL",
                property_sql(&key),
                source(&paths)
            );
            let mut rows = Rows::default();
            batches(conn, &sql, |b| {
                let (types, values, users) = (
                    strings(b.column(0)),
                    strings(b.column(1)),
                    strings(b.column(2)),
                );
                let counts = b.column(3).as_primitive::<Int64Type>();
                for i in 0..b.num_rows() {
                    let (t, user) = (types(i).unwrap_or_default(), users(i).unwrap_or_default());
                    rows.push_typed(t, values(i), user, counts.value(i));
                }
            })?;
            Ok(rows)
        });
        let ((hot_rows, hot_n, hot_ms), cold) = tokio::try_join!(hot, cold)?;
        let (rows, cold_meta) = with_hot(cold, hot_rows, Rows::absorb);
        let (events, groups) =
            tokio::task::spawn_blocking(move || top_groups(rows, limit, limit_groups))
                .await
                .map_err(QueryError::Task)?;
        let meta = self.meta(&plan, hot_n, hot_ms, cold_meta);
        Ok(TopEventsResponse {
            from,
            to,
            events,
            group_by: Some(group_by.as_param()),
            groups: Some(groups),
            meta,
        })
    }
}

/// The plain DAU and the groups' (see [`Planner::dau_by`]).
fn dau_groups(rows: Rows, range: DayRange, limit: u32) -> (Vec<DauPoint>, Vec<DauGroup>) {
    let mut values = Values::default();
    let group_of = rows.raw.groups(&mut values);
    let mut sets: HashMap<(u32, i64), RoaringBitmap> = HashMap::new();
    let mut all: BTreeMap<i64, RoaringBitmap> = BTreeMap::new();
    for &(d, r, user, _) in &rows.rows {
        sets.entry((group_of.of(r), d)).or_default().insert(user);
        all.entry(d).or_default().insert(user);
    }
    let mut totals = vec![0u64; values.list.len()];
    for ((g, _), s) in &sets {
        totals[*g as usize] += s.len();
    }
    let ranking = Ranking::new(&values, &totals, limit);
    let series = |count: &dyn Fn(i64) -> u64| -> Vec<DauPoint> {
        range
            .days()
            .map(|date| DauPoint {
                date,
                users: count(i64::from(strata_model::day_number(date))),
            })
            .collect()
    };
    let days = series(&|d| all.get(&d).map_or(0, RoaringBitmap::len));
    let mut groups: Vec<DauGroup> = Vec::new();
    let keys = ranking.keys(&values);
    for (i, key) in keys.into_iter().enumerate() {
        let members: &[u32] = match ranking.shown.get(i) {
            Some(g) => std::slice::from_ref(g),
            None => &ranking.other,
        };
        let count = |d: i64| -> u64 {
            let mut set = RoaringBitmap::new();
            for g in members {
                if let Some(s) = sets.get(&(*g, d)) {
                    set |= s;
                }
            }
            set.len()
        };
        let days = series(&count);
        let total = days.iter().map(|p| p.users).sum();
        groups.push(DauGroup {
            group: key,
            total,
            days,
        });
    }
    (days, groups)
}

/// Per event type: (events, users).
type TypeTotals = BTreeMap<u32, (i64, RoaringBitmap)>;

fn top_list(types: &TypeTotals, names: &[String], limit: u32) -> Vec<TopEvent> {
    let mut out: Vec<TopEvent> = types
        .iter()
        .map(|(t, (n, users))| TopEvent {
            event_type: names[*t as usize].clone(),
            count: u(*n),
            users: users.len(),
        })
        .collect();
    out.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.event_type.cmp(&b.event_type))
    });
    out.truncate(limit as usize);
    out
}

/// The plain top events and the groups' (see [`Planner::top_events_by`]).
fn top_groups(rows: Rows, limit: u32, limit_groups: u32) -> (Vec<TopEvent>, Vec<TopEventsGroup>) {
    let mut values = Values::default();
    let group_of = rows.raw.groups(&mut values);
    let mut names = vec![String::new(); rows.types.len()];
    for (t, id) in &rows.types.ids {
        names[*id as usize] = t.to_string();
    }
    let mut per_group: Vec<TypeTotals> = (0..values.list.len()).map(|_| BTreeMap::new()).collect();
    let mut all = TypeTotals::new();
    for &(t, r, user, n) in &rows.rows {
        let t = t as u32;
        let e = per_group[group_of.of(r) as usize].entry(t).or_default();
        e.0 += n;
        e.1.insert(user);
        let e = all.entry(t).or_default();
        e.0 += n;
        e.1.insert(user);
    }
    let totals: Vec<u64> = per_group
        .iter()
        .map(|g| g.values().map(|(n, _)| u(*n)).sum())
        .collect();
    let ranking = Ranking::new(&values, &totals, limit_groups);
    let mut other = TypeTotals::new();
    for g in &ranking.other {
        for (t, (n, users)) in &per_group[*g as usize] {
            let e = other.entry(*t).or_default();
            e.0 += n;
            e.1 |= users;
        }
    }
    let groups = ranking
        .keys(&values)
        .into_iter()
        .enumerate()
        .map(|(i, key)| {
            let (types, total) = match ranking.shown.get(i) {
                Some(g) => (&per_group[*g as usize], totals[*g as usize]),
                None => (&other, other.values().map(|(n, _)| u(*n)).sum()),
            };
            TopEventsGroup {
                group: key,
                total,
                events: top_list(types, &names, limit),
            }
        })
        .collect();
    (top_list(&all, &names, limit), groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_pointers_escape_the_key() {
        assert_eq!(json_pointer("plan"), "'/plan'");
        assert_eq!(json_pointer("a/b~c'd"), "'/a~1b~0c''d'");
    }

    #[test]
    fn the_largest_groups_are_shown_and_the_rest_is_other() {
        let mut values = Values::default();
        for v in [Some("b"), None, Some("a"), Some("c")] {
            values.id(v.map(str::to_owned));
        }
        // b=5, missing=5, a=5, c=1: ties by value, the missing group last.
        let r = Ranking::new(&values, &[5, 5, 5, 1], 2);
        assert_eq!(
            Ranking::new(&values, &[5, 0, 5, 1], 10).shown,
            vec![2, 0, 3]
        );
        assert_eq!(
            (r.shown.as_slice(), r.other.as_slice()),
            (&[2, 0][..], &[1, 3][..])
        );
        let keys = r.keys(&values);
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[2], GroupKey::other(2));
        let r = Ranking::new(&values, &[5, 5, 5, 1], 10);
        assert!(r.other.is_empty());
        assert_eq!(r.keys(&values).len(), 4);
    }

    #[test]
    fn tiers_are_merged_by_user_value_and_type() {
        let mut cold = Rows::default();
        cold.push_typed("view", Some("\"pro\""), "u1", 2);
        let mut hot = Rows::default();
        hot.push_typed("buy", Some("\"pro\""), "u2", 1);
        hot.push_typed("view", Some("\"pro\""), "u1", 1);
        hot.push_typed("view", None, "u3", 1);
        cold.absorb(hot);
        let (all, groups) = top_groups(cold, 10, 10);
        assert_eq!(
            all,
            vec![
                TopEvent {
                    event_type: "view".into(),
                    count: 4,
                    users: 2
                },
                TopEvent {
                    event_type: "buy".into(),
                    count: 1,
                    users: 1
                },
            ]
        );
        assert_eq!(groups[0].group, GroupKey::value(Some("pro".into())));
        assert_eq!(groups[0].total, 4);
        assert_eq!(groups[0].events[0].users, 1);
        assert_eq!(groups[1].group, GroupKey::value(None));
    }
}
