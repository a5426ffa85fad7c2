//! Pieces every Strata binary shares: clap configuration blocks (each flag
//! also read from a `STRATA_*` environment variable) and telemetry set-up.

pub mod config;
mod shutdown;
pub mod telemetry;

pub use shutdown::shutdown_signal;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("could not initialise logging: {0}")]
    Telemetry(String),
}
