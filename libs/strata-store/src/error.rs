use strata_model::ErrorCode;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("PostgreSQL is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
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
    /// A value from the caller (a command-line argument, a setting) is not
    /// acceptable.
    #[error("{0}")]
    Invalid(String),
    /// What an operation read changed before it could commit (a day's cold
    /// files swapped by another writer); nothing was written, try again.
    #[error("{0}")]
    Changed(String),
    /// PostgreSQL returned something this code cannot have produced.
    #[error("{0}")]
    Unexpected(String),
    /// A dedup filter could not be built (xorf gives a static reason).
    #[error("{what}: {reason}")]
    Filter { what: String, reason: &'static str },
    /// A background task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // A connection that cannot be made or broke (a server going
            // down answers a connection attempt with garbage, a protocol
            // error) is an outage, not a bug.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => Self::Unavailable(e),
            sqlx::Error::Database(ref db) if db.code().is_some_and(|c| is_outage(&c)) => {
                Self::Unavailable(e)
            }
            other => Self::Database(other),
        }
    }
}

impl StoreError {
    /// Whether the caller should answer "try again later" (503) rather than 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::NotMigrated(_))
    }

    /// PostgreSQL gave up waiting for a lock (`lock_timeout`, SQLSTATE 55P03).
    pub fn is_lock_timeout(&self) -> bool {
        matches!(self, Self::Unavailable(e) | Self::Database(e) if is_lock_timeout(e))
    }
}

/// SQLSTATEs that say the database cannot do the work now, whatever the
/// work (ADR-037): the same statement succeeds once it recovers, so the
/// caller waits and retries (a 503; the queue worker releases its messages
/// without counting a failure). Classes 08 (connection), 53 (insufficient
/// resources: disk full, out of memory, too many connections), 57
/// (operator intervention: shutdown, cancelled statement) and 58 (system
/// error: I/O); 25006 (read-only transaction: a failover onto a standby,
/// `default_transaction_read_only`); 40001 and 40P01 (serialization
/// failure and deadlock, after their own retries); 55P03 (lock timeout: an
/// archive commit held the table too long).
fn is_outage(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "53" | "57" | "58"))
        || matches!(code, "25006" | "40001" | "40P01" | "55P03")
}

/// `lock_timeout` expired (SQLSTATE 55P03).
pub(crate) fn is_lock_timeout(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).as_deref() == Some("55P03")
}

impl strata_model::Classify for StoreError {
    fn kind(&self) -> strata_model::ErrorKind {
        use strata_model::ErrorKind;
        match self {
            Self::Unavailable(_) | Self::NotMigrated(_) => ErrorKind::Unavailable,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Invalid(_) => ErrorKind::Invalid,
            Self::Changed(_) => ErrorKind::Conflict,
            Self::Database(_)
            | Self::Migrate(_)
            | Self::UnknownLayout
            | Self::LayoutUnavailable(_)
            | Self::LayoutMismatch { .. }
            | Self::UnknownMigrations(_)
            | Self::Unexpected(_)
            | Self::Filter { .. }
            | Self::Task(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            Self::Unavailable(_) if self.is_lock_timeout() => ErrorCode::DatabaseBusy,
            Self::Unavailable(_) => ErrorCode::DatabaseUnavailable,
            Self::NotMigrated(_) => ErrorCode::DatabaseNotMigrated,
            other => other.kind().default_code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_outage;

    #[test]
    fn outages_are_told_from_bad_statements() {
        for code in [
            "25006", "53100", "53200", "53300", "57014", "57P01", "08006", "58030", "40P01",
            "55P03",
        ] {
            assert!(is_outage(code), "{code}");
        }
        for code in ["23505", "22P02", "42P01", "23514", "XX000"] {
            assert!(!is_outage(code), "{code}");
        }
    }
}
