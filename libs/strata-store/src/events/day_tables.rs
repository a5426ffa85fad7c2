//! Partitions named after the UTC day they hold (`<prefix>YYYYMMDD`): the
//! native layout's `events` partitions and the idempotency records'
//! `event_ids` partitions. Names, bounds and DDL come from a date, never
//! from input.

use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};

use crate::error::is_lock_timeout;

/// How long one try to create a partition waits for its parent's lock
/// (everything else touching the parent waits behind it that long at most).
pub(crate) const PARTITION_LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(200);
/// Tries to create a partition before its batch is refused as busy, with
/// pauses of 100, 200, 400 … ms between them: about 4.5 s in all.
const PARTITION_TRIES: u32 = 6;
const PARTITION_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// One parent's day partitions.
#[derive(Debug)]
pub(crate) struct DayTables {
    parent: &'static str,
    prefix: &'static str,
    /// Advisory-lock class serialising the creation of a day's partition
    /// (second key: the day number).
    lock_class: i32,
    /// The partition bounds of a day, as SQL literals' text.
    bounds: fn(NaiveDate) -> (String, String),
}

/// `events` as native range partitions on `ts`.
pub(crate) const EVENTS: DayTables = DayTables {
    parent: "events",
    prefix: "events_p",
    lock_class: crate::shared::locks::EVENTS_PARTITION,
    bounds: |day| {
        let start = crate::shared::days::day_start(day);
        let end = start + chrono::Duration::days(1);
        (
            start.format("%Y-%m-%d %H:%M:%S+00").to_string(),
            end.format("%Y-%m-%d %H:%M:%S+00").to_string(),
        )
    },
};

/// `event_ids`, range partitions on the arrival `day`.
pub(crate) const CLAIMS: DayTables = DayTables {
    parent: "event_ids",
    prefix: "event_ids_p",
    lock_class: crate::shared::locks::CLAIMS_PARTITION,
    bounds: |day| {
        (
            day.to_string(),
            (day + chrono::Duration::days(1)).to_string(),
        )
    },
};

impl DayTables {
    pub(crate) fn name(&self, day: NaiveDate) -> String {
        format!("{}{}", self.prefix, day.format("%Y%m%d"))
    }

    pub(crate) fn parse(&self, name: &str) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(name.strip_prefix(self.prefix)?, "%Y%m%d").ok()
    }

    /// `CREATE TABLE IF NOT EXISTS` of `day`'s partition.
    pub(crate) fn ddl(&self, day: NaiveDate) -> String {
        let (from, to) = (self.bounds)(day);
        format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ('{from}') TO ('{to}')",
            self.name(day),
            self.parent
        )
    }

    /// Creates `day`'s partition unless it exists, in its own short
    /// transaction under the day's creation lock, so concurrent creators
    /// never race on DDL and no data transaction holds DDL locks.
    ///
    /// `CREATE TABLE … PARTITION OF` takes ACCESS EXCLUSIVE on the parent,
    /// and while it waits every later reader and writer of the parent
    /// queues behind it: behind a long reader (the archiver's chunk read, a
    /// seal) one late event would stop all ingest and stats. So each try
    /// waits at most [`PARTITION_LOCK_WAIT`], with back-off between tries;
    /// after the last, the lock timeout (55P03) is the caller's error (the
    /// batch is refused as busy, to be retried) and everyone else went on.
    pub(crate) async fn create(&self, pool: &PgPool, day: NaiveDate) -> Result<(), sqlx::Error> {
        let mut pause = PARTITION_RETRY_PAUSE;
        let mut tries = 0;
        loop {
            tries += 1;
            match self.try_create(pool, day).await {
                Err(e) if tries < PARTITION_TRIES && is_lock_timeout(&e) => {
                    tracing::debug!(%day, table = self.parent, tries, "partition creation waited too long for its lock; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) if is_lock_timeout(&e) => {
                    tracing::warn!(%day, table = self.parent, tries,
                        "partition not created: the table stayed locked by a long reader; the batch is refused as busy");
                    return Err(e);
                }
                other => return other,
            }
        }
    }

    async fn try_create(&self, pool: &PgPool, day: NaiveDate) -> Result<(), sqlx::Error> {
        let mut tx = pool.begin().await?;
        crate::shared::locks::lock_day_xact(&mut tx, self.lock_class, day).await?;
        // The creation lock above may wait (for another creator of the
        // same day); the bound is on the parent's lock only.
        crate::shared::locks::set_lock_timeout(&mut tx, PARTITION_LOCK_WAIT).await?;
        sqlx::query(&self.ddl(day)).execute(&mut *tx).await?;
        tx.commit().await
    }

    /// The day of every partition, ascending, as `conn` sees the catalog.
    pub(crate) async fn days(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Vec<NaiveDate>, sqlx::Error> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = $1::regclass",
        )
        .bind(self.parent)
        .fetch_all(conn)
        .await?;
        let mut days: Vec<NaiveDate> = names.iter().filter_map(|n| self.parse(n)).collect();
        days.sort_unstable();
        Ok(days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bounds_cover_the_day() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        assert_eq!(EVENTS.name(d), "events_p20260105");
        assert_eq!(EVENTS.parse("events_p20260105"), Some(d));
        assert_eq!(EVENTS.parse("events_default"), None);
        assert_eq!(CLAIMS.name(d), "event_ids_p20260105");
        assert_eq!(CLAIMS.parse("event_ids_p20260105"), Some(d));
        assert_eq!(CLAIMS.parse("event_ids"), None);
        assert_eq!(
            EVENTS.ddl(d),
            "CREATE TABLE IF NOT EXISTS events_p20260105 PARTITION OF events \
             FOR VALUES FROM ('2026-01-05 00:00:00+00') TO ('2026-01-06 00:00:00+00')"
        );
        assert_eq!(
            CLAIMS.ddl(d),
            "CREATE TABLE IF NOT EXISTS event_ids_p20260105 PARTITION OF event_ids \
             FOR VALUES FROM ('2026-01-05') TO ('2026-01-06')"
        );
    }
}
