//! `/livez` (the process answers) and `/readyz` (it can serve: PostgreSQL
//! reachable, migrations applied).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::AppState;

pub async fn livez() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.hot.is_ready().await {
        Ok(()) => (
            StatusCode::OK,
            Json(
                json!({ "status": "ready", "postgres": "ok", "hot_layout": state.hot.layout().as_str() }),
            ),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unready", "postgres": e.to_string() })),
        ),
    }
}
