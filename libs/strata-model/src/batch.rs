use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

use crate::event::{EventId, EventTime, EventType, Properties, UserId, ValidEvent};
use crate::{ErrorCode, ModelError};

/// The configured bounds on one ingest request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    pub max_batch_events: usize,
    pub max_body_bytes: usize,
    pub max_properties_bytes: usize,
    pub max_future: Duration,
    pub max_past: Duration,
    /// Distinct late days (UTC days before yesterday) one batch may write
    /// into; events for further late days are rejected by index. Each new
    /// late day can cost a partition (DDL under a table lock) now and a
    /// file in the cold tier later, so one request may not create many.
    pub max_late_days: usize,
    /// Distinct event types one project may have (ADR-037): events of a
    /// new type past it are rejected by index. Each type is a rollup row
    /// per day and a group in top events, so this bounds their cost.
    pub max_event_types: u32,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_batch_events: 10_000,
            max_body_bytes: 10 * 1024 * 1024,
            max_properties_bytes: 32 * 1024,
            max_future: Duration::from_secs(24 * 3600),
            max_past: Duration::from_secs(3650 * 86_400),
            max_late_days: 31,
            max_event_types: 1_000,
        }
    }
}

/// Faults of the request as a whole; everything else is per event.
#[derive(Debug, Error)]
pub enum BatchError {
    #[error("request body is not valid JSON: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("request body must be a JSON object of the form {{\"events\": [...]}}: {0}")]
    WrongShape(#[source] serde_json::Error),
    #[error("batch holds {count} events, over the limit of {max}")]
    TooManyEvents { count: usize, max: usize },
}

impl crate::Classify for BatchError {
    fn kind(&self) -> crate::ErrorKind {
        match self {
            Self::TooManyEvents { .. } => crate::ErrorKind::TooLarge,
            Self::Malformed(_) | Self::WrongShape(_) => crate::ErrorKind::Invalid,
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) => ErrorCode::MalformedJson,
            Self::WrongShape(_) => ErrorCode::InvalidBody,
            Self::TooManyEvents { .. } => ErrorCode::BatchTooLarge,
        }
    }
}

/// One refused event: its position in the request and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Rejection {
    pub index: usize,
    pub error: String,
}

/// A batch after validation. `events` holds each event_id once (its first
/// valid occurrence); later copies in the same batch are counted in
/// `in_batch_duplicates`. `events.len() + in_batch_duplicates +
/// rejected.len()` is the number of events the client sent.
#[derive(Debug, Default)]
pub struct ParsedBatch {
    pub events: Vec<ValidEvent>,
    /// Each event's index in the request.
    pub indexes: Vec<usize>,
    pub in_batch_duplicates: usize,
    pub rejected: Vec<Rejection>,
}

impl ParsedBatch {
    /// Moves the events for which `refuse` gives a reason to `rejected`
    /// (kept in index order).
    pub fn reject_where(&mut self, refuse: impl Fn(&ValidEvent) -> Option<String>) {
        let mut kept = Vec::with_capacity(self.events.len());
        let mut kept_indexes = Vec::with_capacity(self.events.len());
        let mut refused = false;
        for (e, index) in std::mem::take(&mut self.events)
            .into_iter()
            .zip(std::mem::take(&mut self.indexes))
        {
            match refuse(&e) {
                Some(error) => {
                    self.rejected.push(Rejection { index, error });
                    refused = true;
                }
                None => {
                    kept.push(e);
                    kept_indexes.push(index);
                }
            }
        }
        self.events = kept;
        self.indexes = kept_indexes;
        if refused {
            self.rejected.sort_by_key(|r| r.index);
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBatch<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// Fields are taken raw so that a wrong type is reported with its field name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEvent<'a> {
    #[serde(borrow, default)]
    event_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    properties: Option<&'a RawValue>,
}

/// Parses and validates an (already decompressed) ingest body.
pub fn parse_batch(
    body: &[u8],
    limits: &IngestLimits,
    now: DateTime<Utc>,
) -> Result<ParsedBatch, BatchError> {
    let wire: WireBatch<'_> = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            BatchError::WrongShape(e)
        } else {
            BatchError::Malformed(e)
        }
    })?;
    if wire.events.len() > limits.max_batch_events {
        return Err(BatchError::TooManyEvents {
            count: wire.events.len(),
            max: limits.max_batch_events,
        });
    }
    let mut out = ParsedBatch {
        events: Vec::with_capacity(wire.events.len()),
        ..ParsedBatch::default()
    };
    let mut seen = HashSet::with_capacity(wire.events.len());
    let mut late_days = HashSet::new();
    let yesterday = now.date_naive() - chrono::Duration::days(1);
    for (index, raw) in wire.events.into_iter().enumerate() {
        let event = parse_event(raw, limits, now).and_then(|e| {
            let day = e.timestamp.as_datetime().date_naive();
            if day < yesterday && !late_days.contains(&day) {
                if late_days.len() >= limits.max_late_days {
                    return Err(ModelError::TooManyLateDays {
                        max: limits.max_late_days,
                    });
                }
                late_days.insert(day);
            }
            Ok(e)
        });
        match event {
            Ok(event) if seen.insert(event.event_id) => {
                out.events.push(event);
                out.indexes.push(index);
            }
            Ok(_) => out.in_batch_duplicates += 1,
            Err(e) => out.rejected.push(Rejection {
                index,
                error: e.to_string(),
            }),
        }
    }
    Ok(out)
}

fn parse_event(
    raw: &RawValue,
    limits: &IngestLimits,
    now: DateTime<Utc>,
) -> Result<ValidEvent, ModelError> {
    if !raw.get().starts_with('{') {
        return Err(ModelError::EventNotObject);
    }
    let wire: WireEvent<'_> =
        serde_json::from_str(raw.get()).map_err(|e| ModelError::EventShape(e.to_string()))?;
    let event_id = EventId::parse(&string_field("event_id", wire.event_id, "a UUID string")?)?;
    let user_id = UserId::parse(string_field("user_id", wire.user_id, "a string")?)?;
    let event_type = EventType::parse(string_field("event_type", wire.event_type, "a string")?)?;
    let timestamp = EventTime::parse(&string_field(
        "timestamp",
        wire.timestamp,
        "an RFC 3339 string",
    )?)?
    .check_window(now, limits.max_future, limits.max_past)?;
    let properties = match wire.properties {
        None => Properties::NONE,
        Some(raw) => Properties::parse(raw.get(), limits.max_properties_bytes)?,
    };
    Ok(ValidEvent {
        event_id,
        user_id,
        event_type,
        timestamp,
        properties,
    })
}

fn string_field(
    field: &'static str,
    raw: Option<&RawValue>,
    expected: &'static str,
) -> Result<String, ModelError> {
    let raw = raw.ok_or(ModelError::Missing { field })?;
    if raw.get() == "null" {
        return Err(ModelError::Missing { field });
    }
    serde_json::from_str::<String>(raw.get()).map_err(|_| ModelError::WrongType { field, expected })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn parse(body: &str) -> Result<ParsedBatch, BatchError> {
        parse_batch(body.as_bytes(), &IngestLimits::default(), now())
    }

    const ID1: &str = "5f0c3b9e-8a4e-4b8e-9a43-2f2b6a0f1c11";

    fn event(id: &str) -> String {
        format!(
            r#"{{"event_id":"{id}","user_id":"u1","event_type":"view","timestamp":"2026-11-20T11:00:00Z"}}"#
        )
    }

    #[test]
    fn whole_body_errors() {
        assert!(matches!(parse("{"), Err(BatchError::Malformed(_))));
        assert!(matches!(parse("[]"), Err(BatchError::WrongShape(_))));
        assert!(matches!(parse("{}"), Err(BatchError::WrongShape(_))));
        assert!(matches!(
            parse(r#"{"events": {}}"#),
            Err(BatchError::WrongShape(_))
        ));
        assert!(matches!(
            parse(r#"{"events": [], "extra": 1}"#),
            Err(BatchError::WrongShape(_))
        ));
        let limits = IngestLimits {
            max_batch_events: 1,
            ..IngestLimits::default()
        };
        let body = format!(r#"{{"events":[{},{}]}}"#, event(ID1), event(ID1));
        assert!(matches!(
            parse_batch(body.as_bytes(), &limits, now()).unwrap_err(),
            BatchError::TooManyEvents { count: 2, max: 1 }
        ));
    }

    #[test]
    fn late_days_per_batch_are_capped_and_repeats_of_a_day_are_free() {
        let limits = IngestLimits {
            max_late_days: 2,
            ..IngestLimits::default()
        };
        let at = |day: &str| {
            format!(
                r#"{{"event_id":"{}","user_id":"u","event_type":"v","timestamp":"{day}T10:00:00Z"}}"#,
                uuid::Uuid::new_v4()
            )
        };
        // now() is 2026-11-20: the 19th (yesterday) and 20th are not late.
        let days = [
            "2026-11-01",
            "2026-11-02",
            "2026-11-01",
            "2026-11-03",
            "2026-11-19",
            "2026-11-20",
        ];
        let body = format!(
            r#"{{"events":[{}]}}"#,
            days.iter().map(|d| at(d)).collect::<Vec<_>>().join(",")
        );
        let parsed = parse_batch(body.as_bytes(), &limits, now()).unwrap();
        assert_eq!(parsed.events.len(), 5);
        assert_eq!(parsed.rejected.len(), 1);
        assert_eq!(parsed.rejected[0].index, 3);
        assert!(parsed.rejected[0].error.contains("2 distinct days"));
    }

    #[test]
    fn per_event_errors_keep_good_events() {
        let body = format!(
            r#"{{"events":[{}, 5, {{"event_id":"x"}}, {{"event_id":7,"user_id":"u","event_type":"t","timestamp":"2026-11-20T11:00:00Z"}}, {{"event_id":"{ID1}","user_id":"u","event_type":"t","timestamp":"2026-11-20T11:00:00Z","bogus":1}}, {}]}}"#,
            event(ID1),
            event(ID1)
        );
        let b = parse(&body).unwrap();
        assert_eq!(b.events.len(), 1);
        assert_eq!(b.in_batch_duplicates, 1);
        let errors: Vec<_> = b
            .rejected
            .iter()
            .map(|r| (r.index, r.error.as_str()))
            .collect();
        assert_eq!(errors[0], (1, "event must be a JSON object"));
        assert_eq!(errors[1], (2, "event_id \"x\" is not a UUID"));
        assert_eq!(errors[2], (3, "event_id must be a UUID string"));
        assert_eq!(errors[3].0, 4);
        assert!(
            errors[3].1.contains("unknown field `bogus`"),
            "{}",
            errors[3].1
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let b = parse(r#"{"events":[{"event_id":"5f0c3b9e-8a4e-4b8e-9a43-2f2b6a0f1c11","user_id":"u","event_type":"t"}]}"#).unwrap();
        assert_eq!(b.rejected[0].error, "timestamp is required");
        let b = parse(r#"{"events":[{"event_id":null}]}"#).unwrap();
        assert_eq!(b.rejected[0].error, "event_id is required");
    }

    #[test]
    fn invalid_first_copy_does_not_shadow_valid_second() {
        let bad = format!(
            r#"{{"event_id":"{ID1}","user_id":"","event_type":"view","timestamp":"2026-11-20T11:00:00Z"}}"#
        );
        let body = format!(r#"{{"events":[{bad},{}]}}"#, event(ID1));
        let b = parse(&body).unwrap();
        assert_eq!(b.events.len(), 1);
        assert_eq!(b.rejected.len(), 1);
        assert_eq!(b.in_batch_duplicates, 0);
    }
}
