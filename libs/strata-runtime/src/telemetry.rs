//! Logs, traces and metrics.
//!
//! Logs: JSON lines on stderr (stdout stays free for command output such as
//! a new API key); the level comes from `RUST_LOG`, `info` by default (sqlx
//! notices only at `warn`).
//!
//! Traces and metrics: exported over OTLP/HTTP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard `OTEL_*` variables
//! apply: `OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
//! `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_METRIC_EXPORT_INTERVAL`, …), off
//! otherwise. Every `tracing` span becomes an OpenTelemetry span. Export runs
//! on the SDK's own background threads with bounded queues, so an
//! unreachable collector drops telemetry instead of slowing requests;
//! [`Telemetry::shutdown`] flushes within a bounded time.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::RuntimeError;

/// Flushes and stops the exporters on [`Telemetry::shutdown`].
#[derive(Debug, Default)]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
    metrics: Option<SdkMeterProvider>,
}

/// Longest time shutdown waits for telemetry to flush.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

impl Telemetry {
    /// Whether OTLP export is on.
    pub fn exporting(&self) -> bool {
        self.traces.is_some()
    }

    /// Flushes what is buffered, waiting at most 5 s per signal.
    pub fn shutdown(&self) {
        if let Some(t) = &self.traces
            && let Err(e) = t.shutdown_with_timeout(FLUSH_TIMEOUT)
        {
            tracing::warn!(error = %e, "trace export did not flush");
        }
        if let Some(m) = &self.metrics
            && let Err(e) = m.shutdown_with_timeout(FLUSH_TIMEOUT)
        {
            tracing::warn!(error = %e, "metric export did not flush");
        }
    }
}

fn otlp_endpoint() -> Option<String> {
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty())
}

/// Logs, plus OTLP traces and metrics when an endpoint is configured.
/// `service` names the process unless `OTEL_SERVICE_NAME` is set.
pub fn init(service: &'static str) -> Result<Telemetry, RuntimeError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(std::io::stderr)
        .with_current_span(true)
        .with_span_list(false)
        .with_span_events(FmtSpan::NONE);
    let err = |e: &dyn std::fmt::Display| RuntimeError::Telemetry(e.to_string());
    if otlp_endpoint().is_none() {
        tracing_subscriber::registry()
            .with(logs.with_filter(filter))
            .try_init()
            .map_err(|e| err(&e))?;
        return Ok(Telemetry::default());
    }
    let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
    let resource = Resource::builder().with_service_name(name).build();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| err(&e))?;
    let traces = SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_resource(resource.clone())
        .build();
    let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .build()
        .map_err(|e| err(&e))?;
    let metrics = SdkMeterProvider::builder()
        .with_periodic_exporter(metric_exporter)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_meter_provider(metrics.clone());
    // Spans are exported at `info` whatever RUST_LOG says about logs; the
    // exporter's own HTTP stack is never traced (it would trace itself).
    let otel = tracing_opentelemetry::layer()
        .with_tracer(traces.tracer("strata"))
        .with_filter(EnvFilter::new(
            "info,sqlx=warn,hyper=off,hyper_util=off,h2=off,reqwest=off,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,opentelemetry_http=off",
        ));
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(otel)
        .try_init()
        .map_err(|e| err(&e))?;
    Ok(Telemetry {
        traces: Some(traces),
        metrics: Some(metrics),
    })
}

/// A binary's `main`: telemetry set up, `main` run on a multi-threaded tokio
/// runtime, telemetry flushed. Set-up and flush happen outside the runtime:
/// the OTLP exporter uses a blocking HTTP client on the SDK's own threads.
///
/// An error ends the process with status 1 and one line on stderr,
/// `Error: <what failed>: <cause>…` (the alternate form, which for `anyhow`
/// is the whole chain), never a backtrace, whatever `RUST_BACKTRACE` says:
/// it is what an operator reads when a binary refuses to start.
pub fn run_main<E>(
    service: &'static str,
    main: impl Future<Output = Result<(), E>>,
) -> std::process::ExitCode
where
    E: std::fmt::Display,
{
    let result = match (
        init(service),
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    ) {
        (Ok(telemetry), Ok(runtime)) => {
            let result = runtime.block_on(main).map_err(|e| format!("{e:#}"));
            drop(runtime);
            telemetry.shutdown();
            result
        }
        (Err(e), _) => Err(e.to_string()),
        (_, Err(e)) => Err(format!("starting the runtime: {e}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("Error: {message}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
