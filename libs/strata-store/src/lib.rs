//! PostgreSQL and every table in it: the hot events (one chunk per UTC day),
//! the cold tier's catalog, the summaries of closed days, keys and the
//! queue's records. One folder per area; each imports only the areas below
//! it (ADR-038, `make layers`):
//!
//! - [`shared`]: days, the lock protocol, binary `COPY` rows, event keys;
//! - [`events`] and [`catalog`]: the hot events and their upkeep; the cold
//!   manifest and archive runs;
//! - [`summaries`]: rollups, seals, user ordinals;
//! - `ingest.rs` and [`lifecycle`]: the ingest transaction; the handoff to
//!   the cold tier, swaps, erasures, retention;
//! - [`reads`]: the stats snapshot and the admin views.
//!
//! [`Store`] is the one handle, over both physical layouts of `events` — a
//! TimescaleDB hypertable with 1-day chunks, or native range partitions made
//! on demand — and nothing above it knows which one is active.

pub mod catalog;
mod error;
pub mod events;
mod ingest;
mod keys;
pub mod lifecycle;
mod queue;
pub mod reads;
pub mod shared;
pub mod summaries;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub use catalog::manifest::{ManifestEntry, NewManifestEntry};
pub use error::StoreError;
pub use events::chunks::{Chunk, Layout};
pub use events::layout::{LayoutChoice, migrate};
pub use ingest::InsertOutcome;
pub use keys::{AuthenticatedKey, KeyInfo, KeyLimit, KeyOwner, OPERATOR_OWNER};
pub use lifecycle::erasure::{ErasureRecord, OpenErasure};
pub use lifecycle::handoff::{ArchiveCommit, ChunkRead, ChunkRows, Recount};
pub use lifecycle::retention::Expired;
pub use lifecycle::swap::{ColdFile, ColdSwap, DayFiles, ErasureStep};
pub use queue::{BatchRecord, PartOutcome, QueuedPart};
pub use reads::admin::{HotSize, ProjectTiers};
pub use reads::snapshot::{CohortActivity, DayCount, HotScope, ReadSnapshot, Sink, TypeCount};
pub use shared::event_key::EventKey;
pub use summaries::declared::MAX_DECLARED_PROPERTIES;
pub use summaries::rollup::{ALL_TYPES, DayRollup, RollupSource, TypeRollup, ValueRollups};
pub use summaries::rollups::{RollupEdit, RollupRead, RollupRows};
pub use summaries::seal::{SEAL_MARGIN, SealReport, spawn_sealer};

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Opens a pool without touching the database yet (so a server can start,
/// report unready, and recover when PostgreSQL comes back).
pub fn lazy_pool(url: &str, cfg: &PoolConfig) -> Result<PgPool, StoreError> {
    Ok(PgPoolOptions::new()
        .max_connections(cfg.max_connections)
        .acquire_timeout(cfg.acquire_timeout)
        .connect_lazy(url)?)
}

/// Handle to the hot tier. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    layout: Layout,
    /// Days whose native partition this process has seen exist. A stale entry
    /// (the archiver dropped the day) is corrected by the insert's retry.
    known_days: Arc<Mutex<HashSet<NaiveDate>>>,
    /// The idempotency records' state in this process (`claims.rs`).
    claims: Arc<events::claims::Claims>,
    /// Upper bounds of first-seen times this process knows
    /// (`first_seen.rs`).
    first_seen: Arc<events::first_seen::Known>,
    /// User ordinals this process has read (`ordinals.rs`).
    ordinals: Arc<summaries::ordinals::Ordinals>,
    /// Decoded rollups this process has read (`rollup_cache.rs`).
    rollups: Arc<summaries::rollup_cache::RollupCache>,
    /// Event types this process knows each project has (`event_types.rs`).
    event_types: Arc<events::event_types::KnownTypes>,
}

impl Store {
    /// Detects the layout of an already migrated database.
    pub async fn open(pool: PgPool) -> Result<Self, StoreError> {
        let layout = events::layout::detect(&mut *pool.acquire().await?)
            .await?
            .ok_or(StoreError::UnknownLayout)?;
        tracing::info!(layout = layout.as_str(), "hot tier layout detected");
        Ok(Self {
            pool,
            layout,
            known_days: Arc::default(),
            claims: Arc::default(),
            first_seen: Arc::default(),
            ordinals: Arc::default(),
            rollups: Arc::default(),
            event_types: Arc::default(),
        })
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Forgets the decoded rollups this process keeps, as a new process
    /// would start (`rollup_cache.rs`).
    pub fn forget_rollups(&self) {
        self.rollups.clear();
    }

    /// True when PostgreSQL answers and every embedded migration is applied.
    pub async fn is_ready(&self) -> Result<(), StoreError> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await?;
        let missing = events::layout::migrator()
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .count();
        if missing > 0 {
            return Err(StoreError::NotMigrated(missing));
        }
        Ok(())
    }

    /// Drops the idempotency records of the days that ended more than
    /// `window` ago, whole days at a time (an id is kept at least `window`,
    /// at most a day more). Returns how many records were removed.
    pub async fn prune_dedup(&self, window: Duration) -> Result<u64, StoreError> {
        let days = window.as_secs().div_ceil(86_400);
        let keep_from = chrono::Utc::now()
            .date_naive()
            .checked_sub_days(chrono::Days::new(days))
            .unwrap_or(NaiveDate::MIN);
        events::claims::drop_days_before(&self.pool, &self.claims, keep_from).await
    }

    /// Readies the idempotency records for today's claims (seals the days
    /// before, lists them) and starts building their filters in the
    /// background, so the first ingest requests need not. Ingest does this
    /// itself when it has not been done.
    pub async fn warm_dedup(&self) -> Result<(), StoreError> {
        let today: NaiveDate = sqlx::query_scalar("SELECT (now() AT TIME ZONE 'UTC')::date")
            .fetch_one(&self.pool)
            .await?;
        self.claims.prepare(&self.pool, today).await
    }

    /// Sealed days of idempotency records, and how many of them this
    /// process has a filter for (lookups of the others all go to
    /// PostgreSQL).
    pub fn dedup_filter_coverage(&self) -> (usize, usize) {
        self.claims.filter_coverage()
    }
}

/// Prunes expired idempotency records every `interval` until the runtime
/// stops. Failures are logged and retried on the next tick.
pub fn spawn_dedup_pruner(
    store: Store,
    window: Duration,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.prune_dedup(window).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "pruned expired idempotency records"),
                Err(e) => tracing::warn!(error = %e, "idempotency prune failed; will retry"),
            }
        }
    })
}
