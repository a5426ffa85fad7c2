//! `POST /v1/events`: the ingest contract of docs/CONTRACT.md §2.

use std::io::Read;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use flate2::read::MultiGzDecoder;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use strata_model::{
    ErrorCode, ErrorKind, IngestLimits, ParsedBatch, Rejection, Scope, parse_batch,
};
use utoipa::ToSchema;

use crate::{ApiError, AppState, Authenticated};

/// The answer to every accepted request, even one whose events were all
/// rejected: `accepted + duplicates + rejected.len()` = events sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResponse {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: Vec<Rejection>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(()); // JSON is the only thing this route takes.
    };
    let ct = ct.to_str().unwrap_or_default();
    let essence = ct.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json")
    {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            ErrorCode::UnsupportedContentType,
            format!("Content-Type {ct:?} is not supported; send application/json"),
        ))
    }
}

fn content_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let Some(v) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let v = v.to_str().unwrap_or_default().trim();
    match v.to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        _ => Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            ErrorCode::UnsupportedContentEncoding,
            format!("Content-Encoding {v:?} is not supported; send gzip or none"),
        )),
    }
}

fn too_large(limit: usize, what: &str) -> ApiError {
    ApiError::new(
        ErrorKind::TooLarge,
        ErrorCode::BodyTooLarge,
        format!("request body {what} exceeds the limit of {limit} bytes"),
    )
}

/// Reads at most `limit` bytes of body; more is a 413, not a bigger buffer.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit, "")),
        Err(e) => Err(ApiError::invalid(
            ErrorCode::UnreadableBody,
            format!("could not read request body: {e}"),
        )),
    }
}

/// Decompresses into a buffer that may not grow past `limit` + 1 bytes, so a
/// gzip bomb costs at most `limit` bytes of memory before its 413.
fn gunzip(raw: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit + 1));
    MultiGzDecoder::new(raw)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            ApiError::invalid(
                ErrorCode::InvalidGzip,
                format!("request body is not valid gzip: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(too_large(limit, "after decompression"));
    }
    Ok(out)
}

fn decode_and_parse(
    raw: Bytes,
    encoding: Encoding,
    limits: &IngestLimits,
) -> Result<ParsedBatch, ApiError> {
    let now = chrono::Utc::now();
    let batch = match encoding {
        Encoding::Identity => parse_batch(&raw, limits, now)?,
        Encoding::Gzip => parse_batch(&gunzip(&raw, limits.max_body_bytes)?, limits, now)?,
    };
    Ok(batch)
}

/// One event as sent (documentation of the ingest body).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventIn {
    /// UUID; the idempotency key within the project.
    #[schema(format = Uuid, example = "5f0c3b9e-8a4e-4b8e-9a43-2f2b6a0f1c11")]
    pub event_id: String,
    /// 1-256 bytes.
    pub user_id: String,
    /// 1-128 bytes.
    pub event_type: String,
    /// RFC 3339 with an offset.
    #[schema(format = DateTime, example = "2026-11-20T12:00:00.123Z")]
    pub timestamp: String,
    /// A JSON object (bounded size).
    pub properties: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The ingest body. Only its shape is checked as a whole: each item of
/// `events` is then validated on its own against [`EventIn`]'s rules, and
/// an item that breaks them (any JSON value can be sent) is rejected by its
/// index in the 200 answer's `rejected`, while the others are stored. Any
/// other member than `events` is refused (400), so a misspelt field is
/// never silently ignored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// Events, each checked on its own against `EventIn` (see above); at
    /// most STRATA_MAX_BATCH_EVENTS (default 10,000) of them, else 413.
    #[schema(value_type = Vec<Value>)]
    pub events: Vec<serde_json::Value>,
}

#[utoipa::path(post, path = "/v1/events", tag = "ingest",
    security(("bearer" = []), ("api_key" = [])),
    request_body(content = IngestRequest,
                 description = "JSON, optionally Content-Encoding: gzip"),
    responses(
        (status = 200, description = "Direct mode: accepted events are committed", body = IngestResponse),
        (status = 202, description = "Queue mode (STRATA_INGEST_QUEUE): valid events are stored in the queue; follow with GET /v1/ingest/batches/{batch_id}", body = crate::routes::queue::QueuedResponse),
        (status = 400, description = "Bad request", body = crate::error::ErrorBody), (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody),
        (status = 403, description = "The key lacks the needed scope", body = crate::error::ErrorBody), (status = 413, description = "Batch too large", body = crate::error::ErrorBody),
        (status = 415, description = "Unsupported Content-Type or Content-Encoding", body = crate::error::ErrorBody), (status = 429, description = "Over the rate limit (Retry-After)", body = crate::error::ErrorBody),
        (status = 503, description = "A dependency is unavailable (Retry-After)", body = crate::error::ErrorBody),
    ))]
pub async fn ingest(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    let key = auth.require(Scope::Ingest)?;
    check_content_type(&headers)?;
    let encoding = content_encoding(&headers)?;
    let limits = state.limits;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        && len > limits.max_body_bytes
    {
        return Err(too_large(limits.max_body_bytes, ""));
    }
    let raw = read_body(body, limits.max_body_bytes).await?;
    // Decompression and JSON parsing are CPU work: keep them off the runtime.
    let batch = tokio::task::spawn_blocking(move || decode_and_parse(raw, encoding, &limits))
        .await
        .map_err(|e| ApiError::internal(format!("ingest parser task failed: {e}")))??;

    let mut batch = batch;
    admit_event_types(&state, key.project_id, &mut batch).await?;

    if let Some(q) = &state.queue {
        let receipt = q
            .queue
            .publish(&strata_queue::OutgoingBatch {
                project: key.project_id,
                batch_id: strata_queue::new_batch_id(),
                queued_at: chrono::Utc::now(),
                counted_duplicates: batch.in_batch_duplicates as u64,
                events: &batch.events,
            })
            .await?;
        let response = crate::routes::queue::QueuedResponse {
            queued: batch.events.len() as u64,
            duplicates: batch.in_batch_duplicates as u64,
            rejected: batch.rejected,
            batch_id: receipt.batch_id,
        };
        state
            .metrics
            .queued(response.queued, response.rejected.len() as u64);
        tracing::info!(
            project = %key.project,
            queued = response.queued,
            rejected = response.rejected.len(),
            batch_id = %receipt.batch_id,
            parts = receipt.parts,
            "queued batch"
        );
        return Ok((axum::http::StatusCode::ACCEPTED, Json(response)).into_response());
    }
    let outcome = state
        .hot
        .insert_events(key.project_id, &batch.events)
        .await?;
    let response = IngestResponse {
        accepted: outcome.stored,
        duplicates: outcome.duplicates + batch.in_batch_duplicates as u64,
        rejected: batch.rejected,
    };
    state.metrics.ingested(
        response.accepted,
        response.duplicates,
        response.rejected.len() as u64,
    );
    tracing::info!(
        project = %key.project,
        accepted = response.accepted,
        duplicates = response.duplicates,
        rejected = response.rejected.len(),
        "ingested batch"
    );
    Ok(Json(response).into_response())
}

/// Refuses, by index, the events of new types past the project's cap
/// (`STRATA_MAX_EVENT_TYPES`, ADR-037). In queue mode with PostgreSQL
/// unreachable the cap is not checked: ingest stays up, and the types are
/// registered by the next batch that names them while it is reachable.
async fn admit_event_types(
    state: &AppState,
    project: strata_model::ProjectId,
    batch: &mut ParsedBatch,
) -> Result<(), ApiError> {
    let mut types: Vec<&str> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for e in &batch.events {
        if seen.insert(e.event_type.as_str()) {
            types.push(e.event_type.as_str());
        }
    }
    let cap = state.limits.max_event_types;
    let refused = match state.hot.admit_event_types(project, &types, cap).await {
        Ok(refused) => refused,
        Err(e) if e.is_unavailable() && state.queue.is_some() => {
            tracing::warn!(error = %e, "event types not checked against the cap: PostgreSQL is unreachable");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    if !refused.is_empty() {
        batch.reject_where(|e| {
            refused.contains(e.event_type.as_str()).then(|| {
                format!(
                    "event_type {:?} would be a new event type, and this project has its limit of {cap} (STRATA_MAX_EVENT_TYPES)",
                    e.event_type.as_str()
                )
            })
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gunzip_respects_limit() {
        let data = vec![b'a'; 1000];
        assert_eq!(gunzip(&gz(&data), 1000).unwrap().len(), 1000);
        assert!(matches!(
            gunzip(&gz(&data), 999),
            Err(e) if e.kind() == ErrorKind::TooLarge
        ));
        assert!(matches!(
            gunzip(b"not gzip", 999),
            Err(e) if e.kind() == ErrorKind::Invalid
        ));
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(check_content_type(&h).is_ok());
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(check_content_type(&h).is_ok());
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(check_content_type(&h).is_err());
        h.insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        assert!(content_encoding(&h).is_err());
        h.insert(header::CONTENT_ENCODING, "GZIP".parse().unwrap());
        assert_eq!(content_encoding(&h).unwrap(), Encoding::Gzip);
    }
}
