//! `make bench`: one run that loads the same generated events into Strata
//! and into the baselines, measures each target of the benchmark issue, and
//! returns the figures. Strata runs as its real binaries (strata-api,
//! strata-archiver) against PostgreSQL, Redis and the S3 server that
//! `make test` starts; every comparison is made in the same run on the same
//! rows.

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

    /// `psql \copy` of `csv` into the baseline table; seconds taken.
    async fn psql_copy(&self, csv: &Path) -> Result<f64> {
        let started = Instant::now();
        let out = tokio::process::Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.db_url,
                "-c",
            ])
            .arg(format!(
                "\\copy {} ({CSV_COLUMNS}) FROM '{}' WITH (FORMAT csv)",
                queries::PG_TABLE,
                csv.display()
            ))
            .output()
            .await
            .map_err(|e| failed(format!("cannot run psql: {e}")))?;
        if !out.status.success() {
            return Err(failed(format!(
                "psql \\copy failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(secs(started))
    }

    async fn create_baseline_table(&self, first: NaiveDate) -> Result<()> {
        let mut sql = format!(
            "CREATE SCHEMA bench_baseline;
             CREATE TABLE {t} (LIKE public.events) PARTITION BY RANGE (ts);
             ALTER TABLE {t} ALTER COLUMN received_at SET DEFAULT now();
             CREATE INDEX ON {t} (project_id, ts);",
            t = queries::PG_TABLE
        );
        let mut d = first;
        while d <= self.today + chrono::Duration::days(2) {
            sql.push_str(&format!(
                "CREATE TABLE bench_baseline.events_{} PARTITION OF {} \
                 FOR VALUES FROM ('{d} 00:00:00+00') TO ('{} 00:00:00+00');",
                d.format("%Y%m%d"),
                queries::PG_TABLE,
                d + chrono::Duration::days(1)
            ));
            d += chrono::Duration::days(1);
        }
        self.sql(&sql).await
    }

    fn bodies(&self, events: &[ValidEvent]) -> Result<Arc<Vec<data::Body>>> {
        let mut load = Load::default();
        load.push(events, self.cfg.batch)?;
        Ok(Arc::new(load.bodies))
    }

    /// Posts generated events of today to the `load` project from the
    /// configured clients until `until` resolves, while one more client
    /// asks for 30 days of DAU every 200 ms; what they sent, and the stats
    /// requests' latencies.
    async fn load_until(
        &self,
        ingest: &Ingestor,
        seed: u64,
        until: impl Future<Output = ()>,
    ) -> Result<(LoadStats, Vec<f64>)> {
        let stop = Arc::new(AtomicBool::new(false));
        let ingest = Ingestor {
            key: self.load_key.clone(),
            ..ingest.clone()
        };
        let (today, users, batch, clients) = (
            self.today,
            self.cfg.users,
            self.cfg.batch as u32,
            self.cfg.clients,
        );
        let prober = {
            let (stop, reader) = (Arc::clone(&stop), ingest.clone());
            let reader = Ingestor {
                key: self.key.clone(),
                ..reader
            };
            tokio::spawn(async move {
                let from = today - chrono::Duration::days(29);
                reader
                    .probe_stats(from, today, Duration::from_millis(200), stop)
                    .await
            })
        };
        let task = {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                ingest
                    .send_generated(today, users, batch, clients, seed, stop)
                    .await
            })
        };
        until.await;
        stop.store(true, Ordering::Relaxed);
        let load = task
            .await
            .map_err(|e| failed(format!("load task failed: {e}")))??;
        let probes = prober
            .await
            .map_err(|e| failed(format!("stats prober failed: {e}")))??;
        Ok((load, probes))
    }

    /// The newest archive run: rows, chunks, seconds.
    async fn last_archive_run(&self) -> Result<(u64, u64, f64)> {
        let hot = strata_store::Store::open(self.pool.clone()).await?;
        let Some((run, _)) = hot.runs().list(1).await?.into_iter().next() else {
            return Err(failed("no archive run was recorded"));
        };
        if run.status != "succeeded" {
            return Err(failed(format!("the archive run ended {}", run.status)));
        }
        let secs = run.finished_at.map_or(0.0, |f| {
            (f - run.started_at).num_milliseconds() as f64 / 1000.0
        });
        Ok((run.rows_moved as u64, run.chunks_moved as u64, secs))
    }

    /// The history: every day's events as request bodies, and as the CSV
    /// the copy baseline loads.
    fn history(&self) -> Result<History> {
        let cfg = self.cfg;
        tracing::info!(
            "generating {} days × {} events",
            cfg.days,
            cfg.events_per_day
        );
        let mut g = data::generator(cfg.days, self.today, cfg.users, cfg.events_per_day, 1);
        let days: Vec<NaiveDate> = g.days().collect();
        let csv = self.path("history.csv");
        let mut load = Load::default();
        let mut w = BufWriter::new(std::fs::File::create(&csv)?);
        for (i, d) in days.iter().enumerate() {
            let events = g.day(i as u32, *d);
            load.push(&events, cfg.batch)?;
            data::write_csv(&events, self.project, &mut w)?;
        }
        w.flush()?;
        Ok(History {
            load,
            csv,
            first_day: days.first().copied().unwrap_or(self.today),
        })
    }

    /// Strata's ingest of the history over HTTP, `psql \copy` of the same
    /// rows, and the seed design's writes of the same bodies, each with
    /// PostgreSQL's accounts.
    async fn measure_ingest(&mut self, history: History) -> Result<IngestResult> {
        let cfg = self.cfg;
        let events = history.load.events;
        let bodies = Arc::new(history.load.bodies);
        let (api, ingest) = self.start_api().await?;
        self.sql("CHECKPOINT").await?;
        tracing::info!("ingesting {events} events over HTTP");
        let cpu0 = (api.cpu_secs(), own_cpu());
        let meter = Meter::start(&self.pool, self.statements).await?;
        let http = ingest.send(Arc::clone(&bodies), cfg.clients).await?;
        let strata = meter
            .finish(&self.pool, "Strata", http.events, Some(http.secs))
            .await?;
        let (api_cpu, client_cpu) = (api.cpu_secs() - cpu0.0, own_cpu() - cpu0.1);
        let api_peak = api.peak_rss();
        api.stop().await?;

        self.create_baseline_table(history.first_day - chrono::Duration::days(5))
            .await?;
        self.sql("CHECKPOINT").await?;
        tracing::info!("psql \\copy of the same rows");
        let meter = Meter::start(&self.pool, self.statements).await?;
        let copy_secs = self.psql_copy(&history.csv).await?;
        let copy = meter
            .finish(&self.pool, "psql \\copy", events, Some(copy_secs))
            .await?;

        crate::peer::create(&self.pool).await?;
        self.sql("CHECKPOINT").await?;
        tracing::info!("the seed design's INSERT … ON CONFLICT of the same bodies");
        let meter = Meter::start(&self.pool, self.statements).await?;
        let peer_load = crate::peer::send(&self.db_url, bodies, cfg.clients).await?;
        let peer = meter
            .finish(
                &self.pool,
                "seed design",
                peer_load.events,
                Some(peer_load.secs),
            )
            .await?;
        let per_m = 1e6 / events.max(1) as f64;
        Ok(IngestResult {
            clients: cfg.clients,
            batch_events: cfg.batch,
            events: http.events,
            strata_secs: http.secs,
            strata_events_per_s: http.per_sec(),
            copy_secs,
            copy_events_per_s: copy.events_per_s,
            ratio: http.per_sec() / copy.events_per_s,
            api_peak_rss_mib: to_mib(api_peak),
            cpu_per_million: CpuUse {
                api: api_cpu * per_m,
                postgres: strata.postgres_cpu,
                client: client_cpu * per_m,
            },
            copy_postgres_cpu_per_million: copy.postgres_cpu,
            peer_events_per_s: peer.events_per_s,
            peer_ratio: http.per_sec() / peer.events_per_s,
            accounts: vec![strata, copy, peer],
            steady: None,
        })
    }

    /// Ingest into a second database whose idempotency and first-seen
    /// records are filled to 0, 1, 10 and 30 dedup windows of the bench
    /// (`BenchConfig::steady`); `None` when that list is empty.
    async fn steady_state(&mut self, admin: &PgPool) -> Result<Option<SteadyResult>> {
        let cfg = self.cfg;
        if cfg.steady.is_empty() {
            return Ok(None);
        }
        let db = format!("{DB}_steady");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .execute(admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(admin)
            .await?;
        let url = with_database(&cfg.admin_url, &db)?;
        let mut env = self.env.clone();
        for (k, v) in &mut env {
            if k == "STRATA_DATABASE_URL" {
                v.clone_from(&url);
            }
        }
        procs::run_output(&self.api_bin, &["migrate"], &env).await?;
        let key = create_key(&self.api_bin, &env, "steady", "ingest").await?;
        let pool = PgPool::connect(&url).await?;
        let statements = accounts::enable_statements(&pool).await?;
        let project: i64 = sqlx::query_scalar("SELECT id FROM projects WHERE name = 'steady'")
            .fetch_one(&pool)
            .await?;
        let hot = strata_store::Store::open(pool.clone())
            .await
            .map_err(|e| failed(e.to_string()))?;
        let window_ids = 90 * u64::from(cfg.events_per_day);
        let load_events = 40 * cfg.events_per_day;
        let today = self.today;
        let bodies = |seed: u64, n: u32| -> Result<Arc<Vec<data::Body>>> {
            let events = data::generator(1, today, cfg.users, n, seed).day(0, today);
            let mut load = Load::default();
            load.push(&events, cfg.batch)?;
            Ok(Arc::new(load.bodies))
        };
        // The users become known first, as in a store that has been running.
        let (api, ingest) = self.start_api_with(&env, &key).await?;
        ingest
            .send(bodies(500, load_events / 4)?, cfg.clients)
            .await?;
        api.stop().await?;
        let (mut ids, mut users) = (0u64, 0u64);
        let mut points = Vec::new();
        for &windows in &cfg.steady {
            let (want_ids, want_users) = (
                window_ids * u64::from(windows),
                u64::from(cfg.users) * u64::from(windows),
            );
            tracing::info!("steady state: filling the dedup records to {want_ids} ids");
            if want_ids > ids {
                strata_store::events::fill::fill_dedup(
                    &pool,
                    strata_model::ProjectId(project),
                    want_ids - ids,
                    90,
                )
                .await
                .map_err(|e| failed(e.to_string()))?;
                ids = want_ids;
            }
            if want_users > users {
                strata_store::events::fill::fill_first_seen(
                    &pool,
                    strata_model::ProjectId(project),
                    users,
                    want_users,
                    90,
                )
                .await
                .map_err(|e| failed(e.to_string()))?;
                users = want_users;
            }
            for table in ["event_ids", "user_first_seen"] {
                sqlx::query(&format!("VACUUM (ANALYZE) {table}"))
                    .execute(&pool)
                    .await?;
            }
            // A fresh server: it lists the filled days and builds their
            // filters before the load, as a server running for days has.
            let (api, ingest) = self.start_api_with(&env, &key).await?;
            wait_for_dedup_filters(&ingest, if ids > 0 { 90.0 } else { 0.0 }).await?;
            sqlx::raw_sql("CHECKPOINT").execute(&pool).await?;
            let load = bodies(600 + u64::from(windows), load_events)?;
            let api0 = api.cpu_secs();
            let meter = Meter::start(&pool, statements).await?;
            let sent = ingest.send(load, cfg.clients).await?;
            let accounts = meter
                .finish(
                    &pool,
                    &format!("{windows}× window"),
                    sent.events,
                    Some(sent.secs),
                )
                .await?;
            let dedup_bytes = hot
                .hot_size(&[])
                .await
                .map_err(|e| failed(e.to_string()))?
                .dedup_bytes;
            points.push(SteadyPoint {
                windows,
                dedup_ids: ids,
                first_seen_users: users,
                dedup_bytes: dedup_bytes as u64,
                api_cpu: (api.cpu_secs() - api0) * 1e6 / sent.events.max(1) as f64,
                accounts,
            });
            api.stop().await?;
        }
        pool.close().await;
        if !cfg.keep {
            sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .execute(admin)
                .await?;
        }
        Ok(Some(SteadyResult { window_ids, points }))
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
        let targets = report::targets(&ingest_result, &archive, &storage, &queries);
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
            targets,
            total_secs: secs(started),
        })
    }

    /// Every event is still in PostgreSQL: its size, and the baseline
    /// table's for the same rows.
    async fn hot_footprint(&self) -> Result<HotFootprint> {
        let hot = strata_store::Store::open(self.pool.clone()).await?;
        let chunks = hot.list_chunks().await?;
        let size = hot.hot_size(&chunks).await?;
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await?;
        let baseline_bytes: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::int8
               FROM pg_inherits WHERE inhparent = 'bench_baseline.events'::regclass",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(HotFootprint {
            hot,
            size,
            events,
            baseline_bytes,
        })
    }

    /// Archives while today's events keep arriving (in another project).
    /// The same load runs alone for 15 s before and 15 s after, so that the
    /// growth of the database during the run weighs on both sides of the
    /// comparison.
    async fn archive_under_load(&mut self, load: &Ingestor) -> Result<ArchiveUnderLoad> {
        let window = Duration::from_secs(15);
        let (before, stats_before) = self
            .load_until(load, 1_000, tokio::time::sleep(window))
            .await?;
        tracing::info!("archiving with ingest running");
        let archiver = self.spawn_archiver()?;
        let (status_tx, status_rx) = tokio::sync::oneshot::channel();
        let (during, stats_during) = self
            .load_until(load, 2_000, async move {
                let _ = status_tx.send(archiver.wait().await);
            })
            .await?;
        let (status, archiver_peak) = status_rx
            .await
            .map_err(|_| failed("the archiver's status was lost"))??;
        self.archiver_succeeded(status)?;
        let (rows, chunks, secs) = self.last_archive_run().await?;
        let (after, stats_after) = self
            .load_until(load, 3_000, tokio::time::sleep(window))
            .await?;
        Ok(ArchiveUnderLoad {
            rows,
            chunks,
            secs,
            archiver_peak,
            alone: LoadStats {
                events: before.events + after.events,
                batches: before.batches + after.batches,
                secs: before.secs + after.secs,
                latencies_ms: [before.latencies_ms, after.latencies_ms].concat(),
            },
            during,
            stats_alone: [stats_before, stats_after].concat(),
            stats_during,
        })
    }

    /// One `strata-archiver run --once` with nothing else running.
    async fn archive_once(&self) -> Result<()> {
        tracing::info!("archiving");
        let (status, _) = self.spawn_archiver()?.wait().await?;
        self.archiver_succeeded(status)
    }

    /// `strata-archiver run --once`, logging to `archiver.log`.
    fn spawn_archiver(&self) -> Result<Proc> {
        Proc::spawn(
            &self.archiver_bin,
            &["run", "--once"],
            &self.env,
            &self.path("archiver.log"),
        )
    }

    fn archiver_succeeded(&self, status: std::process::ExitStatus) -> Result<()> {
        if status.success() {
            return Ok(());
        }
        Err(failed(format!(
            "strata-archiver run --once failed ({status}); see {}",
            self.path("archiver.log").display()
        )))
    }

    /// Late events into archived days: those days are then held by both
    /// tiers, and every query has to merge them. Returns how many, and
    /// their CSV for the baselines.
    async fn late_events_into_archived_days(&self, load: &Ingestor) -> Result<(u64, PathBuf)> {
        let cfg = self.cfg;
        let mut late: Vec<ValidEvent> = Vec::new();
        for i in 0..8u32 {
            let back = 35 + i64::from(i) * (i64::from(cfg.days) - 40) / 8;
            let d = self.today - chrono::Duration::days(back);
            let n = (cfg.events_per_day / 50).max(10);
            late.extend(data::generator(1, d, cfg.users, n, 100 + u64::from(i)).day(0, d));
        }
        load.send(self.bodies(&late)?, cfg.clients).await?;
        let late_csv = self.path("late.csv");
        let mut w = BufWriter::new(std::fs::File::create(&late_csv)?);
        data::write_csv(&late, self.project, &mut w)?;
        w.flush()?;
        Ok((late.len() as u64, late_csv))
    }

    /// Hot and cold bytes per event, and what the cold tier holds now.
    async fn storage(
        &self,
        hot: &HotFootprint,
        history_events: u64,
    ) -> Result<(StorageResult, ColdHolding)> {
        let cold = hot
            .hot
            .manifest()
            .totals(Some(strata_model::ProjectId(self.project)))
            .await?;
        let hot_rows_after: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE project_id = $1")
                .bind(self.project)
                .fetch_one(&self.pool)
                .await?;
        let (rollup_days, rollup_bytes) = hot
            .hot
            .rollup_footprint(Some(strata_model::ProjectId(self.project)))
            .await?;
        let size = &hot.size;
        let hot_bpe = (size.events_bytes + size.dedup_bytes) as f64 / hot.events as f64;
        let cold_bpe = cold.bytes as f64 / cold.rows.max(1) as f64;
        let storage = StorageResult {
            hot_events: hot.events as u64,
            hot_events_bytes: size.events_bytes as u64,
            hot_dedup_bytes: size.dedup_bytes as u64,
            hot_bytes_per_event: hot_bpe,
            cold_rows: cold.rows as u64,
            cold_bytes: cold.bytes as u64,
            cold_bytes_per_event: cold_bpe,
            rollup_days: rollup_days as u64,
            rollup_bytes: rollup_bytes as u64,
            ratio: hot_bpe / cold_bpe,
            baseline_table_bytes_per_event: hot.baseline_bytes as f64 / history_events as f64,
        };
        let holding = ColdHolding {
            files: cold.files,
            rows: cold.rows,
            hot_rows_after,
        };
        Ok((storage, holding))
    }

    /// The baselines get the rest of the rows: PostgreSQL's table, and the
    /// Parquet that DuckDB alone reads (its directory).
    async fn load_baselines(&self, history_csv: &Path, late_csv: &Path) -> Result<PathBuf> {
        tracing::info!("loading the baselines");
        self.psql_copy(late_csv).await?;
        self.sql("ANALYZE bench_baseline.events; ANALYZE events; ANALYZE user_first_seen")
            .await?;
        let parquet = self.duck_parquet(history_csv, late_csv).await?;
        self.wait_for_autovacuum().await?;
        Ok(parquet)
    }

    /// Waits (up to three minutes) until autovacuum has caught up with the
    /// users first seen by the load, as it has on a server at steady state
    /// (the migration of ADR-036 vacuums `user_first_seen` after every
    /// 1,000 new users): until then retention's index-only cohort read
    /// fetches heap pages, and the queries would measure the load's wake.
    async fn wait_for_autovacuum(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            let pending: Option<i64> = sqlx::query_scalar(
                "SELECT n_ins_since_vacuum FROM pg_stat_user_tables
                  WHERE relid = 'user_first_seen'::regclass",
            )
            .fetch_optional(&self.pool)
            .await?;
            let pending = pending.unwrap_or(0);
            if pending < 1_000 {
                tracing::info!(
                    "autovacuum caught up with user_first_seen after {:.0} s",
                    secs(started)
                );
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(180) {
                tracing::warn!("autovacuum left {pending} new users unvacuumed; measuring anyway");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// DuckDB alone's Parquet of the history and the late events.
    async fn duck_parquet(&self, history_csv: &Path, late_csv: &Path) -> Result<PathBuf> {
        let parquet_dir = self.path("duckdb-parquet");
        let _ = std::fs::remove_dir_all(&parquet_dir);
        let (h, e, p) = (
            history_csv.to_path_buf(),
            late_csv.to_path_buf(),
            parquet_dir.clone(),
        );
        tokio::task::spawn_blocking(move || queries::build_parquet(&[&h, &e], &p))
            .await
            .map_err(|e| failed(e.to_string()))??;
        Ok(parquet_dir)
    }

    /// The four queries of the set, each ending today.
    fn query_specs(&self) -> Vec<QuerySpec> {
        let today = self.today;
        let d = |n: i64| today - chrono::Duration::days(n);
        [
            ("DAU 90 days", Stat::Dau, d(89)),
            ("DAU 365 days", Stat::Dau, d(364)),
            ("top events 365 days", Stat::TopEvents { limit: 10 }, d(364)),
            ("retention 12 weeks", Stat::Retention { periods: 12 }, d(83)),
        ]
        .into_iter()
        .map(|(name, stat, from)| QuerySpec {
            name: name.to_owned(),
            stat,
            from,
            to: today,
        })
        .collect()
    }

    /// The four queries, each against its baselines.
    async fn queries(&mut self, parquet_dir: &Path) -> Result<Vec<QueryResult>> {
        let mut results = Vec::new();
        for spec in self.query_specs() {
            tracing::info!("query: {}", spec.name);
            results.push(self.query(&spec, parquet_dir).await?);
        }
        Ok(results)
    }

    /// A hostile client floods old days (each batch: 1,000 events on 1,000
    /// distinct past days) beside the usual load.
    async fn late_day_flood(&mut self) -> Result<FloodResult> {
        let (api, ingest) = self.start_api().await?;
        let flood_stop = Arc::new(AtomicBool::new(false));
        let flood = {
            let (ingest, stop) = (
                Ingestor {
                    key: self.load_key.clone(),
                    ..ingest.clone()
                },
                Arc::clone(&flood_stop),
            );
            let today = self.today;
            tokio::spawn(async move { late_day_flood(&ingest, today, stop).await })
        };
        let stop = Arc::clone(&flood_stop);
        let (flood_load, _) = self
            .load_until(&ingest, 4_000, async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                stop.store(true, Ordering::Relaxed);
            })
            .await?;
        let (batches, accepted, rejected) = flood
            .await
            .map_err(|e| failed(format!("flood task failed: {e}")))??;
        api.stop().await?;
        Ok(FloodResult {
            batches,
            accepted,
            rejected,
            load_latency: Latency::of(&flood_load.latencies_ms),
        })
    }

    async fn query(&mut self, spec: &QuerySpec, parquet: &Path) -> Result<QueryResult> {
        let (strata_t, strata_a, tiers) = self.strata_side(spec).await?;
        let (pg_t, pg_a) = queries::measure(self.cfg.warm_runs, |_| {
            queries::postgres(&self.pool, self.project, spec, self.today)
        })
        .await?;
        let (duck_t, duck_a) = self.duck_side(spec, parquet).await?;
        let equal = strata_a == pg_a && pg_a == duck_a;
        if !equal {
            tracing::error!(
                query = spec.name,
                "answers differ:\n strata {strata_a:?}\n postgres {pg_a:?}\n duckdb {duck_a:?}"
            );
        }
        let slower = tiers.hot.max(tiers.cold);
        Ok(QueryResult {
            spec: spec.clone(),
            strata: strata_t,
            strata_server_ms: tiers.total,
            strata_hot_ms: tiers.hot,
            strata_cold_ms: tiers.cold,
            postgres: pg_t,
            duckdb: duck_t,
            vs_slower_tier: strata_t.median_ms / (1.2 * slower + 50.0),
            speedup_vs_postgres: pg_t.median_ms / strata_t.median_ms,
            speedup_vs_duckdb: duck_t.median_ms / strata_t.median_ms,
            answers_equal: equal,
        })
    }

    /// `spec` asked of a fresh strata-api (the first run fetches every cold
    /// file it reads from the S3 server into an empty cache): timings, the
    /// answer, and the medians of the warm runs' `meta` times.
    async fn strata_side(&mut self, spec: &QuerySpec) -> Result<(Timing, Answer, TierMs)> {
        let (api, ingest) = self.start_api().await?;
        let tiers: Arc<std::sync::Mutex<Vec<TierMs>>> = Arc::default();
        let (timing, answer) = queries::measure(self.cfg.warm_runs, |_| {
            let (client, base, key) = (
                ingest.client.clone(),
                ingest.base.clone(),
                ingest.key.clone(),
            );
            let tiers = Arc::clone(&tiers);
            let spec = spec.clone();
            async move {
                let (answer, t) = queries::strata(&client, &base, &key, &spec).await?;
                tiers.lock().map_err(|_| failed("poisoned"))?.push(t);
                Ok(answer)
            }
        })
        .await?;
        api.stop().await?;
        let tiers = tiers.lock().map_err(|_| failed("poisoned"))?.clone();
        let warm = &tiers[1.min(tiers.len())..];
        let med = |f: fn(&TierMs) -> f64| median(warm.iter().map(f).collect());
        let meta = TierMs {
            total: med(|t| t.total),
            hot: med(|t| t.hot),
            cold: med(|t| t.cold),
        };
        Ok((timing, answer, meta))
    }

    /// `spec` asked of DuckDB alone over the Parquet of every event in
    /// `parquet`, a new database for the first run.
    async fn duck_side(&self, spec: &QuerySpec, parquet: &Path) -> Result<(Timing, Answer)> {
        let conn = std::cell::RefCell::new(queries::duck_connection(2, "1GB")?);
        queries::measure(self.cfg.warm_runs, |first| {
            let answer = tokio::task::block_in_place(|| {
                if first {
                    // A new database: nothing of the files is cached in DuckDB.
                    *conn.borrow_mut() = queries::duck_connection(2, "1GB")?;
                }
                queries::duckdb(&conn.borrow(), parquet, self.project, spec, self.today)
            });
            std::future::ready(answer)
        })
        .await
    }

    /// A fresh strata-api answers top events over the longest range it
    /// accepts (3,660 days: every cold file of the bench); its resident
    /// memory before and at peak.
    async fn long_range_memory(&mut self) -> Result<MemoryResult> {
        let (api, ingest) = self.start_api().await?;
        let before = api.rss();
        let from = self.today - chrono::Duration::days(3659);
        let sent = Instant::now();
        let res = ingest
            .client
            .get(format!(
                "{}/v1/stats/top-events?from={from}&to={}&limit=10",
                ingest.base, self.today
            ))
            .bearer_auth(&ingest.key)
            .send()
            .await?;
        let status = res.status();
        let _ = res.bytes().await?;
        let request_ms = sent.elapsed().as_secs_f64() * 1e3;
        if !status.is_success() {
            return Err(failed(format!(
                "top events over 3660 days answered {status}"
            )));
        }
        let peak = api.peak_rss();
        api.stop().await?;
        Ok(MemoryResult {
            request: "top events over 3,660 days (every cold file)".into(),
            api_rss_before_mib: to_mib(before),
            api_peak_rss_mib: to_mib(peak),
            request_ms,
        })
    }

    /// Fills one day with `big_chunk_rows` rows (SQL, untimed) and archives
    /// it with strata-archiver, watching its memory.
    async fn big_chunk(&mut self, day: NaiveDate) -> Result<BigChunk> {
        let rows = self.cfg.big_chunk_rows;
        // One real ingest creates the day's partition the way production does.
        let (api, ingest) = self.start_api().await?;
        let first = data::generator(1, day, 10, 1, 9).day(0, day);
        let bodies = self.bodies(&first)?;
        ingest.send(bodies, 1).await?;
        api.stop().await?;
        tracing::info!("filling one day with {rows} rows");
        sqlx::query(
            "INSERT INTO events (project_id, event_id, user_id, event_type, ts, properties, received_at)
             SELECT $1, gen_random_uuid(), 'user_' || (g * 7919 % 200000),
                    (ARRAY['page_view', 'click', 'search', 'scroll', 'add_to_cart'])[1 + g % 5],
                    $2::timestamptz + make_interval(secs => (g % 86000)::float8 + (g % 1000) / 1000.0),
                    jsonb_build_object('path', '/p/' || (g % 500), 'session', 's' || (g / 5),
                        'ua', 'Mozilla/5.0 (X11; Linux x86_64)', 'plan', 'pro', 'ms', g % 5000,
                        'ref', 'https://news.example.com/article/' || (g % 10007),
                        'locale', 'en-US', 'screen', '1920x1080'),
                    now()
               FROM generate_series(1, $3) AS g",
        )
        .bind(self.project)
        .bind(day.and_time(chrono::NaiveTime::MIN).and_utc())
        .bind(rows as i64)
        .execute(&self.pool)
        .await?;
        // As a day-old chunk would be in production: autovacuum has been
        // through it, so its work does not land in the archive's CPU.
        self.sql("VACUUM (ANALYZE) events").await?;
        tracing::info!("archiving the big chunk");
        let archiver = Proc::spawn(
            &self.archiver_bin,
            &["run", "--once"],
            &self.env,
            &self.path("archiver-big.log"),
        )?;
        let cpu0 = (
            procs::reaped_children_cpu_secs(),
            procs::cpu_secs_named("postgres"),
        );
        let (status, peak) = archiver.wait().await?;
        let archiver_cpu = procs::reaped_children_cpu_secs() - cpu0.0;
        let postgres_cpu = procs::cpu_secs_named("postgres") - cpu0.1;
        if !status.success() {
            return Err(failed(format!(
                "strata-archiver on the big chunk failed ({status}); see {}",
                self.path("archiver-big.log").display()
            )));
        }
        let (moved, _, run_secs) = self.last_archive_run().await?;
        Ok(BigChunk {
            rows: moved,
            run_secs,
            rows_per_s: moved as f64 / run_secs,
            archiver_peak_rss_mib: to_mib(peak),
            archiver_cpu_secs: archiver_cpu,
            postgres_cpu_secs: postgres_cpu,
        })
    }

    /// Compaction of the days that late events split, then the erasure of
    /// the user with the most hot events, each as its own command.
    async fn lifecycle(&mut self) -> Result<LifecycleResult> {
        let (cold_days, days, files, rows): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE n > 1),
                    coalesce(sum(n) FILTER (WHERE n > 1), 0)::int8,
                    coalesce(sum(r) FILTER (WHERE n > 1), 0)::int8
               FROM (SELECT day, count(*) AS n, sum(rows) AS r FROM cold_files
                      WHERE project_id = $1 GROUP BY day) d",
        )
        .bind(self.project)
        .fetch_one(&self.pool)
        .await?;
        tracing::info!(days, files, "compacting");
        let started = Instant::now();
        procs::run_output(
            &self.archiver_bin,
            &[
                "compact",
                "--compact-max-files",
                "4",
                "--compact-min-bytes",
                "8388608",
            ],
            &self.env,
        )
        .await?;
        let compact_secs = secs(started);
        let compacted: i32 =
            sqlx::query_scalar("SELECT compacted_days FROM archive_runs ORDER BY id DESC LIMIT 1")
                .fetch_one(&self.pool)
                .await?;
        if i64::from(compacted) != days {
            return Err(failed(format!(
                "compaction merged {compacted} day(s), {days} had several files"
            )));
        }
        let user: String = sqlx::query_scalar(
            "SELECT user_id FROM events WHERE project_id = $1 GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
        )
        .bind(self.project)
        .fetch_one(&self.pool)
        .await?;
        tracing::info!("erasing one user");
        let started = Instant::now();
        let out = procs::run_output(
            &self.api_bin,
            &["users", "erase", "--project", "bench", "--user", &user],
            // No grace period: the replaced objects are deleted in the
            // erasure's own run, as they were before ADR-037, so the time
            // measured still includes the deletes.
            &[
                self.env.as_slice(),
                &[("STRATA_COLD_DELETE_GRACE".to_owned(), "0s".to_owned())],
            ]
            .concat(),
        )
        .await?;
        let erase_secs = secs(started);
        let record: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| failed(format!("`strata-api users erase` printed {out:?}: {e}")))?;
        let n = |k: &str| record[k].as_u64().unwrap_or(0);
        if record["status"] != "done" {
            return Err(failed(format!("the erasure did not finish: {record}")));
        }
        Ok(LifecycleResult {
            cold_days: cold_days as u64,
            compacted_days: days as u64,
            compacted_files: files as u64,
            compacted_rows: rows as u64,
            compact_secs,
            compact_rows_per_s: rows as f64 / compact_secs,
            erased_cold_rows: n("cold_rows"),
            erased_hot_rows: n("hot_rows"),
            erase_days_scanned: n("days_total"),
            erase_files_rewritten: n("files_rewritten"),
            erase_rows_rewritten: n("rows_rewritten"),
            erase_secs,
            erase_rows_per_s: n("rows_rewritten") as f64 / erase_secs,
        })
    }

    /// Queue mode (ADR-034) beside direct mode: the same 30 generated days
    /// into two fresh projects, one through a direct server, one through a
    /// queue-mode server with no worker (the accept rate), then drained by
    /// one `strata-api ingest-worker` (the drain rate); then small batches
    /// one at a time, each timed from its 202 to its status `applied`.
    async fn queue_mode(&mut self, copy_events_per_s: f64) -> Result<QueueResult> {
        let cfg = self.cfg;
        let mut g = data::generator(30, self.today, cfg.users, cfg.events_per_day, 77);
        let days: Vec<NaiveDate> = g.days().collect();
        let mut load = Load::default();
        for (i, d) in days.iter().enumerate() {
            load.push(&g.day(i as u32, *d), cfg.batch)?;
        }
        let (events, bodies) = (load.events, Arc::new(load.bodies));

        let direct_key = create_key(&self.api_bin, &self.env, "bench_direct", "ingest").await?;
        let (api, ingest) = self.start_api_with(&self.env.clone(), &direct_key).await?;
        tracing::info!("queue mode: {events} events in direct mode");
        let direct = ingest.send(Arc::clone(&bodies), cfg.clients).await?;
        api.stop().await?;

        let nats_dir = self.path("nats");
        let _ = std::fs::remove_dir_all(&nats_dir);
        std::fs::create_dir_all(&nats_dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let nats_bin =
            std::env::var("STRATA_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        let nats = Proc::spawn(
            Path::new(&nats_bin),
            &[
                "-a",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-js",
                "-sd",
                &nats_dir.display().to_string(),
            ],
            &[],
            &self.path("nats.log"),
        )?;
        let mut env = self.env.clone();
        env.extend([
            (
                "STRATA_INGEST_QUEUE".to_owned(),
                format!("nats://127.0.0.1:{port}"),
            ),
            ("STRATA_QUEUE_STREAM".to_owned(), "BENCH".to_owned()),
            (
                "STRATA_QUEUE_MAX_BYTES".to_owned(),
                (16u64 << 30).to_string(),
            ),
        ]);
        let queued_key = create_key(&self.api_bin, &env, "bench_queued", "ingest").await?;
        let (api, ingest) = self.start_api_with(&env, &queued_key).await?;
        tracing::info!("queue mode: the same events through the queue");
        let accepted = ingest.send(Arc::clone(&bodies), cfg.clients).await?;
        let log = self.path("worker.log");
        let _ = std::fs::remove_file(&log);
        let worker = Proc::spawn(&self.api_bin, &["ingest-worker"], &env, &log)?;
        // Timed from the worker's first line (it has connected and begins
        // to pull): its start-up is not drain time.
        let up = Instant::now();
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("draining")
        {
            if up.elapsed() > Duration::from_secs(60) {
                return Err(failed("the ingest worker did not start; see worker.log"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let started = Instant::now();
        let project: i64 =
            sqlx::query_scalar("SELECT id FROM projects WHERE name = 'bench_queued'")
                .fetch_one(&self.pool)
                .await?;
        loop {
            let n: i64 = sqlx::query_scalar(
                "SELECT coalesce(sum(accepted), 0)::int8 FROM ingest_batches WHERE project_id = $1",
            )
            .bind(project)
            .fetch_one(&self.pool)
            .await?;
            if n as u64 >= events {
                break;
            }
            if started.elapsed() > Duration::from_secs(1800) {
                return Err(failed(format!(
                    "the worker applied {n} of {events} events in 30 minutes"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let drain_secs = secs(started);

        tracing::info!("queue mode: latency from 202 to applied");
        let mut g = data::generator(1, self.today, cfg.users, 10, 78);
        let mut lat = Vec::new();
        for _ in 0..200 {
            let body = data::ingest_body(&g.day(0, self.today))?;
            let batch = ingest.post_queued(body.into()).await?;
            let sent = Instant::now();
            loop {
                let applied: Option<i64> = sqlx::query_scalar(
                    "SELECT count(*) FROM ingest_batches WHERE batch_id = $1 HAVING count(*) = max(parts)",
                )
                .bind(batch)
                .fetch_optional(&self.pool)
                .await?;
                if applied.is_some() {
                    break;
                }
                if sent.elapsed() > Duration::from_secs(60) {
                    return Err(failed(format!("batch {batch} not applied within a minute")));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            lat.push(sent.elapsed().as_secs_f64() * 1e3);
        }
        worker.stop().await?;
        api.stop().await?;
        nats.stop().await?;
        Ok(QueueResult {
            events,
            direct_events_per_s: direct.per_sec(),
            accept_events_per_s: accepted.per_sec(),
            drain_events_per_s: events as f64 / drain_secs,
            copy_events_per_s,
            latency: Latency::of(&lat),
            worker_max_wait_ms: 200,
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

/// Posts batches of 1,000 events on 1,000 distinct past days (a new window
/// of days each time, so that every accepted day is new) until `stop`:
/// batches sent, events accepted and rejected.
/// [`Bench::hot_footprint`].
struct HotFootprint {
    hot: strata_store::Store,
    size: strata_store::HotSize,
    events: i64,
    baseline_bytes: i64,
}

/// What the cold tier holds after archiving and late events.
struct ColdHolding {
    files: i64,
    rows: i64,
    hot_rows_after: i64,
}

/// [`Bench::archive_under_load`].
struct ArchiveUnderLoad {
    rows: u64,
    chunks: u64,
    secs: f64,
    archiver_peak: u64,
    alone: LoadStats,
    during: LoadStats,
    stats_alone: Vec<f64>,
    stats_during: Vec<f64>,
}

impl ArchiveUnderLoad {
    fn result(&self, big_chunk: BigChunk) -> ArchiveResult {
        ArchiveResult {
            rows: self.rows,
            chunks: self.chunks,
            run_secs: self.secs,
            rows_per_s: self.rows as f64 / self.secs,
            archiver_peak_rss_mib: to_mib(self.archiver_peak),
            ingest_alone_events_per_s: self.alone.per_sec(),
            ingest_during_events_per_s: self.during.per_sec(),
            ingest_drop: 1.0 - self.during.per_sec() / self.alone.per_sec(),
            ingest_latency_alone: Latency::of(&self.alone.latencies_ms),
            ingest_latency_during: Latency::of(&self.during.latencies_ms),
            stats_latency_alone: Latency::of(&self.stats_alone),
            stats_latency_during: Latency::of(&self.stats_during),
            big_chunk,
        }
    }
}

async fn late_day_flood(
    ingest: &Ingestor,
    today: NaiveDate,
    stop: Arc<AtomicBool>,
) -> Result<(u64, u64, u64)> {
    let (mut batches, mut accepted, mut rejected) = (0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let events: Vec<serde_json::Value> = (0..1_000i64)
            .map(|i| {
                let back = 2 + (batches as i64 * 31 + i) % 3_000;
                let ts = (today - chrono::Duration::days(back))
                    .and_hms_opt(12, 0, 0)
                    .map(|t| t.and_utc().to_rfc3339())
                    .unwrap_or_default();
                serde_json::json!({
                    "event_id": uuid::Uuid::new_v4(),
                    "user_id": "flood",
                    "event_type": "flood",
                    "timestamp": ts,
                })
            })
            .collect();
        let res = ingest
            .client
            .post(format!("{}/v1/events", ingest.base))
            .bearer_auth(&ingest.key)
            .json(&serde_json::json!({ "events": events }))
            .send()
            .await?;
        let status = res.status();
        let body: serde_json::Value = res.json().await?;
        if !status.is_success() {
            return Err(failed(format!("the flood was answered {status}: {body}")));
        }
        batches += 1;
        accepted += body["accepted"].as_u64().unwrap_or(0);
        rejected += body["rejected"].as_array().map_or(0, |r| r.len() as u64);
    }
    Ok((batches, accepted, rejected))
}

/// Waits until the server knows at least `days` sealed days of dedup
/// records and has a filter for each (its `/metrics` gauges), at most two
/// minutes. A server without those gauges is not waited for.
async fn wait_for_dedup_filters(ingest: &Ingestor, days: f64) -> Result<()> {
    let gauge = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = ingest
            .client
            .get(format!("{}/metrics", ingest.base))
            .send()
            .await?
            .text()
            .await?;
        match (
            gauge(&text, "strata_dedup_filtered_days"),
            gauge(&text, "strata_dedup_sealed_days"),
        ) {
            (Some(built), Some(sealed)) if built < sealed.max(days) => {
                if Instant::now() > deadline {
                    return Err(failed(format!(
                        "dedup filters: {built} of {sealed} days built after 2 minutes"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            _ => return Ok(()),
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
