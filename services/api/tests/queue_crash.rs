//! Queue mode (ADR-034) under load while `strata-api ingest-worker`
//! processes are killed with SIGKILL at random moments: every event the
//! api acknowledged (202) is stored exactly once.

#![allow(clippy::unwrap_used)]
use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};
use strata_tests::nats::{test_nats_url, unique_stream};
use strata_tests::{TestApp, recent_event};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_strata-api");

fn spawn_worker(app: &TestApp, stream: &str) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .arg("ingest-worker")
        .env("STRATA_DATABASE_URL", &app.db.url)
        .env("STRATA_DATABASE_MAX_CONNECTIONS", "4")
        .env("STRATA_INGEST_QUEUE", test_nats_url())
        .env("STRATA_QUEUE_STREAM", stream)
        // A killed worker's messages come back quickly.
        .env("STRATA_WORKER_ACK_WAIT", "2s")
        .env("STRATA_WORKER_MAX_WAIT", "50ms")
        .env("STRATA_WORKER_MAX_EVENTS", "400")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_at_random_points_lose_and_double_nothing() {
    let stream = unique_stream();
    let app = TestApp::builder()
        .queue(&test_nats_url(), &stream)
        .spawn()
        .await;
    let key = app.key("p", "ingest").await;

    // Clients: each sends its batches, retrying one until it is accepted.
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (client, url, key) = (app.client.clone(), app.url("/v1/events"), key.clone());
            tokio::spawn(async move {
                let mut acked: Vec<(String, Vec<Uuid>)> = Vec::new();
                for b in 0..25 {
                    let events: Vec<Value> = (0..40)
                        .map(|i| {
                            recent_event(Uuid::new_v4(), &format!("c{c}u{}", (b * 7 + i) % 30), 2)
                        })
                        .collect();
                    let ids = events
                        .iter()
                        .map(|e| Uuid::parse_str(e["event_id"].as_str().unwrap()).unwrap())
                        .collect();
                    loop {
                        let resp = client
                            .post(&url)
                            .bearer_auth(&key)
                            .json(&json!({ "events": events }))
                            .send()
                            .await;
                        if let Ok(r) = resp
                            && r.status() == 202
                        {
                            let v: Value = r.json().await.unwrap();
                            acked.push((v["batch_id"].as_str().unwrap().to_owned(), ids));
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                acked
            })
        })
        .collect();

    // Meanwhile two workers, each killed and restarted at random moments.
    let mut workers = vec![spawn_worker(&app, &stream), spawn_worker(&app, &stream)];
    let mut kills = 0;
    while clients.iter().any(|c| !c.is_finished()) || kills < 6 {
        let wait = rand::rng().random_range(150..900);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let i = rand::rng().random_range(0..workers.len());
        workers[i].kill().await.unwrap(); // SIGKILL
        kills += 1;
        workers[i] = spawn_worker(&app, &stream);
    }
    let mut acked = Vec::new();
    for c in clients {
        acked.extend(c.await.unwrap());
    }
    assert_eq!(acked.len(), 100);

    // Every acknowledged batch is applied in the end…
    for (batch, _) in &acked {
        let s = app.wait_applied(&key, batch, Duration::from_secs(60)).await;
        assert_eq!(s["parts"], s["parts_applied"], "{s}");
    }
    drop(workers);
    // …and each of its events is stored once.
    let stored = app.stored("p").await;
    let ids: Vec<Uuid> = stored.iter().map(|e| e.event_id).collect();
    let distinct: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(ids.len(), distinct.len(), "an event stored twice");
    let expected: HashSet<Uuid> = acked
        .iter()
        .flat_map(|(_, ids)| ids.iter().copied())
        .collect();
    assert_eq!(distinct, expected, "after {kills} kills");
    // The batch records count each event once too.
    let (accepted,): (i64,) = sqlx::query_as("SELECT sum(accepted)::int8 FROM ingest_batches")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(accepted, 4000);
}
