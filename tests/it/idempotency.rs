use std::collections::HashSet;
use std::time::Duration;

use rand::seq::SliceRandom;
use serde_json::{Value, json};
use strata_model::ProjectId;
use strata_store::events::fill;
use strata_tests::{IngestCounts, TestApp, recent_event, spawn_app};
use uuid::Uuid;

fn batch(n: usize, spread_days: i64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            recent_event(
                Uuid::new_v4(),
                &format!("user{}", i % 17),
                1 + (i as i64 % spread_days) * 24,
            )
        })
        .collect()
}

async fn assert_each_stored_once(app: &TestApp, project: &str, events: &[Value]) {
    let stored = app.stored(project).await;
    let ids: HashSet<Uuid> = stored.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), stored.len(), "an event_id is stored twice");
    let sent: HashSet<Uuid> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, sent);
}

#[tokio::test]
async fn a_batch_sent_twice_shuffled_and_split_is_stored_once() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let events = batch(300, 10);
    let first = app.ingest_ok(&key, &events).await;
    assert_eq!(first.accepted, 300);

    let again = app.ingest_ok(&key, &events).await;
    assert_eq!((again.accepted, again.duplicates), (0, 300));

    let mut shuffled = events.clone();
    shuffled.shuffle(&mut rand::rng());
    for part in shuffled.chunks(70) {
        let c = app.ingest_ok(&key, part).await;
        assert_eq!((c.accepted, c.duplicates), (0, part.len() as u64));
    }
    // New events mixed with old ones: only the new ones are accepted.
    let mut mixed = batch(20, 3);
    mixed.extend_from_slice(&events[..40]);
    mixed.shuffle(&mut rand::rng());
    let c = app.ingest_ok(&key, &mixed).await;
    assert_eq!((c.accepted, c.duplicates), (20, 40));

    let mut all = events.clone();
    all.extend(mixed);
    assert_each_stored_once(&app, "acme", &all).await;
}

#[tokio::test]
async fn duplicates_within_one_batch_are_counted() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let id = Uuid::new_v4();
    let c = app
        .ingest_ok(
            &key,
            &[
                recent_event(id, "u", 1),
                recent_event(id, "u", 2),
                recent_event(id, "v", 3),
            ],
        )
        .await;
    assert_eq!((c.accepted, c.duplicates), (1, 2));
    assert_eq!(app.stored("acme").await.len(), 1);
}

#[tokio::test]
async fn same_id_with_another_timestamp_is_a_duplicate() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let id = Uuid::new_v4();
    app.ingest_ok(&key, &[recent_event(id, "u", 1)]).await;
    // Days apart: a different hot chunk, still the same event.
    let c = app.ingest_ok(&key, &[recent_event(id, "u", 24 * 20)]).await;
    assert_eq!((c.accepted, c.duplicates), (0, 1));
    let stored = app.stored("acme").await;
    assert_eq!(stored.len(), 1);
    assert!(chrono::Utc::now() - stored[0].ts < chrono::Duration::hours(2));
}

#[tokio::test]
async fn eight_concurrent_clients_with_overlapping_batches_store_each_id_once() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let events = batch(2_000, 12);
    // Each client sends an overlapping, shuffled window of the same events, in parts.
    let tasks: Vec<_> = (0..8)
        .map(|c| {
            let client = app.client.clone();
            let url = app.url("/v1/events");
            let key = key.clone();
            let mut mine: Vec<Value> =
                events[c * 150..(c * 150 + 1_000).min(events.len())].to_vec();
            mine.extend_from_slice(&events[..200]);
            mine.shuffle(&mut rand::rng());
            tokio::spawn(async move {
                let mut totals = Vec::new();
                for part in mine.chunks(250) {
                    let resp = client
                        .post(&url)
                        .bearer_auth(&key)
                        .json(&json!({ "events": part }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), 200);
                    let c = IngestCounts::from_body(&resp.json::<Value>().await.unwrap());
                    assert_eq!(c.accepted + c.duplicates + c.rejected, part.len() as u64);
                    assert_eq!(c.rejected, 0);
                    totals.push(c);
                }
                totals
            })
        })
        .collect();
    let mut accepted = 0;
    for t in futures::future::join_all(tasks).await {
        accepted += t.unwrap().iter().map(|c| c.accepted).sum::<u64>();
    }
    let covered: HashSet<usize> = (0..8)
        .flat_map(|c| (c * 150..(c * 150 + 1_000).min(2_000)).chain(0..200))
        .collect();
    assert_eq!(
        accepted,
        covered.len() as u64,
        "accepted counts must add up to the distinct ids"
    );
    let sent: Vec<Value> = covered.iter().map(|&i| events[i].clone()).collect();
    assert_each_stored_once(&app, "acme", &sent).await;
}

#[tokio::test]
async fn dedup_outlives_the_hot_chunk_and_expires_with_the_window() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let id = Uuid::new_v4();
    let e = recent_event(id, "u", 24 * 40);
    app.ingest_ok(&key, std::slice::from_ref(&e)).await;

    // Drop the chunk the way the archiver's commit does.
    let chunks = app.hot.list_chunks().await.unwrap();
    assert_eq!(chunks.len(), 1);
    app.drop_chunk_behind_the_servers_back(&chunks[0]).await;
    assert!(app.hot.list_chunks().await.unwrap().is_empty());

    // The event's id is still known: a retry is a duplicate and stores nothing.
    let c = app.ingest_ok(&key, std::slice::from_ref(&e)).await;
    assert_eq!((c.accepted, c.duplicates), (0, 1));
    assert!(app.stored("acme").await.is_empty());

    // Records expire a whole arrival day at a time: today's outlive any
    // window (see `ids_claimed_on_earlier_days_…` for expiry).
    assert_eq!(app.hot.prune_dedup(Duration::ZERO).await.unwrap(), 0);
    let c = app.ingest_ok(&key, &[e]).await;
    assert_eq!((c.accepted, c.duplicates), (0, 1));
}

fn days_ago(n: u64) -> chrono::NaiveDate {
    chrono::Utc::now()
        .date_naive()
        .checked_sub_days(chrono::Days::new(n))
        .unwrap()
}

/// Waits until this process has a filter for every sealed day.
async fn filters_built(app: &TestApp) -> (usize, usize) {
    for _ in 0..300 {
        let (built, days) = app.hot.dedup_filter_coverage();
        if days > 0 && built == days {
            return (built, days);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "dedup filters not built: {:?}",
        app.hot.dedup_filter_coverage()
    );
}

#[tokio::test]
async fn ids_claimed_on_earlier_days_are_duplicates_until_their_day_expires() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let project = ProjectId(app.project_id("acme").await);
    let pool = &app.pool;
    // The records of a store that has run for 120 days (random ids), and
    // three ids of this test that arrived 1, 80 and 100 days ago.
    fill::fill_dedup(pool, project, 30_000, 120).await.unwrap();
    let old: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for (id, back) in old.iter().zip([1, 80, 100]) {
        fill::claim_on_day(pool, project, &[*id], days_ago(back))
            .await
            .unwrap();
    }
    // Those days were written behind the server's back: it lists the
    // records' days again, as a restarted server would.
    app.hot.warm_dedup().await.unwrap();
    // Another project's claim of the same id is not this project's.
    let other = app.key("other", "ingest").await;
    let send =
        |ids: &[Uuid]| -> Vec<Value> { ids.iter().map(|id| recent_event(*id, "u", 1)).collect() };

    // First batch: no filter is built yet, so every earlier day is looked
    // up in PostgreSQL.
    let mut ids = old.clone();
    ids.extend([Uuid::new_v4(), Uuid::new_v4()]);
    let c = app.ingest_ok(&key, &send(&ids)).await;
    assert_eq!((c.accepted, c.duplicates), (2, 3));
    let c = app.ingest_ok(&other, &send(&old)).await;
    assert_eq!((c.accepted, c.duplicates), (3, 0));

    // With every sealed day's filter built: the same answers.
    let (_, days) = filters_built(&app).await;
    assert!(days >= 120, "{days} sealed days");
    let mut ids = old.clone();
    ids.extend([Uuid::new_v4(), Uuid::new_v4()]);
    let c = app.ingest_ok(&key, &send(&ids)).await;
    assert_eq!((c.accepted, c.duplicates), (2, 3));

    // A 90-day window drops the days before it, 100 days back among them,
    // and keeps 80 days back.
    let pruned = app
        .hot
        .prune_dedup(Duration::from_secs(90 * 86_400))
        .await
        .unwrap();
    // The 30 days 91–120 back (about 7,500 ids) and the id 100 days back.
    assert!(pruned > 30_000 * 29 / 120, "{pruned} pruned");
    let c = app.ingest_ok(&key, &send(&old)).await;
    assert_eq!((c.accepted, c.duplicates), (1, 2));
    let stored: HashSet<Uuid> = app
        .stored("acme")
        .await
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert!(stored.contains(&old[2]) && !stored.contains(&old[0]) && !stored.contains(&old[1]));
}

#[tokio::test]
async fn a_new_claim_day_waits_for_claims_still_in_flight_on_the_day_before() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let project = ProjectId(app.project_id("acme").await);
    let pool = &app.pool;
    // As if the service last claimed yesterday, and one of yesterday's
    // claims is still in flight, holding yesterday's claim-day lock.
    let yesterday = days_ago(1);
    // The partitions of yesterday, today and tomorrow exist already, so
    // that only the seal (not a partition's creation, which also waits for
    // claims in flight) can make today's claim wait.
    for day in [
        yesterday,
        days_ago(0),
        days_ago(0) + chrono::Duration::days(1),
    ] {
        fill::claim_on_day(pool, project, &[], day).await.unwrap();
    }
    sqlx::query("UPDATE claim_watermark SET sealed_before = $1")
        .bind(yesterday)
        .execute(pool)
        .await
        .unwrap();
    let id = Uuid::new_v4();
    let mut in_flight = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1, $2)")
        .bind(strata_store::shared::locks::CLAIM_DAY)
        .bind(strata_model::day_number(yesterday))
        .execute(&mut *in_flight)
        .await
        .unwrap();
    sqlx::query("INSERT INTO event_ids (project_id, event_id, day) VALUES ($1, $2, $3)")
        .bind(project.0)
        .bind(id)
        .bind(yesterday)
        .execute(&mut *in_flight)
        .await
        .unwrap();

    // Today's first claim must wait for it, then see it.
    let events = [recent_event(id, "u", 1)];
    let ingest = app.ingest_ok(&key, &events);
    tokio::pin!(ingest);
    assert!(
        tokio::time::timeout(Duration::from_millis(800), &mut ingest)
            .await
            .is_err(),
        "today's claims went ahead of yesterday's in-flight claim"
    );
    in_flight.commit().await.unwrap();
    let c = ingest.await;
    assert_eq!((c.accepted, c.duplicates), (0, 1));
    let sealed: chrono::NaiveDate = sqlx::query_scalar("SELECT sealed_before FROM claim_watermark")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(sealed, days_ago(0));
}

/// `DETACH PARTITION … CONCURRENTLY` is two transactions. A prune cut off
/// between them (here: cancelled while its second waits for a reader)
/// leaves the partition pending detach; one cut off after the detach leaves
/// a loose table. The next prune finishes both instead of failing on every
/// tick.
#[tokio::test]
async fn a_prune_cut_off_mid_detach_is_finished_by_the_next() {
    let app = spawn_app().await;
    app.key("acme", "ingest").await;
    let project = ProjectId(app.project_id("acme").await);
    let pool = &app.pool;
    let (pending_day, loose_day) = (days_ago(40), days_ago(41));
    for day in [pending_day, loose_day] {
        fill::claim_on_day(pool, project, &[Uuid::new_v4()], day)
            .await
            .unwrap();
    }
    let name = |day: chrono::NaiveDate| format!("event_ids_p{}", day.format("%Y%m%d"));
    // The loose table: detached (plainly), never dropped.
    sqlx::query(&format!(
        "ALTER TABLE event_ids DETACH PARTITION {}",
        name(loose_day)
    ))
    .execute(pool)
    .await
    .unwrap();
    // A reader the detach's second transaction must wait for.
    let mut reader = pool.begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM event_ids")
        .execute(&mut *reader)
        .await
        .unwrap();
    let mut detacher = pool.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *detacher)
        .await
        .unwrap();
    let sql = format!(
        "ALTER TABLE event_ids DETACH PARTITION {} CONCURRENTLY",
        name(pending_day)
    );
    let detach =
        tokio::spawn(async move { sqlx::query(&sql).execute(&mut *detacher).await.map(|_| ()) });
    let mut pending = false;
    for _ in 0..200 {
        pending = sqlx::query_scalar(
            "SELECT coalesce(bool_or(inhdetachpending), false) FROM pg_inherits
              WHERE inhrelid = to_regclass($1)",
        )
        .bind(name(pending_day))
        .fetch_one(pool)
        .await
        .unwrap();
        if pending {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pending, "the detach never reached its second transaction");
    sqlx::query("SELECT pg_cancel_backend($1)")
        .bind(pid)
        .execute(pool)
        .await
        .unwrap();
    assert!(detach.await.unwrap().is_err(), "the detach was cut off");
    reader.commit().await.unwrap();

    let pruned = app
        .hot
        .prune_dedup(Duration::from_secs(30 * 86_400))
        .await
        .unwrap();
    assert_eq!(pruned, 1, "the pending partition's record");
    for day in [pending_day, loose_day] {
        let left: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(name(day))
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(left, None, "{day}");
    }
    assert_eq!(
        app.hot
            .prune_dedup(Duration::from_secs(30 * 86_400))
            .await
            .unwrap(),
        0
    );
}
