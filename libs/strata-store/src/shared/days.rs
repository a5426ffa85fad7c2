//! UTC days as PostgreSQL bounds them.

use chrono::{DateTime, NaiveDate, Utc};

/// The instant `day` begins (UTC).
pub(crate) fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}
