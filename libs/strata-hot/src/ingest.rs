//! The ingest write: one transaction per request, in bulk.
//!
//! 1. Claim the batch's event_ids in `event_ids` (`ON CONFLICT DO NOTHING
//!    RETURNING`): the ids returned are new, every other id is a duplicate,
//!    whatever its timestamp and whichever tier its first copy lives in.
//! 2. Insert exactly the new events into the day-partitioned `events`, with
//!    one binary COPY (see `copy.rs`).
//! 3. Lower each user's `first_ts` where this batch holds an earlier event.
//!
//! Before all that, a batch with events in closed days (late events) holds
//! those days' archive lock shared (`chunks::share_closed_days`).
//!
//! Concurrency: rows are locked in one global order — event_ids sorted,
//! then users sorted — so overlapping batches wait for each other instead of
//! deadlocking, and `ON CONFLICT` waits for an in-flight claim to commit or
//! roll back before deciding. Deadlock, serialisation and "partition was
//! dropped under us" errors are retried here and never reach the client.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use strata_model::{ProjectId, ValidEvent};
use uuid::Uuid;

use crate::{HotError, HotStore};

const MAX_ATTEMPTS: u32 = 6;

/// What one insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InsertOutcome {
    /// Events stored by this call.
    pub stored: u64,
    /// Events whose event_id the project already had.
    pub duplicates: u64,
}

impl HotStore {
    /// Stores `events` (each event_id at most once in the slice) for
    /// `project` in one transaction. Returns after commit.
    pub async fn insert_events(
        &self,
        project: ProjectId,
        events: &[ValidEvent],
    ) -> Result<InsertOutcome, HotError> {
        if events.is_empty() {
            return Ok(InsertOutcome::default());
        }
        let mut order: Vec<&ValidEvent> = events.iter().collect();
        order.sort_unstable_by_key(|e| e.event_id);
        let days: BTreeSet<_> = events
            .iter()
            .map(|e| e.timestamp.as_datetime().date_naive())
            .collect();

        let mut attempt = 0;
        loop {
            attempt += 1;
            let attempt_result = match self.ensure_days(&days).await {
                Ok(()) => self.try_insert(project, &order, &days).await,
                Err(e) => Err(e),
            };
            match attempt_result {
                Ok(outcome) => return Ok(outcome),
                Err(e) if attempt < MAX_ATTEMPTS && is_transient(&e) => {
                    if is_missing_partition(&e) {
                        self.forget_days(&days);
                    }
                    tracing::debug!(attempt, error = %e, "retrying ingest transaction");
                    tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn try_insert(
        &self,
        project: ProjectId,
        sorted: &[&ValidEvent],
        days: &BTreeSet<chrono::NaiveDate>,
    ) -> Result<InsertOutcome, sqlx::Error> {
        let ids: Vec<Uuid> = sorted.iter().map(|e| e.event_id.as_uuid()).collect();
        let mut tx = self.pool.begin().await?;
        // Late events: wait while the archiver commits one of their days.
        crate::chunks::share_closed_days(&mut tx, days, Utc::now()).await?;

        let new_ids: HashSet<Uuid> = sqlx::query_scalar(
            "INSERT INTO event_ids (project_id, event_id, received_at)
             SELECT $1, id, now() FROM unnest($2::uuid[]) AS t(id) ORDER BY id
             ON CONFLICT DO NOTHING
             RETURNING event_id",
        )
        .bind(project.0)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();

        let fresh: Vec<&ValidEvent> = sorted
            .iter()
            .copied()
            .filter(|e| new_ids.contains(&e.event_id.as_uuid()))
            .collect();
        if !fresh.is_empty() {
            insert_rows(&mut tx, project, &fresh).await?;
            lower_first_seen(&mut tx, project, &fresh).await?;
        }
        tx.commit().await?;
        Ok(InsertOutcome {
            stored: fresh.len() as u64,
            duplicates: (sorted.len() - fresh.len()) as u64,
        })
    }
}

async fn insert_rows(
    tx: &mut sqlx::PgConnection,
    project: ProjectId,
    events: &[&ValidEvent],
) -> Result<(), sqlx::Error> {
    let mut buf = Vec::with_capacity(events.len() * 320);
    crate::copy::encode_events(project.0, events.iter().copied(), &mut buf);
    let mut copy = tx.copy_in_raw(crate::copy::COPY_EVENTS).await?;
    copy.send(buf).await?;
    copy.finish().await?;
    Ok(())
}

/// Upserts the batch's earliest timestamp per user. Users already known with
/// an earlier-or-equal `first_ts` are filtered out by a plain read first, so
/// the common case (a returning user) takes no row lock; `first_ts` only ever
/// decreases, so that filter stays right under concurrency.
async fn lower_first_seen(
    tx: &mut sqlx::PgConnection,
    project: ProjectId,
    events: &[&ValidEvent],
) -> Result<(), sqlx::Error> {
    let mut first: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for e in events {
        let ts = e.timestamp.as_datetime();
        first
            .entry(e.user_id.as_str())
            .and_modify(|t| *t = (*t).min(ts))
            .or_insert(ts);
    }
    let (users, times): (Vec<&str>, Vec<DateTime<Utc>>) = first.into_iter().unzip();
    sqlx::query(
        "INSERT INTO user_first_seen AS f (project_id, user_id, first_ts)
         SELECT $1, n.u, n.t
           FROM unnest($2::text[], $3::timestamptz[]) AS n(u, t)
          WHERE NOT EXISTS (SELECT 1 FROM user_first_seen o
                             WHERE o.project_id = $1 AND o.user_id = n.u AND o.first_ts <= n.t)
          ORDER BY n.u
         ON CONFLICT (project_id, user_id)
         DO UPDATE SET first_ts = EXCLUDED.first_ts WHERE f.first_ts > EXCLUDED.first_ts",
    )
    .bind(project.0)
    .bind(&users)
    .bind(&times)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code().map(|c| c.into_owned()))
}

fn is_missing_partition(e: &sqlx::Error) -> bool {
    // 23514 check_violation: "no partition of relation "events" found for row".
    sqlstate(e).as_deref() == Some("23514")
        && e.as_database_error()
            .is_some_and(|d| d.message().contains("no partition"))
}

fn is_transient(e: &sqlx::Error) -> bool {
    // 40001 serialization_failure, 40P01 deadlock_detected.
    matches!(sqlstate(e).as_deref(), Some("40001" | "40P01")) || is_missing_partition(e)
}
