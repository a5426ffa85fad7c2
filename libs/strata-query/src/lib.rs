//! The tier-aware stats planner.
//!
//! Every request takes one PostgreSQL snapshot ([`strata_hot::ReadSnapshot`])
//! that yields both the cold manifest and the hot rows, so an archive commit
//! running at the same moment is seen wholly or not at all. From the
//! manifest and the hot chunk list it knows, per day, whether the hot tier,
//! the cold tier or both (late events) hold rows; it then runs the hot SQL
//! and the DuckDB query over the cold files concurrently and merges:
//!
//! - DAU: a day held by one tier takes that tier's distinct count; a day held
//!   by both takes the size of the union of both tiers' user sets.
//! - Top events: counts add; distinct users are counted over the union of
//!   both tiers' (event_type, user) pairs, inside DuckDB.
//! - Retention: cohorts come from `user_first_seen` (first event ever, kept
//!   at ingest); each tier returns the (user, period) pairs of cohort users,
//!   and a user counts once per period whichever tiers saw them.
//!
//! Nothing is ever added across tiers that could double count.

mod duck;
mod error;
mod meta;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_cold::ColdFiles;
use strata_hot::HotStore;

pub use duck::{DuckConfig, DuckEngine};
pub use error::QueryError;
pub use meta::{CacheMeta, ColdMeta, DayRangeMeta, HotMeta, Meta};
pub use stats::{Cohort, DauPoint, DauResponse, RetentionResponse, TopEvent, TopEventsResponse};

/// Planner settings.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Longest `[from, to]` range accepted, in days.
    pub max_query_days: u32,
    /// Longest wait for an archive commit in progress before answering 503.
    pub lock_timeout: Duration,
    pub duckdb: DuckConfig,
    /// Cache of remote cold files.
    pub cache_dir: PathBuf,
    pub cache_bytes: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            max_query_days: 3660,
            lock_timeout: Duration::from_secs(10),
            duckdb: DuckConfig::default(),
            cache_dir: PathBuf::from(".strata/cold-cache"),
            cache_bytes: 2 << 30,
        }
    }
}

/// Answers stats requests from both tiers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Planner {
    hot: HotStore,
    files: ColdFiles,
    duck: Arc<DuckEngine>,
    config: QueryConfig,
}

impl Planner {
    pub fn new(
        hot: HotStore,
        cold: strata_cold::ColdStore,
        config: QueryConfig,
    ) -> Result<Self, QueryError> {
        let files = ColdFiles::new(cold, &config.cache_dir, config.cache_bytes)?;
        let duck = Arc::new(DuckEngine::open(&config.duckdb)?);
        Ok(Self {
            hot,
            files,
            duck,
            config,
        })
    }

    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// Bytes held by the cold-file cache.
    pub fn cached_bytes(&self) -> u64 {
        self.files.cached_bytes()
    }
}
