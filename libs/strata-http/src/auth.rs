//! API-key authentication: `Authorization: Bearer <key>` or `X-API-Key`.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use strata_hot::AuthenticatedKey;
use strata_model::{ApiKey, Scope};

use crate::{ApiError, AppState};

/// The caller's key, checked against PostgreSQL (unknown and revoked: 401).
#[derive(Debug, Clone)]
pub struct Authenticated(pub AuthenticatedKey);

impl Authenticated {
    /// 403 unless the key carries `scope`.
    pub fn require(&self, scope: Scope) -> Result<&AuthenticatedKey, ApiError> {
        if self.0.scopes.contains(scope) {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden(format!(
                "this key lacks the {scope} scope (it has: {})",
                self.0.scopes
            )))
        }
    }
}

fn presented_key(parts: &Parts) -> Result<&str, ApiError> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        let v = v
            .to_str()
            .map_err(|_| ApiError::Unauthorized("Authorization header is not ASCII".into()))?;
        let (scheme, key) = v.trim().split_once(' ').unwrap_or((v, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
            return Err(ApiError::Unauthorized(
                "Authorization must be 'Bearer <api key>'".into(),
            ));
        }
        return Ok(key.trim());
    }
    if let Some(v) = parts.headers.get("x-api-key") {
        return v
            .to_str()
            .map(str::trim)
            .map_err(|_| ApiError::Unauthorized("X-API-Key header is not ASCII".into()));
    }
    Err(ApiError::Unauthorized(
        "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'".into(),
    ))
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let hash = ApiKey::hash_presented(presented_key(parts)?);
        state
            .hot
            .authenticate(&hash)
            .await?
            .map(Self)
            .ok_or_else(|| ApiError::Unauthorized("unknown or revoked API key".into()))
    }
}
