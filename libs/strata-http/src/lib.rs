//! Strata's HTTP API. [`app::App::build`] wires configuration into
//! [`AppState`] (for the binary and the tests alike); every route, limit
//! and status mapping lives here.

pub mod app;
mod auth;
mod error;
pub mod metrics;
pub mod openapi;
mod params;
pub mod ratelimit;
pub mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use strata_archive::Archiver;
use strata_model::{ErrorCode, IngestLimits};
use strata_query::Planner;
use strata_runtime::config::CorsOrigins;
use strata_store::Store;

use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::routes::{admin, erasures, health, ingest, queue, stats, ui};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::Authenticated;
pub use error::ApiError;
pub use ingest::IngestResponse;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub hot: Store,
    pub limits: IngestLimits,
    pub planner: Planner,
    /// Per-key token buckets; `None` when no Redis is configured.
    pub limiter: Option<RateLimiter>,
    /// For `POST /v1/admin/archive/run`; `None`: not offered.
    pub archiver: Option<Archiver>,
    pub metrics: Metrics,
    /// Queue mode (ADR-034): ingest publishes here; `None`: direct ingest.
    pub queue: Option<queue::QueueState>,
    /// Erasure requests one project may make per hour (0: no limit).
    pub erasures_per_hour: u32,
    /// Proxies that append to `X-Forwarded-For` in front of the api: where a
    /// client key's client address is read (ADR-040).
    pub trusted_proxy_hops: u8,
}

/// Server-wide settings that are not per-route state.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub request_timeout: Duration,
    /// Origins whose pages may send events (`STRATA_CORS_ORIGINS`); `None`:
    /// no CORS on any route.
    pub cors_origins: Option<CorsOrigins>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            cors_origins: None,
        }
    }
}

/// CORS for the ingest route (ADR-040): the configured origins may `POST`
/// JSON with a key header and read the rate-limit headers of the answer.
fn ingest_cors(origins: &CorsOrigins) -> CorsLayer {
    let allow = match origins {
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(
            list.iter()
                .filter_map(|o| axum::http::HeaderValue::from_str(o).ok()),
        ),
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::CONTENT_ENCODING,
            HeaderName::from_static("x-api-key"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(Duration::from_secs(600))
}

async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::document(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        strata_model::ErrorKind::NotFound,
        ErrorCode::NoSuchRoute,
        "no such route",
    )
}

/// The route exists, the method does not (axum adds `Allow`).
async fn method_not_allowed() -> ApiError {
    ApiError::new(
        strata_model::ErrorKind::MethodNotAllowed,
        ErrorCode::MethodNotAllowed,
        "this route does not offer this method; see the Allow header",
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("handler panicked").into_response()
}

/// The whole HTTP surface.
pub fn router(state: AppState, config: &ServerConfig) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id,
            project = tracing::field::Empty,
        )
    });
    // Authentication wraps each method's handler, not the route: a method
    // a route does not offer is a 405 (with Allow) before any key is asked for.
    let auth = axum::middleware::from_fn_with_state(state.clone(), auth::authenticate_and_limit);
    let events = post(ingest::ingest).route_layer(auth.clone());
    // A preflight is an OPTIONS request: the CORS layer answers it before
    // the handler, which is there so the layer sees the method at all.
    let events = match &config.cors_origins {
        Some(origins) => events
            .options(method_not_allowed)
            .layer(ingest_cors(origins)),
        None => events,
    };
    let v1 = Router::new()
        .route("/v1/key", get(auth::whoami).route_layer(auth.clone()))
        .route("/v1/events", events)
        .route("/v1/stats/dau", get(stats::dau).route_layer(auth.clone()))
        .route(
            "/v1/stats/top-events",
            get(stats::top_events).route_layer(auth.clone()),
        )
        .route(
            "/v1/stats/retention",
            get(stats::retention).route_layer(auth.clone()),
        )
        .route(
            "/v1/stats/funnel",
            get(stats::funnel).route_layer(auth.clone()),
        )
        .route(
            "/v1/admin/tiers",
            get(admin::tiers).route_layer(auth.clone()),
        )
        .route(
            "/v1/admin/retention",
            get(admin::retention)
                .put(admin::set_retention)
                .route_layer(auth.clone()),
        )
        .route(
            "/v1/admin/properties",
            get(admin::properties).route_layer(auth.clone()),
        )
        .route(
            "/v1/admin/properties/{property}",
            axum::routing::put(admin::declare_property)
                .delete(admin::undeclare_property)
                .route_layer(auth.clone()),
        )
        .route(
            "/v1/admin/erasures",
            post(erasures::request).route_layer(auth.clone()),
        )
        .route(
            "/v1/admin/erasures/{id}",
            get(erasures::show).route_layer(auth.clone()),
        )
        .route(
            "/v1/admin/archive/runs",
            get(admin::runs).route_layer(auth.clone()),
        )
        .route(
            "/v1/ingest/batches/{batch_id}",
            get(queue::batch_status).route_layer(auth.clone()),
        )
        .route(
            "/v1/admin/ingest/dead-letters",
            get(queue::dead_letters).route_layer(auth.clone()),
        )
        .route(
            "/v1/admin/ingest/dead-letters/{seq}/replay",
            post(queue::replay).route_layer(auth.clone()),
        )
        .route(
            "/v1/admin/archive/run",
            post(admin::start_run).route_layer(auth),
        );
    Router::new()
        .merge(v1)
        .route("/livez", get(health::livez))
        .route("/metrics", get(metrics::render))
        .route("/openapi.json", get(openapi_json))
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs").url("/docs/openapi.json", {
                let mut doc = <openapi::ApiDoc as utoipa::OpenApi>::openapi();
                doc.info.version = "1".into();
                doc
            }),
        )
        .route("/readyz", get(health::readyz))
        .merge(ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(trace)
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(axum::middleware::from_fn(error::add_request_id))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    config.request_timeout,
                )),
        )
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer address is the client address of client keys' rate limits.
    let app = router(state, config).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
