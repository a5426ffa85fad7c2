use std::collections::BTreeSet;

use chrono::NaiveDate;
use strata_cold::ColdError;
use strata_model::{Classify, ErrorCode, ModelError};
use strata_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum QueryError {
    /// Bad request parameters (400).
    #[error(transparent)]
    Invalid(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Needed cold days could not be read; never answered partially (503).
    #[error("{}", cold_message(days, reason))]
    ColdUnavailable {
        days: BTreeSet<NaiveDate>,
        reason: String,
    },
    #[error("cold query failed: {0}")]
    Engine(#[from] duckdb::Error),
    #[error("cold tier: {0}")]
    Cold(#[source] ColdError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cold query task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    #[error("internal error: {0}")]
    Internal(String),
}

fn cold_message(days: &BTreeSet<NaiveDate>, reason: &str) -> String {
    let list: Vec<String> = days.iter().map(ToString::to_string).collect();
    format!(
        "the cold tier could not be read for {} day(s): {} ({reason})",
        days.len(),
        list.join(", ")
    )
}

impl From<ColdError> for QueryError {
    fn from(e: ColdError) -> Self {
        match e {
            ColdError::Unreadable { days, reason } => Self::ColdUnavailable { days, reason },
            other => Self::Cold(other),
        }
    }
}

impl QueryError {
    /// Whether the caller should retry later (503).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_unavailable(),
            Self::ColdUnavailable { .. } => true,
            _ => false,
        }
    }
}

impl Classify for QueryError {
    fn kind(&self) -> strata_model::ErrorKind {
        use strata_model::ErrorKind;
        match self {
            Self::Invalid(e) => e.kind(),
            Self::Store(e) => e.kind(),
            Self::ColdUnavailable { .. } => ErrorKind::Unavailable,
            Self::Cold(e) => e.kind(),
            Self::Engine(_) | Self::Io { .. } | Self::Task(_) | Self::Internal(_) => {
                ErrorKind::Internal
            }
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(e) => e.code(),
            Self::Store(e) => e.code(),
            Self::ColdUnavailable { .. } => ErrorCode::ColdUnavailable,
            Self::Cold(e) => e.code(),
            Self::Engine(_) | Self::Io { .. } | Self::Task(_) | Self::Internal(_) => {
                ErrorCode::Internal
            }
        }
    }
}
