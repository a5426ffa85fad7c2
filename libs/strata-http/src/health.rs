//! `/livez` (the process answers) and `/readyz` (it can serve: PostgreSQL
//! reachable, migrations applied; Redis and the cold store are reported in
//! the body but do not make the server unready: without them ingest and hot
//! queries still work).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::AppState;

#[utoipa::path(get, path = "/livez", tag = "health",
    responses((status = 200, description = "The process answers", body = Object)))]
pub async fn livez() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "PostgreSQL reachable and migrated; Redis and cold store reported", body = Object),
        (status = 503, description = "Not ready", body = Object),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (pg, redis, cold) = tokio::join!(
        state.hot.is_ready(),
        async {
            match &state.limiter {
                None => "not configured".to_owned(),
                Some(l) => l
                    .ping()
                    .await
                    .map_or_else(|e| format!("unavailable: {e}"), |()| "ok".into()),
            }
        },
        async {
            state
                .planner
                .check_cold(Duration::from_secs(2))
                .await
                .map_or_else(|e| format!("unavailable: {e}"), |()| "ok".into())
        },
    );
    let (status, code, postgres) = match pg {
        Ok(()) => ("ready", StatusCode::OK, "ok".to_owned()),
        Err(e) => ("unready", StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    (
        code,
        Json(json!({
            "status": status,
            "postgres": postgres,
            "hot_layout": state.hot.layout().as_str(),
            "redis": redis,
            "cold_store": cold,
        })),
    )
}
