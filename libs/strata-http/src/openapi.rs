//! The OpenAPI document, generated from the handlers (utoipa), served at
//! `/openapi.json` with Swagger UI at `/docs`; `docs/openapi.json` is a
//! committed copy that a test keeps equal (`make openapi` rewrites it).

use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

pub use crate::error::ErrorBody;

/// `period` of a retention request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PeriodParam {
    /// UTC days.
    Day,
    /// ISO weeks, from Monday.
    Week,
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

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Strata",
        description = "Event analytics with hot/cold tiered storage: ingest, exact stats across PostgreSQL and Parquet, operations.",
        license(name = "Apache-2.0")
    ),
    paths(
        crate::auth::whoami,
        crate::ingest::ingest,
        crate::queue::batch_status,
        crate::stats::dau,
        crate::stats::top_events,
        crate::stats::retention,
        crate::admin::tiers,
        crate::admin::runs,
        crate::admin::start_run,
        crate::admin::retention,
        crate::admin::set_retention,
        crate::erasures::request,
        crate::erasures::show,
        crate::queue::dead_letters,
        crate::queue::replay,
        crate::health::livez,
        crate::health::readyz,
        crate::metrics::render,
    ),
    components(schemas(PeriodParam)),
    modifiers(&Security),
    tags(
        (name = "auth", description = "The presented key"),
        (name = "ingest", description = "Send events"),
        (name = "stats", description = "DAU, top events, retention across both tiers"),
        (name = "admin", description = "Operator views and actions (admin scope)"),
        (name = "health", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

/// The document as committed in `docs/openapi.json`.
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = "1".into();
    let mut text = doc.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}
