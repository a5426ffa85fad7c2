//! The benchmark's data: generated events (see `strata_model::Generator`)
//! as the JSON bodies a client sends, and the same rows as the CSV that the
//! `psql \copy` baseline loads.

use std::io::Write;

use bytes::Bytes;
use chrono::NaiveDate;
use serde::Serialize;
use strata_model::{Generator, GeneratorSpec, ValidEvent};

use crate::error::Result;

/// One ingest request body and the number of events in it.
#[derive(Debug, Clone)]
pub struct Body {
    pub bytes: Bytes,
    pub events: u32,
}

/// Events as a client sends them.
#[derive(Debug, Default)]
pub struct Load {
    pub bodies: Vec<Body>,
    pub events: u64,
}

impl Load {
    /// Appends `events` as request bodies of `batch` events each.
    pub fn push(&mut self, events: &[ValidEvent], batch: usize) -> Result<()> {
        for chunk in events.chunks(batch.max(1)) {
            self.bodies.push(Body {
                bytes: Bytes::from(ingest_body(chunk)?),
                events: chunk.len() as u32,
            });
            self.events += chunk.len() as u64;
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct WireBatch<'a> {
    events: Vec<strata_model::WireEvent<'a>>,
}

/// The `{"events": [...]}` body a client would send for `events`.
pub fn ingest_body(events: &[ValidEvent]) -> Result<Vec<u8>> {
    let list = events
        .iter()
        .map(ValidEvent::to_wire)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(serde_json::to_vec(&WireBatch { events: list })?)
}

/// The CSV columns, in order: what `\copy … (CSV_COLUMNS)` loads.
pub const CSV_COLUMNS: &str = "project_id, event_id, user_id, event_type, ts, properties";

/// `events` as CSV rows of `project`; timestamps as
/// `YYYY-MM-DD HH:MM:SS.ffffff+00`, which PostgreSQL and DuckDB both read.
pub fn write_csv(events: &[ValidEvent], project: i64, out: &mut impl Write) -> Result<()> {
    for e in events {
        write!(
            out,
            "{project},{},{},{},{},",
            e.event_id.as_uuid(),
            csv_field(e.user_id.as_str()),
            csv_field(e.event_type.as_str()),
            e.timestamp.as_datetime().format("%Y-%m-%d %H:%M:%S%.6f+00"),
        )?;
        if let Some(p) = e.properties.as_json() {
            out.write_all(csv_field(p).as_bytes())?;
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The events of `days` days ending with `last_day`, `per_day` a day, over
/// a population of `users` (see `strata_model::Generator`).
pub fn generator(days: u32, last_day: NaiveDate, users: u32, per_day: u32, seed: u64) -> Generator {
    Generator::new(GeneratorSpec {
        days,
        last_day,
        users,
        events_per_day: per_day,
        seed,
    })
}

/// `n` realistic events of today (for the micro-benchmarks).
pub fn events(n: u32) -> Vec<ValidEvent> {
    let today = chrono::Utc::now().date_naive();
    generator(1, today, 5_000, n, 7).day(0, today)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_model::{IngestLimits, parse_batch};

    #[test]
    fn bodies_parse_back_and_csv_quotes_properties() {
        let events = events(50);
        let body = ingest_body(&events).unwrap();
        let parsed = parse_batch(&body, &IngestLimits::default(), chrono::Utc::now()).unwrap();
        assert_eq!(parsed.events, events);
        let mut csv = Vec::new();
        write_csv(&events[..1], 3, &mut csv).unwrap();
        let line = String::from_utf8(csv).unwrap();
        assert!(line.starts_with(&format!("3,{},", events[0].event_id.as_uuid())));
        assert!(line.contains("+00,\"{\"\"path\"\""), "{line}");
        assert!(line.ends_with("}\"\n"), "{line}");
    }
}
