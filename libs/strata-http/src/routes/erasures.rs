//! `/v1/admin/erasures` (ADR-032): a project admin key asks for a user's
//! events to be erased from both tiers and follows the erasure's progress.
//! The work is an archive run's: this server starts one at once when it
//! has an archiver and none is running, and otherwise the running or the
//! next scheduled run does it.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use strata_model::{ErrorCode, ErrorKind};
use strata_store::ErasureRecord;

use crate::{ApiError, AppState, Authenticated};

/// The user to erase.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    /// The user id exactly as it was sent with the events (events carry
    /// 1 to 256 bytes; a longer id has no events to erase).
    #[schema(min_length = 1, max_length = 256, pattern = "^[^\\u0000]+$")]
    pub user_id: String,
}

/// Erases every stored event of a user of the key's project, in both
/// tiers, with the user's first-seen record; an open erasure of the same
/// user is returned as it is.
#[utoipa::path(post, path = "/v1/admin/erasures", tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    request_body = ErasureRequest,
    responses(
        (status = 202, description = "Accepted: the erasure, to follow with GET /v1/admin/erasures/{id}", body = ErasureRecord),
        (status = 400, description = "Not {\"user_id\": <1 to 256 characters without NUL>}", body = crate::error::ErrorBody),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody),
        (status = 403, description = "Not a project key with the admin scope", body = crate::error::ErrorBody),
        (status = 429, description = "The project asked for STRATA_ERASURES_PER_HOUR erasures in the last hour", body = crate::error::ErrorBody),
    ))]
pub async fn request(
    State(state): State<AppState>,
    auth: Authenticated,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ErasureRecord>), ApiError> {
    let key = auth.require(strata_model::Scope::Admin)?;
    let body: ErasureRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(
            ErrorCode::InvalidBody,
            format!("the body must be {{\"user_id\": \"<the user's id>\"}}: {e}"),
        )
    })?;
    // What the document says, exactly (in characters, as JSON Schema
    // counts): an id that no event can have is erased trivially.
    let user = body.user_id;
    if user.is_empty() || user.chars().count() > 256 || user.contains('\0') {
        return Err(ApiError::invalid(
            ErrorCode::InvalidUserId,
            "user_id must be 1 to 256 characters without NUL",
        ));
    }
    if state.erasures_per_hour > 0 {
        let since = chrono::Utc::now() - chrono::Duration::hours(1);
        let recent = state
            .hot
            .erasures_requested_since(key.project_id, since)
            .await?;
        if recent >= i64::from(state.erasures_per_hour) {
            return Err(ApiError::new(
                ErrorKind::RateLimited,
                ErrorCode::TooManyErasures,
                format!(
                    "this project asked for {recent} erasures in the last hour, the limit \
                     (STRATA_ERASURES_PER_HOUR); try again later"
                ),
            ));
        }
    }
    let requested_by = format!("key {}", auth.0.key_id);
    let (record, created) = state
        .hot
        .request_erasure(key.project_id, &user, &requested_by)
        .await?;
    if created {
        tracing::info!(project = %key.project, erasure = record.id, "erasure requested");
    }
    // Queue mode: the user's events among the dead letters go now (those
    // still queued are dropped by the worker once the erasure is done).
    if let Some(q) = &state.queue {
        let (queue, project, user) = (q.queue.clone(), key.project_id, user.clone());
        tokio::spawn(async move {
            match queue.purge_user(project, &user).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    project = project.0,
                    dead_letters = n,
                    "erased user's events removed from the dead letters"
                ),
                Err(e) => {
                    tracing::warn!(error = %e.detail(), "dead letters not purged of the erased user; they expire after STRATA_QUEUE_DEAD_LETTER_MAX_AGE")
                }
            }
        });
    }
    if let Some(archiver) = state.archiver.clone() {
        let (hot, id) = (state.hot.clone(), record.id);
        tokio::spawn(async move {
            // A run in progress may have passed its erasure step already:
            // try again for a while (unless it did this erasure), then
            // leave it to the schedule.
            for _ in 0..60 {
                match archiver.start_erasures_in_background().await {
                    Ok(Some(_)) => return,
                    Ok(None) => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        if let Ok(Some(r)) = hot.erasure(None, id).await
                            && matches!(r.status.as_str(), "deleting" | "done")
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not start the erasure run; the next scheduled run does it");
                        return;
                    }
                }
            }
        });
    }
    Ok((StatusCode::ACCEPTED, Json(record)))
}

/// One erasure: its progress, then its audit record. A project admin key
/// sees its own project's, an operator key every project's.
#[utoipa::path(get, path = "/v1/admin/erasures/{id}", tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The id POST /v1/admin/erasures returned")),
    responses(
        (status = 200, description = "The erasure", body = ErasureRecord),
        (status = 400, description = "Not an erasure id", body = crate::error::ErrorBody),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody),
        (status = 403, description = "Not an operator key or a project key with the admin scope", body = crate::error::ErrorBody),
        (status = 404, description = "No such erasure (of this key's project)", body = crate::error::ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<ErasureRecord>, ApiError> {
    let only = auth.require_admin_view()?.map(|k| k.project_id);
    let id: i64 = id.parse().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::invalid(ErrorCode::InvalidId, format!("{id:?} is not an erasure id"))
    })?;
    state.hot.erasure(only, id).await?.map(Json).ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            ErrorCode::NotFound,
            format!("no erasure {id}"),
        )
    })
}
