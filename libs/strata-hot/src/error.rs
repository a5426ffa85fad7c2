use thiserror::Error;

#[derive(Debug, Error)]
pub enum HotError {
    #[error("PostgreSQL is unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} migration(s) not applied; run `strata-api migrate`")]
    NotMigrated(usize),
    #[error(
        "table `events` is neither a TimescaleDB hypertable nor a partitioned table; run `strata-api migrate` on an empty database"
    )]
    UnknownLayout,
    /// The TimescaleDB layout is required or in use but the server cannot
    /// serve it; the text says why and what to do.
    #[error("{0}")]
    LayoutUnavailable(String),
    #[error(
        "this database's events table uses {}, but STRATA_HOT_LAYOUT={choice}: Strata does not convert an existing events table (docs/ADR.md, ADR-023); use STRATA_HOT_LAYOUT=auto with this database, or migrate a new one",
        existing.describe()
    )]
    LayoutMismatch {
        existing: crate::Layout,
        choice: crate::LayoutChoice,
    },
    #[error(
        "this database has migrations this build of Strata does not know ({0:?}): it was migrated by a newer version"
    )]
    UnknownMigrations(Vec<i64>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<sqlx::Error> for HotError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Self::Unavailable(e.to_string()),
            sqlx::Error::Database(ref db)
                if db.code().is_some_and(|c| {
                    // 57P01-03: admin shutdown, crash shutdown, cannot connect now;
                    // 53300: too many connections; 55P03: lock_timeout expired
                    // (an archive commit held the table too long).
                    matches!(&*c, "57P01" | "57P02" | "57P03" | "53300" | "55P03")
                }) =>
            {
                Self::Unavailable(e.to_string())
            }
            other => Self::Database(other),
        }
    }
}

impl HotError {
    /// Whether the caller should answer "try again later" (503) rather than 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::NotMigrated(_))
    }
}
