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
    pub fn default_code(self) -> &'static str {
        match self {
            Self::Invalid => "invalid_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::TooLarge => "too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

/// Implemented by every crate's error type.
pub trait Classify {
    fn kind(&self) -> ErrorKind;

    /// A stable, machine-readable name of this failure (`snake_case`).
    fn code(&self) -> &'static str {
        self.kind().default_code()
    }
}
