//! `strata-archiver run --once` and `compact` as processes: crash injection
//! at every step of a chunk's life, of a retention expiry, of an erasure
//! and of a compaction, then a rerun; nothing lost, nothing counted twice,
//! nothing of an erased user left anywhere.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use strata_archive::FAIL_POINTS;
use strata_tests::archive::{Row, Sent, assert_rollups_match_parquet, hot_plus_cold, seed_days};
use strata_tests::cold::TestCold;
use strata_tests::lake::assert_lake_shows_manifest;
use strata_tests::{TestApp, spawn_app};

const BIN: &str = env!("CARGO_BIN_EXE_strata-archiver");

fn archiver(app: &TestApp, cold: &TestCold, args: &[&str], failpoint: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("STRATA_DATABASE_URL", &app.db.url)
        .env("RUST_LOG", "warn")
        // Replaced objects go in the run that replaced them: the final
        // state of a rerun is then the bucket the manifest lists.
        .env("STRATA_COLD_DELETE_GRACE", "0s")
        .env("STRATA_LAKE_HISTORY", "0s")
        .envs(cold.env_vars());
    if let Some(p) = failpoint {
        cmd.env("STRATA_ARCHIVER_FAILPOINT", p);
    }
    cmd.output().unwrap()
}

async fn assert_exactly_once(app: &TestApp, cold: &TestCold, sent: &Sent) {
    // Hot + cold equals what was sent, row for row.
    assert_eq!(hot_plus_cold(app, cold).await, sent.sorted());
    // A plain glob over the bucket sees no event twice.
    if !cold.keys().await.is_empty() {
        let (rows, ids) = cold.count_rows_and_ids().await;
        assert_eq!(rows, ids, "duplicate event_id in the bucket");
    }
}

/// Two projects with 25 events on each of three days, 31 to 33 days old.
async fn seeded() -> (TestApp, Sent) {
    let app = spawn_app().await;
    let a = app.key("alpha", "ingest").await;
    let b = app.key("beta", "ingest").await;
    let mut sent = Sent::default();
    seed_days(
        &app,
        &[("alpha", a.as_str()), ("beta", b.as_str())],
        31,
        3,
        25,
        &mut sent,
    )
    .await;
    (app, sent)
}

async fn crash_then_rerun(point: &str) {
    let (app, sent) = seeded().await;
    let cold = TestCold::s3();

    let out = archiver(&app, &cold, &["run", "--once"], Some(point));
    assert_eq!(out.status.code(), Some(86), "{point}: {out:?}");
    // Whatever the crash left, the data is there exactly once already, and
    // the committed days' rollups equal their files…
    assert_exactly_once(&app, &cold, &sent).await;
    assert_rollups_match_parquet(&app, &cold, point).await;
    assert_lake_shows_manifest(&app.pool, point).await;

    // …and a rerun completes the job.
    let out = archiver(&app, &cold, &["run", "--once"], None);
    assert!(out.status.success(), "{point}: {out:?}");
    assert!(app.hot.list_chunks().await.unwrap().is_empty(), "{point}");
    assert_exactly_once(&app, &cold, &sent).await;
    let listed: Vec<String> = sqlx::query_scalar("SELECT object_key FROM cold_files ORDER BY 1")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        listed,
        cold.keys().await,
        "{point}: bucket and manifest differ"
    );
    assert_eq!(listed.len(), 6);
    assert_rollups_match_parquet(&app, &cold, point).await;
    assert_lake_shows_manifest(&app.pool, point).await;
}

#[tokio::test]
async fn crash_after_write() {
    crash_then_rerun(FAIL_POINTS[0]).await;
}

#[tokio::test]
async fn crash_after_verify() {
    crash_then_rerun(FAIL_POINTS[1]).await;
}

#[tokio::test]
async fn crash_in_commit_before_drop() {
    crash_then_rerun(FAIL_POINTS[2]).await;
}

#[tokio::test]
async fn crash_in_commit_after_drop() {
    crash_then_rerun(FAIL_POINTS[3]).await;
}

#[tokio::test]
async fn crash_between_chunks() {
    crash_then_rerun(FAIL_POINTS[4]).await;
}

#[tokio::test]
async fn run_once_moves_a_real_chunk_and_dry_run_moves_nothing() {
    let app = spawn_app().await;
    let a = app.key("alpha", "ingest").await;
    let mut sent = Sent::default();
    seed_days(&app, &[("alpha", a.as_str())], 33, 1, 10, &mut sent).await;
    for cold in [TestCold::s3(), TestCold::file()] {
        let out = archiver(&app, &cold, &["run", "--once", "--dry-run"], None);
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let chunks = app.hot.list_chunks().await.unwrap();
        if chunks.is_empty() {
            continue; // moved by the S3 pass already
        }
        assert!(text.contains(&chunks[0].day().to_string()), "{text}");
        assert!(cold.keys().await.is_empty());
        let out = archiver(&app, &cold, &["run", "--once"], None);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(cold.keys().await.len(), 1);
        assert_exactly_once(&app, &cold, &sent).await;
    }
    // A bad failpoint name is refused, a down store fails the run (exit 1), data stays.
    let out = archiver(&app, &TestCold::file(), &["run", "--once"], Some("nowhere"));
    assert!(!out.status.success());
    seed_days(&app, &[("alpha", a.as_str())], 40, 1, 5, &mut sent).await;
    let out = archiver(&app, &TestCold::unreachable(), &["run", "--once"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stay hot"));
    assert_eq!(app.hot.list_chunks().await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_daemon_archives_on_its_schedule_and_stops_on_sigterm() {
    let app = spawn_app().await;
    let a = app.key("alpha", "ingest").await;
    let mut sent = Sent::default();
    seed_days(&app, &[("alpha", a.as_str())], 35, 2, 10, &mut sent).await;
    let cold = TestCold::file();
    let mut child = tokio::process::Command::new(BIN)
        .env("STRATA_DATABASE_URL", &app.db.url)
        .env("STRATA_ARCHIVE_SCHEDULE", "*/1 * * * * *")
        .env("RUST_LOG", "warn")
        .envs(cold.env_vars())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut moved = false;
    for _ in 0..100 {
        if app.hot.list_chunks().await.unwrap().is_empty() {
            moved = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(moved, "the daemon did not archive within 10 s");
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(std::time::Duration::from_secs(15), child.wait())
        .await
        .expect("the daemon did not stop within 15 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_exactly_once(&app, &cold, &sent).await;
}

#[tokio::test]
async fn crash_after_the_retention_commit_leaves_only_orphans_for_the_next_sweep() {
    let (app, mut sent) = seeded().await;
    let cold = TestCold::s3();
    let out = archiver(&app, &cold, &["run", "--once"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(cold.keys().await.len(), 6);

    // alpha keeps 32 days: its oldest days expire (the expiry's clock is
    // held back by the closed-day margin, as the archiver's is).
    let alpha = strata_model::ProjectId(app.project_id("alpha").await);
    let days = strata_model::RetentionDays::new(32).unwrap();
    app.hot.set_retention(alpha, Some(days)).await.unwrap();
    let horizon = days.horizon(
        (chrono::Utc::now() - strata_store::shared::locks::CLOSED_DAY_MARGIN).date_naive(),
    );
    let start = horizon
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros();
    sent.rows
        .retain(|r| r.project_id != alpha.0 || r.ts_micros >= start);

    let point = FAIL_POINTS[5];
    let out = archiver(&app, &cold, &["run", "--once"], Some(point));
    assert_eq!(out.status.code(), Some(86), "{point}: {out:?}");
    // The manifest no longer lists the expired files (nor does the lake
    // catalog); their objects wait for deletion, which readers through the
    // manifest or the catalog never see.
    assert_eq!(hot_plus_cold(&app, &cold).await, sent.sorted());
    let listed: Vec<String> = sqlx::query_scalar("SELECT object_key FROM cold_files ORDER BY 1")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(listed.len() < 6, "nothing expired: {listed:?}");
    assert_eq!(
        cold.keys().await.len(),
        6,
        "objects deleted before the crash"
    );
    assert_lake_shows_manifest(&app.pool, point).await;

    // The rerun deletes them: bucket and manifest agree again.
    let out = archiver(&app, &cold, &["run", "--once"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(cold.keys().await, listed);
    assert_exactly_once(&app, &cold, &sent).await;
    assert_rollups_match_parquet(&app, &cold, point).await;
    assert_lake_shows_manifest(&app.pool, point).await;
}

/// The rows of `sent` that are not `project`'s `user`'s, and those that are.
fn split(sent: &Sent, project: i64, user: &str) -> (Vec<Row>, Vec<Row>) {
    sent.sorted()
        .into_iter()
        .partition(|r| r.project_id != project || r.user_id != user)
}

async fn listed(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT object_key FROM cold_files ORDER BY 1")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn crash_during_an_erasure_then_rerun(point: &str) {
    let (app, mut sent) = seeded().await;
    let cold = TestCold::s3();
    let out = archiver(&app, &cold, &["run", "--once"], None);
    assert!(out.status.success(), "{out:?}");
    // The user also has hot rows, today's and a sealed day's.
    let alpha = app.project_id("alpha").await;
    let key = app.key("alpha", "ingest").await;
    // The user with the most cold rows (the seed's users are random).
    let mut rows_of: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in sent.rows.iter().filter(|r| r.project_id == alpha) {
        *rows_of.entry(r.user_id.as_str()).or_default() += 1;
    }
    let user = rows_of
        .iter()
        .max_by_key(|(u, n)| (**n, std::cmp::Reverse(**u)))
        .map(|(u, _)| (*u).to_owned())
        .unwrap();
    let user = user.as_str();
    for hours in [0, 30] {
        let ts = chrono::Utc::now() - chrono::Duration::hours(hours) - chrono::Duration::seconds(5);
        let id = uuid::Uuid::new_v4();
        let ts_text = ts.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        app.ingest_ok(&key, &[strata_tests::event(id, user, "view", &ts_text)])
            .await;
        sent.rows.push(Row {
            project_id: alpha,
            event_id: id.to_string(),
            user_id: user.to_owned(),
            event_type: "view".to_owned(),
            ts_micros: ts_text
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
                .timestamp_micros(),
            properties: Some(serde_json::json!({"path": "/pricing", "n": 1})),
        });
    }
    let (kept, erased) = split(&sent, alpha, user);
    assert!(erased.len() > 2, "the user has cold rows too");
    let (record, _) = app
        .hot
        .request_erasure(strata_model::ProjectId(alpha), user, "test")
        .await
        .unwrap();

    let out = archiver(&app, &cold, &["run", "--once"], Some(point));
    assert_eq!(out.status.code(), Some(86), "{point}: {out:?}");
    // Each day is as it was or wholly rewritten: every other row is there
    // exactly once, and what is left of the user is a part of it.
    let now = hot_plus_cold(&app, &cold).await;
    let (now_kept, now_erased): (Vec<Row>, Vec<Row>) = now
        .into_iter()
        .partition(|r| r.project_id != alpha || r.user_id != user);
    assert_eq!(now_kept, kept, "{point}");
    assert!(now_erased.iter().all(|r| erased.contains(r)), "{point}");
    assert_rollups_match_parquet(&app, &cold, point).await;
    assert_lake_shows_manifest(&app.pool, point).await;

    let out = archiver(&app, &cold, &["run", "--once"], None);
    assert!(out.status.success(), "{point}: {out:?}");
    assert_eq!(hot_plus_cold(&app, &cold).await, kept, "{point}");
    // No row of the user in a plain glob over the bucket, which holds
    // exactly the manifest's objects.
    assert!(
        !cold
            .glob()
            .await
            .iter()
            .any(|r| r.project_id == alpha && r.user_id == user),
        "{point}"
    );
    assert_eq!(cold.keys().await, listed(&app).await, "{point}");
    assert_rollups_match_parquet(&app, &cold, point).await;
    assert_lake_shows_manifest(&app.pool, point).await;
    let done = app.hot.erasure(None, record.id).await.unwrap().unwrap();
    assert_eq!(done.status, "done", "{point}");
    assert_eq!(
        (done.hot_rows + done.cold_rows) as usize,
        erased.len(),
        "{point}: {done:?}"
    );
}

#[tokio::test]
async fn crash_after_an_erasure_wrote_a_day() {
    crash_during_an_erasure_then_rerun(FAIL_POINTS[6]).await;
}

#[tokio::test]
async fn crash_after_an_erasure_committed_a_day() {
    crash_during_an_erasure_then_rerun(FAIL_POINTS[7]).await;
}

#[tokio::test]
async fn crash_after_an_erasure_finished_the_cold_tier() {
    crash_during_an_erasure_then_rerun(FAIL_POINTS[8]).await;
}

async fn crash_during_a_compaction_then_rerun(point: &str) {
    let (app, mut sent) = seeded().await;
    let cold = TestCold::s3();
    let out = archiver(&app, &cold, &["run", "--once"], None);
    assert!(out.status.success(), "{out:?}");
    // Late events give alpha's days a second file (no compaction yet).
    let a = app.key("alpha", "ingest").await;
    seed_days(&app, &[("alpha", a.as_str())], 31, 3, 5, &mut sent).await;
    let no_compaction = [
        "run",
        "--once",
        "--compact-max-files",
        "100",
        "--compact-min-bytes",
        "0",
    ];
    let out = archiver(&app, &cold, &no_compaction, None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(listed(&app).await.len(), 9);

    let out = archiver(&app, &cold, &["compact", "--dry-run"], None);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("3 day(s)"),
        "{out:?}"
    );
    let out = archiver(&app, &cold, &["compact"], Some(point));
    assert_eq!(out.status.code(), Some(86), "{point}: {out:?}");
    assert_eq!(hot_plus_cold(&app, &cold).await, sent.sorted(), "{point}");
    assert_rollups_match_parquet(&app, &cold, point).await;
    assert_lake_shows_manifest(&app.pool, point).await;

    let out = archiver(&app, &cold, &["compact"], None);
    assert!(out.status.success(), "{point}: {out:?}");
    assert_exactly_once(&app, &cold, &sent).await;
    let keys = listed(&app).await;
    assert_eq!(keys.len(), 6, "{point}: one file per project and day");
    assert_eq!(cold.keys().await, keys, "{point}");
    assert_rollups_match_parquet(&app, &cold, point).await;
    assert_lake_shows_manifest(&app.pool, point).await;
}

#[tokio::test]
async fn crash_after_a_compaction_wrote_a_day() {
    crash_during_a_compaction_then_rerun(FAIL_POINTS[9]).await;
}

#[tokio::test]
async fn crash_after_a_compaction_committed_a_day() {
    crash_during_a_compaction_then_rerun(FAIL_POINTS[10]).await;
}
