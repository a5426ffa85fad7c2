//! Breakdowns by a property (`group_by=property:<key>`): DAU and top events
//! split by the value of one top-level property of the events (funnels by
//! that of their first step's event, in `funnel.rs`).
//!
//! A day whose rollups hold the property's values (a declared property,
//! ADR-043) is answered from them: per value, the sets of user ordinals.
//! Every other day is read from its rows:
//!
//! Both tiers give their rows with the property's JSON text as each
//! engine prints it: the hot rows from PostgreSQL, the cold files through
//! DuckDB, concurrently. Each text is turned into the value the groups use
//! once per distinct text ([`strata_model::property_text`]), so a value
//! reads the same from either tier. Users are interned per tier and mapped
//! once per distinct user; each group's users are sets, so a user is
//! counted once per group and the "other" group is the union of the sets
//! of the values it holds, never a sum.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use chrono::NaiveDate;

use duckdb::Connection;
use duckdb::arrow::array::{Array, AsArray, RecordBatch};
use duckdb::arrow::datatypes::{DataType, Int32Type, Int64Type};
use roaring::RoaringBitmap;
use strata_model::{DayRange, EventType, GroupBy, ProjectId, property_text};
use strata_store::{ALL_TYPES, DayRollup, ReadSnapshot, RollupRead, RollupRows, TypeRollup};
use tracing::Instrument;

use crate::duck::{source, sql_text};
use crate::plan::{Plan, ms, u, with_hot};
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

/// DuckDB's text of `key`'s value in `properties` (NULL: missing or
/// `null`, one group, so that DuckDB groups them as one).
pub(crate) fn property_sql(key: &str) -> String {
    format!(
        "NULLIF(CAST(json_extract(properties, {}) AS VARCHAR), 'null')",
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

/// The days of a breakdown by `key` answered from rollups (ADR-043): each
/// tier's part of the day has a current rollup holding the property's
/// values, and a sealed hot day has no late events (they carry no
/// properties). The plan is left with only those days' rollups, and the
/// files of the other days to read.
async fn rolled_days(
    snap: &mut ReadSnapshot,
    plan: &mut Plan,
    project: ProjectId,
    key: &str,
) -> Result<BTreeSet<NaiveDate>, QueryError> {
    let holds = |r: &RollupRead, d: &NaiveDate| {
        r.days
            .get(d)
            .is_some_and(|r| r.properties.contains_key(key))
    };
    let sealed: BTreeSet<NaiveDate> = plan
        .hot_days
        .iter()
        .filter(|d| holds(&plan.sealed, d))
        .copied()
        .collect();
    let late = if sealed.is_empty() {
        BTreeSet::new()
    } else {
        snap.late_days(project, &sealed).await?
    };
    let rolled: BTreeSet<NaiveDate> = plan
        .cold_days
        .union(&plan.hot_days)
        .filter(|d| {
            (!plan.cold_days.contains(d) || holds(&plan.rollups, d))
                && (!plan.hot_days.contains(d) || (sealed.contains(d) && !late.contains(d)))
        })
        .copied()
        .collect();
    for read in [&mut plan.rollups, &mut plan.sealed] {
        read.days.retain(|d, _| rolled.contains(d));
        read.sources.retain(|d, _| rolled.contains(d));
        read.bytes = read
            .days
            .values()
            .filter_map(|r| r.properties.get(key))
            .flat_map(|v| v.values())
            .map(|r| r.users.serialized_size() as u64)
            .sum();
    }
    plan.parquet = plan
        .files
        .iter()
        .filter(|f| !rolled.contains(&f.day))
        .cloned()
        .collect();
    Ok(rolled)
}

/// The rollup parts of a rolled day: the cold one and the sealed hot one
/// (either may be absent).
fn day_parts<'a>(plan: &'a Plan, day: &NaiveDate) -> impl Iterator<Item = &'a DayRollup> {
    [&plan.rollups, &plan.sealed]
        .into_iter()
        .filter_map(move |r| r.days.get(day).map(|r| &**r))
}

/// The rolled days' part of a breakdown by `key`: per (value, event type)
/// of the rows `keep` names, the union over the days' parts, per day
/// (`per_day`) or over every day (day number 0).
fn rolled_values(
    plan: &Plan,
    rolled: &BTreeSet<NaiveDate>,
    key: &str,
    keep: &dyn Fn(&str) -> bool,
    per_day: bool,
) -> BTreeMap<(i64, Option<String>, String), TypeRollup> {
    let mut out: BTreeMap<(i64, Option<String>, String), TypeRollup> = BTreeMap::new();
    for day in rolled {
        let d = if per_day {
            i64::from(strata_model::day_number(*day))
        } else {
            0
        };
        for part in day_parts(plan, day) {
            let Some(values) = part.properties.get(key) else {
                continue;
            };
            for ((v, t), r) in values.iter().filter(|((_, t), _)| keep(t)) {
                out.entry((d, v.clone(), t.clone())).or_default().add(r);
            }
        }
    }
    out
}

/// Whether a breakdown by `key` can use rollups: the project declares it.
async fn rollup_rows<'a>(
    planner: &Planner,
    project: ProjectId,
    key: &'a str,
) -> Result<Option<RollupRows<'a>>, QueryError> {
    let declared = planner.hot.declared_properties(project).await?;
    Ok(declared
        .iter()
        .any(|p| p == key)
        .then_some(RollupRows::Values(key)))
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
        let key = group_by.key().to_owned();
        let which = rollup_rows(self, project, &key).await?;
        let (mut snap, mut plan) = self.plan(project, from, to, which).await?;
        let rolled = rolled_days(&mut snap, &mut plan, project, &key).await?;
        let only = event_type.map(|t| t.as_str().to_owned());
        let wanted = only.clone().unwrap_or_else(|| ALL_TYPES.to_owned());
        let sets = rolled_values(&plan, &rolled, &key, &|t| t == wanted, true);
        let all: Vec<(i64, RoaringBitmap)> = rolled
            .iter()
            .map(|day| {
                let mut set = RoaringBitmap::new();
                for part in day_parts(&plan, day) {
                    if let Some(r) = part.types.get(&wanted) {
                        set |= &r.users;
                    }
                }
                (i64::from(strata_model::day_number(*day)), set)
            })
            .collect();
        let rolled_dau = RolledDau {
            values: sets
                .into_iter()
                .map(|((d, v, _), r)| (d, v, r.users))
                .collect(),
            all,
        };
        let (hot_only, hot_key) = (only.clone(), key.clone());
        let hot_days: BTreeSet<NaiveDate> = plan.hot_days.difference(&rolled).copied().collect();
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
        let shared = plan.both.clone();
        let filter = only
            .as_deref()
            .map_or_else(String::new, |t| format!("event_type = {}", sql_text(t)));
        let (cold_key, cold_filter) = (key.clone(), filter.clone());
        let cold = self.cold(&plan.parquet, move |conn, files| {
            cold_dau(conn, files, &shared, (&cold_key, &cold_filter))
        });
        let ((hot_rows, hot_n, hot_ms), cold) = tokio::try_join!(hot, cold)?;
        let (mut rows, counted, mut cold_meta) = match cold {
            Some(part) => (part.value.rows, part.value.counted, Some(part.meta)),
            None => (Rows::default(), Counted::default(), None),
        };
        rows.absorb(hot_rows);
        let prep =
            tokio::task::spawn_blocking(move || DauPrep::new(rows, rolled_dau, counted, limit))
                .await
                .map_err(QueryError::Task)?;
        // The "other" group on the counted days: one more count over their
        // files, of the users with any of its values.
        let other = match prep.other_texts() {
            Some(texts) => {
                let files: Vec<_> = plan
                    .parquet
                    .iter()
                    .filter(|f| prep.counted_days.contains(&f.day))
                    .cloned()
                    .collect();
                let sql_key = key.clone();
                let part = self
                    .cold(&files, move |conn, files| {
                        other_counts(conn, files, (&sql_key, &filter), &texts)
                    })
                    .await?;
                part.map(|p| {
                    if let Some(m) = cold_meta.as_mut() {
                        m.ms += p.meta.ms;
                    }
                    p.value
                })
                .unwrap_or_default()
            }
            None => BTreeMap::new(),
        };
        let (days, groups) = tokio::task::spawn_blocking(move || prep.finish(&other, range))
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
        let key = group_by.key().to_owned();
        let which = rollup_rows(self, project, &key).await?;
        let (mut snap, mut plan) = self.plan(project, from, to, which).await?;
        let rolled = rolled_days(&mut snap, &mut plan, project, &key).await?;
        let per_type = |t: &str| t != ALL_TYPES;
        let by_value = rolled_values(&plan, &rolled, &key, &per_type, false);
        let mut all: BTreeMap<String, TypeRollup> = BTreeMap::new();
        for day in &rolled {
            for part in day_parts(&plan, day) {
                for (t, r) in part.types.iter().filter(|(t, _)| per_type(t)) {
                    all.entry(t.clone()).or_default().add(r);
                }
            }
        }
        let rolled_top = RolledTop {
            by_value: by_value
                .into_iter()
                .map(|((_, v, t), r)| (v, t, r))
                .collect(),
            all,
        };
        let hot_key = key.clone();
        let hot_days: BTreeSet<NaiveDate> = plan.hot_days.difference(&rolled).copied().collect();
        // With rolled days, the snapshot stays open for the users'
        // ordinals (below); otherwise it ends as soon as the hot half is
        // read, as for the other stats.
        let keep_open = !rolled.is_empty();
        let hot = async move {
            let started = Instant::now();
            let mut rows = Rows::default();
            let n = snap
                .type_property_users(project, &hot_days, &hot_key, |t, raw, user, n| {
                    rows.push_typed(t, raw, user, n)
                })
                .await?;
            let snap = if keep_open {
                Some(snap)
            } else {
                snap.finish().await?;
                None
            };
            Ok::<_, QueryError>((rows, n, ms(started), snap))
        }
        .instrument(tracing::info_span!("hot_tier", stat = "top_events", group_by = %key));
        let cold = self.cold(&plan.parquet, move |conn, files| {
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
        let ((hot_rows, hot_n, hot_ms, snap), cold) = tokio::try_join!(hot, cold)?;
        let (rows, cold_meta) = with_hot(cold, hot_rows, Rows::absorb);
        // Rolled days count users as ordinals: the rows' users become
        // ordinals too, as the snapshot sees them.
        let users = match snap {
            Some(mut snap) => {
                let users = if rows.rows.is_empty() {
                    None
                } else {
                    Some(ordinals_of(&mut snap, project, &rows.users).await?)
                };
                snap.finish().await?;
                users
            }
            None => None,
        };
        let (events, groups) = tokio::task::spawn_blocking(move || {
            top_groups(rows, (rolled_top, users), limit, limit_groups)
        })
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

/// The rolled days' part of a DAU breakdown (their users as ordinals; no
/// day is in both it and the rows read).
struct RolledDau {
    /// (day number, value, users).
    values: Vec<(i64, Option<String>, RoaringBitmap)>,
    /// (day number, users): the plain DAU's.
    all: Vec<(i64, RoaringBitmap)>,
}

/// The rolled days' part of a top-events breakdown, over all of them.
struct RolledTop {
    /// (value, event type, events and users).
    by_value: Vec<(Option<String>, String, TypeRollup)>,
    /// Per event type: the plain top events'.
    all: BTreeMap<String, TypeRollup>,
}

/// The ordinal of each user of `users` (by id) in `snap`; one without a
/// first-seen record, whom no rollup can hold, gets an id of its own
/// counting down from `u32::MAX`.
async fn ordinals_of(
    snap: &mut ReadSnapshot,
    project: ProjectId,
    users: &Interner<Box<str>>,
) -> Result<Vec<u32>, QueryError> {
    let mut names: Vec<&str> = vec![""; users.len()];
    for (u, id) in &users.ids {
        names[*id as usize] = u;
    }
    let found = snap.user_ordinals(project, &names).await?;
    let mut fresh = u32::MAX;
    Ok(names
        .iter()
        .map(|u| {
            found.get(u).copied().unwrap_or_else(|| {
                fresh -= 1;
                fresh + 1
            })
        })
        .collect())
}

/// The cold days of a DAU breakdown that only the cold tier holds,
/// counted inside DuckDB per (day, property text) and per day: no user id
/// leaves it.
#[derive(Debug, Default)]
struct Counted {
    /// (day number, property text, users).
    per_value: Vec<(i64, Option<String>, u64)>,
    /// (day number, users): the plain DAU's.
    all: Vec<(i64, u64)>,
    days: BTreeSet<NaiveDate>,
}

/// The cold part of a DAU breakdown: the days both tiers hold as
/// (day, text, user) rows, to union with the hot rows; the others counted.
struct ColdDau {
    rows: Rows,
    counted: Counted,
}

/// `(day_n, v, user_id)` of `paths` with `filter` (SQL, or empty), `v` the
/// text of property `key`.
fn property_rows_sql(paths: &[PathBuf], key: &str, filter: &str) -> String {
    let filter = if filter.is_empty() {
        String::new()
    } else {
        format!("WHERE {filter}")
    };
    format!(
        "SELECT day_n, {} AS v, user_id FROM {} {filter}",
        property_sql(key),
        source(paths)
    )
}

/// See [`ColdDau`]. Days on which two texts are one group value (`1.50` and
/// `1.5`) cannot add their counts: then every day only the cold tier holds
/// is read as rows too.
fn cold_dau(
    conn: &Connection,
    files: Vec<(NaiveDate, PathBuf)>,
    shared: &BTreeSet<NaiveDate>,
    (key, filter): (&str, &str),
) -> Result<ColdDau, QueryError> {
    let (both, alone): (Vec<_>, Vec<_>) = files.into_iter().partition(|(d, _)| shared.contains(d));
    let paths =
        |v: &[(NaiveDate, PathBuf)]| -> Vec<PathBuf> { v.iter().map(|(_, p)| p.clone()).collect() };
    let triples = |paths: &[PathBuf], rows: &mut Rows| {
        let sql = format!("{} GROUP BY ALL", property_rows_sql(paths, key, filter));
        batches(conn, &sql, |b| {
            let days = b.column(0).as_primitive::<Int32Type>();
            let (values, users) = (strings(b.column(1)), strings(b.column(2)));
            for i in 0..b.num_rows() {
                let user = users(i).unwrap_or_default();
                rows.push(i64::from(days.value(i)), values(i), user, 1);
            }
        })
    };
    let mut out = ColdDau {
        rows: Rows::default(),
        counted: Counted::default(),
    };
    if !alone.is_empty() {
        let sql = format!(
            "SELECT day_n, v, count(DISTINCT user_id), CAST(grouping(v) AS INTEGER) FROM ({})
              GROUP BY GROUPING SETS ((day_n, v), (day_n))",
            property_rows_sql(&paths(&alone), key, filter)
        );
        let mut counted = Counted::default();
        batches(conn, &sql, |b| {
            let days = b.column(0).as_primitive::<Int32Type>();
            let values = strings(b.column(1));
            let (n, all) = (
                b.column(2).as_primitive::<Int64Type>(),
                b.column(3).as_primitive::<Int32Type>(),
            );
            for i in 0..b.num_rows() {
                let (d, n) = (i64::from(days.value(i)), u(n.value(i)));
                if all.value(i) == 1 {
                    counted.all.push((d, n));
                } else {
                    counted.per_value.push((d, values(i).map(str::to_owned), n));
                }
            }
        })?;
        let mut seen: HashMap<(i64, Option<String>), &Option<String>> = HashMap::new();
        let one_text_each = counted.per_value.iter().all(|(d, raw, _)| {
            let group = property_text(raw.as_deref());
            *seen.entry((*d, group)).or_insert(raw) == raw
        });
        if one_text_each {
            counted.days = alone.iter().map(|(d, _)| *d).collect();
            out.counted = counted;
        } else {
            triples(&paths(&alone), &mut out.rows)?;
        }
    }
    if !both.is_empty() {
        triples(&paths(&both), &mut out.rows)?;
    }
    Ok(out)
}

/// Per day of `files`: the users with any of `texts` (property texts;
/// `None`: missing).
fn other_counts(
    conn: &Connection,
    files: Vec<(NaiveDate, PathBuf)>,
    (key, filter): (&str, &str),
    texts: &[Option<String>],
) -> Result<BTreeMap<i64, u64>, QueryError> {
    let paths: Vec<PathBuf> = files.into_iter().map(|(_, p)| p).collect();
    let listed: Vec<String> = texts.iter().flatten().map(|t| sql_text(t)).collect();
    let mut any = Vec::new();
    if !listed.is_empty() {
        any.push(format!("v IN ({})", listed.join(", ")));
    }
    if texts.iter().any(Option::is_none) {
        any.push("v IS NULL".to_owned());
    }
    let sql = format!(
        "SELECT day_n, count(DISTINCT user_id) FROM ({}) WHERE {} GROUP BY day_n",
        property_rows_sql(&paths, key, filter),
        any.join(" OR ")
    );
    let mut out = BTreeMap::new();
    batches(conn, &sql, |b| {
        let days = b.column(0).as_primitive::<Int32Type>();
        let n = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.insert(i64::from(days.value(i)), u(n.value(i)));
        }
    })?;
    Ok(out)
}

/// A DAU breakdown once every part is in (see [`Planner::dau_by`]): the
/// groups ranked; what is left is the "other" group on the counted days.
/// Days come from one source each (rows or rollups as user sets, or
/// counts), so per day a group's users are one set's size or one count.
struct DauPrep {
    values: Values,
    ranking: Ranking,
    sets: HashMap<(u32, i64), RoaringBitmap>,
    counts: HashMap<(u32, i64), u64>,
    /// The plain DAU.
    all: BTreeMap<i64, u64>,
    counted_days: BTreeSet<NaiveDate>,
    /// The counted days' property texts and their groups.
    texts: Vec<(Option<String>, u32)>,
}

impl DauPrep {
    fn new(rows: Rows, rolled: RolledDau, counted: Counted, limit: u32) -> Self {
        let mut values = Values::default();
        let group_of = rows.raw.groups(&mut values);
        let mut sets: HashMap<(u32, i64), RoaringBitmap> = HashMap::new();
        let mut all_sets: BTreeMap<i64, RoaringBitmap> = BTreeMap::new();
        for &(d, r, user, _) in &rows.rows {
            sets.entry((group_of.of(r), d)).or_default().insert(user);
            all_sets.entry(d).or_default().insert(user);
        }
        for (d, v, users) in rolled.values {
            *sets.entry((values.id(v), d)).or_default() |= users;
        }
        for (d, users) in rolled.all {
            *all_sets.entry(d).or_default() |= users;
        }
        let mut all: BTreeMap<i64, u64> = all_sets.into_iter().map(|(d, s)| (d, s.len())).collect();
        all.extend(counted.all);
        let mut counts: HashMap<(u32, i64), u64> = HashMap::new();
        let mut texts: HashMap<Option<String>, u32> = HashMap::new();
        for (d, raw, n) in counted.per_value {
            let g = match texts.get(&raw) {
                Some(g) => *g,
                None => {
                    let g = values.id(property_text(raw.as_deref()));
                    texts.insert(raw, g);
                    g
                }
            };
            *counts.entry((g, d)).or_default() += n;
        }
        let mut totals = vec![0u64; values.list.len()];
        for ((g, _), s) in &sets {
            totals[*g as usize] += s.len();
        }
        for ((g, _), n) in &counts {
            totals[*g as usize] += n;
        }
        let ranking = Ranking::new(&values, &totals, limit);
        Self {
            values,
            ranking,
            sets,
            counts,
            all,
            counted_days: counted.days,
            texts: texts.into_iter().collect(),
        }
    }

    /// The counted days' texts of the values in the "other" group, when
    /// there are any.
    fn other_texts(&self) -> Option<Vec<Option<String>>> {
        let texts: Vec<Option<String>> = self
            .texts
            .iter()
            .filter(|(_, g)| self.ranking.other.contains(g))
            .map(|(t, _)| t.clone())
            .collect();
        (!texts.is_empty()).then_some(texts)
    }

    /// The plain DAU and the groups', `other` the "other" group's users
    /// per counted day.
    fn finish(self, other: &BTreeMap<i64, u64>, range: DayRange) -> (Vec<DauPoint>, Vec<DauGroup>) {
        let series = |count: &dyn Fn(i64) -> u64| -> Vec<DauPoint> {
            range
                .days()
                .map(|date| DauPoint {
                    date,
                    users: count(i64::from(strata_model::day_number(date))),
                })
                .collect()
        };
        let days = series(&|d| self.all.get(&d).copied().unwrap_or(0));
        let mut groups: Vec<DauGroup> = Vec::new();
        for (i, key) in self.ranking.keys(&self.values).into_iter().enumerate() {
            let count = |d: i64| -> u64 {
                match self.ranking.shown.get(i) {
                    Some(g) => {
                        self.sets.get(&(*g, d)).map_or(0, RoaringBitmap::len)
                            + self.counts.get(&(*g, d)).copied().unwrap_or(0)
                    }
                    None => {
                        let mut set = RoaringBitmap::new();
                        for g in &self.ranking.other {
                            if let Some(s) = self.sets.get(&(*g, d)) {
                                set |= s;
                            }
                        }
                        set.len() + other.get(&d).copied().unwrap_or(0)
                    }
                }
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

/// The plain top events and the groups' (see [`Planner::top_events_by`]);
/// `users`: the rows' users as ordinals, when rolled days count theirs so.
fn top_groups(
    mut rows: Rows,
    (rolled, users): (RolledTop, Option<Vec<u32>>),
    limit: u32,
    limit_groups: u32,
) -> (Vec<TopEvent>, Vec<TopEventsGroup>) {
    let mut values = Values::default();
    let group_of = rows.raw.groups(&mut values);
    let rolled_values: Vec<(u32, u32, TypeRollup)> = rolled
        .by_value
        .into_iter()
        .map(|(v, t, r)| (values.id(v), rows.types.id(&t), r))
        .collect();
    let rolled_all: Vec<(u32, TypeRollup)> = rolled
        .all
        .into_iter()
        .map(|(t, r)| (rows.types.id(&t), r))
        .collect();
    let mut names = vec![String::new(); rows.types.len()];
    for (t, id) in &rows.types.ids {
        names[*id as usize] = t.to_string();
    }
    let user_of = |u: u32| users.as_ref().map_or(u, |m| m[u as usize]);
    let mut per_group: Vec<TypeTotals> = (0..values.list.len()).map(|_| BTreeMap::new()).collect();
    let mut all = TypeTotals::new();
    for &(t, r, user, n) in &rows.rows {
        let (t, user) = (t as u32, user_of(user));
        let e = per_group[group_of.of(r) as usize].entry(t).or_default();
        e.0 += n;
        e.1.insert(user);
        let e = all.entry(t).or_default();
        e.0 += n;
        e.1.insert(user);
    }
    for (g, t, r) in &rolled_values {
        let e = per_group[*g as usize].entry(*t).or_default();
        e.0 += r.events;
        e.1 |= &r.users;
    }
    for (t, r) in &rolled_all {
        let e = all.entry(*t).or_default();
        e.0 += r.events;
        e.1 |= &r.users;
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

    /// A Parquet file of one day holding `(user_id, properties)` rows, laid
    /// out as the cold tier's.
    fn day_file(conn: &Connection, dir: &std::path::Path, rows: &[(&str, &str)]) -> PathBuf {
        let day = dir.join("project_id=1/date=2026-01-05");
        std::fs::create_dir_all(&day).unwrap();
        let path = day.join("f.parquet");
        let values: Vec<String> = rows
            .iter()
            .map(|(u, p)| format!("({}, {})", sql_text(u), sql_text(p)))
            .collect();
        conn.execute_batch(&format!(
            "COPY (SELECT * FROM (VALUES {}) v(user_id, properties)) TO {} (FORMAT parquet)",
            values.join(", "),
            sql_text(&path.to_string_lossy())
        ))
        .unwrap();
        path
    }

    #[test]
    fn a_cold_only_day_is_counted_in_duckdb_unless_two_texts_are_one_value() {
        let conn = Connection::open_in_memory().unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let range = DayRange::new(date, date, 10).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let counted = day_file(
            &conn,
            &dir.path().join("a"),
            &[
                ("ann", r#"{"p": "x"}"#),
                ("bob", r#"{"p": "x"}"#),
                ("ann", r#"{"p": null}"#),
                ("cat", "{}"),
            ],
        );
        let cold = cold_dau(&conn, vec![(date, counted)], &BTreeSet::new(), ("p", "")).unwrap();
        assert!(cold.rows.rows.is_empty(), "no user id left DuckDB");
        assert_eq!(cold.counted.days, BTreeSet::from([date]));
        let empty = || RolledDau {
            values: Vec::new(),
            all: Vec::new(),
        };
        let prep = DauPrep::new(cold.rows, empty(), cold.counted, 10);
        let (days, groups) = prep.finish(&BTreeMap::new(), range);
        assert_eq!(days[0].users, 3);
        let users: Vec<u64> = groups.iter().map(|g| g.days[0].users).collect();
        assert_eq!(
            users,
            [2, 2],
            "x: ann and bob; missing or null: ann and cat"
        );

        // DuckDB keeps an object's key order: two texts, one value. A
        // user with both is one user of it, so the day is read as rows.
        let split = day_file(
            &conn,
            &dir.path().join("b"),
            &[
                ("ann", r#"{"p": {"b": 1, "a": 2}}"#),
                ("ann", r#"{"p": {"a": 2, "b": 1}}"#),
                ("bob", r#"{"p": {"a": 2, "b": 1}}"#),
            ],
        );
        let cold = cold_dau(&conn, vec![(date, split)], &BTreeSet::new(), ("p", "")).unwrap();
        assert!(cold.counted.days.is_empty());
        assert_eq!(cold.rows.rows.len(), 3);
        let prep = DauPrep::new(cold.rows, empty(), cold.counted, 10);
        let (_, groups) = prep.finish(&BTreeMap::new(), range);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].days[0].users, 2);
    }

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
        let rolled = RolledTop {
            by_value: Vec::new(),
            all: BTreeMap::new(),
        };
        let (all, groups) = top_groups(cold, (rolled, None), 10, 10);
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
