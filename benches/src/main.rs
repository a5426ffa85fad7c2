//! `strata-bench`: the end-to-end benchmark run behind `make bench`.
//! Wiring only; the run lives in the `strata_benches` library.

#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use strata_benches::{BenchConfig, S3Env, report};

#[derive(Debug, Parser)]
#[command(
    name = "strata-bench",
    about = "Strata against its baselines, on the same data, in one run"
)]
struct Args {
    /// Multiplies the events per day and the users (1 = the default size,
    /// about 3 million events over a year, under 10 minutes on 2 cores).
    #[arg(long, env = "BENCH_SCALE", default_value_t = 1.0)]
    scale: f64,
    /// Days of history, ending today.
    #[arg(long, env = "BENCH_DAYS", default_value_t = 365)]
    days: u32,
    /// Concurrent ingest clients.
    #[arg(long, env = "BENCH_CLIENTS", default_value_t = 8)]
    clients: usize,
    /// Events per ingest request.
    #[arg(long, env = "BENCH_BATCH", default_value_t = 1000)]
    batch: usize,
    /// Rows of the one big chunk archived for the archiver's memory.
    #[arg(long, env = "BENCH_BIG_CHUNK_ROWS", default_value_t = 5_000_000)]
    big_chunk_rows: u64,
    /// Warm runs per query (the median is reported).
    #[arg(long, env = "BENCH_WARM_RUNS", default_value_t = 5)]
    warm_runs: usize,
    /// A PostgreSQL URL allowed to create the `strata_bench` database.
    #[arg(long, env = "STRATA_TEST_DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "STRATA_TEST_REDIS_URL")]
    redis_url: Option<String>,
    #[arg(long, env = "STRATA_TEST_S3_ENDPOINT")]
    s3_endpoint: String,
    #[arg(long, env = "STRATA_TEST_S3_BUCKET")]
    s3_bucket: String,
    #[arg(long, env = "STRATA_TEST_S3_ACCESS_KEY_ID")]
    s3_access_key_id: String,
    #[arg(long, env = "STRATA_TEST_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    s3_secret_access_key: String,
    #[arg(long, env = "STRATA_TEST_S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    /// Scratch space for the CSV, Parquet and caches of the run.
    #[arg(long, env = "BENCH_WORK_DIR", default_value = "/var/tmp/strata-bench")]
    work_dir: PathBuf,
    /// The markdown file whose generated section is replaced.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    markdown: PathBuf,
    /// Where the same figures go as JSON (default:
    /// `docs/benchmarks/<layout>.json`).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Hot layout for the run: `native` or `timescaledb` (the database
    /// server must preload it; `make bench` picks the server).
    #[arg(long, env = "BENCH_HOT_LAYOUT", default_value = "native")]
    layout: strata_store::LayoutChoice,
    /// Keep the database and the bucket prefix for inspection.
    #[arg(long)]
    keep: bool,
    /// Fills of the idempotency and first-seen records, in dedup windows of
    /// the bench (90 days × events a day), at which ingest is measured
    /// again; empty to skip.
    #[arg(
        long,
        env = "BENCH_STEADY",
        value_delimiter = ',',
        default_value = "0,1,10,30"
    )]
    steady: Vec<u32>,
    /// Only the ingest measurements (accounts, copy, seed design, steady
    /// state); printed, docs left alone.
    #[arg(long, env = "BENCH_ONLY_INGEST", value_parser = clap::builder::BoolishValueParser::new())]
    only_ingest: bool,
    /// Only the query set, against DuckDB alone, as one point of the scale
    /// curve (`make bench-scale`): merged by scale into
    /// `docs/benchmarks/scale-<layout>.json` and its section of the
    /// markdown.
    #[arg(long, env = "BENCH_ONLY_QUERIES", value_parser = clap::builder::BoolishValueParser::new())]
    only_queries: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    anyhow::ensure!(a.scale > 0.0, "BENCH_SCALE must be positive");
    let cfg = BenchConfig {
        scale: a.scale,
        days: a.days,
        events_per_day: (8_000.0 * a.scale).round() as u32,
        users: (40_000.0 * a.scale).round() as u32,
        clients: a.clients,
        batch: a.batch,
        big_chunk_rows: a.big_chunk_rows,
        warm_runs: a.warm_runs,
        admin_url: a.database_url,
        redis_url: a.redis_url,
        s3: S3Env {
            endpoint: a.s3_endpoint,
            bucket: a.s3_bucket,
            access_key_id: a.s3_access_key_id,
            secret_access_key: a.s3_secret_access_key,
            region: a.s3_region,
        },
        work_dir: a.work_dir,
        keep: a.keep,
        layout: a.layout,
        steady: a.steady,
    };
    if a.only_ingest {
        let ingest = strata_benches::run::run_ingest(&cfg).await?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!("{}", ingest.markdown(cores));
        println!("{}", serde_json::to_string_pretty(&ingest)?);
        return Ok(());
    }
    if a.only_queries {
        let point = strata_benches::run::run_queries(&cfg).await?;
        let json = PathBuf::from(format!("docs/benchmarks/scale-{}.json", point.layout));
        let earlier: Vec<report::ScalePoint> = std::fs::read_to_string(&json)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let layout = point.layout.clone();
        let points = report::with_point(earlier, point);
        let section = report::scale_markdown(&layout, &points);
        println!("{section}");
        let doc = std::fs::read_to_string(&a.markdown).unwrap_or_default();
        let name = format!("scale {layout}");
        std::fs::write(&a.markdown, report::splice(&doc, &name, &section))
            .with_context(|| format!("writing {}", a.markdown.display()))?;
        std::fs::write(&json, serde_json::to_string_pretty(&points)? + "\n")
            .with_context(|| format!("writing {}", json.display()))?;
        println!("wrote {} and {}", a.markdown.display(), json.display());
        return Ok(());
    }
    let report = strata_benches::run(&cfg).await?;
    let section = report.markdown();
    println!("{section}");
    let doc = std::fs::read_to_string(&a.markdown).unwrap_or_default();
    std::fs::write(&a.markdown, report::splice(&doc, &report.layout, &section))
        .with_context(|| format!("writing {}", a.markdown.display()))?;
    let json = a
        .json
        .unwrap_or_else(|| PathBuf::from(format!("docs/benchmarks/{}.json", report.layout)));
    if let Some(dir) = json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    println!("wrote {} and {}", a.markdown.display(), json.display());
    Ok(())
}
