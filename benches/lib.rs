//! Shared inputs for Strata's benchmarks: generated events as the ingest
//! JSON a client sends.

use strata_model::{Generator, GeneratorSpec, ValidEvent};

/// `n` realistic events of one day (see `strata_model::Generator`).
pub fn events(n: u32) -> Vec<ValidEvent> {
    let spec = GeneratorSpec {
        days: 1,
        last_day: chrono::Utc::now().date_naive(),
        users: 5_000,
        events_per_day: n,
        seed: 7,
    };
    let mut g = Generator::new(spec.clone());
    g.day(0, spec.last_day)
}

/// The `{"events": [...]}` body a client would send for `events`.
pub fn ingest_body(events: &[ValidEvent]) -> Vec<u8> {
    let list: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            let props: serde_json::Value =
                e.properties.as_json().map_or(serde_json::Value::Null, |p| {
                    serde_json::from_str(p).unwrap_or(serde_json::Value::Null)
                });
            serde_json::json!({
                "event_id": e.event_id.as_uuid().to_string(),
                "user_id": e.user_id.as_str(),
                "event_type": e.event_type.as_str(),
                "timestamp": e.timestamp.as_datetime().to_rfc3339(),
                "properties": props,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "events": list })).unwrap_or_default()
}
