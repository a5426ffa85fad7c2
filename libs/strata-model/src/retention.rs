//! A project's retention policy: how many UTC days of events it keeps.

use std::fmt;

use chrono::NaiveDate;

use crate::ModelError;

/// Days of events a project keeps, today included: on day `t` the kept
/// days are `t - (days - 1) ..= t`, and every earlier day has expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RetentionDays(u32);

impl RetentionDays {
    pub const MAX: u32 = 365_000;

    pub fn new(days: u32) -> Result<Self, ModelError> {
        if (1..=Self::MAX).contains(&days) {
            Ok(Self(days))
        } else {
            Err(ModelError::BadRetention(days.to_string()))
        }
    }

    /// `400d` (or `400`) for a number of days, `forever` (or `none`) for
    /// no policy.
    pub fn parse(s: &str) -> Result<Option<Self>, ModelError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("forever") || t.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        let digits = t.strip_suffix('d').unwrap_or(t);
        digits
            .parse::<u32>()
            .ok()
            .and_then(|n| Self::new(n).ok())
            .map(Some)
            .ok_or_else(|| ModelError::BadRetention(s.to_owned()))
    }

    pub fn days(self) -> u32 {
        self.0
    }

    /// The first day kept on `today`.
    pub fn horizon(self, today: NaiveDate) -> NaiveDate {
        today
            .checked_sub_days(chrono::Days::new(u64::from(self.0 - 1)))
            .unwrap_or(NaiveDate::MIN)
    }
}

impl fmt::Display for RetentionDays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}d", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_days_and_forever_and_refuses_the_rest() {
        assert_eq!(
            RetentionDays::parse("400d").unwrap(),
            Some(RetentionDays(400))
        );
        assert_eq!(RetentionDays::parse("30").unwrap(), Some(RetentionDays(30)));
        assert_eq!(RetentionDays::parse("forever").unwrap(), None);
        for bad in ["0d", "-1d", "1.5d", "d", "", "12w", "365001d"] {
            assert!(RetentionDays::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_horizon_keeps_today_and_the_days_before_it() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let today = d("2026-03-10");
        assert_eq!(RetentionDays(1).horizon(today), today);
        assert_eq!(RetentionDays(10).horizon(today), d("2026-03-01"));
    }
}
