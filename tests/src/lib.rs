//! Test harness: every test gets its own PostgreSQL database (so the suite
//! runs in parallel and can be rerun) and, through [`spawn_app`], its own
//! server on a random port — the same router the binary serves.
//!
//! The server under test is whatever `STRATA_TEST_DATABASE_URL` names
//! (default: the local PostgreSQL on 127.0.0.1:5432); `make test` sets it.

#![allow(clippy::unwrap_used)]

pub mod archive;
pub mod cold;
pub mod oracle;
pub mod proxy;

use std::net::SocketAddr;

use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use strata_hot::{HotStore, PoolConfig};
use strata_http::ratelimit::{RateLimitConfig, RateLimiter};
use strata_http::{AppState, ServerConfig};
use strata_model::{IngestLimits, ProjectName, Scopes};
use strata_query::{DuckConfig, Planner, QueryConfig};

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
        strata_hot::migrate(&pool, strata_hot::LayoutChoice::Auto)
            .await
            .unwrap();
        pool.close().await;
        db
    }

    pub async fn pool(&self) -> PgPool {
        strata_hot::lazy_pool(&self.url, &PoolConfig::default()).unwrap()
    }

    pub async fn hot(&self) -> HotStore {
        HotStore::open(self.pool().await).await.unwrap()
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
pub(crate) fn block_on_own_runtime(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fut);
    })
    .join();
}

/// A running API server on a random port, with its own database.
#[derive(Debug)]
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub hot: HotStore,
    /// The cold tier the server reads (a temporary `file://` directory
    /// unless the test chose one).
    pub cold: TestCold,
    /// The planner's cache of remote cold files.
    pub cache_dir: tempfile::TempDir,
    state: AppState,
    /// With [`AppOptions::pg_proxy`]: the server's way to PostgreSQL.
    pub pg_proxy: Option<proxy::TcpProxy>,
    shutdown: Option<oneshot::Sender<()>>,
    // Declared last: dropped after the server is told to stop.
    pub db: TestDb,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(IngestLimits::default()).await
}

pub async fn spawn_app_with(limits: IngestLimits) -> TestApp {
    spawn_app_full(limits, TestCold::file(), QueryConfig::default()).await
}

/// A server reading `cold` (e.g. [`TestCold::s3`]).
pub async fn spawn_app_with_cold(cold: TestCold) -> TestApp {
    spawn_app_full(IngestLimits::default(), cold, QueryConfig::default()).await
}

/// Planner settings for tests: small DuckDB, a private cache directory.
pub fn test_query_config(cache_dir: &std::path::Path, base: QueryConfig) -> QueryConfig {
    QueryConfig {
        duckdb: DuckConfig {
            memory_limit: "512MB".into(),
            threads: 1,
            temp_dir: Some(cache_dir.join("duckdb-tmp")),
        },
        cache_dir: cache_dir.to_path_buf(),
        ..base
    }
}

pub async fn spawn_app_full(limits: IngestLimits, cold: TestCold, query: QueryConfig) -> TestApp {
    spawn_app_opts(AppOptions {
        limits,
        cold,
        query,
        ..AppOptions::default()
    })
    .await
}

/// Everything a test server can be given.
#[derive(Debug)]
pub struct AppOptions {
    pub limits: IngestLimits,
    pub cold: TestCold,
    pub query: QueryConfig,
    pub rate_limit: Option<RateLimitConfig>,
    /// Reach PostgreSQL through a [`proxy::TcpProxy`] the test can cut.
    pub pg_proxy: bool,
    /// How long `/metrics` reuses PostgreSQL-derived values (zero here, so
    /// tests see their own changes at once; the server's default is 5 s).
    pub metrics_pg_ttl: std::time::Duration,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            limits: IngestLimits::default(),
            cold: TestCold::file(),
            query: QueryConfig::default(),
            rate_limit: None,
            pg_proxy: false,
            metrics_pg_ttl: std::time::Duration::ZERO,
        }
    }
}

/// Redis of the test machine (`make test` sets `STRATA_TEST_REDIS_URL`).
pub fn test_redis_url() -> String {
    std::env::var("STRATA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Starts a server over `state` on a random port; it stops when the sender
/// is dropped or used.
async fn start_server(state: AppState) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        strata_http::serve(listener, state, &ServerConfig::default(), async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (addr, tx)
}

pub async fn spawn_app_opts(opts: AppOptions) -> TestApp {
    let db = TestDb::create().await;
    let (hot, proxy) = if opts.pg_proxy {
        let mut url = reqwest::Url::parse(&db.url).unwrap();
        let target = (
            url.host_str().unwrap().to_owned(),
            url.port().unwrap_or(5432),
        );
        let target = tokio::net::lookup_host(target)
            .await
            .unwrap()
            .next()
            .unwrap();
        let proxy = proxy::TcpProxy::start(target).await;
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(proxy.addr.port())).unwrap();
        let pool = strata_hot::lazy_pool(
            url.as_str(),
            &PoolConfig {
                max_connections: 4,
                acquire_timeout: std::time::Duration::from_secs(2),
            },
        )
        .unwrap();
        (HotStore::open(pool).await.unwrap(), Some(proxy))
    } else {
        (db.hot().await, None)
    };
    let cache_dir = tempfile::tempdir().unwrap();
    let planner = Planner::new(
        hot.clone(),
        opts.cold.store.clone(),
        test_query_config(cache_dir.path(), opts.query),
    )
    .unwrap();
    let state = AppState {
        hot: hot.clone(),
        limits: opts.limits,
        planner,
        limiter: opts
            .rate_limit
            .clone()
            .map(|c| RateLimiter::new(c).unwrap()),
        archiver: Some(strata_archive::Archiver::new(
            hot.clone(),
            opts.cold.store.clone(),
            strata_archive::ArchiveConfig::default(),
        )),
        metrics: strata_http::metrics::Metrics::with_pg_ttl(opts.metrics_pg_ttl),
    };
    let (addr, tx) = start_server(state.clone()).await;
    TestApp {
        addr,
        client: reqwest::Client::new(),
        hot,
        cold: opts.cold,
        cache_dir,
        state,
        pg_proxy: proxy,
        shutdown: Some(tx),
        db,
    }
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

    /// Another server process-equivalent on the same database, with its own
    /// rate limiter instance talking to the same Redis.
    pub async fn spawn_replica(&self, rate_limit: Option<RateLimitConfig>) -> Replica {
        let mut state = self.state.clone();
        state.limiter = rate_limit.map(|c| RateLimiter::new(c).unwrap());
        let (addr, tx) = start_server(state).await;
        Replica {
            addr,
            _shutdown: tx,
        }
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
            .fetch_one(self.hot.pool())
            .await
            .unwrap()
    }

    /// An archiver over this app's database and cold tier.
    pub fn archiver(&self, hot_retention_days: u64) -> strata_archive::Archiver {
        strata_archive::Archiver::new(
            self.hot.clone(),
            self.cold.store.clone(),
            strata_archive::ArchiveConfig {
                hot_retention: std::time::Duration::from_secs(hot_retention_days * 86_400),
                ..strata_archive::ArchiveConfig::default()
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

    /// Every stored event of a project as (event_id, user_id, event_type,
    /// ts in µs, properties).
    pub async fn stored(&self, project: &str) -> Vec<StoredEvent> {
        let id = self.project_id(project).await;
        sqlx::query_as(
            "SELECT event_id, user_id, event_type, ts, properties FROM events
              WHERE project_id = $1 ORDER BY event_id",
        )
        .bind(id)
        .fetch_all(self.hot.pool())
        .await
        .unwrap()
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
