//! The one place errors become HTTP statuses. Every error body is
//! `{"error": "..."}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use strata_hot::HotError;
use strata_model::{BatchError, ModelError};
use strata_query::QueryError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// A dependency other than PostgreSQL is down (503 with this message).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Hot(#[from] HotError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::TooManyEvents { .. } => Self::PayloadTooLarge(e.to_string()),
            BatchError::Malformed(_) | BatchError::WrongShape(_) => Self::BadRequest(e.to_string()),
        }
    }
}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Hot(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Query(QueryError::Invalid(_)) => StatusCode::BAD_REQUEST,
            Self::Query(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Hot(_) | Self::Query(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // 503 bodies carry a stable code and a fixed message: the driver's
        // detail (endpoints, buckets, users) goes to the log only.
        if let Self::Query(QueryError::ColdUnavailable { days, .. }) = &self {
            tracing::warn!(error = %self, "cold tier unavailable");
            let list: Vec<String> = days.iter().map(ToString::to_string).collect();
            let body = serde_json::json!({
                "error": format!(
                    "the cold tier could not be read for {} day(s): {}; retry later",
                    days.len(),
                    list.join(", ")
                ),
                "code": "cold_unavailable",
                "days": days,
            });
            let mut response = (status, Json(body)).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return response;
        }
        let (message, code) = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
            ("internal error; see the server log".to_owned(), None)
        } else if let Self::Unavailable(m) = &self {
            tracing::warn!(error = %m, "dependency unavailable");
            (m.clone(), Some("dependency_unavailable"))
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error = %self, "dependency unavailable");
            (
                "the database is unavailable; retry later".to_owned(),
                Some("database_unavailable"),
            )
        } else {
            (self.to_string(), None)
        };
        let body = match code {
            Some(code) => serde_json::json!({ "error": message, "code": code }),
            None => serde_json::json!({ "error": message }),
        };
        let mut response = (status, Json(body)).into_response();
        match status {
            StatusCode::UNAUTHORIZED => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"strata\""),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
