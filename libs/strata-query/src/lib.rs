//! The tier-aware stats planner.
//!
//! Every request takes one PostgreSQL snapshot ([`strata_store::ReadSnapshot`])
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
//! - Funnels: both tiers give their events of the steps' types with their
//!   times, and each user's level is computed over the union.
//!
//! Nothing is ever added across tiers that could double count.

mod breakdown;
mod dau;
mod duck;
mod error;
mod first_event;
mod funnel;
pub mod merge;
mod meta;
mod plan;
mod response;
mod retention;
mod top_events;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use strata_cold::ColdReadCache;
use strata_model::FailPointHook;
use strata_store::Store;

pub use duck::{DuckConfig, DuckEngine};
pub use error::QueryError;
pub use meta::{CacheMeta, ColdMeta, DayRangeMeta, HotMeta, Meta, RetentionMeta, RollupMeta};
pub use response::{
    Cohort, DauGroup, DauPoint, DauResponse, FunnelGroup, FunnelResponse, FunnelStep, GroupKey,
    GroupKind, RetentionResponse, TopEvent, TopEventsGroup, TopEventsResponse,
};

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
    /// How often cached files the manifest no longer lists (replaced by an
    /// erasure or a compaction, expired) are deleted (ADR-037); the first
    /// pass runs at start, over the files a restarted process adopted.
    pub cache_check_interval: Duration,
    /// Tests only: called at named points of a request
    /// (`retention_cold_ordinals`: cold users read, not yet mapped).
    pub failpoint: FailPoint,
}

/// An optional [`FailPointHook`]; `Debug` without the closure.
#[derive(Clone, Default)]
pub struct FailPoint(pub Option<FailPointHook>);

impl std::fmt::Debug for FailPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "FailPoint(set)"
        } else {
            "FailPoint(none)"
        })
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            max_query_days: 3660,
            lock_timeout: Duration::from_secs(10),
            duckdb: DuckConfig::default(),
            cache_dir: PathBuf::from(".strata/cold-cache"),
            cache_bytes: 2 << 30,
            cache_check_interval: Duration::from_secs(30),
            failpoint: FailPoint::default(),
        }
    }
}

/// Totals since start, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlannerCounters {
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub fetched_bytes: u64,
    pub hot_rows: u64,
    pub cold_rows: u64,
    pub cold_bytes: u64,
    pub rollup_days: u64,
}

#[derive(Debug, Default)]
pub(crate) struct AtomicCounters {
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    fetched_bytes: AtomicU64,
    hot_rows: AtomicU64,
    cold_rows: AtomicU64,
    cold_bytes: AtomicU64,
    rollup_days: AtomicU64,
}

impl AtomicCounters {
    pub(crate) fn add(&self, meta: &Meta) {
        let add = |a: &AtomicU64, v: u64| {
            a.fetch_add(v, Ordering::Relaxed);
        };
        add(&self.cache_hits, meta.cold.cache.hits);
        add(&self.cache_misses, meta.cold.cache.misses);
        add(&self.fetched_bytes, meta.cold.cache.fetched_bytes);
        add(&self.hot_rows, meta.hot.rows);
        add(&self.cold_rows, meta.cold.rows);
        add(&self.cold_bytes, meta.cold.bytes);
        add(
            &self.rollup_days,
            (meta.cold.rollups.days + meta.hot.rollups.days) as u64,
        );
    }
}

/// Answers stats requests from both tiers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Planner {
    hot: Store,
    files: ColdReadCache,
    duck: Arc<DuckEngine>,
    config: QueryConfig,
    counters: Arc<AtomicCounters>,
}

impl Planner {
    pub fn new(
        hot: Store,
        cold: strata_cold::ColdStore,
        config: QueryConfig,
    ) -> Result<Self, QueryError> {
        let files = ColdReadCache::new(cold, &config.cache_dir, config.cache_bytes)?;
        let duck = Arc::new(DuckEngine::open(&config.duckdb)?);
        Ok(Self {
            hot,
            files,
            duck,
            config,
            counters: Arc::default(),
        })
    }

    /// What the planner has read and fetched since it started.
    pub fn counters(&self) -> PlannerCounters {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PlannerCounters {
            cache_hits: get(&c.cache_hits),
            cache_misses: get(&c.cache_misses),
            fetched_bytes: get(&c.fetched_bytes),
            hot_rows: get(&c.hot_rows),
            cold_rows: get(&c.cold_rows),
            cold_bytes: get(&c.cold_bytes),
            rollup_days: get(&c.rollup_days),
        }
    }

    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// Deletes the cached cold files that the manifest no longer lists
    /// (and no request is reading); returns how many.
    pub async fn drop_replaced_files(&self) -> Result<usize, QueryError> {
        let cached = self.files.cached_keys();
        if cached.is_empty() {
            return Ok(0);
        }
        let listed = self.hot.manifest().listed(&cached).await?;
        let gone: Vec<String> = cached.into_iter().filter(|k| !listed.contains(k)).collect();
        Ok(self.files.drop_keys(&gone))
    }

    /// Runs [`Self::drop_replaced_files`] every `cache_check_interval`
    /// (the first pass at once); nothing for `file://` stores, read in
    /// place.
    pub fn spawn_cache_keeper(&self) -> Option<tokio::task::JoinHandle<()>> {
        if self.files.is_local() || self.config.cache_check_interval.is_zero() {
            return None;
        }
        let planner = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(planner.config.cache_check_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match planner.drop_replaced_files().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(files = n, "dropped cached cold files no longer listed")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cold cache not checked against the manifest; will retry")
                    }
                }
            }
        }))
    }

    /// Whether the cold store answers (for `/readyz`).
    pub async fn check_cold(&self, timeout: Duration) -> Result<(), QueryError> {
        Ok(self.files.store().check(timeout).await?)
    }

    /// Bytes held by the cold-file cache.
    pub fn cached_bytes(&self) -> u64 {
        self.files.cached_bytes()
    }
}
