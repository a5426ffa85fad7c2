//! Which physical layout a database's `events` table gets, decided once, by
//! [`migrate`], before any SQL could touch TimescaleDB (ADR-023).
//!
//! `CREATE EXTENSION timescaledb` on a server that has the extension
//! installed but not in `shared_preload_libraries` raises FATAL: the session
//! ends, and no `EXCEPTION` clause can catch it. So the decision is made
//! here from the catalog, the extension is created only when the server
//! preloads it, and the migrations receive the decision in the session
//! setting `strata.hot_layout`; no migration creates the extension itself.

use std::fmt;
use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection, PgPool};

use crate::{Layout, StoreError};

/// Migrations replaced by a later file and no longer embedded; a database
/// that applied them is still current. `20261126000001_hot_tier` created the
/// extension inside the migration (the FATAL above); `20261126000000_hot_tier`
/// does the same work idempotently without it.
const SUPERSEDED: &[i64] = &[20261126000001];

/// The embedded migrations from `migrations/`. Applied versions that are no
/// longer embedded are checked against [`SUPERSEDED`] by [`migrate`] instead
/// of by sqlx.
pub(crate) fn migrator() -> Migrator {
    let mut m = sqlx::migrate!("../../migrations");
    m.set_ignore_missing(true);
    m
}

/// The operator's wish for a new database's layout (`STRATA_HOT_LAYOUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayoutChoice {
    /// A hypertable where TimescaleDB is installed and preloaded, native day
    /// partitions otherwise (with a warning when it is installed but not
    /// preloaded).
    #[default]
    Auto,
    /// A hypertable, or fail with the reason it cannot be had.
    Timescale,
    /// Native day partitions, even where TimescaleDB is available.
    Native,
}

impl LayoutChoice {
    pub const VALUES: [&'static str; 3] = ["auto", "timescaledb", "native"];

    /// The explicit choice that names `layout`.
    pub fn of(layout: Layout) -> Self {
        match layout {
            Layout::Timescale => Self::Timescale,
            Layout::Native => Self::Native,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Timescale => "timescaledb",
            Self::Native => "native",
        }
    }
}

impl fmt::Display for LayoutChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LayoutChoice {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "timescaledb" => Ok(Self::Timescale),
            "native" => Ok(Self::Native),
            _ => Err(StoreError::Invalid(format!(
                "hot layout must be one of {}, not {s:?}",
                Self::VALUES.join(", ")
            ))),
        }
    }
}

/// What the server offers of TimescaleDB, read from the catalog without
/// loading any of its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimescaleSupport {
    /// The extension's files are installed (`pg_available_extensions`).
    pub installed: bool,
    /// Its loader ran at server start: the loader defines the integer
    /// setting `timescaledb.max_background_workers` only when it is in
    /// `shared_preload_libraries` (readable by any role, unlike that list; a
    /// leftover line in postgresql.conf would only make a text placeholder).
    pub preloaded: bool,
    /// The extension exists in this database.
    pub created: bool,
}

impl TimescaleSupport {
    pub async fn probe(conn: &mut PgConnection) -> Result<Self, StoreError> {
        let (installed, preloaded, created) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),
                    EXISTS (SELECT 1 FROM pg_settings
                             WHERE name = 'timescaledb.max_background_workers' AND vartype = 'integer'),
                    EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
        )
        .fetch_one(conn)
        .await?;
        Ok(Self {
            installed,
            preloaded,
            created,
        })
    }

    /// Why a hypertable cannot be used on this server, if it cannot.
    pub fn unusable_because(self) -> Option<&'static str> {
        match (self.installed, self.preloaded) {
            (true, true) => None,
            (false, _) => Some(
                "the timescaledb extension is not installed on this PostgreSQL server \
                 (not in pg_available_extensions); install TimescaleDB 2.x and preload it",
            ),
            (true, false) => Some(
                "TimescaleDB is installed on this PostgreSQL server but not preloaded; add \
                 `shared_preload_libraries = 'timescaledb'` to postgresql.conf and restart PostgreSQL",
            ),
        }
    }
}

/// The layout a database without `events` gets under `choice`.
pub(crate) fn decide(
    choice: LayoutChoice,
    support: TimescaleSupport,
) -> Result<Layout, StoreError> {
    let why = support.unusable_because();
    match (choice, why) {
        (LayoutChoice::Native, _) => Ok(Layout::Native),
        (LayoutChoice::Timescale | LayoutChoice::Auto, None) => Ok(Layout::Timescale),
        (LayoutChoice::Timescale, Some(why)) => Err(StoreError::LayoutUnavailable(format!(
            "STRATA_HOT_LAYOUT=timescaledb cannot be honoured: {why}, or set STRATA_HOT_LAYOUT=auto to use native day partitions"
        ))),
        (LayoutChoice::Auto, Some(why)) => {
            if support.installed {
                tracing::warn!(
                    "{why}. Using native day partitions for this database (it keeps them: \
                     a later restart with TimescaleDB preloaded does not convert it)"
                );
            } else {
                tracing::info!("TimescaleDB is not installed; using native day partitions");
            }
            Ok(Layout::Native)
        }
    }
}

/// The layout of `events` if the table exists. A hypertable on a server that
/// does not preload TimescaleDB is an error here: touching it would end the
/// session.
pub(crate) async fn detect(conn: &mut PgConnection) -> Result<Option<Layout>, StoreError> {
    let kind: Option<String> =
        sqlx::query_scalar("SELECT relkind::text FROM pg_class WHERE oid = to_regclass('events')")
            .fetch_optional(&mut *conn)
            .await?;
    match kind.as_deref() {
        None => Ok(None),
        Some("p") => Ok(Some(Layout::Native)),
        Some("r") => {
            let support = TimescaleSupport::probe(conn).await?;
            if !support.created {
                return Err(StoreError::UnknownLayout);
            }
            if let Some(why) = support.unusable_because() {
                return Err(StoreError::LayoutUnavailable(format!(
                    "this database's events table is a TimescaleDB hypertable that this server cannot serve: {why}"
                )));
            }
            let hyper: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                                 WHERE hypertable_schema = current_schema()
                                   AND hypertable_name = 'events')",
            )
            .fetch_one(conn)
            .await?;
            if hyper {
                Ok(Some(Layout::Timescale))
            } else {
                Err(StoreError::UnknownLayout)
            }
        }
        Some(_) => Err(StoreError::UnknownLayout),
    }
}

/// Applies pending migrations and returns the database's layout: decided
/// under `choice` for a new database (creating the extension when the
/// hypertable is chosen), checked against `choice` for an existing one (a
/// database keeps its layout; an explicit other choice is an error).
/// Concurrent callers serialise on an advisory lock.
pub async fn migrate(pool: &PgPool, choice: LayoutChoice) -> Result<Layout, StoreError> {
    // Its own connection: the lock and the session setting end with it.
    let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
    sqlx::query("SELECT pg_advisory_lock($1, 0)")
        .bind(crate::shared::locks::MIGRATE)
        .execute(&mut conn)
        .await?;
    let result = migrate_locked(&mut conn, choice).await;
    conn.close().await.ok();
    result
}

async fn migrate_locked(
    conn: &mut PgConnection,
    choice: LayoutChoice,
) -> Result<Layout, StoreError> {
    check_known_migrations(conn).await?;
    let layout = match detect(conn).await? {
        Some(existing) => {
            if choice != LayoutChoice::Auto && choice != LayoutChoice::of(existing) {
                return Err(StoreError::LayoutMismatch { existing, choice });
            }
            if existing == Layout::Native
                && TimescaleSupport::probe(conn)
                    .await?
                    .unusable_because()
                    .is_none()
            {
                tracing::info!(
                    "TimescaleDB is available, but this database keeps the native day partitions \
                     it was created with (docs/ADR.md, ADR-023)"
                );
            }
            existing
        }
        None => {
            let support = TimescaleSupport::probe(conn).await?;
            let layout = decide(choice, support)?;
            if layout == Layout::Timescale && !support.created {
                sqlx::query("CREATE EXTENSION IF NOT EXISTS timescaledb")
                    .execute(&mut *conn)
                    .await?;
            }
            layout
        }
    };
    sqlx::query("SELECT set_config('strata.hot_layout', $1, false)")
        .bind(LayoutChoice::of(layout).as_str())
        .execute(&mut *conn)
        .await?;
    migrator().run(&mut *conn).await?;
    Ok(layout)
}

/// Refuses a database that applied migrations this build does not know (a
/// newer Strata migrated it): sqlx's own check is off because of
/// [`SUPERSEDED`].
async fn check_known_migrations(conn: &mut PgConnection) -> Result<(), StoreError> {
    let known: Vec<i64> = migrator()
        .iter()
        .map(|m| m.version)
        .chain(SUPERSEDED.iter().copied())
        .collect();
    let unknown: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM _sqlx_migrations WHERE NOT (version = ANY($1)) ORDER BY version",
    )
    .bind(&known)
    .fetch_all(&mut *conn)
    .await
    .or_else(|e| match &e {
        // A new database: no migration table yet.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => Ok(Vec::new()),
        _ => Err(e),
    })?;
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(StoreError::UnknownMigrations(unknown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn support(installed: bool, preloaded: bool) -> TimescaleSupport {
        TimescaleSupport {
            installed,
            preloaded,
            created: false,
        }
    }

    #[test]
    fn choices_parse_and_print() {
        for v in LayoutChoice::VALUES {
            assert_eq!(v.parse::<LayoutChoice>().unwrap().as_str(), v);
        }
        let e = "hypertable"
            .parse::<LayoutChoice>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("auto, timescaledb, native"), "{e}");
    }

    #[test]
    fn decisions() {
        use LayoutChoice::*;
        let usable = support(true, true);
        let not_preloaded = support(true, false);
        let absent = support(false, false);
        assert_eq!(decide(Auto, usable).unwrap(), Layout::Timescale);
        assert_eq!(decide(Auto, not_preloaded).unwrap(), Layout::Native);
        assert_eq!(decide(Auto, absent).unwrap(), Layout::Native);
        assert_eq!(decide(Native, usable).unwrap(), Layout::Native);
        assert_eq!(decide(Timescale, usable).unwrap(), Layout::Timescale);
        let e = decide(Timescale, not_preloaded).unwrap_err().to_string();
        assert!(
            e.contains("shared_preload_libraries = 'timescaledb'"),
            "{e}"
        );
        let e = decide(Timescale, absent).unwrap_err().to_string();
        assert!(e.contains("not installed"), "{e}");
    }

    #[test]
    fn superseded_versions_are_not_embedded() {
        let m = migrator();
        assert!(SUPERSEDED.iter().all(|v| !m.version_exists(*v)));
        assert!(m.iter().map(|m| m.version).is_sorted());
    }
}
