//! `GET /v1/stats/*` (docs/CONTRACT.md, "Stats"), answered by the
//! tier-aware planner.
//! Every parameter is checked here; anything a client can send that is
//! wrong is a 400 naming the parameter.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use strata_model::{
    DayRange, EventType, FunnelSteps, FunnelWindow, GroupBy, Period, Scope, parse_bounded,
};
use strata_query::{DauResponse, FunnelResponse, RetentionResponse, TopEventsResponse};
use utoipa::ToSchema;

use crate::params::{QueryParams, query_params};
use crate::{ApiError, AppState, Authenticated};

fn range(state: &AppState, p: &HashMap<String, String>) -> Result<DayRange, ApiError> {
    Ok(DayRange::parse(
        p.get("from").map(String::as_str),
        p.get("to").map(String::as_str),
        state.planner.config().max_query_days,
    )?)
}

/// `group_by` and `limit_groups` of a breakdown.
fn group_by(p: &HashMap<String, String>) -> Result<Option<(GroupBy, u32)>, ApiError> {
    // `limit_groups` is checked even without `group_by` (which it then
    // does not change): OpenAPI cannot make one parameter need another.
    let limit = parse_bounded(
        "limit_groups",
        p.get("limit_groups").map(String::as_str),
        10,
        1,
        100,
    )?;
    p.get("group_by")
        .map(|g| Ok((GroupBy::parse(g)?, limit)))
        .transpose()
}

/// `period` of a retention request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PeriodParam {
    /// UTC days.
    Day,
    /// ISO weeks, from Monday.
    Week,
}

#[utoipa::path(get, path = "/v1/stats/dau", tag = "stats",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("from" = String, Query, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2026-11-01",
            description = "First day (UTC), YYYY-MM-DD. The range may span at most STRATA_MAX_QUERY_DAYS days (default 3660) and `from` must not be after `to`: 400 otherwise"),
        ("to" = String, Query, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2026-11-27",
            description = "Last day (UTC), YYYY-MM-DD, inclusive"),
        ("event_type" = Option<String>, Query, min_length = 1, max_length = 128, example = "signup",
            description = "Count only the users who had an event of this type that day (1-128 bytes)"),
        ("group_by" = Option<String>, Query, pattern = r"^property:[^\x00]{1,256}$", example = "property:plan",
            description = "property:<key>: split by the value of this top-level property (as text; missing and null are one group), the groups of the largest totals first (the key 1-256 bytes)"),
        ("limit_groups" = Option<u32>, Query, minimum = 1, maximum = 100, description = "With group_by: groups shown, 1-100, default 10; the rest are one exact \"other\" group (without group_by it changes nothing)"),
    ),
    responses(
        (status = 200, description = "Distinct users per day, zero-filled", body = DauResponse),
        (status = 400, description = "Bad parameters", body = crate::error::ErrorBody),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody), (status = 403, description = "The key lacks the needed scope", body = crate::error::ErrorBody),
        (status = 429, description = "Over the rate limit (Retry-After)", body = crate::error::ErrorBody),
        (status = 503, description = "PostgreSQL or needed cold days unavailable", body = crate::error::ErrorBody),
    ))]
pub async fn dau(
    State(state): State<AppState>,
    auth: Authenticated,
    raw: QueryParams,
) -> Result<Json<DauResponse>, ApiError> {
    let key = auth.require(Scope::Read)?;
    let p = query_params(
        raw,
        &["from", "to", "event_type", "group_by", "limit_groups"],
    )?;
    let range = range(&state, &p)?;
    let event_type = p.get("event_type").map(EventType::parse).transpose()?;
    let planner = &state.planner;
    Ok(Json(match group_by(&p)? {
        Some((g, limit)) => {
            planner
                .dau_by(key.project_id, range, event_type.as_ref(), (&g, limit))
                .await?
        }
        None => {
            planner
                .dau(key.project_id, range, event_type.as_ref())
                .await?
        }
    }))
}

#[utoipa::path(get, path = "/v1/stats/top-events", tag = "stats",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("from" = String, Query, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2026-11-01",
            description = "First day (UTC), YYYY-MM-DD. The range may span at most STRATA_MAX_QUERY_DAYS days (default 3660) and `from` must not be after `to`: 400 otherwise"),
        ("to" = String, Query, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2026-11-27",
            description = "Last day (UTC), YYYY-MM-DD, inclusive"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Event types to return, 1-1000, default 10 (per group too)"),
        ("group_by" = Option<String>, Query, pattern = r"^property:[^\x00]{1,256}$", example = "property:plan",
            description = "property:<key>: split by the value of this top-level property (as text; missing and null are one group), the groups of the largest totals first (the key 1-256 bytes)"),
        ("limit_groups" = Option<u32>, Query, minimum = 1, maximum = 100, description = "With group_by: groups shown, 1-100, default 10; the rest are one exact \"other\" group (without group_by it changes nothing)"),
    ),
    responses(
        (status = 200, description = "Event types by count, with distinct users", body = TopEventsResponse),
        (status = 400, description = "Bad parameters", body = crate::error::ErrorBody),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody), (status = 403, description = "The key lacks the needed scope", body = crate::error::ErrorBody),
        (status = 429, description = "Over the rate limit (Retry-After)", body = crate::error::ErrorBody),
        (status = 503, description = "PostgreSQL or needed cold days unavailable", body = crate::error::ErrorBody),
    ))]
pub async fn top_events(
    State(state): State<AppState>,
    auth: Authenticated,
    raw: QueryParams,
) -> Result<Json<TopEventsResponse>, ApiError> {
    let key = auth.require(Scope::Read)?;
    let p = query_params(raw, &["from", "to", "limit", "group_by", "limit_groups"])?;
    let range = range(&state, &p)?;
    let limit = parse_bounded("limit", p.get("limit").map(String::as_str), 10, 1, 1000)?;
    let planner = &state.planner;
    Ok(Json(match group_by(&p)? {
        Some((g, groups)) => {
            planner
                .top_events_by(key.project_id, range, limit, (&g, groups))
                .await?
        }
        None => planner.top_events(key.project_id, range, limit).await?,
    }))
}

#[utoipa::path(get, path = "/v1/stats/retention", tag = "stats",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("from" = String, Query, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2026-11-01",
            description = "First day (UTC), YYYY-MM-DD. The range may span at most STRATA_MAX_QUERY_DAYS days (default 3660) and `from` must not be after `to`: 400 otherwise"),
        ("to" = String, Query, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2026-11-27",
            description = "Last day (UTC), YYYY-MM-DD, inclusive"),
        ("period" = Option<PeriodParam>, Query, description = "day (default) or week (ISO, from Monday)"),
        ("periods" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Periods tracked per cohort, 1-100, default 8: retained[k] for k = 0 … periods−1, retained[0] being the cohort's size; periods not yet started are left out"),
        ("start_event" = Option<String>, Query, min_length = 1, max_length = 128, example = "signup",
            description = "Form cohorts from each user's first event of this type ever (1-128 bytes) instead of their first event of any type"),
        ("return_event" = Option<String>, Query, min_length = 1, max_length = 128, example = "purchase",
            description = "Count a cohort user as retained in a period only for an event of this type (1-128 bytes)"),
    ),
    responses(
        (status = 200, description = "Cohorts by first-event period", body = RetentionResponse),
        (status = 400, description = "Bad parameters", body = crate::error::ErrorBody),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody), (status = 403, description = "The key lacks the needed scope", body = crate::error::ErrorBody),
        (status = 429, description = "Over the rate limit (Retry-After)", body = crate::error::ErrorBody),
        (status = 503, description = "PostgreSQL or needed cold days unavailable", body = crate::error::ErrorBody),
    ))]
pub async fn retention(
    State(state): State<AppState>,
    auth: Authenticated,
    raw: QueryParams,
) -> Result<Json<RetentionResponse>, ApiError> {
    let key = auth.require(Scope::Read)?;
    let p = query_params(
        raw,
        &[
            "from",
            "to",
            "period",
            "periods",
            "start_event",
            "return_event",
        ],
    )?;
    let range = range(&state, &p)?;
    let period = Period::parse(p.get("period").map_or("day", String::as_str))?;
    let periods = parse_bounded("periods", p.get("periods").map(String::as_str), 8, 1, 100)?;
    let start_event = p.get("start_event").map(EventType::parse).transpose()?;
    let return_event = p.get("return_event").map(EventType::parse).transpose()?;
    Ok(Json(
        state
            .planner
            .retention(
                key.project_id,
                range,
                (period, periods),
                start_event.as_ref(),
                return_event.as_ref(),
            )
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/stats/funnel", tag = "stats",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("from" = String, Query, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2026-11-01",
            description = "First day (UTC), YYYY-MM-DD, a chain's first step may be on. The range may span at most STRATA_MAX_QUERY_DAYS days (default 3660) and `from` must not be after `to`: 400 otherwise"),
        ("to" = String, Query, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2026-11-27",
            description = "Last day (UTC), YYYY-MM-DD, inclusive, a chain's first step may be on; later steps may come up to the window after it"),
        ("steps" = String, Query, pattern = r"^[^,\x00]{1,128}(,[^,\x00]{1,128}){1,9}$", example = "signup,activate,purchase",
            description = "2 to 10 event types (1-128 bytes each) separated by commas, in order (a type may come back at a later step; a type holding a comma cannot be a step)"),
        ("window" = Option<u32>, Query, minimum = 60, maximum = 7776000, example = 604800,
            description = "Longest time from a chain's first step to its last, in seconds: 60 (1 minute) to 7776000 (90 days), default 86400 (1 day)"),
        ("group_by" = Option<String>, Query, pattern = r"^property:[^\x00]{1,256}$", example = "property:plan",
            description = "property:<key>: split by the value of this top-level property of each chain's first event (as text; missing and null are one group), the groups of the largest totals first (the key 1-256 bytes)"),
        ("limit_groups" = Option<u32>, Query, minimum = 1, maximum = 100, description = "With group_by: groups shown, 1-100, default 10; the rest are one exact \"other\" group (without group_by it changes nothing)"),
    ),
    responses(
        (status = 200, description = "Users reaching each step, with conversions", body = FunnelResponse),
        (status = 400, description = "Bad parameters", body = crate::error::ErrorBody),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody), (status = 403, description = "The key lacks the needed scope", body = crate::error::ErrorBody),
        (status = 429, description = "Over the rate limit (Retry-After)", body = crate::error::ErrorBody),
        (status = 503, description = "PostgreSQL or needed cold days unavailable", body = crate::error::ErrorBody),
    ))]
pub async fn funnel(
    State(state): State<AppState>,
    auth: Authenticated,
    raw: QueryParams,
) -> Result<Json<FunnelResponse>, ApiError> {
    let key = auth.require(Scope::Read)?;
    let p = query_params(
        raw,
        &["from", "to", "steps", "window", "group_by", "limit_groups"],
    )?;
    let range = range(&state, &p)?;
    let steps = FunnelSteps::parse(
        p.get("steps")
            .ok_or(strata_model::ModelError::Missing { field: "steps" })?,
    )?;
    let window = p
        .get("window")
        .map(|w| FunnelWindow::parse(w))
        .transpose()?
        .unwrap_or(FunnelWindow::DEFAULT);
    let group_by = group_by(&p)?;
    Ok(Json(
        state
            .planner
            .funnel(
                key.project_id,
                range,
                &steps,
                window,
                group_by.as_ref().map(|(g, l)| (g, *l)),
            )
            .await?,
    ))
}
