//! Stats request parameters: inclusive UTC day ranges and retention periods.
//! Day numbers and their SQL are in `days.rs`.

use std::fmt;

use chrono::{Datelike, Duration, NaiveDate};

use crate::ModelError;

fn parse_day(field: &'static str, raw: &str) -> Result<NaiveDate, ModelError> {
    let bad = || ModelError::BadDate {
        field,
        value: raw.to_owned(),
    };
    // `%Y` alone would accept "+2026" or five-digit years; insist on the shape.
    let b = raw.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return Err(bad());
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| bad())
}

/// An inclusive range of UTC days, `from <= to`, at most `max_days` long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    from: NaiveDate,
    to: NaiveDate,
}

impl DayRange {
    /// Parses `from` and `to` (`YYYY-MM-DD`).
    pub fn parse(from: Option<&str>, to: Option<&str>, max_days: u32) -> Result<Self, ModelError> {
        let from = parse_day("from", from.ok_or(ModelError::Missing { field: "from" })?)?;
        let to = parse_day("to", to.ok_or(ModelError::Missing { field: "to" })?)?;
        Self::new(from, to, max_days)
    }

    pub fn new(from: NaiveDate, to: NaiveDate, max_days: u32) -> Result<Self, ModelError> {
        if from > to {
            return Err(ModelError::RangeReversed {
                from: from.to_string(),
                to: to.to_string(),
            });
        }
        let days = (to - from).num_days() + 1;
        if days > i64::from(max_days) {
            return Err(ModelError::RangeTooLong { days, max_days });
        }
        Ok(Self { from, to })
    }

    pub fn from(&self) -> NaiveDate {
        self.from
    }

    pub fn to(&self) -> NaiveDate {
        self.to
    }

    /// Number of days in the range (at least 1).
    pub fn len(&self) -> usize {
        (self.to - self.from).num_days() as usize + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, day: NaiveDate) -> bool {
        self.from <= day && day <= self.to
    }

    /// Every day of the range, in order.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let (from, n) = (self.from, self.len());
        (0..n).map(move |i| from + Duration::days(i as i64))
    }
}

/// A retention period: a UTC day or an ISO week (Monday to Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Week,
}

impl Period {
    pub fn parse(raw: &str) -> Result<Self, ModelError> {
        match raw {
            "day" => Ok(Self::Day),
            "week" => Ok(Self::Week),
            other => Err(ModelError::BadPeriod(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
        }
    }

    /// Length in days.
    pub fn days(self) -> i32 {
        match self {
            Self::Day => 1,
            Self::Week => 7,
        }
    }

    /// The first day of the period holding `day`.
    pub fn start_of(self, day: NaiveDate) -> NaiveDate {
        match self {
            Self::Day => day,
            Self::Week => day - Duration::days(i64::from(day.weekday().num_days_from_monday())),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bounded integer query parameter (`limit`, `periods`).
pub fn parse_bounded(
    field: &'static str,
    raw: Option<&str>,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, ModelError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ModelError::OutOfRange {
            field,
            value: raw.to_owned(),
            min,
            max,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{day_number, from_day_number};

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn ranges_parse_and_refuse_clearly() {
        let r = DayRange::parse(Some("2026-01-30"), Some("2026-02-02"), 10).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r.days().last(), Some(d("2026-02-02")));
        for (from, to, needle) in [
            (None, Some("2026-01-01"), "from is required"),
            (Some("2026-1-01"), Some("2026-01-01"), "from"),
            (Some("2026-02-30"), Some("2026-03-01"), "2026-02-30"),
            (Some("+2026-01-01"), Some("2026-01-01"), "YYYY-MM-DD"),
            (Some("2026-01-02"), Some("2026-01-01"), "after"),
            (Some("2026-01-01"), Some("2026-01-11"), "11 days"),
        ] {
            let e = DayRange::parse(from, to, 10).unwrap_err().to_string();
            assert!(e.contains(needle), "{e:?} lacks {needle:?}");
        }
    }

    #[test]
    fn week_starts_agree_on_dates_and_day_numbers() {
        // 2026-01-01 is a Thursday: its ISO week starts Monday 2025-12-29.
        assert_eq!(Period::Week.start_of(d("2026-01-01")), d("2025-12-29"));
        for offset in -800..800 {
            let day = d("2026-01-01") + Duration::days(offset);
            let n = day_number(day);
            assert_eq!(from_day_number(n), day);
            let start = Period::Week.start_of(day);
            assert_eq!(start.weekday(), chrono::Weekday::Mon);
            assert_eq!(Period::Week.start_of_number(n), day_number(start));
            assert_eq!(Period::Day.start_of_number(n), n);
        }
    }

    #[test]
    fn bounded_integers() {
        assert_eq!(parse_bounded("limit", None, 10, 1, 1000), Ok(10));
        assert_eq!(parse_bounded("limit", Some("1000"), 10, 1, 1000), Ok(1000));
        for bad in ["0", "1001", "-1", "ten", ""] {
            let e = parse_bounded("limit", Some(bad), 10, 1, 1000).unwrap_err();
            assert!(e.to_string().contains("between 1 and 1000"), "{e}");
        }
    }

    #[test]
    fn periods() {
        assert_eq!(Period::parse("week"), Ok(Period::Week));
        assert!(
            Period::parse("month")
                .unwrap_err()
                .to_string()
                .contains("day or week")
        );
    }
}
