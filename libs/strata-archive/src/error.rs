use thiserror::Error;

#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Hot(#[from] strata_hot::HotError),
    #[error(transparent)]
    Cold(#[from] strata_cold::ColdError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
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
        matches!(self, Self::Database(e)
            if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("55P03"))
    }

    /// True when the object store itself failed: later chunks of the same
    /// run would fail the same way, so the run stops early.
    pub fn is_object_store(&self) -> bool {
        matches!(self, Self::Cold(e) if e.is_object_store())
    }
}
