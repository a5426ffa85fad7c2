//! Data lifecycle (ADR-031): retention policies hide expired days from
//! stats the moment they commit, and the archive run deletes those days
//! from both tiers with their rollups, leaving every other project and day
//! exactly as it was.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use strata_archive::RunOutcome;
use strata_tests::answers::{dau_of, retention_of, top_of};
use strata_tests::cold::TestCold;
use strata_tests::oracle::{self, Ev};
use strata_tests::{TestApp, event};
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
            let v = event(
                Uuid::from_u128(rng.random()),
                &user,
                event_type,
                &t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            );
            (
                v,
                Ev {
                    user,
                    event_type: event_type.to_owned(),
                    ts: t,
                },
            )
        })
        .collect()
}

async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    let (status, body) = app.get_json(key, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn put_retention(app: &TestApp, key: &str, body: &str) -> (u16, Value) {
    let resp = app
        .client
        .put(app.url("/v1/admin/retention"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
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
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let app = TestApp::builder()
        .arg("--max-late-days-per-batch", 10_000)
        .cold(TestCold::s3())
        .spawn()
        .await;
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
    // hot days and every cold day expire.
    let (status, body) = put_retention(&app, &alpha, r#"{"days": 20}"#).await;
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
