//! `/v1/admin/*`. Two kinds of key reach these views (ADR-024): an operator
//! key (no project; `keys create --operator`) sees every project and runs
//! the archiver; a project key with the admin scope sees its own project's
//! footprint only, and never another project's name or size.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use strata_model::{ErrorCode, ErrorKind, parse_bounded};
use strata_store::catalog::runs::{ChunkRecord, RunRecord};

use crate::params::{QueryParams, query_params};
use crate::{ApiError, AppState, Authenticated};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TierFootprint {
    pub days: i64,
    pub rows: i64,
    pub bytes: i64,
    pub bytes_per_event: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectTiersView {
    pub project_id: i64,
    pub project: String,
    pub hot: TierFootprint,
    pub cold: TierFootprint,
    pub cold_files: i64,
    /// Files per cold day (ADR-033): late events add files to a day, and
    /// compaction merges them back into one.
    pub cold_files_per_day: FilesPerDay,
    /// Exact rollups of cold days (ADR-027), beside the Parquet they summarise.
    pub rollups: RollupFootprint,
    /// Exact rollups of sealed hot days (ADR-028).
    pub hot_rollups: RollupFootprint,
    /// Hot bytes per event divided by cold bytes per event.
    pub hot_to_cold_bytes_per_event: Option<f64>,
    /// Days of events kept, today included (`null`: forever; ADR-031).
    pub retention_days: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FilesPerDay {
    /// The most files any one cold day has.
    pub max: i64,
    /// Cold days with more than one file.
    pub days_with_several: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RollupFootprint {
    /// Days that have a rollup.
    pub days: i64,
    /// Bytes of their user sets.
    pub bytes: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TiersResponse {
    pub projects: Vec<ProjectTiersView>,
    /// Hot bytes are each project's share of shared tables (by rows).
    pub hot_bytes_estimated: bool,
    /// How long the oldest hot day has been past the hot retention, in
    /// seconds (0: the archiver is up to date). Hot days are shared by every
    /// project, so this is the service's lag.
    pub archive_lag_seconds: f64,
}

fn per_event(bytes: i64, rows: i64) -> Option<f64> {
    (rows > 0).then(|| bytes as f64 / rows as f64)
}

#[utoipa::path(get, path = "/v1/admin/tiers", tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Footprint in both tiers: every project for an operator key, the key's own project for a project admin key", body = TiersResponse),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody), (status = 403, description = "The key lacks the needed scope", body = crate::error::ErrorBody),
    ))]
pub async fn tiers(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<TiersResponse>, ApiError> {
    let only = auth.require_admin_view()?.map(|k| k.project_id.0);
    let projects = state
        .hot
        .tier_summary()
        .await?
        .into_iter()
        .filter(|p| only.is_none_or(|id| p.project_id == id))
        .map(|p| {
            let hot = per_event(p.hot_bytes, p.hot_rows);
            let cold = per_event(p.cold_bytes, p.cold_rows);
            ProjectTiersView {
                project_id: p.project_id,
                project: p.project,
                hot: TierFootprint {
                    days: p.hot_days,
                    rows: p.hot_rows,
                    bytes: p.hot_bytes,
                    bytes_per_event: hot,
                },
                cold: TierFootprint {
                    days: p.cold_days,
                    rows: p.cold_rows,
                    bytes: p.cold_bytes,
                    bytes_per_event: cold,
                },
                cold_files: p.cold_files,
                cold_files_per_day: FilesPerDay {
                    max: p.max_files_per_day,
                    days_with_several: p.days_with_several_files,
                },
                rollups: RollupFootprint {
                    days: p.rollup_days,
                    bytes: p.rollup_bytes,
                },
                hot_rollups: RollupFootprint {
                    days: p.hot_rollup_days,
                    bytes: p.hot_rollup_bytes,
                },
                hot_to_cold_bytes_per_event: hot.zip(cold).map(|(h, c)| h / c),
                retention_days: p.retention_days,
            }
        })
        .collect();
    let chunks = state.hot.list_chunks().await?;
    Ok(Json(TiersResponse {
        projects,
        hot_bytes_estimated: true,
        archive_lag_seconds: crate::metrics::archive_lag_seconds(&state, &chunks),
    }))
}

/// A run with its chunk outcomes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunView {
    #[serde(flatten)]
    pub run: RunRecord,
    pub chunks: Vec<ChunkRecord>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunsResponse {
    pub runs: Vec<RunView>,
}

#[utoipa::path(get, path = "/v1/admin/archive/runs", tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Newest runs to list, 1-500 (default 20)")),
    responses(
        (status = 200, description = "Archive runs, newest first, with chunk outcomes", body = RunsResponse),
        (status = 400, description = "Bad request", body = crate::error::ErrorBody),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody),
        (status = 403, description = "Not an operator key", body = crate::error::ErrorBody),
    ))]
pub async fn runs(
    State(state): State<AppState>,
    auth: Authenticated,
    raw: QueryParams,
) -> Result<Json<RunsResponse>, ApiError> {
    auth.require_operator()?;
    let p = query_params(raw, &["limit"])?;
    let limit = parse_bounded("limit", p.get("limit").map(String::as_str), 20, 1, 500)?;
    let runs = state
        .hot
        .runs()
        .list(i64::from(limit))
        .await?
        .into_iter()
        .map(|(run, chunks)| RunView { run, chunks })
        .collect();
    Ok(Json(RunsResponse { runs }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StartedRun {
    pub run_id: i64,
}

/// Starts an archive run now: 202 with its id, 409 while one runs.
#[utoipa::path(post, path = "/v1/admin/archive/run", tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "Run started", body = StartedRun),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody),
        (status = 403, description = "Not an operator key", body = crate::error::ErrorBody),
        (status = 409, description = "A run is in progress", body = crate::error::ErrorBody),
    ))]
pub async fn start_run(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<(StatusCode, Json<StartedRun>), ApiError> {
    auth.require_operator()?;
    let archiver = state.archiver.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorKind::Unavailable,
            ErrorCode::ArchiverNotConfigured,
            "this server has no archiver configured",
        )
    })?;
    match archiver.start_in_background().await? {
        Some(run_id) => Ok((StatusCode::ACCEPTED, Json(StartedRun { run_id }))),
        None => Err(ApiError::new(
            ErrorKind::Conflict,
            ErrorCode::ArchiveRunInProgress,
            "an archive run is in progress; see GET /v1/admin/archive/runs",
        )),
    }
}

/// A project's retention policy (ADR-031).
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RetentionPolicy {
    /// Days of events kept, today included; `null` keeps them forever.
    // Required: a missing field is not taken for "forever" (serde defaults
    // a missing `Option` to `None` unless it is deserialized through a
    // function).
    #[schema(minimum = 1, maximum = 365000, required = true)]
    #[serde(deserialize_with = "whole_days")]
    pub days: Option<u32>,
}

/// `days` as JSON Schema counts an integer: `30` and `30.0` alike (the
/// OpenAPI document says `integer`, and a client may well send a float that
/// holds one); `30.5`, negatives and strings are refused.
fn whole_days<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::Deserialize;
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(f))
                .map(|f| f as u64)
        })
        .and_then(|v| u32::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("days must be a whole number, not {n}")))
}

/// The policy of the key's project.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetentionView {
    pub project: String,
    /// Days of events kept, today included; `null`: forever.
    pub days: Option<u32>,
    /// The first day stats answer from today; `null`: every day.
    pub horizon: Option<chrono::NaiveDate>,
}

/// Sets the retention of the key's project: stats stop answering from
/// days before the horizon at once; the next archive run deletes them
/// from both tiers.
#[utoipa::path(put, path = "/v1/admin/retention", tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    request_body = RetentionPolicy,
    responses(
        (status = 200, description = "The policy now in force", body = RetentionView),
        (status = 400, description = "Not a number of days from 1 to 365000, or null", body = crate::error::ErrorBody),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody),
        (status = 403, description = "Not a project key with the admin scope", body = crate::error::ErrorBody),
    ))]
pub async fn set_retention(
    State(state): State<AppState>,
    auth: Authenticated,
    body: axum::body::Bytes,
) -> Result<Json<RetentionView>, ApiError> {
    let key = auth.require(strata_model::Scope::Admin)?;
    let policy: RetentionPolicy = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(
            ErrorCode::InvalidBody,
            format!("the body must be {{\"days\": <1..365000 or null>}}: {e}"),
        )
    })?;
    let days = policy
        .days
        .map(strata_model::RetentionDays::new)
        .transpose()?;
    state.hot.set_retention(key.project_id, days).await?;
    tracing::info!(project = %key.project, retention = ?days.map(|d| d.to_string()), "retention set");
    Ok(Json(retention_view(key.project, days)))
}

fn retention_view(project: &str, days: Option<strata_model::RetentionDays>) -> RetentionView {
    RetentionView {
        project: project.to_owned(),
        days: days.map(|d| d.days()),
        horizon: days.map(|d| d.horizon(chrono::Utc::now().date_naive())),
    }
}

/// The retention of the key's project.
#[utoipa::path(get, path = "/v1/admin/retention", tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The policy in force", body = RetentionView),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody),
        (status = 403, description = "Not a project key with the admin scope", body = crate::error::ErrorBody),
    ))]
pub async fn retention(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<RetentionView>, ApiError> {
    let key = auth.require(strata_model::Scope::Admin)?;
    let days = state.hot.retention(key.project_id).await?;
    Ok(Json(retention_view(key.project, days)))
}

/// The declared properties of the key's project (ADR-043).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PropertiesView {
    pub project: String,
    /// The properties whose values the rollups of closed days keep, by
    /// name: breakdowns by them answer from the rollups.
    pub properties: Vec<String>,
    /// How many a project may declare.
    pub max: usize,
}

fn properties_view(project: &str, properties: Vec<String>) -> PropertiesView {
    PropertiesView {
        project: project.to_owned(),
        properties,
        max: strata_store::MAX_DECLARED_PROPERTIES,
    }
}

/// The declared properties of the key's project.
#[utoipa::path(get, path = "/v1/admin/properties", tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The declared properties", body = PropertiesView),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody),
        (status = 403, description = "Not a project key with the admin scope", body = crate::error::ErrorBody),
    ))]
pub async fn properties(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<PropertiesView>, ApiError> {
    let key = auth.require(strata_model::Scope::Admin)?;
    let declared = state.hot.declared_properties(key.project_id).await?;
    Ok(Json(properties_view(key.project, declared)))
}

/// Declares a top-level property of the key's project: the rollups of
/// days closed from now on keep its values, so breakdowns by it answer
/// from them; `strata-archiver rollups rebuild` adds them to days rolled
/// up before. Declaring a declared property changes nothing.
#[utoipa::path(put, path = "/v1/admin/properties/{property}", tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    params(("property" = String, Path, description = "The top-level property key, 1-256 bytes")),
    responses(
        (status = 200, description = "The declared properties", body = PropertiesView),
        (status = 400, description = "Not a property key, or the project already declares the most it may", body = crate::error::ErrorBody),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody),
        (status = 403, description = "Not a project key with the admin scope", body = crate::error::ErrorBody),
    ))]
pub async fn declare_property(
    State(state): State<AppState>,
    auth: Authenticated,
    axum::extract::Path(property): axum::extract::Path<String>,
) -> Result<Json<PropertiesView>, ApiError> {
    change_declared(&state, &auth, &property, true).await
}

/// Undeclares a property of the key's project: rollups written from now on
/// leave its values out.
#[utoipa::path(delete, path = "/v1/admin/properties/{property}", tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    params(("property" = String, Path, description = "The top-level property key")),
    responses(
        (status = 200, description = "The declared properties", body = PropertiesView),
        (status = 400, description = "Not a property key", body = crate::error::ErrorBody),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody),
        (status = 403, description = "Not a project key with the admin scope", body = crate::error::ErrorBody),
        (status = 404, description = "The property is not declared", body = crate::error::ErrorBody),
    ))]
pub async fn undeclare_property(
    State(state): State<AppState>,
    auth: Authenticated,
    axum::extract::Path(property): axum::extract::Path<String>,
) -> Result<Json<PropertiesView>, ApiError> {
    change_declared(&state, &auth, &property, false).await
}

/// Declares (or undeclares) `property` for the key's project.
async fn change_declared(
    state: &AppState,
    auth: &Authenticated,
    property: &str,
    declare: bool,
) -> Result<Json<PropertiesView>, ApiError> {
    let key = auth.require(strata_model::Scope::Admin)?;
    let property = strata_model::PropertyKey::parse(property)?;
    let declared = if declare {
        state
            .hot
            .declare_property(key.project_id, &property)
            .await?
    } else {
        state
            .hot
            .undeclare_property(key.project_id, &property)
            .await?
    };
    tracing::info!(project = %key.project, property = property.as_str(), declare, "declared properties changed");
    Ok(Json(properties_view(key.project, declared)))
}
