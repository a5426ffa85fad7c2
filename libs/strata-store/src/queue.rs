//! Queued ingest (ADR-034): the worker's grouped transaction and the
//! records that make a batch's status exact.
//!
//! A batch accepted in queue mode travels as one or more *parts* (JetStream
//! messages). The worker applies many parts of one project in one ingest
//! transaction ([`Store::apply_queued`]); that transaction also writes
//! one `ingest_batches` row per part with the part's counts. A part
//! delivered again (the worker died after the commit, before its ack)
//! finds its events claimed and its row present: nothing is stored twice,
//! and the counts stay those of the first application.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use strata_model::{ProjectId, ValidEvent};
use uuid::Uuid;

use crate::{Store, StoreError};

/// One part of a batch accepted in queue mode, as the worker applies it.
#[derive(Debug, Clone)]
pub struct QueuedPart {
    pub batch_id: Uuid,
    /// 0-based; a batch has `parts` parts.
    pub part: u32,
    pub parts: u32,
    /// When the api accepted the batch (the publish).
    pub queued_at: DateTime<Utc>,
    /// Duplicates the api counted before publishing (repeats inside the
    /// request), added to this part's duplicates.
    pub counted_duplicates: u64,
    /// Distinct event ids within the part.
    pub events: Vec<ValidEvent>,
}

/// What applying one part did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartOutcome {
    pub accepted: u64,
    pub duplicates: u64,
    /// The part had been applied before (a redelivery): nothing of it was
    /// stored now, and its recorded counts are the first application's.
    pub already_applied: bool,
}

/// A queued batch's state, from its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRecord {
    pub project: ProjectId,
    pub parts: u32,
    /// Parts with a record.
    pub applied_parts: u32,
    pub accepted: u64,
    pub duplicates: u64,
    pub applied_at: Option<DateTime<Utc>>,
}

impl BatchRecord {
    pub fn is_applied(&self) -> bool {
        self.applied_parts >= self.parts
    }
}

/// The parts of one grouped transaction, and which part owns each event
/// that the transaction inserts (an id that two parts of the group hold
/// belongs to the first; the later copy is that part's duplicate).
#[derive(Debug)]
pub(crate) struct Records<'a> {
    parts: &'a [QueuedPart],
    owner: HashMap<Uuid, usize>,
}

impl<'a> Records<'a> {
    /// The parts, and the distinct events of the group in their order.
    fn new(parts: &'a [QueuedPart]) -> (Self, Vec<ValidEvent>) {
        let mut owner = HashMap::new();
        let mut events = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            for e in &p.events {
                if let Entry::Vacant(v) = owner.entry(e.event_id.as_uuid()) {
                    v.insert(i);
                    events.push(e.clone());
                }
            }
        }
        (Self { parts, owner }, events)
    }

    /// The ids of `events` whose user's erasure finished after the event's
    /// part was accepted (ADR-037): everything accepted before an erasure
    /// finished is erased, whenever a worker applies it. One indexed read
    /// that finds nothing unless such an erasure exists.
    pub(crate) async fn erased_after_queueing(
        &self,
        tx: &mut sqlx::PgConnection,
        project: ProjectId,
        events: &[&ValidEvent],
    ) -> Result<HashSet<Uuid>, sqlx::Error> {
        let Some(oldest) = self.parts.iter().map(|p| p.queued_at).min() else {
            return Ok(HashSet::new());
        };
        let erasures: Vec<(String, DateTime<Utc>, Vec<u8>)> = sqlx::query_as(
            "SELECT e.user_hash, e.finished_at, p.erasure_key
               FROM erasures e JOIN projects p ON p.id = e.project_id
              WHERE e.project_id = $1 AND e.finished_at > $2",
        )
        .bind(project.0)
        .bind(oldest)
        .fetch_all(&mut *tx)
        .await?;
        let Some(key) = erasures.first().map(|e| e.2.clone()) else {
            return Ok(HashSet::new());
        };
        let finished: HashMap<String, DateTime<Utc>> =
            erasures.into_iter().map(|(h, at, _)| (h, at)).collect();
        let mut hashes: HashMap<&str, Option<DateTime<Utc>>> = HashMap::new();
        let mut out = HashSet::new();
        for e in events {
            let id = e.event_id.as_uuid();
            let erased_at = *hashes.entry(e.user_id.as_str()).or_insert_with(|| {
                finished
                    .get(&strata_model::user_hash(&key, e.user_id.as_str()))
                    .copied()
            });
            let queued_at = self.owner.get(&id).map(|&i| self.parts[i].queued_at);
            if let (Some(erased), Some(queued)) = (erased_at, queued_at)
                && queued < erased
            {
                out.insert(id);
            }
        }
        if !out.is_empty() {
            tracing::info!(
                project = project.0,
                events = out.len(),
                "queued events of users erased after they were accepted are not stored"
            );
        }
        Ok(out)
    }

    /// Writes one row per part, counting its events that `new_ids` holds
    /// as accepted and the rest (repeats of an earlier part's included) as
    /// duplicates; a part that already has a row keeps it.
    pub(crate) async fn write(
        &self,
        tx: &mut sqlx::PgConnection,
        project: ProjectId,
        new_ids: &HashSet<Uuid>,
    ) -> Result<Vec<PartOutcome>, sqlx::Error> {
        let mut accepted = vec![0u64; self.parts.len()];
        for id in new_ids {
            if let Some(&i) = self.owner.get(id) {
                accepted[i] += 1;
            }
        }
        let mut out: Vec<PartOutcome> = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| PartOutcome {
                accepted: accepted[i],
                duplicates: p.events.len() as u64 - accepted[i] + p.counted_duplicates,
                already_applied: false,
            })
            .collect();
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let ids: Vec<Uuid> = self.parts.iter().map(|p| p.batch_id).collect();
        let part: Vec<i64> = self.parts.iter().map(|p| i64::from(p.part)).collect();
        let parts: Vec<i64> = self.parts.iter().map(|p| i64::from(p.parts)).collect();
        let accepted: Vec<i64> = out.iter().map(|o| count(o.accepted)).collect();
        let duplicates: Vec<i64> = out.iter().map(|o| count(o.duplicates)).collect();
        let queued: Vec<DateTime<Utc>> = self.parts.iter().map(|p| p.queued_at).collect();
        let written: Vec<(Uuid, i32)> = sqlx::query_as(
            "INSERT INTO ingest_batches
                    (batch_id, part, parts, project_id, accepted, duplicates, queued_at)
             SELECT b, p::int4, n::int4, $4, a, d, q
               FROM unnest($1::uuid[], $2::int8[], $3::int8[], $5::int8[], $6::int8[],
                           $7::timestamptz[]) AS t(b, p, n, a, d, q)
             ON CONFLICT (batch_id, part) DO NOTHING
             RETURNING batch_id, part",
        )
        .bind(&ids)
        .bind(&part)
        .bind(&parts)
        .bind(project.0)
        .bind(&accepted)
        .bind(&duplicates)
        .bind(&queued)
        .fetch_all(&mut *tx)
        .await?;
        let written: HashSet<(Uuid, i32)> = written.into_iter().collect();
        for (o, p) in out.iter_mut().zip(self.parts) {
            let key = (p.batch_id, i32::try_from(p.part).unwrap_or(i32::MAX));
            if !written.contains(&key) {
                // Applied before: its events were all claimed then.
                *o = PartOutcome {
                    accepted: 0,
                    duplicates: 0,
                    already_applied: true,
                };
            }
        }
        Ok(out)
    }
}

impl Store {
    /// Applies `parts` (all of `project`) in one ingest transaction, with
    /// the same exact dedup and first-seen upkeep as direct ingest, and
    /// records each part (see the module docs). Outcomes are in the order
    /// of `parts`.
    pub async fn apply_queued(
        &self,
        project: ProjectId,
        parts: &[QueuedPart],
    ) -> Result<Vec<PartOutcome>, StoreError> {
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let (records, events) = Records::new(parts);
        if events.is_empty() {
            // Nothing to claim: the records alone.
            let mut tx = self.pool.begin().await?;
            let out = records.write(&mut tx, project, &HashSet::new()).await?;
            tx.commit().await?;
            return Ok(out);
        }
        Ok(self
            .insert_recorded(project, &events, Some(&records))
            .await?
            .1)
    }

    /// The records of `batch_id` (`None`: no part applied, or pruned).
    pub async fn batch_record(&self, batch_id: Uuid) -> Result<Option<BatchRecord>, StoreError> {
        type Row = (i64, i32, i64, i64, i64, Option<DateTime<Utc>>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT min(project_id), max(parts), count(*), sum(accepted)::int8,
                    sum(duplicates)::int8, max(applied_at)
               FROM ingest_batches WHERE batch_id = $1 HAVING count(*) > 0",
        )
        .bind(batch_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(project, parts, applied, accepted, duplicates, at)| BatchRecord {
                project: ProjectId(project),
                parts: u32::try_from(parts).unwrap_or(0),
                applied_parts: u32::try_from(applied).unwrap_or(0),
                accepted: u64::try_from(accepted).unwrap_or(0),
                duplicates: u64::try_from(duplicates).unwrap_or(0),
                applied_at: at,
            },
        ))
    }

    /// Whether the database takes writes now: a write transaction (a
    /// temporary table, rolled back) succeeds. The queue worker asks before
    /// it dead-letters a message, so that no failure of the database as a
    /// whole (read-only, out of space) is blamed on a message.
    pub async fn takes_writes(&self) -> bool {
        let probe = async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("CREATE TEMP TABLE strata_write_probe (x int) ON COMMIT DROP")
                .execute(&mut *tx)
                .await?;
            tx.rollback().await
        };
        match probe.await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "the database does not take writes");
                false
            }
        }
    }

    /// Deletes batch records applied before `before`; returns how many.
    pub async fn prune_batch_records(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM ingest_batches WHERE applied_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}
