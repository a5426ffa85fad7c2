//! DuckDB over the cold tier's local Parquet files.
//!
//! One in-process DuckDB database (memory limit and threads configured, no
//! extension autoloading, so nothing is ever downloaded); each query gets its
//! own connection to it and runs on tokio's blocking pool. A query whose
//! request is dropped (timeout, client gone) is interrupted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use duckdb::{Config, Connection};

use crate::QueryError;

/// DuckDB settings.
#[derive(Debug, Clone)]
pub struct DuckConfig {
    /// DuckDB's `memory_limit`, e.g. `1GB`.
    pub memory_limit: String,
    pub threads: u32,
    /// Where DuckDB may spill; none: no spilling.
    pub temp_dir: Option<PathBuf>,
}

impl Default for DuckConfig {
    fn default() -> Self {
        Self {
            memory_limit: "1GB".into(),
            threads: 2,
            temp_dir: None,
        }
    }
}

/// The shared DuckDB database.
#[derive(Debug)]
pub struct DuckEngine {
    base: Mutex<Connection>,
}

impl DuckEngine {
    pub fn open(cfg: &DuckConfig) -> Result<Self, QueryError> {
        let mut config = Config::default()
            .max_memory(&cfg.memory_limit)?
            .threads(i64::from(cfg.threads.max(1)))?
            .enable_autoload_extension(false)?
            .with("autoinstall_known_extensions", "false")?;
        if let Some(dir) = &cfg.temp_dir {
            std::fs::create_dir_all(dir).map_err(|source| QueryError::Io {
                what: "creating the DuckDB temp dir",
                source,
            })?;
            config = config.with("temp_directory", dir.to_string_lossy())?;
        }
        let conn = Connection::open_in_memory_with_flags(config)?;
        Ok(Self {
            base: Mutex::new(conn),
        })
    }

    /// Runs `work` on a new connection in the blocking pool; interrupts it
    /// if the returned future is dropped first.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Connection) -> Result<T, QueryError> + Send + 'static,
    ) -> Result<T, QueryError> {
        let conn = self
            .base
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_clone()?;
        let guard = InterruptOnDrop(Some(conn.interrupt_handle()));
        let result = tokio::task::spawn_blocking(move || work(&conn))
            .await
            .map_err(QueryError::Task)?;
        let mut guard = guard;
        guard.0 = None;
        result
    }
}

struct InterruptOnDrop(Option<Arc<duckdb::InterruptHandle>>);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.interrupt();
        }
    }
}

/// `read_parquet` over exactly `paths` with the Hive columns `project_id`
/// and `date` typed; `day_n` is the day number of `date`.
pub fn source(paths: &[PathBuf]) -> String {
    let list: Vec<String> = paths.iter().map(|p| sql_string(p)).collect();
    format!(
        "(SELECT *, {} AS day_n FROM read_parquet([{}],
            hive_partitioning = true,
            hive_types = {{'project_id': BIGINT, 'date': DATE}}))",
        strata_model::duckdb_day_number("date"),
        list.join(", ")
    )
}

fn sql_string(p: &Path) -> String {
    sql_text(&p.to_string_lossy())
}

/// `text` as an SQL string literal.
pub fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Runs `sql` and maps every row.
pub fn rows<T>(
    conn: &Connection,
    sql: &str,
    f: impl FnMut(&duckdb::Row<'_>) -> duckdb::Result<T>,
) -> Result<Vec<T>, QueryError> {
    let mut stmt = conn.prepare(sql)?;
    let out = stmt.query_map([], f)?.collect::<Result<Vec<_>, _>>()?;
    Ok(out)
}
