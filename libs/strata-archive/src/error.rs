use strata_model::{Classify, ErrorCode};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] strata_store::StoreError),
    #[error(transparent)]
    Cold(#[from] strata_cold::ColdError),
    #[error(
        "chunk {chunk} changed while it was archived (late events arrived: {detail}); it stays hot and is retried"
    )]
    ChunkChanged { chunk: String, detail: String },
    /// The archive lease names another run: this one lost the job (its
    /// lock session ended and a successor took over) and commits nothing.
    #[error(
        "archive run {run_id} no longer owns the archive job (now held by run {holder:?}); nothing of it was committed"
    )]
    Fenced { run_id: i64, holder: Option<i64> },
    #[error("archive pipeline task failed: {0}")]
    Pipeline(String),
    /// The commit of the chunk's group failed; every chunk of it stays hot.
    #[error("the commit of this chunk's group failed: {0}")]
    GroupCommit(String),
}

impl ArchiveError {
    /// PostgreSQL gave up waiting for a lock (`lock_timeout`, SQLSTATE 55P03).
    pub fn is_lock_timeout(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_lock_timeout())
    }

    /// True when the object store itself failed: later chunks of the same
    /// run would fail the same way, so the run stops early.
    pub fn is_object_store(&self) -> bool {
        matches!(self, Self::Cold(e) if e.is_object_store())
    }
}

impl Classify for ArchiveError {
    fn kind(&self) -> strata_model::ErrorKind {
        use strata_model::ErrorKind;
        match self {
            Self::Store(e) => e.kind(),
            Self::Cold(e) => e.kind(),
            Self::ChunkChanged { .. } | Self::Fenced { .. } => ErrorKind::Conflict,
            Self::Pipeline(_) | Self::GroupCommit(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            Self::Store(e) => e.code(),
            Self::Cold(e) => e.code(),
            Self::ChunkChanged { .. } => ErrorCode::ChunkChanged,
            Self::Fenced { .. } => ErrorCode::ArchiveFenced,
            Self::Pipeline(_) | Self::GroupCommit(_) => ErrorCode::Internal,
        }
    }
}
