//! Queue-mode ingest (ADR-034) against a real NATS JetStream: the same
//! contract and the same stored events as direct mode, batch status, the
//! dead letters, and outages of NATS and of PostgreSQL.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use strata_tests::nats::{NatsServer, test_nats_url, unique_stream};
use strata_tests::{TestApp, event, recent_event};
use uuid::Uuid;

const DRAIN: Duration = Duration::from_secs(30);

/// A server in queue mode on the machine's NATS, with a stream of its own.
async fn queued_app() -> TestApp {
    TestApp::builder()
        .queue(&test_nats_url(), &unique_stream())
        .arg("--max-late-days-per-batch", 40)
        .spawn()
        .await
}

fn random_batch(rng: &mut StdRng, sent: &mut Vec<Value>) -> Vec<Value> {
    let n = rng.random_range(1..60);
    let mut batch = Vec::with_capacity(n);
    for _ in 0..n {
        // Resends (a client retrying), repeats inside the batch, late
        // events on past days, and new events.
        let roll: f64 = rng.random();
        if roll < 0.15 && !sent.is_empty() {
            batch.push(sent[rng.random_range(0..sent.len())].clone());
        } else if roll < 0.2 && !batch.is_empty() {
            batch.push(batch[rng.random_range(0..batch.len())].clone());
        } else {
            let user = format!("u{}", rng.random_range(0..40));
            let t = ["view", "click", "buy"][rng.random_range(0..3)];
            let hours = rng.random_range(0..24 * 20);
            let e = recent_event(Uuid::from_u128(rng.random()), &user, hours);
            let mut e = e;
            e["event_type"] = json!(t);
            sent.push(e.clone());
            batch.push(e);
        }
    }
    batch
}

/// Stored events without their project: what both modes must agree on.
async fn stored(app: &TestApp, project: &str) -> Vec<(Uuid, String, String, i64, Option<Value>)> {
    app.stored(project)
        .await
        .into_iter()
        .map(|e| {
            (
                e.event_id,
                e.user_id,
                e.event_type,
                e.ts.timestamp_micros(),
                e.properties,
            )
        })
        .collect()
}

/// A queue-mode server with a stream of its own, a key of project `p`
/// with `scopes`, a worker that dead-letters a message after `dead_after`
/// deliveries, and a JetStream client that publishes beside the api.
struct DeadLetterRig {
    app: TestApp,
    stream: String,
    key: String,
    worker: strata_tests::WorkerHandle,
    js: async_nats::jetstream::Context,
}

async fn dead_letter_rig(scopes: &str, dead_after: u32) -> DeadLetterRig {
    let stream = unique_stream();
    let app = TestApp::builder()
        .queue(&test_nats_url(), &stream)
        .spawn()
        .await;
    let key = app.key("p", scopes).await;
    let worker = app
        .worker(&[
            ("--worker-dead-letter-after", &dead_after.to_string()),
            ("--worker-retry-delay", "100ms"),
            ("--worker-max-wait", "20ms"),
        ])
        .await;
    let client = async_nats::connect(test_nats_url()).await.unwrap();
    DeadLetterRig {
        app,
        stream,
        key,
        worker,
        js: async_nats::jetstream::new(client),
    }
}

/// The project's dead letters once there are at least `n` (within DRAIN).
async fn dead_letters(app: &TestApp, key: &str, n: usize) -> Value {
    let until = std::time::Instant::now() + DRAIN;
    loop {
        let (code, body) = app.get_json(key, "/v1/admin/ingest/dead-letters").await;
        assert_eq!(code, 200, "{body}");
        if body["dead_letters"].as_array().unwrap().len() >= n {
            return body;
        }
        assert!(
            std::time::Instant::now() < until,
            "fewer than {n} dead letters: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_mode_stores_and_counts_exactly_what_direct_mode_does() {
    let seed = strata_tests::test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let app = queued_app().await;
    // A second server on the same database, in direct mode.
    let direct = app
        .spawn_replica(&[("--ingest-queue", String::new())])
        .await;
    let kq = app.key("queued", "ingest,read").await;
    let kd = app.key("direct", "ingest,read").await;
    let _worker = app
        .worker(&[
            ("--worker-max-wait", "50ms"),
            ("--worker-max-events", "300"),
        ])
        .await;

    let mut sent = Vec::new();
    let mut batches = Vec::new();
    let (mut queued_dup, mut direct_acc, mut direct_dup) = (0u64, 0u64, 0u64);
    for _ in 0..25 {
        let batch = random_batch(&mut rng, &mut sent);
        let (id, body) = app.ingest_queued(&kq, &batch).await;
        assert_eq!(
            body["queued"].as_u64().unwrap() + body["duplicates"].as_u64().unwrap(),
            batch.len() as u64,
            "seed {seed}: {body}"
        );
        queued_dup += body["duplicates"].as_u64().unwrap();
        batches.push((id, batch.len() as u64));
        let resp = app
            .client
            .post(direct.url("/v1/events"))
            .bearer_auth(&kd)
            .json(&json!({ "events": batch }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        direct_acc += body["accepted"].as_u64().unwrap();
        direct_dup += body["duplicates"].as_u64().unwrap();
    }
    // Every batch applied; its counts add up to what was sent, and over
    // all batches to direct mode's.
    let (mut acc, mut dup) = (0, 0);
    for (id, n) in &batches {
        let s = app.wait_applied(&kq, id, DRAIN).await;
        let (a, d) = (
            s["accepted"].as_u64().unwrap(),
            s["duplicates"].as_u64().unwrap(),
        );
        assert_eq!(a + d, *n, "seed {seed}: batch {id}: {s}");
        assert_eq!(s["parts"], s["parts_applied"], "{s}");
        acc += a;
        dup += d;
    }
    assert!(queued_dup <= dup);
    assert_eq!((acc, dup), (direct_acc, direct_dup), "seed {seed}");
    assert_eq!(
        stored(&app, "queued").await,
        stored(&app, "direct").await,
        "seed {seed}"
    );

    let today = chrono::Utc::now().date_naive();
    let from = today - chrono::Duration::days(21);
    for path in [
        format!("/v1/stats/dau?from={from}&to={today}"),
        format!("/v1/stats/dau?from={from}&to={today}&event_type=buy"),
        format!("/v1/stats/top-events?from={from}&to={today}&limit=5"),
        format!("/v1/stats/retention?from={from}&to={today}&period=day&periods=7"),
        format!(
            "/v1/stats/retention?from={from}&to={today}&period=week&periods=3&start_event=buy&return_event=view"
        ),
    ] {
        let (cq, mut q) = app.get_json(&kq, &path).await;
        let (cd, mut d) = app.get_json(&kd, &path).await;
        assert_eq!((cq, cd), (200, 200), "{path}: {q} {d}");
        q.as_object_mut().unwrap().remove("meta");
        d.as_object_mut().unwrap().remove("meta");
        assert_eq!(q, d, "seed {seed}: {path}");
    }
}

/// The same requests to a server in each mode: the same statuses, codes
/// and rejections (parsing and checks happen before the queue).
#[tokio::test]
async fn the_ingest_contract_is_the_same_in_both_modes() {
    let app = TestApp::builder()
        .queue(&test_nats_url(), &unique_stream())
        .arg("--max-body-bytes", 4096)
        .spawn()
        .await;
    let direct = app
        .spawn_replica(&[("--ingest-queue", String::new())])
        .await;
    let key = app.key("p", "ingest").await;
    let read = app.key("p", "read").await;
    let ok = recent_event(Uuid::new_v4(), "u1", 1);
    let mut bad_ts = recent_event(Uuid::new_v4(), "u1", 1);
    bad_ts["timestamp"] = json!("yesterday");
    let mut no_user = recent_event(Uuid::new_v4(), "u1", 1);
    no_user.as_object_mut().unwrap().remove("user_id");
    let mut future = recent_event(Uuid::new_v4(), "u1", 1);
    future["timestamp"] = json!("2099-01-01T00:00:00Z");
    type Case = (&'static str, Option<&'static str>, String, &'static str);
    let mixed = json!({ "events": [ok, bad_ts, no_user, future, ok] }).to_string();
    let cases: Vec<Case> = vec![
        ("mixed", None, mixed, "application/json"),
        (
            "malformed",
            None,
            "{\"events\": [".into(),
            "application/json",
        ),
        ("not json type", None, "{}".into(), "text/plain"),
        (
            "too large",
            None,
            format!("{{\"events\": [\"{}\"]}}", "x".repeat(5000)),
            "application/json",
        ),
        (
            "no events",
            None,
            "{\"events\": []}".into(),
            "application/json",
        ),
        (
            "read key",
            Some("read"),
            json!({ "events": [] }).to_string(),
            "application/json",
        ),
        (
            "bad key",
            Some("bad"),
            json!({ "events": [] }).to_string(),
            "application/json",
        ),
    ];
    for (name, which, body, ct) in cases {
        let k = match which {
            None => key.as_str(),
            Some("read") => read.as_str(),
            Some(_) => "strata_nope",
        };
        let mut answers = Vec::new();
        for base in [app.url("/v1/events"), direct.url("/v1/events")] {
            let resp = app
                .client
                .post(base)
                .bearer_auth(k)
                .header("content-type", ct)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            answers.push((status, v));
        }
        let (q, d) = (&answers[0], &answers[1]);
        match (q.0, d.0) {
            (202, 200) => {
                assert_eq!(q.1["rejected"], d.1["rejected"], "{name}");
                assert_eq!(
                    q.1["queued"].as_u64().unwrap() + q.1["duplicates"].as_u64().unwrap(),
                    d.1["accepted"].as_u64().unwrap() + d.1["duplicates"].as_u64().unwrap(),
                    "{name}: {q:?} {d:?}"
                );
            }
            (a, b) => {
                assert_eq!(a, b, "{name}: {q:?} {d:?}");
                assert!(a >= 400, "{name}");
                assert_eq!(q.1["code"], d.1["code"], "{name}");
            }
        }
    }
}

#[tokio::test]
async fn a_batch_is_queued_then_applied_with_its_counts_and_large_ones_travel_in_parts() {
    let app = TestApp::builder()
        .queue(&test_nats_url(), &unique_stream())
        .arg("--queue-max-message-bytes", 65536)
        .spawn()
        .await;
    let key = app.key("p", "ingest,read").await;
    let other = app.key("other", "ingest").await;
    let events: Vec<Value> = (0..600)
        .map(|i| recent_event(Uuid::new_v4(), &format!("u{}", i % 50), 2))
        .collect();
    let mut first = events.clone();
    first.push(events[0].clone()); // a repeat inside the request
    let (id, body) = app.ingest_queued(&key, &first).await;
    assert_eq!(
        (body["queued"].as_u64(), body["duplicates"].as_u64()),
        (Some(600), Some(1))
    );

    // No worker yet: queued, and only to its own project.
    let path = format!("/v1/ingest/batches/{id}");
    let (code, s) = app.get_json(&key, &path).await;
    assert_eq!((code, s["status"].as_str()), (200, Some("queued")), "{s}");
    assert_eq!(app.get_json(&other, &path).await.0, 404);
    let (code, s) = app
        .get_json(&key, &format!("/v1/ingest/batches/{}", Uuid::new_v4()))
        .await;
    assert_eq!(
        (code, s["code"].as_str()),
        (404, Some("no_such_batch")),
        "{s}"
    );
    assert_eq!(app.get_json(&key, "/v1/ingest/batches/nope").await.0, 400);
    let read = app.key("p", "read").await;
    assert_eq!(app.get_json(&read, &path).await.0, 403);
    let (_, m) = app.get_public_json("/readyz").await;
    assert!(m["queue"]["lag"]["messages"].as_u64().unwrap() > 1, "{m}");

    let worker = app.worker(&[]).await;
    let s = app.wait_applied(&key, &id, DRAIN).await;
    assert!(
        s["parts"].as_u64().unwrap() > 1,
        "600 events over 64 KiB parts: {s}"
    );
    assert_eq!(s["parts"], s["parts_applied"]);
    assert_eq!(
        (s["accepted"].as_u64(), s["duplicates"].as_u64()),
        (Some(600), Some(1)),
        "{s}"
    );
    assert!(s["applied_at"].is_string());
    assert_eq!(app.stored("p").await.len(), 600);

    // The same events again: a new batch, all duplicates.
    let (id2, _) = app.ingest_queued(&key, &events[..100]).await;
    let s = app.wait_applied(&key, &id2, DRAIN).await;
    assert_eq!(
        (s["accepted"].as_u64(), s["duplicates"].as_u64()),
        (Some(0), Some(100)),
        "{s}"
    );
    let report = worker.stop().await;
    assert_eq!(report.accepted, 600);
    assert_eq!(report.dead_letters, 0);

    // The counters in /metrics.
    let text = app.metrics_text().await;
    assert!(text.contains("strata_queue_pending_messages 0"), "{text}");
    assert!(
        text.contains("strata_ingest_events_total{result=\"queued\"} 700"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_is_a_503_and_the_backlog_drains_once_it_is_back() {
    let mut nats = NatsServer::start().await;
    let app = TestApp::builder()
        .queue(&nats.url(), "EVENTS")
        .spawn()
        .await;
    let key = app.key("p", "ingest").await;
    let batch = |n: usize, tag: &str| -> Vec<Value> {
        (0..n)
            .map(|i| recent_event(Uuid::new_v4(), &format!("{tag}{i}"), 1))
            .collect()
    };
    let a = batch(20, "a");
    let (id_a, _) = app.ingest_queued(&key, &a).await;

    nats.stop().await;
    let b = batch(20, "b");
    let resp = app.post_events(&key, &json!({ "events": b })).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert!(
        matches!(body["code"].as_str(), Some("queue_unavailable")),
        "{body}"
    );
    assert_eq!(app.get_public_json("/readyz").await.0, 503);

    nats.restart().await;
    // The client retries B until the server has reconnected.
    let until = std::time::Instant::now() + Duration::from_secs(30);
    let id_b = loop {
        let resp = app.post_events(&key, &json!({ "events": b })).await;
        if resp.status() == 202 {
            let v: Value = resp.json().await.unwrap();
            break v["batch_id"].as_str().unwrap().to_owned();
        }
        assert_eq!(resp.status(), 503);
        assert!(std::time::Instant::now() < until, "NATS never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // A was stored by JetStream before the outage and survived it.
    let _worker = app.worker(&[]).await;
    let sa = app.wait_applied(&key, &id_a, DRAIN).await;
    let sb = app.wait_applied(&key, &id_b, DRAIN).await;
    assert_eq!(
        (sa["accepted"].as_u64(), sb["accepted"].as_u64()),
        (Some(20), Some(20))
    );
    assert_eq!(app.stored("p").await.len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_keeps_ingest_answering_and_the_backlog_drains_after() {
    let app = TestApp::builder()
        .queue(&test_nats_url(), &unique_stream())
        .pg_proxy()
        .spawn()
        .await;
    let key = app.key("p", "ingest,read").await;
    let proxy = app.pg_proxy.as_ref().unwrap();
    let worker = app
        .worker_on(
            &proxy.database_url(&app.db.url),
            &[("--worker-retry-delay", "200ms")],
        )
        .await;
    // Seen once while PostgreSQL is up: the key is remembered.
    let (first, _) = app
        .ingest_queued(&key, &[recent_event(Uuid::new_v4(), "u0", 1)])
        .await;
    app.wait_applied(&key, &first, DRAIN).await;

    proxy.cut().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let events: Vec<Value> = (0..10)
            .map(|j| recent_event(Uuid::new_v4(), &format!("u{i}_{j}"), 1))
            .collect();
        ids.push(app.ingest_queued(&key, &events).await.0);
    }
    // The queue can say "queued" without the database.
    let (code, s) = app
        .get_json(&key, &format!("/v1/ingest/batches/{}", ids[0]))
        .await;
    assert_eq!((code, s["status"].as_str()), (200, Some("queued")), "{s}");
    let (code, ready) = app.get_public_json("/readyz").await;
    assert_eq!(
        (code, ready["status"].as_str()),
        (200, Some("degraded")),
        "{ready}"
    );
    // Stats need the database.
    let today = chrono::Utc::now().date_naive();
    let yesterday = today - chrono::Duration::days(1);
    let dau = format!("/v1/stats/dau?from={yesterday}&to={today}");
    assert_eq!(app.get_json(&key, &dau).await.0, 503);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        worker.worker.report().accepted,
        1,
        "nothing applied while down"
    );

    proxy.restore();
    for id in &ids {
        let s = app.wait_applied(&key, id, DRAIN).await;
        assert_eq!(s["accepted"].as_u64(), Some(10), "{s}");
    }
    assert_eq!(app.stored("p").await.len(), 51);
    let (code, body) = app.get_json(&key, &dau).await;
    assert_eq!(code, 200);
    // 51 users with one event each, an hour ago (today, or yesterday
    // just after midnight).
    let users: u64 = body["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["users"].as_u64().unwrap())
        .sum();
    assert_eq!(users, 51, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_ends_in_the_dead_letters_visible_and_replayable() {
    let DeadLetterRig {
        app,
        stream,
        key,
        worker: _worker,
        js,
    } = dead_letter_rig("ingest,admin", 3).await;
    let project = app.project_id("p").await;
    // A message no worker can read, published beside the api.
    let poison = Uuid::new_v4();
    js.publish(
        format!("{stream}.{project}.{poison}"),
        bytes::Bytes::from_static(b"{\"v\": 1, \"project\": \"not a number\"}"),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // It does not hold up the good batches around it.
    let (good, _) = app
        .ingest_queued(
            &key,
            &[event(
                Uuid::new_v4(),
                "u1",
                "view",
                &chrono::Utc::now().to_rfc3339(),
            )],
        )
        .await;
    app.wait_applied(&key, &good, DRAIN).await;

    let listed = dead_letters(&app, &key, 1).await;
    let d = &listed["dead_letters"][0];
    assert_eq!(d["batch_id"], json!(poison.to_string()), "{listed}");
    // Its batch is `failed`, with the reason, not an unknown batch.
    let (code, s) = app
        .get_json(&key, &format!("/v1/ingest/batches/{poison}"))
        .await;
    assert_eq!((code, s["status"].as_str()), (200, Some("failed")), "{s}");
    assert!(s["reason"].as_str().unwrap().contains("undecodable"), "{s}");
    assert_eq!(d["deliveries"], json!(3), "{listed}");
    assert!(
        d["reason"].as_str().unwrap().contains("undecodable"),
        "{listed}"
    );
    // Another project's admin sees none of it.
    let other = app.key("other", "admin").await;
    let (_, theirs) = app.get_json(&other, "/v1/admin/ingest/dead-letters").await;
    assert_eq!(theirs["dead_letters"], json!([]));
    let seq = d["seq"].as_u64().unwrap();
    let replay = format!("/v1/admin/ingest/dead-letters/{seq}/replay");
    let resp = app
        .client
        .post(app.url(&replay))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = app
        .client
        .post(app.url(&replay))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    // Replayed, it fails again and comes back under a new sequence.
    let until = std::time::Instant::now() + DRAIN;
    loop {
        let (_, body) = app.get_json(&key, "/v1/admin/ingest/dead-letters").await;
        let list = body["dead_letters"].as_array().unwrap();
        if list.len() == 1 && list[0]["seq"].as_u64() != Some(seq) {
            break;
        }
        assert!(std::time::Instant::now() < until, "not dead again: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = app.metrics_text().await;
    assert!(text.contains("strata_queue_dead_letters 1"), "{text}");
    assert_eq!(app.stored("p").await.len(), 1);
}

/// The database turns read-only (a failover onto a standby, an operator's
/// `default_transaction_read_only`) with a backlog queued. Nothing is
/// blamed on the messages: no dead letter, however many deliveries fail;
/// once it takes writes again, everything is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_gone_read_only_sends_nothing_to_the_dead_letters() {
    let app = queued_app().await;
    let key = app.key("p", "ingest,admin").await;
    let worker = app
        .worker(&[
            ("--worker-dead-letter-after", "2"),
            ("--worker-retry-delay", "100ms"),
            ("--worker-max-wait", "20ms"),
        ])
        .await;
    // Seen once while the database takes writes: the key is remembered.
    let (first, _) = app
        .ingest_queued(&key, &[recent_event(Uuid::new_v4(), "u0", 1)])
        .await;
    app.wait_applied(&key, &first, DRAIN).await;

    // From the server's own database: the test's would turn read-only too.
    let read_only = |on: bool| {
        let db = app.db.name.clone();
        async move {
            use sqlx::Connection;
            let mut admin = sqlx::PgConnection::connect(&strata_tests::admin_database_url())
                .await
                .unwrap();
            let setting = if on {
                "SET default_transaction_read_only = on"
            } else {
                "RESET default_transaction_read_only"
            };
            sqlx::query(&format!("ALTER DATABASE {db} {setting}"))
                .execute(&mut admin)
                .await
                .unwrap();
            // Sessions take the setting when they start: end the others.
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(&db)
            .execute(&mut admin)
            .await
            .unwrap();
            admin.close().await.ok();
        }
    };
    read_only(true).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let events: Vec<Value> = (0..10)
            .map(|j| recent_event(Uuid::new_v4(), &format!("u{i}_{j}"), 1))
            .collect();
        ids.push(app.ingest_queued(&key, &events).await.0);
    }
    // Many deliveries fail meanwhile (2 would dead-letter a bad message).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(worker.worker.report().dead_letters, 0);
    assert!(
        worker.worker.report().released >= 8,
        "{:?}",
        worker.worker.report()
    );
    read_only(false).await;
    for id in &ids {
        let s = app.wait_applied(&key, id, DRAIN).await;
        assert_eq!(s["accepted"].as_u64(), Some(10), "{s}");
    }
    assert_eq!(app.stored("p").await.len(), 41);
    let (code, body) = app.get_json(&key, "/v1/admin/ingest/dead-letters").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["dead_letters"], json!([]), "{body}");
    assert_eq!(worker.worker.report().dead_letters, 0);
}

/// A batch of two parts, one applied and one that ends among the dead
/// letters, is `partially_applied`, with the applied part's counts and the
/// dead part's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_a_dead_part_is_partially_applied() {
    let DeadLetterRig {
        app,
        stream,
        key,
        worker: _worker,
        js,
    } = dead_letter_rig("ingest", 2).await;
    let project = app.project_id("p").await;
    let batch = Uuid::new_v4();
    let now = chrono::Utc::now();
    let good = json!({
        "v": 1, "project": project, "batch_id": batch, "part": 0, "parts": 2,
        "queued_at": now, "counted_duplicates": 0,
        "events": [{"event_id": Uuid::new_v4(), "user_id": "u1", "event_type": "view",
                    "timestamp": now.to_rfc3339()}],
    });
    for payload in [
        serde_json::to_vec(&good).unwrap(),
        b"{\"v\": 1, \"part\": 1}".to_vec(),
    ] {
        js.publish(format!("{stream}.{project}.{batch}"), payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let until = std::time::Instant::now() + DRAIN;
    let s = loop {
        let (code, s) = app
            .get_json(&key, &format!("/v1/ingest/batches/{batch}"))
            .await;
        if code == 200 && s["status"] == "partially_applied" {
            break s;
        }
        assert!(std::time::Instant::now() < until, "{code}: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (s["parts"].as_u64(), s["parts_applied"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    assert_eq!(s["accepted"].as_u64(), Some(1), "{s}");
    assert!(s["reason"].as_str().is_some_and(|r| !r.is_empty()), "{s}");
    assert_eq!(app.stored("p").await.len(), 1);
}

/// A user's events accepted (202) before an erasure finished, still in the
/// queue while it ran, are erased too: the worker that applies them after
/// the erasure stores none of them (their ids stay claimed, so a resend is
/// a duplicate), and the other users' events of the same batches are
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_events_of_a_user_erased_meanwhile_are_never_stored() {
    let app = queued_app().await;
    let key = app.key("p", "ingest,read").await;
    let project = strata_model::ProjectId(app.project_id("p").await);
    // Known to the hot tier before: the erasure has something to remove.
    let _direct = app
        .hot
        .insert_events(
            project,
            &[strata_model::ValidEvent {
                event_id: strata_model::EventId::parse(&Uuid::new_v4().to_string()).unwrap(),
                user_id: strata_model::UserId::parse("gone").unwrap(),
                event_type: strata_model::EventType::parse("view").unwrap(),
                timestamp: strata_model::EventTime::parse(&chrono::Utc::now().to_rfc3339())
                    .unwrap(),
                properties: strata_model::Properties::NONE,
            }],
        )
        .await
        .unwrap();
    // Queued with no worker running.
    let gone: Vec<Value> = (0..3)
        .map(|_| recent_event(Uuid::new_v4(), "gone", 1))
        .collect();
    let mut batch = gone.clone();
    batch.extend((0..3).map(|i| recent_event(Uuid::new_v4(), &format!("kept{i}"), 1)));
    let (id, _) = app.ingest_queued(&key, &batch).await;

    let (record, _) = app
        .hot
        .request_erasure(project, "gone", "test")
        .await
        .unwrap();
    assert!(matches!(
        app.archiver(30).erase_once().await.unwrap(),
        strata_archive::RunOutcome::Completed(_)
    ));
    let done = app.hot.erasure(None, record.id).await.unwrap().unwrap();
    assert_eq!(done.status, "done", "{done:?}");

    let _worker = app.worker(&[("--worker-max-wait", "20ms")]).await;
    app.wait_applied(&key, &id, DRAIN).await;
    let users: Vec<String> = app
        .stored("p")
        .await
        .into_iter()
        .map(|e| e.user_id)
        .collect();
    assert_eq!(users.len(), 3, "{users:?}");
    assert!(users.iter().all(|u| u.starts_with("kept")), "{users:?}");
    // Their ids stay claimed: a resend is a duplicate, not a new user.
    let (again, _) = app.ingest_queued(&key, &gone).await;
    let s = app.wait_applied(&key, &again, DRAIN).await;
    assert_eq!(
        (s["accepted"].as_u64(), s["duplicates"].as_u64()),
        (Some(0), Some(3)),
        "{s}"
    );
    assert_eq!(app.stored("p").await.len(), 3);
}

/// Erasing a user in queue mode removes the user's events from the
/// project's dead letters at once: a dead letter holding only theirs is
/// deleted, one holding others' too is replaced by a copy without theirs
/// (so a replay cannot bring the user back either).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_user_purges_their_events_from_the_dead_letters() {
    let DeadLetterRig {
        app,
        stream,
        key,
        worker: _worker,
        js,
    } = dead_letter_rig("ingest,admin", 1).await;
    let project = app.project_id("p").await;
    let now = chrono::Utc::now();
    // Undecodable parts (a bad event id), so both become dead letters.
    let part = |users: &[&str]| {
        let events: Vec<Value> = users
            .iter()
            .map(|u| {
                json!({"event_id": "not-a-uuid", "user_id": u, "event_type": "view",
                            "timestamp": now.to_rfc3339()})
            })
            .collect();
        json!({"v": 1, "project": project, "batch_id": Uuid::new_v4(), "part": 0, "parts": 1,
               "queued_at": now, "counted_duplicates": 0, "events": events})
    };
    for p in [part(&["gone", "kept"]), part(&["gone"])] {
        js.publish(
            format!("{stream}.{project}.{}", p["batch_id"].as_str().unwrap()),
            serde_json::to_vec(&p).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let dead = || async {
        let (code, body) = app.get_json(&key, "/v1/admin/ingest/dead-letters").await;
        assert_eq!(code, 200, "{body}");
        body["dead_letters"].as_array().unwrap().clone()
    };
    let before: Vec<u64> = dead_letters(&app, &key, 2).await["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["seq"].as_u64().unwrap())
        .collect();

    let resp = app
        .client
        .post(app.url("/v1/admin/erasures"))
        .bearer_auth(&key)
        .json(&json!({"user_id": "gone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let dlq = js.get_stream(format!("{stream}_DLQ")).await.unwrap();
    let until = std::time::Instant::now() + DRAIN;
    loop {
        let now = dead().await;
        if now.len() == 1 && !before.contains(&now[0]["seq"].as_u64().unwrap()) {
            let m = dlq
                .get_raw_message(now[0]["seq"].as_u64().unwrap())
                .await
                .unwrap();
            let text = String::from_utf8(m.payload.to_vec()).unwrap();
            assert!(
                !text.contains("\"gone\"") && text.contains("\"kept\""),
                "{text}"
            );
            break;
        }
        assert!(std::time::Instant::now() < until, "not purged: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A message whose body names another project than its subject was not
/// published by the api: it is dead-lettered, and writes nothing into
/// either project.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_whose_body_names_another_project_than_its_subject_writes_nothing() {
    let DeadLetterRig {
        app,
        stream,
        key,
        worker: _worker,
        js,
    } = dead_letter_rig("ingest,admin", 1).await;
    app.key("victim", "read").await;
    let (p, victim) = (app.project_id("p").await, app.project_id("victim").await);
    let now = chrono::Utc::now();
    let batch = Uuid::new_v4();
    let forged = json!({
        "v": 1, "project": victim, "batch_id": batch, "part": 0, "parts": 1,
        "queued_at": now, "counted_duplicates": 0,
        "events": [{"event_id": Uuid::new_v4(), "user_id": "intruder", "event_type": "view",
                    "timestamp": now.to_rfc3339()}],
    });
    js.publish(
        format!("{stream}.{p}.{batch}"),
        serde_json::to_vec(&forged).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let listed = dead_letters(&app, &key, 1).await;
    assert!(
        listed["dead_letters"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("does not name"),
        "{listed}"
    );
    assert!(app.stored("victim").await.is_empty());
    assert!(app.stored("p").await.is_empty());
}

/// NATS with a password (as docker-compose runs it) and TLS: the api and
/// the worker connect with the credentials in the URL and the CA in
/// `--queue-tls-ca`, and the batch is applied; an api with a wrong password
/// refuses ingest with a 503 and queues nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_mode_over_nats_with_a_password_and_tls() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key_file) = strata_tests::nats::test_certificates(certs.path());
    let nats = NatsServer::start_with(
        ["--user", "strata", "--pass", "s3cret", "--tls", "--tlscert"]
            .iter()
            .map(|s| (*s).to_owned())
            .chain([
                cert.display().to_string(),
                "--tlskey".into(),
                key_file.display().to_string(),
            ])
            .collect(),
    )
    .await;
    let url = |pass: &str| format!("tls://strata:{pass}@{}", nats.addr);
    let app = TestApp::builder()
        .queue(&url("s3cret"), &unique_stream())
        .arg("--queue-tls-ca", ca.display())
        .spawn()
        .await;
    let key = app.key("p", "ingest").await;
    let _worker = app.worker(&[("--worker-max-wait", "20ms")]).await;
    let (id, _) = app
        .ingest_queued(&key, &[recent_event(Uuid::new_v4(), "u", 1)])
        .await;
    app.wait_applied(&key, &id, DRAIN).await;
    assert_eq!(app.stored("p").await.len(), 1);

    let intruder = TestApp::builder()
        .queue(&url("wrong"), &unique_stream())
        .arg("--queue-tls-ca", ca.display())
        .spawn()
        .await;
    let key = intruder.key("p", "ingest").await;
    let resp = intruder
        .post_events(
            &key,
            &json!({"events": [recent_event(Uuid::new_v4(), "u", 1)]}),
        )
        .await;
    assert_eq!(resp.status(), 503);
}
