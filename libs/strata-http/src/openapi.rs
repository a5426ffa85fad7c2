//! The OpenAPI document, generated from the handlers (utoipa), served at
//! `/openapi.json` with Swagger UI at `/docs`; `docs/openapi.json` is a
//! committed copy that a test keeps equal (`make openapi` rewrites it).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
        crate::routes::ingest::ingest,
        crate::routes::queue::batch_status,
        crate::routes::stats::dau,
        crate::routes::stats::top_events,
        crate::routes::stats::retention,
        crate::routes::stats::funnel,
        crate::routes::admin::tiers,
        crate::routes::admin::runs,
        crate::routes::admin::start_run,
        crate::routes::admin::retention,
        crate::routes::admin::set_retention,
        crate::routes::admin::properties,
        crate::routes::admin::declare_property,
        crate::routes::admin::undeclare_property,
        crate::routes::erasures::request,
        crate::routes::erasures::show,
        crate::routes::queue::dead_letters,
        crate::routes::queue::replay,
        crate::routes::health::livez,
        crate::routes::health::readyz,
        crate::metrics::render,
    ),
    components(schemas(crate::routes::stats::PeriodParam)),
    modifiers(&Security),
    tags(
        (name = "auth", description = "The presented key"),
        (name = "ingest", description = "Send events"),
        (name = "stats", description = "DAU, top events, retention and funnels across both tiers"),
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
