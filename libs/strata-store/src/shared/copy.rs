//! The events' binary COPY format, both ways.
//!
//! In: new events go into `events` with one binary `COPY … FROM STDIN`,
//! encoded here into one buffer sent in one go, instead of
//! `INSERT … SELECT FROM unnest(arrays)`. Measured: no throughput change
//! within noise (PostgreSQL's per-event work is elsewhere), but less work in
//! the api (docs/BENCHMARKS.md).
//!
//! Out: the archiver reads a chunk with one binary `COPY … TO STDOUT`,
//! parsed here row by row with no per-row protocol message or decode step;
//! this halved PostgreSQL's CPU on a big chunk (docs/BENCHMARKS.md).

use chrono::{DateTime, Utc};
use strata_model::ValidEvent;
use uuid::Uuid;

use crate::StoreError;

/// The statement the buffer of [`encode_events`] is sent to.
/// `received_at` is left to its default, the ingest transaction's `now()`:
/// the database's clock, which the archiver compares arrivals with.
pub const COPY_EVENTS: &str = "COPY events (project_id, event_id, user_id, event_type, ts, properties) FROM STDIN (FORMAT binary)";

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// What every binary COPY stream starts with.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

fn pg_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros() - PG_EPOCH_MICROS
}

fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
    // Every field is bounded far below 2 GiB (text by the model's limits).
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// Appends the binary COPY stream (header, one tuple per event, trailer)
/// of `events` for `project` to `buf`.
pub fn encode_events<'a>(
    project: i64,
    events: impl IntoIterator<Item = &'a ValidEvent>,
    buf: &mut Vec<u8>,
) {
    buf.extend_from_slice(SIGNATURE);
    buf.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
    buf.extend_from_slice(&0i32.to_be_bytes()); // no header extension
    for e in events {
        buf.extend_from_slice(&6i16.to_be_bytes());
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
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
}

/// The statement that streams the events in `[start, end)`, ordered by
/// project and time, in the column order [`CopyRows`] reads.
pub(crate) fn copy_chunk_sql(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let lit = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S%.6f+00");
    format!(
        "COPY (SELECT project_id, event_id, user_id, event_type, ts, properties::text, received_at
                 FROM events WHERE ts >= '{}' AND ts < '{}'
                ORDER BY project_id, ts) TO STDOUT (FORMAT binary)",
        lit(start),
        lit(end)
    )
}

/// One row, borrowing its text from the parser's buffer.
#[derive(Debug)]
pub struct EventRow<'a> {
    pub project_id: i64,
    pub event_id: Uuid,
    pub user_id: &'a str,
    pub event_type: &'a str,
    pub ts_micros: i64,
    pub properties: Option<&'a str>,
    pub received_micros: i64,
}

/// Parses a binary COPY stream of [`copy_chunk_sql`] fed in arbitrary
/// pieces.
#[derive(Debug, Default)]
pub struct CopyRows {
    buf: Vec<u8>,
    pos: usize,
    header: bool,
    done: bool,
    /// A complete row found by [`CopyRows::has_row`]: its fields' spans
    /// and where the next row starts.
    pending: Option<(Spans, usize)>,
}

/// (offset, length) of each field's bytes in the buffer; `None`: NULL.
type Spans = [Option<(usize, usize)>; 7];

fn bad(what: impl std::fmt::Display) -> StoreError {
    StoreError::Unexpected(format!("unexpected COPY data from PostgreSQL: {what}"))
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_i64(b: &[u8], what: &str) -> Result<i64, StoreError> {
    let a: [u8; 8] = b
        .try_into()
        .map_err(|_| bad(format!("{what} is not 8 bytes")))?;
    Ok(i64::from_be_bytes(a))
}

fn text<'a>(b: &'a [u8], what: &str) -> Result<&'a str, StoreError> {
    std::str::from_utf8(b).map_err(|e| bad(format!("{what} is not UTF-8: {e}")))
}

impl CopyRows {
    /// Adds the next piece of the stream.
    pub fn extend(&mut self, piece: &[u8]) {
        if self.pos > 0 && self.pending.is_none() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(piece);
    }

    /// True once the trailer has been read: the stream was complete.
    pub fn finished(&self) -> bool {
        self.done
    }

    /// True when a complete row is buffered ([`CopyRows::next_row`] will
    /// return it).
    pub fn has_row(&mut self) -> Result<bool, StoreError> {
        if self.pending.is_none() {
            self.pending = self.scan()?;
        }
        Ok(self.pending.is_some())
    }

    /// Finds the next complete row without consuming it (the header and
    /// the trailer are consumed).
    fn scan(&mut self) -> Result<Option<(Spans, usize)>, StoreError> {
        if self.done {
            return Ok(None);
        }
        if !self.header {
            let b = &self.buf[self.pos..];
            if b.len() < 19 {
                return Ok(None);
            }
            if &b[..11] != SIGNATURE {
                return Err(bad("no binary COPY signature"));
            }
            let ext = be_i32(&b[15..19]).max(0) as usize;
            if b.len() < 19 + ext {
                return Ok(None);
            }
            self.pos += 19 + ext;
            self.header = true;
        }
        let start = self.pos;
        let b = &self.buf[start..];
        if b.len() < 2 {
            return Ok(None);
        }
        let fields = i16::from_be_bytes([b[0], b[1]]);
        if fields == -1 {
            self.done = true;
            self.pos += 2;
            return Ok(None);
        }
        if fields != 7 {
            return Err(bad(format!("{fields} fields in a row, expected 7")));
        }
        let mut spans: Spans = [None; 7];
        let mut off = 2;
        for span in &mut spans {
            if b.len() < off + 4 {
                return Ok(None);
            }
            let len = be_i32(&b[off..off + 4]);
            off += 4;
            if len >= 0 {
                let len = len as usize;
                if b.len() < off + len {
                    return Ok(None);
                }
                *span = Some((start + off, len));
                off += len;
            }
        }
        Ok(Some((spans, start + off)))
    }

    /// The next complete row, or `None` when more data is needed (or the
    /// trailer was reached).
    pub fn next_row(&mut self) -> Result<Option<EventRow<'_>>, StoreError> {
        if !self.has_row()? {
            return Ok(None);
        }
        let Some((spans, next)) = self.pending.take() else {
            return Ok(None);
        };
        self.pos = next;
        let buf = &self.buf;
        let field = |i: usize, what: &str| -> Result<&[u8], StoreError> {
            let (at, len) = spans[i].ok_or_else(|| bad(format!("{what} is NULL")))?;
            Ok(&buf[at..at + len])
        };
        Ok(Some(EventRow {
            project_id: be_i64(field(0, "project_id")?, "project_id")?,
            event_id: Uuid::from_slice(field(1, "event_id")?).map_err(bad)?,
            user_id: text(field(2, "user_id")?, "user_id")?,
            event_type: text(field(3, "event_type")?, "event_type")?,
            ts_micros: be_i64(field(4, "ts")?, "ts")? + PG_EPOCH_MICROS,
            properties: match spans[5] {
                Some((at, len)) => Some(text(&buf[at..at + len], "properties")?),
                None => None,
            },
            received_micros: be_i64(field(6, "received_at")?, "received_at")? + PG_EPOCH_MICROS,
        }))
    }
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
        encode_events(7, [&e], &mut buf);
        let mut want: Vec<u8> = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        want.extend([0, 6]);
        want.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        want.extend([0, 0, 0, 16]);
        want.extend([0; 15]);
        want.push(1);
        want.extend([0, 0, 0, 2, 0xc3, 0xbc]);
        want.extend([0, 0, 0, 1, b'x']);
        want.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40]); // 1 s
        want.extend([0, 0, 0, 8, 1]);
        want.extend(br#"{"a":1}"#);
        want.extend([0xff, 0xff]);
        assert_eq!(buf, want);
    }

    fn field(out: &mut Vec<u8>, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                out.extend((b.len() as i32).to_be_bytes());
                out.extend(b);
            }
            None => out.extend((-1i32).to_be_bytes()),
        }
    }

    fn stream(rows: usize) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend([0u8; 8]);
        for i in 0..rows {
            out.extend(7i16.to_be_bytes());
            field(&mut out, Some(&(i as i64).to_be_bytes()));
            field(&mut out, Some(Uuid::from_u128(i as u128).as_bytes()));
            field(&mut out, Some(format!("user_{i}").as_bytes()));
            field(&mut out, Some(b"view"));
            field(&mut out, Some(&1_000_000i64.to_be_bytes()));
            field(
                &mut out,
                if i % 2 == 0 {
                    Some(br#"{"a":1}"#)
                } else {
                    None
                },
            );
            field(&mut out, Some(&0i64.to_be_bytes()));
        }
        out.extend((-1i16).to_be_bytes());
        out
    }

    #[test]
    fn rows_parse_whatever_the_piece_boundaries() {
        let data = stream(5);
        for piece in [1, 3, 7, 64, data.len()] {
            let mut p = CopyRows::default();
            let mut got = Vec::new();
            for chunk in data.chunks(piece) {
                p.extend(chunk);
                while let Some(r) = p.next_row().unwrap() {
                    got.push((
                        r.project_id,
                        r.event_id,
                        r.user_id.to_owned(),
                        r.properties.map(str::to_owned),
                        r.ts_micros,
                    ));
                }
            }
            assert!(p.finished(), "piece {piece}");
            assert_eq!(got.len(), 5);
            assert_eq!(got[3].0, 3);
            assert_eq!(got[3].1, Uuid::from_u128(3));
            assert_eq!(got[3].2, "user_3");
            assert_eq!(got[2].3.as_deref(), Some(r#"{"a":1}"#));
            assert_eq!(got[3].3, None);
            assert_eq!(got[0].4, PG_EPOCH_MICROS + 1_000_000);
        }
    }

    #[test]
    fn a_truncated_stream_is_not_finished_and_garbage_is_an_error() {
        let data = stream(2);
        let mut p = CopyRows::default();
        p.extend(&data[..data.len() - 2]);
        while p.next_row().unwrap().is_some() {}
        assert!(!p.finished());
        let mut p = CopyRows::default();
        p.extend(b"not a copy stream at all");
        assert!(p.next_row().is_err());
    }
}
