//! The archive as a DuckLake table (ADR-041), read by DuckDB 1.5.5 with its
//! `ducklake` and `postgres_scanner` extensions, as a data engineer reads
//! it: after random sequences of the operations that change the manifest,
//! while swaps commit, back in time, after an erasure, and through the
//! recipes of the README and docs/cold-tier.md with a role that can read
//! the catalog and nothing else.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use strata_archive::{ArchiveConfig, Archiver, RunOutcome};
use strata_model::{ProjectId, RetentionDays};
use strata_tests::answers::{dau_of, top_of};
use strata_tests::cold::TestCold;
use strata_tests::docs::{code_blocks, substitute};
use strata_tests::lake::{assert_lake_shows_manifest, attach, python, python_command};
use strata_tests::{TestApp, compacting, event, no_compaction, spawn_app, test_seed};
use uuid::Uuid;

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn at(day: NaiveDate, second: i64) -> String {
    (day.and_hms_opt(0, 0, 0).unwrap().and_utc() + Duration::seconds(second))
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn archiver(app: &TestApp, config: ArchiveConfig) -> Archiver {
    Archiver::new(
        app.hot.clone(),
        app.cold.store.clone(),
        ArchiveConfig {
            hot_retention: std::time::Duration::from_secs(30 * 86_400),
            ..config
        },
    )
}

async fn completed(outcome: RunOutcome) {
    match outcome {
        RunOutcome::Completed(r) => assert!(r.error.is_none(), "{r:?}"),
        RunOutcome::Skipped => panic!("run skipped"),
    }
}

/// Compaction's config, with `history` of lake snapshots.
fn with_history(history: std::time::Duration) -> ArchiveConfig {
    ArchiveConfig {
        lake_history: history,
        ..compacting()
    }
}

/// What DuckDB sees through the catalog: per (project, date), rows and
/// distinct event ids.
async fn lake_days(app: &TestApp) -> BTreeMap<(i64, String), (i64, i64)> {
    let out = python(&format!(
        "{}import json\n\
         rows = con.sql(\"SELECT project_id, CAST(date AS VARCHAR), count(*), count(DISTINCT event_id) \
                         FROM strata.events GROUP BY ALL ORDER BY ALL\").fetchall()\n\
         print(json.dumps(rows))\n",
        attach(&app.db.url)
    ))
    .await;
    let rows: Vec<(i64, String, i64, i64)> = serde_json::from_str(out.trim()).unwrap();
    rows.into_iter()
        .map(|(p, d, n, ids)| ((p, d), (n, ids)))
        .collect()
}

/// The manifest's rows per (project, date), each counted as distinct ids
/// too (a given event is in exactly one committed file).
async fn manifest_days(app: &TestApp) -> BTreeMap<(i64, String), (i64, i64)> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT project_id, to_char(day, 'YYYY-MM-DD'), sum(rows)::int8 FROM cold_files GROUP BY 1, 2",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    rows.into_iter().map(|(p, d, n)| ((p, d), (n, n))).collect()
}

/// DuckDB's DAU and top events of `project` over `[from, to]` through the
/// catalog, in the API's shapes.
async fn lake_stats(
    app: &TestApp,
    project: i64,
    (from, to): (NaiveDate, NaiveDate),
) -> (Vec<(NaiveDate, u64)>, Vec<(String, u64, u64)>) {
    let out = python(&format!(
        "{}import json\n\
         where = \"project_id = {project} AND date BETWEEN '{from}' AND '{to}'\"\n\
         dau = con.sql(f\"SELECT CAST(date AS VARCHAR), count(DISTINCT user_id) FROM strata.events \
                         WHERE {{where}} GROUP BY 1 ORDER BY 1\").fetchall()\n\
         top = con.sql(f\"SELECT event_type, count(*), count(DISTINCT user_id) FROM strata.events \
                         WHERE {{where}} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10\").fetchall()\n\
         print(json.dumps([dau, top]))\n",
        attach(&app.db.url)
    ))
    .await;
    type Top = Vec<(String, u64, u64)>;
    let (dau, top): (Vec<(String, u64)>, Top) = serde_json::from_str(out.trim()).unwrap();
    (
        dau.into_iter()
            .map(|(d, n)| (d.parse().unwrap(), n))
            .collect(),
        top,
    )
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Ingest,
    Archive,
    Compact,
    Erase,
    Expire,
}

/// After a random sequence of ingest (late events and resent duplicates
/// included), archive runs, compactions, erasures and retention expiry,
/// the catalog shows exactly the manifest after every step, and DuckDB
/// through it counts the manifest's rows per project and day, with no
/// event twice, and answers DAU and top events as the API does.
#[tokio::test]
async fn after_random_lifecycles_duckdb_through_the_catalog_sees_the_manifest_and_the_apis_answers()
{
    let app = spawn_app().await;
    let keys = [
        app.key("alpha", "ingest,read").await,
        app.key("beta", "ingest,read").await,
    ];
    let projects = [app.project_id("alpha").await, app.project_id("beta").await];
    let mut rng = StdRng::seed_from_u64(test_seed());
    let first = today() - Duration::days(60);
    let days = (first, first + Duration::days(7));
    let mut sent: Vec<(usize, Value)> = Vec::new();
    let mut steps = vec![Step::Ingest, Step::Archive];
    steps.extend((0..10).map(|_| {
        [
            Step::Ingest,
            Step::Archive,
            Step::Compact,
            Step::Erase,
            Step::Expire,
        ][rng.random_range(0..5)]
    }));
    steps.extend([Step::Ingest, Step::Archive]);
    let mut expired = false;
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Ingest => {
                let p = rng.random_range(0..2);
                let events: Vec<Value> = (0..rng.random_range(20..80))
                    .map(|_| {
                        let day = first + Duration::days(rng.random_range(0..8));
                        event(
                            Uuid::new_v4(),
                            &format!("u{}", rng.random_range(0..12)),
                            ["view", "click", "buy", "share"][rng.random_range(0..4)],
                            &at(day, rng.random_range(0..86_400)),
                        )
                    })
                    .collect();
                app.ingest_ok(&keys[p], &events).await;
                // Some of an earlier batch again: duplicates.
                let again: Vec<Value> = sent
                    .iter()
                    .filter(|(q, _)| *q == p)
                    .take(5)
                    .map(|(_, e)| e.clone())
                    .collect();
                if !again.is_empty() {
                    app.ingest_ok(&keys[p], &again).await;
                }
                sent.extend(events.into_iter().map(|e| (p, e)));
            }
            Step::Archive => {
                completed(archiver(&app, no_compaction()).run_once().await.unwrap()).await
            }
            Step::Compact => {
                completed(archiver(&app, compacting()).compact_once().await.unwrap()).await
            }
            Step::Erase => {
                let p = rng.random_range(0..2);
                let user = format!("u{}", rng.random_range(0..12));
                app.hot
                    .request_erasure(ProjectId(projects[p]), &user, "test")
                    .await
                    .unwrap();
                completed(archiver(&app, compacting()).erase_once().await.unwrap()).await;
            }
            Step::Expire if !expired => {
                expired = true;
                let keep = RetentionDays::new(rng.random_range(54..58)).unwrap();
                app.hot
                    .set_retention(ProjectId(projects[1]), Some(keep))
                    .await
                    .unwrap();
                completed(archiver(&app, compacting()).run_once().await.unwrap()).await;
            }
            Step::Expire => {}
        }
        assert_lake_shows_manifest(&app.pool, &format!("step {i} {step:?}")).await;
        if i == steps.len() / 2 {
            assert_eq!(lake_days(&app).await, manifest_days(&app).await, "step {i}");
        }
    }
    assert!(
        app.hot
            .list_chunks()
            .await
            .unwrap()
            .iter()
            .all(|c| c.day() > days.1)
    );
    let seen = lake_days(&app).await;
    assert_eq!(seen, manifest_days(&app).await, "{steps:?}");
    assert!(!seen.is_empty());
    for (p, key) in projects.iter().zip(&keys) {
        let (dau, top) = lake_stats(&app, *p, days).await;
        let (s, body) = app
            .get_json(key, &format!("/v1/stats/dau?from={}&to={}", days.0, days.1))
            .await;
        assert_eq!(s, 200, "{body}");
        let api: Vec<(NaiveDate, u64)> = dau_of(&body).into_iter().filter(|d| d.1 > 0).collect();
        assert_eq!(dau, api, "project {p}: DAU");
        let (s, body) = app
            .get_json(
                key,
                &format!("/v1/stats/top-events?from={}&to={}", days.0, days.1),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(top, top_of(&body), "project {p}: top events");
    }
}

/// Readers that attach again and again while a day's files are swapped
/// (late files archived, then merged by compaction) each see the day's old
/// files or its new ones, never both: no event twice, and always a count
/// some committed state had.
#[tokio::test]
async fn readers_attaching_during_swaps_never_see_a_days_old_and_new_files_together() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest").await;
    let day = today() - Duration::days(40);
    let batch = |n: usize, from: i64| -> Vec<Value> {
        (0..n as i64)
            .map(|i| {
                event(
                    Uuid::new_v4(),
                    &format!("u{}", i % 7),
                    "view",
                    &at(day, from + i),
                )
            })
            .collect()
    };
    app.ingest_ok(&key, &batch(200, 0)).await;
    app.archive(30).await;
    // Replaced files stay for the history, so no reader fails on a file
    // deleted under it: what is tested is which files it is shown.
    let hour = std::time::Duration::from_secs(3_600);
    let keeping = archiver(&app, with_history(hour));
    let late = archiver(
        &app,
        ArchiveConfig {
            lake_history: hour,
            ..no_compaction()
        },
    );

    let stop = tempfile::NamedTempFile::new().unwrap();
    let stop_path = stop.path().display().to_string();
    drop(stop);
    let reader = python_command(&format!(
        "import os, duckdb\n\
         seen = []\n\
         while not os.path.exists('{stop_path}') or len(seen) < 20:\n\
         {body}\
         \x20   seen.append(con.sql(\"SELECT count(*), count(DISTINCT event_id) FROM strata.events WHERE date = '{day}'\").fetchone())\n\
         \x20   con.close()\n\
         print('\\n'.join(f'{{a}} {{b}}' for a, b in seen))\n",
        body = attach(&app.db.url)
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>(),
    ))
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();

    let mut counts = vec![200];
    for i in 0..12 {
        app.ingest_ok(&key, &batch(5, 1_000 + 10 * i)).await;
        completed(late.run_once().await.unwrap()).await;
        completed(keeping.compact_once().await.unwrap()).await;
        counts.push(counts.last().unwrap() + 5);
    }
    std::fs::write(&stop_path, b"").unwrap();
    let out = reader.wait_with_output().await.unwrap();
    let _ = std::fs::remove_file(&stop_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reads: Vec<(i64, i64)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (a, b) = l.split_once(' ').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    assert!(reads.len() >= 20, "{reads:?}");
    for (n, ids) in &reads {
        assert_eq!(n, ids, "a reader saw events twice: {reads:?}");
        assert!(counts.contains(n), "{n} is no committed state's: {reads:?}");
    }
    assert_lake_shows_manifest(&app.pool, "after the swaps").await;
}

/// The ids of `day`'s events through the catalog, at `version` or now.
async fn ids_at(app: &TestApp, day: NaiveDate, version: Option<i64>) -> Vec<String> {
    let at = version.map_or(String::new(), |v| format!(" AT (VERSION => {v})"));
    let out = python(&format!(
        "{}print('\\n'.join(r[0] for r in con.sql(\"SELECT event_id FROM strata.events{at} \
         WHERE date = '{day}' ORDER BY 1\").fetchall()))\n",
        attach(&app.db.url)
    ))
    .await;
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// As if the lake's history (an hour in these tests) and the grace period
/// had passed since every snapshot and swap so far.
async fn let_the_history_pass(app: &TestApp) {
    sqlx::raw_sql(
        "UPDATE strata_lake.ducklake_snapshot SET snapshot_time = snapshot_time - interval '2 hours';
         UPDATE cold_deletes SET delete_after = now() - interval '1 second'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
}

async fn snapshot_ids(app: &TestApp) -> Vec<i64> {
    app.hot.lake_snapshot_ids().await.unwrap()
}

async fn latest_snapshot(app: &TestApp) -> i64 {
    *snapshot_ids(app).await.last().unwrap()
}

/// Time travel to a snapshot before a compaction returns the same rows
/// from the old files, for the history; past it, that snapshot is expired
/// and the old objects are deleted.
#[tokio::test]
async fn replaced_files_stay_readable_back_in_time_for_the_history_then_go() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest").await;
    let day = today() - Duration::days(40);
    for from in [0, 100] {
        let events: Vec<Value> = (0..40)
            .map(|i| {
                event(
                    Uuid::new_v4(),
                    &format!("u{}", i % 5),
                    "view",
                    &at(day, from + i),
                )
            })
            .collect();
        app.ingest_ok(&key, &events).await;
        app.archive(30).await;
    }
    let before = latest_snapshot(&app).await;
    let old_keys = app.cold.keys().await;
    assert_eq!(old_keys.len(), 2);
    let ids = ids_at(&app, day, None).await;
    assert_eq!(ids.len(), 80);

    let keeping = archiver(&app, with_history(std::time::Duration::from_secs(3_600)));
    completed(keeping.compact_once().await.unwrap()).await;
    assert_eq!(app.cold.keys().await.len(), 3, "the old files stay");
    assert_eq!(ids_at(&app, day, None).await, ids);
    assert_eq!(ids_at(&app, day, Some(before)).await, ids);
    let files_then: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM strata_lake.ducklake_data_file
          WHERE begin_snapshot <= {before} AND (end_snapshot IS NULL OR end_snapshot > {before})"
    ))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(files_then, 2, "the snapshot before shows the two old files");

    let_the_history_pass(&app).await;
    completed(keeping.compact_once().await.unwrap()).await;
    let snapshots = snapshot_ids(&app).await;
    assert_eq!(
        snapshots,
        vec![latest_snapshot(&app).await],
        "only the latest is kept"
    );
    let left = app.cold.keys().await;
    assert_eq!(left.len(), 1);
    assert!(old_keys.iter().all(|k| !left.contains(k)), "{left:?}");
    assert_eq!(ids_at(&app, day, None).await, ids);
    assert_lake_shows_manifest(&app.pool, "after the history").await;
}

/// An erasure is the exception to the history: once it is done, no
/// snapshot left shows the user, and no object holds the user any more,
/// including those a compaction replaced just before (kept for the history
/// until the erasure took them over).
#[tokio::test]
async fn after_an_erasure_no_snapshot_and_no_object_holds_the_user() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest").await;
    let project = ProjectId(app.project_id("alpha").await);
    let day = today() - Duration::days(40);
    for from in [0, 100] {
        let events: Vec<Value> = (0..30)
            .map(|i| {
                let user = if i % 3 == 0 { "gone" } else { "kept" };
                event(Uuid::new_v4(), user, "view", &at(day, from + i))
            })
            .collect();
        app.ingest_ok(&key, &events).await;
        app.archive(30).await;
    }
    let keeping = archiver(&app, with_history(std::time::Duration::from_secs(3_600)));
    completed(keeping.compact_once().await.unwrap()).await;
    let before = latest_snapshot(&app).await;
    assert_eq!(app.cold.keys().await.len(), 3, "the compacted files stay");

    let (record, _) = app
        .hot
        .request_erasure(project, "gone", "test")
        .await
        .unwrap();
    completed(keeping.erase_once().await.unwrap()).await;
    let status = app
        .hot
        .erasure(None, record.id)
        .await
        .unwrap()
        .unwrap()
        .status;
    assert_eq!(status, "done");

    let snapshots = snapshot_ids(&app).await;
    assert!(!snapshots.contains(&before), "{snapshots:?}");
    let out = python(&format!(
        "{}for s in {snapshots:?}:\n\
         \x20   print(s, con.sql(f\"SELECT count(*) FILTER (WHERE user_id = 'gone'), count(*) FROM strata.events AT (VERSION => {{s}})\").fetchone())\n",
        attach(&app.db.url)
    ))
    .await;
    for line in out.lines() {
        assert!(line.contains("(0, 40)"), "{out}");
    }
    let rows = app.cold.glob().await;
    assert_eq!(rows.len(), 40, "every object left");
    assert!(rows.iter().all(|r| r.user_id == "kept"));
    assert_lake_shows_manifest(&app.pool, "after the erasure").await;
}

/// The catalog as a deployment from before it has it: no file.
async fn forget_the_catalogs_files(app: &TestApp) {
    sqlx::raw_sql(
        "DELETE FROM strata_lake.ducklake_data_file;
         DELETE FROM strata_lake.ducklake_file_column_stats;
         DELETE FROM strata_lake.ducklake_file_partition_value;
         UPDATE strata_lake.ducklake_table_stats SET record_count = 0, file_size_bytes = 0",
    )
    .execute(&app.pool)
    .await
    .unwrap();
}

/// A fresh catalog (a deployment from before it) is caught up by the next
/// archive run, and `lake rebuild` mends one edited behind Strata's back.
#[tokio::test]
async fn a_catalog_behind_the_manifest_is_caught_up_by_the_next_run() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest").await;
    let day = today() - Duration::days(40);
    let events: Vec<Value> = (0..30)
        .map(|i| {
            event(
                Uuid::new_v4(),
                "u",
                "view",
                &at(day + Duration::days(i % 3), i),
            )
        })
        .collect();
    app.ingest_ok(&key, &events).await;
    app.archive(30).await;
    // As if the files had been archived before the catalog existed.
    forget_the_catalogs_files(&app).await;
    let synced = app.archiver(30).sync_lake().await.unwrap();
    assert_eq!((synced.added, synced.ended), (3, 0));
    assert_lake_shows_manifest(&app.pool, "after the rebuild").await;
    let stats: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM strata_lake.ducklake_file_column_stats
          WHERE column_id = 6 AND min_value IS NOT NULL AND max_value IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stats, 3, "ts bounds read from the footers");
    assert_eq!(lake_days(&app).await, manifest_days(&app).await);
    // A file the manifest no longer lists is ended.
    sqlx::query("DELETE FROM cold_files WHERE seq = 0 AND day = $1")
        .bind(day)
        .execute(&app.pool)
        .await
        .unwrap();
    let synced = app.archiver(30).sync_lake().await.unwrap();
    assert_eq!((synced.added, synced.ended), (0, 1));
    assert_lake_shows_manifest(&app.pool, "after the second rebuild").await;
    assert_eq!(lake_days(&app).await, manifest_days(&app).await);
}

/// The first block of `page` fenced as `lang` that holds `needle`.
fn block(page: &str, lang: &str, needle: &str) -> String {
    code_blocks(page, lang)
        .into_iter()
        .map(|b| b.lines.join("\n") + "\n")
        .find(|b| b.contains(needle))
        .unwrap_or_else(|| panic!("{page} has no {lang} block with {needle:?}"))
}

/// `(project, day)` rows of a DuckDB answer printed as JSON.
fn rows_of(out: &str) -> Vec<(String, i64, i64)> {
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The reader's path of docs/cold-tier.md, run as written against S3: the
/// role its SQL creates reads the catalog (and through it the files) and
/// nothing else of the database; the README's query gives the same rows.
#[tokio::test]
async fn the_readers_path_in_the_docs_works_with_a_role_that_reads_only_the_catalog() {
    let cold = TestCold::s3();
    let s3 = cold.s3.clone();
    let app = TestApp::builder().cold(cold).spawn().await;
    let key = app.key("shop", "ingest").await;
    let project = app.project_id("shop").await;
    let day = today() - Duration::days(40);
    let events: Vec<Value> = (0..60)
        .map(|i| {
            let d = day + Duration::days(i % 3);
            event(Uuid::new_v4(), &format!("u{}", i % 7), "view", &at(d, i))
        })
        .collect();
    app.ingest_ok(&key, &events).await;
    app.archive(30).await;

    let role = format!("reader_{}", app.db.name);
    let grant = block("docs/cold-tier.md", "sql", "CREATE ROLE")
        .replace("strata_reader", &role)
        .replace("DATABASE strata", &format!("DATABASE {}", app.db.name));
    sqlx::raw_sql(&grant).execute(&app.pool).await.unwrap();
    let mut url = reqwest::Url::parse(&app.db.url).unwrap();
    url.set_username(&role).unwrap();
    let conninfo = format!(
        "dbname={} host={} port={} user={role}",
        app.db.name,
        url.host_str().unwrap(),
        url.port().unwrap_or(5432)
    );

    // The role reads nothing outside the catalog.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url.as_str())
        .await
        .unwrap();
    for table in ["events", "api_keys", "cold_files", "projects"] {
        let err = sqlx::query(&format!("SELECT 1 FROM {table} LIMIT 1"))
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("permission denied"),
            "{table}: {err}"
        );
    }
    sqlx::Connection::close(conn).await.unwrap();

    let recipe_as_written = block("docs/cold-tier.md", "python", "ducklake:postgres:");
    let (endpoint, region) = (s3.endpoint.unwrap(), s3.region.unwrap());
    let (key_id, secret) = (s3.access_key_id.unwrap(), s3.secret_access_key.unwrap());
    let endpoint = endpoint.trim_start_matches("http://").to_owned();
    let recipe = substitute(
        &recipe_as_written,
        &[
            ("con.execute(\"INSTALL ducklake\")", String::new()),
            ("con.execute(\"INSTALL postgres\")", String::new()),
            ("con.execute(\"INSTALL httpfs\")", String::new()),
            (
                "LOAD ducklake",
                format!(
                    "LOAD '{}'",
                    strata_tests::lake::extension("STRATA_TEST_DUCKDB_DUCKLAKE")
                ),
            ),
            (
                "LOAD postgres",
                format!(
                    "LOAD '{}'",
                    strata_tests::lake::extension("STRATA_TEST_DUCKDB_POSTGRES")
                ),
            ),
            (
                "LOAD httpfs",
                format!(
                    "LOAD '{}'",
                    strata_tests::lake::extension("STRATA_TEST_DUCKDB_HTTPFS")
                ),
            ),
            (
                "dbname=strata host=db.internal user=strata_reader password=the-reader-password",
                conninfo,
            ),
            ("KEY_ID 'strata'", format!("KEY_ID '{key_id}'")),
            ("SECRET 'the-minio-password'", format!("SECRET '{secret}'")),
            ("REGION 'us-east-1'", format!("REGION '{region}'")),
            (
                "ENDPOINT 'minio.internal:9000'",
                format!("ENDPOINT '{endpoint}'"),
            ),
            ("project_id = 1", format!("project_id = {project}")),
        ],
    );
    // The README shows the same statements.
    let short = block("README.md", "sql", "ducklake:postgres:");
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let original = &recipe_as_written;
    for statement in short.split(';').map(words).filter(|s| !s.is_empty()) {
        assert!(
            words(original).contains(&statement),
            "the README's {statement:?} is not docs/cold-tier.md's"
        );
    }
    let got = rows_of(
        &python(&format!(
            "{recipe}\nimport json\nprint(json.dumps([[str(d), e, u] for d, e, u in rows]))\n"
        ))
        .await,
    );
    let mut expected: BTreeMap<String, (i64, std::collections::BTreeSet<String>)> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let d = (day + Duration::days(i as i64 % 3)).to_string();
        let entry = expected.entry(d).or_default();
        entry.0 += 1;
        entry.1.insert(e["user_id"].as_str().unwrap().to_owned());
    }
    let expected: Vec<(String, i64, i64)> = expected
        .into_iter()
        .map(|(d, (n, users))| (d, n, users.len() as i64))
        .collect();
    assert_eq!(got, expected);
    sqlx::raw_sql(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .execute(&app.pool)
        .await
        .unwrap();
}

/// The catalog's tables are DuckLake 1.0's exactly as DuckDB's `ducklake`
/// extension creates them: the same tables, columns and types.
#[tokio::test]
async fn the_catalog_tables_are_those_duckdb_creates() {
    let app = spawn_app().await;
    let data = tempfile::tempdir().unwrap();
    python(&format!(
        "{}con.execute(\"ATTACH 'ducklake:postgres:{}' AS fresh (METADATA_SCHEMA 'ducklake_ref', DATA_PATH '{}/')\")\n",
        attach(&app.db.url),
        app.db.url,
        data.path().display()
    ))
    .await;
    let columns = |schema: &'static str| {
        let pool = app.pool.clone();
        async move {
            let rows: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text, data_type::text
                   FROM information_schema.columns
                  WHERE table_schema = $1 AND table_name NOT LIKE 'ducklake_inlined_data_%'
                  ORDER BY 1, ordinal_position",
            )
            .bind(schema)
            .fetch_all(&pool)
            .await
            .unwrap();
            rows
        }
    };
    let reference = columns("ducklake_ref").await;
    assert!(reference.len() > 100, "{reference:?}");
    assert_eq!(columns("strata_lake").await, reference);
    let version: String = sqlx::query_scalar(
        "SELECT value FROM ducklake_ref.ducklake_metadata WHERE key = 'version'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let ours: String =
        sqlx::query_scalar("SELECT value FROM strata_lake.ducklake_metadata WHERE key = 'version'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(ours, version);
}

/// How many files DuckDB reads through the catalog for `sql`'s filter.
async fn files_read(app: &TestApp, filter: &str) -> u64 {
    let out = python(&format!(
        "{}import re\n\
         plan = con.sql(\"EXPLAIN ANALYZE SELECT count(*) FROM strata.events WHERE {filter}\").fetchall()[0][1]\n\
         print(sum(int(n) for n in re.findall(r'Total Files Read: (\\d+)', plan)))\n",
        attach(&app.db.url)
    ))
    .await;
    out.trim().parse().unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// DuckDB prunes the catalog's files by project and date (partition
/// values) and by the `ts` bounds of each file's footer, both for files
/// the archive commit published and for files a catch-up read.
#[tokio::test]
async fn duckdb_prunes_files_by_partition_and_by_the_footers_bounds() {
    let app = spawn_app().await;
    let keys = [
        app.key("alpha", "ingest").await,
        app.key("beta", "ingest").await,
    ];
    let alpha = app.project_id("alpha").await;
    let day = today() - Duration::days(40);
    for key in &keys {
        let events: Vec<Value> = (0..30)
            .map(|i| {
                let d = day + Duration::days(i % 3);
                event(Uuid::new_v4(), "u", "view", &at(d, 3_600 + i))
            })
            .collect();
        app.ingest_ok(key, &events).await;
    }
    app.archive(30).await;
    let second = day + Duration::days(1);
    let checks = [
        (format!("project_id = {alpha}"), 3),
        (format!("project_id = {alpha} AND date = '{second}'"), 1),
        // No partition filter: only the footers' ts bounds exclude files.
        (
            format!("ts >= '{second} 00:00:00+00' AND ts < '{second} 12:00:00+00'"),
            2,
        ),
        (
            format!("ts >= '{second} 02:00:00+00' AND ts < '{second} 03:00:00+00'"),
            0,
        ),
    ];
    for (filter, files) in &checks {
        assert_eq!(files_read(&app, filter).await, *files, "{filter}");
    }
    // The same once the catalog's files were published from the footers
    // read back (a catch-up).
    forget_the_catalogs_files(&app).await;
    app.archiver(30).sync_lake().await.unwrap();
    for (filter, files) in &checks {
        assert_eq!(
            files_read(&app, filter).await,
            *files,
            "after a catch-up: {filter}"
        );
    }
}

/// Days past a retention horizon leave the latest snapshot at once, stay
/// readable through older snapshots for the history (their objects kept),
/// and then go, snapshots and objects.
#[tokio::test]
async fn expired_days_stay_readable_back_in_time_for_the_history_then_go() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest,read").await;
    let project = ProjectId(app.project_id("alpha").await);
    let (old, kept) = (today() - Duration::days(50), today() - Duration::days(40));
    for day in [old, kept] {
        let events: Vec<Value> = (0..10)
            .map(|i| event(Uuid::new_v4(), &format!("u{i}"), "view", &at(day, i)))
            .collect();
        app.ingest_ok(&key, &events).await;
    }
    app.archive(30).await;
    let before = latest_snapshot(&app).await;
    let old_ids = ids_at(&app, old, None).await;
    assert_eq!(old_ids.len(), 10);

    app.hot
        .set_retention(project, Some(RetentionDays::new(45).unwrap()))
        .await
        .unwrap();
    let keeping = archiver(&app, with_history(std::time::Duration::from_secs(3_600)));
    completed(keeping.run_once().await.unwrap()).await;
    assert!(
        ids_at(&app, old, None).await.is_empty(),
        "gone from the latest snapshot"
    );
    assert_eq!(ids_at(&app, kept, None).await.len(), 10);
    assert_eq!(
        ids_at(&app, old, Some(before)).await,
        old_ids,
        "readable back in time"
    );
    assert_eq!(app.cold.keys().await.len(), 2, "the expired object stays");
    assert_lake_shows_manifest(&app.pool, "after the expiry").await;

    let_the_history_pass(&app).await;
    completed(keeping.run_once().await.unwrap()).await;
    assert_eq!(snapshot_ids(&app).await.len(), 1);
    assert_eq!(
        app.cold.keys().await.len(),
        1,
        "the expired object is deleted"
    );
    assert_eq!(ids_at(&app, kept, None).await.len(), 10);
}
