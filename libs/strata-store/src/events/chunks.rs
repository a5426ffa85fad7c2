//! Day chunks: the partitioning interface over TimescaleDB and native
//! PostgreSQL partitions. This module is the only place that reads or writes
//! data differently per layout (`layout.rs` decides which one a database
//! gets).

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

use crate::events::day_tables::EVENTS;
use crate::shared::days::day_start;
use crate::{Store, StoreError};

/// Which physical layout holds the hot events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A TimescaleDB hypertable with 1-day chunks.
    Timescale,
    /// PostgreSQL declarative range partitions, one per UTC day.
    Native,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timescale => "timescaledb-hypertable",
            Self::Native => "native-partitions",
        }
    }

    /// In words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Timescale => "a TimescaleDB hypertable",
            Self::Native => "native day partitions",
        }
    }
}

/// One hot chunk: the rows with `start <= ts < end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Qualified relation name, for logs and `COPY`.
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Chunk {
    /// The UTC day a 1-day chunk covers.
    pub fn day(&self) -> NaiveDate {
        self.start.date_naive()
    }
}

impl Store {
    /// Makes sure every day in `days` has a chunk to receive rows. TimescaleDB
    /// creates chunks itself; native partitions are created here, each in its
    /// own short transaction under an advisory lock, so concurrent ingests
    /// never race on DDL and no ingest transaction holds DDL locks.
    pub(crate) async fn ensure_days(&self, days: &BTreeSet<NaiveDate>) -> Result<(), sqlx::Error> {
        if self.layout == Layout::Timescale {
            return Ok(());
        }
        let unknown: Vec<NaiveDate> = {
            let known = self.known_days.lock().unwrap_or_else(|p| p.into_inner());
            days.iter()
                .filter(|d| !known.contains(d))
                .copied()
                .collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = unknown.iter().map(|d| EVENTS.name(*d)).collect();
        let missing: Vec<String> =
            sqlx::query_scalar("SELECT n FROM unnest($1::text[]) n WHERE to_regclass(n) IS NULL")
                .bind(&names)
                .fetch_all(&self.pool)
                .await?;
        for day in &unknown {
            if missing.contains(&EVENTS.name(*day)) {
                self.create_native_partition(*day).await?;
            }
        }
        self.known_days
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(unknown);
        Ok(())
    }

    /// Creates today's and tomorrow's native partitions ahead of their
    /// first events (the sealer calls it on every tick), so that no batch
    /// waits for DDL when a day begins. Nothing on a hypertable.
    pub async fn prepare_days(&self, today: NaiveDate) -> Result<(), StoreError> {
        let days = [today, today + chrono::Duration::days(1)].into();
        Ok(self.ensure_days(&days).await?)
    }

    async fn create_native_partition(&self, day: NaiveDate) -> Result<(), sqlx::Error> {
        EVENTS.create(&self.pool, day).await?;
        tracing::info!(%day, "created hot partition");
        Ok(())
    }

    /// Forgets cached partition existence, after an insert found one missing.
    pub(crate) fn forget_days(&self, days: &BTreeSet<NaiveDate>) {
        let mut known = self.known_days.lock().unwrap_or_else(|p| p.into_inner());
        for d in days {
            known.remove(d);
        }
    }

    /// Every hot chunk, oldest first.
    pub async fn list_chunks(&self) -> Result<Vec<Chunk>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        list_chunks_on(&mut conn, self.layout).await
    }

    /// Drops one chunk inside the caller's transaction (the archiver's commit
    /// point), and with it the day's hot rollups (`seal.rs`). Returns an
    /// error if the chunk no longer exists.
    pub(crate) async fn drop_chunk(
        &self,
        conn: &mut PgConnection,
        chunk: &Chunk,
    ) -> Result<(), StoreError> {
        match self.layout {
            Layout::Timescale => {
                let dropped: Vec<String> = sqlx::query_scalar(
                    "SELECT c::text FROM drop_chunks('events', older_than => $2, newer_than => $1) c",
                )
                .bind(chunk.start)
                .bind(chunk.end)
                .fetch_all(&mut *conn)
                .await?;
                if dropped.is_empty() {
                    return Err(StoreError::NotFound(format!(
                        "chunk {} is gone",
                        chunk.name
                    )));
                }
            }
            Layout::Native => {
                let day = EVENTS.parse(&chunk.name).ok_or_else(|| {
                    StoreError::Unexpected(format!("{} is not a day partition", chunk.name))
                })?;
                // No advisory lock here: DROP locks the parent, which already
                // serialises it with partition creation, and the archiver
                // calls this holding `events` exclusively — taking the day
                // lock after that would invert the creator's lock order.
                sqlx::query(&format!("DROP TABLE {}", EVENTS.name(day)))
                    .execute(&mut *conn)
                    .await?;
                self.forget_days(&BTreeSet::from([day]));
            }
        }
        Ok(())
    }
}

impl Store {
    /// Inside the archive commit, which holds `events` exclusively: makes
    /// sure `day` can receive rows again (rows that arrived while the day
    /// was being archived go back into it). TimescaleDB creates its chunk
    /// on insert; a native partition is created here, without the creation
    /// lock, which only orders creators that do not hold `events`.
    pub(crate) async fn recreate_day(
        &self,
        conn: &mut PgConnection,
        day: NaiveDate,
    ) -> Result<(), StoreError> {
        if self.layout == Layout::Native {
            sqlx::query(&EVENTS.ddl(day)).execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// Every hot chunk, oldest first, as `conn` sees the catalog (inside a
/// REPEATABLE READ transaction: as of its snapshot).
pub(crate) async fn list_chunks_on(
    conn: &mut PgConnection,
    layout: Layout,
) -> Result<Vec<Chunk>, StoreError> {
    match layout {
        Layout::Timescale => {
            let rows: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
                "SELECT format('%I.%I', chunk_schema, chunk_name), range_start, range_end
                   FROM timescaledb_information.chunks
                  WHERE hypertable_schema = current_schema() AND hypertable_name = 'events'
                  ORDER BY range_start",
            )
            .fetch_all(&mut *conn)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(name, start, end)| Chunk { name, start, end })
                .collect())
        }
        Layout::Native => {
            let days = EVENTS.days(&mut *conn).await?;
            Ok(days
                .into_iter()
                .map(|day| {
                    let start = day_start(day);
                    Chunk {
                        name: EVENTS.name(day),
                        start,
                        end: start + chrono::Duration::days(1),
                    }
                })
                .collect())
        }
    }
}
