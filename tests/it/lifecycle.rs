//! Data lifecycle: retention policies (ADR-031) hide expired days from
//! stats the moment they commit, and the archive run deletes those days
//! from both tiers with their rollups, leaving every other project and day
//! exactly as it was; an erasure (ADR-032) removes one user from both
//! tiers; compaction (ADR-033) merges a day's files. Every stat is checked
//! against the oracle before and after each.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use strata_archive::{ArchiveConfig, Archiver, RunOutcome};
use strata_tests::answers::{dau_of, funnel_of, groups_of, retention_of, top_of};
use strata_tests::cold::TestCold;
use strata_tests::oracle::{self, Ev};
use strata_tests::{TestApp, event, spawn_app};
use uuid::Uuid;

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// `n` random events of the last `days` days (today included).
fn random_events(rng: &mut StdRng, n: usize, days: i64) -> Vec<(Value, Ev)> {
    (0..n)
        .map(|_| {
            let user = format!("u{}", rng.random_range(0..40));
            let event_type = ["view", "click", "buy"][rng.random_range(0..3)];
            let day = today() - Duration::days(rng.random_range(0..days));
            let t: DateTime<Utc> = day.and_hms_opt(0, 0, 0).unwrap().and_utc()
                + Duration::seconds(rng.random_range(0..86_400));
            let t = t.min(Utc::now()) - Duration::microseconds(t.timestamp_subsec_micros().into());
            let mut v = event(
                Uuid::from_u128(rng.random()),
                &user,
                event_type,
                &t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            );
            // Breakdowns by `plan`: three values and a missing key.
            let props = match rng.random_range(0..4) {
                0 => serde_json::json!({}),
                n => {
                    let plan = ["free", "pro", "team"][n - 1];
                    serde_json::json!({ "plan": plan })
                }
            };
            v["properties"] = props.clone();
            (
                v,
                Ev {
                    user,
                    event_type: event_type.to_owned(),
                    ts: t,
                    props,
                },
            )
        })
        .collect()
}

/// A generator from a printed seed (to replay a failure) and an app on
/// `cold` that takes late events for any number of days per batch.
#[allow(clippy::print_stderr)] // the seed, shown with a failing test's output
async fn seeded_app(cold: TestCold) -> (StdRng, TestApp) {
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let app = TestApp::builder()
        .arg("--max-late-days-per-batch", 10_000)
        .cold(cold)
        .spawn()
        .await;
    (StdRng::seed_from_u64(seed), app)
}

async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    let (status, body) = app.get_json(key, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// `body` (JSON) sent to `path` with `method`: the status and the answer.
async fn send_json(
    app: &TestApp,
    method: reqwest::Method,
    key: &str,
    path: &str,
    body: &str,
) -> (u16, Value) {
    let resp = app
        .client
        .request(method, app.url(path))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Declares `plan` for the key's project (ADR-043): its values are kept in
/// the rollups from then on.
async fn declare_plan(app: &TestApp, key: &str) {
    let (status, body) = send_json(
        app,
        reqwest::Method::PUT,
        key,
        "/v1/admin/properties/plan",
        "",
    )
    .await;
    assert_eq!(
        (status, &body["properties"]),
        (200, &serde_json::json!(["plan"])),
        "{body}"
    );
}

/// DAU by `plan` over the last 60 days answered every cold day from the
/// values its rollup keeps.
async fn assert_plan_from_rollups(app: &TestApp, key: &str, context: &str) {
    let (from, to) = (today() - Duration::days(59), today());
    let body = get(
        app,
        key,
        &format!("/v1/stats/dau?from={from}&to={to}&group_by=property:plan"),
    )
    .await;
    let cold = &body["meta"]["cold"];
    assert!(cold["days"].as_u64() > Some(0), "{context}: {cold}");
    assert_eq!(cold["rollups"]["days"], cold["days"], "{context}: {cold}");
    assert_eq!(cold["rows"], 0, "{context}: no file read: {cold}");
}

async fn put_retention(app: &TestApp, key: &str, body: &str) -> (u16, Value) {
    send_json(app, reqwest::Method::PUT, key, "/v1/admin/retention", body).await
}

/// Every stat of the last 60 days equals the oracle over the events the
/// policy keeps: days before `horizon` are zero or absent, with the meta
/// note; cohorts starting before it are left out; `start_event` cohorts
/// come from each user's first such event within the retention.
async fn check(app: &TestApp, key: &str, all: &[Ev], horizon: Option<NaiveDate>, context: &str) {
    let (from, to) = (today() - Duration::days(59), today());
    let kept: Vec<Ev> = all
        .iter()
        .filter(|e| horizon.is_none_or(|h| e.ts.date_naive() >= h))
        .cloned()
        .collect();
    let note = horizon.map(|h| h.to_string());
    let body = get(app, key, &format!("/v1/stats/dau?from={from}&to={to}")).await;
    assert_eq!(
        dau_of(&body),
        oracle::dau(&kept, from, to),
        "DAU ({context})"
    );
    assert_eq!(
        body["meta"]["retention"]["expired_before"]
            .as_str()
            .map(str::to_owned),
        note,
        "DAU meta ({context}): {}",
        body["meta"]
    );
    let body = get(
        app,
        key,
        &format!("/v1/stats/top-events?from={from}&to={to}&limit=10"),
    )
    .await;
    assert_eq!(
        top_of(&body),
        oracle::top_events(&kept, from, to, 10),
        "top events ({context}): {}",
        body["meta"]
    );
    // A funnel and breakdowns read the events themselves: none before the
    // horizon, none of an erased user, every row of a compacted day once.
    let body = get(
        app,
        key,
        &format!("/v1/stats/funnel?from={from}&to={to}&steps=view,buy&window=86400&group_by=property:plan&limit_groups=2"),
    )
    .await;
    let window = Duration::days(1);
    assert_eq!(
        funnel_of(&body),
        oracle::funnel(&kept, from, to, &["view", "buy"], window),
        "funnel ({context}): {}",
        body["meta"]
    );
    assert_eq!(
        groups_of(&body, funnel_of),
        oracle::funnel_by(&kept, (from, to), (&["view", "buy"], window), "plan", 2),
        "funnel by plan ({context}): {}",
        body["meta"]
    );
    let body = get(
        app,
        key,
        &format!("/v1/stats/dau?from={from}&to={to}&group_by=property:plan"),
    )
    .await;
    assert_eq!(
        groups_of(&body, |g| (g["total"].as_u64().unwrap(), dau_of(g))),
        oracle::dau_by(&kept, (from, to), "plan", 10),
        "DAU by plan ({context}): {}",
        body["meta"]
    );
    let in_retention = |mut c: Vec<(NaiveDate, u64, Vec<u64>)>| {
        c.retain(|(start, _, _)| horizon.is_none_or(|h| *start >= h));
        c
    };
    for (week, periods) in [(true, 6usize), (false, 10)] {
        let period = if week { "week" } else { "day" };
        let before = today();
        let body = get(
            app,
            key,
            &format!("/v1/stats/retention?from={from}&to={to}&period={period}&periods={periods}"),
        )
        .await;
        let body_first = get(
            app,
            key,
            &format!(
                "/v1/stats/retention?from={from}&to={to}&period={period}&periods={periods}&start_event=buy"
            ),
        )
        .await;
        if today() != before {
            continue;
        }
        assert_eq!(
            retention_of(&body),
            in_retention(oracle::retention(all, from, to, week, periods, before)),
            "retention by {period} ({context}): {}",
            body["meta"]
        );
        assert_eq!(
            retention_of(&body_first),
            in_retention(oracle::retention_filtered(
                &kept,
                from,
                to,
                (week, periods),
                before,
                (Some("buy"), None)
            )),
            "retention from the first buy by {period} ({context}): {}",
            body_first["meta"]
        );
    }
}

async fn count(app: &TestApp, sql: &str, project: i64) -> i64 {
    sqlx::query_scalar(sql)
        .bind(project)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_policy_hides_expired_days_at_once_and_the_archive_run_deletes_them() {
    let (mut rng, app) = seeded_app(TestCold::s3()).await;
    let cold = &app.cold;
    let alpha = app.key("alpha", "ingest,read,admin").await;
    let beta = app.key("beta", "ingest,read").await;
    let mut sent: HashMap<&str, Vec<Ev>> = HashMap::new();
    for (p, key) in [("alpha", &alpha), ("beta", &beta)] {
        let batch = random_events(&mut rng, 900, 60);
        let values: Vec<Value> = batch.iter().map(|(v, _)| v.clone()).collect();
        assert_eq!(app.ingest_ok(key, &values).await.accepted, 900);
        sent.insert(p, batch.into_iter().map(|(_, e)| e).collect());
    }
    // Days older than 30 go cold (with their rollups); the rest stay hot,
    // and the closed hot days are sealed.
    app.archive(30).await;
    let alpha_id = app.project_id("alpha").await;
    assert!(
        count(
            &app,
            "SELECT count(*) FROM cold_files WHERE project_id = $1",
            alpha_id
        )
        .await
            > 0
    );
    check(&app, &alpha, &sent["alpha"], None, "no policy").await;

    // Bad policies are refused and change nothing; a key without the
    // admin scope may not set one.
    for bad in [
        r#"{"days": 0}"#,
        r#"{"days": "20d"}"#,
        r#"{"days": -3}"#,
        r#"{"days": 20.5}"#,
        r#"{"days": 4294967296}"#,
        "[]",
        "{}",
        "not json",
    ] {
        let (status, body) = put_retention(&app, &alpha, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _) = put_retention(&app, &beta, r#"{"days": 20}"#).await;
    assert_eq!(status, 403);
    assert_eq!(
        get(&app, &alpha, "/v1/admin/retention").await["days"],
        Value::Null
    );

    // Keep 20 days: the horizon is inside the hot tier, so hot rows, sealed
    // hot days and every cold day expire. `20.0` is an integer as JSON
    // Schema (and the OpenAPI document) counts one.
    let (status, body) = put_retention(&app, &alpha, r#"{"days": 20.0}"#).await;
    assert_eq!(status, 200, "{body}");
    let horizon = today() - Duration::days(19);
    assert_eq!(body["days"], 20);
    assert_eq!(body["horizon"], horizon.to_string());
    check(
        &app,
        &alpha,
        &sent["alpha"],
        Some(horizon),
        "policy committed, nothing deleted yet",
    )
    .await;
    check(
        &app,
        &beta,
        &sent["beta"],
        None,
        "the other project, before the run",
    )
    .await;
    let tiers = get(&app, &alpha, "/v1/admin/tiers").await;
    assert_eq!(tiers["projects"][0]["retention_days"], 20, "{tiers}");

    let cold_files = count(
        &app,
        "SELECT count(*) FROM cold_files WHERE project_id = $1",
        alpha_id,
    )
    .await;
    // Alpha's hot rows before the horizon (days 20 to 30 old), as stored.
    let hot_expiring = count(
        &app,
        "SELECT count(*) FROM events WHERE project_id = $1 AND ts < ((now() AT TIME ZONE 'UTC')::date - 19)::timestamp AT TIME ZONE 'UTC'",
        alpha_id,
    )
    .await;
    assert!(hot_expiring > 0);
    // The run also archives the days 26 to 30 days old, whose chunks held
    // alpha's expired rows beside beta's: only beta's reach the files.
    let report = match app.archiver(25).run_once().await.unwrap() {
        RunOutcome::Completed(r) => r,
        RunOutcome::Skipped => panic!("skipped"),
    };
    assert!(report.succeeded(), "{report:?}");
    assert!(!report.chunks.is_empty(), "no chunk archived: {report:?}");
    // Every cold file of alpha was before the horizon, and so were the hot
    // rows counted above.
    assert_eq!(
        report.expired.object_keys.len() as i64,
        cold_files,
        "{report:?}"
    );
    assert_eq!(report.expired.hot_rows, hot_expiring, "{report:?}");
    for (sql, what) in [
        (
            "SELECT count(*) FROM cold_files WHERE project_id = $1",
            "cold files",
        ),
        (
            "SELECT count(*) FROM day_rollups WHERE project_id = $1",
            "cold rollups",
        ),
        (
            "SELECT count(*) FROM day_rollup_sources WHERE project_id = $1",
            "rollup sources",
        ),
        (
            "SELECT count(*) FROM hot_rollups WHERE project_id = $1 AND day < (now() AT TIME ZONE 'UTC')::date - 19",
            "sealed rollups before the horizon",
        ),
        (
            "SELECT count(*) FROM events WHERE project_id = $1 AND ts < ((now() AT TIME ZONE 'UTC')::date - 19)::timestamp AT TIME ZONE 'UTC'",
            "hot rows before the horizon",
        ),
    ] {
        assert_eq!(count(&app, sql, alpha_id).await, 0, "{what}");
    }
    // Gone from the bucket too: a plain glob sees none of alpha's rows.
    let prefix = format!("project_id={alpha_id}/");
    let left: Vec<String> = cold
        .keys()
        .await
        .into_iter()
        .filter(|k| k.contains(&prefix))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let (files, rows): (i32, i64) =
        sqlx::query_as("SELECT expired_files, expired_rows FROM archive_runs WHERE id = $1")
            .bind(report.run_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(i64::from(files), cold_files);
    assert_eq!(rows, report.expired.cold_rows + report.expired.hot_rows);
    check(&app, &alpha, &sent["alpha"], Some(horizon), "after the run").await;
    check(
        &app,
        &beta,
        &sent["beta"],
        None,
        "the other project, after the run",
    )
    .await;

    // Lifting the policy brings nothing back: the expired days stay empty.
    let (status, body) = put_retention(&app, &alpha, r#"{"days": null}"#).await;
    assert_eq!(status, 200, "{body}");
    let kept: Vec<Ev> = sent["alpha"]
        .iter()
        .filter(|e| e.ts.date_naive() >= horizon)
        .cloned()
        .collect();
    let (from, to) = (today() - Duration::days(59), today());
    let body = get(&app, &alpha, &format!("/v1/stats/dau?from={from}&to={to}")).await;
    assert_eq!(dau_of(&body), oracle::dau(&kept, from, to));
    assert!(body["meta"].get("retention").is_none(), "{}", body["meta"]);
}

async fn run(archiver: &Archiver) -> strata_archive::RunReport {
    match archiver.run_once().await.unwrap() {
        RunOutcome::Completed(r) => {
            assert!(r.succeeded(), "{r:?}");
            r
        }
        RunOutcome::Skipped => panic!("skipped"),
    }
}

async fn post(app: &TestApp, key: &str, path: &str, body: &str) -> (u16, Value) {
    send_json(app, reqwest::Method::POST, key, path, body).await
}

/// Two projects with random events over 60 days; days older than 30 cold
/// (one file per day), then late events for cold days of `late_project`,
/// archived as second files of their days. Returns what each stored.
async fn two_projects_with_late_files(
    app: &TestApp,
    rng: &mut StdRng,
    keys: [(&'static str, &str); 2],
    late_project: &str,
) -> HashMap<&'static str, Vec<Ev>> {
    let mut sent: HashMap<&str, Vec<Ev>> = HashMap::new();
    for (p, key) in keys {
        let batch = random_events(rng, 900, 60);
        let values: Vec<Value> = batch.iter().map(|(v, _)| v.clone()).collect();
        assert_eq!(app.ingest_ok(key, &values).await.accepted, 900);
        sent.insert(p, batch.into_iter().map(|(_, e)| e).collect());
    }
    let archiver = app.archiver(30);
    run(&archiver).await;
    let (p, key) = keys.into_iter().find(|k| k.0 == late_project).unwrap();
    let late: Vec<(Value, Ev)> = random_events(rng, 400, 60)
        .into_iter()
        .filter(|(_, e)| e.ts.date_naive() <= today() - Duration::days(32))
        .collect();
    let values: Vec<Value> = late.iter().map(|(v, _)| v.clone()).collect();
    assert_eq!(
        app.ingest_ok(key, &values).await.accepted,
        late.len() as u64
    );
    sent.get_mut(p)
        .unwrap()
        .extend(late.into_iter().map(|(_, e)| e));
    run(&archiver).await;
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_user_removes_them_from_both_tiers_and_every_stat_stays_exact() {
    let (mut rng, app) = seeded_app(TestCold::s3()).await;
    // A second api process: its memory of users must not outlive the
    // erasure either.
    let replica = app.spawn_replica(&[]).await;
    let cold = &app.cold;
    let alpha = app.key("alpha", "ingest,read,admin").await;
    let beta = app.key("beta", "ingest,read").await;
    // Declared: the erasure must keep the values exact (and kept).
    declare_plan(&app, &alpha).await;
    let mut sent = two_projects_with_late_files(
        &app,
        &mut rng,
        [("alpha", &alpha), ("beta", &beta)],
        "alpha",
    )
    .await;
    let alpha_id = app.project_id("alpha").await;
    let victim = "u7";
    // The victim is active today too, through the replica, which then
    // remembers the victim's first-seen bound and ordinal.
    let now = Utc::now() - Duration::seconds(5);
    let today_event = event(
        Uuid::new_v4(),
        victim,
        "view",
        &now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
    );
    let resp = app
        .client
        .post(replica.url("/v1/events"))
        .bearer_auth(&alpha)
        .json(&serde_json::json!({ "events": [today_event.clone()] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    sent.get_mut("alpha").unwrap().push(Ev {
        user: victim.to_owned(),
        event_type: "view".to_owned(),
        ts: today_event["timestamp"].as_str().unwrap().parse().unwrap(),
        props: Value::Null,
    });
    let range = format!(
        "/v1/stats/dau?from={}&to={}",
        today() - Duration::days(59),
        today()
    );
    let resp = app
        .client
        .get(replica.url(&range))
        .bearer_auth(&alpha)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    check(&app, &alpha, &sent["alpha"], None, "before the erasure").await;
    assert_plan_from_rollups(&app, &alpha, "before the erasure").await;

    let hot_before = count(
        &app,
        "SELECT count(*) FROM events WHERE project_id = $1 AND user_id = 'u7'",
        alpha_id,
    )
    .await;
    let cold_before = cold
        .glob()
        .await
        .iter()
        .filter(|r| r.project_id == alpha_id && r.user_id == victim)
        .count() as i64;
    assert!(
        hot_before > 0 && cold_before > 0,
        "{hot_before} {cold_before}"
    );
    let beta_cold_before = cold
        .glob()
        .await
        .iter()
        .filter(|r| r.project_id != alpha_id)
        .count();

    // Bad requests change nothing; only the project's admin key may ask.
    for bad in [
        "{}",
        r#"{"user_id": ""}"#,
        r#"{"user_id": 7}"#,
        r#"{"user_id": "u7", "extra": 1}"#,
        "not json",
    ] {
        let (status, body) = post(&app, &alpha, "/v1/admin/erasures", bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _) = post(&app, &beta, "/v1/admin/erasures", r#"{"user_id": "u7"}"#).await;
    assert_eq!(status, 403);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM erasures WHERE project_id = $1",
            alpha_id
        )
        .await,
        0
    );

    // While the erasure runs, each day's answer is the day before or after
    // it, never a mix of old and new files.
    let (from, to) = (today() - Duration::days(59), today());
    let dau_before = oracle::dau(&sent["alpha"], from, to);
    let without: Vec<Ev> = sent["alpha"]
        .iter()
        .filter(|e| e.user != victim)
        .cloned()
        .collect();
    let dau_after = oracle::dau(&without, from, to);
    let (status, body) = post(&app, &alpha, "/v1/admin/erasures", r#"{"user_id": "u7"}"#).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_i64().unwrap();
    assert!(body.get("user_id").is_none(), "{body}");
    let mut record = Value::Null;
    for _ in 0..600 {
        let dau = dau_of(&get(&app, &alpha, &range).await);
        for ((day, n), (b, a)) in dau.iter().zip(dau_before.iter().zip(&dau_after)) {
            assert!(
                *n == b.1 || *n == a.1,
                "{day}: {n} is neither {} nor {}",
                b.1,
                a.1
            );
        }
        record = get(&app, &alpha, &format!("/v1/admin/erasures/{id}")).await;
        if record["status"] == "done" {
            break;
        }
    }
    assert_eq!(record["status"], "done", "{record}");
    assert_eq!(record["hot_rows"], hot_before, "{record}");
    assert_eq!(record["cold_rows"], cold_before, "{record}");
    assert!(record["files_rewritten"].as_i64().unwrap() > 0, "{record}");
    assert_eq!(record["days_done"], record["days_total"], "{record}");
    // The keyed hash under alpha's own key (ADR-037), not a plain SHA-256
    // anyone could compute from a guessed id.
    let (plain, key): (String, Vec<u8>) = sqlx::query_as(
        "SELECT encode(sha256('u7'::bytea), 'hex'), erasure_key FROM projects WHERE id = $1",
    )
    .bind(alpha_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(record["user_hash"], strata_model::user_hash(&key, "u7"));
    assert_ne!(record["user_hash"], plain.as_str());
    let beta_key: Vec<u8> =
        sqlx::query_scalar("SELECT erasure_key FROM projects WHERE name = 'beta'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_ne!(key, beta_key, "each project has its own key");
    let (status, _) = app
        .get_json(&beta, &format!("/v1/admin/erasures/{id}"))
        .await;
    assert_eq!(status, 403);
    let (status, _) = app.get_json(&alpha, "/v1/admin/erasures/999999").await;
    assert_eq!(status, 404);
    let (status, _) = app.get_json(&alpha, "/v1/admin/erasures/abc").await;
    assert_eq!(status, 400);

    // Nothing of the user is left: not in the hot tier, its first-seen
    // record, its late events, the audit record, nor any object of the
    // bucket; every other row is.
    for (sql, what) in [
        (
            "SELECT count(*) FROM events WHERE project_id = $1 AND user_id = 'u7'",
            "hot rows",
        ),
        (
            "SELECT count(*) FROM user_first_seen WHERE project_id = $1 AND user_id = 'u7'",
            "first seen",
        ),
        (
            "SELECT count(*) FROM hot_late_events WHERE project_id = $1 AND user_id = 'u7'",
            "late events",
        ),
        (
            "SELECT count(*) FROM erasures WHERE project_id = $1 AND user_id IS NOT NULL",
            "clear user id",
        ),
    ] {
        assert_eq!(count(&app, sql, alpha_id).await, 0, "{what}");
    }
    let glob = cold.glob().await;
    assert!(
        !glob
            .iter()
            .any(|r| r.project_id == alpha_id && r.user_id == victim)
    );
    assert_eq!(
        glob.iter().filter(|r| r.project_id != alpha_id).count(),
        beta_cold_before
    );
    let listed: Vec<String> = sqlx::query_scalar("SELECT object_key FROM cold_files ORDER BY 1")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(cold.keys().await, listed, "bucket and manifest differ");
    strata_tests::archive::assert_rollups_match_parquet(&app, cold, "after the erasure").await;
    sent.get_mut("alpha").unwrap().retain(|e| e.user != victim);
    check(&app, &alpha, &sent["alpha"], None, "after the erasure").await;
    assert_plan_from_rollups(&app, &alpha, "after the erasure").await;
    check(&app, &beta, &sent["beta"], None, "the other project").await;

    // The user comes back through the replica: a replay of an erased event
    // is still a duplicate, a new event makes a new user.
    let replay = app
        .client
        .post(replica.url("/v1/events"))
        .bearer_auth(&alpha)
        .json(&serde_json::json!({ "events": [today_event] }))
        .send()
        .await
        .unwrap();
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["duplicates"], 1, "{replay}");
    let back = Utc::now() - Duration::seconds(2);
    let resp = app
        .client
        .post(replica.url("/v1/events"))
        .bearer_auth(&alpha)
        .json(&serde_json::json!({ "events": [event(
            Uuid::new_v4(),
            victim,
            "buy",
            &back.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        )] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM user_first_seen WHERE project_id = $1 AND user_id = 'u7'",
            alpha_id
        )
        .await,
        1,
        "the returning user has a first-seen record again"
    );
    sent.get_mut("alpha").unwrap().push(Ev {
        user: victim.to_owned(),
        event_type: "buy".to_owned(),
        ts: back - Duration::microseconds(back.timestamp_subsec_micros().into()),
        props: Value::Null,
    });
    check(&app, &alpha, &sent["alpha"], None, "the user came back").await;
    let from_replica: Value = app
        .client
        .get(replica.url(&range))
        .bearer_auth(&alpha)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        dau_of(&from_replica),
        oracle::dau(&sent["alpha"], today() - Duration::days(59), today()),
        "the replica"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_each_days_files_into_one_and_every_stat_stays_exact() {
    let (mut rng, app) = seeded_app(TestCold::file()).await;
    let alpha = app.key("alpha", "ingest,read,admin").await;
    let beta = app.key("beta", "ingest,read").await;
    declare_plan(&app, &alpha).await;
    let sent = two_projects_with_late_files(
        &app,
        &mut rng,
        [("alpha", &alpha), ("beta", &beta)],
        "alpha",
    )
    .await;
    let alpha_id = app.project_id("alpha").await;
    let tiers = get(&app, &alpha, "/v1/admin/tiers").await;
    let per_day = &tiers["projects"][0]["cold_files_per_day"];
    assert_eq!(per_day["max"], 2, "{tiers}");
    let several = per_day["days_with_several"].as_i64().unwrap();
    assert!(several > 0, "{tiers}");
    let rows_before = count(
        &app,
        "SELECT sum(rows)::int8 FROM cold_files WHERE project_id = $1",
        alpha_id,
    )
    .await;

    // A day of two files is due only with a floor above their size.
    let planned = app.archiver(30).compaction_plan().await.unwrap();
    assert!(planned.is_empty(), "{planned:?}");
    let archiver = Archiver::new(
        app.hot.clone(),
        app.cold.store.clone(),
        strata_tests::compacting(),
    );
    assert_eq!(
        archiver.compaction_plan().await.unwrap().len() as i64,
        several
    );
    let report = match archiver.compact_once().await.unwrap() {
        RunOutcome::Completed(r) => r,
        RunOutcome::Skipped => panic!("skipped"),
    };
    assert!(report.error.is_none(), "{report:?}");
    assert_eq!(report.compacted.len() as i64, several, "{report:?}");
    assert!(
        report.chunks.is_empty(),
        "a compaction run archives nothing"
    );
    let (days, files): (i32, i32) =
        sqlx::query_as("SELECT compacted_days, compacted_files FROM archive_runs WHERE id = $1")
            .bind(report.run_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(i64::from(days), several);
    assert_eq!(i64::from(files), 2 * several);

    let tiers = get(&app, &alpha, "/v1/admin/tiers").await;
    let per_day = &tiers["projects"][0]["cold_files_per_day"];
    assert_eq!(per_day["max"], 1, "{tiers}");
    assert_eq!(per_day["days_with_several"], 0, "{tiers}");
    assert_eq!(
        count(
            &app,
            "SELECT sum(rows)::int8 FROM cold_files WHERE project_id = $1",
            alpha_id
        )
        .await,
        rows_before
    );
    // The rollups still cover their days (no day went back to its files)…
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM day_rollup_sources s WHERE project_id = $1 AND cold_files <>
               (SELECT count(*) FROM cold_files f WHERE f.project_id = s.project_id AND f.day = s.day)",
            alpha_id
        )
        .await,
        0
    );
    strata_tests::archive::assert_rollups_match_parquet(&app, &app.cold, "after compaction").await;
    // …the bucket holds exactly the manifest's objects…
    let listed: Vec<String> = sqlx::query_scalar("SELECT object_key FROM cold_files ORDER BY 1")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.cold.keys().await, listed);
    let (rows, ids) = app.cold.count_rows_and_ids().await;
    assert_eq!(rows, ids, "an event twice in the bucket");
    // …and every answer is the oracle's.
    check(&app, &alpha, &sent["alpha"], None, "after compaction").await;
    assert_plan_from_rollups(&app, &alpha, "after compaction").await;
    check(&app, &beta, &sent["beta"], None, "the other project").await;
    // Nothing is left to do.
    assert!(archiver.compaction_plan().await.unwrap().is_empty());
}

/// Erasing a user who never sent anything erases nothing and leaves the
/// project's ordinals epoch (every process's memory of users) alone; an
/// erasure that removed a user moves it on.
#[tokio::test]
async fn erasing_a_user_who_never_existed_keeps_the_ordinals_epoch() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest,read,admin").await;
    let project = app.project_id("alpha").await;
    let now = (Utc::now() - Duration::seconds(5))
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    app.ingest_ok(&key, &[event(Uuid::new_v4(), "real", "view", &now)])
        .await;
    let epoch = || async {
        count(
            &app,
            "SELECT ordinals_epoch FROM projects WHERE id = $1",
            project,
        )
        .await
    };
    let before = epoch().await;
    for (user, moved) in [("nobody", 0), ("real", 1)] {
        let body = format!(r#"{{"user_id": "{user}"}}"#);
        let (status, record) = post(&app, &key, "/v1/admin/erasures", &body).await;
        assert_eq!(status, 202, "{record}");
        // The request started a run in the background; one more finishes
        // whatever it left.
        let id = record["id"].as_i64().unwrap();
        let mut done = Value::Null;
        for _ in 0..600 {
            done = get(&app, &key, &format!("/v1/admin/erasures/{id}")).await;
            if done["status"] == "done" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(done["status"], "done", "{done}");
        assert_eq!(epoch().await, before + moved, "after erasing {user}");
    }
}

/// Objects an erasure replaced stay in the store for the grace period
/// after its swap (a stats request planned just before may still read
/// them), through any number of runs; the erasure is `deleting` meanwhile,
/// with the objects counted, and `done` only once a run after the grace
/// period deleted them, when no stored object holds the user.
#[tokio::test]
async fn replaced_objects_outlive_the_swap_by_the_grace_period_and_done_means_gone() {
    let app = spawn_app().await;
    let key = app.key("alpha", "ingest,read").await;
    let project = strata_model::ProjectId(app.project_id("alpha").await);
    let day = today() - Duration::days(40);
    let at = |s: i64| {
        (day.and_hms_opt(12, 0, 0).unwrap().and_utc() + Duration::seconds(s))
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    };
    let events: Vec<Value> = [("gone", 1), ("kept", 2), ("gone", 3), ("kept", 4)]
        .iter()
        .map(|(u, s)| event(Uuid::new_v4(), u, "view", &at(*s)))
        .collect();
    app.ingest_ok(&key, &events).await;
    app.archive(30).await;
    let first = app.cold.keys().await;
    assert_eq!(first.len(), 1);

    let (record, _) = app
        .hot
        .request_erasure(project, "gone", "test")
        .await
        .unwrap();
    let graceful = Archiver::new(
        app.hot.clone(),
        app.cold.store.clone(),
        ArchiveConfig {
            cold_delete_grace: std::time::Duration::from_secs(3_600),
            ..strata_tests::no_compaction()
        },
    );
    let state = || async {
        let r = app.hot.erasure(None, record.id).await.unwrap().unwrap();
        (r.status, r.objects_pending)
    };
    for _ in 0..2 {
        assert!(matches!(
            graceful.erase_once().await.unwrap(),
            RunOutcome::Completed(_)
        ));
        assert_eq!(state().await, ("deleting".to_owned(), 1));
        let now = app.cold.keys().await;
        assert_eq!(now.len(), 2, "{now:?}");
        assert!(
            now.contains(&first[0]),
            "the replaced object is still readable"
        );
    }
    let body = get(&app, &key, &format!("/v1/stats/dau?from={day}&to={day}")).await;
    assert_eq!(
        dau_of(&body),
        vec![(day, 1)],
        "already gone from every answer"
    );

    // The grace period is over.
    sqlx::query("UPDATE cold_deletes SET delete_after = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(matches!(
        graceful.erase_once().await.unwrap(),
        RunOutcome::Completed(_)
    ));
    assert_eq!(state().await, ("done".to_owned(), 0));
    let left = app.cold.keys().await;
    assert!(!left.contains(&first[0]), "{left:?}");
    let rows = app.cold.glob().await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.user_id == "kept"), "{rows:?}");
}

/// Erasure requests are limited per project and hour
/// (`STRATA_ERASURES_PER_HOUR`): past it, 429 naming the limit; another
/// project is not held back.
#[tokio::test]
async fn erasure_requests_past_the_hourly_limit_are_429() {
    let app = TestApp::builder()
        .arg("--erasures-per-hour", 2)
        .spawn()
        .await;
    let alpha = app.key("alpha", "admin").await;
    let beta = app.key("beta", "admin").await;
    for user in ["a", "b"] {
        let (status, body) = post(
            &app,
            &alpha,
            "/v1/admin/erasures",
            &format!(r#"{{"user_id": "{user}"}}"#),
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body) = post(&app, &alpha, "/v1/admin/erasures", r#"{"user_id": "c"}"#).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "too_many_erasures", "{body}");
    let (status, body) = post(&app, &beta, "/v1/admin/erasures", r#"{"user_id": "c"}"#).await;
    assert_eq!(status, 202, "{body}");
}
