//! One classification of failures for every crate: each crate's error says
//! which [`ErrorKind`] it is and which stable [`code`](Classify::code) names
//! it, and the HTTP layer maps kinds to statuses in one match.

/// What kind of failure an error is, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request or a value in it is not acceptable.
    Invalid,
    /// No or an unknown credential.
    Unauthorized,
    /// A valid credential without the right.
    Forbidden,
    NotFound,
    /// The route exists but does not offer the request's method.
    MethodNotAllowed,
    /// The request conflicts with the current state (e.g. a run in progress).
    Conflict,
    /// The request is larger than a configured limit.
    TooLarge,
    /// The request's media type is not one the endpoint reads.
    UnsupportedMediaType,
    RateLimited,
    /// A dependency (PostgreSQL, the object store, Redis) is down or busy:
    /// retrying later may succeed.
    Unavailable,
    /// A bug or a broken invariant: never the caller's fault.
    Internal,
}

impl ErrorKind {
    /// The code a body carries when the error names none more specific.
    pub fn default_code(self) -> ErrorCode {
        match self {
            Self::Invalid => ErrorCode::InvalidRequest,
            Self::Unauthorized => ErrorCode::Unauthorized,
            Self::Forbidden => ErrorCode::Forbidden,
            Self::NotFound => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::Conflict => ErrorCode::Conflict,
            Self::TooLarge => ErrorCode::TooLarge,
            Self::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            Self::RateLimited => ErrorCode::RateLimited,
            Self::Unavailable => ErrorCode::Unavailable,
            Self::Internal => ErrorCode::Internal,
        }
    }
}

/// Every stable code an error body can carry (`code`, for programs): the one
/// vocabulary of the API. The OpenAPI document lists it as an enum, and
/// docs/api.md explains each; a test keeps both equal to this list.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    utoipa::ToSchema,
    strum::Display,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    // Requests: parameters and bodies.
    InvalidRequest,
    InvalidParameter,
    UnknownParameter,
    RepeatedParameter,
    InvalidQueryString,
    InvalidArgument,
    InvalidEvent,
    InvalidBody,
    MalformedJson,
    InvalidGzip,
    UnreadableBody,
    InvalidId,
    InvalidBatchId,
    InvalidSeq,
    InvalidUserId,
    BatchTooLarge,
    BodyTooLarge,
    TooLarge,
    UnsupportedContentType,
    UnsupportedContentEncoding,
    UnsupportedMediaType,
    // Keys and routes.
    Unauthorized,
    Forbidden,
    NotFound,
    NoSuchRoute,
    NoSuchBatch,
    MethodNotAllowed,
    // State and limits.
    Conflict,
    ArchiveRunInProgress,
    ArchiverNotConfigured,
    QueueNotConfigured,
    RateLimited,
    TooManyErasures,
    // Dependencies (retry later).
    Unavailable,
    DatabaseUnavailable,
    DatabaseBusy,
    DatabaseNotMigrated,
    ColdUnavailable,
    ObjectStoreUnavailable,
    RateLimiterUnavailable,
    QueueUnavailable,
    QueueFull,
    // Operations (command line, archiver).
    InvalidSetting,
    InvalidRedisUrl,
    InvalidColdUrl,
    ColdStoreOwned,
    ChunkChanged,
    ArchiveFenced,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Implemented by every crate's error type.
pub trait Classify {
    fn kind(&self) -> ErrorKind;

    /// A stable, machine-readable name of this failure.
    fn code(&self) -> ErrorCode {
        self.kind().default_code()
    }
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::*;

    #[test]
    fn a_code_is_the_same_word_in_a_body_and_in_the_logs() {
        for code in ErrorCode::iter() {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str(), "{code:?}");
            assert_eq!(code.to_string(), code.as_str());
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
        }
    }
}
