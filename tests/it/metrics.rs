//! `/metrics`: Prometheus text, parsed with a Prometheus text-format parser.

use serde_json::json;
use strata_tests::{TestApp, recent_event, spawn_app};
use uuid::Uuid;

async fn scrape(app: &TestApp) -> prometheus_parse::Scrape {
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of the sample `name` whose labels include `labels`.
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(v)))
        .map(|x| match &x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_after_an_ingest_an_archive_run_and_a_query() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest,read").await;
    let before = scrape(&app).await;
    assert_eq!(
        value(
            &before,
            "strata_ingest_events_total",
            &[("result", "accepted")]
        ),
        0.0
    );
    assert_eq!(value(&before, "strata_archive_rows_total", &[]), 0.0);

    let id = Uuid::new_v4();
    let events = json!({"events": [
        recent_event(id, "a", 1),
        recent_event(id, "a", 1),
        recent_event(Uuid::new_v4(), "b", 40 * 24),
        {"event_id": "nope"},
    ]});
    assert_eq!(app.post_events(&key, &events).await.status(), 200);
    app.archive(30).await;
    let (from, to) = (
        chrono::Utc::now().date_naive() - chrono::Duration::days(45),
        chrono::Utc::now().date_naive(),
    );
    let (status, _) = app
        .get_json(&key, &format!("/v1/stats/dau?from={from}&to={to}"))
        .await;
    assert_eq!(status, 200);

    let after = scrape(&app).await;
    let v = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels);
    assert_eq!(
        v("strata_ingest_events_total", &[("result", "accepted")]),
        2.0
    );
    assert_eq!(
        v("strata_ingest_events_total", &[("result", "duplicate")]),
        1.0
    );
    assert_eq!(
        v("strata_ingest_events_total", &[("result", "rejected")]),
        1.0
    );
    assert_eq!(
        v("strata_archive_runs_total", &[("status", "succeeded")]),
        1.0
    );
    assert_eq!(v("strata_archive_rows_total", &[]), 1.0);
    assert!(v("strata_archive_bytes_total", &[]) > 0.0);
    assert_eq!(v("strata_tier_rows", &[("tier", "cold")]), 1.0);
    assert!(v("strata_tier_bytes", &[("tier", "hot")]) > 0.0);
    assert_eq!(v("strata_archive_lag_seconds", &[]), 0.0);
    // The cold day was answered from its rollup: no file was read.
    assert_eq!(v("strata_query_rollup_days_total", &[]), 1.0);
    assert_eq!(v("strata_query_cold_rows_total", &[]), 0.0);
    assert_eq!(v("strata_query_hot_rows_total", &[]), 1.0);
    let requests = v(
        "strata_http_requests_total",
        &[
            ("route", "/v1/events"),
            ("method", "POST"),
            ("status", "200"),
        ],
    );
    assert_eq!(requests, 1.0);
    let latency = v(
        "strata_http_request_duration_seconds",
        &[("route", "/v1/stats/dau"), ("status", "200")],
    );
    assert_eq!(latency, 1.0, "one observation in the +Inf bucket");
}

#[tokio::test]
async fn postgresql_values_are_cached_between_scrapes_while_counters_stay_live() {
    let app = TestApp::builder()
        .arg("--metrics-pg-ttl", "600s")
        .spawn()
        .await;
    let key = app.key("acme", "ingest").await;
    let before = scrape(&app).await;
    assert_eq!(value(&before, "strata_archive_rows_total", &[]), 0.0);
    let events = json!({"events": [recent_event(Uuid::new_v4(), "b", 40 * 24)]});
    assert_eq!(app.post_events(&key, &events).await.status(), 200);
    app.archive(30).await;
    // A scraper asking again at once costs PostgreSQL nothing: the archive
    // run is not seen until the interval has passed …
    let after = scrape(&app).await;
    assert_eq!(value(&after, "strata_archive_rows_total", &[]), 0.0);
    assert_eq!(value(&after, "strata_tier_rows", &[("tier", "cold")]), 0.0);
    // … while the process's own counters are current.
    assert_eq!(
        value(
            &after,
            "strata_ingest_events_total",
            &[("result", "accepted")]
        ),
        1.0
    );
}
