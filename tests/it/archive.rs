use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use strata_archive::{ArchiveConfig, Archiver, ChunkOutcome, RunOutcome, RunReport};
use strata_cold::WriterOptions;
use strata_tests::archive::{Sent, hot_plus_cold, seed_days, send_once_at};
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
        strata_tests::compacting(),
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
        ..strata_tests::compacting()
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
            ..strata_tests::compacting()
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
    let hook = send_once_at(
        &app,
        &key,
        "after_verify",
        vec![event(late_id, "late", "view", &late_ts)],
    );
    let a = Archiver::new(
        app.hot.clone(),
        cold.store.clone(),
        ArchiveConfig {
            failpoint: Some(hook),
            ..strata_tests::compacting()
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
    .bind(strata_store::shared::locks::ARCHIVER)
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
            ..strata_tests::compacting()
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
            ..strata_tests::compacting()
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
                ..strata_tests::compacting()
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
            ..strata_tests::compacting()
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

/// Event ids are unique per project only (ADR-037). Project beta sends a
/// late event reusing an id project alpha already has on the day being
/// archived, between the read and the commit; alpha's rows are older than
/// the read's recent window, so they are not remembered by id. Each project
/// must end with each of its events exactly once, in the tiers and in stats.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_project_reusing_an_id_during_an_archive_leaves_each_event_once() {
    let app = spawn_app().await;
    let alpha_key = app.key("alpha", "ingest,read").await;
    let beta_key = app.key("beta", "ingest,read").await;
    let mut sent = Sent::default();
    seed_days(&app, &[("alpha", alpha_key.as_str())], 31, 2, 60, &mut sent).await;
    sqlx::query("UPDATE events SET received_at = received_at - interval '1 hour'")
        .execute(&app.pool)
        .await
        .unwrap();
    let (alpha, beta) = (app.project_id("alpha").await, app.project_id("beta").await);
    let oldest = (Utc::now() - chrono::Duration::days(32)).date_naive();
    let day_of = |micros: i64| {
        chrono::DateTime::from_timestamp_micros(micros)
            .unwrap()
            .date_naive()
    };
    let shared = sent
        .rows
        .iter()
        .find(|r| day_of(r.ts_micros) == oldest)
        .unwrap()
        .clone();
    let twin = strata_tests::archive::Row {
        project_id: beta,
        user_id: "mirror".into(),
        event_type: "mirrored".into(),
        properties: Some(serde_json::json!({"path": "/pricing", "n": 1})),
        ..shared.clone()
    };
    let twin_ts = chrono::DateTime::from_timestamp_micros(twin.ts_micros)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let hook = send_once_at(
        &app,
        &beta_key,
        "after_verify",
        vec![event(
            shared.event_id.parse().unwrap(),
            "mirror",
            "mirrored",
            &twin_ts,
        )],
    );
    let cold = TestCold::s3();
    let first = Archiver::new(
        app.hot.clone(),
        cold.store.clone(),
        ArchiveConfig {
            failpoint: Some(hook),
            ..strata_tests::no_compaction()
        },
    );
    assert!(run(&first).await.succeeded());
    // Only beta's newcomer stays hot; alpha's row of the same id moved.
    let hot: Vec<(i64, Uuid)> = sqlx::query_as("SELECT project_id, event_id FROM events")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(hot, vec![(beta, shared.event_id.parse::<Uuid>().unwrap())]);
    sent.rows.push(twin);
    assert_eq!(hot_plus_cold(&app, &cold).await, sent.sorted());

    assert!(run(&archiver(&app, &cold)).await.succeeded());
    assert_eq!(hot_plus_cold(&app, &cold).await, sent.sorted());
    strata_tests::archive::assert_rollups_match_parquet(&app, &cold, "shared id").await;

    // Every stat of each project equals the plain count of what it sent.
    let to = oldest + chrono::Duration::days(1);
    for (project, key) in [(alpha, &alpha_key), (beta, &beta_key)] {
        let events: Vec<strata_tests::oracle::Ev> = sent
            .rows
            .iter()
            .filter(|r| r.project_id == project)
            .map(|r| strata_tests::oracle::Ev {
                user: r.user_id.clone(),
                event_type: r.event_type.clone(),
                ts: chrono::DateTime::from_timestamp_micros(r.ts_micros).unwrap(),
                props: serde_json::Value::Null,
            })
            .collect();
        let (status, top) = app
            .get_json(key, &format!("/v1/stats/top-events?from={oldest}&to={to}"))
            .await;
        assert_eq!(status, 200, "{top}");
        assert_eq!(
            strata_tests::answers::top_of(&top),
            strata_tests::oracle::top_events(&events, oldest, to, 10),
            "project {project}: {top}"
        );
        let (status, dau) = app
            .get_json(key, &format!("/v1/stats/dau?from={oldest}&to={to}"))
            .await;
        assert_eq!(status, 200, "{dau}");
        assert_eq!(
            strata_tests::answers::dau_of(&dau),
            strata_tests::oracle::dau(&events, oldest, to),
            "project {project}: {dau}"
        );
    }
}

/// A second database pointed at the cold store of a first (a staging copy,
/// a restore started beside the original): its archiver refuses to run
/// (the store's owner marker names the first deployment, ADR-037), and the
/// first one's files and answers are intact.
#[tokio::test]
async fn a_second_database_on_the_same_cold_store_refuses_and_deletes_nothing() {
    let a = spawn_app().await;
    let a_key = a.key("alpha", "ingest,read").await;
    let mut sent_a = Sent::default();
    seed_days(&a, &[("alpha", a_key.as_str())], 31, 3, 30, &mut sent_a).await;
    let cold = TestCold::s3();
    assert!(run(&archiver(&a, &cold)).await.succeeded());
    let files = cold.keys().await;
    assert_eq!(files.len(), 3, "{files:?}");

    let b = spawn_app().await;
    let b_key = b.key("alpha", "ingest").await;
    let mut sent_b = Sent::default();
    seed_days(&b, &[("alpha", b_key.as_str())], 31, 3, 10, &mut sent_b).await;
    for attempt in [
        archiver(&b, &cold).run_once().await,
        archiver(&b, &cold).erase_once().await,
    ] {
        let err = attempt.unwrap_err();
        assert!(
            matches!(
                err,
                strata_archive::ArchiveError::Cold(strata_cold::ColdError::Owned { .. })
            ),
            "{err}"
        );
    }
    assert_eq!(cold.keys().await, files, "the first deployment's files");
    assert_eq!(hot_plus_cold(&a, &cold).await, sent_a.sorted());
    assert_eq!(
        hot_plus_cold(&b, &cold).await,
        sent_b.sorted(),
        "b still holds its events"
    );
    let b_runs: i64 = sqlx::query_scalar("SELECT count(*) FROM archive_runs")
        .fetch_one(&b.pool)
        .await
        .unwrap();
    assert_eq!(b_runs, 0, "a refused run records nothing");

    // The first deployment goes on, and answers as before.
    assert!(run(&archiver(&a, &cold)).await.succeeded());
    let (from, to) = (
        (Utc::now() - chrono::Duration::days(33)).date_naive(),
        (Utc::now() - chrono::Duration::days(31)).date_naive(),
    );
    let events: Vec<strata_tests::oracle::Ev> = sent_a
        .rows
        .iter()
        .map(|r| strata_tests::oracle::Ev {
            user: r.user_id.clone(),
            event_type: r.event_type.clone(),
            ts: chrono::DateTime::from_timestamp_micros(r.ts_micros).unwrap(),
            props: serde_json::Value::Null,
        })
        .collect();
    let (status, top) = a
        .get_json(&a_key, &format!("/v1/stats/top-events?from={from}&to={to}"))
        .await;
    assert_eq!(status, 200, "{top}");
    assert_eq!(
        strata_tests::answers::top_of(&top),
        strata_tests::oracle::top_events(&events, from, to, 10)
    );
}

/// PostgreSQL restored from a backup older than the cold tier: the runs
/// after the backup are unknown to it. Its next run deletes none of their
/// objects, and takes a run id above theirs, so it can never write a key
/// one of them holds.
#[tokio::test]
async fn a_database_restored_from_before_a_run_keeps_that_runs_objects_and_never_reuses_its_id() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest").await;
    let mut sent = Sent::default();
    seed_days(&app, &[("alpha", key.as_str())], 31, 2, 20, &mut sent).await;
    let cold = TestCold::s3();
    let first = run(&archiver(&app, &cold)).await;
    assert!(first.succeeded());
    let lost = cold.keys().await;
    let sorted = |mut rows: Vec<strata_tests::cold::ColdRow>| {
        rows.sort();
        rows
    };
    let lost_rows = sorted(cold.glob_keys(&lost).await);
    assert_eq!(lost_rows.len(), 40);

    // The "restore": the database as it was before that run.
    for sql in [
        "DELETE FROM cold_files",
        "DELETE FROM day_rollups",
        "DELETE FROM day_rollup_sources",
        "DELETE FROM archive_chunk_results",
        "DELETE FROM archive_lease",
        "DELETE FROM archive_runs",
        "ALTER TABLE archive_runs ALTER COLUMN id RESTART WITH 1",
    ] {
        sqlx::query(sql).execute(&app.pool).await.unwrap();
    }
    // Events of the same days arrive again after the restore.
    let mut again = Sent::default();
    seed_days(&app, &[("alpha", key.as_str())], 31, 2, 5, &mut again).await;
    let next = run(&archiver(&app, &cold)).await;
    assert!(next.succeeded(), "{next:?}");
    assert!(next.run_id > first.run_id, "{} reused", next.run_id);
    assert_eq!(next.orphans_removed, 0);
    let now = cold.keys().await;
    assert!(lost.iter().all(|k| now.contains(k)), "{lost:?} / {now:?}");
    assert_eq!(now.len(), lost.len() + 2);
    assert_eq!(sorted(cold.glob_keys(&lost).await), lost_rows, "unchanged");
    assert_eq!(hot_plus_cold(&app, &cold).await, again.sorted());
}
