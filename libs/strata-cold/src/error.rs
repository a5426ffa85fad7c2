use std::collections::BTreeSet;

use chrono::NaiveDate;
use strata_model::ErrorCode;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ColdError {
    #[error("invalid cold tier URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("verification of {key} failed: {reason}")]
    Verification { key: String, reason: String },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The store's owner marker names another deployment (ADR-037).
    #[error(
        "the cold store {url} belongs to deployment {owner} (its _strata/owner marker), not to this database's deployment {deployment}: refusing to write or delete anything there. Point STRATA_COLD_URL at this deployment's own store (docs/operations.md, \"Backup and restore\")"
    )]
    Owned {
        url: String,
        owner: uuid::Uuid,
        deployment: uuid::Uuid,
    },
    #[error("could not read the cold files of {} day(s) ({}): {reason}", days.len(), days_list(days))]
    Unreadable {
        days: BTreeSet<NaiveDate>,
        reason: String,
    },
}

fn days_list(days: &BTreeSet<NaiveDate>) -> String {
    days.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ColdError {
    /// True when the object store failed (unreachable, erroring, timing
    /// out), as opposed to a bad file: also when the failure surfaced
    /// through the Parquet writer's upload.
    pub fn is_object_store(&self) -> bool {
        match self {
            Self::ObjectStore(_) => true,
            Self::Parquet(parquet::errors::ParquetError::External(inner)) => {
                inner.downcast_ref::<object_store::Error>().is_some()
            }
            _ => false,
        }
    }
}

impl strata_model::Classify for ColdError {
    fn kind(&self) -> strata_model::ErrorKind {
        use strata_model::ErrorKind;
        match self {
            Self::BadUrl { .. } => ErrorKind::Invalid,
            Self::Unreadable { .. } => ErrorKind::Unavailable,
            Self::Owned { .. } => ErrorKind::Conflict,
            _ if self.is_object_store() => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            Self::BadUrl { .. } => ErrorCode::InvalidColdUrl,
            Self::Unreadable { .. } => ErrorCode::ColdUnavailable,
            Self::Owned { .. } => ErrorCode::ColdStoreOwned,
            _ if self.is_object_store() => ErrorCode::ObjectStoreUnavailable,
            _ => ErrorCode::Internal,
        }
    }
}
