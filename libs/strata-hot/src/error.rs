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
