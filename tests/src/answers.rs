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
