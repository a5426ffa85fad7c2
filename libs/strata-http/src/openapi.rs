//! The OpenAPI document, generated from the handlers (utoipa), served at
//! `/openapi.json` with Swagger UI at `/docs`; `docs/openapi.json` is a
//! committed copy that a test keeps equal (`make openapi` rewrites it).

use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error: a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(example = "from 2026-02-02 is after to 2026-02-01")]
    pub error: String,
    /// Only on 503 for cold days: the days that could not be read.
    pub days: Option<Vec<chrono::NaiveDate>>,
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

/// The ingest body.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestRequest {
    pub events: Vec<EventIn>,
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
        crate::ingest::ingest,
        crate::stats::dau,
        crate::stats::top_events,
        crate::stats::retention,
        crate::admin::tiers,
        crate::admin::runs,
        crate::admin::start_run,
        crate::health::livez,
        crate::health::readyz,
        crate::metrics::render,
    ),
    modifiers(&Security),
    tags(
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
