//! The wire format of a queued batch part (ADR-034): JSON, versioned, one
//! JetStream message per part. A batch's events are split into parts of at
//! most `max_bytes` of JSON each, so a 10 MiB request fits NATS's payload
//! limit (1 MiB by default).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use strata_model::{EventId, EventTime, EventType, ProjectId, Properties, UserId, ValidEvent};
use strata_store::QueuedPart;
use uuid::Uuid;

use crate::QueueError;

/// The only version this build writes and reads.
pub const VERSION: u32 = 1;

#[derive(Serialize)]
struct WirePart<'a> {
    v: u32,
    project: i64,
    batch_id: Uuid,
    part: u32,
    parts: u32,
    queued_at: DateTime<Utc>,
    counted_duplicates: u64,
    events: &'a [Box<RawValue>],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadEvent {
    event_id: String,
    user_id: String,
    event_type: String,
    timestamp: String,
    #[serde(default)]
    properties: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadPart {
    v: u32,
    project: i64,
    batch_id: Uuid,
    part: u32,
    parts: u32,
    queued_at: DateTime<Utc>,
    counted_duplicates: u64,
    events: Vec<ReadEvent>,
}

/// A batch to publish: its id, when it was accepted, and its valid events
/// (distinct ids), with the repeats the request held counted.
#[derive(Debug)]
pub struct OutgoingBatch<'a> {
    pub project: ProjectId,
    pub batch_id: Uuid,
    pub queued_at: DateTime<Utc>,
    pub counted_duplicates: u64,
    pub events: &'a [ValidEvent],
}

fn encode_event(e: &ValidEvent) -> Result<Box<RawValue>, QueueError> {
    e.to_wire()
        .and_then(|w| serde_json::value::to_raw_value(&w))
        .map_err(|err| QueueError::Internal(format!("encoding an event: {err}")))
}

/// The payloads of `batch`'s parts, in order; every part holds at most
/// `max_bytes` of events (and at least one event, so a batch with none is
/// one empty part: its status still becomes `applied`).
pub fn encode(batch: &OutgoingBatch<'_>, max_bytes: usize) -> Result<Vec<Vec<u8>>, QueueError> {
    let events = batch
        .events
        .iter()
        .map(encode_event)
        .collect::<Result<Vec<_>, _>>()?;
    let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, e) in events.iter().enumerate() {
        let len = e.get().len() + 1;
        if i > start && size + len > max_bytes {
            groups.push(start..i);
            (start, size) = (i, 0);
        }
        size += len;
    }
    groups.push(start..events.len());
    let parts = u32::try_from(groups.len())
        .map_err(|_| QueueError::Invalid("a batch of too many parts".into()))?;
    groups
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            serde_json::to_vec(&WirePart {
                v: VERSION,
                project: batch.project.0,
                batch_id: batch.batch_id,
                part: u32::try_from(i).unwrap_or(u32::MAX),
                parts,
                queued_at: batch.queued_at,
                counted_duplicates: if i == 0 { batch.counted_duplicates } else { 0 },
                events: &events[r],
            })
            .map_err(|err| QueueError::Internal(format!("encoding a part: {err}")))
        })
        .collect()
}

fn bad(what: &str, err: impl std::fmt::Display) -> QueueError {
    QueueError::Decode(format!("{what}: {err}"))
}

/// A part read back; every event is parsed again through the model's
/// checks (but not the time window: it was checked when the batch was
/// accepted, and draining later must not change the answer).
pub fn decode(payload: &[u8]) -> Result<(ProjectId, QueuedPart), QueueError> {
    let p: ReadPart = serde_json::from_slice(payload).map_err(|e| bad("not a batch part", e))?;
    if p.v != VERSION {
        return Err(QueueError::Decode(format!(
            "message version {} is not {VERSION}",
            p.v
        )));
    }
    if p.part >= p.parts {
        return Err(QueueError::Decode(format!(
            "part {} of {} parts",
            p.part, p.parts
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(p.events.len());
    let mut events = Vec::with_capacity(p.events.len());
    for e in p.events {
        let event = ValidEvent {
            event_id: EventId::parse(&e.event_id).map_err(|err| bad("event_id", err))?,
            user_id: UserId::parse(e.user_id).map_err(|err| bad("user_id", err))?,
            event_type: EventType::parse(e.event_type).map_err(|err| bad("event_type", err))?,
            timestamp: EventTime::parse(&e.timestamp).map_err(|err| bad("timestamp", err))?,
            properties: match e.properties {
                Some(raw) => Properties::parse(raw.get(), usize::MAX)
                    .map_err(|err| bad("properties", err))?,
                None => Properties::NONE,
            },
        };
        if !seen.insert(event.event_id.as_uuid()) {
            return Err(QueueError::Decode(format!(
                "event_id {} twice in one part",
                event.event_id.as_uuid()
            )));
        }
        events.push(event);
    }
    Ok((
        ProjectId(p.project),
        QueuedPart {
            batch_id: p.batch_id,
            part: p.part,
            parts: p.parts,
            queued_at: p.queued_at,
            counted_duplicates: p.counted_duplicates,
            events,
        },
    ))
}

/// `payload` without the events of `user`, when it is a batch part that
/// still holds other events; `None` when nothing would be left (or it is
/// not a batch part).
pub(crate) fn without_user(payload: &[u8], user: &str) -> Option<Vec<u8>> {
    let mut part: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let events = part.get_mut("events")?.as_array_mut()?;
    events.retain(|e| e.get("user_id").and_then(serde_json::Value::as_str) != Some(user));
    if events.is_empty() {
        return None;
    }
    serde_json::to_vec(&part).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_model::{Generator, GeneratorSpec};

    fn events(n: u32) -> Vec<ValidEvent> {
        let mut g = Generator::new(GeneratorSpec {
            days: 1,
            last_day: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
            users: 50,
            events_per_day: n,
            seed: 7,
        });
        g.day(0, chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap())
    }

    fn batch(events: &[ValidEvent]) -> OutgoingBatch<'_> {
        OutgoingBatch {
            project: ProjectId(3),
            batch_id: Uuid::from_u128(9),
            queued_at: DateTime::from_timestamp(1_790_000_000, 123_000).unwrap(),
            counted_duplicates: 2,
            events,
        }
    }

    #[test]
    fn a_users_events_leave_a_part_and_an_emptied_part_is_none() {
        let part = br#"{"v":1,"events":[{"user_id":"a","n":1},{"user_id":"b","n":2}]}"#;
        let rest: serde_json::Value =
            serde_json::from_slice(&without_user(part, "a").unwrap()).unwrap();
        assert_eq!(
            rest["events"],
            serde_json::json!([{"user_id": "b", "n": 2}])
        );
        assert_eq!(
            without_user(br#"{"v":1,"events":[{"user_id":"a"}]}"#, "a"),
            None
        );
        assert_eq!(without_user(b"not json", "a"), None);
    }

    #[test]
    fn parts_round_trip_every_event_in_order() {
        let evs = events(300);
        let parts = encode(&batch(&evs), 16 * 1024).unwrap();
        assert!(
            parts.len() > 2,
            "300 events of ~400 bytes need several parts"
        );
        let mut back = Vec::new();
        for (i, payload) in parts.iter().enumerate() {
            assert!(
                payload.len() < 16 * 1024 + 512,
                "part {i} is {} bytes",
                payload.len()
            );
            let (project, part) = decode(payload).unwrap();
            assert_eq!(project, ProjectId(3));
            assert_eq!(part.part as usize, i);
            assert_eq!(part.parts as usize, parts.len());
            assert_eq!(part.counted_duplicates, if i == 0 { 2 } else { 0 });
            back.extend(part.events);
        }
        assert_eq!(back, evs);
    }

    #[test]
    fn an_empty_batch_is_one_empty_part() {
        let parts = encode(&batch(&[]), 1024).unwrap();
        assert_eq!(parts.len(), 1);
        let (_, part) = decode(&parts[0]).unwrap();
        assert_eq!((part.part, part.parts, part.events.len()), (0, 1, 0));
    }

    #[test]
    fn garbage_and_bad_events_are_decode_errors() {
        assert!(matches!(decode(b"not json"), Err(QueueError::Decode(_))));
        let evs = events(2);
        let good = String::from_utf8(encode(&batch(&evs), 1 << 20).unwrap().remove(0)).unwrap();
        let bad_id = good.replacen(&evs[0].event_id.as_uuid().to_string(), "nope", 1);
        assert!(matches!(
            decode(bad_id.as_bytes()),
            Err(QueueError::Decode(_))
        ));
        let v2 = good.replacen("\"v\":1", "\"v\":2", 1);
        assert!(matches!(decode(v2.as_bytes()), Err(QueueError::Decode(_))));
    }
}
