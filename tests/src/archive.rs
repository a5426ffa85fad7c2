//! Helpers for archive tests: seeding old days through the API and comparing
//! hot + cold against what was sent.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::TestApp;
use crate::cold::TestCold;

/// One event as both tiers must return it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub project_id: i64,
    pub event_id: String,
    pub user_id: String,
    pub event_type: String,
    pub ts_micros: i64,
    pub properties: Option<Value>,
}

fn by_id(a: &Row, b: &Row) -> std::cmp::Ordering {
    (a.project_id, &a.event_id).cmp(&(b.project_id, &b.event_id))
}

/// What a test sent, in the shape the tiers return.
#[derive(Debug, Default)]
pub struct Sent {
    pub rows: Vec<Row>,
}

impl Sent {
    pub fn sorted(&self) -> Vec<Row> {
        let mut v = self.rows.clone();
        v.sort_by(by_id);
        v
    }
}

/// Ingests `per_day` events on each of `days` (UTC days ending `first_age_days`
/// ago and going back), for each project key, through the HTTP API.
pub async fn seed_days(
    app: &TestApp,
    projects: &[(&str, &str)],
    first_age_days: i64,
    days: i64,
    per_day: usize,
    sent: &mut Sent,
) {
    let today = Utc::now().date_naive();
    let mut rng = rand::rng();
    for (project, key) in projects {
        let project_id = app.project_id(project).await;
        let mut batch = Vec::new();
        for age in first_age_days..first_age_days + days {
            let day = today - Duration::days(age);
            for i in 0..per_day {
                let secs = rng.random_range(0..86_400);
                let micros = rng.random_range(0..1_000_000);
                let ts: DateTime<Utc> = day.and_hms_opt(0, 0, 0).unwrap().and_utc()
                    + Duration::seconds(secs)
                    + Duration::microseconds(micros);
                let id = Uuid::new_v4();
                let user = format!("user{}", rng.random_range(0..40));
                let event_type = ["view", "click", "signup", "purchase"][i % 4];
                let props =
                    (i % 3 != 0).then(|| json!({"i": i, "path": format!("/p/{i}"), "ü": "ok"}));
                let mut e = json!({
                    "event_id": id.to_string(), "user_id": user, "event_type": event_type,
                    "timestamp": ts.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                });
                if let Some(p) = &props {
                    e["properties"] = p.clone();
                }
                batch.push(e);
                sent.rows.push(Row {
                    project_id,
                    event_id: id.to_string(),
                    user_id: user,
                    event_type: event_type.to_owned(),
                    ts_micros: ts.timestamp_micros(),
                    properties: props,
                });
            }
        }
        for part in batch.chunks(2_000) {
            let c = app.ingest_ok(key, part).await;
            assert_eq!(c.accepted, part.len() as u64);
        }
    }
}

type HotRow = (i64, Uuid, String, String, DateTime<Utc>, Option<Value>);

/// Every row in the hot tier plus every row of the cold files the manifest
/// lists (read with DuckDB), sorted: the union a query must see.
pub async fn hot_plus_cold(app: &TestApp, cold: &TestCold) -> Vec<Row> {
    let hot: Vec<HotRow> = sqlx::query_as(
        "SELECT project_id, event_id, user_id, event_type, ts, properties FROM events",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut rows: Vec<Row> = hot
        .into_iter()
        .map(
            |(project_id, id, user_id, event_type, ts, properties)| Row {
                project_id,
                event_id: id.to_string(),
                user_id,
                event_type,
                ts_micros: ts.timestamp_micros(),
                properties,
            },
        )
        .collect();
    let committed: Vec<String> = sqlx::query_scalar("SELECT object_key FROM cold_files")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    for c in cold.glob_keys(&committed).await {
        rows.push(Row {
            project_id: c.project_id,
            event_id: c.event_id,
            user_id: c.user_id,
            event_type: c.event_type,
            ts_micros: c.ts_micros,
            properties: c.properties.map(|p| serde_json::from_str(&p).unwrap()),
        });
    }
    rows.sort_by(by_id);
    rows
}

/// Every cold rollup row (ADR-027), decoded: (project, day, row) →
/// (events, users), the row its event type, or for a value of a declared
/// property (ADR-043) `<property>=<value>/<event type>`.
pub async fn rollup_sets(
    pool: &sqlx::PgPool,
) -> std::collections::BTreeMap<(i64, chrono::NaiveDate, String), (i64, Vec<u32>)> {
    type Row = (
        i64,
        chrono::NaiveDate,
        String,
        Option<String>,
        String,
        i64,
        Vec<u8>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT project_id, day, property, value, event_type, events, users FROM day_rollups",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(p, d, property, value, t, n, users)| {
            let users = strata_store::summaries::rollup::decode(&users).unwrap();
            let row = if property.is_empty() {
                t
            } else {
                format!("{property}={value:?}/{t}")
            };
            ((p, d, row), (n, users.iter().collect()))
        })
        .collect()
}

/// Every cold day of the manifest has a rollup, and it equals a recount of
/// the day's Parquet files (`rollups rebuild`), row for row.
pub async fn assert_rollups_match_parquet(app: &TestApp, cold: &TestCold, context: &str) {
    let before = rollup_sets(&app.pool).await;
    let archiver =
        strata_archive::Archiver::new(app.hot.clone(), cold.store.clone(), crate::compacting());
    let report = archiver.rebuild_rollups(None, None, None).await.unwrap();
    assert!(report.failed.is_empty(), "{context}: {report:?}");
    assert_eq!(report.rebuilt, report.days, "{context}: {report:?}");
    let days: std::collections::BTreeSet<(i64, chrono::NaiveDate)> =
        before.keys().map(|(p, d, _)| (*p, *d)).collect();
    assert_eq!(
        days.len() as u64,
        report.days,
        "{context}: a cold day has no rollup"
    );
    assert_eq!(
        rollup_sets(&app.pool).await,
        before,
        "{context}: a rollup differs from its Parquet recount"
    );
}

/// A failpoint hook that, the first time the archiver reaches `at`, runs
/// `work` to its end (on a runtime of its own) before the archiver goes on:
/// something happening at an exact point of a run.
pub fn once_at<F, Fut>(at: &'static str, work: F) -> strata_archive::FailPointHook
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let work = std::sync::Mutex::new(Some(work));
    std::sync::Arc::new(move |point: &'static str| {
        if point != at {
            return;
        }
        let Some(work) = work.lock().unwrap().take() else {
            return;
        };
        let run = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(work());
        });
        tokio::task::block_in_place(|| run.join().unwrap());
    })
}

/// A failpoint hook that, the first time the archiver reaches `at`, sends
/// `events` with `key` through the API (and asserts a 200).
pub fn send_once_at(
    app: &TestApp,
    key: &str,
    at: &'static str,
    events: Vec<Value>,
) -> strata_archive::FailPointHook {
    let (client, url, key) = (app.client.clone(), app.url("/v1/events"), key.to_owned());
    once_at(at, move || async move {
        let resp = client
            .post(&url)
            .bearer_auth(&key)
            .json(&json!({ "events": events }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    })
}
