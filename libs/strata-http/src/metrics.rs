//! Prometheus text at `/metrics`.
//!
//! Request and ingest counters are kept in process. What PostgreSQL knows
//! (archive runs, rows and bytes moved, archive lag, rows and bytes per tier)
//! is read from PostgreSQL, so every replica reports the same totals whichever
//! process archived; those values are cached for [`Metrics::pg_ttl`] (one
//! refresh at a time), so a scraper hammering `/metrics` costs PostgreSQL
//! at most one round of queries per interval. The planner's cold-cache and
//! per-tier read counters come from the planner at every scrape.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms .. ~33 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Values read from PostgreSQL (cached) and the planner (each scrape).
#[derive(Debug, Default, Clone)]
struct Scraped {
    pg: PgValues,
    counters: Vec<(&'static str, &'static str, u64)>,
    gauges: Vec<(&'static str, &'static str, i64)>,
}

/// What PostgreSQL knows: shared by every replica.
#[derive(Debug, Default, Clone)]
struct PgValues {
    runs_by_status: Vec<(String, u64)>,
    archive_rows: u64,
    archive_bytes: u64,
    archive_lag_seconds: f64,
    tier_rows: [(&'static str, i64); 2],
    tier_bytes: [(&'static str, i64); 2],
}

#[derive(Debug, Default)]
struct ScrapedCollector(Mutex<Scraped>);

impl prometheus_client::collector::Collector for ScrapedCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let s = &all.pg;
        let counter = |enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64| {
            let c = ConstCounter::new(v);
            c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
        };
        {
            let c = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(
                "strata_archive_runs",
                "Archive runs recorded, by final status",
                None,
                c.metric_type(),
            )?;
            for (status, n) in &s.runs_by_status {
                let labels = vec![("status", status.clone())];
                ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
            }
        }
        counter(
            &mut encoder,
            "strata_archive_rows",
            "Rows moved to the cold tier",
            s.archive_rows,
        )?;
        counter(
            &mut encoder,
            "strata_archive_bytes",
            "Parquet bytes written to the cold tier",
            s.archive_bytes,
        )?;
        let lag = ConstGauge::new(s.archive_lag_seconds);
        lag.encode(encoder.encode_descriptor(
            "strata_archive_lag_seconds",
            "How long the oldest hot chunk has been past the hot retention (0: none)",
            None,
            lag.metric_type(),
        )?)?;
        for (name, help, values) in [
            (
                "strata_tier_rows",
                "Rows held per tier (hot: estimate)",
                &s.tier_rows,
            ),
            ("strata_tier_bytes", "Bytes held per tier", &s.tier_bytes),
        ] {
            let g = ConstGauge::new(0i64);
            let mut family = encoder.encode_descriptor(name, help, None, g.metric_type())?;
            for (tier, v) in values.iter() {
                let labels = vec![("tier", (*tier).to_owned())];
                ConstGauge::new(*v).encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, v) in &all.counters {
            counter(&mut encoder, name, help, *v)?;
        }
        for (name, help, v) in &all.gauges {
            let g = ConstGauge::new(*v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

/// The same request measurements over OTLP (no-ops unless telemetry export
/// is on).
#[derive(Debug, Clone)]
struct OtelInstruments {
    requests: opentelemetry::metrics::Counter<u64>,
    latency: opentelemetry::metrics::Histogram<f64>,
}

/// Every metric of the api process.
#[derive(Debug, Clone)]
pub struct Metrics {
    otel: OtelInstruments,
    registry: Arc<Registry>,
    requests: Family<Labels, Counter>,
    latency: HistogramFamily,
    events: Family<Labels, Counter>,
    rate_limited: Counter,
    scraped: Arc<ScrapedCollector>,
    /// When the PostgreSQL-derived values were last read (`None`: never).
    pg_read_at: Arc<tokio::sync::Mutex<Option<Instant>>>,
    pg_ttl: Duration,
}

/// How long PostgreSQL-derived gauges are reused between scrapes.
pub const DEFAULT_PG_TTL: Duration = Duration::from_secs(5);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::with_pg_ttl(DEFAULT_PG_TTL)
    }

    /// PostgreSQL-derived values are read again only after `ttl`.
    pub fn with_pg_ttl(ttl: Duration) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let latency = HistogramFamily::new_with_constructor(latency_histogram);
        let events = Family::<Labels, Counter>::default();
        let rate_limited = Counter::default();
        let scraped = Arc::new(ScrapedCollector::default());
        registry.register(
            "strata_http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "strata_http_request_duration_seconds",
            "HTTP request latency by route, method and status",
            latency.clone(),
        );
        registry.register(
            "strata_ingest_events",
            "Events sent to /v1/events, by result (accepted, duplicate, rejected; queued in queue mode)",
            events.clone(),
        );
        registry.register(
            "strata_rate_limited_requests",
            "Requests refused with 429",
            rate_limited.clone(),
        );
        registry.register_collector(Box::new(Arc::clone(&scraped)));
        let meter = opentelemetry::global::meter("strata");
        let otel = OtelInstruments {
            requests: meter
                .u64_counter("strata.http.requests")
                .with_description("HTTP requests by route, method and status")
                .build(),
            latency: meter
                .f64_histogram("strata.http.request.duration")
                .with_unit("s")
                .with_description("HTTP request latency")
                .build(),
        };
        Self {
            otel,
            registry: Arc::new(registry),
            requests,
            latency,
            events,
            rate_limited,
            scraped,
            pg_read_at: Arc::default(),
            pg_ttl: ttl,
        }
    }

    pub fn pg_ttl(&self) -> Duration {
        self.pg_ttl
    }

    /// Counts one ingest request's events.
    pub fn ingested(&self, accepted: u64, duplicates: u64, rejected: u64) {
        for (result, n) in [
            ("accepted", accepted),
            ("duplicate", duplicates),
            ("rejected", rejected),
        ] {
            self.events
                .get_or_create(&vec![("result", result.to_owned())])
                .inc_by(n);
        }
    }

    /// Counts one queue-mode ingest request's events.
    pub fn queued(&self, queued: u64, rejected: u64) {
        for (result, n) in [("queued", queued), ("rejected", rejected)] {
            self.events
                .get_or_create(&vec![("result", result.to_owned())])
                .inc_by(n);
        }
    }

    fn observe(&self, route: &str, method: &str, status: StatusCode, seconds: f64) {
        let labels = vec![
            ("route", route.to_owned()),
            ("method", method.to_owned()),
            ("status", status.as_u16().to_string()),
        ];
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
        let attrs: Vec<opentelemetry::KeyValue> = labels
            .iter()
            .map(|(k, v)| opentelemetry::KeyValue::new(*k, v.clone()))
            .collect();
        self.otel.requests.add(1, &attrs);
        self.otel.latency.record(seconds, &attrs);
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.rate_limited.inc();
        }
    }
}

/// Times every request, labelled by its route template (not the raw path).
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    let seconds = started.elapsed().as_secs_f64();
    state
        .metrics
        .observe(&route, &method, resp.status(), seconds);
    // One line per request, inside the request span (request id, project).
    tracing::info!(
        route,
        method,
        status = resp.status().as_u16(),
        ms = (seconds * 1000.0).round() as u64,
        "request finished"
    );
    resp
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String)))]
pub(crate) async fn render(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    {
        // Held across the refresh: concurrent scrapes wait for one refresh
        // instead of each querying PostgreSQL.
        let mut read_at = m.pg_read_at.lock().await;
        if read_at.is_none_or(|t| t.elapsed() >= m.pg_ttl) {
            match scrape_pg(&state).await {
                Ok(pg) => m.scraped.0.lock().unwrap_or_else(|p| p.into_inner()).pg = pg,
                Err(e) => tracing::warn!(error = %e, "metrics: PostgreSQL values not refreshed"),
            }
            // A failed read also waits for the interval: a PostgreSQL in
            // trouble is not asked again by every scrape.
            *read_at = Some(Instant::now());
        }
    }
    let counters = counters(&state);
    let (filtered, sealed) = state.hot.dedup_filter_coverage();
    let queue = queue_gauges(&state).await;
    {
        let mut scraped = m.scraped.0.lock().unwrap_or_else(|p| p.into_inner());
        scraped.counters = counters;
        scraped.gauges = vec![
            (
                "strata_dedup_sealed_days",
                "Closed arrival days of idempotency records that new ids are checked against",
                sealed as i64,
            ),
            (
                "strata_dedup_filtered_days",
                "Of those, days this process has a filter for (the others are looked up in PostgreSQL)",
                filtered as i64,
            ),
        ];
        scraped.gauges.extend(queue);
    }
    let mut body = String::new();
    if prometheus_client::encoding::prometheus_text::encode(&mut body, &state.metrics.registry)
        .is_err()
    {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// Queue mode: the backlog a worker has not committed yet, read from
/// JetStream at every scrape (one small request).
async fn queue_gauges(state: &AppState) -> Vec<(&'static str, &'static str, i64)> {
    let Some(q) = &state.queue else {
        return Vec::new();
    };
    let lag = q.queue.lag().await;
    let mut out = vec![(
        "strata_queue_up",
        "1 when the ingest queue (NATS JetStream) answered this scrape",
        i64::from(lag.is_ok()),
    )];
    match lag {
        Ok(l) => out.extend([
            (
                "strata_queue_pending_messages",
                "Queued batch parts no worker has committed yet",
                i64::try_from(l.messages).unwrap_or(i64::MAX),
            ),
            (
                "strata_queue_pending_bytes",
                "Bytes of those messages",
                i64::try_from(l.bytes).unwrap_or(i64::MAX),
            ),
            (
                "strata_queue_oldest_age_seconds",
                "Age of the oldest uncommitted message (0 when none)",
                l.oldest_age_seconds.ceil() as i64,
            ),
            (
                "strata_queue_dead_letters",
                "Messages in the dead-letter stream",
                i64::try_from(l.dead_letters).unwrap_or(i64::MAX),
            ),
        ]),
        Err(e) => tracing::warn!(error = %e.detail(), "metrics: queue lag not read"),
    }
    out
}

/// How long the oldest hot chunk has been past the hot retention (0: none
/// is), from `chunks` listed oldest first.
pub(crate) fn archive_lag_seconds(state: &AppState, chunks: &[strata_store::Chunk]) -> f64 {
    let cutoff = state.archiver.as_ref().map_or_else(
        || chrono::Utc::now() - chrono::Duration::days(30),
        strata_archive::Archiver::cutoff,
    );
    chunks.first().map_or(0.0, |c| {
        ((cutoff - c.end).num_milliseconds().max(0) as f64) / 1000.0
    })
}

async fn scrape_pg(state: &AppState) -> Result<PgValues, strata_store::StoreError> {
    let runs = state.hot.runs().by_status().await?;
    let chunks = state.hot.list_chunks().await?;
    let lag = archive_lag_seconds(state, &chunks);
    let hot = state.hot.hot_size(&chunks).await?;
    let (hot_rows, hot_bytes) = (hot.rows_estimate, hot.events_bytes + hot.dedup_bytes);
    let cold = state.hot.manifest().totals(None).await?;
    let (cold_rows, cold_bytes) = (cold.rows, cold.bytes);
    Ok(PgValues {
        archive_rows: runs.iter().map(|r| r.rows.max(0) as u64).sum(),
        archive_bytes: runs.iter().map(|r| r.bytes.max(0) as u64).sum(),
        runs_by_status: runs
            .into_iter()
            .map(|r| (r.status, r.runs.max(0) as u64))
            .collect(),
        archive_lag_seconds: lag,
        tier_rows: [("hot", hot_rows), ("cold", cold_rows)],
        tier_bytes: [("hot", hot_bytes), ("cold", cold_bytes)],
    })
}

/// In-process counters, read at every scrape.
fn counters(state: &AppState) -> Vec<(&'static str, &'static str, u64)> {
    let p = state.planner.counters();
    let redis_errors = state.limiter.as_ref().map_or(0, |l| l.redis_errors());
    vec![
        (
            "strata_cold_cache_hits",
            "Cold files served from the local cache",
            p.cache_hits,
        ),
        (
            "strata_cold_cache_misses",
            "Cold files fetched from the object store",
            p.cache_misses,
        ),
        (
            "strata_cold_cache_fetched_bytes",
            "Bytes fetched into the cold cache",
            p.fetched_bytes,
        ),
        (
            "strata_query_hot_rows",
            "Hot events covered by stats answers",
            p.hot_rows,
        ),
        (
            "strata_query_cold_rows",
            "Rows in the cold files read by stats",
            p.cold_rows,
        ),
        (
            "strata_query_cold_bytes",
            "Bytes of the cold files read by stats",
            p.cold_bytes,
        ),
        (
            "strata_query_rollup_days",
            "Cold and sealed hot days answered from their exact rollups instead of their files and rows",
            p.rollup_days,
        ),
        (
            "strata_rate_limit_redis_errors",
            "Rate-limit checks that Redis failed",
            redis_errors,
        ),
    ]
}
