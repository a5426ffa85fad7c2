//! `/livez` (the process answers) and `/readyz` (it can serve: PostgreSQL
//! reachable, migrations applied; Redis and the cold store are reported in
//! the body but do not make the server unready: without them ingest and hot
//! queries still work). In queue mode the queue is what ingest needs: it
//! decides readiness, and a server without PostgreSQL is `degraded`.

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
                None => "not configured",
                Some(l) => match l.ping().await {
                    Ok(()) => "ok",
                    Err(e) => {
                        tracing::warn!(error = %e, "readyz: Redis unavailable");
                        "unavailable"
                    }
                },
            }
        },
        async {
            match state.planner.check_cold(Duration::from_secs(2)).await {
                Ok(()) => "ok",
                Err(e) => {
                    tracing::warn!(error = %e, "readyz: cold store unavailable");
                    "unavailable"
                }
            }
        },
    );
    // Stable words only: the drivers' detail (hosts, buckets, users) is
    // logged, never answered to whoever can reach the port.
    let (status, code, postgres) = match pg {
        Ok(()) => ("ready", StatusCode::OK, "ok"),
        Err(e) => {
            tracing::warn!(error = %e, "readyz: PostgreSQL not ready");
            let word = match e {
                strata_store::StoreError::NotMigrated(_) => "migrations not applied",
                _ => "unavailable",
            };
            ("unready", StatusCode::SERVICE_UNAVAILABLE, word)
        }
    };
    let mut body = json!({
        "status": status,
        "postgres": postgres,
        "hot_layout": state.hot.layout().as_str(),
        "redis": redis,
        "cold_store": cold,
    });
    // Queue mode: ingest needs the queue, not PostgreSQL (it accepts while
    // the database is down, ADR-034), so the queue decides readiness;
    // without PostgreSQL the server is `degraded` (stats fail) but ready.
    let (status, code) = match &state.queue {
        None => (status, code),
        Some(q) => match q.queue.lag().await {
            Ok(lag) => {
                body["queue"] = json!({ "status": "ok", "lag": lag });
                if code == StatusCode::OK {
                    (status, code)
                } else {
                    ("degraded", StatusCode::OK)
                }
            }
            Err(e) => {
                tracing::warn!(error = %e.detail(), "readyz: queue unavailable");
                body["queue"] = json!({ "status": "unavailable" });
                ("unready", StatusCode::SERVICE_UNAVAILABLE)
            }
        },
    };
    body["status"] = json!(status);
    (code, Json(body))
}
