//! The ingest write: one transaction per request, in bulk.
//!
//! 1. Claim the batch's event_ids in `event_ids` (`claims.rs`): the ids
//!    returned are new, every other id is a duplicate, whatever its
//!    timestamp and whichever tier its first copy lives in.
//! 2. Insert exactly the new events into the day-partitioned `events`, with
//!    one binary COPY (see `copy.rs`).
//! 3. Lower each user's `first_ts` where this batch holds an earlier event
//!    (`first_seen.rs`; skipped for users this process knows to have an
//!    earlier-or-equal one).
//!
//! Before all that, a batch with events in closed days (late events) holds
//! those days' archive lock shared (`locks::share_closed_days`); what it
//! adds to a sealed day is recorded beside the day's rollup (`seal.rs`).
//!
//! Concurrency: rows are locked in one global order — event_ids sorted,
//! then users sorted — so overlapping batches wait for each other instead of
//! deadlocking, and `ON CONFLICT` waits for an in-flight claim to commit or
//! roll back before deciding. Deadlock, serialisation and "partition was
//! dropped under us" errors are retried here and never reach the client.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use strata_model::{ProjectId, ValidEvent};
use uuid::Uuid;

use crate::events::claims::Claimed;
use crate::events::first_seen;
use crate::{Store, StoreError};

const MAX_ATTEMPTS: u32 = 6;

/// What one insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InsertOutcome {
    /// Events stored by this call.
    pub stored: u64,
    /// Events whose event_id the project already had.
    pub duplicates: u64,
}

impl Store {
    /// Stores `events` (each event_id at most once in the slice) for
    /// `project` in one transaction. Returns after commit.
    pub async fn insert_events(
        &self,
        project: ProjectId,
        events: &[ValidEvent],
    ) -> Result<InsertOutcome, StoreError> {
        if events.is_empty() {
            return Ok(InsertOutcome::default());
        }
        Ok(self.insert_recorded(project, events, None).await?.0)
    }

    /// [`Self::insert_events`], and in the same transaction the records of
    /// the queued parts `records` covers (`queue.rs`), whose outcomes are
    /// returned in its order.
    pub(crate) async fn insert_recorded(
        &self,
        project: ProjectId,
        events: &[ValidEvent],
        records: Option<&crate::queue::Records<'_>>,
    ) -> Result<(InsertOutcome, Vec<crate::queue::PartOutcome>), StoreError> {
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
                Ok(()) => self.try_insert(project, &order, &days, records).await,
                Err(e) => Err(e),
            };
            match attempt_result {
                Ok(Claimed::New(done)) => return Ok(done),
                Ok(Claimed::Prepare(day)) if attempt < MAX_ATTEMPTS => {
                    // Not a failure: a new claim day (or this process's
                    // first), which is readied once and the batch retried.
                    self.claims.prepare(&self.pool, day).await?;
                }
                Ok(Claimed::Prepare(day)) => {
                    return Err(StoreError::Unexpected(format!(
                        "the dedup records' day {day} kept changing under the insert"
                    )));
                }
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
        records: Option<&crate::queue::Records<'_>>,
    ) -> Result<Claimed<(InsertOutcome, Vec<crate::queue::PartOutcome>)>, sqlx::Error> {
        let ids: Vec<Uuid> = sorted.iter().map(|e| e.event_id.as_uuid()).collect();
        let mut tx = self.pool.begin().await?;
        // Late events: wait while the archiver commits one of their days.
        let closed = crate::shared::locks::share_closed_days(&mut tx, days, Utc::now()).await?;

        let (new_ids, epoch) = match self.claims.claim(&mut tx, project, &ids).await? {
            Claimed::New(claimed) => claimed,
            Claimed::Prepare(day) => return Ok(Claimed::Prepare(day)),
        };
        let mut fresh: Vec<&ValidEvent> = sorted
            .iter()
            .copied()
            .filter(|e| new_ids.contains(&e.event_id.as_uuid()))
            .collect();
        // Queued events of a user whose erasure finished after they were
        // accepted are erased too (claimed, never stored). The users lock
        // the claim took shared orders this read after every erasure that
        // committed before it.
        if let Some(r) = records {
            let erased = r.erased_after_queueing(&mut tx, project, &fresh).await?;
            if !erased.is_empty() {
                fresh.retain(|e| !erased.contains(&e.event_id.as_uuid()));
            }
        }
        let firsts = first_seen::firsts(&fresh);
        if !fresh.is_empty() {
            insert_rows(&mut tx, project, &fresh).await?;
            crate::summaries::seal::record_late(&mut tx, project, &closed, &fresh).await?;
            let unsettled = self.first_seen.unsettled(project, epoch, &firsts);
            first_seen::lower(&mut tx, project, &unsettled).await?;
        }
        let parts = match records {
            Some(r) => r.write(&mut tx, project, &new_ids).await?,
            None => Vec::new(),
        };
        tx.commit().await?;
        self.first_seen.committed(project, epoch, &firsts);
        let outcome = InsertOutcome {
            stored: fresh.len() as u64,
            duplicates: (sorted.len() - fresh.len()) as u64,
        };
        Ok(Claimed::New((outcome, parts)))
    }
}

async fn insert_rows(
    tx: &mut sqlx::PgConnection,
    project: ProjectId,
    events: &[&ValidEvent],
) -> Result<(), sqlx::Error> {
    let mut buf = Vec::with_capacity(events.len() * 320);
    crate::shared::copy::encode_events(project.0, events.iter().copied(), &mut buf);
    let mut copy = tx.copy_in_raw(crate::shared::copy::COPY_EVENTS).await?;
    copy.send(buf).await?;
    copy.finish().await?;
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
