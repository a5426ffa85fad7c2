//! The idempotency records ("claims"): which event ids each project has
//! accepted, kept for the dedup window. This module owns `event_ids` and
//! `claim_watermark` (ADR-025).
//!
//! `event_ids` is partitioned by the UTC day a claim arrived (`day`, the
//! ingest transaction's own date), so the index that takes new claims is
//! one day's, small and cached, instead of a 90-day btree of random UUIDs
//! whose every insert dirties a page of its own (and, after a checkpoint,
//! writes that whole page to the WAL). Expiry drops a whole day.
//!
//! Exactness. An id is new for a project iff no partition holds it.
//! - Within the arrival day, the partition's primary key decides
//!   (`ON CONFLICT DO NOTHING` waits for an in-flight claim of the same id).
//! - Across days, a transaction of day `d` first probes every partition of
//!   an earlier day, and those are closed to new claims ("sealed"): every
//!   claiming transaction holds its day's lock (advisory, class
//!   `CLAIM_DAY`) shared, and checks after taking it that its day
//!   is still `claim_watermark.sealed_before` (so neither sealed nor later
//!   than the seal). Sealing the days before `d` takes those days' locks
//!   exclusively, so it waits for every claim of them still in flight, then
//!   moves the watermark to `d` in the same transaction. A transaction of an
//!   earlier day that takes its lock after that sees the watermark moved and
//!   starts again (with the new date).
//! - A sealed day never changes again, so its ids can be summarised in a
//!   filter built once per process: a binary fuse filter (16-bit
//!   fingerprints, ~18 bits per id, a false positive in 65,536) over a hash
//!   of (project, id), one per block of 16 days. It has no false negatives,
//!   so an id it rules out is in no row of those days; the rest are looked
//!   up in PostgreSQL, in each day of the block. Until a block's filter is
//!   built, every id is looked up there. Exactness never depends on the
//!   filter, only the number of lookups does.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};
use strata_model::{ProjectId, day_number};
use uuid::Uuid;
use xorf::{BinaryFuse16, Filter};

use crate::StoreError;
use crate::events::day_tables::CLAIMS;
use crate::shared::locks::CLAIM_DAY;

/// The seal waits for claims of at most this many days before the one it
/// seals for: a claiming transaction lasts milliseconds, and a transaction
/// open for a week is not one the service runs.
const SEAL_LOOKBACK_DAYS: i32 = 7;
/// The filter key of an id: a 64-bit hash of the project and both halves
/// of the UUID (splitmix64's finaliser, applied after each half).
/// Collisions only cost a lookup.
fn key(project: i64, id: Uuid) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let (hi, lo) = id.as_u64_pair();
    mix(mix(hi ^ (project as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) ^ lo)
}

/// Sealed days are summarised in blocks of this many consecutive days (by
/// day number), one filter per block, so an id is checked against about
/// 90 / 16 filters instead of 90; a block's filter is rebuilt when one of
/// its days is sealed.
const BLOCK_DAYS: i32 = 16;

fn block_of(day: NaiveDate) -> i32 {
    day_number(day).div_euclid(BLOCK_DAYS)
}

/// One block's filter and the days it was built from.
#[derive(Debug)]
struct Block {
    days: Vec<NaiveDate>,
    filter: Arc<BinaryFuse16>,
}

/// The sealed days as one process knows them.
#[derive(Debug, Default)]
struct View {
    /// Every day before this one is sealed.
    before: Option<NaiveDate>,
    /// The claim partitions of days before `before`, ascending.
    days: Vec<NaiveDate>,
    /// Built filters, by block number. A block's filter is used only while
    /// its days are exactly the view's days of that block.
    blocks: HashMap<i32, Block>,
}

impl View {
    /// The view's days of each block, newest block first.
    fn block_days(&self) -> Vec<(i32, Vec<NaiveDate>)> {
        let mut out: Vec<(i32, Vec<NaiveDate>)> = Vec::new();
        for d in self.days.iter().rev() {
            let b = block_of(*d);
            match out.last_mut() {
                Some((last, days)) if *last == b => days.push(*d),
                _ => out.push((b, vec![*d])),
            }
        }
        for (_, days) in &mut out {
            days.reverse();
        }
        out
    }

    /// Sets the sealed days, dropping the filters of blocks that no longer
    /// hold any (their days expired), so memory follows the window.
    fn set_days(&mut self, days: Vec<NaiveDate>) {
        let live: BTreeSet<i32> = days.iter().map(|d| block_of(*d)).collect();
        self.blocks.retain(|b, _| live.contains(b));
        self.days = days;
    }

    fn filter_for(&self, block: i32, days: &[NaiveDate]) -> Option<&Arc<BinaryFuse16>> {
        self.blocks
            .get(&block)
            .filter(|b| b.days == days)
            .map(|b| &b.filter)
    }
}

/// The claims' state in one process. Cheap to share.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    /// Claim partitions this process has seen exist.
    partitions: Mutex<BTreeSet<NaiveDate>>,
    view: Mutex<View>,
    /// A filter build is running.
    building: Mutex<bool>,
}

/// A claim's (or a whole ingest transaction's) result.
pub(crate) enum Claimed<T = (std::collections::HashSet<Uuid>, i64)> {
    /// Done: for a claim, the ids that were new, now claimed by this
    /// transaction, and the project's `ordinals_epoch` (`first_seen.rs`).
    New(T),
    /// The process must prepare `day` (create its partition, seal the days
    /// before it, load their list) and start the transaction again.
    Prepare(NaiveDate),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Claims {
    /// Claims `ids` (sorted, distinct) for `project` inside the ingest
    /// transaction `tx`: the ones no partition held.
    pub(crate) async fn claim(
        &self,
        tx: &mut PgConnection,
        project: ProjectId,
        ids: &[Uuid],
    ) -> Result<Claimed, sqlx::Error> {
        // The project's users lock, shared, too: an erasure's last
        // transaction (which deletes first-seen records and bumps the
        // epoch) holds it exclusively, so a batch commits wholly before it
        // or reads the new epoch after it.
        let day: NaiveDate = sqlx::query_scalar(
            "SELECT d FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS d) t,
                    LATERAL pg_advisory_xact_lock_shared($1, d - date '1970-01-01') AS day_lock,
                    LATERAL pg_advisory_xact_lock_shared($2, $3) AS users_lock",
        )
        .bind(CLAIM_DAY)
        .bind(crate::shared::locks::PROJECT_USERS)
        .bind(crate::shared::locks::project_key(project))
        .fetch_one(&mut *tx)
        .await?;
        if !lock(&self.partitions).contains(&day) {
            return Ok(Claimed::Prepare(day));
        }
        // Candidates: (id, day) pairs the filters cannot rule out.
        let (mut cand_ids, mut cand_days) = (Vec::new(), Vec::new());
        {
            let view = lock(&self.view);
            if view.before != Some(day) {
                return Ok(Claimed::Prepare(day));
            }
            for (block, days) in view.block_days() {
                match view.filter_for(block, &days) {
                    Some(f) => {
                        for id in ids {
                            if f.contains(&key(project.0, *id)) {
                                for d in &days {
                                    cand_ids.push(*id);
                                    cand_days.push(*d);
                                }
                            }
                        }
                    }
                    None => {
                        for d in &days {
                            cand_ids.extend_from_slice(ids);
                            cand_days.extend(std::iter::repeat_n(*d, ids.len()));
                        }
                    }
                }
            }
        }
        // A new statement, so its snapshot is taken after the day lock was
        // granted: it sees the watermark and every claim the seal waited for.
        let (sealed_before, held, epoch): (NaiveDate, Vec<Uuid>, i64) = sqlx::query_as(
            "SELECT (SELECT sealed_before FROM claim_watermark),
                    ARRAY(SELECT c.id FROM unnest($2::uuid[], $3::date[]) AS c(id, day)
                           WHERE (SELECT true FROM event_ids e
                                   WHERE e.project_id = $1 AND e.event_id = c.id
                                     AND e.day = c.day LIMIT 1)),
                    coalesce((SELECT ordinals_epoch FROM projects WHERE id = $1), 0)",
        )
        .bind(project.0)
        .bind(&cand_ids)
        .bind(&cand_days)
        .fetch_one(&mut *tx)
        .await?;
        if sealed_before != day {
            return Ok(Claimed::Prepare(day));
        }
        let held: std::collections::HashSet<Uuid> = held.into_iter().collect();
        let fresh: Vec<Uuid> = ids.iter().filter(|i| !held.contains(i)).copied().collect();
        let new: Vec<Uuid> = sqlx::query_scalar(
            "INSERT INTO event_ids (project_id, event_id, day)
             SELECT $1, id, $3 FROM unnest($2::uuid[]) AS t(id) ORDER BY id
             ON CONFLICT DO NOTHING
             RETURNING event_id",
        )
        .bind(project.0)
        .bind(&fresh)
        .bind(day)
        .fetch_all(&mut *tx)
        .await?;
        Ok(Claimed::New((new.into_iter().collect(), epoch)))
    }

    /// Readies this process to claim on `day`: its partition exists, every
    /// earlier day is sealed, and the list of earlier partitions is loaded
    /// (keeping the filters already built). Starts building missing filters
    /// in the background.
    pub(crate) async fn prepare(
        self: &Arc<Self>,
        pool: &PgPool,
        day: NaiveDate,
    ) -> Result<(), StoreError> {
        // Tomorrow's partition too, so that the DDL (which waits for the
        // claims in flight on other days) is not on midnight's path.
        self.ensure_partition(pool, day).await?;
        self.ensure_partition(pool, day + chrono::Duration::days(1))
            .await?;
        let before = seal_before(pool, day).await?;
        let days = CLAIMS.days(&mut *pool.acquire().await?).await?;
        {
            let mut view = lock(&self.view);
            view.set_days(days.iter().copied().filter(|d| *d < before).collect());
            view.before = Some(before);
        }
        lock(&self.partitions).extend(days);
        self.build_missing_filters(pool.clone());
        Ok(())
    }

    async fn ensure_partition(&self, pool: &PgPool, day: NaiveDate) -> Result<(), StoreError> {
        if lock(&self.partitions).contains(&day) {
            return Ok(());
        }
        create_partition(pool, day).await?;
        lock(&self.partitions).insert(day);
        Ok(())
    }

    /// Builds, one after the other on a background task, the filters of the
    /// blocks whose filter is missing or stale, newest first. One build at
    /// a time per process.
    fn build_missing_filters(self: &Arc<Self>, pool: PgPool) {
        {
            let mut building = lock(&self.building);
            if *building {
                return;
            }
            *building = true;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let next = {
                    let view = lock(&me.view);
                    view.block_days()
                        .into_iter()
                        .find(|(b, days)| view.filter_for(*b, days).is_none())
                };
                let Some((block, days)) = next else { break };
                match build_filter(&pool, &days).await {
                    Ok(filter) => {
                        lock(&me.view).blocks.insert(
                            block,
                            Block {
                                days,
                                filter: Arc::new(filter),
                            },
                        );
                    }
                    Err(e) => {
                        tracing::warn!(block, error = %e, "dedup filter build failed; ids of those days are looked up in PostgreSQL");
                        break;
                    }
                }
            }
            *lock(&me.building) = false;
        });
    }

    /// Sealed days with a usable filter, and sealed days in all (for
    /// metrics and tests).
    pub(crate) fn filter_coverage(&self) -> (usize, usize) {
        let view = lock(&self.view);
        let covered = view
            .block_days()
            .into_iter()
            .filter(|(b, days)| view.filter_for(*b, days).is_some())
            .map(|(_, days)| days.len())
            .sum();
        (covered, view.days.len())
    }

    /// Forgets a partition this process thought existed (it was dropped).
    pub(crate) fn forget(&self, day: NaiveDate) {
        lock(&self.partitions).remove(&day);
        let mut view = lock(&self.view);
        let days = view.days.iter().copied().filter(|d| *d != day).collect();
        view.set_days(days);
    }
}

/// Creates the claim partition of `day` unless it exists.
pub(crate) async fn create_partition(pool: &PgPool, day: NaiveDate) -> Result<(), StoreError> {
    Ok(CLAIMS.create(pool, day).await?)
}

/// Moves the watermark to `day`, waiting for every claim still in flight on
/// the days it seals. A no-op when it is already there or later. Returns
/// the watermark after.
async fn seal_before(pool: &PgPool, day: NaiveDate) -> Result<NaiveDate, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let current: NaiveDate =
        sqlx::query_scalar("SELECT sealed_before FROM claim_watermark FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    if current >= day {
        tx.commit().await?;
        return Ok(current);
    }
    let first = day_number(current).max(day_number(day) - SEAL_LOOKBACK_DAYS);
    sqlx::query("SELECT pg_advisory_xact_lock($1, g) FROM generate_series($2::int4, $3::int4) g")
        .bind(CLAIM_DAY)
        .bind(first)
        .bind(day_number(day) - 1)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE claim_watermark SET sealed_before = $1")
        .bind(day)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(%day, "sealed the dedup records of the days before");
    Ok(day)
}

async fn build_filter(pool: &PgPool, days: &[NaiveDate]) -> Result<BinaryFuse16, StoreError> {
    use futures::TryStreamExt;
    let mut keys: Vec<u64> = Vec::new();
    let mut rows = sqlx::query_as::<_, (i64, Uuid)>(
        "SELECT project_id, event_id FROM event_ids WHERE day = ANY($1)",
    )
    .bind(days)
    .fetch(pool);
    while let Some((project, id)) = rows.try_next().await? {
        keys.push(key(project, id));
    }
    drop(rows);
    let what = format!(
        "dedup filter of {} days from {:?}",
        days.len(),
        days.first()
    );
    tokio::task::spawn_blocking(move || {
        keys.sort_unstable();
        keys.dedup();
        BinaryFuse16::try_from(&keys).map_err(|reason| StoreError::Filter { what, reason })
    })
    .await
    .map_err(StoreError::Task)?
}

/// Bytes of every claim partition, indexes included.
pub(crate) async fn bytes(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::int8
           FROM pg_partition_tree('event_ids')",
    )
    .fetch_one(pool)
    .await
}

/// Ids remembered per project.
pub(crate) async fn per_project(pool: &PgPool) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT project_id, count(*) FROM event_ids GROUP BY project_id")
        .fetch_all(pool)
        .await
}

/// Drops the claim partitions of days before `keep_from` (whole days only,
/// so every id is kept at least the dedup window). Each is detached
/// concurrently (no lock that stops claims on other days), then dropped.
/// `DETACH … CONCURRENTLY` is two transactions: a process that died
/// between them left the partition pending detach, which is finished
/// (`FINALIZE`) instead; one that died between the detach and the drop
/// left a detached table, which is dropped. Returns the rows they held.
pub(crate) async fn drop_days_before(
    pool: &PgPool,
    claims: &Claims,
    keep_from: NaiveDate,
) -> Result<u64, StoreError> {
    let mut conn = pool.acquire().await?;
    let old: Vec<NaiveDate> = CLAIMS
        .days(&mut conn)
        .await?
        .into_iter()
        .filter(|d| *d < keep_from)
        .collect();
    let pending: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'event_ids'::regclass AND i.inhdetachpending",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut rows = 0u64;
    for day in old {
        let name = CLAIMS.name(day);
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {name}"))
            .fetch_one(&mut *conn)
            .await?;
        // Not visible to probes once detached; those days are past the
        // window, so no probe needs them.
        claims.forget(day);
        let how = if pending.contains(&name) {
            tracing::warn!(partition = name, "finishing a detach a crash interrupted");
            "FINALIZE"
        } else {
            "CONCURRENTLY"
        };
        sqlx::query(&format!(
            "ALTER TABLE event_ids DETACH PARTITION {name} {how}"
        ))
        .execute(&mut *conn)
        .await?;
        sqlx::query(&format!("DROP TABLE {name}"))
            .execute(&mut *conn)
            .await?;
        rows += n as u64;
    }
    // Detached but not dropped: named as a claim partition of an old day,
    // no longer a partition.
    let loose: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class
          WHERE relkind = 'r' AND NOT relispartition AND relname LIKE 'event\\_ids\\_p%'
            AND relnamespace = current_schema()::regnamespace",
    )
    .fetch_all(&mut *conn)
    .await?;
    for name in loose {
        if CLAIMS.parse(&name).is_some_and(|d| d < keep_from) {
            tracing::warn!(
                partition = name,
                "dropping a detached dedup partition a crash left"
            );
            sqlx::query(&format!("DROP TABLE IF EXISTS {name}"))
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_project_and_id_and_filters_have_no_false_negatives() {
        let ids: Vec<Uuid> = (0..50_000u128)
            .map(|i| Uuid::from_u128(i * 7 + 1))
            .collect();
        let mut keys: Vec<u64> = ids.iter().map(|i| key(1, *i)).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), ids.len(), "sequential ids must not collide");
        assert_ne!(key(1, ids[0]), key(2, ids[0]));
        let f = BinaryFuse16::try_from(&keys).unwrap();
        assert!(ids.iter().all(|i| f.contains(&key(1, *i))));
        let false_positives = (0..100_000u128)
            .map(|i| Uuid::from_u128(u128::MAX - i))
            .filter(|i| f.contains(&key(1, *i)))
            .count();
        assert!(false_positives < 20, "{false_positives} false positives");
    }
}
