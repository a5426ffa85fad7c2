//! New events go into `events` with one binary `COPY … FROM STDIN`: the
//! rows are encoded here, in PostgreSQL's binary copy format, into one
//! buffer sent in one go. Against `INSERT … SELECT FROM unnest(arrays)` this
//! skips building and unpacking seven arrays, and lets PostgreSQL insert in
//! multi-row batches per partition (docs/BENCHMARKS.md has the measurement).

use chrono::{DateTime, Utc};
use strata_model::ValidEvent;

/// The statement the buffer of [`encode_events`] is sent to.
pub const COPY_EVENTS: &str = "COPY events (project_id, event_id, user_id, event_type, ts, properties, received_at) FROM STDIN (FORMAT binary)";

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

fn pg_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros() - PG_EPOCH_MICROS
}

fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
    // Every field is bounded far below 2 GiB (text by the model's limits).
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// Appends the binary COPY stream (header, one tuple per event, trailer)
/// of `events` for `project`, all received at `received_at`, to `buf`.
pub fn encode_events<'a>(
    project: i64,
    events: impl IntoIterator<Item = &'a ValidEvent>,
    received_at: DateTime<Utc>,
    buf: &mut Vec<u8>,
) {
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
    buf.extend_from_slice(&0i32.to_be_bytes()); // no header extension
    let received = pg_micros(received_at).to_be_bytes();
    for e in events {
        buf.extend_from_slice(&7i16.to_be_bytes());
        field(buf, &project.to_be_bytes());
        field(buf, e.event_id.as_uuid().as_bytes());
        field(buf, e.user_id.as_str().as_bytes());
        field(buf, e.event_type.as_str().as_bytes());
        field(buf, &pg_micros(e.timestamp.as_datetime()).to_be_bytes());
        match e.properties.as_json() {
            // jsonb's binary form: a version byte, then the JSON text.
            Some(json) => {
                buf.extend_from_slice(&(json.len() as i32 + 1).to_be_bytes());
                buf.push(1);
                buf.extend_from_slice(json.as_bytes());
            }
            None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
        }
        field(buf, &received);
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_model::{EventId, EventTime, EventType, Properties, UserId};

    #[test]
    fn encodes_header_tuples_and_trailer() {
        let at = DateTime::parse_from_rfc3339("2000-01-01T00:00:01Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = ValidEvent {
            event_id: EventId::parse("00000000-0000-0000-0000-000000000001").unwrap(),
            user_id: UserId::parse("ü".to_owned()).unwrap(),
            event_type: EventType::parse("x").unwrap(),
            timestamp: EventTime::from_datetime(at).unwrap(),
            properties: Properties::parse(r#"{"a":1}"#, 100).unwrap(),
        };
        let mut buf = Vec::new();
        encode_events(7, [&e], at, &mut buf);
        let mut want: Vec<u8> = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        want.extend([0, 7]);
        want.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        want.extend([0, 0, 0, 16]);
        want.extend([0; 15]);
        want.push(1);
        want.extend([0, 0, 0, 2, 0xc3, 0xbc]);
        want.extend([0, 0, 0, 1, b'x']);
        want.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40]); // 1 s
        want.extend([0, 0, 0, 8, 1]);
        want.extend(br#"{"a":1}"#);
        want.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40]);
        want.extend([0xff, 0xff]);
        assert_eq!(buf, want);
    }
}
