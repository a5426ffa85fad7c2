//! API-key authentication: `Authorization: Bearer <key>` or `X-API-Key`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use strata_model::{ApiKey, ErrorCode, ErrorKind, ProjectId, Scope};
use strata_store::{AuthenticatedKey, KeyOwner};

use crate::ratelimit::{Decision, Limit};
use crate::{ApiError, AppState};

/// The caller's key, checked against PostgreSQL (unknown and revoked: 401).
#[derive(Debug, Clone)]
pub struct Authenticated(pub AuthenticatedKey);

/// A project key that carries the scope a handler asked for: everything it
/// may touch is this project's.
#[derive(Debug, Clone, Copy)]
pub struct ProjectKey<'a> {
    pub project_id: ProjectId,
    pub project: &'a str,
}

impl Authenticated {
    /// A project key with `scope`; 403 otherwise (operator keys have no
    /// project, so they never pass here).
    pub fn require(&self, scope: Scope) -> Result<ProjectKey<'_>, ApiError> {
        match &self.0.owner {
            KeyOwner::Project { id, name } if self.0.scopes.contains(scope) => Ok(ProjectKey {
                project_id: *id,
                project: name,
            }),
            KeyOwner::Project { .. } => Err(ApiError::forbidden(format!(
                "this key lacks the {scope} scope (it has: {})",
                self.0.scopes
            ))),
            KeyOwner::Operator => Err(ApiError::forbidden(format!(
                "an operator key belongs to no project; use a project key with the {scope} scope"
            ))),
        }
    }

    /// The service-wide view: `Ok(None)` for an operator key (every
    /// project), `Ok(Some(project))` for a project key with the admin scope
    /// (that project only); 403 otherwise.
    pub fn require_admin_view(&self) -> Result<Option<ProjectKey<'_>>, ApiError> {
        match self.0.owner {
            KeyOwner::Operator => Ok(None),
            KeyOwner::Project { .. } => self.require(Scope::Admin).map(Some),
        }
    }

    /// 403 unless this is an operator key.
    pub fn require_operator(&self) -> Result<(), ApiError> {
        match self.0.owner {
            KeyOwner::Operator => Ok(()),
            KeyOwner::Project { .. } => Err(ApiError::forbidden(
                "this needs an operator key (created with `strata-api keys create --operator`): archive runs concern every project",
            )),
        }
    }

    /// The project name, or `(operator)`, for logs.
    pub fn owner_name(&self) -> &str {
        match &self.0.owner {
            KeyOwner::Project { name, .. } => name,
            KeyOwner::Operator => strata_store::OPERATOR_OWNER,
        }
    }
}

fn presented_key(parts: &Parts) -> Result<&str, ApiError> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        let v = v
            .to_str()
            .map_err(|_| ApiError::unauthorized("Authorization header is not ASCII"))?;
        let (scheme, key) = v.trim().split_once(' ').unwrap_or((v, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
            return Err(ApiError::unauthorized(
                "Authorization must be 'Bearer <api key>'",
            ));
        }
        return Ok(key.trim());
    }
    if let Some(v) = parts.headers.get("x-api-key") {
        return v
            .to_str()
            .map(str::trim)
            .map_err(|_| ApiError::unauthorized("X-API-Key header is not ASCII"));
    }
    Err(ApiError::unauthorized(
        "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
    ))
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Already checked by the rate-limit middleware of this request.
        if let Some(done) = parts.extensions.get::<Self>() {
            return Ok(done.clone());
        }
        let hash = ApiKey::hash_presented(presented_key(parts)?);
        let found = match state.hot.authenticate(&hash).await {
            Ok(found) => {
                if let Some(q) = &state.queue {
                    q.remember(&hash, found.as_ref());
                }
                found
            }
            // Queue mode keeps ingest up through a database outage with the
            // keys it saw accepted recently (ADR-034).
            Err(e) if e.is_unavailable() => {
                match state.queue.as_ref().and_then(|q| q.recall(&hash)) {
                    Some(key) => Some(key),
                    None => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        found
            .map(Self)
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked API key"))
    }
}

/// Authenticates `/v1` requests once and applies the key's rate limit:
/// `RateLimit-Limit/Remaining/Reset` on every checked answer, 429 with
/// `Retry-After` over the limit.
pub(crate) async fn authenticate_and_limit(
    State(state): State<AppState>,
    auth: Authenticated,
    mut req: Request,
    next: Next,
) -> Response {
    let own = auth.0.limit.map(|l| Limit {
        rate: l.rate_per_sec,
        burst: l.burst,
    });
    // A client key's users each have their own bucket (ADR-040).
    let address = if auth.0.client {
        client_address(&req, state.trusted_proxy_hops)
    } else {
        None
    };
    let bucket = match address {
        Some(ip) => format!("{}/{ip}", auth.0.key_id),
        None => auth.0.key_id.to_string(),
    };
    tracing::Span::current().record("project", auth.owner_name());
    req.extensions_mut().insert(auth);
    let Some(limiter) = &state.limiter else {
        return next.run(req).await;
    };
    match limiter.check(&bucket, own).await {
        Decision::Allowed {
            limit,
            remaining,
            reset_secs,
        } => {
            let mut resp = next.run(req).await;
            rate_headers(resp.headers_mut(), limit, remaining, reset_secs);
            resp
        }
        Decision::Limited {
            limit,
            retry_after_secs,
            reset_secs,
        } => {
            let mut resp = ApiError::new(ErrorKind::RateLimited, ErrorCode::RateLimited, format!(
                "rate limit of {} requests per second (burst {}) exceeded; retry in {retry_after_secs} s",
                limit.rate, limit.burst
            ))
            .into_response();
            let h = resp.headers_mut();
            rate_headers(h, limit, 0, reset_secs);
            h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            resp
        }
        Decision::Unchecked => next.run(req).await,
        Decision::Unavailable => ApiError::new(
            ErrorKind::Unavailable,
            ErrorCode::RateLimiterUnavailable,
            "rate limiting is unavailable (Redis); retry later",
        )
        .into_response(),
    }
}

/// The address a request came from: with `hops` trusted proxies in front,
/// the `X-Forwarded-For` entry `hops` places from the end (the address the
/// outermost trusted proxy saw); otherwise, or when the header is short or
/// unreadable, the connecting address.
fn client_address(req: &Request, hops: u8) -> Option<IpAddr> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if hops == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    forwarded
        .len()
        .checked_sub(usize::from(hops))
        .and_then(|i| forwarded[i].parse().ok())
        .or(peer)
}

fn rate_headers(h: &mut HeaderMap, limit: Limit, remaining: u64, reset_secs: u64) {
    h.insert("ratelimit-limit", HeaderValue::from(limit.burst));
    h.insert("ratelimit-remaining", HeaderValue::from(remaining));
    h.insert("ratelimit-reset", HeaderValue::from(reset_secs));
}

/// Who the presented key is: what a client (the dashboard) needs to know
/// which views it can offer, without trying each one.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// The key's project; `null` for an operator key.
    pub project: Option<String>,
    pub operator: bool,
    /// Sorted: `ingest`, `read`, `admin`, `operator`.
    pub scopes: Vec<&'static str>,
    /// A client key: ingest only, rate limited per client address.
    pub client: bool,
}

/// The presented key's project and scopes (any valid key; no scope needed).
#[utoipa::path(get, path = "/v1/key", tag = "auth",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The key's project and scopes", body = KeyView),
        (status = 401, description = "Missing, unknown or revoked API key", body = crate::error::ErrorBody),
    ))]
pub async fn whoami(auth: Authenticated) -> axum::Json<KeyView> {
    let (project, operator) = match &auth.0.owner {
        KeyOwner::Project { name, .. } => (Some(name.clone()), false),
        KeyOwner::Operator => (None, true),
    };
    axum::Json(KeyView {
        project,
        operator,
        scopes: auth.0.scopes.iter().map(Scope::as_str).collect(),
        client: auth.0.client,
    })
}
