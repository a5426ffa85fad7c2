use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use uuid::Uuid;

use crate::ModelError;
use crate::error::truncate_for_message;

/// Longest `user_id`, in bytes of UTF-8.
pub const MAX_USER_ID_BYTES: usize = 256;
/// Longest `event_type`, in bytes of UTF-8.
pub const MAX_EVENT_TYPE_BYTES: usize = 128;

/// The client's idempotency key for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Uuid);

impl EventId {
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| ModelError::BadUuid {
                value: truncate_for_message(s),
            })
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for EventId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

/// Checks shared by the text fields that PostgreSQL stores as `text`.
fn bounded_text(field: &'static str, s: String, max: usize) -> Result<String, ModelError> {
    if s.is_empty() {
        return Err(ModelError::Empty { field });
    }
    if s.len() > max {
        return Err(ModelError::TooLong {
            field,
            len: s.len(),
            max,
        });
    }
    // PostgreSQL `text` cannot hold U+0000; refusing it here keeps one bad
    // event from failing the whole batch's insert.
    if s.contains('\0') {
        return Err(ModelError::ContainsNul { field });
    }
    Ok(s)
}

/// Who did it: 1 to 256 bytes, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    pub fn parse(s: impl Into<String>) -> Result<Self, ModelError> {
        bounded_text("user_id", s.into(), MAX_USER_ID_BYTES).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// What happened: 1 to 128 bytes, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(String);

impl EventType {
    pub fn parse(s: impl Into<String>) -> Result<Self, ModelError> {
        bounded_text("event_type", s.into(), MAX_EVENT_TYPE_BYTES).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// When it happened: a UTC instant with microsecond precision (PostgreSQL's
/// and Parquet's `TIMESTAMP(MICROS)`); finer digits are truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventTime(DateTime<Utc>);

impl EventTime {
    /// Parses RFC 3339 with a mandatory offset (`Z` or `±hh:mm`).
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        match DateTime::parse_from_rfc3339(s) {
            Ok(dt) => Self::from_datetime(dt.with_timezone(&Utc)).ok_or_else(|| {
                ModelError::BadTimestamp {
                    value: truncate_for_message(s),
                }
            }),
            Err(_) if looks_like_local_datetime(s) => Err(ModelError::NoOffset {
                value: truncate_for_message(s),
            }),
            Err(_) => Err(ModelError::BadTimestamp {
                value: truncate_for_message(s),
            }),
        }
    }

    /// Truncates to microseconds (a leap second rolls into the next second,
    /// as PostgreSQL would).
    pub fn from_datetime(dt: DateTime<Utc>) -> Option<Self> {
        DateTime::from_timestamp_micros(dt.timestamp_micros()).map(Self)
    }

    /// Refuses instants further than the configured bounds from `now`.
    pub fn check_window(
        self,
        now: DateTime<Utc>,
        max_future: Duration,
        max_past: Duration,
    ) -> Result<Self, ModelError> {
        let value = || self.0.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let future = chrono::Duration::from_std(max_future).unwrap_or(chrono::Duration::MAX);
        let past = chrono::Duration::from_std(max_past).unwrap_or(chrono::Duration::MAX);
        if now
            .checked_add_signed(future)
            .is_some_and(|lim| self.0 > lim)
        {
            return Err(ModelError::TooFarInFuture {
                value: value(),
                limit: human_duration(max_future),
            });
        }
        if now.checked_sub_signed(past).is_some_and(|lim| self.0 < lim) {
            return Err(ModelError::TooFarInPast {
                value: value(),
                limit: human_duration(max_past),
            });
        }
        Ok(self)
    }

    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }
}

/// `3650 days`, `24h`, `90m`, `45s`: how the limits are configured.
fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 2 * 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn looks_like_local_datetime(s: &str) -> bool {
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .any(|f| NaiveDateTime::parse_from_str(s, f).is_ok())
}

/// Free-form attributes: a JSON object of bounded size, stored as `jsonb`
/// and archived as a JSON string. `None` when the client sent none (or null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Properties(Option<String>);

impl Properties {
    pub const NONE: Self = Self(None);

    /// `raw` is the JSON text exactly as the client sent it.
    pub fn parse(raw: &str, max_bytes: usize) -> Result<Self, ModelError> {
        if raw.len() > max_bytes {
            return Err(ModelError::PropertiesTooLarge {
                len: raw.len(),
                max: max_bytes,
            });
        }
        // Well-formedness only: numbers are not converted (a float parser
        // would refuse 1e400, which `jsonb` stores, and accept 1e-20000,
        // which it refuses); `pgjson::check` judges them as PostgreSQL will.
        serde_json::from_str::<serde::de::IgnoredAny>(raw)
            .map_err(|e| ModelError::EventShape(format!("properties: {e}")))?;
        let text = raw.trim();
        if text == "null" {
            return Ok(Self::NONE);
        }
        if !text.starts_with('{') {
            return Err(ModelError::PropertiesNotObject);
        }
        crate::pgjson::check(text, "properties")?;
        Ok(Self(Some(text.to_owned())))
    }

    pub fn as_json(&self) -> Option<&str> {
        self.0.as_deref()
    }

    pub fn into_json(self) -> Option<String> {
        self.0
    }
}

/// One event that passed every check, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidEvent {
    pub event_id: EventId,
    pub user_id: UserId,
    pub event_type: EventType,
    pub timestamp: EventTime,
    pub properties: Properties,
}

/// A [`ValidEvent`] as a client sends it in `POST /v1/events`, borrowed:
/// what generated loads and queued messages (ADR-034) write. The
/// timestamp is RFC 3339 in UTC with microseconds, which parses back to the
/// same instant.
#[derive(Debug, serde::Serialize)]
pub struct WireEvent<'a> {
    event_id: Uuid,
    user_id: &'a str,
    event_type: &'a str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<&'a serde_json::value::RawValue>,
}

impl ValidEvent {
    /// This event in the wire format (fails only if the stored properties
    /// were not JSON, which [`Properties::parse`] rules out).
    pub fn to_wire(&self) -> Result<WireEvent<'_>, serde_json::Error> {
        Ok(WireEvent {
            event_id: self.event_id.as_uuid(),
            user_id: self.user_id.as_str(),
            event_type: self.event_type.as_str(),
            timestamp: self
                .timestamp
                .as_datetime()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            properties: self
                .properties
                .as_json()
                .map(serde_json::from_str)
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_bounds() {
        assert!(UserId::parse("u").is_ok());
        assert!(UserId::parse("x".repeat(256)).is_ok());
        assert_eq!(
            UserId::parse("x".repeat(257)),
            Err(ModelError::TooLong {
                field: "user_id",
                len: 257,
                max: 256
            })
        );
        assert_eq!(
            UserId::parse(""),
            Err(ModelError::Empty { field: "user_id" })
        );
        assert_eq!(
            UserId::parse("a\0b"),
            Err(ModelError::ContainsNul { field: "user_id" })
        );
        // The limit is in bytes, not characters.
        assert!(UserId::parse("é".repeat(129)).is_err());
    }

    #[test]
    fn event_type_bounds() {
        assert!(EventType::parse("x".repeat(128)).is_ok());
        assert!(EventType::parse("x".repeat(129)).is_err());
        assert!(EventType::parse("").is_err());
    }

    #[test]
    fn timestamps() {
        let t = EventTime::parse("2026-11-20T12:00:00.123456789+02:00").unwrap();
        assert_eq!(
            t.as_datetime().to_rfc3339(),
            "2026-11-20T10:00:00.123456+00:00"
        );
        assert!(matches!(
            EventTime::parse("2026-11-20T12:00:00"),
            Err(ModelError::NoOffset { .. })
        ));
        assert!(matches!(
            EventTime::parse("yesterday"),
            Err(ModelError::BadTimestamp { .. })
        ));
        assert!(matches!(
            EventTime::parse("2026-13-20T12:00:00Z"),
            Err(ModelError::BadTimestamp { .. })
        ));
    }

    #[test]
    fn timestamp_window() {
        let now = EventTime::parse("2026-11-20T00:00:00Z")
            .unwrap()
            .as_datetime();
        let day = Duration::from_secs(86_400);
        let ok = EventTime::parse("2026-11-20T23:59:59Z").unwrap();
        assert!(ok.check_window(now, day, day).is_ok());
        let future = EventTime::parse("2026-11-21T00:00:01Z").unwrap();
        assert!(matches!(
            future.check_window(now, day, day),
            Err(ModelError::TooFarInFuture { .. })
        ));
        let past = EventTime::parse("2026-11-18T23:59:59Z").unwrap();
        assert_eq!(
            past.check_window(now, day, day).unwrap_err().to_string(),
            "timestamp 2026-11-18T23:59:59Z is older than the 24h limit"
        );
        assert_eq!(
            future
                .check_window(now, Duration::from_secs(7200), day)
                .unwrap_err()
                .to_string(),
            "timestamp 2026-11-21T00:00:01Z is more than 2h in the future"
        );
    }

    #[test]
    fn properties() {
        assert_eq!(Properties::parse("null", 100), Ok(Properties::NONE));
        assert_eq!(
            Properties::parse(r#"{"a":1}"#, 100).unwrap().as_json(),
            Some(r#"{"a":1}"#)
        );
        assert_eq!(
            Properties::parse("[1]", 100),
            Err(ModelError::PropertiesNotObject)
        );
        assert!(matches!(
            Properties::parse(r#"{"a":"0123456789"}"#, 10),
            Err(ModelError::PropertiesTooLarge { .. })
        ));
        assert_eq!(
            Properties::parse(r#"{"a":{"b":["\u0000"]}}"#, 100),
            Err(ModelError::ContainsNul {
                field: "properties"
            })
        );
    }

    #[test]
    fn uuid() {
        assert!(EventId::parse("5f0c3b9e-8a4e-4b8e-9a43-2f2b6a0f1c11").is_ok());
        assert!(matches!(
            EventId::parse("not-a-uuid"),
            Err(ModelError::BadUuid { .. })
        ));
    }
}
