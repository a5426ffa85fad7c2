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
//! - a rebuild ([`crate::HotStore::replace_rollup`]) from a day's Parquet
//!   files, under the day's archive lock.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use roaring::RoaringBitmap;
use sqlx::PgConnection;
use strata_model::ProjectId;
use uuid::Uuid;

use crate::{HotError, HotStore};

/// `event_type` of the row covering every event type of a day (no event
/// can have an empty type).
pub const ALL_TYPES: &str = "";

/// One event type's part of a day (or [`ALL_TYPES`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeRollup {
    pub events: i64,
    pub users: RoaringBitmap,
}

impl TypeRollup {
    pub fn add(&mut self, other: &TypeRollup) {
        self.events += other.events;
        self.users |= &other.users;
    }
}

/// A day's rollup: by event type, [`ALL_TYPES`] included.
pub type DayRollup = BTreeMap<String, TypeRollup>;

/// What a day's rollup covers: the day's cold files, counted, and their rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollupSource {
    pub cold_files: i64,
    pub cold_rows: i64,
}

/// Bitmaps as stored (Roaring's portable format).
pub fn encode(users: &RoaringBitmap) -> Vec<u8> {
    let mut out = Vec::with_capacity(users.serialized_size());
    // Writing into a Vec cannot fail.
    let _ = users.serialize_into(&mut out);
    out
}

pub fn decode(bytes: &[u8]) -> Result<RoaringBitmap, HotError> {
    RoaringBitmap::deserialize_from(bytes)
        .map_err(|e| HotError::Unexpected(format!("unreadable rollup bitmap: {e}")))
}

fn ordinal(o: i64) -> Result<u32, HotError> {
    u32::try_from(o).map_err(|_| HotError::Unexpected(format!("user ordinal {o} out of range")))
}

/// Builds a day rollup from `(event_type, events, sorted distinct user
/// ordinals)` per type; the [`ALL_TYPES`] row is one of them.
pub(crate) fn from_rows(rows: Vec<(String, i64, Vec<i64>)>) -> Result<DayRollup, HotError> {
    let mut out = DayRollup::new();
    for (event_type, events, ordinals) in rows {
        let users = ordinals
            .into_iter()
            .map(ordinal)
            .collect::<Result<RoaringBitmap, _>>()?;
        out.insert(event_type, TypeRollup { events, users });
    }
    Ok(out)
}

/// The rollups, per project, of the rows of `events` in `[start, end)`
/// except those whose ids are in `except`.
pub(crate) async fn aggregate_events(
    conn: &mut PgConnection,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    except: &[Uuid],
) -> Result<BTreeMap<i64, DayRollup>, HotError> {
    let rows: Vec<(i64, Option<String>, i64, Vec<i64>)> = sqlx::query_as(
        "SELECT e.project_id, e.event_type, count(*),
                array_agg(DISTINCT f.ordinal ORDER BY f.ordinal)
           FROM events e
           JOIN user_first_seen f ON f.project_id = e.project_id AND f.user_id = e.user_id
          WHERE e.ts >= $1 AND e.ts < $2 AND NOT (e.event_id = ANY($3))
          GROUP BY GROUPING SETS ((e.project_id, e.event_type), (e.project_id))",
    )
    .bind(start)
    .bind(end)
    .bind(except)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_project: BTreeMap<i64, Vec<(String, i64, Vec<i64>)>> = BTreeMap::new();
    for (project, event_type, events, users) in rows {
        by_project.entry(project).or_default().push((
            event_type.unwrap_or_else(|| ALL_TYPES.to_owned()),
            events,
            users,
        ));
    }
    by_project
        .into_iter()
        .map(|(p, rows)| Ok((p, from_rows(rows)?)))
        .collect()
}

/// The day's cold files and rows in the manifest now.
async fn manifest_source(
    conn: &mut PgConnection,
    project: i64,
    day: NaiveDate,
) -> Result<RollupSource, HotError> {
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
/// `None` when there is none or it is not complete (its all-types row, as
/// many rows as the source records, every bitmap decoding) — the same
/// test [`read`] applies.
async fn stored_rollup(
    conn: &mut PgConnection,
    project: i64,
    day: NaiveDate,
) -> Result<Option<(RollupSource, DayRollup)>, HotError> {
    let source: Option<(i32, i64, i32)> = sqlx::query_as(
        "SELECT cold_files, cold_rows, types FROM day_rollup_sources
          WHERE project_id = $1 AND day = $2 FOR UPDATE",
    )
    .bind(project)
    .bind(day)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((files, cold_rows, types)) = source else {
        return Ok(None);
    };
    let rows: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT event_type, events, users FROM day_rollups WHERE project_id = $1 AND day = $2",
    )
    .bind(project)
    .bind(day)
    .fetch_all(&mut *conn)
    .await?;
    let mut rollup = DayRollup::new();
    for (t, events, users) in rows {
        let Ok(users) = decode(&users) else {
            return Ok(None);
        };
        rollup.insert(t, TypeRollup { events, users });
    }
    if !rollup.contains_key(ALL_TYPES) || rollup.len() != types as usize + 1 {
        return Ok(None);
    }
    let source = RollupSource {
        cold_files: i64::from(files),
        cold_rows,
    };
    Ok(Some((source, rollup)))
}

/// Replaces the day's rows in `table` (`day_rollups` or `hot_rollups`)
/// with `rollup`'s; returns how many per-type rows it has beside the
/// all-types row (an error, nothing written, when it lacks that row).
pub(crate) async fn write_rows(
    conn: &mut PgConnection,
    table: &str,
    project: i64,
    day: NaiveDate,
    rollup: &DayRollup,
) -> Result<i32, HotError> {
    if !rollup.contains_key(ALL_TYPES) {
        return Err(HotError::Unexpected(format!(
            "a rollup of {day} without its all-types row"
        )));
    }
    let type_rows = i32::try_from(rollup.len() - 1)
        .map_err(|_| HotError::Unexpected("too many event types for one day".into()))?;
    sqlx::query(&format!(
        "DELETE FROM {table} WHERE project_id = $1 AND day = $2"
    ))
    .bind(project)
    .bind(day)
    .execute(&mut *conn)
    .await?;
    let (mut types, mut events, mut users) = (Vec::new(), Vec::new(), Vec::new());
    for (t, r) in rollup {
        types.push(t.as_str());
        events.push(r.events);
        users.push(encode(&r.users));
    }
    sqlx::query(&format!(
        "INSERT INTO {table} (project_id, day, event_type, events, users)
         SELECT $1, $2, t, e, u FROM unnest($3::text[], $4::int8[], $5::bytea[]) AS r(t, e, u)"
    ))
    .bind(project)
    .bind(day)
    .bind(&types)
    .bind(&events)
    .bind(&users)
    .execute(&mut *conn)
    .await?;
    Ok(type_rows)
}

/// Replaces the day's rollup rows and source.
async fn write(
    conn: &mut PgConnection,
    project: i64,
    day: NaiveDate,
    rollup: &DayRollup,
    source: RollupSource,
) -> Result<(), HotError> {
    let files = i32::try_from(source.cold_files)
        .map_err(|_| HotError::Unexpected("too many cold files for one day".into()))?;
    let type_rows = write_rows(conn, "day_rollups", project, day, rollup).await?;
    sqlx::query(
        "INSERT INTO day_rollup_sources (project_id, day, cold_files, cold_rows, types)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (project_id, day)
         DO UPDATE SET cold_files = EXCLUDED.cold_files, cold_rows = EXCLUDED.cold_rows,
                       types = EXCLUDED.types, built_at = now()",
    )
    .bind(project)
    .bind(day)
    .bind(files)
    .bind(source.cold_rows)
    .bind(type_rows)
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
) -> Result<bool, HotError> {
    let before = manifest_source(conn, project, day).await?;
    // A stored rollup that is stale, incomplete or unreadable is left as it
    // is (stats read the day's files; a rebuild mends it).
    let mut rollup = match stored_rollup(conn, project, day).await? {
        Some((source, rollup)) if source == before => rollup,
        _ if before.cold_files == 0 => DayRollup::new(),
        _ => return Ok(false),
    };
    for (t, r) in added {
        rollup.entry(t.clone()).or_default().add(r);
    }
    let rows = added.get(ALL_TYPES).map_or(0, |r| r.events);
    let source = RollupSource {
        cold_files: before.cold_files + files,
        cold_rows: before.cold_rows + rows,
    };
    write(conn, project, day, &rollup, source).await?;
    Ok(true)
}

/// The ordinals of `users` of `project` (users without one are left out).
pub(crate) async fn ordinals_of(
    conn: &mut PgConnection,
    project: ProjectId,
    users: &[&str],
) -> Result<Vec<(String, i64)>, HotError> {
    Ok(sqlx::query_as(
        "SELECT user_id, ordinal FROM user_first_seen
          WHERE project_id = $1 AND user_id = ANY($2)",
    )
    .bind(project.0)
    .bind(users)
    .fetch_all(&mut *conn)
    .await?)
}

/// The rollup rows of some days of one project, as a snapshot reads them.
#[derive(Debug, Clone, Default)]
pub struct RollupRead {
    /// Per day: what its rollup covers.
    pub sources: BTreeMap<NaiveDate, RollupSource>,
    /// Per day and event type; a day whose bitmaps do not decode is missing.
    pub days: BTreeMap<NaiveDate, DayRollup>,
    /// Bytes of the bitmaps read.
    pub bytes: u64,
}

/// Which rows of a day's rollup a statistic reads.
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
}

/// Reads the rollups of `project` for days in `[from, to]`, the rows
/// `which` names. A day is returned only when complete: its all-types row
/// present, as many rows as its source says, every bitmap read decodes.
pub(crate) async fn read(
    conn: &mut PgConnection,
    project: ProjectId,
    (from, to): (NaiveDate, NaiveDate),
    which: RollupRows<'_>,
) -> Result<RollupRead, HotError> {
    let sources: Vec<(NaiveDate, i32, i64, i32)> = sqlx::query_as(
        "SELECT day, cold_files, cold_rows, types FROM day_rollup_sources
          WHERE project_id = $1 AND day BETWEEN $2 AND $3",
    )
    .bind(project.0)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    let mut expected_rows = BTreeMap::new();
    let mut out = RollupRead::default();
    for (day, cold_files, cold_rows, types) in sources {
        out.sources.insert(
            day,
            RollupSource {
                cold_files: i64::from(cold_files),
                cold_rows,
            },
        );
        expected_rows.insert(day, i64::from(types) + 1);
    }
    let (days, bytes) = read_rows(
        conn,
        "day_rollups",
        project,
        (from, to),
        which,
        &expected_rows,
    )
    .await?;
    out.sources.retain(|d, _| days.contains_key(d));
    out.days = days;
    out.bytes = bytes;
    Ok(out)
}

/// The complete days of `table` (`day_rollups` or `hot_rollups`) among
/// `expected_rows` (day → rows it must have), the rows `which` names, and
/// the bytes of the bitmaps read.
pub(crate) async fn read_rows(
    conn: &mut PgConnection,
    table: &str,
    project: ProjectId,
    (from, to): (NaiveDate, NaiveDate),
    which: RollupRows<'_>,
    expected_rows: &BTreeMap<NaiveDate, i64>,
) -> Result<(BTreeMap<NaiveDate, DayRollup>, u64), HotError> {
    if expected_rows.is_empty() {
        return Ok(Default::default());
    }
    // The all-types row always; the per-type rows asked for; and each day's
    // number of rows, to tell a complete day from a damaged one.
    let (all, only): (bool, Vec<&str>) = match which {
        RollupRows::AllTypes => (false, vec![]),
        RollupRows::PerType => (true, vec![]),
        RollupRows::Type(t) => (false, vec![t]),
        RollupRows::Types(a, b) => (false, vec![a, b]),
    };
    let rows: Vec<(NaiveDate, String, i64, Vec<u8>, i64)> = sqlx::query_as(&format!(
        "SELECT r.day, r.event_type, r.events, r.users, n.rows
           FROM {table} r
           JOIN (SELECT day, count(*) AS rows FROM {table}
                  WHERE project_id = $1 AND day BETWEEN $2 AND $3 GROUP BY day) n USING (day)
          WHERE r.project_id = $1 AND r.day BETWEEN $2 AND $3
            AND (r.event_type = '' OR $4 OR r.event_type = ANY($5))"
    ))
    .bind(project.0)
    .bind(from)
    .bind(to)
    .bind(all)
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;
    let mut days: BTreeMap<NaiveDate, DayRollup> = BTreeMap::new();
    let mut bytes = 0;
    let mut damaged = std::collections::BTreeSet::new();
    for (day, event_type, events, users, day_rows) in rows {
        if expected_rows.get(&day) != Some(&day_rows) {
            damaged.insert(day);
            continue;
        }
        bytes += users.len() as u64;
        match decode(&users) {
            Ok(users) => {
                days.entry(day)
                    .or_default()
                    .insert(event_type, TypeRollup { events, users });
            }
            Err(e) => {
                tracing::warn!(project = project.0, %day, table, error = %e,
                    "a rollup does not decode; the day is answered from its rows");
                damaged.insert(day);
            }
        }
    }
    for (day, rollup) in &days {
        if !rollup.contains_key(ALL_TYPES) {
            damaged.insert(*day);
        }
    }
    for day in &damaged {
        days.remove(day);
    }
    if which == RollupRows::PerType {
        // The all-types row was read to check the day; callers want types.
        for rollup in days.values_mut() {
            rollup.remove(ALL_TYPES);
        }
    }
    Ok((days, bytes))
}

impl HotStore {
    /// Replaces the rollup of one (project, day) with `rollup`, computed
    /// from the day's cold files `source`, under the day's archive lock and
    /// only if the manifest still lists exactly those files: returns false
    /// (nothing written) otherwise.
    pub async fn replace_rollup(
        &self,
        project: ProjectId,
        day: NaiveDate,
        rollup: &DayRollup,
        source: RollupSource,
    ) -> Result<bool, HotError> {
        let mut tx = self.pool.begin().await?;
        crate::locks::lock_days_for_archive(&mut tx, &[day].into_iter().collect()).await?;
        if manifest_source(&mut tx, project.0, day).await? != source {
            return Ok(false);
        }
        write(&mut tx, project.0, day, rollup, source).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Days with a rollup and the bytes of their user sets, of `project` or
    /// of every project.
    pub async fn rollup_footprint(
        &self,
        project: Option<ProjectId>,
    ) -> Result<(i64, i64), HotError> {
        Ok(sqlx::query_as(
            "SELECT count(DISTINCT (project_id, day)), coalesce(sum(length(users)), 0)::int8
               FROM day_rollups WHERE $1::int8 IS NULL OR project_id = $1",
        )
        .bind(project.map(|p| p.0))
        .fetch_one(&self.pool)
        .await?)
    }

    /// Maps user ids to their ordinals (those without one are left out).
    pub async fn user_ordinals(
        &self,
        project: ProjectId,
        users: &[&str],
    ) -> Result<Vec<(String, i64)>, HotError> {
        let mut conn = self.pool.acquire().await?;
        ordinals_of(&mut conn, project, users).await
    }
}

/// Per project: days with a rollup in `table` (`day_rollups` or
/// `hot_rollups`), and the bytes of their user sets.
pub(crate) async fn per_project(
    pool: &sqlx::PgPool,
    table: &str,
) -> Result<Vec<(i64, i64, i64)>, HotError> {
    Ok(sqlx::query_as(&format!(
        "SELECT project_id, count(DISTINCT day), sum(length(users))::int8
           FROM {table} GROUP BY project_id"
    ))
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
