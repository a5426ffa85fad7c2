use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use strata_archive::{ArchiveConfig, Archiver, ChunkOutcome, RunOutcome, RunReport};
use strata_cold::WriterOptions;
use strata_tests::archive::{Sent, hot_plus_cold, seed_days};
use strata_tests::cold::TestCold;
use strata_tests::{TestApp, event, spawn_app};
use uuid::Uuid;

/// Without compaction: each run's files stay as written (the late-event
/// test asks for compaction itself).
fn archiver(app: &TestApp, cold: &TestCold) -> Archiver {
    Archiver::new(
        app.hot.clone(),
        cold.store.clone(),
        strata_tests::no_compaction(),
    )
}

async fn run(a: &Archiver) -> RunReport {
    match a.run_once().await.unwrap() {
        RunOutcome::Completed(r) => r,
        RunOutcome::Skipped => panic!("run skipped"),
    }
}

async fn manifest(app: &TestApp) -> Vec<(i64, chrono::NaiveDate, i32, String, i64)> {
    sqlx::query_as("SELECT project_id, day, seq, object_key, rows FROM cold_files ORDER BY 1, 2, 3")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn archive_many_days_across_projects(cold: TestCold) {
    let app = spawn_app().await;
    let keys = [
        ("alpha", app.key("alpha", "ingest").await),
        ("beta", app.key("beta", "ingest").await),
    ];
    let projects: Vec<(&str, &str)> = keys.iter().map(|(p, k)| (*p, k.as_str())).collect();
    let mut sent = Sent::default();
    // Days 25..45 ago: 14 of them are older than the 30-day retention.
    seed_days(&app, &projects, 25, 20, 30, &mut sent).await;
    let cutoff_day = (Utc::now() - chrono::Duration::days(30)).date_naive();

    let report = run(&archiver(&app, &cold)).await;
    assert!(report.succeeded(), "{report:?}");
    let moved: Vec<_> = report.chunks.iter().map(|c| c.day).collect();
    assert!(moved.iter().all(|d| *d < cutoff_day));
    assert!(moved.len() >= 14, "{moved:?}");

    // Archived chunks are gone from the hot tier, younger ones are not.
    let hot_days: Vec<_> = app
        .hot
        .list_chunks()
        .await
        .unwrap()
        .iter()
        .map(|c| c.day())
        .collect();
    assert!(hot_days.iter().all(|d| *d >= cutoff_day), "{hot_days:?}");
    assert!(hot_days.iter().all(|d| !moved.contains(d)));

    // One manifest row and one object per project and archived day, rows right.
    let m = manifest(&app).await;
    assert_eq!(m.len(), 2 * moved.len());
    let keys_in_bucket: Vec<String> = cold.keys().await;
    let mut listed: Vec<String> = m.iter().map(|r| r.3.clone()).collect();
    listed.sort();
    assert_eq!(keys_in_bucket, listed);
    for (project, day, seq, key, rows) in &m {
        assert_eq!(*seq, 0);
        assert_eq!(
            key,
            &format!(
                "events/project_id={project}/date={day}/part-00000-r{}.parquet",
                report.run_id
            )
        );
        let expected = sent
            .rows
            .iter()
            .filter(|r| {
                r.project_id == *project
                    && chrono::DateTime::from_timestamp_micros(r.ts_micros)
                        .unwrap()
                        .date_naive()
                        == *day
            })
            .count();
        assert_eq!(*rows as usize, expected);
    }
    // Hot + cold (read back with DuckDB) is exactly what was ingested.
    assert_eq!(hot_plus_cold(&app, &cold).await, sent.sorted());

    // A second run has nothing to do.
    let again = run(&archiver(&app, &cold)).await;
    assert!(again.chunks.is_empty() && again.succeeded());
    let runs: Vec<(String, i32)> =
        sqlx::query_as("SELECT status, chunks_moved FROM archive_runs ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        runs,
        vec![
            ("succeeded".into(), moved.len() as i32),
            ("succeeded".into(), 0)
        ]
    );
}

#[tokio::test]
async fn archives_many_days_across_projects_to_s3() {
    archive_many_days_across_projects(TestCold::s3()).await;
}

#[tokio::test]
async fn archives_many_days_across_projects_to_a_local_folder() {
    archive_many_days_across_projects(TestCold::file()).await;
}

#[tokio::test]
async fn a_late_event_becomes_a_second_file_and_is_counted_once() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest").await;
    let cold = TestCold::s3();
    let mut sent = Sent::default();
    seed_days(&app, &[("alpha", key.as_str())], 40, 2, 10, &mut sent).await;
    assert!(run(&archiver(&app, &cold)).await.succeeded());
    assert!(app.hot.list_chunks().await.unwrap().is_empty());

    // A late event for an archived day lands hot, in a new chunk for that day.
    let day = (Utc::now() - chrono::Duration::days(40)).date_naive();
    let late_id = Uuid::new_v4();
    let ts = format!("{day}T12:34:56.000001Z");
    assert_eq!(
        app.ingest_ok(&key, &[event(late_id, "late-user", "view", &ts)])
            .await
            .accepted,
        1
    );
    // Retrying an archived event is still a duplicate.
    let archived = &sent.rows[0];
    let retry = event(
        archived.event_id.parse().unwrap(),
        &archived.user_id,
        "view",
        &ts,
    );
    assert_eq!(app.ingest_ok(&key, &[retry]).await.duplicates, 1);
    assert_eq!(app.hot.list_chunks().await.unwrap().len(), 1);

    // The run archives it as the day's second file (part 1), then its
    // compaction step (on by default) merges the day's two files into one
    // (part 2).
    let compacting = Archiver::new(
        app.hot.clone(),
        cold.store.clone(),
        ArchiveConfig::default(),
    );
    let report = run(&compacting).await;
    assert!(report.succeeded());
    assert_eq!(report.compacted.len(), 1, "{report:?}");
    assert_eq!(report.compacted[0].files_before, 2);
    let files: Vec<String> = cold
        .keys()
        .await
        .into_iter()
        .filter(|k| k.contains(&format!("date={day}")))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].contains("/part-00002-r"), "{files:?}");

    let all = hot_plus_cold(&app, &cold).await;
    let ids: Vec<&str> = all.iter().map(|r| r.event_id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "an event is counted twice");
    assert_eq!(all.len(), sent.rows.len() + 1);
    assert!(unique.contains(late_id.to_string().as_str()));
}

#[tokio::test]
async fn an_unreachable_object_store_loses_nothing_and_the_next_run_succeeds() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest").await;
    let mut sent = Sent::default();
    seed_days(&app, &[("alpha", key.as_str())], 35, 3, 10, &mut sent).await;
    let before = app.hot.list_chunks().await.unwrap();

    let down = TestCold::unreachable();
    let report = run(&archiver(&app, &down)).await;
    assert!(!report.succeeded());
    // The store cannot even be listed: no chunk is attempted.
    assert!(report.chunks.is_empty());
    assert_eq!(report.not_attempted.len(), 3);
    assert!(report.error.as_deref().unwrap().contains("object store"));
    assert_eq!(app.hot.list_chunks().await.unwrap(), before);
    assert!(manifest(&app).await.is_empty());
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM archive_runs ORDER BY id DESC LIMIT 1")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("object store"));

    let cold = TestCold::s3();
    assert!(run(&archiver(&app, &cold)).await.succeeded());
    assert_eq!(hot_plus_cold(&app, &cold).await, sent.sorted());
}

#[tokio::test]
async fn two_archivers_started_together_move_each_chunk_once() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest").await;
    let mut sent = Sent::default();
    seed_days(&app, &[("alpha", key.as_str())], 31, 6, 200, &mut sent).await;
    let cold = TestCold::s3();
    let (a, b) = (archiver(&app, &cold), archiver(&app, &cold));
    let (ra, rb) = tokio::join!(a.run_once(), b.run_once());
    let moved: usize = [ra.unwrap(), rb.unwrap()]
        .iter()
        .map(|o| match o {
            RunOutcome::Completed(r) => {
                assert!(r.succeeded());
                r.chunks.len()
            }
            RunOutcome::Skipped => 0,
        })
        .sum();
    assert_eq!(moved, 6);
    let m = manifest(&app).await;
    assert_eq!(m.len(), 6);
    assert_eq!(hot_plus_cold(&app, &cold).await, sent.sorted());
}

#[tokio::test]
async fn a_two_million_row_chunk_streams_with_a_fixed_number_of_batches() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest").await;
    let project = app.project_id("alpha").await;
    let day = (Utc::now() - chrono::Duration::days(60)).date_naive();
    // One event through the API creates the day's chunk; the bulk goes in with SQL.
    app.ingest_ok(
        &key,
        &[event(
            Uuid::new_v4(),
            "u",
            "view",
            &format!("{day}T00:00:00Z"),
        )],
    )
    .await;
    let rows: u64 = sqlx::query(
        "INSERT INTO events (project_id, event_id, user_id, event_type, ts, properties, received_at)
         SELECT $1, gen_random_uuid(), 'user' || (g % 5000), 'type' || (g % 20),
                $2::date + make_interval(secs => (g % 86400)::double precision),
                CASE WHEN g % 2 = 0 THEN jsonb_build_object('g', g) END, now()
           FROM generate_series(1, 2000000) g",
    )
    .bind(project)
    .bind(day)
    .execute(&app.pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(rows, 2_000_000);

    // To the real S3 server: a file this size goes up as a multipart upload.
    let cold = TestCold::s3();
    let config = ArchiveConfig {
        channel_batches: 2,
        writer: WriterOptions::default(),
        ..ArchiveConfig::default()
    };
    let report = run(&Archiver::new(app.hot.clone(), cold.store.clone(), config)).await;
    assert!(report.succeeded(), "{report:?}");
    let ChunkOutcome::Archived {
        files,
        max_batches_in_flight,
    } = &report.chunks[0].outcome
    else {
        panic!("not archived");
    };
    assert_eq!(files[0].rows, 2_000_001);
    assert!(
        files[0].bytes > 10 * 1024 * 1024,
        "{} bytes",
        files[0].bytes
    );
    // 2,000,001 rows / 8,192 per batch = 245 batches, yet never more than
    // the channel's 2 plus one being built and one being written.
    assert!(
        *max_batches_in_flight <= 4,
        "{max_batches_in_flight} batches alive at once"
    );
    assert_eq!(cold.count_rows_and_ids().await, (2_000_001, 2_000_001));
}

#[tokio::test]
async fn dry_run_plans_only_chunks_past_retention() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest").await;
    let mut sent = Sent::default();
    seed_days(&app, &[("alpha", key.as_str())], 28, 5, 1, &mut sent).await;
    let a = Archiver::new(
        app.hot.clone(),
        TestCold::file().store.clone(),
        ArchiveConfig {
            hot_retention: Duration::from_secs(30 * 86_400),
            ..ArchiveConfig::default()
        },
    );
    let planned = a.plan().await.unwrap();
    // Days 28..32 ago: the chunks of days 31 and 32 ago end before the cutoff
    // (day 30 ago ends 29-30 days ago, so it waits).
    assert_eq!(planned.len(), 2, "{planned:?}");
    assert!(planned.iter().all(|c| c.end <= a.cutoff()));
}

#[tokio::test]
async fn late_events_arriving_while_the_archiver_commits_are_never_lost() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest").await;
    let mut sent = Sent::default();
    seed_days(&app, &[("alpha", key.as_str())], 31, 5, 300, &mut sent).await;
    let cold = TestCold::s3();
    let project = app.project_id("alpha").await;

    // A writer keeps sending late events into the days being archived.
    let writer = {
        let client = app.client.clone();
        let url = app.url("/v1/events");
        let key = key.clone();
        tokio::spawn(async move {
            let mut rows = Vec::new();
            for i in 0..60 {
                let day = (Utc::now() - chrono::Duration::days(31 + i % 5)).date_naive();
                let id = Uuid::new_v4();
                let ts = format!("{day}T10:00:00.000001Z");
                let resp = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&serde_json::json!({"events": [event(id, "late", "view", &ts)]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
                rows.push((id, ts));
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            rows
        })
    };
    let a = archiver(&app, &cold);
    for _ in 0..10 {
        run(&a).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    for (id, ts) in writer.await.unwrap() {
        let ts = chrono::DateTime::parse_from_rfc3339(&ts).unwrap();
        sent.rows.push(strata_tests::archive::Row {
            project_id: project,
            event_id: id.to_string(),
            user_id: "late".into(),
            event_type: "view".into(),
            ts_micros: ts.timestamp_micros(),
            properties: Some(serde_json::json!({"path": "/pricing", "n": 1})),
        });
    }
    // Whatever interleaving happened, a final run leaves everything archived once.
    assert!(run(&a).await.succeeded());
    assert!(app.hot.list_chunks().await.unwrap().is_empty());
    assert_eq!(hot_plus_cold(&app, &cold).await, sent.sorted());
    let (rows, ids) = cold.count_rows_and_ids().await;
    assert_eq!(
        (rows as usize, ids as usize),
        (sent.rows.len(), sent.rows.len())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_arriving_while_its_day_is_archived_stays_hot_and_the_day_still_moves() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest").await;
    let mut sent = Sent::default();
    // Days 31..34 ago: four chunks past retention, committed as one group.
    seed_days(&app, &[("alpha", key.as_str())], 31, 4, 40, &mut sent).await;
    let cold = TestCold::s3();
    let project = app.project_id("alpha").await;
    let oldest = (Utc::now() - chrono::Duration::days(34)).date_naive();
    let late_id = Uuid::new_v4();
    let late_ts = format!("{oldest}T12:00:00.000001Z");

    // Once the first (oldest) chunk is written and verified, a late event
    // lands in its day. The rows read are archived all the same (a trickle
    // of late events must never starve a day); the newcomer stays hot.
    let fired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook: strata_archive::FailPointHook = {
        let (client, url, key, ts) = (
            app.client.clone(),
            app.url("/v1/events"),
            key.clone(),
            late_ts.clone(),
        );
        std::sync::Arc::new(move |at: &'static str| {
            if at != "after_verify" || fired.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let (client, url, key, ts) = (client.clone(), url.clone(), key.clone(), ts.clone());
            let send = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async move {
                        let resp = client
                            .post(&url)
                            .bearer_auth(&key)
                            .json(&serde_json::json!({"events": [event(late_id, "late", "view", &ts)]}))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(resp.status(), 200);
                    });
            });
            tokio::task::block_in_place(|| send.join().unwrap());
        })
    };
    let a = Archiver::new(
        app.hot.clone(),
        cold.store.clone(),
        ArchiveConfig {
            failpoint: Some(hook),
            ..ArchiveConfig::default()
        },
    );
    let report = run(&a).await;
    assert_eq!(report.chunks.len(), 4, "{report:?}");
    assert!(report.succeeded(), "{report:?}");
    let hot: Vec<_> = app.hot.list_chunks().await.unwrap();
    assert_eq!(hot.len(), 1, "{hot:?}");
    assert_eq!(hot[0].day(), oldest);
    let hot_ids: Vec<Uuid> = sqlx::query_scalar("SELECT event_id FROM events")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(hot_ids, vec![late_id], "only the newcomer stays hot");
    assert_eq!(manifest(&app).await.len(), 4);

    // The next run moves it, late event included; nothing is lost or doubled.
    sent.rows.push(strata_tests::archive::Row {
        project_id: project,
        event_id: late_id.to_string(),
        user_id: "late".into(),
        event_type: "view".into(),
        ts_micros: chrono::DateTime::parse_from_rfc3339(&late_ts)
            .unwrap()
            .timestamp_micros(),
        properties: Some(serde_json::json!({"path": "/pricing", "n": 1})),
    });
    assert_eq!(hot_plus_cold(&app, &cold).await, sent.sorted());
    assert!(run(&archiver(&app, &cold)).await.succeeded());
    assert_eq!(hot_plus_cold(&app, &cold).await, sent.sorted());
    let m = manifest(&app).await;
    assert_eq!(m.len(), 5, "{m:?}");
    assert!(
        m.iter().any(|r| r.1 == oldest && r.2 == 1 && r.4 == 1),
        "{m:?}"
    );
}

/// The backend holding the archiver's advisory lock in this test's database.
async fn archiver_lock_holder(app: &TestApp) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks
          WHERE locktype = 'advisory' AND granted AND objsubid = 1
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND ((classid::int8 << 32) | objid::int8) = $1",
    )
    .bind(strata_hot::locks::ARCHIVER)
    .fetch_optional(&app.pool)
    .await
    .unwrap()
}

/// A hook that stops the run at `point` (once) until the test resumes it.
fn pause_at(
    point: &'static str,
) -> (
    strata_archive::FailPointHook,
    std::sync::mpsc::Receiver<()>,
    std::sync::mpsc::Sender<()>,
) {
    let (paused_tx, paused_rx) = std::sync::mpsc::channel::<()>();
    let (resume_tx, resume_rx) = std::sync::mpsc::channel::<()>();
    let state = std::sync::Mutex::new(Some((paused_tx, resume_rx)));
    let hook: strata_archive::FailPointHook = std::sync::Arc::new(move |at: &'static str| {
        if at != point {
            return;
        }
        let Some((paused, resume)) = state.lock().unwrap().take() else {
            return;
        };
        paused.send(()).unwrap();
        // Stalls the run, as a stopped process would. `block_in_place` hands
        // this worker's queued tasks to another thread first, so that the
        // rest of the test (other runs, HTTP, S3) is not held up with it.
        tokio::task::block_in_place(|| resume.recv().unwrap());
    });
    (hook, paused_rx, resume_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_archiver_that_lost_its_lock_session_commits_nothing_after_a_successor_swept() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest").await;
    let mut sent = Sent::default();
    seed_days(&app, &[("alpha", key.as_str())], 31, 2, 50, &mut sent).await;
    let cold = TestCold::s3();

    // Run 1 writes and verifies its first chunk, then stalls.
    let (hook, paused, resume) = pause_at("after_verify");
    let first = Archiver::new(
        app.hot.clone(),
        cold.store.clone(),
        ArchiveConfig {
            failpoint: Some(hook),
            ..ArchiveConfig::default()
        },
    );
    let first = tokio::spawn(async move { first.run_once().await });
    tokio::task::spawn_blocking(move || paused.recv().unwrap())
        .await
        .unwrap();
    assert_eq!(cold.keys().await.len(), 1, "run 1 wrote its first file");

    // Its lock session dies (idle timeout, failover, an operator …).
    let pid = archiver_lock_holder(&app)
        .await
        .expect("run 1 holds the lock");
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&app.pool)
        .await
        .unwrap();
    for _ in 0..100 {
        if archiver_lock_holder(&app).await.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Run 2 takes the job. Its cutoff moves nothing (a longer retention),
    // but its sweep deletes run 1's uncommitted file.
    let second = Archiver::new(
        app.hot.clone(),
        cold.store.clone(),
        ArchiveConfig {
            hot_retention: Duration::from_secs(3650 * 86_400),
            ..ArchiveConfig::default()
        },
    );
    let report = run(&second).await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.orphans_removed, 1, "{report:?}");
    assert!(cold.keys().await.is_empty());

    // Run 1 resumes and reaches its commit: fenced off, nothing committed.
    resume.send(()).unwrap();
    let outcome = first.await.unwrap().unwrap();
    let RunOutcome::Completed(report) = outcome else {
        panic!("run 1 was skipped")
    };
    assert!(!report.succeeded(), "{report:?}");
    assert!(
        report
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no longer owns the archive job")),
        "{report:?}"
    );
    assert!(manifest(&app).await.is_empty());
    // Every manifest row names an object that exists; every event is
    // present exactly once (hot here).
    assert_eq!(hot_plus_cold(&app, &cold).await, sent.sorted());
    assert_eq!(app.hot.list_chunks().await.unwrap().len(), 2);

    // The next run owns the job and moves everything.
    assert!(run(&archiver(&app, &cold)).await.succeeded());
    let listed: Vec<String> = manifest(&app).await.into_iter().map(|r| r.3).collect();
    let mut stored = cold.keys().await;
    stored.retain(|k| listed.contains(k));
    assert_eq!(
        stored.len(),
        listed.len(),
        "a manifest row without its object"
    );
    assert_eq!(hot_plus_cold(&app, &cold).await, sent.sorted());
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_objects_are_durable_and_complete_before_the_commit_drops_a_chunk() {
    for cold in [TestCold::file(), TestCold::s3()] {
        let app = spawn_app().await;
        let key = app.key("alpha", "ingest").await;
        let mut sent = Sent::default();
        seed_days(&app, &[("alpha", key.as_str())], 31, 2, 40, &mut sent).await;
        let store = cold.store.clone().recording_syncs();
        let problems = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen_at_commit = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        // Inside the commit transaction, before a chunk is dropped: what is
        // in the store must already be durable (local) and complete (S3).
        let hook: strata_archive::FailPointHook = {
            let (store, problems, seen) = (
                store.clone(),
                std::sync::Arc::clone(&problems),
                std::sync::Arc::clone(&seen_at_commit),
            );
            std::sync::Arc::new(move |at: &'static str| {
                if at != "before_drop" {
                    return;
                }
                let mut problems = problems.lock().unwrap();
                if let Some(root) = store.local_path(&object_store::path::Path::from("")) {
                    let synced = store.synced();
                    for file in files_under(&root) {
                        let mut needed = vec![file.clone()];
                        let mut dir = file.parent();
                        while let Some(d) = dir.filter(|d| d.starts_with(&root)) {
                            needed.push(d.to_owned());
                            dir = d.parent();
                        }
                        for p in needed {
                            if !synced.contains(&p) {
                                problems.push(format!("{} not fsynced before commit", p.display()));
                            }
                        }
                        seen.lock().unwrap().push(file.display().to_string());
                    }
                } else {
                    // Listing shows completed objects only (a multipart
                    // upload not yet completed is invisible).
                    let keys = std::thread::scope(|s| {
                        s.spawn(|| {
                            tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .unwrap()
                                .block_on(async {
                                    use futures::TryStreamExt;
                                    store
                                        .object_store()
                                        .list(None)
                                        .map_ok(|m| (m.location.to_string(), m.size))
                                        .try_collect::<Vec<_>>()
                                        .await
                                        .unwrap()
                                })
                        })
                        .join()
                        .unwrap()
                    });
                    for (k, size) in keys {
                        if size == 0 {
                            problems.push(format!("{k} is empty at commit"));
                        }
                        seen.lock().unwrap().push(k);
                    }
                }
            })
        };
        let a = Archiver::new(
            app.hot.clone(),
            store.clone(),
            ArchiveConfig {
                failpoint: Some(hook),
                ..ArchiveConfig::default()
            },
        );
        let report = run(&a).await;
        assert!(report.succeeded(), "{report:?}");
        assert_eq!(*problems.lock().unwrap(), Vec::<String>::new());
        let seen = seen_at_commit.lock().unwrap().clone();
        for (_, _, _, key, _) in manifest(&app).await {
            assert!(
                seen.iter().any(|s| s.ends_with(&key)),
                "{key} was not in the store when its chunk was dropped: {seen:?}"
            );
        }
        if store.is_local() {
            assert!(!store.synced().is_empty());
        }
        assert_eq!(hot_plus_cold(&app, &cold).await, sent.sorted());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_that_cannot_lock_the_table_at_once_retries_instead_of_stalling_everyone() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest").await;
    let mut sent = Sent::default();
    seed_days(&app, &[("alpha", key.as_str())], 31, 2, 20, &mut sent).await;
    let cold = TestCold::s3();
    // Today's partition exists before the reader comes (creating one is DDL,
    // which waits for readers like any DDL).
    let other = app.key("beta", "ingest").await;
    app.ingest_ok(
        &other,
        &[strata_tests::recent_event(Uuid::new_v4(), "b", 0)],
    )
    .await;

    // A long reader (a slow stats query) holds `events` when the commit
    // comes: each attempt waits at most 200 ms (everything queued behind
    // the commit waits no longer), then retries after a pause.
    let (hook, paused, resume) = pause_at("after_verify");
    let a = Archiver::new(
        app.hot.clone(),
        cold.store.clone(),
        ArchiveConfig {
            exclusive_lock_timeout: Duration::from_millis(200),
            commit_attempts: 8,
            failpoint: Some(hook),
            ..ArchiveConfig::default()
        },
    );
    let run = tokio::spawn(async move { a.run_once().await });
    tokio::task::spawn_blocking(move || paused.recv().unwrap())
        .await
        .unwrap();
    let mut reader = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN ACCESS SHARE MODE")
        .execute(&mut *reader)
        .await
        .unwrap();
    resume.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    // Ingest into today still goes through while the commit keeps retrying.
    let other = app.key("beta", "ingest").await;
    app.ingest_ok(
        &other,
        &[strata_tests::recent_event(Uuid::new_v4(), "b", 0)],
    )
    .await;
    reader.commit().await.unwrap();

    let RunOutcome::Completed(report) = run.await.unwrap().unwrap() else {
        panic!("skipped")
    };
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(manifest(&app).await.len(), 2);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(events, 2, "only beta's events of today stay hot");
}
