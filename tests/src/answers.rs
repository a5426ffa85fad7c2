//! The numbers of a stats answer, as the oracle (`oracle.rs`) returns them.

use chrono::NaiveDate;
use serde_json::Value;

/// `(date, users)` of a DAU answer.
pub fn dau_of(body: &Value) -> Vec<(NaiveDate, u64)> {
    body["days"]
        .as_array()
        .unwrap_or_else(|| panic!("no days: {body}"))
        .iter()
        .map(|p| {
            (
                p["date"].as_str().unwrap().parse().unwrap(),
                p["users"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `(event_type, count, users)` of a top-events answer.
pub fn top_of(body: &Value) -> Vec<(String, u64, u64)> {
    body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events: {body}"))
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_owned(),
                e["count"].as_u64().unwrap(),
                e["users"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `(cohort, size, retained)` of a retention answer.
pub fn retention_of(body: &Value) -> Vec<(NaiveDate, u64, Vec<u64>)> {
    body["cohorts"]
        .as_array()
        .unwrap_or_else(|| panic!("no cohorts: {body}"))
        .iter()
        .map(|c| {
            (
                c["cohort"].as_str().unwrap().parse().unwrap(),
                c["size"].as_u64().unwrap(),
                c["retained"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_u64().unwrap())
                    .collect(),
            )
        })
        .collect()
}

/// `(event_type, users)` per step of a funnel answer, checking its
/// conversions against its users.
pub fn funnel_of(body: &Value) -> Vec<(String, u64)> {
    let steps = body["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps: {body}"));
    let users: Vec<u64> = steps.iter().map(|s| s["users"].as_u64().unwrap()).collect();
    // serde_json reads floats to within a unit in the last place.
    let close = |got: &Value, d: u64, n: u64| match (got.as_f64(), d) {
        (None, 0) => got.is_null(),
        (Some(x), d) if d > 0 => (x - n as f64 / d as f64).abs() < 1e-12,
        _ => false,
    };
    for (i, s) in steps.iter().enumerate() {
        let previous = users[i.saturating_sub(1)];
        assert!(
            close(&s["conversion_from_previous"], previous, users[i]),
            "{body}"
        );
        assert!(
            close(&s["conversion_from_first"], users[0], users[i]),
            "{body}"
        );
    }
    steps
        .iter()
        .zip(users)
        .map(|(s, n)| (s["event_type"].as_str().unwrap().to_owned(), n))
        .collect()
}

/// `(kind, value, numbers)` of each group of a breakdown answer, the
/// numbers read by `numbers`.
pub fn groups_of<T>(
    body: &Value,
    numbers: impl Fn(&Value) -> T,
) -> Vec<(String, Option<String>, T)> {
    body["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no groups: {body}"))
        .iter()
        .map(|g| {
            (
                g["kind"].as_str().unwrap().to_owned(),
                g["value"].as_str().map(str::to_owned),
                numbers(g),
            )
        })
        .collect()
}
