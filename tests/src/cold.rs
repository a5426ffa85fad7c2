//! Cold-tier fixtures: a per-test prefix on the real S3 server that
//! `make test` starts (Garage, or whatever `STRATA_TEST_S3_*` names), or a
//! temporary `file://` directory; and DuckDB over what is in the bucket.

use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use strata_cold::{ColdStore, S3Options};

/// A cold store for one test. An S3 prefix is emptied when this is dropped.
#[derive(Debug)]
pub struct TestCold {
    pub url: String,
    pub s3: S3Options,
    pub store: ColdStore,
    _dir: Option<tempfile::TempDir>,
    empty_on_drop: bool,
}

impl Drop for TestCold {
    fn drop(&mut self) {
        if !self.empty_on_drop {
            return;
        }
        let (url, s3) = (self.url.clone(), self.s3.clone());
        crate::block_on_own_runtime(async move {
            let _ = ColdStore::from_url(&url, &s3).unwrap().delete_all().await;
        });
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with `make test`, which starts an S3 server")
    })
}

/// One row as a data engineer's DuckDB glob over the bucket sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ColdRow {
    pub project_id: i64,
    pub date: String,
    pub event_id: String,
    pub user_id: String,
    pub event_type: String,
    pub ts_micros: i64,
    pub properties: Option<String>,
}

impl TestCold {
    /// A temporary local directory (the embedded default's code path).
    pub fn file() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = ColdStore::from_url(&url, &S3Options::default()).unwrap();
        Self {
            url,
            s3: S3Options::default(),
            store,
            _dir: Some(dir),
            empty_on_drop: false,
        }
    }

    /// A fresh prefix in the test bucket of the real S3 server.
    pub fn s3() -> Self {
        let s3 = S3Options {
            endpoint: Some(env("STRATA_TEST_S3_ENDPOINT")),
            region: Some(
                std::env::var("STRATA_TEST_S3_REGION").unwrap_or_else(|_| "garage".into()),
            ),
            access_key_id: Some(env("STRATA_TEST_S3_ACCESS_KEY_ID")),
            secret_access_key: Some(env("STRATA_TEST_S3_SECRET_ACCESS_KEY")),
            virtual_hosted_style: false,
            request_timeout: Some(Duration::from_secs(30)),
        };
        let url = format!(
            "s3://{}/t-{}",
            env("STRATA_TEST_S3_BUCKET"),
            uuid::Uuid::new_v4().simple()
        );
        Self::remote(url, s3, true)
    }

    fn remote(url: String, s3: S3Options, empty_on_drop: bool) -> Self {
        let store = ColdStore::from_url(&url, &s3).unwrap();
        Self {
            url,
            s3,
            store,
            _dir: None,
            empty_on_drop,
        }
    }

    /// An S3 endpoint where nothing listens.
    pub fn unreachable() -> Self {
        let s3 = S3Options {
            endpoint: Some("http://127.0.0.1:9".into()),
            region: Some("garage".into()),
            access_key_id: Some("GK000000000000000000000000".into()),
            secret_access_key: Some("0".repeat(64)),
            virtual_hosted_style: false,
            request_timeout: Some(Duration::from_secs(2)),
        };
        Self::remote("s3://nowhere/strata".to_owned(), s3, false)
    }

    /// Environment for a `strata-archiver` process using this store.
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![("STRATA_COLD_URL", self.url.clone())];
        let opt = |name, value: &Option<String>| value.clone().map(|x| (name, x));
        v.extend(opt("STRATA_S3_ENDPOINT", &self.s3.endpoint));
        v.extend(opt("STRATA_S3_REGION", &self.s3.region));
        v.extend(opt("STRATA_S3_ACCESS_KEY_ID", &self.s3.access_key_id));
        v.extend(opt(
            "STRATA_S3_SECRET_ACCESS_KEY",
            &self.s3.secret_access_key,
        ));
        v
    }

    /// `strata-api serve` flags for this store.
    pub fn flags(&self) -> Vec<String> {
        let mut v = vec![format!("--cold-url={}", self.url)];
        let mut opt = |name: &str, value: &Option<String>| {
            if let Some(x) = value {
                v.push(format!("{name}={x}"));
            }
        };
        opt("--s3-endpoint", &self.s3.endpoint);
        opt("--s3-region", &self.s3.region);
        opt("--s3-access-key-id", &self.s3.access_key_id);
        opt("--s3-secret-access-key", &self.s3.secret_access_key);
        if let Some(t) = self.s3.request_timeout {
            v.push(format!("--s3-request-timeout={}ms", t.as_millis()));
        }
        v
    }

    /// Every object key under `events/`, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .store
            .object_store()
            .list(Some(&Path::from("events")))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        keys.sort();
        keys
    }

    /// `read_parquet('…/events/**/*.parquet', hive_partitioning = true)` over
    /// everything in the bucket (S3 objects are first copied to a local
    /// directory: there is no httpfs extension offline).
    pub async fn glob(&self) -> Vec<ColdRow> {
        self.glob_keys(&self.keys().await).await
    }

    /// The same glob over a copy of only `keys` (e.g. those the manifest lists).
    pub async fn glob_keys(&self, keys: &[String]) -> Vec<ColdRow> {
        if keys.is_empty() {
            return Vec::new();
        }
        self.query(
            keys,
            "SELECT project_id, CAST(date AS VARCHAR), event_id, user_id, event_type,
                    epoch_us(ts), properties FROM {events}",
            |r| {
                Ok(ColdRow {
                    project_id: r.get(0)?,
                    date: r.get(1)?,
                    event_id: r.get(2)?,
                    user_id: r.get(3)?,
                    event_type: r.get(4)?,
                    ts_micros: r.get(5)?,
                    properties: r.get(6)?,
                })
            },
        )
        .await
    }

    /// (rows, distinct event_ids) of a glob over the whole bucket.
    pub async fn count_rows_and_ids(&self) -> (i64, i64) {
        let keys = self.keys().await;
        self.query(
            &keys,
            "SELECT count(*), count(DISTINCT event_id) FROM {events}",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .await
        .remove(0)
    }

    /// Copies `keys` to a local directory and runs `sql` with DuckDB, where
    /// `{events}` stands for `read_parquet('…/events/**/*.parquet',
    /// hive_partitioning = true)` over that copy.
    pub async fn query<T: Send + 'static>(
        &self,
        keys: &[String],
        sql: &str,
        row: fn(&duckdb::Row<'_>) -> duckdb::Result<T>,
    ) -> Vec<T> {
        let dir = tempfile::tempdir().unwrap();
        let store = self.store.object_store();
        for key in keys {
            let bytes = store
                .get(&Path::from(key.as_str()))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let path = dir.path().join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let sql = sql.replace(
            "{events}",
            &format!(
                "read_parquet('{}/events/**/*.parquet', hive_partitioning = true)",
                dir.path().display()
            ),
        );
        tokio::task::spawn_blocking(move || {
            let _keep = dir;
            let conn = duckdb::Connection::open_in_memory().unwrap();
            let mut stmt = conn.prepare(&sql).unwrap();
            stmt.query_map([], row)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
        })
        .await
        .unwrap()
    }
}
