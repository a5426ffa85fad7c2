use std::collections::BTreeSet;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use serde_json::{Value, json};
use strata_store::Layout;
use strata_tests::{ServerTimescale, event, spawn_app};
use uuid::Uuid;

#[tokio::test]
async fn hot_layout_is_the_hypertable_exactly_where_timescaledb_exists() {
    let app = spawn_app().await;
    let expected = if ServerTimescale::of(&app.pool).await == ServerTimescale::Preloaded {
        Layout::Timescale
    } else {
        Layout::Native
    };
    assert_eq!(app.hot.layout(), expected);
}

#[tokio::test]
async fn events_over_seventy_days_land_in_their_utc_day_chunks() {
    // One batch over 72 days: past the default cap of 31 late days.
    let app = strata_tests::TestApp::builder()
        .arg("--max-late-days-per-batch", 100)
        .spawn()
        .await;
    let key = app.key("acme", "ingest").await;
    let today = Utc::now().date_naive();
    let mut events = Vec::new();
    let mut days = BTreeSet::new();
    for back in 1..=72 {
        let day = today - Duration::days(back);
        days.insert(day);
        let midnight = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap());
        // First and last microsecond of the UTC day, and a local time whose
        // calendar date differs from its UTC date.
        for ts in [
            midnight.to_rfc3339(),
            (midnight + Duration::days(1) - Duration::microseconds(1))
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string(),
            (midnight + Duration::hours(22))
                .with_timezone(&chrono::FixedOffset::east_opt(5 * 3600).unwrap())
                .to_rfc3339(),
        ] {
            events.push(event(Uuid::new_v4(), "u", "view", &ts));
        }
    }
    let c = app.ingest_ok(&key, &events).await;
    assert_eq!(c.accepted, events.len() as u64);

    // Each row sits in the chunk whose range holds its timestamp.
    let chunks = app.hot.list_chunks().await.unwrap();
    let listed: BTreeSet<NaiveDate> = chunks.iter().map(|c| c.day()).collect();
    assert_eq!(listed, days);
    for c in &chunks {
        assert_eq!(c.end - c.start, Duration::days(1));
        assert_eq!(
            c.start,
            Utc.from_utc_datetime(&c.day().and_hms_opt(0, 0, 0).unwrap())
        );
    }
    let rows: Vec<(String, chrono::DateTime<Utc>)> =
        sqlx::query_as("SELECT tableoid::regclass::text, ts FROM events")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), events.len());
    for (relation, ts) in rows {
        let chunk = chunks
            .iter()
            .find(|c| c.name == relation || c.name.ends_with(&format!(".{relation}")))
            .unwrap_or_else(|| panic!("row in unlisted relation {relation}"));
        assert!(chunk.start <= ts && ts < chunk.end, "{ts} is in {relation}");
    }
}

fn one_event_batch(user: &str, ts: &str) -> strata_model::ParsedBatch {
    strata_model::parse_batch(
        json!({"events": [event(Uuid::new_v4(), user, "view", ts)]})
            .to_string()
            .as_bytes(),
        &strata_model::IngestLimits::default(),
        Utc::now(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_dropped_day_is_recreated_for_late_events() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let day_ts = (Utc::now() - Duration::days(45)).to_rfc3339();
    app.ingest_ok(&key, &[event(Uuid::new_v4(), "u", "view", &day_ts)])
        .await;
    let chunk = app.hot.list_chunks().await.unwrap().remove(0);
    app.drop_chunk_behind_the_servers_back(&chunk).await;

    // Another server process (its own partition cache) still believes the day exists.
    let other = strata_store::Store::open(app.pool.clone()).await.unwrap();
    let late = one_event_batch("late", &day_ts);
    // Warm its cache with the day, drop the day again behind its back, then insert.
    let project = strata_model::ProjectId(app.project_id("acme").await);
    other.insert_events(project, &late.events).await.unwrap();
    let chunk = app.hot.list_chunks().await.unwrap().remove(0);
    app.drop_chunk_behind_the_servers_back(&chunk).await;
    let later = one_event_batch("later", &day_ts);
    let outcome = other.insert_events(project, &later.events).await.unwrap();
    assert_eq!(outcome.stored, 1);
    let users: Vec<String> = app
        .stored("acme")
        .await
        .into_iter()
        .map(|e| e.user_id)
        .collect();
    assert_eq!(users, vec!["later".to_owned()]);
    assert_eq!(app.hot.list_chunks().await.unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_requests_creating_the_same_new_days_all_succeed() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/v1/events");
            let key = key.clone();
            let events: Vec<Value> = (1..=20)
                .map(|d| {
                    let ts = (Utc::now() - Duration::days(d)).to_rfc3339();
                    event(Uuid::new_v4(), "u", "view", &ts)
                })
                .collect();
            tokio::spawn(async move {
                let resp = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({ "events": events }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                resp.json::<Value>().await.unwrap()["accepted"]
                    .as_u64()
                    .unwrap()
            })
        })
        .collect();
    let accepted: u64 = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .sum();
    assert_eq!(accepted, 160);
    assert_eq!(app.hot.list_chunks().await.unwrap().len(), 20);
}

/// A long reader holds `events` (as the archiver's chunk read or a seal
/// can for minutes). An event for a day without a partition arrives: its
/// creation waits for the table's lock only briefly at a time, so ingest
/// for today and stats keep answering meanwhile; the late batch is refused
/// as busy (503, to be retried) if the reader outlasts its tries, and is
/// stored once the reader is done. On a hypertable TimescaleDB creates the
/// chunk itself: the same must hold there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_partition_behind_a_long_reader_stalls_no_other_request() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest,read").await;
    let now = || (Utc::now() - Duration::seconds(1)).to_rfc3339();
    app.ingest_ok(&key, &[event(Uuid::new_v4(), "u", "view", &now())])
        .await;
    // Tomorrow's partition is made ahead of its first event (the sealer
    // does this on every tick).
    let tomorrow = Utc::now().date_naive() + Duration::days(1);
    app.hot.prepare_days(Utc::now().date_naive()).await.unwrap();
    if app.hot.layout() == Layout::Native {
        let made: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(format!("events_p{}", tomorrow.format("%Y%m%d")))
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert!(made.is_some(), "tomorrow's partition");
    }

    let hold = std::time::Duration::from_secs(20);
    let mut reader = app.pool.begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM events")
        .execute(&mut *reader)
        .await
        .unwrap();
    let late = event(
        Uuid::new_v4(),
        "late",
        "view",
        &(Utc::now() - Duration::days(20)).to_rfc3339(),
    );
    let late_send = {
        let (client, url, key, late) = (
            app.client.clone(),
            app.url("/v1/events"),
            key.clone(),
            late.clone(),
        );
        tokio::spawn(async move {
            client
                .post(&url)
                .bearer_auth(&key)
                .json(&json!({ "events": [late] }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        app.ingest_ok(&key, &[event(Uuid::new_v4(), "u2", "view", &now())])
            .await;
        let today = Utc::now().date_naive();
        let (status, body) = app
            .get_json(&key, &format!("/v1/stats/dau?from={today}&to={today}"))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // Liveness, not speed: without the bound each request above waits for
    // the reader's 20 s.
    assert!(
        started.elapsed() < hold / 2,
        "today's ingest and stats waited {:?} behind the partition's creation",
        started.elapsed()
    );
    let late_status = late_send.await.unwrap();
    assert!(
        [200, 503].contains(&late_status),
        "the late batch: {late_status}"
    );
    tokio::time::sleep(hold.saturating_sub(started.elapsed())).await;
    reader.commit().await.unwrap();
    // Once the reader is done, the late event is stored (a resend of a
    // batch that was stored is a duplicate).
    let resp = app.post_events(&key, &json!({ "events": [late] })).await;
    assert_eq!(resp.status(), 200);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE user_id = 'late'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
}
