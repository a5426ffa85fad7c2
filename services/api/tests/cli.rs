//! The `strata-api` binary as an operator and a new user meet it: migrate,
//! keys create/list/revoke, projects, users erase, and serve answering a
//! curl-style batch.

#![allow(clippy::unwrap_used)]
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use strata_tests::{ServerTimescale, TestDb, recent_event};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_strata-api");

fn run(db: &TestDb, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("STRATA_DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// `keys create --project demo <args>`: the new key.
fn create_key(db: &TestDb, args: &[&str]) -> String {
    let mut all = vec!["keys", "create", "--project", "demo"];
    all.extend_from_slice(args);
    let out = run(db, &all);
    assert!(out.status.success(), "{out:?}");
    stdout(&out).lines().last().unwrap().to_owned()
}

/// Sends SIGTERM, as an orchestrator stopping the process would.
fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
}

#[tokio::test]
async fn migrate_then_keys_create_list_revoke() {
    let db = TestDb::create_empty().await;
    let out = run(&db, &["migrate"]);
    assert!(out.status.success(), "{out:?}");
    // Migrating twice is harmless.
    assert!(run(&db, &["migrate"]).status.success());

    let out = run(
        &db,
        &[
            "keys",
            "create",
            "--project",
            "demo",
            "--scopes",
            "ingest,admin",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let key = text.lines().last().unwrap().to_owned();
    assert!(key.starts_with("strata_") && key.len() == 47, "{text}");
    assert!(!key.contains(' '));

    // Only the hash is stored.
    let pool = db.pool().await;
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored,
        vec![strata_model::ApiKey::hash_presented(&key).0.to_vec()]
    );

    let list = stdout(&run(&db, &["keys", "list"]));
    let prefix = &key[..15];
    let row = list.lines().find(|l| l.contains(prefix)).unwrap();
    assert!(
        row.contains("demo") && row.contains("ingest,admin"),
        "{row}"
    );
    assert!(!list.contains(&key), "keys list must never print a secret");

    // Rate limits: per key, changeable, back to the default.
    assert!(row.ends_with("\tdefault\tproject"), "{row}");
    let out = run(
        &db,
        &["keys", "set-limit", prefix, "--rate", "5", "--burst", "10"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("rate limit 5/s burst 10"), "{out:?}");
    let list = stdout(&run(&db, &["keys", "list"]));
    assert!(list.contains("5/s burst 10"), "{list}");
    let out = run(
        &db,
        &["keys", "set-limit", prefix, "--rate", "0", "--burst", "10"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("positive"));
    let out = run(&db, &["keys", "set-limit", prefix, "--rate", "5"]);
    assert!(!out.status.success(), "--rate needs --burst");
    let out = run(&db, &["keys", "set-limit", prefix, "--default"]);
    assert!(stdout(&out).contains("rate limit default"), "{out:?}");
    let out = run(
        &db,
        &[
            "keys",
            "create",
            "--project",
            "demo",
            "--rate",
            "2.5",
            "--burst",
            "4",
        ],
    );
    assert!(stdout(&out).contains("rate limit 2.5/s burst 4"), "{out:?}");

    let out = run(&db, &["keys", "revoke", prefix]);
    assert!(out.status.success(), "{out:?}");
    let hot = db.hot().await;
    let hash = strata_model::ApiKey::hash_presented(&key);
    assert!(hot.authenticate(&hash).await.unwrap().is_none());

    // Revoking an unknown key fails with a message, and a bad project name too.
    let out = run(&db, &["keys", "revoke", "strata_nothing"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no active key"));
    let out = run(&db, &["keys", "create", "--project", "Not Valid"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("project name"));
    let out = run(
        &db,
        &["keys", "create", "--project", "demo", "--scopes", "write"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scope"));

    // A client key: ingest only, listed as such; it takes no other scope
    // and needs a project.
    let out = run(&db, &["keys", "create", "--project", "shop", "--client"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.starts_with("created client key"), "{text}");
    let client = text.lines().last().unwrap().to_owned();
    let list = stdout(&run(&db, &["keys", "list"]));
    let row = list.lines().find(|l| l.contains(&client[..15])).unwrap();
    assert!(
        row.contains("\tshop\t") && row.contains("\tingest\t"),
        "{row}"
    );
    assert!(row.ends_with("\tdefault\tclient"), "{row}");
    for args in [
        &[
            "keys",
            "create",
            "--project",
            "shop",
            "--client",
            "--scopes",
            "read",
        ][..],
        &["keys", "create", "--client"],
        &["keys", "create", "--operator", "--client"],
    ] {
        let out = run(&db, args);
        assert!(!out.status.success(), "{args:?} was accepted");
    }
}

/// `strata-api` with `STRATA_HOT_LAYOUT=layout` and `args`, on a new database.
#[tokio::test]
async fn projects_set_retention_sets_lists_and_refuses_bad_values() {
    let db = TestDb::create().await;
    create_key(&db, &["--scopes", "read,admin"]);
    let out = run(&db, &["projects", "set-retention", "demo", "400d"]);
    assert!(out.status.success(), "{out:?}");
    let horizon = chrono::Utc::now().date_naive() - chrono::Duration::days(399);
    assert_eq!(
        stdout(&out).trim(),
        format!("project demo: retention 400d; stats answer from {horizon} on")
    );
    let out = run(&db, &["projects", "list"]);
    assert!(stdout(&out).contains("\tdemo\t400d"), "{out:?}");
    // Refused, naming what is accepted; the policy is unchanged.
    for (args, says) in [
        (
            ["projects", "set-retention", "demo", "0d"],
            "from 1 to 365000",
        ),
        (["projects", "set-retention", "demo", "1y"], "or 'forever'"),
        (
            ["projects", "set-retention", "nope", "30d"],
            "project nope does not exist",
        ),
    ] {
        let out = run(&db, &args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(stdout(&run(&db, &["projects", "list"])).contains("\tdemo\t400d"));
    let out = run(&db, &["projects", "set-retention", "demo", "forever"]);
    assert_eq!(stdout(&out).trim(), "project demo: retention forever");
    assert!(stdout(&run(&db, &["projects", "list"])).contains("\tdemo\tforever"));
}

/// `projects declare-property` / `undeclare-property` keep a project's
/// declared properties (ADR-043), capped, and refuse bad keys and projects.
#[tokio::test]
async fn projects_declare_property_declares_undeclares_and_refuses_past_the_cap() {
    let db = TestDb::create().await;
    create_key(&db, &["--scopes", "read,admin"]);
    let out = run(&db, &["projects", "declare-property", "demo", "plan"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).starts_with("project demo: declared properties plan\n"),
        "{out:?}"
    );
    for p in ["a", "b", "c", "d", "e", "f", "g", "plan"] {
        let out = run(&db, &["projects", "declare-property", "demo", p]);
        assert!(out.status.success(), "{p}: {out:?}");
    }
    let out = run(&db, &["projects", "declare-property", "demo", "h"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at most 8 properties"), "{err}");
    for (args, says) in [
        (
            ["projects", "undeclare-property", "demo", "nope"],
            "is not declared",
        ),
        (
            ["projects", "declare-property", "nope", "plan"],
            "project nope does not exist",
        ),
        (["projects", "declare-property", "demo", ""], "1-256 bytes"),
    ] {
        let out = run(&db, &args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let out = run(&db, &["projects", "undeclare-property", "demo", "plan"]);
    assert_eq!(
        stdout(&out).trim(),
        "project demo: declared properties a, b, c, d, e, f, g"
    );
}

/// `users erase` removes a user's every event from both tiers (local
/// files here, the embedded default; the API's test uses Garage) and
/// prints the audit record; `users erasure ID` shows it again.
#[tokio::test]
async fn users_erase_removes_a_user_from_both_tiers_and_prints_the_audit_record() {
    let app = strata_tests::TestApp::builder()
        .cold(strata_tests::cold::TestCold::file())
        .spawn()
        .await;
    let key = app.key("alpha", "ingest").await;
    let mut sent = strata_tests::archive::Sent::default();
    strata_tests::archive::seed_days(&app, &[("alpha", key.as_str())], 31, 2, 30, &mut sent).await;
    app.archive(30).await;
    let user = sent.rows[0].user_id.clone();
    let theirs = sent.rows.iter().filter(|r| r.user_id == user).count() as u64;
    let erase = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("STRATA_DATABASE_URL", &app.db.url)
            .env("RUST_LOG", "warn")
            // No grace period: the replaced files go in the same run, so
            // the erasure ends `done` (the grace period's own test is
            // `replaced_objects_outlive_the_swap_by_the_grace_period…`).
            .env("STRATA_COLD_DELETE_GRACE", "0s")
            .envs(app.cold.env_vars())
            .output()
            .unwrap()
    };
    let out = erase(&["users", "erase", "--project", "alpha", "--user", &user]);
    assert!(out.status.success(), "{out:?}");
    let record: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(record["status"], "done", "{record}");
    assert_eq!(record["requested_by"], "strata-api users erase");
    assert_eq!(record["cold_rows"].as_u64(), Some(theirs), "{record}");
    assert!(record.get("user_id").is_none(), "{record}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM user_first_seen WHERE user_id = $1")
        .bind(&user)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert!(!app.cold.glob().await.iter().any(|r| r.user_id == user));
    assert_eq!(
        app.cold.glob().await.len() as u64,
        sent.rows.len() as u64 - theirs
    );
    let id = record["id"].as_i64().unwrap().to_string();
    let again = erase(&["users", "erasure", &id]);
    let shown: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(shown, record);
    // Refused with the reason.
    for (args, says) in [
        (
            ["users", "erase", "--project", "nope", "--user", "u"],
            "project nope does not exist",
        ),
        (
            ["users", "erase", "--project", "alpha", "--user", ""],
            "user_id",
        ),
    ] {
        let out = erase(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let out = erase(&["users", "erasure", "999999"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no erasure 999999"));
}

fn run_with_layout(db: &TestDb, layout: &str, args: &[&str]) -> (Output, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("STRATA_DATABASE_URL", &db.url)
        .env("STRATA_HOT_LAYOUT", layout)
        .env("STRATA_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        // An operator's shell may well have it; the refusal stays one line.
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

#[tokio::test]
async fn the_hot_layout_setting_is_honoured_or_refused_with_the_reason() {
    let probe = TestDb::create_empty().await;
    let server = ServerTimescale::of(&probe.pool().await).await;

    let (out, err) = run_with_layout(&probe, "hypertable", &["migrate"]);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("auto, timescaledb, native"), "{err}");

    let db = TestDb::create_empty().await;
    let (out, err) = run_with_layout(&db, "auto", &["migrate"]);
    assert!(out.status.success(), "{err}");
    let warned = err.contains("not preloaded") && err.contains("Using native day partitions");
    assert_eq!(
        warned,
        server == ServerTimescale::InstalledNotPreloaded,
        "{err}"
    );

    let db = TestDb::create_empty().await;
    if server == ServerTimescale::Preloaded {
        let (out, err) = run_with_layout(&db, "timescaledb", &["migrate"]);
        assert!(out.status.success(), "{err}");
        assert_eq!(db.hot().await.layout(), strata_store::Layout::Timescale);
    } else {
        // Both the migrate command and the server refuse to start, with the
        // reason and the fix, not a backtrace or a dead session.
        for args in [&["migrate"][..], &["serve"]] {
            let (out, err) = run_with_layout(&db, "timescaledb", args);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert!(
                err.contains("STRATA_HOT_LAYOUT=timescaledb cannot be honoured: "),
                "{err}"
            );
            assert!(err.contains("set STRATA_HOT_LAYOUT=auto"), "{err}");
            assert!(
                !err.contains("panicked") && !err.contains("FATAL") && !err.contains("backtrace"),
                "{err}"
            );
            let line = err.lines().last().unwrap();
            assert!(
                line.starts_with(
                    "Error: applying migrations: STRATA_HOT_LAYOUT=timescaledb cannot be honoured: "
                ),
                "{err}"
            );
        }
    }
}

/// The base URL a starting `strata-api serve` prints on its stdout. The
/// rest of its stdout is drained in the background.
async fn listening_on(child: &mut tokio::process::Child) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(60), out.read_line(&mut line))
        .await
        .expect("strata-api printed no address within 60 s")
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("strata-api listening on ")
        .unwrap_or_else(|| panic!("unexpected first line of stdout: {line:?}"))
        .to_owned();
    tokio::spawn(async move {
        let mut rest = Vec::new();
        let _ = out.read_to_end(&mut rest).await;
    });
    base
}

/// A port nothing listens on (for an unreachable collector).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `strata-api serve` on a port the system picks (`--listen 127.0.0.1:0`,
/// read back from its stdout) with a `file://` cold tier in `cold`, once it
/// answers ready.
async fn spawn_serve(db: &TestDb, cold: &std::path::Path) -> (tokio::process::Child, String) {
    let url = format!("file://{}", cold.display());
    spawn_serve_env(db, &[("STRATA_COLD_URL", url)]).await
}

async fn spawn_serve_env(
    db: &TestDb,
    env: &[(&'static str, String)],
) -> (tokio::process::Child, String) {
    spawn_serve_logging(db, env, "warn", Stdio::inherit()).await
}

/// [`spawn_serve_env`] with the log level and where the logs go.
async fn spawn_serve_logging(
    db: &TestDb,
    env: &[(&'static str, String)],
    rust_log: &str,
    stderr: Stdio,
) -> (tokio::process::Child, String) {
    let cache = std::env::temp_dir().join(format!("strata-cache-{}", Uuid::new_v4().simple()));
    let mut child = tokio::process::Command::new(BIN)
        .env("STRATA_DATABASE_URL", &db.url)
        .env("STRATA_LISTEN", "127.0.0.1:0")
        .env("STRATA_COLD_CACHE_DIR", cache)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = listening_on(&mut child).await;
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("strata-api did not become ready");
}

#[tokio::test]
async fn demo_data_fills_both_tiers_and_the_stats_add_up() {
    let db = TestDb::create_empty().await;
    let cold = tempfile::tempdir().unwrap();
    let cold_url = format!("file://{}", cold.path().display());
    let out = Command::new(BIN)
        .args([
            "demo-data",
            "--days",
            "40",
            "--users",
            "300",
            "--events-per-day",
            "100",
        ])
        .env("STRATA_DATABASE_URL", &db.url)
        .env("STRATA_COLD_URL", &cold_url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("4050 events stored (50 late"), "{text}");
    let key = create_key(&db, &["--scopes", "read"]);
    let (_child, base) = spawn_serve(&db, cold.path()).await;
    let today = chrono::Utc::now().date_naive();
    let first = today - chrono::Duration::days(39);
    let get = |path: String| {
        let (client, key) = (reqwest::Client::new(), key.clone());
        async move {
            let resp = client.get(path).bearer_auth(key).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        }
    };
    let top = get(format!(
        "{base}/v1/stats/top-events?from={first}&to={today}&limit=1000"
    ))
    .await;
    let total: u64 = top["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 4050, "{top}");
    assert_eq!(
        top["meta"]["both_days"],
        json!([first.to_string()]),
        "{top}"
    );
    assert!(top["meta"]["cold"]["days"].as_u64().unwrap() >= 9, "{top}");
    let dau = get(format!("{base}/v1/stats/dau?from={first}&to={today}")).await;
    let days = dau["days"].as_array().unwrap();
    assert_eq!(days.len(), 40);
    assert!(
        days.iter().all(|d| d["users"].as_u64().unwrap() > 0),
        "{dau}"
    );
    let retention = get(format!(
        "{base}/v1/stats/retention?from={first}&to={today}&period=week&periods=4"
    ))
    .await;
    let cohorts = retention["cohorts"].as_array().unwrap();
    assert!(
        cohorts
            .iter()
            .all(|c| c["size"].as_u64() == c["retained"][0].as_u64()),
        "{retention}"
    );
}

#[tokio::test]
async fn serve_accepts_a_batch_and_stops_gracefully_on_sigterm() {
    let db = TestDb::create_empty().await;
    let key = create_key(&db, &[]);
    let cold = tempfile::tempdir().unwrap();
    let (mut child, base) = spawn_serve(&db, cold.path()).await;
    let client = reqwest::Client::new();

    let body = json!({"events": [recent_event(Uuid::new_v4(), "u_42", 1), recent_event(Uuid::new_v4(), "u_43", 2)]});
    let resp = client
        .post(format!("{base}/v1/events"))
        .header("authorization", format!("Bearer {key}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(
        answer,
        json!({"accepted": 2, "duplicates": 0, "rejected": []})
    );

    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("strata-api did not stop within 10s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// The deployed topology with the real binaries: two api replicas sharing
/// Redis (one rate-limit bucket) and an S3 cold tier, and the archiver.
#[tokio::test]
async fn two_api_replicas_and_the_archiver_against_postgres_redis_and_s3() {
    let db = TestDb::create_empty().await;
    let cold = strata_tests::cold::TestCold::s3();
    assert!(run(&db, &["migrate"]).status.success());
    let busy = create_key(
        &db,
        &[
            "--scopes",
            "ingest,read,admin",
            "--rate",
            "1000",
            "--burst",
            "1000",
        ],
    );
    let small = create_key(&db, &["--scopes", "read"]);
    let mut env = cold.env_vars();
    env.push(("STRATA_REDIS_URL", strata_tests::test_redis_url()));
    env.push(("STRATA_RATE_LIMIT_RATE", "0.01".into()));
    env.push(("STRATA_RATE_LIMIT_BURST", "3".into()));
    let (_a, a) = spawn_serve_env(&db, &env).await;
    let (_b, b) = spawn_serve_env(&db, &env).await;
    let client = reqwest::Client::new();

    let events: Vec<Value> = (0..30)
        .map(|i| {
            recent_event(
                Uuid::new_v4(),
                &format!("u{}", i % 7),
                (i % 3) * 24 * 20 + 1,
            )
        })
        .collect();
    let resp = client
        .post(format!("{a}/v1/events"))
        .bearer_auth(&busy)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // The archiver binary moves the 40-day-old events to S3.
    let archiver = std::path::Path::new(BIN).with_file_name("strata-archiver");
    let out = Command::new(&archiver)
        .args(["run", "--once"])
        .env("STRATA_DATABASE_URL", &db.url)
        .envs(cold.env_vars())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!cold.keys().await.is_empty());

    // Replica b answers across both tiers: the cold day from the rollup the
    // archive commit wrote; without it, from the file fetched from S3; and
    // from the rollup again once `rollups rebuild` made it from that file.
    let today = chrono::Utc::now().date_naive();
    let from = today - chrono::Duration::days(45);
    let top_events = || async {
        let top: Value = client
            .get(format!("{b}/v1/stats/top-events?from={from}&to={today}"))
            .bearer_auth(&busy)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(top["events"][0]["count"], 30, "{top}");
        assert_eq!(top["events"][0]["users"], 7, "{top}");
        top
    };
    let top = top_events().await;
    assert_eq!(top["meta"]["cold"]["rollups"]["days"], 1, "{top}");
    let pool = db.pool().await;
    // Gone with its source row: a server that had decoded it no longer
    // uses it (ADR-030).
    sqlx::raw_sql("DELETE FROM day_rollups; DELETE FROM day_rollup_sources")
        .execute(&pool)
        .await
        .unwrap();
    let top = top_events().await;
    assert_eq!(top["meta"]["cold"]["rollups"]["days"], 0, "{top}");
    assert!(
        top["meta"]["cold"]["cache"]["misses"].as_u64().unwrap() > 0,
        "{top}"
    );
    let rebuild = |project: &str| {
        Command::new(&archiver)
            .args(["rollups", "rebuild", "--project", project])
            .env("STRATA_DATABASE_URL", &db.url)
            .envs(cold.env_vars())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = rebuild("demo");
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).starts_with("1 cold day(s): 1 rebuilt, 0 changed"),
        "{out:?}"
    );
    let top = top_events().await;
    assert_eq!(top["meta"]["cold"]["rollups"]["days"], 1, "{top}");
    let out = rebuild("nobody");
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no project named \"nobody\""),
        "{out:?}"
    );
    // Archive runs are an operator's view: a key made with `--operator`.
    let out = run(&db, &["keys", "create", "--operator"]);
    assert!(out.status.success(), "{out:?}");
    let operator = stdout(&out).lines().last().unwrap().to_owned();
    let listed = stdout(&run(&db, &["keys", "list"]));
    assert!(listed.contains("(operator)\t"), "{listed}");
    let runs: Value = client
        .get(format!("{a}/v1/admin/archive/runs"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(runs["runs"][0]["status"], "succeeded", "{runs}");

    // One bucket across both replicas: burst 3, then 429.
    let mut statuses = Vec::new();
    for base in [&a, &b, &a, &b] {
        let r = client
            .get(format!("{base}/v1/stats/dau?from={today}&to={today}"))
            .bearer_auth(&small)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let metrics = client
        .get(format!("{b}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("strata_archive_runs_total{status=\"succeeded\"} 1"),
        "{metrics}"
    );
}

/// (path, body) of every OTLP export received.
type Exports = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A local OTLP/HTTP receiver: records (path, body) of every export.
async fn otlp_receiver() -> (String, Exports) {
    use axum::body::Bytes;
    use axum::http::Uri;
    let seen: Exports = Default::default();
    let store = std::sync::Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |uri: Uri, body: Bytes| {
        let store = std::sync::Arc::clone(&store);
        async move {
            store
                .lock()
                .unwrap()
                .push((uri.path().to_owned(), body.to_vec()));
            (
                [("content-type", "application/x-protobuf")],
                Vec::<u8>::new(),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn exported(seen: &std::sync::Mutex<Vec<(String, Vec<u8>)>>, path: &str, needle: &str) -> bool {
    seen.lock()
        .unwrap()
        .iter()
        .any(|(p, body)| p == path && body.windows(needle.len()).any(|w| w == needle.as_bytes()))
}

#[tokio::test]
async fn traces_and_metrics_reach_an_otlp_receiver_and_flush_on_shutdown() {
    let db = TestDb::create_empty().await;
    let key = create_key(&db, &[]);
    let (endpoint, seen) = otlp_receiver().await;
    let cold = tempfile::tempdir().unwrap();
    let env = [
        (
            "STRATA_COLD_URL",
            format!("file://{}", cold.path().display()),
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200".into()),
    ];
    let (mut child, base) = spawn_serve_env(&db, &env).await;
    let events: Vec<Value> = (0..5)
        .map(|i| recent_event(Uuid::new_v4(), "u", 24 * (35 + i)))
        .collect();
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/events"))
        .bearer_auth(&key)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let today = chrono::Utc::now().date_naive();
    let resp = reqwest::Client::new()
        .get(format!("{base}/v1/stats/dau?from={today}&to={today}"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("strata-api did not stop")
        .unwrap();
    assert!(status.success());
    let got: Vec<(String, usize)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(p, b)| (p.clone(), b.len()))
        .collect();
    assert!(
        exported(&seen, "/v1/traces", "request"),
        "no request span exported: {got:?}"
    );
    assert!(
        exported(&seen, "/v1/traces", "strata-api"),
        "no service name"
    );
    assert!(
        exported(&seen, "/v1/traces", "hot_tier"),
        "no planner tier span"
    );
    assert!(
        exported(&seen, "/v1/metrics", "strata.http.requests"),
        "no request metric"
    );

    // The archiver exports a span per archived chunk (tokio's Command: the
    // receiver runs on this test's runtime and must keep answering).
    let archiver = std::path::Path::new(BIN).with_file_name("strata-archiver");
    let out = tokio::process::Command::new(&archiver)
        .args(["run", "--once"])
        .env("STRATA_DATABASE_URL", &db.url)
        .env(
            "STRATA_COLD_URL",
            format!("file://{}", cold.path().display()),
        )
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        exported(&seen, "/v1/traces", "archive_chunk"),
        "no archive_chunk span"
    );
    assert!(exported(&seen, "/v1/traces", "strata-archiver"));
}

#[tokio::test]
async fn an_unreachable_collector_neither_fails_nor_stalls_requests_or_shutdown() {
    let db = TestDb::create_empty().await;
    let key = create_key(&db, &[]);
    let cold = tempfile::tempdir().unwrap();
    let closed_port = free_port();
    let env = [
        (
            "STRATA_COLD_URL",
            format!("file://{}", cold.path().display()),
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{closed_port}"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".into()),
    ];
    let (mut child, base) = spawn_serve_env(&db, &env).await;
    let client = reqwest::Client::new();
    // A liveness bound, not a benchmark: 50 requests must not wait on export.
    tokio::time::timeout(Duration::from_secs(20), async {
        for _ in 0..50 {
            let r = client
                .post(format!("{base}/v1/events"))
                .bearer_auth(&key)
                .json(&json!({"events": [recent_event(Uuid::new_v4(), "u", 1)]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    })
    .await
    .expect("requests stalled with the collector down");
    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("shutdown did not finish within its flush bound")
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn each_request_logs_one_json_line_with_route_status_project_and_request_id() {
    let db = TestDb::create_empty().await;
    let key = create_key(&db, &[]);
    let cold = tempfile::tempdir().unwrap();
    let cold_url = format!("file://{}", cold.path().display());
    let (child, base) = spawn_serve_logging(
        &db,
        &[("STRATA_COLD_URL", cold_url)],
        "info",
        Stdio::piped(),
    )
    .await;
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(&key)
        .header("x-request-id", "req-42")
        .json(&json!({"events": [recent_event(Uuid::new_v4(), "u", 1)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    sigterm(&child);
    let out = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    let line: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["fields"]["message"] == "request finished" && l["fields"]["route"] == "/v1/events"
        })
        .unwrap_or_else(|| panic!("no request line in {logs}"));
    assert_eq!(line["fields"]["status"], 200, "{line}");
    assert!(line["fields"]["ms"].is_u64(), "{line}");
    assert_eq!(line["span"]["project"], "demo", "{line}");
    assert_eq!(line["span"]["request_id"], "req-42", "{line}");
}

#[test]
fn help_never_prints_secrets_from_the_environment() {
    let secrets = [
        (
            "STRATA_DATABASE_URL",
            "postgres://strata:pg-hunter2@db/strata",
        ),
        ("STRATA_REDIS_URL", "redis://:redis-hunter2@cache:6379"),
        ("STRATA_S3_SECRET_ACCESS_KEY", "s3-hunter2"),
    ];
    for sub in [&["serve", "--help"][..], &["migrate", "--help"][..]] {
        let out = Command::new(BIN).args(sub).envs(secrets).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = stdout(&out);
        assert!(text.contains("STRATA_DATABASE_URL"), "{text}");
        assert!(
            !text.contains("hunter2"),
            "a secret leaked into {sub:?}: {text}"
        );
    }
}
