//! Partitions named after the UTC day they hold (`<prefix>YYYYMMDD`): the
//! native layout's `events` partitions and the idempotency records'
//! `event_ids` partitions. Names, bounds and DDL come from a date, never
//! from input.

use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};

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
    lock_class: crate::locks::EVENTS_PARTITION,
    bounds: |day| {
        let start = crate::chunks::day_start(day);
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
    lock_class: crate::locks::CLAIMS_PARTITION,
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
    pub(crate) async fn create(&self, pool: &PgPool, day: NaiveDate) -> Result<(), sqlx::Error> {
        let mut tx = pool.begin().await?;
        crate::locks::lock_day_xact(&mut tx, self.lock_class, day).await?;
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
