//! `make bench`: one run that loads the same generated events into Strata
//! and into the baselines, measures each target of the benchmark issue, and
//! returns the figures. Strata runs as its real binaries (strata-api,
//! strata-archiver) against PostgreSQL, Redis and the S3 server that
//! `make test` starts; every comparison is made in the same run on the same
//! rows.

mod archive;
mod ingest;
mod lake;
mod lifecycle;
mod query_set;
mod storage;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use sqlx::PgPool;
use strata_model::ValidEvent;

use crate::accounts::{self, Meter};
use crate::data::{self, CSV_COLUMNS, Load};
use crate::error::{Result, failed};
use crate::load::{Ingestor, LoadStats};
use crate::procs::{self, Proc};
use crate::queries::{self, Answer, QuerySpec, Stat, TierMs, Timing, median};
use crate::report::{
    self, ArchiveResult, BigChunk, CpuUse, DataInfo, FloodResult, IngestResult, Latency,
    LifecycleResult, Machine, MemoryResult, QueryResult, QueueResult, Report, ScalePoint,
    ScaleQuery, SteadyPoint, SteadyResult, StorageResult, to_mib,
};

/// Where the S3 server is (what `scripts/ensure-s3.sh` exports).
#[derive(Debug, Clone)]
pub struct S3Env {
    pub endpoint: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

/// What to run; see `strata-bench --help`.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub scale: f64,
    pub days: u32,
    pub events_per_day: u32,
    pub users: u32,
    pub clients: usize,
    pub batch: usize,
    pub big_chunk_rows: u64,
    pub warm_runs: usize,
    /// A PostgreSQL URL allowed to create databases.
    pub admin_url: String,
    pub redis_url: Option<String>,
    pub s3: S3Env,
    pub work_dir: PathBuf,
    /// Leave the database and the bucket prefix behind for inspection.
    pub keep: bool,
    /// Hot layout the binaries must use (`STRATA_HOT_LAYOUT`); the report
    /// names the layout the database got.
    pub layout: strata_store::LayoutChoice,
    /// Fills of the dedup records, in dedup windows of the bench, at which
    /// ingest is measured again (empty = skip that measurement).
    pub steady: Vec<u32>,
}

const DB: &str = "strata_bench";

/// The generated history.
struct History {
    load: Load,
    csv: PathBuf,
    first_day: NaiveDate,
}

struct Bench<'a> {
    cfg: &'a BenchConfig,
    api_bin: PathBuf,
    archiver_bin: PathBuf,
    env: Vec<(String, String)>,
    cold_url: String,
    db_url: String,
    pool: PgPool,
    project: i64,
    today: NaiveDate,
    client: reqwest::Client,
    key: String,
    load_key: String,
    runs: u32,
    /// The server keeps per-statement accounts (`pg_stat_statements`).
    statements: bool,
}

/// A key of `project` whose own rate limit is far above the load: rate
/// limiting is checked on every request (one Redis round trip) but never
/// refuses.
async fn create_key(
    api_bin: &Path,
    env: &[(String, String)],
    project: &str,
    scopes: &str,
) -> Result<String> {
    let out = procs::run_output(
        api_bin,
        &[
            "keys",
            "create",
            "--project",
            project,
            "--scopes",
            scopes,
            "--rate",
            "1000000",
            "--burst",
            "1000000",
        ],
        env,
    )
    .await?;
    Ok(out
        .lines()
        .last()
        .ok_or_else(|| failed("keys create printed no key"))?
        .trim()
        .to_owned())
}

fn with_database(url: &str, db: &str) -> Result<String> {
    let mut u = reqwest::Url::parse(url).map_err(|e| failed(format!("{url}: {e}")))?;
    u.set_path(db);
    Ok(u.to_string())
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// A new bench database with Strata migrated into it, its keys, and the
/// server's name.
async fn set_up(cfg: &BenchConfig) -> Result<(Bench<'_>, PgPool, String, strata_store::Layout)> {
    std::fs::create_dir_all(&cfg.work_dir)?;
    let admin = PgPool::connect(&cfg.admin_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .execute(&admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {DB}"))
        .execute(&admin)
        .await?;
    let postgres: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&admin)
        .await?;
    let postgres = postgres
        .split(" on ")
        .next()
        .unwrap_or(&postgres)
        .to_owned();
    let db_url = with_database(&cfg.admin_url, DB)?;
    let bins = procs::bin_dir()?;
    let cold_url = format!("s3://{}/bench-{}", cfg.s3.bucket, std::process::id());
    let mut env: Vec<(String, String)> = [
        ("STRATA_DATABASE_URL", db_url.as_str()),
        ("STRATA_COLD_URL", cold_url.as_str()),
        ("STRATA_S3_ENDPOINT", cfg.s3.endpoint.as_str()),
        ("STRATA_S3_REGION", cfg.s3.region.as_str()),
        ("STRATA_S3_ACCESS_KEY_ID", cfg.s3.access_key_id.as_str()),
        (
            "STRATA_S3_SECRET_ACCESS_KEY",
            cfg.s3.secret_access_key.as_str(),
        ),
        ("STRATA_HOT_RETENTION", "30d"),
        // Archive runs leave the late events' files as they are: the
        // lifecycle phase measures their compaction alone.
        ("STRATA_COMPACT_MAX_FILES", "1000"),
        ("STRATA_COMPACT_MIN_BYTES", "0"),
        ("STRATA_HOT_LAYOUT", cfg.layout.as_str()),
        ("RUST_LOG", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some(r) = &cfg.redis_url {
        env.push(("STRATA_REDIS_URL".into(), r.clone()));
    }
    let api_bin = bins.join("strata-api");
    procs::run_output(&api_bin, &["migrate"], &env).await?;
    let key = create_key(&api_bin, &env, "bench", "ingest,read,admin").await?;
    // `plan` is declared (ADR-043) before any event: its values are in
    // every rollup; `locale` is not.
    procs::run_output(
        &api_bin,
        &["projects", "declare-property", "bench", "plan"],
        &env,
    )
    .await?;
    // The load that runs beside the archiver goes to its own project, so
    // that the queries below see only the history and the late events.
    let load_key = create_key(&api_bin, &env, "load", "ingest").await?;
    let pool = PgPool::connect(&db_url).await?;
    let layout = strata_store::Store::open(pool.clone())
        .await
        .map_err(|e| failed(e.to_string()))?
        .layout();
    tracing::info!(layout = layout.as_str(), "hot layout");
    let project: i64 = sqlx::query_scalar("SELECT id FROM projects WHERE name = 'bench'")
        .fetch_one(&pool)
        .await?;
    let statements = accounts::enable_statements(&pool).await?;
    let b = Bench {
        cfg,
        api_bin,
        archiver_bin: bins.join("strata-archiver"),
        env,
        cold_url,
        db_url,
        pool,
        project,
        today: Utc::now().date_naive(),
        client: reqwest::Client::new(),
        key,
        load_key,
        runs: 0,
        statements,
    };
    Ok((b, admin, postgres, layout))
}

pub async fn run(cfg: &BenchConfig) -> Result<Report> {
    let started = Instant::now();
    let (mut b, admin, postgres, layout) = set_up(cfg).await?;
    let result = b.measure_all(&admin, &postgres, layout, started).await;
    if !cfg.keep {
        b.clean_up(&admin).await;
    }
    result
}

/// The ingest measurements alone (`strata-bench ingest`): HTTP ingest with
/// its accounts, the copy, the seed design, and the dedup window filling.
pub async fn run_ingest(cfg: &BenchConfig) -> Result<IngestResult> {
    let (mut b, admin, _, _) = set_up(cfg).await?;
    let result = async {
        let history = b.history()?;
        let mut ingest = b.measure_ingest(history).await?;
        ingest.steady = b.steady_state(&admin).await?;
        Ok(ingest)
    }
    .await;
    if !cfg.keep {
        b.clean_up(&admin).await;
    }
    result
}

/// One point of the scale curve (`strata-bench --only-queries`): the
/// history ingested over HTTP and archived with nothing else running, late
/// events into archived days, then the query set against DuckDB alone over
/// the same events (PostgreSQL alone, minutes per query at larger scales,
/// is left to the full run).
pub async fn run_queries(cfg: &BenchConfig) -> Result<ScalePoint> {
    let (mut b, admin, _, layout) = set_up(cfg).await?;
    let result = async {
        let history = b.history()?;
        let (history_csv, bodies) = (history.csv.clone(), Arc::new(history.load.bodies));
        let (api, ingest) = b.start_api().await?;
        tracing::info!("ingesting {} events over HTTP", history.load.events);
        let sent = ingest.send(bodies, cfg.clients).await?;
        api.stop().await?;
        b.archive_once().await?;
        let (api, load) = b.start_api().await?;
        let (late, late_csv) = b.late_events_into_archived_days(&load).await?;
        api.stop().await?;
        b.sql("ANALYZE events; ANALYZE user_first_seen").await?;
        let parquet = b.duck_parquet(&history_csv, &late_csv).await?;
        b.wait_for_autovacuum().await?;
        let mut out = Vec::new();
        for spec in b.query_specs() {
            tracing::info!("query: {}", spec.name);
            let (strata_t, strata_a, tiers) = b.strata_side(&spec).await?;
            let (duck_t, duck_a) = b.duck_side(&spec, &parquet).await?;
            if strata_a != duck_a {
                tracing::error!(
                    query = spec.name,
                    "answers differ:\n strata {strata_a:?}\n duckdb {duck_a:?}"
                );
            }
            out.push(ScaleQuery {
                name: spec.name,
                strata_ms: strata_t.median_ms,
                strata_server_ms: tiers.total,
                strata_hot_ms: tiers.hot,
                duckdb_ms: duck_t.median_ms,
                answers_equal: strata_a == duck_a,
            });
        }
        let hot = strata_store::Store::open(b.pool.clone()).await?;
        let project = Some(strata_model::ProjectId(b.project));
        let cold = hot.manifest().totals(project).await?;
        let (_, rollup_bytes) = hot.rollup_footprint(project).await?;
        Ok(ScalePoint {
            scale: cfg.scale,
            layout: layout.as_str().to_owned(),
            date: Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            commit: git_commit(),
            events: sent.events + late,
            users: cfg.users,
            cold_files: cold.files as u64,
            cold_bytes: cold.bytes as u64,
            rollup_bytes: rollup_bytes as u64,
            queries: out,
        })
    }
    .await;
    if !cfg.keep {
        b.clean_up(&admin).await;
    }
    result
}

impl Bench<'_> {
    fn path(&self, name: &str) -> PathBuf {
        self.cfg.work_dir.join(name)
    }

    /// Starts strata-api with an empty cold cache; its base URL once ready.
    async fn start_api(&mut self) -> Result<(Proc, Ingestor)> {
        let (env, key) = (self.env.clone(), self.key.clone());
        self.start_api_with(&env, &key).await
    }

    /// [`Self::start_api`] with another environment, posting with `key`.
    async fn start_api_with(
        &mut self,
        env: &[(String, String)],
        key: &str,
    ) -> Result<(Proc, Ingestor)> {
        self.runs += 1;
        let cache = self.path(&format!("cache-{}", self.runs));
        let _ = std::fs::remove_dir_all(&cache);
        let mut env = env.to_vec();
        env.push(("STRATA_LISTEN".into(), "127.0.0.1:0".into()));
        env.push(("STRATA_COLD_CACHE_DIR".into(), cache.display().to_string()));
        let log = self.path("api.log");
        // The log is appended to by every start: this start's lines follow.
        let offset = std::fs::metadata(&log).map_or(0, |m| m.len());
        let proc = Proc::spawn(&self.api_bin, &["serve"], &env, &log)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut base: Option<String> = None;
        loop {
            if base.is_none() {
                // The port the system chose, as the server prints it.
                let text = std::fs::read(&log).unwrap_or_default();
                let mine = String::from_utf8_lossy(text.get(offset as usize..).unwrap_or_default());
                base = mine
                    .lines()
                    .find_map(|l| l.strip_prefix("strata-api listening on "))
                    .map(str::to_owned);
            }
            if let Some(b) = &base {
                let ready = self.client.get(format!("{b}/readyz")).send().await;
                if ready.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(failed(format!(
                    "strata-api did not become ready; see {}",
                    log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let base = base.unwrap_or_default();
        Ok((
            proc,
            Ingestor {
                client: self.client.clone(),
                base,
                key: key.to_owned(),
            },
        ))
    }

    async fn sql(&self, sql: &str) -> Result<()> {
        sqlx::raw_sql(sql).execute(&self.pool).await?;
        Ok(())
    }

    /// The whole run, phase by phase; each phase is a method below.
    async fn measure_all(
        &mut self,
        admin: &PgPool,
        postgres: &str,
        layout: strata_store::Layout,
        started: Instant,
    ) -> Result<Report> {
        let history = self.history()?;
        let (history_events, history_csv, first_history_day) =
            (history.load.events, history.csv.clone(), history.first_day);
        let mut ingest_result = self.measure_ingest(history).await?;
        ingest_result.steady = self.steady_state(admin).await?;
        let (api, load) = self.start_api().await?;
        let hot = self.hot_footprint().await?;
        let archived = self.archive_under_load(&load).await?;
        let (late_events, late_csv) = self.late_events_into_archived_days(&load).await?;
        api.stop().await?;
        let (storage, cold) = self.storage(&hot, history_events).await?;
        let parquet_dir = self.load_baselines(&history_csv, &late_csv).await?;
        let queries = self.queries(&parquet_dir).await?;
        let lake = self.lake().await?;
        let memory = self.long_range_memory().await?;
        let flood = self.late_day_flood().await?;
        let big_chunk = self
            .big_chunk(first_history_day - chrono::Duration::days(3))
            .await?;
        let lifecycle = self.lifecycle().await?;
        let queue = self.queue_mode(ingest_result.copy_events_per_s).await?;

        let archive = archived.result(big_chunk);
        let data = DataInfo {
            scale: self.cfg.scale,
            days: self.cfg.days,
            users: self.cfg.users,
            history_events,
            load_events: archived.during.events + archived.alone.events,
            late_events,
            hot_rows_after_archive: cold.hot_rows_after as u64,
            cold_rows: cold.rows as u64,
            cold_files: cold.files as u64,
        };
        let targets = report::targets(&ingest_result, &archive, &storage, &queries, &lake);
        Ok(Report {
            date: Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            commit: git_commit(),
            machine: Machine::read(postgres.to_owned()),
            layout: layout.as_str().to_owned(),
            data,
            ingest: ingest_result,
            archive,
            storage,
            queries,
            memory,
            flood,
            lifecycle,
            queue,
            lake,
            targets,
            total_secs: secs(started),
        })
    }

    async fn clean_up(&self, admin: &PgPool) {
        self.pool.close().await;
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
            .execute(admin)
            .await;
        let s3 = strata_cold::S3Options {
            endpoint: Some(self.cfg.s3.endpoint.clone()),
            region: Some(self.cfg.s3.region.clone()),
            access_key_id: Some(self.cfg.s3.access_key_id.clone()),
            secret_access_key: Some(self.cfg.s3.secret_access_key.clone()),
            ..strata_cold::S3Options::default()
        };
        if let Ok(store) = strata_cold::ColdStore::from_url(&self.cold_url, &s3) {
            let _ = store.delete_all().await;
        }
        for f in ["history.csv", "late.csv"] {
            let _ = std::fs::remove_file(self.path(f));
        }
        let _ = std::fs::remove_dir_all(self.path("duckdb-parquet"));
        for i in 1..=self.runs {
            let _ = std::fs::remove_dir_all(self.path(&format!("cache-{i}")));
        }
    }
}

fn own_cpu() -> f64 {
    procs::cpu_secs(std::process::id())
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}
