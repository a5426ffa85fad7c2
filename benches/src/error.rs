//! The one error type of the benchmark library.

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("PostgreSQL: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("hot tier: {0}")]
    Store(#[from] strata_store::StoreError),
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("DuckDB: {0}")]
    Duck(#[from] duckdb::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A step of the run failed or a measured system misbehaved.
    #[error("{0}")]
    Failed(String),
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// Shorthand for a failed step.
pub(crate) fn failed(msg: impl Into<String>) -> BenchError {
    BenchError::Failed(msg.into())
}
