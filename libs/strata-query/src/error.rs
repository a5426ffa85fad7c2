use std::collections::BTreeSet;

use chrono::NaiveDate;
use strata_cold::ColdError;
use strata_hot::HotError;
use strata_model::ModelError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum QueryError {
    /// Bad request parameters (400).
    #[error(transparent)]
    Invalid(#[from] ModelError),
    #[error(transparent)]
    Hot(#[from] HotError),
    /// Needed cold days could not be read; never answered partially (503).
    #[error("{}", cold_message(days, reason))]
    ColdUnavailable {
        days: BTreeSet<NaiveDate>,
        reason: String,
    },
    #[error("cold query failed: {0}")]
    Engine(#[from] duckdb::Error),
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
            other => Self::Internal(other.to_string()),
        }
    }
}

impl QueryError {
    /// Whether the caller should retry later (503).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Hot(e) => e.is_unavailable(),
            Self::ColdUnavailable { .. } => true,
            _ => false,
        }
    }
}
