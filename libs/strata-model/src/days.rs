//! Day numbers: days since 1970-01-01, the form in which both tiers compute
//! days, so PostgreSQL and DuckDB agree on every boundary without time-zone
//! settings. The arithmetic is written once per engine, side by side here;
//! `tests/it/days.rs` runs the same dates (ISO weeks across year ends,
//! leap days, days before 1970) through both engines and this code.

use chrono::{Duration, NaiveDate};

use crate::Period;

/// Days since 1970-01-01 (negative before).
pub fn day_number(day: NaiveDate) -> i32 {
    (day - NaiveDate::default()).num_days() as i32
}

/// The date of a day number.
pub fn from_day_number(n: i32) -> NaiveDate {
    NaiveDate::default() + Duration::days(i64::from(n))
}

/// PostgreSQL: the day number (`int4`) of the UTC day of a `timestamptz`
/// expression.
pub fn pg_day_number(timestamptz: &str) -> String {
    format!("((({timestamptz}) AT TIME ZONE 'UTC')::date - DATE '1970-01-01')")
}

/// DuckDB: the day number (`INTEGER`) of a `DATE` expression (the Hive
/// `date` column of a cold file).
pub fn duckdb_day_number(date: &str) -> String {
    format!("CAST(({date}) - DATE '1970-01-01' AS INTEGER)")
}

impl Period {
    /// The day number of the first day of the period holding day number
    /// `day`; 1970-01-01 was a Thursday, so Mondays are the day numbers
    /// ≡ 4 (mod 7).
    pub fn start_of_number(self, day: i32) -> i32 {
        match self {
            Self::Day => day,
            Self::Week => day - (day - 4).rem_euclid(7),
        }
    }

    /// Both engines: SQL computing exactly [`Period::start_of_number`] of
    /// an integer day-number expression. `%` truncates toward zero in both
    /// PostgreSQL and DuckDB, hence the `+ 7) % 7` for days before 1970.
    pub fn start_sql(self, day_number: &str) -> String {
        match self {
            Self::Day => format!("({day_number})"),
            Self::Week => format!("(({day_number}) - ((({day_number}) - 4) % 7 + 7) % 7)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_count_from_the_epoch() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(day_number(d(1970, 1, 2)), 1);
        assert_eq!(day_number(d(1969, 12, 31)), -1);
        assert_eq!(from_day_number(day_number(d(2024, 2, 29))), d(2024, 2, 29));
        // 2021-01-03 is a Sunday of ISO week 2020-W53, which began 2020-12-28.
        assert_eq!(
            from_day_number(Period::Week.start_of_number(day_number(d(2021, 1, 3)))),
            d(2020, 12, 28)
        );
    }
}
