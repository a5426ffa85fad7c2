//! The application as `strata-api serve` runs it, built from its
//! configuration. The api binary and the test harness both build it with
//! [`App::build`], so the wiring under test is the wiring that ships.

use std::future::Future;

use strata_archive::{ArchiveConfig, Archiver};
use strata_model::{ErrorCode, ErrorKind, IngestLimits};
use strata_query::{DuckConfig, Planner, QueryConfig};
use strata_runtime::config::{QueryArgs, ServeArgs};
use strata_store::KeyLimit;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::ratelimit::{Limit, OnRedisError, RateLimitConfig, RateLimiter};
use crate::{ApiError, AppState, ServerConfig};

/// The planner's settings from the command line.
pub fn query_config(a: &QueryArgs) -> QueryConfig {
    QueryConfig {
        max_query_days: a.max_query_days,
        lock_timeout: a.stats_lock_timeout,
        duckdb: DuckConfig {
            memory_limit: a.duckdb_memory_limit.clone(),
            threads: a.duckdb_threads,
            temp_dir: Some(a.cold_cache_dir.join("duckdb-tmp")),
        },
        cache_dir: a.cold_cache_dir.clone(),
        cache_bytes: a.cold_cache_bytes,
        cache_check_interval: a.cold_cache_check_interval,
        failpoint: strata_query::FailPoint::default(),
    }
}

/// The per-key rate limiter, when a Redis URL is configured.
fn rate_limiter(args: &ServeArgs) -> Result<Option<RateLimiter>, ApiError> {
    let Some(url) = &args.redis_url else {
        tracing::info!("STRATA_REDIS_URL is not set; requests are not rate limited");
        return Ok(None);
    };
    let r = &args.rate_limit;
    let default = Limit {
        rate: r.rate_limit_rate,
        burst: r.rate_limit_burst,
    };
    KeyLimit::new(default.rate, default.burst).map_err(|e| {
        ApiError::invalid(
            ErrorCode::InvalidSetting,
            format!("default rate limit: {e}"),
        )
    })?;
    let on_error = OnRedisError::parse(&r.rate_limit_on_redis_error).ok_or_else(|| {
        ApiError::invalid(
            ErrorCode::InvalidSetting,
            "STRATA_RATE_LIMIT_ON_REDIS_ERROR must be open or closed",
        )
    })?;
    let limiter = RateLimiter::new(RateLimitConfig {
        redis_url: url.expose().to_owned(),
        default,
        on_error,
        timeout: r.redis_timeout,
    })
    .map_err(|e| {
        ApiError::new(
            ErrorKind::Invalid,
            ErrorCode::InvalidRedisUrl,
            format!("STRATA_REDIS_URL: {e}"),
        )
    })?;
    Ok(Some(limiter))
}

/// Everything `serve` needs, built.
#[derive(Debug)]
pub struct App {
    pub state: AppState,
    pub server: ServerConfig,
    /// The dedup warm-up started by [`App::build`] (the server does not wait
    /// for it; ingest readies the records itself if it has not finished).
    pub warm_up: tokio::task::JoinHandle<()>,
}

impl App {
    /// Migrates the database, opens both tiers and the rate limiter, starts
    /// the background upkeep (dedup pruning, sealing closed hot days, dedup
    /// filter warm-up) and
    /// assembles what every handler reaches.
    pub async fn build(args: &ServeArgs) -> Result<Self, ApiError> {
        let hot = args.db.open_hot().await?;
        let limiter = rate_limiter(args)?;
        strata_store::spawn_dedup_pruner(hot.clone(), args.dedup_window, args.dedup_prune_interval);
        strata_store::spawn_sealer(hot.clone(), args.tiering.hot_retention, args.seal_interval);
        let warm_up = {
            let hot = hot.clone();
            tokio::spawn(async move {
                if let Err(e) = hot.warm_dedup().await {
                    tracing::warn!(error = %e, "dedup records not warmed; the first ingest will");
                }
            })
        };
        let cold = args.tiering.cold_store(&args.s3)?;
        let archiver = Archiver::new(
            hot.clone(),
            cold.clone(),
            ArchiveConfig {
                hot_retention: args.tiering.hot_retention,
                cold_delete_grace: args.tiering.cold_delete_grace,
                lake_history: args.tiering.lake_history,
                ..ArchiveConfig::default()
            },
        );
        let planner = Planner::new(hot.clone(), cold, query_config(&args.query))?;
        planner.spawn_cache_keeper();
        let queue = match args.queue.config() {
            None => None,
            Some(cfg) => {
                tracing::info!(stream = %cfg.stream, "queue mode: ingest publishes to NATS JetStream");
                let q = strata_queue::Queue::connect(cfg).await?;
                Some(crate::routes::queue::QueueState::new(
                    q,
                    args.queue.queue_auth_grace,
                ))
            }
        };
        Ok(Self {
            state: AppState {
                hot,
                limits: IngestLimits::from(&args.limits),
                planner,
                limiter,
                archiver: Some(archiver),
                metrics: Metrics::with_pg_ttl(args.metrics_pg_ttl),
                queue,
                erasures_per_hour: args.erasures_per_hour,
                trusted_proxy_hops: args.trusted_proxy_hops,
            },
            server: ServerConfig {
                request_timeout: args.request_timeout,
                cors_origins: args.cors_origins.clone().filter(|o| !o.is_empty()),
            },
            warm_up,
        })
    }

    /// Serves on `listener` until `shutdown` resolves, then finishes the
    /// requests in flight.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        crate::serve(listener, self.state, &self.server, shutdown).await
    }
}
