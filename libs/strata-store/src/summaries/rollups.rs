//! Exact rollups of closed days (ADR-027): per (project, day), the day's
//! events and distinct users over all event types (`event_type` =
//! [`ALL_TYPES`]) and per event type. Users are Roaring bitmaps of the dense
//! per-project ordinals that `user_first_seen` assigns at ingest, so sets of
//! any days and tiers union and intersect exactly.
//!
//! This module owns `day_rollups` and `day_rollup_sources`. A day's rollup
//! names what it was computed from (its cold files, counted, and their
//! rows); the planner uses it only while that still equals the manifest in
//! the same snapshot, so a missing, stale or unreadable rollup sends the
//! day back to its Parquet files, never to a wrong answer.
//!
//! Rollups are written in two places:
//! - the archive commit ([`crate::ArchiveCommit::record_rollups`]), from the
//!   chunk's rows in the same transaction as the manifest rows: merged into
//!   the day's rollup when that covered every earlier file of the day, left
//!   stale otherwise;
//! - a rebuild ([`crate::Store::replace_rollup`]) from a day's Parquet
//!   files, under the day's archive lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use strata_model::ProjectId;

use crate::catalog::manifest::ManifestEntry;
use crate::shared::event_key::{EventKey, split_keys};
use crate::summaries::rollup::{
    ALL_TYPES, DayRollup, RollupSource, RowKey, TypeRollup, decode, encode, from_rows, ordinal_set,
};
use crate::summaries::rollup_cache::RollupCache;
use crate::{Store, StoreError};

/// The rollups, per project, of the rows of `events` in `[start, end)`
/// except those whose (project, id) are in `except`: per event type, and
/// per value of each property the project declares now (read in the
/// caller's transaction, so the rollup holds exactly those).
pub(crate) async fn aggregate_events(
    conn: &mut PgConnection,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    except: &[EventKey],
) -> Result<BTreeMap<i64, DayRollup>, StoreError> {
    let (except_projects, except_ids) = split_keys(except);
    let rows: Vec<(i64, Option<String>, i64, Vec<i64>)> = sqlx::query_as(
        "SELECT e.project_id, e.event_type, count(*),
                array_agg(DISTINCT f.ordinal ORDER BY f.ordinal)
           FROM events e
           JOIN user_first_seen f ON f.project_id = e.project_id AND f.user_id = e.user_id
          WHERE e.ts >= $1 AND e.ts < $2
            AND (e.project_id, e.event_id) NOT IN (SELECT * FROM unnest($3::int8[], $4::uuid[]))
          GROUP BY GROUPING SETS ((e.project_id, e.event_type), (e.project_id))",
    )
    .bind(start)
    .bind(end)
    .bind(&except_projects)
    .bind(&except_ids)
    .fetch_all(&mut *conn)
    .await?;
    let declared = declared_by_project(conn).await?;
    let mut by_project: BTreeMap<i64, Vec<(RowKey, i64, Vec<i64>)>> = BTreeMap::new();
    for (project, event_type, events, users) in rows {
        let key = RowKey {
            property: String::new(),
            value: None,
            event_type: event_type.unwrap_or_else(|| ALL_TYPES.to_owned()),
        };
        by_project
            .entry(project)
            .or_default()
            .push((key, events, users));
    }
    let mut out: BTreeMap<i64, DayRollup> = BTreeMap::new();
    for (p, rows) in by_project {
        let none = Vec::new();
        out.insert(p, from_rows(rows, declared.get(&p).unwrap_or(&none))?);
    }
    if declared.is_empty() || out.is_empty() {
        return Ok(out);
    }
    // Per value of each declared property, as PostgreSQL prints it: texts
    // that are one value (`1.50` and `1.5`) are merged once turned into it.
    /// (project, property, value text, event type or none: all, events, ordinals)
    type ValueRow = (i64, String, Option<String>, Option<String>, i64, Vec<i64>);
    let values: Vec<ValueRow> = sqlx::query_as(
        "SELECT e.project_id, d.property, (e.properties -> d.property)::text, e.event_type,
                    count(*), array_agg(DISTINCT f.ordinal ORDER BY f.ordinal)
               FROM events e
               JOIN project_properties d ON d.project_id = e.project_id
               JOIN user_first_seen f ON f.project_id = e.project_id AND f.user_id = e.user_id
              WHERE e.ts >= $1 AND e.ts < $2
                AND (e.project_id, e.event_id) NOT IN (SELECT * FROM unnest($3::int8[], $4::uuid[]))
              GROUP BY GROUPING SETS (
                  (e.project_id, d.property, (e.properties -> d.property)::text, e.event_type),
                  (e.project_id, d.property, (e.properties -> d.property)::text))",
    )
    .bind(start)
    .bind(end)
    .bind(&except_projects)
    .bind(&except_ids)
    .fetch_all(&mut *conn)
    .await?;
    for (project, property, raw, event_type, events, ordinals) in values {
        let Some(rollup) = out.get_mut(&project) else {
            continue;
        };
        let users = ordinal_set(ordinals)?;
        let key = (
            strata_model::property_text(raw.as_deref()),
            event_type.unwrap_or_else(|| ALL_TYPES.to_owned()),
        );
        rollup
            .properties
            .entry(property)
            .or_default()
            .entry(key)
            .or_default()
            .add(&TypeRollup { events, users });
    }
    Ok(out)
}

/// Every project's declared properties, as the caller's transaction sees
/// them.
async fn declared_by_project(
    conn: &mut PgConnection,
) -> Result<BTreeMap<i64, Vec<String>>, StoreError> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT project_id, property FROM project_properties ORDER BY 1, 2")
            .fetch_all(&mut *conn)
            .await?;
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (p, property) in rows {
        out.entry(p).or_default().push(property);
    }
    Ok(out)
}

/// The day's cold files and rows in the manifest now.
async fn manifest_source(
    conn: &mut PgConnection,
    project: i64,
    day: NaiveDate,
) -> Result<RollupSource, StoreError> {
    let (cold_files, cold_rows): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(rows), 0)::int8 FROM cold_files
          WHERE project_id = $1 AND day = $2",
    )
    .bind(project)
    .bind(day)
    .fetch_one(&mut *conn)
    .await?;
    Ok(RollupSource {
        cold_files,
        cold_rows,
    })
}

/// The day's stored rollup, locked for update: its source and rows, or
/// `None` when there is none or it is not complete — the same test
/// [`read`] applies ([`Expected::complete`]).
async fn stored_rollup(
    conn: &mut PgConnection,
    project: i64,
    day: NaiveDate,
) -> Result<Option<(RollupSource, DayRollup)>, StoreError> {
    let source: Option<(i32, i64, i32, i32, Vec<String>)> = sqlx::query_as(
        "SELECT cold_files, cold_rows, types, value_rows, properties FROM day_rollup_sources
          WHERE project_id = $1 AND day = $2 FOR UPDATE",
    )
    .bind(project)
    .bind(day)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((files, cold_rows, types, value_rows, properties)) = source else {
        return Ok(None);
    };
    let expected = Expected {
        rows: i64::from(types) + 1 + i64::from(value_rows),
        version: 0,
        properties,
    };
    type Row = (String, String, Option<String>, i64, Vec<u8>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT property, event_type, value, events, users FROM day_rollups
          WHERE project_id = $1 AND day = $2",
    )
    .bind(project)
    .bind(day)
    .fetch_all(&mut *conn)
    .await?;
    let Some(rollup) = expected.complete(rows.into_iter().map(
        |(property, event_type, value, events, users)| {
            (
                RowKey {
                    property,
                    value,
                    event_type,
                },
                events,
                users,
            )
        },
    )) else {
        return Ok(None);
    };
    let source = RollupSource {
        cold_files: i64::from(files),
        cold_rows,
    };
    Ok(Some((source, rollup)))
}

/// What a write stored of a day's rollup, for its source row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    /// Per-type rows beside the all-types row.
    pub types: i32,
    pub value_rows: i32,
    pub properties: Vec<String>,
}

/// Replaces the day's rows in `table` (`day_rollups` or `hot_rollups`)
/// with `rollup`'s; an error, nothing written, when it lacks its all-types
/// row.
pub(crate) async fn write_rows(
    conn: &mut PgConnection,
    table: &str,
    project: i64,
    day: NaiveDate,
    rollup: &DayRollup,
) -> Result<Written, StoreError> {
    if !rollup.types.contains_key(ALL_TYPES) {
        return Err(StoreError::Unexpected(format!(
            "a rollup of {day} without its all-types row"
        )));
    }
    let too_many = |_| StoreError::Unexpected("too many rollup rows for one day".into());
    let written = Written {
        types: i32::try_from(rollup.types.len() - 1).map_err(too_many)?,
        value_rows: i32::try_from(rollup.value_rows()).map_err(too_many)?,
        properties: rollup.properties.keys().cloned().collect(),
    };
    delete_rows(conn, table, project, day).await?;
    let (mut properties, mut values, mut types, mut events, mut users) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (key, r) in rollup.stored_rows() {
        properties.push(key.property);
        values.push(key.value);
        types.push(key.event_type);
        events.push(r.events);
        users.push(encode(&r.users));
    }
    sqlx::query(&format!(
        "INSERT INTO {table} (project_id, day, property, value, event_type, events, users)
         SELECT $1, $2, p, v, t, e, u
           FROM unnest($3::text[], $4::text[], $5::text[], $6::int8[], $7::bytea[])
                AS r(p, v, t, e, u)"
    ))
    .bind(project)
    .bind(day)
    .bind(&properties)
    .bind(&values)
    .bind(&types)
    .bind(&events)
    .bind(&users)
    .execute(&mut *conn)
    .await?;
    Ok(written)
}

/// Deletes the (project, day)'s rows of `table`.
async fn delete_rows(
    conn: &mut PgConnection,
    table: &str,
    project: i64,
    day: NaiveDate,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "DELETE FROM {table} WHERE project_id = $1 AND day = $2"
    ))
    .bind(project)
    .bind(day)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Replaces the day's rollup rows and source.
async fn write(
    conn: &mut PgConnection,
    project: i64,
    day: NaiveDate,
    rollup: &DayRollup,
    source: RollupSource,
) -> Result<(), StoreError> {
    let files = i32::try_from(source.cold_files)
        .map_err(|_| StoreError::Unexpected("too many cold files for one day".into()))?;
    let written = write_rows(conn, "day_rollups", project, day, rollup).await?;
    sqlx::query(
        "INSERT INTO day_rollup_sources
                (project_id, day, cold_files, cold_rows, types, value_rows, properties)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (project_id, day)
         DO UPDATE SET cold_files = EXCLUDED.cold_files, cold_rows = EXCLUDED.cold_rows,
                       types = EXCLUDED.types, value_rows = EXCLUDED.value_rows,
                       properties = EXCLUDED.properties, built_at = now(),
                       version = nextval('rollup_versions')",
    )
    .bind(project)
    .bind(day)
    .bind(files)
    .bind(source.cold_rows)
    .bind(written.types)
    .bind(written.value_rows)
    .bind(&written.properties)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// In the archive commit, before this commit's files enter the manifest:
/// adds `added` (the rows of `files` new files) to the day's rollup when
/// that covers every earlier file of the day (or the day has none), and
/// leaves it stale otherwise (a rebuild mends it). Returns whether it was
/// merged.
pub(crate) async fn merge_archived(
    conn: &mut PgConnection,
    project: i64,
    day: NaiveDate,
    added: &DayRollup,
    files: i64,
) -> Result<bool, StoreError> {
    let before = manifest_source(conn, project, day).await?;
    // A stored rollup that is stale, incomplete or unreadable is left as it
    // is (stats read the day's files; a rebuild mends it).
    let rollup = match stored_rollup(conn, project, day).await? {
        Some((source, mut rollup)) if source == before => {
            rollup.add(added);
            rollup
        }
        _ if before.cold_files == 0 => added.clone(),
        _ => return Ok(false),
    };
    let rows = added.types.get(ALL_TYPES).map_or(0, |r| r.events);
    let source = RollupSource {
        cold_files: before.cold_files + files,
        cold_rows: before.cold_rows + rows,
    };
    write(conn, project, day, &rollup, source).await?;
    Ok(true)
}

/// How a swap of a day's cold files (`swap.rs`) changes what they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollupEdit {
    /// The same rows, in other files (compaction).
    SameRows,
    /// Every row of one user removed (an erasure): the user's ordinal
    /// (`None`: the user has no first-seen record) and the rows removed per
    /// event type.
    UserRemoved {
        ordinal: Option<u32>,
        removed: BTreeMap<String, i64>,
    },
}

/// In a swap's transaction, before the manifest rows change: brings the
/// day's rollup to what its files hold after the swap (`after`) when it
/// covered them before; otherwise (stale, incomplete, or an edit it cannot
/// apply) deletes it, so that it can never match the new manifest by
/// chance; stats then read the day's files until a rebuild. Returns whether
/// the day keeps a current rollup.
pub(crate) async fn edit_for_swap(
    conn: &mut PgConnection,
    project: i64,
    day: NaiveDate,
    edit: &RollupEdit,
    after: RollupSource,
) -> Result<bool, StoreError> {
    let before = manifest_source(conn, project, day).await?;
    let rollup = match stored_rollup(conn, project, day).await? {
        Some((source, rollup)) if source == before => edited(rollup, edit),
        _ => None,
    };
    match rollup {
        Some(rollup) if after.cold_files > 0 && rollup.types.contains_key(ALL_TYPES) => {
            write(conn, project, day, &rollup, after).await?;
            Ok(true)
        }
        _ => {
            for table in ["day_rollups", "day_rollup_sources"] {
                delete_rows(conn, table, project, day).await?;
            }
            // A day left without files has nothing to roll up: no rollup
            // is exact.
            Ok(after.cold_files == 0)
        }
    }
}

/// `rollup` after `edit`, or `None` when the edit does not fit it. An
/// erasure says how many events it removed per type, not per value: the
/// values of declared properties are dropped (breakdowns read the day's
/// files until the erasure rolls the day up again, `erase.rs`).
fn edited(mut rollup: DayRollup, edit: &RollupEdit) -> Option<DayRollup> {
    let RollupEdit::UserRemoved { ordinal, removed } = edit else {
        return Some(rollup);
    };
    let ordinal = (*ordinal)?;
    rollup.properties.clear();
    let types = &mut rollup.types;
    let mut total = 0;
    for (t, n) in removed {
        types.get_mut(t.as_str())?.events -= n;
        total += n;
    }
    types.get_mut(ALL_TYPES)?.events -= total;
    for r in types.values_mut() {
        r.users.remove(ordinal);
    }
    if types
        .values()
        .any(|r| r.events < 0 || (r.events > 0) == r.users.is_empty())
    {
        return None;
    }
    types.retain(|_, r| r.events > 0);
    Some(rollup)
}

/// The rollup rows of some days of one project, as a snapshot reads them.
#[derive(Debug, Clone, Default)]
pub struct RollupRead {
    /// Per day: what its rollup covers.
    pub sources: BTreeMap<NaiveDate, RollupSource>,
    /// Per day, every event type's row and the [`ALL_TYPES`] row; a day
    /// whose rows are incomplete or do not decode is missing.
    pub days: BTreeMap<NaiveDate, Arc<DayRollup>>,
    /// Serialized bytes of the bitmaps of the rows asked for.
    pub bytes: u64,
}

/// Which rows of a day's rollup a statistic reads (for the bytes it
/// reports: every row of a day is kept, see [`RollupRead`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollupRows<'a> {
    /// The [`ALL_TYPES`] row.
    AllTypes,
    /// Every per-type row.
    PerType,
    /// One event type's row; a covered day without it had no such event.
    Type(&'a str),
    /// Two rows (each an event type or [`ALL_TYPES`]).
    Types(&'a str, &'a str),
    /// Every value row of one declared property.
    Values(&'a str),
}

impl RollupRows<'_> {
    /// The serialized bytes of the rows of `rollup` this names.
    fn bytes(&self, rollup: &DayRollup) -> u64 {
        let size = |r: &TypeRollup| r.users.serialized_size() as u64;
        let types = |f: &dyn Fn(&str) -> bool| -> u64 {
            rollup
                .types
                .iter()
                .filter(|(t, _)| f(t))
                .map(|(_, r)| size(r))
                .sum()
        };
        match *self {
            RollupRows::AllTypes => types(&|t| t == ALL_TYPES),
            RollupRows::PerType => types(&|t| t != ALL_TYPES),
            RollupRows::Type(x) => types(&|t| t == x),
            RollupRows::Types(a, b) => types(&|t| t == a || t == b),
            RollupRows::Values(p) => rollup
                .properties
                .get(p)
                .map_or(0, |v| v.values().map(size).sum()),
        }
    }
}

/// What a snapshot says a day's rollup must be: how many rows, the
/// declared properties it holds, and the version of its last write
/// (ADR-030).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expected {
    pub rows: i64,
    pub version: i64,
    pub properties: Vec<String>,
}

impl Expected {
    /// The rollup of a day's stored rows `(key, events, bitmap)` when they
    /// are complete: as many as expected, its all-types row, every bitmap
    /// decoding, every value row of a property it holds; `None` otherwise.
    pub(crate) fn complete(
        &self,
        rows: impl Iterator<Item = (RowKey, i64, Vec<u8>)>,
    ) -> Option<DayRollup> {
        let mut rollup = DayRollup::default();
        for p in &self.properties {
            rollup.properties.insert(p.clone(), BTreeMap::new());
        }
        let mut n = 0;
        for (key, events, users) in rows {
            n += 1;
            if !key.property.is_empty() && !rollup.properties.contains_key(&key.property) {
                return None;
            }
            let users = decode(&users).ok()?;
            if !rollup.put(key, TypeRollup { events, users }) {
                return None;
            }
        }
        (n == self.rows && rollup.rows() as i64 == n && rollup.types.contains_key(ALL_TYPES))
            .then_some(rollup)
    }
}

/// Reads the rollups of `project` for days in `[from, to]`. A day is
/// returned only when complete ([`Expected::complete`]).
pub(crate) async fn read(
    conn: &mut PgConnection,
    cache: &RollupCache,
    project: ProjectId,
    (from, to): (NaiveDate, NaiveDate),
    which: RollupRows<'_>,
) -> Result<RollupRead, StoreError> {
    type Source = (NaiveDate, i32, i64, i32, i32, Vec<String>, i64);
    let sources: Vec<Source> = sqlx::query_as(
        "SELECT day, cold_files, cold_rows, types, value_rows, properties, version
           FROM day_rollup_sources
          WHERE project_id = $1 AND day BETWEEN $2 AND $3",
    )
    .bind(project.0)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    let mut expected = BTreeMap::new();
    let mut out = RollupRead::default();
    for (day, cold_files, cold_rows, types, value_rows, properties, version) in sources {
        out.sources.insert(
            day,
            RollupSource {
                cold_files: i64::from(cold_files),
                cold_rows,
            },
        );
        expected.insert(
            day,
            Expected {
                rows: i64::from(types) + 1 + i64::from(value_rows),
                version,
                properties,
            },
        );
    }
    let (days, bytes) = read_rows(conn, cache, "day_rollups", project, which, &expected).await?;
    out.sources.retain(|d, _| days.contains_key(d));
    out.days = days;
    out.bytes = bytes;
    Ok(out)
}

/// The complete days of `table` (`day_rollups` or `hot_rollups`) among
/// `expected`, from the process's memory when it holds the version the
/// snapshot shows, else read (every row of the day) and remembered; and
/// the serialized bytes of the rows `which` names.
pub(crate) async fn read_rows(
    conn: &mut PgConnection,
    cache: &RollupCache,
    table: &'static str,
    project: ProjectId,
    which: RollupRows<'_>,
    expected: &BTreeMap<NaiveDate, Expected>,
) -> Result<(BTreeMap<NaiveDate, Arc<DayRollup>>, u64), StoreError> {
    let (mut days, missing) = cache.recall(
        table,
        project.0,
        expected.iter().map(|(d, e)| (*d, e.version)),
    );
    if !missing.is_empty() {
        type Row = (NaiveDate, String, Option<String>, String, i64, Vec<u8>);
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT day, property, value, event_type, events, users FROM {table}
              WHERE project_id = $1 AND day = ANY($2)"
        ))
        .bind(project.0)
        .bind(&missing)
        .fetch_all(&mut *conn)
        .await?;
        type Stored = Vec<(RowKey, i64, Vec<u8>)>;
        let mut read: BTreeMap<NaiveDate, (Stored, usize)> = BTreeMap::new();
        for (day, property, value, event_type, events, users) in rows {
            let (rows, bytes) = read.entry(day).or_default();
            *bytes += users.len();
            let key = RowKey {
                property,
                value,
                event_type,
            };
            rows.push((key, events, users));
        }
        for (day, (rows, bytes)) in read {
            let Some(e) = expected.get(&day) else {
                continue;
            };
            let Some(rollup) = e.complete(rows.into_iter()) else {
                tracing::warn!(project = project.0, %day, table,
                    "a rollup is incomplete or does not decode; the day is answered from its rows");
                continue;
            };
            let rollup = Arc::new(rollup);
            cache.put(table, project.0, day, e.version, Arc::clone(&rollup), bytes);
            days.insert(day, rollup);
        }
    }
    let bytes = days.values().map(|r| which.bytes(r)).sum();
    Ok((days, bytes))
}

impl Store {
    /// Replaces the rollup of one (project, day) with `rollup`, computed
    /// from the day's cold files `files`, under the day's archive lock (as
    /// archive commits and swaps take it) and only if the manifest still
    /// lists exactly those files, by object key: returns false (nothing
    /// written) otherwise. Counts and row sums alone are not enough: an
    /// erasure, a late file and a compaction can bring a day back to the
    /// same totals with other content.
    pub async fn replace_rollup(
        &self,
        project: ProjectId,
        day: NaiveDate,
        rollup: &DayRollup,
        files: &[ManifestEntry],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        crate::shared::locks::lock_days_for_archive(&mut tx, &[day].into_iter().collect()).await?;
        let mut listed: Vec<String> = sqlx::query_scalar(
            "SELECT object_key FROM cold_files WHERE project_id = $1 AND day = $2",
        )
        .bind(project.0)
        .bind(day)
        .fetch_all(&mut *tx)
        .await?;
        let mut read: Vec<&str> = files.iter().map(|f| f.object_key.as_str()).collect();
        listed.sort_unstable();
        read.sort_unstable();
        if !listed.iter().map(String::as_str).eq(read) {
            return Ok(false);
        }
        let source = RollupSource {
            cold_files: files.len() as i64,
            cold_rows: files.iter().map(|f| f.rows).sum(),
        };
        write(&mut tx, project.0, day, rollup, source).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Days with a rollup and the bytes of their user sets, of `project` or
    /// of every project.
    pub async fn rollup_footprint(
        &self,
        project: Option<ProjectId>,
    ) -> Result<(i64, i64), StoreError> {
        Ok(sqlx::query_as(
            "SELECT count(DISTINCT (project_id, day)), coalesce(sum(length(users)), 0)::int8
               FROM day_rollups WHERE $1::int8 IS NULL OR project_id = $1",
        )
        .bind(project.map(|p| p.0))
        .fetch_one(&self.pool)
        .await?)
    }

    /// Maps user ids to their ordinals (those without one are left out).
    pub async fn user_ordinals<'a>(
        &self,
        project: ProjectId,
        users: &[&'a str],
    ) -> Result<HashMap<&'a str, u32>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let epoch = crate::summaries::ordinals::epoch(&mut conn, project).await?;
        self.ordinals
            .of(&mut conn, project, epoch, users.iter().copied())
            .await
    }
}

/// Per project: days with a rollup in `table` (`day_rollups` or
/// `hot_rollups`), and the bytes of their user sets.
pub(crate) async fn per_project(
    pool: &sqlx::PgPool,
    table: &str,
) -> Result<Vec<(i64, i64, i64)>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT project_id, count(DISTINCT day), sum(length(users))::int8
           FROM {table} GROUP BY project_id"
    ))
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use roaring::RoaringBitmap;

    use super::*;

    fn part(n: i64, users: &[u32]) -> TypeRollup {
        TypeRollup {
            events: n,
            users: users.iter().copied().collect(),
        }
    }

    fn rollup(rows: &[(&str, i64, &[u32])]) -> DayRollup {
        DayRollup {
            types: rows
                .iter()
                .map(|(t, n, users)| ((*t).to_owned(), part(*n, users)))
                .collect(),
            properties: BTreeMap::new(),
        }
    }

    fn with_plan(mut r: DayRollup, values: &[(Option<&str>, &str, i64, &[u32])]) -> DayRollup {
        let plan = r.properties.entry("plan".into()).or_default();
        for (v, t, n, users) in values {
            plan.insert((v.map(str::to_owned), (*t).to_owned()), part(*n, users));
        }
        r
    }

    fn stored(r: &DayRollup) -> Vec<(RowKey, i64, Vec<u8>)> {
        r.stored_rows()
            .map(|(k, t)| (k, t.events, encode(&t.users)))
            .collect()
    }

    #[test]
    fn a_stored_rollup_is_whole_only_with_every_row_of_every_property_it_holds() {
        let day = with_plan(
            rollup(&[("", 3, &[1, 2]), ("view", 3, &[1, 2])]),
            &[(Some("pro"), "", 2, &[1]), (None, "", 1, &[2])],
        );
        let expected = Expected {
            rows: 4,
            version: 1,
            properties: vec!["plan".into()],
        };
        assert_eq!(
            expected.complete(stored(&day).into_iter()),
            Some(day.clone())
        );
        let mut rows = stored(&day);
        rows.pop();
        assert_eq!(
            expected.complete(rows.into_iter()),
            None,
            "a value row lost"
        );
        let undeclared = Expected {
            properties: vec![],
            ..expected.clone()
        };
        assert_eq!(
            undeclared.complete(stored(&day).into_iter()),
            None,
            "rows of a property the source does not name"
        );
        let mut rows = stored(&day);
        rows[3].2 = b"garbage".to_vec();
        assert_eq!(
            expected.complete(rows.into_iter()),
            None,
            "a bitmap damaged"
        );
    }

    #[test]
    fn adding_keeps_only_the_properties_both_sides_hold() {
        let a = with_plan(rollup(&[("", 1, &[1])]), &[(Some("pro"), "", 1, &[1])]);
        let b = with_plan(rollup(&[("", 2, &[2])]), &[(Some("pro"), "", 2, &[2])]);
        let mut sum = a.clone();
        sum.add(&b);
        assert_eq!(
            sum.properties["plan"][&(Some("pro".into()), String::new())].events,
            3
        );
        let mut sum = a.clone();
        sum.add(&rollup(&[("", 2, &[2])]));
        assert!(
            sum.properties.is_empty(),
            "the other side's values are unknown"
        );
        assert_eq!(sum.types[""].users.len(), 2);
    }

    #[test]
    fn removing_a_user_subtracts_their_events_and_drops_emptied_types() {
        let day = rollup(&[("", 5, &[1, 2]), ("view", 3, &[1, 2]), ("buy", 2, &[2])]);
        let erase = |o: Option<u32>, removed: &[(&str, i64)]| {
            edited(
                day.clone(),
                &RollupEdit::UserRemoved {
                    ordinal: o,
                    removed: removed.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect(),
                },
            )
        };
        assert_eq!(
            erase(Some(2), &[("view", 1), ("buy", 2)]),
            Some(rollup(&[("", 2, &[1]), ("view", 2, &[1])]))
        );
        // Values are dropped: the erasure does not say which it removed.
        let valued = with_plan(day.clone(), &[(Some("pro"), "", 5, &[1, 2])]);
        let after = edited(
            valued,
            &RollupEdit::UserRemoved {
                ordinal: Some(2),
                removed: [("buy".to_owned(), 2)].into_iter().collect(),
            },
        )
        .unwrap();
        assert!(after.properties.is_empty());
        assert_eq!(
            edited(day.clone(), &RollupEdit::SameRows),
            Some(day.clone())
        );
        // Edits that do not fit the rollup: it is dropped, not guessed at.
        assert_eq!(erase(None, &[("view", 1)]), None, "no ordinal");
        assert_eq!(erase(Some(2), &[("click", 1)]), None, "a type it lacks");
        assert_eq!(erase(Some(2), &[("buy", 3)]), None, "more than it holds");
        assert_eq!(
            erase(Some(1), &[("view", 3)]),
            None,
            "events gone, users not"
        );
        assert_eq!(
            erase(Some(2), &[("buy", 1)]),
            None,
            "users gone, events not"
        );
    }

    #[test]
    fn bitmaps_survive_the_round_trip_and_garbage_is_refused() {
        let users: RoaringBitmap = [0u32, 1, 7, 65_536, 4_000_000_000].into_iter().collect();
        assert_eq!(decode(&encode(&users)).unwrap(), users);
        assert!(decode(b"not a bitmap").is_err());
    }

    #[test]
    fn adding_sums_events_and_unions_users() {
        let mut a = TypeRollup {
            events: 3,
            users: [1u32, 2].into_iter().collect(),
        };
        a.add(&TypeRollup {
            events: 2,
            users: [2u32, 5].into_iter().collect(),
        });
        assert_eq!(a.events, 5);
        assert_eq!(a.users.iter().collect::<Vec<_>>(), [1, 2, 5]);
    }
}
