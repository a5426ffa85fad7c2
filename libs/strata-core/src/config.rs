//! Configuration blocks. Every flag has an `env = "STRATA_…"` twin and a
//! default where one is safe; the README's configuration table is this file.

use std::time::Duration;

use clap::Args;
use strata_model::IngestLimits;

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30d, 24h, 90s)"))
}

/// Where the hot tier lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL (or TimescaleDB) connection URL.
    #[arg(long, env = "STRATA_DATABASE_URL")]
    pub database_url: String,

    /// Largest number of pooled PostgreSQL connections.
    #[arg(long, env = "STRATA_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// How long a request waits for a pooled connection before answering 503.
    #[arg(long, env = "STRATA_DATABASE_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub database_acquire_timeout: Duration,
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
}

/// S3 settings for `s3://` cold URLs. Unset values fall back to the
/// standard `AWS_*` variables (AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID,
/// AWS_SECRET_ACCESS_KEY).
#[derive(Debug, Clone, Args)]
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
}

impl From<&IngestLimitArgs> for IngestLimits {
    fn from(a: &IngestLimitArgs) -> Self {
        Self {
            max_batch_events: a.max_batch_events,
            max_body_bytes: a.max_body_bytes,
            max_properties_bytes: a.max_properties_bytes,
            max_future: a.max_future,
            max_past: a.max_past,
        }
    }
}

/// `strata-api serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,

    /// Address to listen on, host:port.
    #[arg(long, env = "STRATA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Redis URL (rate limits, caches). Optional.
    #[arg(long, env = "STRATA_REDIS_URL")]
    pub redis_url: Option<String>,

    #[command(flatten)]
    pub tiering: TieringArgs,

    #[command(flatten)]
    pub limits: IngestLimitArgs,

    /// How long an event_id is remembered for idempotency, counted from its first arrival.
    #[arg(long, env = "STRATA_DEDUP_WINDOW", default_value = "90d", value_parser = duration)]
    pub dedup_window: Duration,

    /// How often expired idempotency records are pruned.
    #[arg(long, env = "STRATA_DEDUP_PRUNE_INTERVAL", default_value = "1h", value_parser = duration)]
    pub dedup_prune_interval: Duration,

    /// Longest time one request may take before it is answered 503.
    #[arg(long, env = "STRATA_REQUEST_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub request_timeout: Duration,
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
}
