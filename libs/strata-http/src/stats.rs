//! `GET /v1/stats/*`: DESIGN.md §3, answered by the tier-aware planner.
//! Every parameter is checked here; anything a client can send that is
//! wrong is a 400 naming the parameter.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use strata_model::{DayRange, Period, Scope, parse_bounded};
use strata_query::{DauResponse, RetentionResponse, TopEventsResponse};

use crate::{ApiError, AppState, Authenticated};

type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The query string as a map, refusing unknown and repeated parameters.
fn params(raw: Params, allowed: &[&str]) -> Result<HashMap<String, String>, ApiError> {
    let Query(pairs) = raw.map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))?;
    let mut map = HashMap::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "unknown parameter {k:?}; this endpoint takes {}",
                allowed.join(", ")
            )));
        }
        if map.insert(k.clone(), v).is_some() {
            return Err(ApiError::BadRequest(format!("parameter {k:?} is repeated")));
        }
    }
    Ok(map)
}

fn range(state: &AppState, p: &HashMap<String, String>) -> Result<DayRange, ApiError> {
    Ok(DayRange::parse(
        p.get("from").map(String::as_str),
        p.get("to").map(String::as_str),
        state.planner.config().max_query_days,
    )?)
}

pub async fn dau(
    State(state): State<AppState>,
    auth: Authenticated,
    raw: Params,
) -> Result<Json<DauResponse>, ApiError> {
    let key = auth.require(Scope::Read)?;
    let p = params(raw, &["from", "to"])?;
    let range = range(&state, &p)?;
    Ok(Json(state.planner.dau(key.project_id, range).await?))
}

pub async fn top_events(
    State(state): State<AppState>,
    auth: Authenticated,
    raw: Params,
) -> Result<Json<TopEventsResponse>, ApiError> {
    let key = auth.require(Scope::Read)?;
    let p = params(raw, &["from", "to", "limit"])?;
    let range = range(&state, &p)?;
    let limit = parse_bounded("limit", p.get("limit").map(String::as_str), 10, 1, 1000)?;
    Ok(Json(
        state
            .planner
            .top_events(key.project_id, range, limit)
            .await?,
    ))
}

pub async fn retention(
    State(state): State<AppState>,
    auth: Authenticated,
    raw: Params,
) -> Result<Json<RetentionResponse>, ApiError> {
    let key = auth.require(Scope::Read)?;
    let p = params(raw, &["from", "to", "period", "periods"])?;
    let range = range(&state, &p)?;
    let period = Period::parse(p.get("period").map_or("day", String::as_str))?;
    let periods = parse_bounded("periods", p.get("periods").map(String::as_str), 8, 1, 100)?;
    Ok(Json(
        state
            .planner
            .retention(key.project_id, range, period, periods)
            .await?,
    ))
}
