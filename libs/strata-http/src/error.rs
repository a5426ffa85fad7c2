//! The one place errors become HTTP responses. Every crate's error says its
//! [`ErrorKind`] and a stable code ([`Classify`]); [`status`] maps kinds to
//! statuses in one match. Every error body is
//! `{"error": "<for people>", "code": "<for programs>", "request_id": "…"}`
//! (plus `days` when cold days could not be read); the request id is added
//! by [`add_request_id`], which knows the request.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use strata_archive::ArchiveError;
use strata_cold::ColdError;
use strata_model::{BatchError, Classify, ErrorCode, ErrorKind, ModelError};
use strata_query::QueryError;
use strata_queue::QueueError;
use strata_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ApiError {
    /// Raised by the HTTP layer itself (authentication, request shape).
    #[error("{message}")]
    Http {
        kind: ErrorKind,
        code: ErrorCode,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Cold(#[from] ColdError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The status of each kind: the only such mapping.
pub fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    pub fn new(kind: ErrorKind, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Http {
            kind,
            code,
            message: message.into(),
        }
    }

    /// A bad request parameter or body (`code` names which rule).
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, ErrorCode::Forbidden, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, ErrorCode::Internal, message)
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Http { kind, .. } => *kind,
            Self::Store(e) => e.kind(),
            Self::Query(e) => e.kind(),
            Self::Archive(e) => e.kind(),
            Self::Model(e) => e.kind(),
            Self::Batch(e) => e.kind(),
            Self::Cold(e) => e.kind(),
            Self::Queue(e) => e.kind(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Http { code, .. } => *code,
            Self::Store(e) => e.code(),
            Self::Query(e) => e.code(),
            Self::Archive(e) => e.code(),
            Self::Model(e) => e.code(),
            Self::Batch(e) => e.code(),
            Self::Cold(e) => e.code(),
            Self::Queue(e) => e.code(),
        }
    }

    pub fn status(&self) -> StatusCode {
        status(self.kind())
    }

    /// What the client reads: internal detail and dependency detail
    /// (endpoints, buckets, users) go to the log only.
    fn public_message(&self) -> String {
        match (self.kind(), self) {
            (ErrorKind::Internal, _) => "internal error; see the server log".to_owned(),
            (_, Self::Query(QueryError::ColdUnavailable { days, .. })) => {
                let list: Vec<String> = days.iter().map(ToString::to_string).collect();
                format!(
                    "the cold tier could not be read for {} day(s): {}; retry later",
                    days.len(),
                    list.join(", ")
                )
            }
            (ErrorKind::Unavailable, Self::Http { message, .. }) => message.clone(),
            (
                ErrorKind::Unavailable,
                Self::Queue(e @ (QueueError::Unavailable(_) | QueueError::Full(_))),
            ) => e.to_string(),
            (ErrorKind::Unavailable, _) => "the database is unavailable; retry later".to_owned(),
            _ => self.to_string(),
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// For people: what was wrong and, where it helps, what would be
    /// accepted.
    #[schema(example = "from 2026-02-02 is after to 2026-02-01")]
    pub error: String,
    /// For programs: a stable name of the failure, one of the listed codes
    /// (docs/api.md says what each means).
    #[schema(example = "invalid_parameter")]
    pub code: ErrorCode,
    /// The request's `x-request-id` (also sent back as that header): quote
    /// it to find the request's log lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "4f1c9a7e-3b2d-4c5e-8f60-1a2b3c4d5e6f")]
    pub request_id: Option<String>,
    /// Only with `cold_unavailable`: the days that could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<chrono::NaiveDate>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self.kind() {
            ErrorKind::Internal => {
                tracing::error!(error = %self, code = self.code().as_str(), "request failed")
            }
            ErrorKind::Unavailable => {
                tracing::warn!(error = %self, code = self.code().as_str(), "dependency unavailable");
            }
            _ => {}
        }
        let days = match &self {
            Self::Query(QueryError::ColdUnavailable { days, .. }) => {
                Some(days.iter().copied().collect())
            }
            _ => None,
        };
        let body = ErrorBody {
            error: self.public_message(),
            code: self.code(),
            request_id: None,
            days,
        };
        let mut response = (status, Json(body.clone())).into_response();
        response.extensions_mut().insert(body);
        let headers = response.headers_mut();
        match status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"strata\""),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                let after = if self.code() == ErrorCode::ColdUnavailable {
                    "5"
                } else {
                    "1"
                };
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static(after));
            }
            _ => {}
        }
        response
    }
}

/// Adds the request id (set by the request-id layer outside this one) to
/// every error body: a client quoting it lets an operator find the log
/// lines of that request.
pub(crate) async fn add_request_id(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    let body = response.extensions().get::<ErrorBody>().cloned();
    let (Some(request_id), Some(body)) = (request_id, body) else {
        return response;
    };
    let body = ErrorBody {
        request_id: Some(request_id),
        ..body.clone()
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let fresh = Json(body).into_response();
    Response::from_parts(parts, fresh.into_body())
}
