use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::CoreError;

/// Structured JSON logs on stderr (stdout stays free for command output such
/// as a new API key). The level comes from `RUST_LOG`, `info` by default (sqlx notices
/// such as "relation already exists, skipping" only at `warn`).
pub fn init_logging() -> Result<(), CoreError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_current_span(true)
        .with_span_list(false)
        .with_span_events(FmtSpan::NONE)
        .try_init()
        .map_err(|e| CoreError::Telemetry(e.to_string()))
}
