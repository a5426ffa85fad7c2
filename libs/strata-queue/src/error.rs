use strata_model::{Classify, ErrorCode, ErrorKind};
use strata_store::StoreError;
use thiserror::Error;

/// What can go wrong in queue mode. Messages shown to clients are the
/// variants' texts, so they never carry the server's address.
#[derive(Debug, Error)]
pub enum QueueError {
    /// NATS is down, unreachable or did not acknowledge in time.
    #[error("the ingest queue is unavailable; retry later")]
    Unavailable(String),
    /// The stream is at its configured limit (bytes or messages).
    #[error("the ingest queue is full; retry later")]
    Full(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// A message that cannot be read as a queued batch part.
    #[error("undecodable message: {0}")]
    Decode(String),
    #[error("queue error: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QueueError {
    /// The detail for the log (the client sees [`std::fmt::Display`]).
    pub fn detail(&self) -> String {
        match self {
            Self::Unavailable(d) | Self::Full(d) => d.clone(),
            other => other.to_string(),
        }
    }

    /// Whether trying again later may succeed (NATS or PostgreSQL down).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Full(_) => true,
            Self::Store(e) => e.is_unavailable(),
            _ => false,
        }
    }
}

impl Classify for QueueError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Unavailable(_) | Self::Full(_) => ErrorKind::Unavailable,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Invalid(_) => ErrorKind::Invalid,
            Self::Decode(_) | Self::Internal(_) => ErrorKind::Internal,
            Self::Store(e) => e.kind(),
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            Self::Unavailable(_) => ErrorCode::QueueUnavailable,
            Self::Full(_) => ErrorCode::QueueFull,
            Self::Store(e) => e.code(),
            other => other.kind().default_code(),
        }
    }
}
