//! Funnel request parameters: the steps (event types in order) and the
//! conversion window.

use std::time::Duration;

use crate::{EventType, ModelError};

/// The fewest and most steps a funnel takes.
pub const MIN_STEPS: usize = 2;
pub const MAX_STEPS: usize = 10;

/// The steps of a funnel: 2 to 10 event types, in order (a type may come
/// back at a later step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelSteps(Vec<EventType>);

impl FunnelSteps {
    /// Parses `steps`, the event types separated by commas (`a,b,c`); a type
    /// holding a comma cannot be a step.
    pub fn parse(raw: &str) -> Result<Self, ModelError> {
        let bad = |reason: String| ModelError::BadSteps {
            value: crate::error::truncate_for_message(raw),
            reason,
        };
        let parts: Vec<&str> = raw.split(',').collect();
        if !(MIN_STEPS..=MAX_STEPS).contains(&parts.len()) {
            return Err(bad(format!(
                "a funnel has {MIN_STEPS} to {MAX_STEPS} steps, event types separated by commas; this names {}",
                parts.len()
            )));
        }
        parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| EventType::parse(p).map_err(|e| bad(format!("step {}: {e}", i + 1))))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn types(&self) -> &[EventType] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The distinct event types named, each with the bit set of the steps
    /// it is (bit i: step i+1).
    pub fn masks(&self) -> Vec<(&str, u16)> {
        let mut out: Vec<(&str, u16)> = Vec::new();
        for (i, t) in self.0.iter().enumerate() {
            match out.iter_mut().find(|(name, _)| *name == t.as_str()) {
                Some((_, m)) => *m |= 1 << i,
                None => out.push((t.as_str(), 1 << i)),
            }
        }
        out
    }
}

/// The longest time from a funnel's first step to its last: 1 minute to
/// 90 days, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunnelWindow(Duration);

impl FunnelWindow {
    pub const MIN_SECONDS: u32 = 60;
    pub const MAX_SECONDS: u32 = 90 * 86_400;
    /// The window when a request names none: one day.
    pub const DEFAULT: Self = Self(Duration::from_secs(86_400));

    /// Parses a number of seconds (`3600`, `604800`).
    pub fn parse(raw: &str) -> Result<Self, ModelError> {
        let s = crate::parse_bounded("window", Some(raw), 0, Self::MIN_SECONDS, Self::MAX_SECONDS)?;
        Ok(Self(Duration::from_secs(u64::from(s))))
    }

    pub fn seconds(self) -> u64 {
        self.0.as_secs()
    }

    pub fn micros(self) -> i64 {
        self.0.as_micros() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_in_order_and_refuse_clearly() {
        let s = FunnelSteps::parse("view,buy,view").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.masks(), vec![("view", 0b101), ("buy", 0b010)]);
        for (raw, needle) in [
            ("view", "this names 1"),
            ("a,b,c,d,e,f,g,h,i,j,k", "this names 11"),
            ("view,,buy", "step 2: event_type must not be empty"),
            (&format!("a,{}", "x".repeat(129)), "step 2"),
        ] {
            let e = FunnelSteps::parse(raw).unwrap_err().to_string();
            assert!(e.contains(needle), "{e:?} lacks {needle:?}");
        }
    }

    #[test]
    fn windows_are_a_minute_to_ninety_days_in_seconds() {
        assert_eq!(FunnelWindow::parse("604800").unwrap().seconds(), 7 * 86_400);
        assert_eq!(FunnelWindow::parse("60").unwrap().seconds(), 60);
        assert_eq!(
            FunnelWindow::parse("7776000").unwrap().seconds(),
            90 * 86_400
        );
        for bad in ["59", "7776001", "1.5", "", "7d", "-60"] {
            let e = FunnelWindow::parse(bad).unwrap_err().to_string();
            assert!(e.contains("between 60 and 7776000"), "{bad}: {e}");
        }
    }
}
