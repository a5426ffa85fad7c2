//! Test harness: every test gets its own PostgreSQL database (so the suite
//! runs in parallel and can be rerun) and, through [`TestApp::builder`], its
//! own server on a random port — built by the binary's own wiring.
//!
//! The server under test is whatever `STRATA_TEST_DATABASE_URL` names
//! (default: the local PostgreSQL on 127.0.0.1:5432); `make test` sets it.

#![allow(clippy::unwrap_used)]

pub mod answers;
pub mod archive;
pub mod browser;
pub mod cold;
pub mod docs;
pub mod lake;
pub mod nats;
pub mod oracle;
pub mod proxy;

use std::net::SocketAddr;

use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use strata_http::app::App;
use strata_model::{ProjectName, Scopes};
use strata_runtime::config::ServeArgs;
use strata_store::{PoolConfig, Store};

use crate::cold::TestCold;
use tokio::sync::oneshot;
use uuid::Uuid;

/// A database on the server under test with full rights, used to create the
/// per-test databases.
pub fn admin_database_url() -> String {
    std::env::var("STRATA_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Prefix of every database the harness creates; `make test` drops leftovers.
pub const TEST_DB_PREFIX: &str = "strata_t_";

/// A fresh, migrated database, dropped when this value is dropped (also when
/// the test panics).
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
}

fn with_database(url: &str, db: &str) -> String {
    let mut u = reqwest::Url::parse(url).expect("STRATA_TEST_DATABASE_URL is not a URL");
    u.set_path(db);
    u.to_string()
}

impl TestDb {
    /// Creates an empty database (not migrated).
    pub async fn create_empty() -> Self {
        let admin = admin_database_url();
        let name = format!("{TEST_DB_PREFIX}{}", Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin}: {e}"));
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        conn.close().await.ok();
        let url = with_database(&admin, &name);
        Self { name, url }
    }

    /// Creates a database and applies every migration.
    pub async fn create() -> Self {
        let db = Self::create_empty().await;
        let pool = db.pool().await;
        strata_store::migrate(&pool, strata_store::LayoutChoice::Auto)
            .await
            .unwrap();
        pool.close().await;
        db
    }

    pub async fn pool(&self) -> PgPool {
        strata_store::lazy_pool(&self.url, &PoolConfig::default()).unwrap()
    }

    pub async fn hot(&self) -> Store {
        Store::open(self.pool().await).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = admin_database_url();
        let name = self.name.clone();
        block_on_own_runtime(async move {
            if let Ok(mut conn) = PgConnection::connect(&admin).await {
                let _ = conn
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await;
            }
        });
    }
}

/// Runs cleanup from `Drop`, which may itself run inside a runtime: on a
/// thread with a runtime of its own, waiting for it to finish. Clients the
/// future uses must be created inside it (connections belong to a runtime).
pub(crate) fn block_on_own_runtime(fut: impl Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fut);
    })
    .join();
}

/// A running API server on a random port, with its own database: built by
/// [`App::build`] from flags parsed as `strata-api serve` parses them, so
/// the wiring under test is the binary's.
#[derive(Debug)]
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub hot: Store,
    /// The test's own connections to the server's database, for checks
    /// that look past the API.
    pub pool: PgPool,
    /// The cold tier the server reads (a temporary `file://` directory
    /// unless the test chose one).
    pub cold: TestCold,
    /// The planner's cache of remote cold files.
    pub cache_dir: tempfile::TempDir,
    /// The flags the server was built from (replicas reuse them).
    args: Vec<String>,
    /// With [`TestAppBuilder::pg_proxy`]: the server's way to PostgreSQL.
    pub pg_proxy: Option<proxy::TcpProxy>,
    shutdown: Option<oneshot::Sender<()>>,
    /// Queue mode: the NATS URL and stream, deleted with the app.
    queue: Option<(String, String)>,
    // Declared last: dropped after the server is told to stop.
    pub db: TestDb,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some((url, stream)) = self.queue.take() {
            block_on_own_runtime(nats::delete_streams(url, stream));
        }
    }
}

/// A server with every default (what most tests need).
pub async fn spawn_app() -> TestApp {
    TestApp::builder().spawn().await
}

/// `strata-api serve`'s flags, parsed by the binary's own [`ServeArgs`].
#[derive(Debug, clap::Parser)]
struct Serve {
    #[command(flatten)]
    args: ServeArgs,
}

fn parse_serve(args: &[String]) -> ServeArgs {
    use clap::Parser;
    Serve::try_parse_from(std::iter::once("strata-api").chain(args.iter().map(String::as_str)))
        .unwrap_or_else(|e| panic!("bad test server flags {args:?}: {e}"))
        .args
}

/// Builds a [`TestApp`]. Settings are given as the flags an operator would
/// set (`.arg("--max-batch-events", 5)`); the builder adds the database,
/// the cold tier and small DuckDB settings.
#[derive(Debug)]
pub struct TestAppBuilder {
    args: Vec<String>,
    cold: Option<TestCold>,
    pg_proxy: bool,
    queue: Option<(String, String)>,
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            args: Vec::new(),
            cold: None,
            pg_proxy: false,
            queue: None,
        }
    }
}

impl TestAppBuilder {
    /// One `strata-api serve` flag and its value; later flags win.
    pub fn arg(mut self, flag: &str, value: impl std::fmt::Display) -> Self {
        self.args.push(format!("{flag}={value}"));
        self
    }

    /// The cold tier (default: a temporary `file://` directory).
    pub fn cold(mut self, cold: TestCold) -> Self {
        self.cold = Some(cold);
        self
    }

    /// Reach PostgreSQL through a [`proxy::TcpProxy`] the test can cut.
    pub fn pg_proxy(mut self) -> Self {
        self.pg_proxy = true;
        self
    }

    /// Queue mode (ADR-034): ingest publishes to `stream` on the NATS at
    /// `url` (see [`nats`]); [`TestApp::worker`] drains it.
    pub fn queue(mut self, url: &str, stream: &str) -> Self {
        self.queue = Some((url.to_owned(), stream.to_owned()));
        self.arg("--ingest-queue", url)
            .arg("--queue-stream", stream)
            .arg("--queue-publish-timeout", "2s")
    }

    /// Per-key rate limits over the test Redis: `burst` requests, a slow
    /// refill (a test's requests never earn a token back).
    pub fn rate_limited(self, redis_url: &str, burst: u32, on_redis_error: &str) -> Self {
        self.arg("--redis-url", redis_url)
            .arg("--rate-limit-rate", 0.01)
            .arg("--rate-limit-burst", burst)
            .arg("--rate-limit-on-redis-error", on_redis_error)
            .arg("--redis-timeout", "300ms")
    }

    pub async fn spawn(self) -> TestApp {
        let db = TestDb::create().await;
        let cold = self.cold.unwrap_or_else(TestCold::file);
        let cache_dir = tempfile::tempdir().unwrap();
        let proxy = if self.pg_proxy {
            Some(proxy::TcpProxy::to_database(&db.url).await)
        } else {
            None
        };
        let database_url = match &proxy {
            Some(p) => p.database_url(&db.url),
            None => db.url.clone(),
        };
        let mut args = vec![
            format!("--database-url={database_url}"),
            format!("--cold-cache-dir={}", cache_dir.path().display()),
            "--duckdb-memory-limit=512MB".to_owned(),
            "--duckdb-threads=1".to_owned(),
            // Tests see their own changes in /metrics at once.
            "--metrics-pg-ttl=0s".to_owned(),
            // Tests seal closed hot days themselves (`TestApp::seal`), so
            // which path answers a request does not race a timer.
            "--seal-interval=0s".to_owned(),
            // Erasures started over HTTP delete what they replaced in the
            // same run (tests of the grace period use their own archiver).
            "--cold-delete-grace=0s".to_owned(),
            "--lake-history=0s".to_owned(),
        ];
        if self.pg_proxy {
            args.push("--database-max-connections=4".to_owned());
            args.push("--database-acquire-timeout=2s".to_owned());
        }
        args.extend(cold.flags());
        args.extend(self.args);
        let args = last_flag_wins(args);
        let (addr, hot, shutdown) = start_server(&args).await;
        TestApp {
            addr,
            client: reqwest::Client::new(),
            hot,
            pool: db.pool().await,
            cold,
            cache_dir,
            args,
            pg_proxy: proxy,
            shutdown: Some(shutdown),
            queue: self.queue,
            db,
        }
    }
}

impl TestApp {
    /// A planner of the test's own over this app's database and cold tier,
    /// with `base`'s settings but a small DuckDB and a private cache
    /// directory (removed when the returned directory is dropped).
    pub fn planner(
        &self,
        base: strata_query::QueryConfig,
    ) -> (strata_query::Planner, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let config = strata_query::QueryConfig {
            duckdb: strata_query::DuckConfig {
                memory_limit: "512MB".into(),
                threads: 1,
                temp_dir: Some(dir.path().join("duckdb-tmp")),
            },
            cache_dir: dir.path().to_path_buf(),
            ..base
        };
        let planner =
            strata_query::Planner::new(self.hot.clone(), self.cold.store.clone(), config).unwrap();
        (planner, dir)
    }
}

/// `--flag=value` arguments with only the last of each flag kept (clap
/// refuses a flag given twice).
fn last_flag_wins(args: Vec<String>) -> Vec<String> {
    let name = |a: &str| a.split('=').next().unwrap_or_default().to_owned();
    let mut out: Vec<String> = Vec::new();
    for a in args {
        out.retain(|b| name(b) != name(&a));
        out.push(a);
    }
    out
}

/// Redis of the test machine (`make test` sets `STRATA_TEST_REDIS_URL`).
pub fn test_redis_url() -> String {
    std::env::var("STRATA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Builds the app from `args` and serves it on a random port until the
/// sender is dropped or used.
async fn start_server(args: &[String]) -> (SocketAddr, Store, oneshot::Sender<()>) {
    let mut app = App::build(&parse_serve(args)).await.unwrap();
    // Tests start from a warmed server, so that what they do next (fill
    // dedup records directly, say) is not raced by the warm-up.
    (&mut app.warm_up).await.unwrap();
    let hot = app.state.hot.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        app.serve(listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (addr, hot, tx)
}

/// A second server over the same database and Redis (another replica).
#[derive(Debug)]
pub struct Replica {
    pub addr: SocketAddr,
    _shutdown: oneshot::Sender<()>,
}

impl Replica {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Another replica on the same database: built the same way from the
    /// same flags plus `extra` (later flags win), with its own rate limiter
    /// talking to the same Redis.
    pub async fn spawn_replica(&self, extra: &[(&str, String)]) -> Replica {
        let mut args = self.args.clone();
        args.extend(extra.iter().map(|(f, v)| format!("{f}={v}")));
        let (addr, _, tx) = start_server(&last_flag_wins(args)).await;
        Replica {
            addr,
            _shutdown: tx,
        }
    }

    /// Drops a hot chunk behind the server's back, as the archiver's commit
    /// does (TimescaleDB: `drop_chunks`; native: the day's partition).
    pub async fn drop_chunk_behind_the_servers_back(&self, chunk: &strata_store::Chunk) {
        let sql = match self.hot.layout() {
            strata_store::Layout::Timescale => format!(
                "SELECT drop_chunks('events', older_than => '{}'::timestamptz, newer_than => '{}'::timestamptz)",
                chunk.end.to_rfc3339(),
                chunk.start.to_rfc3339()
            ),
            strata_store::Layout::Native => format!("DROP TABLE {}", chunk.name),
        };
        sqlx::query(&sql).execute(&self.pool).await.unwrap();
    }

    /// Creates an operator key (no project) and returns the secret.
    pub async fn operator_key(&self) -> String {
        let (key, _) = self.hot.create_operator_key(None).await.unwrap();
        key.expose().to_owned()
    }

    /// Creates a key (and its project) and returns the secret.
    pub async fn key(&self, project: &str, scopes: &str) -> String {
        let (key, _) = self
            .hot
            .create_key(
                &ProjectName::parse(project).unwrap(),
                &Scopes::parse_list(scopes).unwrap(),
                None,
            )
            .await
            .unwrap();
        key.expose().to_owned()
    }

    pub async fn project_id(&self, project: &str) -> i64 {
        sqlx::query_scalar("SELECT id FROM projects WHERE name = $1")
            .bind(project)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Removes every rollup (ADR-027, ADR-028), so that stats read every
    /// day from its files and rows, as they do for a day whose rollup is
    /// missing or stale.
    /// Deletes every rollup, cold and hot, with what says it exists (its
    /// source or seal row): a server that had decoded one then no longer
    /// uses it (ADR-030).
    pub async fn drop_rollups(&self) {
        sqlx::raw_sql(
            "DELETE FROM day_rollups; DELETE FROM day_rollup_sources;
             DELETE FROM hot_rollups; DELETE FROM hot_rollup_seals",
        )
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// Seals every closed hot day (ADR-028) now; returns the report.
    pub async fn seal(&self) -> strata_store::SealReport {
        self.hot
            .seal_closed_days(
                chrono::NaiveDate::MIN,
                chrono::Utc::now(),
                std::time::Duration::from_secs(10),
            )
            .await
            .unwrap()
    }

    /// An archiver over this app's database and cold tier. It never
    /// compacts (ADR-033), so a day's files stay as each run wrote them:
    /// the tests of compaction ask for it.
    pub fn archiver(&self, hot_retention_days: u64) -> strata_archive::Archiver {
        strata_archive::Archiver::new(
            self.hot.clone(),
            self.cold.store.clone(),
            strata_archive::ArchiveConfig {
                hot_retention: std::time::Duration::from_secs(hot_retention_days * 86_400),
                ..no_compaction()
            },
        )
    }

    /// Runs one archive pass and asserts it moved every eligible chunk.
    pub async fn archive(&self, hot_retention_days: u64) {
        match self.archiver(hot_retention_days).run_once().await.unwrap() {
            strata_archive::RunOutcome::Completed(r) => assert!(r.succeeded(), "{r:?}"),
            strata_archive::RunOutcome::Skipped => panic!("archive run skipped"),
        }
    }

    /// `GET path` with `key`; returns (status, JSON body).
    pub async fn get_json(&self, key: &str, path: &str) -> (u16, Value) {
        Self::json_of(self.client.get(self.url(path)).bearer_auth(key)).await
    }

    /// `GET path` without a key (health, metrics, the API document).
    pub async fn get_public_json(&self, path: &str) -> (u16, Value) {
        Self::json_of(self.client.get(self.url(path))).await
    }

    async fn json_of(req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn post_events(&self, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/events"))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Posts `body` to /v1/events as it is, as JSON (for bodies a JSON
    /// value cannot express: malformed, or with raw number literals).
    pub async fn post_raw_events(
        &self,
        key: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/v1/events"))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Posts and asserts a 200; returns the body, checked to add up.
    pub async fn ingest_ok(&self, key: &str, events: &[Value]) -> IngestCounts {
        let resp = self.post_events(key, &json!({ "events": events })).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        let counts = IngestCounts::from_body(&body);
        assert_eq!(
            counts.accepted + counts.duplicates + counts.rejected,
            events.len() as u64,
            "counts do not add up: {body}"
        );
        counts
    }

    /// An ingest worker in this process, over this app's database and the
    /// queue its flags name, with `extra` worker flags (`--worker-…`);
    /// stopped when the handle is dropped.
    pub async fn worker(&self, extra: &[(&str, &str)]) -> WorkerHandle {
        self.worker_on(&self.db.url, extra).await
    }

    /// [`Self::worker`] reaching PostgreSQL at `database_url` (a proxy the
    /// test can cut).
    pub async fn worker_on(&self, database_url: &str, extra: &[(&str, &str)]) -> WorkerHandle {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            queue: strata_runtime::config::QueueArgs,
            #[command(flatten)]
            worker: strata_runtime::config::WorkerArgs,
        }
        use clap::Parser;
        let queue_flags = self
            .args
            .iter()
            .filter(|a| a.starts_with("--ingest-queue") || a.starts_with("--queue-"))
            .cloned();
        let extra = extra.iter().map(|(f, v)| format!("{f}={v}"));
        let args: Vec<String> = last_flag_wins(queue_flags.chain(extra).collect());
        let flags =
            Flags::try_parse_from(std::iter::once("worker".to_owned()).chain(args)).unwrap();
        let cfg = flags.queue.config().expect("the app is not in queue mode");
        let hot = Store::open(
            strata_store::lazy_pool(
                database_url,
                &PoolConfig {
                    max_connections: 4,
                    acquire_timeout: std::time::Duration::from_secs(2),
                },
            )
            .unwrap(),
        )
        .await
        .unwrap();
        let queue = strata_queue::Queue::connect(cfg).await.unwrap();
        let worker = strata_queue::Worker::new(hot, queue, flags.worker.config());
        let (tx, rx) = oneshot::channel::<()>();
        let w = worker.clone();
        let task = tokio::spawn(async move {
            w.run(async {
                let _ = rx.await;
            })
            .await
        });
        WorkerHandle {
            worker,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Posts `events` to a queue-mode server, asserts the 202, and returns
    /// the batch id and the body.
    pub async fn ingest_queued(&self, key: &str, events: &[Value]) -> (String, Value) {
        let resp = self.post_events(key, &json!({ "events": events })).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 202, "{body}");
        (body["batch_id"].as_str().unwrap().to_owned(), body)
    }

    /// Polls `GET /v1/ingest/batches/{id}` until `applied` (at most
    /// `within`); returns the status body.
    pub async fn wait_applied(
        &self,
        key: &str,
        batch_id: &str,
        within: std::time::Duration,
    ) -> Value {
        let until = std::time::Instant::now() + within;
        loop {
            let (code, body) = self
                .get_json(key, &format!("/v1/ingest/batches/{batch_id}"))
                .await;
            if code == 200 && body["status"] == "applied" {
                return body;
            }
            assert!(
                std::time::Instant::now() < until,
                "batch {batch_id} not applied within {within:?}: {code} {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// `GET /metrics` (asserted 200) as text.
    pub async fn metrics_text(&self) -> String {
        let resp = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    /// Every stored event of a project as (event_id, user_id, event_type,
    /// ts in µs, properties).
    pub async fn stored(&self, project: &str) -> Vec<StoredEvent> {
        let id = self.project_id(project).await;
        sqlx::query_as(
            "SELECT event_id, user_id, event_type, ts, properties FROM events
              WHERE project_id = $1 ORDER BY event_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }
}

/// An in-process ingest worker ([`TestApp::worker`]).
#[derive(Debug)]
pub struct WorkerHandle {
    pub worker: strata_queue::Worker,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<strata_queue::WorkerReport>>,
}

impl WorkerHandle {
    /// Stops it after its current transaction; returns its totals.
    pub async fn stop(mut self) -> strata_queue::WorkerReport {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.take().unwrap().await.unwrap()
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredEvent {
    pub event_id: Uuid,
    pub user_id: String,
    pub event_type: String,
    pub ts: chrono::DateTime<chrono::Utc>,
    pub properties: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestCounts {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

impl IngestCounts {
    pub fn from_body(body: &Value) -> Self {
        Self {
            accepted: body["accepted"].as_u64().unwrap(),
            duplicates: body["duplicates"].as_u64().unwrap(),
            rejected: body["rejected"].as_array().unwrap().len() as u64,
        }
    }
}

/// The seed of a property test: `STRATA_TEST_SEED` when set (to rerun a
/// failure), else a random one; printed either way.
#[allow(clippy::print_stderr)]
pub fn test_seed() -> u64 {
    let seed = std::env::var("STRATA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed}; rerun with STRATA_TEST_SEED={seed}");
    seed
}

/// A valid event JSON at `ts` (RFC 3339).
pub fn event(id: Uuid, user: &str, event_type: &str, ts: &str) -> Value {
    json!({
        "event_id": id.to_string(),
        "user_id": user,
        "event_type": event_type,
        "timestamp": ts,
        "properties": {"path": "/pricing", "n": 1},
    })
}

/// A valid event `hours_ago` hours before now.
pub fn recent_event(id: Uuid, user: &str, hours_ago: i64) -> Value {
    let ts = chrono::Utc::now() - chrono::Duration::hours(hours_ago);
    event(id, user, "page_view", &ts.to_rfc3339())
}

/// What the server under test offers of TimescaleDB, read the way an
/// operator would (superuser view of `shared_preload_libraries`), not with
/// the product's own probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerTimescale {
    /// Installed and preloaded: a new database gets the hypertable.
    Preloaded,
    /// Installed but not preloaded: `CREATE EXTENSION` would end the session.
    InstalledNotPreloaded,
    Absent,
}

impl ServerTimescale {
    /// The server under test's case. When `make test` says which case it set
    /// up (`STRATA_TEST_EXPECT_TIMESCALE`: preloaded, installed or absent),
    /// a server that turns out different fails the test instead of quietly
    /// exercising another path.
    pub async fn of(pool: &PgPool) -> Self {
        let (installed, preloaded): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),
                    current_setting('shared_preload_libraries') LIKE '%timescaledb%'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        let case = match (installed, preloaded) {
            (true, true) => Self::Preloaded,
            (true, false) => Self::InstalledNotPreloaded,
            (false, _) => Self::Absent,
        };
        if let Ok(expected) = std::env::var("STRATA_TEST_EXPECT_TIMESCALE") {
            let name = match case {
                Self::Preloaded => "preloaded",
                Self::InstalledNotPreloaded => "installed",
                Self::Absent => "absent",
            };
            assert_eq!(
                name, expected,
                "the server under test is not the TimescaleDB case `make test` set up"
            );
        }
        case
    }
}

/// The archiver's defaults, but no compaction: late events keep their own
/// files.
pub fn no_compaction() -> strata_archive::ArchiveConfig {
    strata_archive::ArchiveConfig {
        compact_max_files: usize::MAX,
        compact_min_bytes: 0,
        ..compacting()
    }
}

/// The archiver's defaults, compaction included, but objects replaced by a
/// swap are deleted by the run that replaced them (no grace period, no lake
/// history): tests of the grace period and of the history ask for them.
pub fn compacting() -> strata_archive::ArchiveConfig {
    strata_archive::ArchiveConfig {
        cold_delete_grace: std::time::Duration::ZERO,
        lake_history: std::time::Duration::ZERO,
        ..strata_archive::ArchiveConfig::default()
    }
}
