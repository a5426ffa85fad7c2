//! Queue mode (ADR-034): the api's side. `POST /v1/events` publishes
//! (see `ingest.rs`); here are a batch's status, the dead letters, and the
//! memory of recent authentications that keeps ingest up while PostgreSQL
//! is down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use strata_model::{ErrorCode, ErrorKind, KeyHash, Scope, parse_bounded};
use strata_queue::{DeadLetter, Queue};
use strata_store::AuthenticatedKey;
use uuid::Uuid;

use crate::params::{QueryParams, query_params};
use crate::{ApiError, AppState, Authenticated};

/// Keys PostgreSQL accepted, by hash, with when.
type Recent = HashMap<[u8; 32], (AuthenticatedKey, Instant)>;

/// The queue of a server in queue mode, and its recent authentications.
#[derive(Debug, Clone)]
pub struct QueueState {
    pub queue: Queue,
    /// How long a remembered key is accepted while PostgreSQL is down.
    grace: Duration,
    recent: Arc<Mutex<Recent>>,
}

impl QueueState {
    pub fn new(queue: Queue, grace: Duration) -> Self {
        Self {
            queue,
            grace,
            recent: Arc::default(),
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes what PostgreSQL answered for `hash` (a revoked or unknown key
    /// is forgotten at once).
    pub(crate) fn remember(&self, hash: &KeyHash, key: Option<&AuthenticatedKey>) {
        if self.grace.is_zero() {
            return;
        }
        let mut recent = self.recent();
        match key {
            Some(k) => {
                // Bounded: a flood of distinct keys cannot grow it past this.
                if recent.len() >= 10_000 {
                    recent.retain(|_, (_, at)| at.elapsed() < self.grace);
                }
                if recent.len() < 10_000 {
                    recent.insert(hash.0, (k.clone(), Instant::now()));
                }
            }
            None => {
                recent.remove(&hash.0);
            }
        }
    }

    /// The key PostgreSQL accepted for `hash` within the grace period.
    pub(crate) fn recall(&self, hash: &KeyHash) -> Option<AuthenticatedKey> {
        let recent = self.recent();
        let (key, at) = recent.get(&hash.0)?;
        (at.elapsed() < self.grace).then(|| key.clone())
    }
}

fn queue_of(state: &AppState) -> Result<&QueueState, ApiError> {
    state.queue.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            ErrorCode::QueueNotConfigured,
            "this server ingests directly (STRATA_INGEST_QUEUE is not set)",
        )
    })
}

/// A queued batch's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchStatus {
    pub batch_id: Uuid,
    /// `queued` (waiting for a worker, or partly applied), `applied`
    /// (committed: its events count in stats), `partially_applied` (some
    /// parts committed, the others among the dead letters: `reason`) or
    /// `failed` (no part committed, one among the dead letters).
    #[schema(example = "applied")]
    pub status: &'static str,
    /// Why a part became a dead letter (`partially_applied`, `failed`);
    /// an admin key lists and replays them under
    /// `/v1/admin/ingest/dead-letters`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Messages the batch travels as, and how many a worker committed.
    pub parts: u32,
    pub parts_applied: u32,
    /// Events stored, and events that were already stored (or repeated
    /// in the request), over the applied parts.
    pub accepted: u64,
    pub duplicates: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<DateTime<Utc>>,
}

/// What a queue-mode `POST /v1/events` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueuedResponse {
    /// Valid events stored in the queue (distinct event ids).
    pub queued: u64,
    /// Repeats of an event_id inside the request (counted once).
    pub duplicates: u64,
    pub rejected: Vec<strata_model::Rejection>,
    /// For `GET /v1/ingest/batches/{batch_id}`.
    pub batch_id: Uuid,
}

/// Whether a batch accepted in queue mode is still queued or applied, and
/// what applying it did. An ingest key of the batch's project.
#[utoipa::path(get, path = "/v1/ingest/batches/{batch_id}", tag = "ingest",
    security(("bearer" = []), ("api_key" = [])),
    params(("batch_id" = String, Path, format = Uuid, description = "The batch_id a 202 from POST /v1/events gave")),
    responses(
        (status = 200, description = "The batch's state", body = BatchStatus),
        (status = 400, description = "Not a batch id", body = crate::error::ErrorBody),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody),
        (status = 403, description = "The key lacks the ingest scope", body = crate::error::ErrorBody),
        (status = 404, description = "No such batch of this project (or its record expired), or queue mode is off", body = crate::error::ErrorBody),
        (status = 503, description = "Neither the queue nor PostgreSQL can answer (Retry-After)", body = crate::error::ErrorBody),
    ))]
pub async fn batch_status(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<BatchStatus>, ApiError> {
    let key = auth.require(Scope::Ingest)?;
    let q = queue_of(&state)?;
    let batch_id = Uuid::parse_str(&id).map_err(|_| {
        ApiError::invalid(
            ErrorCode::InvalidBatchId,
            format!("{id:?} is not a batch id"),
        )
    })?;
    let project = key.project_id;
    let not_found = || {
        ApiError::new(
            ErrorKind::NotFound,
            ErrorCode::NoSuchBatch,
            format!("no batch {batch_id} of this project (or its record expired)"),
        )
    };
    let view = |r: strata_store::BatchRecord, queued: bool| BatchStatus {
        batch_id,
        status: if queued { "queued" } else { "applied" },
        parts: r.parts,
        parts_applied: r.applied_parts,
        accepted: r.accepted,
        duplicates: r.duplicates,
        applied_at: (!queued).then_some(r.applied_at).flatten(),
        reason: None,
    };
    let queued_view = || BatchStatus {
        batch_id,
        status: "queued",
        parts: 0,
        parts_applied: 0,
        accepted: 0,
        duplicates: 0,
        applied_at: None,
        reason: None,
    };
    let record = match state.hot.batch_record(batch_id).await {
        Ok(r) => r.filter(|r| r.project == project),
        Err(e) if e.is_unavailable() => {
            // PostgreSQL down: the queue alone can say "queued".
            return if q.queue.is_queued(project, batch_id).await? {
                Ok(Json(queued_view()))
            } else {
                Err(e.into())
            };
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(r) = record
        && r.is_applied()
    {
        return Ok(Json(view(r, false)));
    }
    if q.queue.is_queued(project, batch_id).await? {
        return Ok(Json(match record {
            Some(r) => view(r, true),
            None => queued_view(),
        }));
    }
    // Applied between the two reads, or unknown.
    match state
        .hot
        .batch_record(batch_id)
        .await?
        .filter(|r| r.project == project && r.is_applied())
    {
        Some(r) => Ok(Json(view(r, false))),
        // Nothing waits, and not every part was applied: a part among the
        // dead letters says why.
        _ => match q.queue.dead_letter_of(project, batch_id).await? {
            Some(dead) => {
                let applied = record.filter(|r| r.applied_parts > 0);
                Ok(Json(BatchStatus {
                    status: if applied.is_some() {
                        "partially_applied"
                    } else {
                        "failed"
                    },
                    reason: Some(dead.reason),
                    ..applied.map_or_else(queued_view, |r| view(r, true))
                }))
            }
            None => Err(not_found()),
        },
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetters {
    pub dead_letters: Vec<DeadLetter>,
    /// Pass as `after` for the next page (absent on the last page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

/// Queued messages of the key's project that a worker could not apply
/// (after `STRATA_WORKER_DEAD_LETTER_AFTER` deliveries), oldest first.
#[utoipa::path(get, path = "/v1/admin/ingest/dead-letters", tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("after" = Option<u32>, Query, description = "List from after this sequence (default: the start)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "At most this many, 1-500 (default 100)"),
    ),
    responses(
        (status = 200, description = "Dead letters", body = DeadLetters),
        (status = 400, description = "Bad request", body = crate::error::ErrorBody),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody),
        (status = 403, description = "Not a project key with the admin scope", body = crate::error::ErrorBody),
        (status = 404, description = "Queue mode is off", body = crate::error::ErrorBody),
        (status = 503, description = "The queue is unavailable (Retry-After)", body = crate::error::ErrorBody),
    ))]
pub async fn dead_letters(
    State(state): State<AppState>,
    auth: Authenticated,
    raw: QueryParams,
) -> Result<Json<DeadLetters>, ApiError> {
    let key = auth.require(Scope::Admin)?;
    let q = queue_of(&state)?;
    let p = query_params(raw, &["after", "limit"])?;
    let limit = parse_bounded("limit", p.get("limit").map(String::as_str), 100, 1, 500)?;
    let after = parse_bounded("after", p.get("after").map(String::as_str), 0, 0, u32::MAX)?;
    let mut list = q
        .queue
        .dead_letters(key.project_id, u64::from(after) + 1, limit as usize + 1)
        .await?;
    let next_after = if list.len() > limit as usize {
        list.truncate(limit as usize);
        list.last().map(|d| d.seq)
    } else {
        None
    };
    Ok(Json(DeadLetters {
        dead_letters: list,
        next_after,
    }))
}

/// Puts a dead letter back on the queue (a worker applies it again; if it
/// fails again it returns to the dead letters).
#[utoipa::path(post, path = "/v1/admin/ingest/dead-letters/{seq}/replay", tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    params(("seq" = u64, Path, minimum = 1, description = "The dead letter's seq")),
    responses(
        (status = 202, description = "Queued again", body = DeadLetter),
        (status = 400, description = "Not a sequence number", body = crate::error::ErrorBody),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody),
        (status = 403, description = "Not a project key with the admin scope", body = crate::error::ErrorBody),
        (status = 404, description = "No such dead letter of this project, or queue mode is off", body = crate::error::ErrorBody),
        (status = 503, description = "The queue is unavailable or full (Retry-After)", body = crate::error::ErrorBody),
    ))]
pub async fn replay(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(seq): Path<String>,
) -> Result<(StatusCode, Json<DeadLetter>), ApiError> {
    let key = auth.require(Scope::Admin)?;
    let q = queue_of(&state)?;
    let seq: u64 = seq.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
        ApiError::invalid(
            ErrorCode::InvalidSeq,
            format!("{seq:?} is not a sequence number"),
        )
    })?;
    let d = q.queue.replay(key.project_id, seq).await?;
    tracing::info!(project = %key.project, seq, batch = %d.batch_id, "dead letter replayed");
    Ok((StatusCode::ACCEPTED, Json(d)))
}
