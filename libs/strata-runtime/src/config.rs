//! Configuration blocks. Every flag has an `env = "STRATA_…"` twin and a
//! default where one is safe; docs/configuration.md's table is this file.

use std::time::Duration;

use std::path::PathBuf;

use clap::Args;
use strata_cold::{ColdError, ColdStore, S3Options};
use strata_model::IngestLimits;
use strata_store::{LayoutChoice, PoolConfig, Store, StoreError};

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30d, 24h, 90s)"))
}

/// A connection URL that may carry a password: `--help` never shows its
/// value (`hide_env_values`) and Debug output shows it with the password
/// replaced by `***`. [`SecretUrl::expose`] is for the one place that connects.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl std::str::FromStr for SecretUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `scheme://user:secret@host/...` → `scheme://user:***@host/...`; other
/// strings unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{masked}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Where the hot tier lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL (or TimescaleDB) connection URL.
    #[arg(long, env = "STRATA_DATABASE_URL", hide_env_values = true)]
    pub database_url: SecretUrl,

    /// Largest number of pooled PostgreSQL connections.
    #[arg(long, env = "STRATA_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// How long a request waits for a pooled connection before answering 503.
    #[arg(long, env = "STRATA_DATABASE_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub database_acquire_timeout: Duration,

    /// Hot layout of a new database: `auto` (a TimescaleDB hypertable when the
    /// extension is installed and preloaded, native day partitions otherwise),
    /// `timescaledb` (fail at start unless it can be used) or `native`. An
    /// existing database keeps its layout; a different explicit choice fails.
    #[arg(long, env = "STRATA_HOT_LAYOUT", default_value = "auto")]
    pub hot_layout: LayoutChoice,
}

impl DatabaseArgs {
    /// The hot tier, pending migrations applied first.
    pub async fn open_hot(&self) -> Result<Store, StoreError> {
        let pool = strata_store::lazy_pool(self.database_url.expose(), &self.pool_config())?;
        strata_store::migrate(&pool, self.hot_layout).await?;
        Store::open(pool).await
    }

    pub fn pool_config(&self) -> PoolConfig {
        PoolConfig {
            max_connections: self.database_max_connections,
            acquire_timeout: self.database_acquire_timeout,
        }
    }
}

/// How data moves between tiers.
#[derive(Debug, Clone, Args)]
pub struct TieringArgs {
    /// Cold tier location: `file:///path` or `s3://bucket/prefix`.
    #[arg(long, env = "STRATA_COLD_URL", default_value = "file://./.strata/cold")]
    pub cold_url: String,

    /// Age after which a day chunk moves from PostgreSQL to the cold tier.
    #[arg(long, env = "STRATA_HOT_RETENTION", default_value = "30d", value_parser = duration)]
    pub hot_retention: Duration,

    /// How long cold objects replaced by an erasure or a compaction stay in
    /// the store after the swap's commit, for stats requests planned before
    /// it (longer than STRATA_REQUEST_TIMEOUT); a later archive run deletes
    /// them.
    #[arg(long, env = "STRATA_COLD_DELETE_GRACE", default_value = "5m", value_parser = duration)]
    pub cold_delete_grace: Duration,

    /// How long the lake catalog (the archive's DuckLake table) keeps older
    /// snapshots readable: objects replaced by a compaction or past a
    /// retention horizon stay this long (an erasure's never do).
    #[arg(long, env = "STRATA_LAKE_HISTORY", default_value = "3d", value_parser = duration)]
    pub lake_history: Duration,
}

impl TieringArgs {
    /// The cold store `cold_url` names (the one place a cold URL becomes a
    /// store; `s3` applies to `s3://` URLs).
    pub fn cold_store(&self, s3: &S3Args) -> Result<ColdStore, ColdError> {
        ColdStore::from_url(&self.cold_url, &S3Options::from(s3))
    }
}

/// S3 settings for `s3://` cold URLs. Unset values fall back to the
/// standard `AWS_*` variables (AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID,
/// AWS_SECRET_ACCESS_KEY). Debug output redacts the secret.
#[derive(Clone, Args)]
pub struct S3Args {
    /// S3 endpoint, e.g. http://127.0.0.1:9000 for MinIO.
    #[arg(long, env = "STRATA_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// S3 region.
    #[arg(long, env = "STRATA_S3_REGION")]
    pub s3_region: Option<String>,

    /// S3 access key id.
    #[arg(long, env = "STRATA_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,

    /// S3 secret access key.
    #[arg(long, env = "STRATA_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,

    /// Use virtual-hosted-style addressing (bucket.host) instead of path-style.
    #[arg(long, env = "STRATA_S3_VIRTUAL_HOSTED_STYLE", default_value_t = false)]
    pub s3_virtual_hosted_style: bool,

    /// Timeout of one object-store request.
    #[arg(long, env = "STRATA_S3_REQUEST_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub s3_request_timeout: Duration,
}

impl std::fmt::Debug for S3Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        S3Options::from(self).fmt(f)
    }
}

impl From<&S3Args> for S3Options {
    fn from(a: &S3Args) -> Self {
        Self {
            endpoint: a.s3_endpoint.clone(),
            region: a.s3_region.clone(),
            access_key_id: a.s3_access_key_id.clone(),
            secret_access_key: a.s3_secret_access_key.clone(),
            virtual_hosted_style: a.s3_virtual_hosted_style,
            request_timeout: Some(a.s3_request_timeout),
        }
    }
}

/// How stats queries run.
#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    /// Longest from..to range a stats request may span, in days (more: 400).
    #[arg(long, env = "STRATA_MAX_QUERY_DAYS", default_value_t = 3660)]
    pub max_query_days: u32,

    /// Local cache of cold Parquet files fetched from S3 (unused for file:// stores).
    #[arg(
        long,
        env = "STRATA_COLD_CACHE_DIR",
        default_value = "./.strata/cold-cache"
    )]
    pub cold_cache_dir: PathBuf,

    /// Size bound of the cold cache in bytes; least recently used files are evicted.
    #[arg(long, env = "STRATA_COLD_CACHE_BYTES", default_value_t = 2 << 30)]
    pub cold_cache_bytes: u64,

    /// How often cached cold files that the manifest no longer lists
    /// (replaced by an erasure or a compaction) are deleted from the cache;
    /// keep it well under STRATA_COLD_DELETE_GRACE.
    #[arg(long, env = "STRATA_COLD_CACHE_CHECK_INTERVAL", default_value = "30s", value_parser = duration)]
    pub cold_cache_check_interval: Duration,

    /// DuckDB memory limit for cold queries (DuckDB syntax, e.g. 512MB, 2GB).
    #[arg(long, env = "STRATA_DUCKDB_MEMORY_LIMIT", default_value = "1GB")]
    pub duckdb_memory_limit: String,

    /// DuckDB worker threads for cold queries.
    #[arg(long, env = "STRATA_DUCKDB_THREADS", default_value_t = 2)]
    pub duckdb_threads: u32,

    /// Longest wait of a stats request for an archive commit to finish (then 503).
    #[arg(long, env = "STRATA_STATS_LOCK_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub stats_lock_timeout: Duration,
}

/// Bounds on one ingest request.
#[derive(Debug, Clone, Args)]
pub struct IngestLimitArgs {
    /// Most events in one batch (more: 413).
    #[arg(long, env = "STRATA_MAX_BATCH_EVENTS", default_value_t = 10_000)]
    pub max_batch_events: usize,

    /// Largest request body in bytes, both as sent and after gzip decompression (more: 413).
    #[arg(long, env = "STRATA_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest `properties` object of one event, in bytes of JSON.
    #[arg(long, env = "STRATA_MAX_PROPERTIES_BYTES", default_value_t = 32 * 1024)]
    pub max_properties_bytes: usize,

    /// How far ahead of the server clock a timestamp may be.
    #[arg(long, env = "STRATA_MAX_FUTURE", default_value = "24h", value_parser = duration)]
    pub max_future: Duration,

    /// How far back a timestamp may be (late events up to this age are accepted).
    #[arg(long, env = "STRATA_MAX_PAST", default_value = "3650d", value_parser = duration)]
    pub max_past: Duration,

    /// Distinct days before yesterday (UTC) one batch may hold events for;
    /// events for further such days are rejected by index.
    #[arg(long, env = "STRATA_MAX_LATE_DAYS_PER_BATCH", default_value_t = 31)]
    pub max_late_days_per_batch: usize,

    /// Distinct event types one project may have; events of a new type
    /// past it are rejected by index (each type costs a rollup row per day
    /// and a group in top events).
    #[arg(long, env = "STRATA_MAX_EVENT_TYPES", default_value_t = 1_000)]
    pub max_event_types: u32,
}

impl From<&IngestLimitArgs> for IngestLimits {
    fn from(a: &IngestLimitArgs) -> Self {
        Self {
            max_batch_events: a.max_batch_events,
            max_body_bytes: a.max_body_bytes,
            max_properties_bytes: a.max_properties_bytes,
            max_future: a.max_future,
            max_past: a.max_past,
            max_late_days: a.max_late_days_per_batch,
            max_event_types: a.max_event_types,
        }
    }
}

fn on_redis_error(s: &str) -> Result<String, String> {
    match s {
        "open" | "closed" => Ok(s.to_owned()),
        _ => Err("expected open or closed".into()),
    }
}

/// The browser origins allowed to call the ingest route (ADR-040).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: any origin.
    Any,
    /// Exact origins, `scheme://host[:port]`, lower-cased; empty: none.
    List(Vec<String>),
}

impl CorsOrigins {
    /// `*`, or a comma-separated list of origins such as
    /// `https://app.example.com,http://localhost:3000` (no path, no
    /// trailing slash: what a browser sends in `Origin`). Empty: none (as
    /// when unset).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw == "*" {
            return Ok(Self::Any);
        }
        let mut list = Vec::new();
        for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let (scheme, rest) = origin.split_once("://").ok_or_else(|| {
                format!("{origin:?} is not an origin: expected scheme://host[:port]")
            })?;
            let host = rest.rsplit_once(':').map_or(rest, |(h, p)| {
                if p.chars().all(|c| c.is_ascii_digit()) {
                    h
                } else {
                    rest
                }
            });
            let scheme_ok = ["http", "https"].contains(&scheme.to_ascii_lowercase().as_str());
            let host_ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c));
            if !scheme_ok || !host_ok {
                return Err(format!(
                    "{origin:?} is not an origin: expected http(s)://host[:port], no path"
                ));
            }
            list.push(origin.to_ascii_lowercase());
        }
        Ok(Self::List(list))
    }

    /// No origin at all: no CORS.
    pub fn is_empty(&self) -> bool {
        matches!(self, Self::List(list) if list.is_empty())
    }
}

/// Per-key token buckets (with `STRATA_REDIS_URL`).
#[derive(Debug, Clone, Args)]
pub struct RateLimitArgs {
    /// Default refill of a key's bucket, requests per second (a key may have its own).
    #[arg(long, env = "STRATA_RATE_LIMIT_RATE", default_value_t = 50.0)]
    pub rate_limit_rate: f64,

    /// Default bucket size: requests a key may send at once.
    #[arg(long, env = "STRATA_RATE_LIMIT_BURST", default_value_t = 100)]
    pub rate_limit_burst: u32,

    /// When Redis fails: `open` lets requests through, `closed` answers 503.
    #[arg(long, env = "STRATA_RATE_LIMIT_ON_REDIS_ERROR", default_value = "open", value_parser = on_redis_error)]
    pub rate_limit_on_redis_error: String,

    /// Longest wait for Redis per request before applying the on-error rule.
    #[arg(long, env = "STRATA_REDIS_TIMEOUT", default_value = "250ms", value_parser = duration)]
    pub redis_timeout: Duration,
}

/// `strata-api serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,

    /// Address to listen on, host:port.
    #[arg(long, env = "STRATA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Redis URL for per-key rate limits, shared by every replica. Unset: no rate limiting.
    #[arg(long, env = "STRATA_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretUrl>,

    #[command(flatten)]
    pub rate_limit: RateLimitArgs,

    #[command(flatten)]
    pub tiering: TieringArgs,

    #[command(flatten)]
    pub s3: S3Args,

    #[command(flatten)]
    pub query: QueryArgs,

    #[command(flatten)]
    pub limits: IngestLimitArgs,

    #[command(flatten)]
    pub queue: QueueArgs,

    /// How long an event_id is remembered for idempotency, counted from its first arrival.
    #[arg(long, env = "STRATA_DEDUP_WINDOW", default_value = "90d", value_parser = duration)]
    pub dedup_window: Duration,

    /// How often expired idempotency records are pruned.
    #[arg(long, env = "STRATA_DEDUP_PRUNE_INTERVAL", default_value = "1h", value_parser = duration)]
    pub dedup_prune_interval: Duration,

    /// How often closed hot days are sealed into exact rollups (ADR-028),
    /// so stats read only their late events; the archive run seals too.
    /// `0s`: only the archive run seals.
    #[arg(long, env = "STRATA_SEAL_INTERVAL", default_value = "10m", value_parser = duration)]
    pub seal_interval: Duration,

    /// Erasure requests (`POST /v1/admin/erasures`) one project may make
    /// per hour; past it, 429 (each erasure rewrites cold files and resets
    /// every process's memory of the project's users). `0`: no limit.
    #[arg(long, env = "STRATA_ERASURES_PER_HOUR", default_value_t = 1000)]
    pub erasures_per_hour: u32,

    /// Browser origins that may send events with a client key
    /// (`POST /v1/events`): a comma-separated list such as
    /// `https://app.example.com,http://localhost:3000`, or `*`. Unset or
    /// empty: the ingest route answers no CORS preflight, so browsers on
    /// other origins cannot send.
    #[arg(long, env = "STRATA_CORS_ORIGINS", value_parser = CorsOrigins::parse)]
    pub cors_origins: Option<CorsOrigins>,

    /// Reverse proxies in front of the api that each append the address
    /// they saw to `X-Forwarded-For`. Client keys are rate limited per
    /// client address: the header's entry this many places from its end.
    /// `0`: the connecting address, and the header is ignored.
    #[arg(long, env = "STRATA_TRUSTED_PROXY_HOPS", default_value_t = 0)]
    pub trusted_proxy_hops: u8,

    /// Longest time one request may take before it is answered 503.
    #[arg(long, env = "STRATA_REQUEST_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub request_timeout: Duration,

    /// How long `/metrics` reuses the values it reads from PostgreSQL
    /// (tier sizes, run totals), so frequent scrapers cost the database
    /// nothing; in-process counters are always live.
    #[arg(long, env = "STRATA_METRICS_PG_TTL", default_value = "5s", value_parser = duration)]
    pub metrics_pg_ttl: Duration,
}

/// Queue-mode ingest (ADR-034): where the queue is and its limits. Shared
/// by `serve` (which publishes) and `ingest-worker` (which drains).
#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// NATS JetStream URL (`nats://host:4222`). Set: `POST /v1/events`
    /// publishes valid events there and answers 202; `strata-api
    /// ingest-worker` stores them. Unset or empty: direct ingest (200
    /// after commit).
    #[arg(long, env = "STRATA_INGEST_QUEUE", hide_env_values = true)]
    pub ingest_queue: Option<SecretUrl>,

    /// The JetStream stream (created or updated at start); dead letters go
    /// to `<name>_DLQ`.
    #[arg(long, env = "STRATA_QUEUE_STREAM", default_value = "STRATA_EVENTS")]
    pub queue_stream: String,

    /// Most bytes the stream holds; past it ingest answers 503.
    #[arg(long, env = "STRATA_QUEUE_MAX_BYTES", default_value_t = 1 << 30)]
    pub queue_max_bytes: i64,

    /// Most messages (batch parts) the stream holds; past it ingest answers 503.
    #[arg(long, env = "STRATA_QUEUE_MAX_MESSAGES", default_value_t = 1_000_000)]
    pub queue_max_messages: i64,

    /// Most bytes of events per message; larger batches are split (NATS
    /// refuses payloads over its `max_payload`, 1 MiB by default).
    #[arg(long, env = "STRATA_QUEUE_MAX_MESSAGE_BYTES", default_value_t = 512 * 1024)]
    pub queue_max_message_bytes: usize,

    /// How long a publish waits for JetStream's acknowledgement before 503.
    #[arg(long, env = "STRATA_QUEUE_PUBLISH_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub queue_publish_timeout: Duration,

    /// Replicas of the streams (1 for a single NATS server).
    #[arg(long, env = "STRATA_QUEUE_REPLICAS", default_value_t = 1)]
    pub queue_replicas: usize,

    /// Dead letters older than this are deleted (they hold whole events).
    #[arg(long, env = "STRATA_QUEUE_DEAD_LETTER_MAX_AGE", default_value = "14d", value_parser = duration)]
    pub queue_dead_letter_max_age: Duration,

    /// PEM file of the CA that signed NATS's certificate: TLS is then
    /// required (a `tls://` URL requires it too).
    #[arg(long, env = "STRATA_QUEUE_TLS_CA")]
    pub queue_tls_ca: Option<PathBuf>,

    /// This client's certificate (PEM), for a NATS that verifies clients.
    #[arg(long, env = "STRATA_QUEUE_TLS_CERT", requires = "queue_tls_key")]
    pub queue_tls_cert: Option<PathBuf>,

    /// The key of `--queue-tls-cert` (PEM).
    #[arg(long, env = "STRATA_QUEUE_TLS_KEY", requires = "queue_tls_cert")]
    pub queue_tls_key: Option<PathBuf>,

    /// While PostgreSQL is unreachable, queue-mode ingest accepts a key
    /// that authenticated within this long (so ingest stays up through a
    /// database restart); `0s`: never.
    #[arg(long, env = "STRATA_QUEUE_AUTH_GRACE", default_value = "15m", value_parser = duration)]
    pub queue_auth_grace: Duration,
}

impl QueueArgs {
    /// The queue's settings, when queue mode is on.
    pub fn config(&self) -> Option<strata_queue::QueueConfig> {
        let url = self
            .ingest_queue
            .as_ref()
            .filter(|u| !u.expose().is_empty())?;
        Some(strata_queue::QueueConfig {
            url: url.expose().to_owned(),
            stream: self.queue_stream.clone(),
            max_bytes: self.queue_max_bytes,
            max_messages: self.queue_max_messages,
            max_message_bytes: self.queue_max_message_bytes,
            publish_timeout: self.queue_publish_timeout,
            replicas: self.queue_replicas,
            dead_letter_max_age: self.queue_dead_letter_max_age,
            tls: strata_queue::QueueTls {
                ca: self.queue_tls_ca.clone(),
                client: self.queue_tls_cert.clone().zip(self.queue_tls_key.clone()),
            },
        })
    }
}

/// `strata-api ingest-worker`'s own settings.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The durable consumer; workers with the same name share the work.
    #[arg(
        long,
        env = "STRATA_WORKER_CONSUMER",
        default_value = "strata-ingest-worker"
    )]
    pub worker_consumer: String,

    /// Most events per transaction.
    #[arg(long, env = "STRATA_WORKER_MAX_EVENTS", default_value_t = 20_000)]
    pub worker_max_events: usize,

    /// Longest wait, from a group's first message, for more before committing.
    #[arg(long, env = "STRATA_WORKER_MAX_WAIT", default_value = "200ms", value_parser = duration)]
    pub worker_max_wait: Duration,

    /// Deliveries after which a message that keeps failing (not for an
    /// unavailable database) moves to the dead letters.
    #[arg(long, env = "STRATA_WORKER_DEAD_LETTER_AFTER", default_value_t = 5)]
    pub worker_dead_letter_after: i64,

    /// A message unacknowledged this long is delivered again.
    #[arg(long, env = "STRATA_WORKER_ACK_WAIT", default_value = "60s", value_parser = duration)]
    pub worker_ack_wait: Duration,

    /// Delay before a released message is tried again.
    #[arg(long, env = "STRATA_WORKER_RETRY_DELAY", default_value = "1s", value_parser = duration)]
    pub worker_retry_delay: Duration,

    /// Groups one worker applies at once, each in its own transaction.
    #[arg(long, env = "STRATA_WORKER_CONCURRENCY", default_value_t = 2)]
    pub worker_concurrency: usize,

    /// How long `GET /v1/ingest/batches/{id}` keeps answering `applied`.
    #[arg(long, env = "STRATA_BATCH_STATUS_TTL", default_value = "7d", value_parser = duration)]
    pub batch_status_ttl: Duration,
}

impl WorkerArgs {
    pub fn config(&self) -> strata_queue::WorkerConfig {
        strata_queue::WorkerConfig {
            consumer: self.worker_consumer.clone(),
            max_events: self.worker_max_events.max(1),
            max_wait: self.worker_max_wait,
            dead_letter_after: self.worker_dead_letter_after.max(1),
            ack_wait: self.worker_ack_wait,
            retry_delay: self.worker_retry_delay,
            batch_status_ttl: self.batch_status_ttl,
            concurrency: self.worker_concurrency.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn defaults_and_durations() {
        let cli = Cli::parse_from(["x", "--database-url", "postgres://x"]);
        assert_eq!(cli.serve.listen, "127.0.0.1:8080");
        assert_eq!(
            cli.serve.tiering.hot_retention,
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(cli.serve.dedup_window, Duration::from_secs(90 * 86_400));
        let limits = IngestLimits::from(&cli.serve.limits);
        assert_eq!(limits, IngestLimits::default());
        assert!(Cli::try_parse_from(["x", "--database-url", "p", "--max-future", "soon"]).is_err());
    }

    #[test]
    fn cors_origins_are_star_or_a_list_of_origins() {
        assert_eq!(CorsOrigins::parse(" * "), Ok(CorsOrigins::Any));
        assert_eq!(
            CorsOrigins::parse("https://App.example.com, http://localhost:3000,"),
            Ok(CorsOrigins::List(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into()
            ]))
        );
        assert_eq!(
            CorsOrigins::parse("http://[::1]:8080"),
            Ok(CorsOrigins::List(vec!["http://[::1]:8080".into()]))
        );
        assert!(CorsOrigins::parse(" ").unwrap().is_empty());
        assert!(!CorsOrigins::parse("*").unwrap().is_empty());
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://x",
            "https://*.example.com",
            "https://a b",
        ] {
            assert!(CorsOrigins::parse(bad).is_err(), "{bad:?} accepted");
        }
        let cli = Cli::parse_from(["x", "--database-url", "p", "--cors-origins", "*"]);
        assert_eq!(cli.serve.cors_origins, Some(CorsOrigins::Any));
        assert_eq!(cli.serve.trusted_proxy_hops, 0);
        assert!(
            Cli::try_parse_from(["x", "--database-url", "p", "--cors-origins", "nope"]).is_err()
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let cli = Cli::parse_from([
            "x",
            "--database-url",
            "postgres://strata:hunter2@db:5432/strata?sslmode=require",
            "--redis-url",
            "redis://:r3dispass@cache:6379/0",
            "--s3-access-key-id",
            "AKIAEXAMPLE",
            "--s3-secret-access-key",
            "s3cr3tkey",
        ]);
        let shown = format!("{:?}", cli.serve);
        for secret in ["hunter2", "r3dispass", "s3cr3tkey"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("postgres://strata:***@db:5432/strata?sslmode=require"));
        assert_eq!(
            cli.serve.db.database_url.expose(),
            "postgres://strata:hunter2@db:5432/strata?sslmode=require"
        );
        assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact_url("file://./x"), "file://./x");
    }
}
