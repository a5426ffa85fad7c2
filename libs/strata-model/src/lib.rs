//! Strata's event model: the domain types every other crate speaks, and the
//! validation that turns an untrusted ingest body into them.
//!
//! Every value that crosses the API boundary is parsed exactly once, here, into
//! a newtype whose constructor is the only way to build it (`EventId::parse`,
//! `UserId::parse`, …). Code past this crate never re-checks a field.

mod batch;
mod days;
mod error;
mod event;
mod file_stats;
mod funnel;
mod generate;
mod group_by;
mod key;
mod kind;
pub mod pgjson;
mod query;
mod retention;
mod user_hash;

pub use batch::{BatchError, IngestLimits, ParsedBatch, Rejection, parse_batch};
pub use days::{day_number, duckdb_day_number, from_day_number, pg_day_number};
pub use error::ModelError;
pub use event::{EventId, EventTime, EventType, Properties, UserId, ValidEvent, WireEvent};
pub use file_stats::ColumnStats;
pub use funnel::{FunnelSteps, FunnelWindow, MAX_STEPS, MIN_STEPS};
pub use generate::{Generator, GeneratorSpec};
pub use group_by::{GroupBy, MAX_PROPERTY_KEY_BYTES, PropertyKey, property_text};
pub use key::{ApiKey, KeyHash, ProjectId, ProjectName, Scope, Scopes};
pub use kind::{Classify, ErrorCode, ErrorKind};
pub use query::{DayRange, Period, parse_bounded};
pub use retention::RetentionDays;
pub use user_hash::user_hash;

/// Called at named points of a long operation (an archive run, a stats
/// request); tests use it to act there, the archiver's
/// `STRATA_ARCHIVER_FAILPOINT` to kill the process there.
pub type FailPointHook = std::sync::Arc<dyn Fn(&'static str) + Send + Sync>;
