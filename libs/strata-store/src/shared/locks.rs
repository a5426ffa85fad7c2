//! The lock protocol on `events` and the tables beside it, in one place.
//!
//! Who takes what, and why nobody deadlocks or reads a half-moved day:
//!
//! | lock | taken by | mode | guards |
//! |---|---|---|---|
//! | `events` ACCESS SHARE | every stats snapshot ([`lock_for_snapshot`]) | before its snapshot | the snapshot sees each archive commit wholly or not at all; no chunk is dropped under it |
//! | `events` ACCESS EXCLUSIVE | the archive commit ([`lock_events_exclusive`]) | last, for constant work | manifest rows and the chunk drop become visible together |
//! | archive day (class [`ARCHIVE_DAY`], key: day number) | ingest into a closed day: shared ([`share_closed_days`]); the archive commit and the seal of a hot day (`seal.rs`): exclusive ([`lock_days_for_archive`]) | ascending days, before any lock on `events` | no row arrives in a day between the archiver's recount and its commit; a sealed day's rows are its rollup plus its recorded late events |
//! | claim day (class [`CLAIM_DAY`]) | every claiming transaction: shared; the seal: exclusive | see `claims.rs` | a sealed day's dedup records never change |
//! | project users (class [`PROJECT_USERS`]) | every claiming transaction: shared, with its claim day; an erasure's last transaction: exclusive, after its archive-day locks | see `erasure.rs` | a batch either commits before an erasure deletes the user's first-seen record (and is erased with it) or reads the new `ordinals_epoch` |
//! | partition creation ([`EVENTS_PARTITION`], [`CLAIMS_PARTITION`]) | whoever creates a day's partition, in its own short transaction, waiting at most 200 ms a try for the parent | one day at a time | concurrent creators never race on DDL; nobody queues long behind DDL |
//! | event types ([`EVENT_TYPES`], key: project) | registration of a project's new event types, in its own short transaction | one project at a time | the count against `STRATA_MAX_EVENT_TYPES` holds |
//! | migrate ([`MIGRATE`], session) | `migrate` | whole run | concurrent first migrations agree on the layout |
//! | archiver ([`ARCHIVER`], session) | the one running archiver | whole run | one archive run at a time (the lease fences a stale one) |
//!
//! Order. Ingest takes archive-day locks (ascending), then writes rows
//! (ROW EXCLUSIVE on `events`). The archive commit takes the same day
//! locks (ascending), then `events` exclusively. A stats snapshot takes
//! only ACCESS SHARE on `events`. Partition creation runs in its own
//! transaction, never inside one holding these. The archive commit
//! recreates a day's partition while holding `events` exclusively, without
//! the creation lock, which only orders creators that do not hold `events`.
//!
//! Every wait is bounded by `lock_timeout` (SQLSTATE 55P03, reported as
//! unavailable), so a long stats query delays an archive commit, and an
//! archive commit delays ingest and stats, by at most their timeouts.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use strata_model::day_number;

use crate::StoreError;
use crate::shared::days::day_start;

/// Creation of a native `events` day partition (second key: day number).
pub(crate) const EVENTS_PARTITION: i32 = 0x5354_4b01;
/// `migrate` runs on one database (session lock, second key 0).
pub(crate) const MIGRATE: i32 = 0x5354_4b02;
/// A closed day's rows between the archiver's recount and its commit.
pub(crate) const ARCHIVE_DAY: i32 = 0x5354_4b03;
/// A claim day of the idempotency records (`claims.rs`).
pub const CLAIM_DAY: i32 = 0x5354_4b04;
/// Creation of an `event_ids` day partition.
pub(crate) const CLAIMS_PARTITION: i32 = 0x5354_4b05;
/// A project's users (second key: [`project_key`]): every claiming
/// transaction shared, an erasure's last transaction exclusive (ADR-032).
pub(crate) const PROJECT_USERS: i32 = 0x5354_4b06;
/// Registration of a project's new event types (second key:
/// [`project_key`]), so the count against the cap holds.
pub(crate) const EVENT_TYPES: i32 = 0x5354_4b07;
/// The one running archiver ('STRA' 'ARCH'), a session lock.
pub const ARCHIVER: i64 = 0x5354_5241_4152_4348;

/// A day counts as closed (the archiver may be moving it) once it ends
/// before this long after the writer's clock: margin for clock skew between
/// the api and the archiver, whose cutoff never passes its own `now`.
pub const CLOSED_DAY_MARGIN: chrono::Duration = chrono::Duration::minutes(10);

/// A project's second advisory-lock key (two projects may share one: that
/// costs waiting, never correctness).
pub(crate) fn project_key(project: strata_model::ProjectId) -> i32 {
    (project.0 & 0x7fff_ffff) as i32
}

/// `SET LOCAL lock_timeout` for the rest of the transaction.
pub(crate) async fn set_lock_timeout(
    tx: &mut PgConnection,
    timeout: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "SET LOCAL lock_timeout = '{}ms'",
        timeout.as_millis().max(1)
    ))
    .execute(tx)
    .await?;
    Ok(())
}

/// The statements that open a stats snapshot: REPEATABLE READ, bounded wait,
/// and ACCESS SHARE on `events` *before* the snapshot is taken (LOCK takes
/// none; the first SELECT after it does). Every stats join is an aggregate
/// over whole ranges, where a nested loop is never right; PostgreSQL picks
/// one when statistics are missing (freshly filled partitions; partitioned
/// parents are never auto-analyzed), turning a 20 ms join into 30 s.
pub(crate) fn lock_for_snapshot(lock_timeout: Duration) -> String {
    format!(
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;
         SET LOCAL lock_timeout = '{}ms';
         SET LOCAL enable_nestloop = off;
         LOCK TABLE events IN ACCESS SHARE MODE;",
        lock_timeout.as_millis().max(1)
    )
}

/// The archive commit's exclusive section: waits at most `wait` for
/// `events` (stats and ingest queue behind the wait, so it is short).
pub(crate) async fn lock_events_exclusive(
    tx: &mut PgConnection,
    wait: Duration,
) -> Result<(), sqlx::Error> {
    set_lock_timeout(tx, wait).await?;
    sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .execute(tx)
        .await?;
    Ok(())
}

/// Ingest side: holds the archive-day lock shared, until the transaction
/// ends, for every day of `days` that is closed at `now`, and returns those
/// days. Today's traffic (the common case) takes no lock at all.
pub(crate) async fn share_closed_days(
    conn: &mut PgConnection,
    days: &BTreeSet<NaiveDate>,
    now: DateTime<Utc>,
) -> Result<Vec<NaiveDate>, sqlx::Error> {
    let closed: Vec<NaiveDate> = days
        .iter()
        .copied()
        .filter(|d| day_start(*d) + chrono::Duration::days(1) <= now + CLOSED_DAY_MARGIN)
        .collect();
    if closed.is_empty() {
        return Ok(closed);
    }
    let numbers: Vec<i32> = closed.iter().map(|d| day_number(*d)).collect();
    sqlx::query(
        "SELECT pg_advisory_xact_lock_shared($1, s.d)
           FROM (SELECT d FROM unnest($2::int4[]) AS t(d) ORDER BY d) s",
    )
    .bind(ARCHIVE_DAY)
    .bind(&numbers)
    .execute(conn)
    .await?;
    Ok(closed)
}

/// Takes `class`'s lock of `day` exclusively until the transaction ends
/// (partition creation: one creator of a day's partition at a time).
pub(crate) async fn lock_day_xact(
    tx: &mut PgConnection,
    class: i32,
    day: NaiveDate,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(class)
        .bind(day_number(day))
        .execute(tx)
        .await?;
    Ok(())
}

/// Archiver side: takes the archive-day lock of each day exclusively until
/// the transaction ends, in ascending order (waits for in-flight ingest
/// into those days; later ones wait for this transaction).
pub(crate) async fn lock_days_for_archive(
    conn: &mut PgConnection,
    days: &BTreeSet<NaiveDate>,
) -> Result<(), StoreError> {
    for d in days {
        lock_day_xact(conn, ARCHIVE_DAY, *d).await?;
    }
    Ok(())
}

/// Takes `key` (a session advisory lock) on `conn` if free.
pub(crate) async fn try_session_lock(
    conn: &mut PgConnection,
    key: i64,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(conn)
        .await?)
}
