//! Stats through the tier-aware planner, checked against an independent
//! computation over the events each project stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use strata_archive::{ArchiveConfig, Archiver, RunOutcome};
use strata_query::QueryConfig;
use strata_tests::answers::{dau_of, funnel_of, groups_of, retention_of, top_of};
use strata_tests::cold::TestCold;
use strata_tests::oracle::{self, Ev};
use strata_tests::{TestApp, event, spawn_app};
use uuid::Uuid;

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn day_ago(age: i64) -> NaiveDate {
    today() - chrono::Duration::days(age)
}

fn at(day: NaiveDate, secs: u32) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc() + chrono::Duration::seconds(i64::from(secs))
}

/// Ingest limits without the per-batch cap on late days, for tests that
/// send many days at once.
/// No cap on the late days of one batch.
fn many_late_days() -> strata_tests::TestAppBuilder {
    TestApp::builder().arg("--max-late-days-per-batch", 10_000)
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// What the server must count for each project: the first copy of each
/// event_id it was sent.
#[derive(Default)]
struct World {
    stored: HashMap<String, Vec<Ev>>,
    /// (project, event_id) → the JSON first sent, for resending.
    sent: Vec<(String, Value)>,
}

impl World {
    async fn send(&mut self, app: &TestApp, project: &str, key: &str, batch: Vec<(Value, Ev)>) {
        let expected_new = batch.len() as u64;
        let events: Vec<Value> = batch.iter().map(|(v, _)| v.clone()).collect();
        let counts = app.ingest_ok(key, &events).await;
        assert_eq!(counts.accepted, expected_new);
        for (v, e) in batch {
            self.stored.entry(project.to_owned()).or_default().push(e);
            self.sent.push((project.to_owned(), v));
        }
    }

    fn events(&self, project: &str) -> &[Ev] {
        self.stored.get(project).map_or(&[], Vec::as_slice)
    }
}

fn random_event(rng: &mut StdRng, ages: std::ops::Range<i64>) -> (Value, Ev) {
    // Skewed: low user numbers and the first event types dominate.
    let x: f64 = rng.random();
    let user = format!("u{}", (60.0 * x * x) as u32);
    let y: f64 = rng.random();
    let event_type = ["view", "click", "buy", "share", "signup", "zz_rare"][(6.0 * y * y) as usize];
    let t = at(day_ago(rng.random_range(ages)), rng.random_range(0..86_400));
    let t = t.min(Utc::now());
    let id = Uuid::from_u128(rng.random());
    // `plan` of several JSON types, null or missing; `country` skewed.
    let plan = [
        json!("free"),
        json!("pro"),
        json!("team"),
        json!(null),
        json!(1.5),
        json!(2),
        json!(true),
        json!({"tier": 1, "a": "x"}),
    ];
    let country = ["fr", "de", "us", "jp"][(4.0 * y * x) as usize];
    let mut props = json!({ "country": country });
    let pick = rng.random_range(0..=plan.len());
    if let Some(v) = plan.get(pick) {
        props["plan"] = v.clone();
    }
    let mut body = event(id, &user, event_type, &ts(t));
    body["properties"] = props.clone();
    (
        body,
        Ev {
            user,
            event_type: event_type.to_owned(),
            ts: DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap(),
            props,
        },
    )
}

async fn ok(app: &TestApp, key: &str, path: &str) -> Value {
    let (status, body) = app.get_json(key, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// [`check_all`] for each project (with its key), every cold day answered
/// from its rollup.
async fn check_all_from_rollups(
    app: &TestApp,
    (projects, keys): (&[&str], &[String]),
    world: &World,
    range: (NaiveDate, NaiveDate),
    retention: (bool, usize),
    context: &str,
) {
    for (p, key) in projects.iter().zip(keys) {
        let (meta, by_plan) =
            check_all(app, key, world.events(p), range, 5, retention, context).await;
        assert_eq!(
            meta["cold"]["rollups"]["days"], meta["cold"]["days"],
            "{p} ({context}): {meta}"
        );
        assert_by_plan_from_rollups(p, &by_plan, context);
    }
}

/// A project that declares `plan` did so before any archive run, so every
/// cold day's rollup holds its values: a breakdown by it reads the files of
/// no cold day but those hot rows also hold that no seal does (days both
/// tiers hold, at most). Beta's rollups hold no values at all.
fn assert_by_plan_from_rollups(p: &str, by_plan: &Value, context: &str) {
    let cold = &by_plan["cold"];
    let from_rollups = cold["rollups"]["days"].as_u64().unwrap();
    if DECLARING_PLAN.contains(&p) {
        let both = by_plan["both_days"].as_array().unwrap().len() as u64;
        let days = cold["days"].as_u64().unwrap();
        assert!(
            from_rollups + both >= days,
            "{p} by plan ({context}): {by_plan}"
        );
    } else {
        assert_eq!(from_rollups, 0, "{p} by plan ({context}): {by_plan}");
    }
}

/// The projects of the random test that declare `plan` (ADR-043): their
/// breakdowns by it answer from rollups; beta's read the events.
const DECLARING_PLAN: [&str; 2] = ["alpha", "gamma"];

/// Every endpoint over `from..=to` equals the oracle. Returns the metas of
/// the DAU and of the DAU by `plan`.
async fn check_all(
    app: &TestApp,
    key: &str,
    events: &[Ev],
    (from, to): (NaiveDate, NaiveDate),
    limit: usize,
    (week, periods): (bool, usize),
    context: &str,
) -> (Value, Value) {
    let body = ok(app, key, &format!("/v1/stats/dau?from={from}&to={to}")).await;
    assert_eq!(
        dau_of(&body),
        oracle::dau(events, from, to),
        "DAU {from}..{to} ({context}); meta {}",
        body["meta"]
    );
    let meta = body["meta"].clone();
    // DAU of one event type: the same oracle over that type's events; a
    // type with no event at all (`never`) is all zeros.
    for event_type in ["buy", "zz_rare", "never"] {
        let body = ok(
            app,
            key,
            &format!("/v1/stats/dau?from={from}&to={to}&event_type={event_type}"),
        )
        .await;
        let of_type: Vec<Ev> = events
            .iter()
            .filter(|e| e.event_type == event_type)
            .cloned()
            .collect();
        assert_eq!(
            dau_of(&body),
            oracle::dau(&of_type, from, to),
            "DAU of {event_type} {from}..{to} ({context}); meta {}",
            body["meta"]
        );
    }
    let body = ok(
        app,
        key,
        &format!("/v1/stats/top-events?from={from}&to={to}&limit={limit}"),
    )
    .await;
    assert_eq!(
        top_of(&body),
        oracle::top_events(events, from, to, limit),
        "top events {from}..{to} limit {limit} ({context}); meta {}",
        body["meta"]
    );
    // Funnels: three steps, a type coming back, a chain ending past `to`,
    // a type nobody had.
    for (steps, secs) in [
        ("view,click,buy", 86_400),
        ("signup,view,view", 7 * 86_400),
        ("click,buy", 7_200),
        ("buy,never", 1_800),
    ] {
        let body = ok(
            app,
            key,
            &format!("/v1/stats/funnel?from={from}&to={to}&steps={steps}&window={secs}"),
        )
        .await;
        let names: Vec<&str> = steps.split(',').collect();
        assert_eq!(
            funnel_of(&body),
            oracle::funnel(events, from, to, &names, chrono::Duration::seconds(secs)),
            "funnel {steps} within {secs} s {from}..{to} ({context}); meta {}",
            body["meta"]
        );
    }
    // Breakdowns by a property of several JSON types (with nulls and
    // missing keys), few groups shown so that "other" holds several.
    let range = (from, to);
    let mut by_plan = Value::Null;
    for (prop, groups) in [("plan", 3), ("country", 10)] {
        let path = format!(
            "/v1/stats/dau?from={from}&to={to}&group_by=property:{prop}&limit_groups={groups}"
        );
        let body = ok(app, key, &path).await;
        assert_eq!(dau_of(&body), oracle::dau(events, from, to), "{path}");
        if prop == "plan" {
            by_plan = body["meta"].clone();
        }
        assert_eq!(
            groups_of(&body, |g| (g["total"].as_u64().unwrap(), dau_of(g))),
            oracle::dau_by(events, range, prop, groups),
            "{path} ({context}); meta {}",
            body["meta"]
        );
        let path = format!(
            "/v1/stats/top-events?from={from}&to={to}&limit={limit}&group_by=property:{prop}&limit_groups={groups}"
        );
        let body = ok(app, key, &path).await;
        assert_eq!(
            top_of(&body),
            oracle::top_events(events, from, to, limit),
            "{path}"
        );
        assert_eq!(
            groups_of(&body, |g| (g["total"].as_u64().unwrap(), top_of(g))),
            oracle::top_events_by(events, range, limit, prop, groups),
            "{path} ({context}); meta {}",
            body["meta"]
        );
    }
    // Of one event type: the value rows of that type.
    let path = format!(
        "/v1/stats/dau?from={from}&to={to}&event_type=buy&group_by=property:plan&limit_groups=2"
    );
    let body = ok(app, key, &path).await;
    let buys: Vec<Ev> = events
        .iter()
        .filter(|e| e.event_type == "buy")
        .cloned()
        .collect();
    assert_eq!(
        groups_of(&body, |g| (g["total"].as_u64().unwrap(), dau_of(g))),
        oracle::dau_by(&buys, range, "plan", 2),
        "{path} ({context}); meta {}",
        body["meta"]
    );
    let path = format!(
        "/v1/stats/funnel?from={from}&to={to}&steps=view,click&window=86400&group_by=property:plan&limit_groups=3"
    );
    let body = ok(app, key, &path).await;
    assert_eq!(
        groups_of(&body, funnel_of),
        oracle::funnel_by(
            events,
            range,
            (&["view", "click"], chrono::Duration::days(1)),
            "plan",
            3
        ),
        "{path} ({context}); meta {}",
        body["meta"]
    );
    let period = if week { "week" } else { "day" };
    let before = today();
    let body = ok(
        app,
        key,
        &format!("/v1/stats/retention?from={from}&to={to}&period={period}&periods={periods}"),
    )
    .await;
    if today() == before {
        assert_eq!(
            retention_of(&body),
            oracle::retention(events, from, to, week, periods, before),
            "retention {from}..{to} {period} x{periods} ({context}); meta {}",
            body["meta"]
        );
    }
    // Retention counting only returns by a `click`; cohorts of each user's
    // first `buy`, returning by any event or by a `view`; and of a type
    // nobody had (every cohort empty).
    for (start, ret) in [
        (None, Some("click")),
        (Some("buy"), None),
        (Some("buy"), Some("view")),
        (Some("never"), None),
    ] {
        let filters = [("start_event", start), ("return_event", ret)]
            .iter()
            .filter_map(|(name, v)| v.map(|v| format!("&{name}={v}")))
            .collect::<String>();
        let body = ok(
            app,
            key,
            &format!(
                "/v1/stats/retention?from={from}&to={to}&period={period}&periods={periods}{filters}"
            ),
        )
        .await;
        if today() == before {
            assert_eq!(
                retention_of(&body),
                oracle::retention_filtered(events, from, to, (week, periods), before, (start, ret)),
                "retention from the first {start:?} returning by {ret:?} {from}..{to} {period} x{periods} ({context}); meta {}",
                body["meta"]
            );
        }
    }
    (meta, by_plan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stat_equals_an_independent_computation_on_random_events_across_tiers() {
    let seed = strata_tests::test_seed();
    let context = format!("seed {seed}; rerun with STRATA_TEST_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    // Batches of random days: no cap on late days per batch here.
    let app = many_late_days().cold(TestCold::s3()).spawn().await;
    let projects = ["alpha", "beta", "gamma"];
    let mut keys = Vec::new();
    for p in projects {
        keys.push(app.key(p, "ingest,read").await);
    }
    let plan = strata_model::PropertyKey::parse("plan").unwrap();
    for p in DECLARING_PLAN {
        let id = strata_model::ProjectId(app.project_id(p).await);
        app.hot.declare_property(id, &plan).await.unwrap();
    }
    let mut world = World::default();

    // History over 70 days, sent in batches.
    for round in 0..6 {
        for (p, key) in projects.iter().zip(&keys) {
            let n = [300, 120, 40][round % 3];
            let batch = (0..n).map(|_| random_event(&mut rng, 0..70)).collect();
            world.send(&app, p, key, batch).await;
        }
    }
    // Duplicates: resent as is, and the same ids with another time, user and
    // type (the first copy wins; these change nothing).
    let resend = |world: &World, rng: &mut StdRng, project: &str| -> Vec<Value> {
        let mine: Vec<&Value> = world
            .sent
            .iter()
            .filter(|(p, _)| p == project)
            .map(|(_, v)| v)
            .collect();
        (0..60)
            .map(|i| {
                let mut v = mine[rng.random_range(0..mine.len())].clone();
                if i % 2 == 0 {
                    v["user_id"] = json!("someone_else");
                    v["event_type"] = json!("changed");
                    v["timestamp"] = json!(ts(Utc::now() - chrono::Duration::hours(1)));
                }
                v
            })
            .collect()
    };
    for (p, key) in projects.iter().zip(&keys) {
        let mut dupes = resend(&world, &mut rng, p);
        dupes.sort_by_key(|v| v["event_id"].as_str().unwrap().to_owned());
        dupes.dedup_by_key(|v| v["event_id"].as_str().unwrap().to_owned());
        let c = app.ingest_ok(key, &dupes).await;
        assert_eq!((c.accepted, c.duplicates), (0, dupes.len() as u64));
    }

    // Days older than ~20 days go cold; then late events land in archived
    // days (hot again: those days are held by both tiers); a second archive
    // pass moves part of them as second files; more late events follow.
    app.archive(20).await;
    for (p, key) in projects.iter().zip(&keys) {
        let batch = (0..80).map(|_| random_event(&mut rng, 22..70)).collect();
        world.send(&app, p, key, batch).await;
    }
    app.archive(45).await;
    for (p, key) in projects.iter().zip(&keys) {
        let batch = (0..40).map(|_| random_event(&mut rng, 47..70)).collect();
        world.send(&app, p, key, batch).await;
        let c = app.ingest_ok(key, &resend(&world, &mut rng, p)[..1]).await;
        assert_eq!(c.accepted, 0);
    }
    // The archive runs sealed every closed hot day (ADR-028); late events
    // into those days are recorded beside their rollups.
    for (p, key) in projects.iter().zip(&keys) {
        let batch = (0..30).map(|_| random_event(&mut rng, 2..20)).collect();
        world.send(&app, p, key, batch).await;
    }
    let late: i64 = sqlx::query_scalar("SELECT count(*) FROM hot_late_events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(late > 0, "no late event was recorded for a sealed day");

    // Fixed ranges (all hot, all cold, straddling, beyond the data), then
    // random ones.
    let mut ranges = vec![
        (day_ago(10), today()),
        (day_ago(69), day_ago(30)),
        (day_ago(75), today()),
        (day_ago(40), day_ago(5)),
        (day_ago(200), day_ago(150)),
    ];
    for _ in 0..14 {
        let a = rng.random_range(0..80);
        let b = rng.random_range(0..80);
        ranges.push((day_ago(a.max(b)), day_ago(a.min(b))));
    }
    let (mut saw_both, mut saw_mixed, mut saw_rollups, mut saw_sealed) =
        (false, false, false, false);
    for (i, range) in ranges.iter().copied().enumerate() {
        let p = projects[i % projects.len()];
        let key = &keys[i % projects.len()];
        let limit = rng.random_range(1..8);
        let retention = (rng.random_bool(0.5), rng.random_range(1..12));
        let (meta, by_plan) = check_all(
            &app,
            key,
            world.events(p),
            range,
            limit,
            retention,
            &context,
        )
        .await;
        assert_by_plan_from_rollups(p, &by_plan, &context);
        saw_both |= !meta["both_days"].as_array().unwrap().is_empty();
        saw_mixed |=
            meta["hot"]["days"].as_u64() > Some(0) && meta["cold"]["days"].as_u64() > Some(0);
        // Every cold day has a current rollup here (made by the archive
        // commits, merged for the days archived twice).
        assert_eq!(
            meta["cold"]["rollups"]["days"], meta["cold"]["days"],
            "a cold day was not answered from its rollup ({context}): {meta}"
        );
        saw_rollups |= meta["cold"]["rollups"]["days"].as_u64() > Some(0);
        saw_sealed |= meta["hot"]["rollups"]["days"].as_u64() > Some(0);
    }
    assert!(saw_sealed, "no range was answered from sealed hot days");
    assert!(saw_both, "no range covered a day held by both tiers");
    assert!(saw_mixed, "no range straddled the tiers");
    assert!(saw_rollups, "no range was answered from rollups");

    // Missing rollups (alpha's five earliest days), an unreadable one
    // (beta's earliest day) and an incomplete one (gamma's): those days are
    // answered from their files, the others still from rollups, and every
    // answer stays exact.
    let kept_by_commits = strata_tests::archive::rollup_sets(&app.pool).await;
    // The server decodes every rollup of the range below before the damage.
    let whole = (day_ago(75), today());
    for key in &keys {
        ok(
            &app,
            key,
            &format!("/v1/stats/dau?from={}&to={}", whole.0, whole.1),
        )
        .await;
    }
    let (alpha, beta) = (app.project_id("alpha").await, app.project_id("beta").await);
    sqlx::query(
        "DELETE FROM day_rollups WHERE project_id = $1 AND day IN
           (SELECT day FROM day_rollup_sources WHERE project_id = $1 ORDER BY day LIMIT 5)",
    )
    .bind(alpha)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE day_rollups SET users = '\\x0102'::bytea WHERE project_id = $1 AND day =
           (SELECT min(day) FROM day_rollup_sources WHERE project_id = $1)",
    )
    .bind(beta)
    .execute(&app.pool)
    .await
    .unwrap();
    // And an incomplete one: gamma's earliest day loses one event type's row.
    let gamma = app.project_id("gamma").await;
    sqlx::query(
        "DELETE FROM day_rollups WHERE (project_id, day, event_type) =
           (SELECT project_id, day, event_type FROM day_rollups
             WHERE project_id = $1 AND event_type <> '' ORDER BY day, event_type LIMIT 1)",
    )
    .bind(gamma)
    .execute(&app.pool)
    .await
    .unwrap();
    // And the hot side: alpha's first sealed day loses its all-types row,
    // beta's its type rows; gamma's first has a bitmap that does not decode.
    for (project, damage) in [
        (
            alpha,
            "DELETE FROM hot_rollups WHERE event_type = '' AND project_id = $1 AND day =",
        ),
        (
            beta,
            "DELETE FROM hot_rollups WHERE event_type <> '' AND project_id = $1 AND day =",
        ),
        (
            gamma,
            "UPDATE hot_rollups SET users = '\\x0102'::bytea WHERE project_id = $1 AND day =",
        ),
    ] {
        let n = sqlx::query(&format!(
            "{damage} (SELECT min(day) FROM hot_rollup_seals WHERE project_id = $1)"
        ))
        .bind(project)
        .execute(&app.pool)
        .await
        .unwrap()
        .rows_affected();
        assert!(n > 0, "nothing to damage in {project}'s sealed days");
    }
    // This server had decoded those rollups before the damage: their
    // versions did not change, so it keeps answering from its copies,
    // which are what the rows were (ADR-030), and every answer is exact.
    check_all_from_rollups(&app, (&projects, &keys), &world, whole, (true, 8), &context).await;
    // A server that has not read them (this one, once it forgets) finds
    // the damage and reads those days from their files and rows.
    app.hot.forget_rollups();
    for (i, p) in projects.iter().enumerate() {
        let (meta, _) = check_all(
            &app,
            &keys[i],
            world.events(p),
            whole,
            5,
            (true, 8),
            &context,
        )
        .await;
        let (rollup_days, cold_days) = (
            meta["cold"]["rollups"]["days"].as_u64().unwrap(),
            meta["cold"]["days"].as_u64().unwrap(),
        );
        let lost = match *p {
            "alpha" => 5,
            _ => 1,
        };
        assert_eq!(rollup_days + lost, cold_days, "{p} ({context}): {meta}");
        let sealed = meta["hot"]["rollups"]["days"].as_u64().unwrap();
        assert_eq!(
            sealed,
            sealed_days(&app.pool, app.project_id(p).await).await - 1,
            "{p}: the damaged sealed day must be read from its rows ({context}): {meta}"
        );
    }

    // Rebuilt from the Parquet files, the rollups equal what the archive
    // commits kept, and every cold day is answered from them again.
    let report = app
        .archiver(20)
        .rebuild_rollups(None, None, None)
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.rebuilt, report.days, "{report:?}");
    assert_eq!(
        strata_tests::archive::rollup_sets(&app.pool).await,
        kept_by_commits,
        "rollups rebuilt from Parquet differ from those the archive commits kept ({context})"
    );
    check_all_from_rollups(
        &app,
        (&projects, &keys),
        &world,
        whole,
        (false, 8),
        &context,
    )
    .await;

    // The rebuild also sealed every closed hot day again: the late events
    // are folded in, the damaged seals rewritten from the rows, and every
    // closed hot day is answered from its rollup.
    assert!(report.hot_days_sealed > 0, "{report:?}");
    let late: i64 = sqlx::query_scalar("SELECT count(*) FROM hot_late_events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(late, 0);
    for (i, p) in projects.iter().enumerate() {
        let (meta, _) = check_all(
            &app,
            &keys[i],
            world.events(p),
            whole,
            5,
            (true, 6),
            &context,
        )
        .await;
        let project = app.project_id(p).await;
        assert_eq!(
            meta["hot"]["rollups"]["days"].as_u64().unwrap(),
            sealed_days(&app.pool, project).await,
            "{p} ({context}): {meta}"
        );
        assert!(meta["hot"]["rollups"]["days"].as_u64() > Some(0), "{meta}");
    }
}

/// The project's sealed hot days.
async fn sealed_days(pool: &sqlx::PgPool, project: i64) -> u64 {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM hot_rollup_seals WHERE project_id = $1")
        .bind(project)
        .fetch_one(pool)
        .await
        .unwrap();
    n as u64
}

/// Sends `events` (user, type, time) for a project and returns them as the
/// oracle sees them.
async fn send(app: &TestApp, key: &str, events: &[(&str, &str, DateTime<Utc>)]) -> Vec<Ev> {
    let with: Vec<_> = events
        .iter()
        .map(|(u, t, at)| (*u, *t, *at, "{}"))
        .collect();
    send_with(app, key, &with).await
}

/// [`send`], each event with its properties (a JSON object's text).
async fn send_with(
    app: &TestApp,
    key: &str,
    events: &[(&str, &str, DateTime<Utc>, &str)],
) -> Vec<Ev> {
    let body: Vec<Value> = events
        .iter()
        .map(|(u, t, at, props)| {
            let mut e = event(Uuid::new_v4(), u, t, &ts(*at));
            e["properties"] = serde_json::from_str(props).unwrap();
            e
        })
        .collect();
    assert_eq!(
        app.ingest_ok(key, &body).await.accepted,
        events.len() as u64
    );
    events
        .iter()
        .map(|(u, t, at, props)| Ev {
            user: (*u).to_owned(),
            event_type: (*t).to_owned(),
            ts: *at,
            props: serde_json::from_str(props).unwrap(),
        })
        .collect()
}

#[tokio::test]
async fn a_day_split_across_tiers_counts_each_user_once() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest,read").await;
    let d = day_ago(40);
    let mut all = send(
        &app,
        &key,
        &[
            ("ann", "view", at(d, 100)),
            ("bob", "view", at(d, 200)),
            ("bob", "buy", at(d, 300)),
        ],
    )
    .await;
    app.archive(30).await;
    // Late: bob again (already counted cold) and carl (new), same day.
    all.extend(
        send(
            &app,
            &key,
            &[("bob", "view", at(d, 400)), ("carl", "buy", at(d, 500))],
        )
        .await,
    );
    let body = ok(&app, &key, &format!("/v1/stats/dau?from={d}&to={d}")).await;
    assert_eq!(dau_of(&body), vec![(d, 3)], "{body}");
    assert_eq!(body["meta"]["both_days"], json!([d.to_string()]));
    assert_eq!(body["meta"]["cold"]["days"], 1);
    assert_eq!(body["meta"]["hot"]["days"], 1);
    let body = ok(&app, &key, &format!("/v1/stats/top-events?from={d}&to={d}")).await;
    assert_eq!(
        top_of(&body),
        vec![("view".into(), 3, 2), ("buy".into(), 2, 2)],
        "{body}"
    );
    check_all(&app, &key, &all, (d, d), 10, (false, 3), "split day").await;
}

/// A funnel's chain may start on a cold day and go on in the hot tier, in
/// late events of an archived day, and past `to`; events at one instant
/// never chain, and other events between the steps change nothing.
#[tokio::test]
async fn funnel_chains_cross_tiers_late_events_and_the_end_of_the_range() {
    let app = many_late_days().spawn().await;
    let key = app.key("acme", "ingest,read").await;
    let (a, b) = (day_ago(33), day_ago(32));
    let mut all = send(
        &app,
        &key,
        &[
            // ann: view cold (day a, late evening) … click on day b.
            ("ann", "view", at(a, 86_000)),
            ("ann", "other", at(a, 86_100)),
            // bob: view and click at one instant, buy later: level 1 only
            // from that instant (a click at the same time never follows).
            ("bob", "view", at(a, 500)),
            ("bob", "click", at(a, 500)),
            ("bob", "buy", at(a, 900)),
            // carl: an earlier view saves the chain his later view breaks.
            ("carl", "view", at(a, 100)),
            ("carl", "view", at(a, 200)),
            ("carl", "click", at(a, 200)),
            ("carl", "buy", at(a, 300)),
            // Someone else's event makes day b cold too.
            ("eve", "other", at(b, 10)),
        ],
    )
    .await;
    app.archive(30).await;
    all.extend(
        send(
            &app,
            &key,
            &[
                // ann's click and buy: a late event of the archived day b
                // (hot again) and a hot day past `to`.
                ("ann", "click", at(b, 50)),
                ("ann", "buy", at(day_ago(31), 10)),
                // dan starts in a late event of the cold day a.
                ("dan", "view", at(a, 1_000)),
                ("dan", "click", at(a, 2_000)),
            ],
        )
        .await,
    );
    let path = format!("/v1/stats/funnel?from={a}&to={a}&steps=view,click,buy&window=259200");
    let body = ok(&app, &key, &path).await;
    assert_eq!(
        funnel_of(&body),
        vec![("view".into(), 4), ("click".into(), 3), ("buy".into(), 2)],
        "{body}"
    );
    let names = ["view", "click", "buy"];
    assert_eq!(
        funnel_of(&body),
        oracle::funnel(&all, a, a, &names, chrono::Duration::days(3))
    );
    assert_eq!(
        body["read_to"],
        json!((a + chrono::Duration::days(3)).to_string())
    );
    assert_eq!(body["window_seconds"], 3 * 86_400);
    assert_eq!(
        body["meta"]["both_days"],
        json!([a.to_string(), b.to_string()])
    );
    // With a window of a day, ann's buy is too late.
    let body = ok(
        &app,
        &key,
        &format!("/v1/stats/funnel?from={a}&to={a}&steps=view,click,buy&window=86400"),
    )
    .await;
    assert_eq!(
        funnel_of(&body),
        vec![("view".into(), 4), ("click".into(), 3), ("buy".into(), 1)],
        "{body}"
    );
    assert_eq!(
        body["steps"][2]["conversion_from_previous"],
        json!(1.0 / 3.0)
    );
}

/// A property's value is one group whichever tier holds it, however each
/// engine prints it (PostgreSQL keeps `1.50`, DuckDB reads `1.5`; object
/// keys in any order), and a missing key and `null` are one group.
#[tokio::test]
async fn a_property_value_is_one_group_whichever_tier_holds_it() {
    let app = many_late_days().spawn().await;
    let key = app.key("acme", "ingest,read").await;
    let (old, today) = (day_ago(40), today());
    let mut all = send_with(
        &app,
        &key,
        &[
            ("ann", "view", at(old, 10), r#"{"plan": 1.50}"#),
            (
                "bob",
                "view",
                at(old, 20),
                r#"{"plan": {"b": 1, "a": [1, 2.0]}}"#,
            ),
            ("dan", "view", at(old, 30), r#"{"other": 1}"#),
            ("eve", "view", at(old, 40), r#"{"plan": null}"#),
        ],
    )
    .await;
    app.archive(30).await;
    let now = Utc::now() - chrono::Duration::seconds(5);
    all.extend(
        send_with(
            &app,
            &key,
            &[
                ("ann", "view", now, r#"{"plan": 1.5}"#),
                ("bob", "buy", now, r#"{"plan": {"a": [1, 2.0], "b": 1}}"#),
                ("fay", "view", now, r#"{"plan": "pro"}"#),
                // A late event of the archived day: the same value as ann's.
                ("gus", "view", at(old, 50), r#"{"plan": 1.500}"#),
            ],
        )
        .await,
    );
    let path = format!("/v1/stats/dau?from={old}&to={today}&group_by=property:plan");
    let body = ok(&app, &key, &path).await;
    let groups = groups_of(&body, |g| g["total"].as_u64().unwrap());
    let object = r#"{"a":[1,2.0],"b":1}"#.to_owned();
    assert_eq!(
        groups,
        vec![
            ("value".into(), Some("1.5".into()), 3),
            ("value".into(), Some(object), 2),
            ("missing".into(), None, 2),
            ("value".into(), Some("pro".into()), 1),
        ],
        "{body}"
    );
    assert_eq!(body["meta"]["both_days"], json!([old.to_string()]));
    assert_eq!(
        groups_of(&body, |g| (g["total"].as_u64().unwrap(), dau_of(g))),
        oracle::dau_by(&all, (old, today), "plan", 10)
    );
    // Two groups shown: "other" holds the missing group and "pro", each
    // user once.
    let body = ok(&app, &key, &format!("{path}&limit_groups=2")).await;
    let last = &body["groups"][2];
    assert_eq!(
        (last["kind"].as_str(), last["values"].as_u64()),
        (Some("other"), Some(2))
    );
    assert_eq!(last["total"], 3, "{body}");
    let path =
        format!("/v1/stats/top-events?from={old}&to={today}&group_by=property:plan&limit_groups=1");
    let body = ok(&app, &key, &path).await;
    assert_eq!(
        groups_of(&body, |g| (g["total"].as_u64().unwrap(), top_of(g))),
        vec![
            (
                "value".into(),
                Some("1.5".into()),
                (3, vec![("view".into(), 3, 2)])
            ),
            (
                "other".into(),
                None,
                (5, vec![("view".into(), 4, 4), ("buy".into(), 1, 1)])
            ),
        ],
        "{body}"
    );
}

/// A property declared after days were archived (ADR-043): breakdowns by
/// it stay exact throughout, from the events of days whose rollups do not
/// hold its values, and from the rollups once `rollups rebuild` adds them;
/// a late event into a sealed day sends that day back to its rows until
/// the next seal, and one into a cold day until the next archive run.
#[tokio::test]
async fn a_property_declared_later_answers_from_events_then_from_rebuilt_rollups() {
    let app = many_late_days().spawn().await;
    let key = app.key("acme", "ingest,read,admin").await;
    let (old, mid, today) = (day_ago(40), day_ago(5), today());
    let mut all = send_with(
        &app,
        &key,
        &[
            ("ann", "view", at(old, 10), r#"{"plan": 1.50}"#),
            ("bob", "buy", at(old, 20), r#"{"plan": "pro"}"#),
            ("dan", "view", at(old, 30), r#"{"other": 1}"#),
            ("eve", "view", at(mid, 40), r#"{"plan": null}"#),
            ("ann", "buy", at(mid, 50), r#"{"plan": 1.5}"#),
        ],
    )
    .await;
    // `old` goes cold, `mid` is sealed.
    app.archive(30).await;
    let check = async |all: &[Ev], context: &str| {
        let path = format!("/v1/stats/dau?from={old}&to={today}&group_by=property:plan");
        let body = ok(&app, &key, &path).await;
        assert_eq!(
            groups_of(&body, |g| (g["total"].as_u64().unwrap(), dau_of(g))),
            oracle::dau_by(all, (old, today), "plan", 10),
            "{context}: {body}"
        );
        let path = format!(
            "/v1/stats/top-events?from={old}&to={today}&limit=10&group_by=property:plan&limit_groups=2"
        );
        let top = ok(&app, &key, &path).await;
        assert_eq!(
            groups_of(&top, |g| (g["total"].as_u64().unwrap(), top_of(g))),
            oracle::top_events_by(all, (old, today), 10, "plan", 2),
            "{context}: {top}"
        );
        for tier in ["cold", "hot"] {
            assert_eq!(
                top["meta"][tier]["rollups"]["days"], body["meta"][tier]["rollups"]["days"],
                "{context}: {top}"
            );
        }
        body["meta"].clone()
    };
    let rolled = |meta: &Value| {
        (
            meta["cold"]["rollups"]["days"].as_u64().unwrap(),
            meta["hot"]["rollups"]["days"].as_u64().unwrap(),
        )
    };
    assert_eq!(rolled(&check(&all, "nothing declared").await), (0, 0));

    let put = |path: &str| app.client.put(app.url(path)).bearer_auth(&key).send();
    let resp = put("/v1/admin/properties/plan").await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["properties"], json!(["plan"]), "{body}");
    assert_eq!(body["max"], 8);
    assert_eq!(
        ok(&app, &key, "/v1/admin/properties").await["properties"],
        json!(["plan"])
    );
    // Declared, but no rollup holds its values yet.
    assert_eq!(rolled(&check(&all, "declared").await), (0, 0));
    let report = app
        .archiver(30)
        .rebuild_rollups(None, None, None)
        .await
        .unwrap();
    assert_eq!((report.rebuilt, report.failed.len()), (1, 0), "{report:?}");
    let meta = check(&all, "rebuilt").await;
    assert_eq!(rolled(&meta), (1, 1), "{meta}");
    assert_eq!(meta["cold"]["rows"], 0, "no file read: {meta}");

    // Late events: into the sealed day, then into the cold one.
    all.extend(
        send_with(
            &app,
            &key,
            &[("fay", "view", at(mid, 60), r#"{"plan": "team"}"#)],
        )
        .await,
    );
    assert_eq!(
        rolled(&check(&all, "late into the sealed day").await),
        (1, 0)
    );
    all.extend(
        send_with(
            &app,
            &key,
            &[("gus", "buy", at(old, 70), r#"{"plan": "pro"}"#)],
        )
        .await,
    );
    let meta = check(&all, "late into the cold day").await;
    assert_eq!(rolled(&meta), (0, 0), "{meta}");
    assert_eq!(meta["both_days"], json!([old.to_string()]));
    // The next run archives the late event into the day's rollup and
    // seals the other day again: both answer from rollups.
    app.archive(30).await;
    assert_eq!(rolled(&check(&all, "archived again").await), (1, 1));

    // At most 8; keys as a breakdown takes them; only the project's admin.
    for p in ["a", "b", "c", "d", "e", "f", "g%2Fh"] {
        assert_eq!(
            put(&format!("/v1/admin/properties/{p}"))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let resp = put("/v1/admin/properties/i").await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("at most 8"),
        "{body}"
    );
    let listed = ok(&app, &key, "/v1/admin/properties").await;
    assert_eq!(
        listed["properties"].as_array().unwrap().len(),
        8,
        "{listed}"
    );
    assert!(
        listed["properties"]
            .as_array()
            .unwrap()
            .contains(&json!("g/h")),
        "{listed}"
    );
    let long = "k".repeat(257);
    assert_eq!(
        put(&format!("/v1/admin/properties/{long}"))
            .await
            .unwrap()
            .status(),
        400
    );
    let delete = |path: String| app.client.delete(app.url(&path)).bearer_auth(&key).send();
    assert_eq!(
        delete("/v1/admin/properties/nope".into())
            .await
            .unwrap()
            .status(),
        404
    );
    let resp = delete("/v1/admin/properties/plan".into()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(
        !body["properties"]
            .as_array()
            .unwrap()
            .contains(&json!("plan")),
        "{body}"
    );
    let reader = app.key("acme", "read").await;
    let (status, _) = app.get_json(&reader, "/v1/admin/properties").await;
    assert_eq!(status, 403);
}

/// A day archived a second time (late events) whose rollup did not cover
/// its first file, as for a day archived before rollups existed, keeps no
/// current rollup; so does one whose rollup lost a type's row (the second
/// archive must not merge into it): both are answered from their files,
/// exactly, until `rollups rebuild` makes rollups that cover both files.
#[tokio::test]
async fn a_rollup_left_stale_by_a_second_archive_falls_back_until_rebuilt() {
    let app = many_late_days().spawn().await;
    let key = app.key("acme", "ingest,read").await;
    let (missing, incomplete) = (day_ago(40), day_ago(41));
    let mut all = Vec::new();
    for day in [missing, incomplete] {
        let first = [("a", "view", at(day, 10)), ("b", "click", at(day, 20))];
        all.extend(send(&app, &key, &first).await);
    }
    app.archive(30).await;
    for table in ["day_rollups", "day_rollup_sources"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE day = $1"))
            .bind(missing)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM day_rollups WHERE day = $1 AND event_type = 'click'")
        .bind(incomplete)
        .execute(&app.pool)
        .await
        .unwrap();
    for day in [missing, incomplete] {
        let late = [("c", "view", at(day, 30)), ("a", "click", at(day, 40))];
        all.extend(send(&app, &key, &late).await);
    }
    app.archive(30).await;
    let range = (incomplete, missing);
    let (meta, _) = check_all(&app, &key, &all, range, 10, (false, 2), "stale").await;
    assert_eq!(meta["cold"]["files"], 4, "{meta}");
    assert_eq!(meta["cold"]["rollups"]["days"], 0, "{meta}");

    let report = app
        .archiver(30)
        .rebuild_rollups(None, None, None)
        .await
        .unwrap();
    assert_eq!((report.days, report.rebuilt), (2, 2), "{report:?}");
    let (meta, _) = check_all(&app, &key, &all, range, 10, (false, 2), "rebuilt").await;
    assert_eq!(meta["cold"]["rollups"]["days"], 2, "{meta}");
    assert_eq!(meta["cold"]["files"], 0, "{meta}");
}

/// The planner's guard (`current_rollups`): a complete rollup whose source
/// no longer names the day's files in the request's manifest is ignored,
/// and the day is read from its files. The rollup here is also wrong in
/// content, so using it would give other answers.
#[tokio::test]
async fn a_complete_rollup_whose_source_no_longer_matches_the_manifest_is_ignored() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest,read").await;
    let d = day_ago(40);
    let all = send(
        &app,
        &key,
        &[
            ("a", "view", at(d, 10)),
            ("b", "click", at(d, 20)),
            ("a", "buy", at(d, 30)),
        ],
    )
    .await;
    app.archive(30).await;
    let (meta, _) = check_all(&app, &key, &all, (d, d), 10, (false, 2), "current").await;
    assert_eq!(meta["cold"]["rollups"]["days"], 1, "{meta}");
    // The source says one more row than the day's file holds; the content
    // says a hundred more events of every type.
    sqlx::query("UPDATE day_rollups SET events = events + 100 WHERE day = $1")
        .bind(d)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE day_rollup_sources SET cold_rows = cold_rows + 1,
                version = nextval('rollup_versions') WHERE day = $1",
    )
    .bind(d)
    .execute(&app.pool)
    .await
    .unwrap();
    let (meta, _) = check_all(&app, &key, &all, (d, d), 10, (false, 2), "not current").await;
    assert_eq!(meta["cold"]["rollups"]["days"], 0, "{meta}");
    assert_eq!(meta["cold"]["files"], 1, "{meta}");
}

/// A rebuild reads a day's files, then installs its rollup only if the
/// manifest still lists exactly those files, by object key: here the day's
/// file is replaced by another of the same row count (as an erasure, a late
/// file and a compaction can leave a day) between the read and the install.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_whose_files_were_replaced_meanwhile_installs_nothing() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest,read").await;
    let d = day_ago(40);
    let all = send(
        &app,
        &key,
        &[("a", "view", at(d, 10)), ("b", "click", at(d, 20))],
    )
    .await;
    app.archive(30).await;
    let old: String = sqlx::query_scalar("SELECT object_key FROM cold_files WHERE day = $1")
        .bind(d)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let new = old.replace(".parquet", "9.parquet");
    let (pool, store) = (app.pool.clone(), app.cold.store.object_store());
    let (from, to) = (old.clone(), new.clone());
    let hook = strata_tests::archive::once_at("rebuild_after_read", move || async move {
        use object_store::ObjectStoreExt;
        store
            .copy(&from.as_str().into(), &to.as_str().into())
            .await
            .unwrap();
        sqlx::query("UPDATE cold_files SET object_key = $2 WHERE object_key = $1")
            .bind(&from)
            .bind(&to)
            .execute(&pool)
            .await
            .unwrap();
    });
    let racing = Archiver::new(
        app.hot.clone(),
        app.cold.store.clone(),
        ArchiveConfig {
            failpoint: Some(hook),
            ..strata_tests::no_compaction()
        },
    );
    let report = racing.rebuild_rollups(None, None, None).await.unwrap();
    assert_eq!((report.rebuilt, report.changed), (0, 1), "{report:?}");
    check_all(&app, &key, &all, (d, d), 10, (false, 2), "after the race").await;
    // Without a race, the rebuild installs a rollup of the new file.
    let report = app
        .archiver(30)
        .rebuild_rollups(None, None, None)
        .await
        .unwrap();
    assert_eq!((report.rebuilt, report.changed), (1, 0), "{report:?}");
    let (meta, _) = check_all(&app, &key, &all, (d, d), 10, (false, 2), "rebuilt").await;
    assert_eq!(meta["cold"]["rollups"]["days"], 1, "{meta}");
}

/// A sealed hot day (ADR-028) is answered from its rollup plus the late
/// events recorded since, exactly, while late batches race the seals; its
/// seal goes with its chunk when the day is archived.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sealed_day_is_its_rollup_plus_late_events_even_while_sealing_races_ingest() {
    let app = many_late_days().spawn().await;
    let key = app.key("acme", "ingest,read").await;
    let (d, e) = (day_ago(3), day_ago(2));
    let mut all = send(
        &app,
        &key,
        &[
            ("ann", "view", at(d, 10)),
            ("bob", "click", at(d, 20)),
            ("ann", "view", at(e, 30)),
            ("cat", "view", at(today(), 0)),
        ],
    )
    .await;
    let report = app.seal().await;
    assert!(
        report.days.contains(&d) && report.days.contains(&e),
        "{report:?}"
    );
    assert!(
        !report.days.contains(&today()),
        "today is not over: {report:?}"
    );
    let range = (d, today());
    let (meta, _) = check_all(&app, &key, &all, range, 10, (false, 4), "sealed").await;
    assert_eq!(meta["hot"]["rollups"]["days"], 2, "{meta}");
    assert_eq!(
        app.seal().await.days,
        Vec::<NaiveDate>::new(),
        "nothing left to seal"
    );

    // Late batches into the sealed days (new users, old users, a new type)
    // from four clients while the days are sealed again and again.
    let sealer = {
        let hot = app.hot.clone();
        tokio::spawn(async move {
            let mut passes = 0;
            for _ in 0..30 {
                hot.reseal(
                    (NaiveDate::MIN, NaiveDate::MAX),
                    Utc::now(),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
                passes += 1;
            }
            passes
        })
    };
    let mut clients = Vec::new();
    for c in 0..4 {
        let (app_addr, key) = (app.addr, key.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut sent = Vec::new();
            for b in 0..15 {
                let mut body = Vec::new();
                for i in 0..8u32 {
                    let day = if (b + i) % 2 == 0 { d } else { e };
                    let user = format!("late{}", (c * 7 + b * 3 + i) % 23);
                    let t = at(day, 1_000 + i);
                    let event_type = ["view", "click", "late_type"][i as usize % 3];
                    body.push(event(Uuid::new_v4(), &user, event_type, &ts(t)));
                    sent.push(Ev {
                        user,
                        event_type: event_type.to_owned(),
                        ts: t,
                        props: Value::Null,
                    });
                }
                let r = http
                    .post(format!("http://{app_addr}/v1/events"))
                    .bearer_auth(&key)
                    .json(&json!({ "events": body }))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.text().await.unwrap());
            }
            sent
        }));
    }
    for c in clients {
        all.extend(c.await.unwrap());
    }
    assert_eq!(sealer.await.unwrap(), 30);
    // Whatever the interleaving, the days are their rollups plus late events.
    let (meta, _) = check_all(&app, &key, &all, range, 10, (false, 4), "raced").await;
    assert_eq!(meta["hot"]["rollups"]["days"], 2, "{meta}");
    all.extend(send(&app, &key, &[("dan", "buy", at(d, 5_000))]).await);
    let late: i64 = sqlx::query_scalar("SELECT count(*) FROM hot_late_events WHERE day = $1")
        .bind(d)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(late, 1, "the last late event is recorded beside the seal");
    check_all(&app, &key, &all, range, 10, (true, 2), "late").await;
    let report = app.seal().await;
    assert_eq!(
        (report.days.clone(), report.late_events),
        (vec![d], 1),
        "{report:?}"
    );
    check_all(&app, &key, &all, range, 10, (false, 4), "resealed").await;

    // Archived, the day's seal goes with its chunk; its late events return
    // to the rows path until the next seal.
    app.archive(2).await;
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM hot_rollup_seals WHERE day = $1)
              + (SELECT count(*) FROM hot_sealed_days WHERE day = $1)",
    )
    .bind(d)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
    all.extend(send(&app, &key, &[("eli", "view", at(d, 6_000))]).await);
    let (meta, _) = check_all(&app, &key, &all, range, 10, (false, 4), "archived").await;
    assert_eq!(meta["both_days"], json!([d.to_string()]), "{meta}");
    app.seal().await;
    check_all(&app, &key, &all, range, 10, (false, 4), "archived, sealed").await;
}

#[tokio::test]
async fn a_cold_first_event_and_hot_activity_make_one_retained_user() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest,read").await;
    let first = day_ago(40);
    let mut all = send(
        &app,
        &key,
        &[
            ("dana", "signup", at(first, 10)),
            ("eve", "signup", at(first, 20)),
        ],
    )
    .await;
    app.archive(30).await;
    let later = day_ago(5);
    all.extend(send(&app, &key, &[("dana", "view", at(later, 10))]).await);
    // Weekly: dana is retained in the week of `later`, eve in no later week.
    let weeks = ((strata_model::Period::Week.start_of(later)
        - strata_model::Period::Week.start_of(first))
    .num_days()
        / 7) as usize;
    let body = ok(
        &app,
        &key,
        &format!("/v1/stats/retention?from={first}&to={first}&period=week&periods=12"),
    )
    .await;
    let cohorts = retention_of(&body);
    assert_eq!(cohorts.len(), 1);
    let (_, size, retained) = &cohorts[0];
    assert_eq!(*size, 2);
    assert_eq!(retained[0], 2);
    assert_eq!(retained[weeks], 1, "{body}");
    assert_eq!(retained.iter().sum::<u64>(), 3, "{body}");
    check_all(
        &app,
        &key,
        &all,
        (first, today()),
        5,
        (true, 12),
        "cold first",
    )
    .await;
    check_all(
        &app,
        &key,
        &all,
        (first, today()),
        5,
        (false, 50),
        "cold first",
    )
    .await;
}

#[tokio::test]
async fn a_user_seen_only_in_a_late_event_is_counted_everywhere() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest,read").await;
    let d = day_ago(50);
    let mut all = send(&app, &key, &[("old", "view", at(d, 10))]).await;
    app.archive(30).await;
    all.extend(
        send(
            &app,
            &key,
            &[("late_only", "click", at(d - chrono::Duration::days(1), 10))],
        )
        .await,
    );
    let from = d - chrono::Duration::days(3);
    let body = ok(&app, &key, &format!("/v1/stats/dau?from={from}&to={d}")).await;
    assert_eq!(
        dau_of(&body).iter().map(|(_, n)| n).sum::<u64>(),
        2,
        "{body}"
    );
    check_all(
        &app,
        &key,
        &all,
        (from, today()),
        3,
        (false, 5),
        "late only",
    )
    .await;
    check_all(&app, &key, &all, (from, d), 3, (true, 9), "late only").await;
}

#[tokio::test]
async fn empty_ranges_are_zero_filled_and_cohorts_listed_empty() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest,read").await;
    let (from, to) = (day_ago(9), day_ago(7));
    let body = ok(&app, &key, &format!("/v1/stats/dau?from={from}&to={to}")).await;
    assert_eq!(dau_of(&body), vec![(from, 0), (day_ago(8), 0), (to, 0)]);
    assert_eq!(body["from"], from.to_string());
    assert_eq!(body["meta"]["cold"]["files"], 0);
    let body = ok(
        &app,
        &key,
        &format!("/v1/stats/top-events?from={from}&to={to}"),
    )
    .await;
    assert_eq!(body["events"], json!([]));
    let body = ok(
        &app,
        &key,
        &format!("/v1/stats/retention?from={from}&to={to}&periods=3"),
    )
    .await;
    assert_eq!(
        retention_of(&body),
        vec![
            (from, 0, vec![0, 0, 0]),
            (day_ago(8), 0, vec![0, 0, 0]),
            (to, 0, vec![0, 0, 0])
        ]
    );
    assert_eq!(body["period"], "day");
    // A cohort whose period has not started is left out.
    let tomorrow = today() + chrono::Duration::days(1);
    let body = ok(
        &app,
        &key,
        &format!(
            "/v1/stats/retention?from={}&to={tomorrow}&periods=4",
            today()
        ),
    )
    .await;
    assert_eq!(retention_of(&body), vec![(today(), 0, vec![0])]);
}

#[tokio::test]
async fn hot_cold_and_straddling_ranges_say_which_tier_answered() {
    let app = many_late_days().spawn().await;
    let key = app.key("acme", "ingest,read").await;
    let mut events = Vec::new();
    for age in 0..45 {
        events.push(("u1", "view", at(day_ago(age), 3600)));
        events.push((
            ["u2", "u3", "u4"][age as usize % 3],
            "click",
            at(day_ago(age), 7200),
        ));
    }
    let all = send(&app, &key, &events).await;
    app.archive(30).await;
    let cases = [
        ((day_ago(10), day_ago(1)), true, false),
        ((day_ago(44), day_ago(35)), false, true),
        ((day_ago(44), today()), true, true),
    ];
    // Cold days from their rollups, then (rollups gone) from their files.
    for rollups in [true, false] {
        if !rollups {
            app.drop_rollups().await;
        }
        for ((from, to), hot, cold) in cases {
            let (meta, _) = check_all(&app, &key, &all, (from, to), 10, (true, 8), "tiers").await;
            assert_eq!(meta["hot"]["days"].as_u64().unwrap() > 0, hot, "{meta}");
            assert_eq!(meta["cold"]["days"].as_u64().unwrap() > 0, cold, "{meta}");
            assert_eq!(meta["cold"]["cache"]["in_place"], true, "{meta}");
            // The archive run sealed the closed hot days (ADR-028): their
            // rollups answer them until dropped, then their rows.
            let sealed = meta["hot"]["rollups"]["days"].as_u64().unwrap();
            if hot && rollups {
                assert!(sealed > 0, "{meta}");
            } else if hot {
                assert_eq!(sealed, 0, "{meta}");
                assert!(meta["hot"]["rows"].as_u64().unwrap() > 0, "{meta}");
            }
            let from_rollups = meta["cold"]["rollups"]["days"].as_u64().unwrap();
            if cold && rollups {
                assert_eq!(meta["cold"]["days"], from_rollups, "{meta}");
                assert_eq!(meta["cold"]["files"], 0, "{meta}");
            } else if cold {
                assert_eq!(from_rollups, 0, "{meta}");
                assert!(meta["cold"]["files"].as_u64().unwrap() > 0, "{meta}");
                assert!(meta["cold"]["rows"].as_u64().unwrap() > 0, "{meta}");
            }
        }
    }
}

#[tokio::test]
async fn week_cohorts_follow_iso_weeks_across_year_ends() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest,read").await;
    let d = |s: &str| s.parse::<NaiveDate>().unwrap();
    // ISO week 1 of 2026 starts Monday 2025-12-29; week 1 of 2025 on
    // Monday 2024-12-30.
    let all = send(
        &app,
        &key,
        &[
            ("a", "view", at(d("2024-12-31"), 10)),
            ("a", "view", at(d("2025-01-06"), 10)),
            ("b", "view", at(d("2025-12-28"), 10)),
            ("c", "view", at(d("2025-12-29"), 10)),
            ("d", "view", at(d("2026-01-04"), 86_399)),
            ("c", "view", at(d("2026-01-05"), 0)),
            ("b", "view", at(d("2026-01-01"), 10)),
        ],
    )
    .await;
    app.archive(30).await;
    let body = ok(
        &app,
        &key,
        "/v1/stats/retention?from=2025-12-31&to=2026-01-02&period=week&periods=3",
    )
    .await;
    assert_eq!(
        retention_of(&body),
        vec![(d("2025-12-29"), 2, vec![2, 1, 0])],
        "{body}"
    );
    let body = ok(
        &app,
        &key,
        "/v1/stats/retention?from=2024-12-30&to=2025-01-05&period=week&periods=2",
    )
    .await;
    assert_eq!(retention_of(&body), vec![(d("2024-12-30"), 1, vec![1, 1])]);
    for (from, to) in [("2024-12-25", "2025-01-10"), ("2025-12-20", "2026-01-12")] {
        check_all(&app, &key, &all, (d(from), d(to)), 5, (true, 6), "iso").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stats_during_an_archive_commit_count_every_row_once() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest,read").await;
    let mut events = Vec::new();
    for age in 28..38 {
        for (i, user) in ["p", "q", "r", "s"].iter().enumerate() {
            events.push((
                *user,
                ["view", "click"][i % 2],
                at(day_ago(age), 60 * i as u32),
            ));
        }
    }
    let all = send(&app, &key, &events).await;
    let (from, to) = (day_ago(40), today());
    let paths = [
        format!("/v1/stats/dau?from={from}&to={to}"),
        format!("/v1/stats/top-events?from={from}&to={to}"),
        format!("/v1/stats/retention?from={from}&to={to}&periods=10"),
    ];
    let mut before = Vec::new();
    for p in &paths {
        let mut b = ok(&app, &key, p).await;
        b.as_object_mut().unwrap().remove("meta");
        before.push(b);
    }
    // Hold each commit open (manifest written, chunk not yet dropped) while
    // stats requests arrive.
    let in_commit = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::clone(&in_commit);
    let archiver = Archiver::new(
        app.hot.clone(),
        app.cold.store.clone(),
        ArchiveConfig {
            hot_retention: Duration::from_secs(30 * 86_400),
            failpoint: Some(Arc::new(move |at| {
                if at == "before_drop" {
                    seen.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(400));
                }
            })),
            ..strata_tests::compacting()
        },
    );
    let run = tokio::spawn(async move { archiver.run_once().await.unwrap() });
    let mut during = 0;
    while !run.is_finished() {
        for (p, expected) in paths.iter().zip(&before) {
            let mut b = ok(&app, &key, p).await;
            b.as_object_mut().unwrap().remove("meta");
            assert_eq!(&b, expected, "{p} changed during an archive commit");
            during += 1;
        }
    }
    let RunOutcome::Completed(report) = run.await.unwrap() else {
        panic!("skipped")
    };
    assert!(report.succeeded(), "{report:?}");
    assert!(in_commit.load(Ordering::SeqCst) >= 5);
    assert!(during >= 3, "only {during} requests ran during the run");
    for (p, expected) in paths.iter().zip(&before) {
        let mut b = ok(&app, &key, p).await;
        let meta = b.as_object_mut().unwrap().remove("meta").unwrap();
        assert_eq!(&b, expected, "{p} changed after the archive run");
        assert!(meta["cold"]["days"].as_u64().unwrap() >= 5, "{meta}");
    }
    check_all(
        &app,
        &key,
        &all,
        (from, to),
        10,
        (false, 10),
        "after commit",
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_object_store_is_503_naming_the_cold_days_only_when_needed() {
    let app = TestApp::builder()
        .cold(TestCold::unreachable())
        .spawn()
        .await;
    let key = app.key("acme", "ingest,read").await;
    let (old, recent) = (day_ago(40), day_ago(2));
    send(
        &app,
        &key,
        &[("a", "view", at(old, 10)), ("a", "view", at(recent, 10))],
    )
    .await;
    // Archived through a reachable store; the server's store is not.
    let s3 = TestCold::s3();
    let r = Archiver::new(
        app.hot.clone(),
        s3.store.clone(),
        strata_tests::compacting(),
    )
    .run_once()
    .await
    .unwrap();
    assert!(
        matches!(r, RunOutcome::Completed(ref r) if r.succeeded()),
        "{r:?}"
    );

    // The cold day's rollup answers without the store.
    let (status, body) = app
        .get_json(&key, &format!("/v1/stats/dau?from={old}&to={recent}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["cold"]["rollups"]["days"], 1, "{body}");
    // Without it, the day's file is needed.
    app.drop_rollups().await;
    let resp = app
        .client
        .get(app.url(&format!("/v1/stats/dau?from={old}&to={recent}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["days"], json!([old.to_string()]), "{body}");
    assert!(
        body["error"].as_str().unwrap().contains(&old.to_string()),
        "{body}"
    );
    assert_eq!(body["code"], "cold_unavailable", "{body}");
    // The store's endpoint, bucket and key id stay in the server's log.
    for detail in ["127.0.0.1:9", "nowhere", "GK0000"] {
        assert!(
            !body.to_string().contains(detail),
            "{detail} leaked: {body}"
        );
    }
    let (_, ready) = app.get_public_json("/readyz").await;
    assert_eq!(ready["cold_store"], "unavailable", "{ready}");
    for path in [
        format!("/v1/stats/top-events?from={old}&to={recent}"),
        format!("/v1/stats/retention?from={old}&to={recent}"),
    ] {
        let (status, body) = app.get_json(&key, &path).await;
        assert_eq!(status, 503, "{path}: {body}");
    }
    // Only hot days needed: answered.
    let body = ok(
        &app,
        &key,
        &format!("/v1/stats/dau?from={recent}&to={recent}"),
    )
    .await;
    assert_eq!(dau_of(&body), vec![(recent, 1)]);
}

#[tokio::test]
async fn the_cold_cache_hits_refetches_damaged_files_and_stays_bounded() {
    let s3 = TestCold::s3();
    let app = TestApp::builder()
        .cold(s3)
        .arg("--cold-cache-bytes", 1)
        .spawn()
        .await;
    let key = app.key("acme", "ingest,read").await;
    let mut events = Vec::new();
    for age in 31..35 {
        events.push(("u", "view", at(day_ago(age), 10)));
    }
    let all = send(&app, &key, &events).await;
    app.archive(30).await;
    app.drop_rollups().await; // the cold days come from their files
    let (from, to) = (day_ago(34), day_ago(31));
    let path = format!("/v1/stats/dau?from={from}&to={to}");
    let cache = &app.cache_dir;
    let cached_files = || {
        let mut n = 0;
        for e in walk(cache.path()) {
            if e.extension().is_some_and(|x| x == "parquet") {
                n += 1;
            }
        }
        n
    };
    let body = ok(&app, &key, &path).await;
    assert_eq!(body["meta"]["cold"]["cache"]["misses"], 4, "{body}");
    assert_eq!(body["meta"]["cold"]["cache"]["in_place"], false);
    // A 1-byte budget: nothing stays once the query is done.
    assert_eq!(cached_files(), 0);
    check_all(&app, &key, &all, (from, to), 3, (false, 3), "cache").await;
}

#[tokio::test]
async fn cached_files_are_reused_and_a_damaged_one_is_fetched_again() {
    let app = TestApp::builder().cold(TestCold::s3()).spawn().await;
    let key = app.key("acme", "ingest,read").await;
    let all = send(
        &app,
        &key,
        &[
            ("u", "view", at(day_ago(33), 10)),
            ("v", "view", at(day_ago(32), 10)),
        ],
    )
    .await;
    app.archive(30).await;
    app.drop_rollups().await; // the cold days come from their files
    let (from, to) = (day_ago(33), day_ago(32));
    let path = format!("/v1/stats/dau?from={from}&to={to}");
    let first = ok(&app, &key, &path).await;
    assert_eq!(first["meta"]["cold"]["cache"]["misses"], 2, "{first}");
    let second = ok(&app, &key, &path).await;
    assert_eq!(second["meta"]["cold"]["cache"]["hits"], 2, "{second}");
    assert_eq!(second["meta"]["cold"]["cache"]["misses"], 0, "{second}");
    // Truncate one cached file (a partial download or a damaged disk).
    let file = walk(app.cache_dir.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let third = ok(&app, &key, &path).await;
    assert_eq!(third["meta"]["cold"]["cache"]["misses"], 1, "{third}");
    assert_eq!(dau_of(&third), dau_of(&first));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), len);
    check_all(&app, &key, &all, (from, to), 3, (false, 3), "cache").await;
}

/// Users `gone` and `kept`, one `event_type` event each on the old day
/// `d`, archived, with the rollups dropped: the day is read from its file.
async fn gone_and_kept_on_a_cold_day(app: &TestApp, key: &str, d: NaiveDate, event_type: &str) {
    send(
        app,
        key,
        &[
            ("gone", event_type, at(d, 10)),
            ("kept", event_type, at(d, 20)),
        ],
    )
    .await;
    app.archive(30).await;
    app.drop_rollups().await;
}

/// An api process's cache of cold files (S3) holds a user's day; the user
/// is erased (the day's file replaced). Soon after, the cache holds no
/// file the manifest does not list, so no cached file holds a row of the
/// user; a process starting over that cache drops such files at once.
#[tokio::test]
async fn cached_files_replaced_by_an_erasure_leave_the_cache() {
    let app = TestApp::builder()
        .cold(TestCold::s3())
        .arg("--cold-cache-check-interval", "200ms")
        .spawn()
        .await;
    let key = app.key("acme", "ingest,read").await;
    let d = day_ago(40);
    gone_and_kept_on_a_cold_day(&app, &key, d, "view").await;
    let path = format!("/v1/stats/dau?from={d}&to={d}");
    let body = ok(&app, &key, &path).await;
    assert_eq!(body["meta"]["cold"]["cache"]["misses"], 1, "{body}");
    let cached = || -> Vec<String> {
        let root = app.cache_dir.path().canonicalize().unwrap();
        walk(&root)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .map(|p| {
                p.strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    };
    let before = cached();
    assert_eq!(before.len(), 1, "{before:?}");

    let project = strata_model::ProjectId(app.project_id("acme").await);
    app.hot
        .request_erasure(project, "gone", "test")
        .await
        .unwrap();
    assert!(matches!(
        app.archiver(30).erase_once().await.unwrap(),
        RunOutcome::Completed(_)
    ));
    let listed: Vec<String> = sqlx::query_scalar("SELECT object_key FROM cold_files")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(!listed.contains(&before[0]));
    let mut left = cached();
    for _ in 0..100 {
        if left.iter().all(|k| listed.contains(k)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = cached();
    }
    assert!(
        left.iter().all(|k| listed.contains(k)),
        "{left:?} cached, {listed:?} listed"
    );
    let body = ok(&app, &key, &path).await;
    assert_eq!(dau_of(&body), vec![(d, 1)], "{body}");
}

/// A stats snapshot maps user ids to ordinals as they were when it began:
/// an erasure that commits meanwhile makes no user of the request unknown
/// (start_event retention maps the ids it reads from cold files through
/// it, ADR-037), while a lookup outside the snapshot no longer finds them.
#[tokio::test]
async fn a_snapshot_maps_users_as_they_were_when_it_began() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    send(&app, &key, &[("gone", "view", at(day_ago(1), 10))]).await;
    let project = strata_model::ProjectId(app.project_id("acme").await);
    let mut snap = app.hot.read_snapshot(Duration::from_secs(5)).await.unwrap();
    // The snapshot is taken by its first read.
    snap.hot_days(day_ago(2), today()).await.unwrap();
    app.hot
        .request_erasure(project, "gone", "test")
        .await
        .unwrap();
    assert!(matches!(
        app.archiver(30).erase_once().await.unwrap(),
        RunOutcome::Completed(_)
    ));
    let inside = snap.user_ordinals(project, &["gone"]).await.unwrap();
    assert!(inside.contains_key("gone"), "{inside:?}");
    snap.finish().await.unwrap();
    let outside = app.hot.user_ordinals(project, &["gone"]).await.unwrap();
    assert!(outside.is_empty(), "{outside:?}");
}

/// The same, through the planner: `start_event` retention over a cold day
/// without a rollup reads the day's users from its file, then maps them to
/// ordinals inside the request's snapshot. An erasure that commits between
/// the read and the mapping neither fails the request (a lookup outside the
/// snapshot found no ordinal for the erased user: a 500) nor changes its
/// answer, which is the one of the moment the request began.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_erasure_during_a_retention_request_changes_nothing_it_answers() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let d = day_ago(33);
    gone_and_kept_on_a_cold_day(&app, &key, d, "signup").await;
    let project = strata_model::ProjectId(app.project_id("acme").await);
    let (hot, archiver) = (app.hot.clone(), app.archiver(30));
    // On this runtime (its connections go back to the shared pool).
    let done = Arc::new(AtomicBool::new(false));
    let hook: strata_model::FailPointHook = Arc::new(move |point| {
        if point != "retention_cold_ordinals" || done.swap(true, Ordering::SeqCst) {
            return;
        }
        let (hot, archiver) = (hot.clone(), archiver.clone());
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async move {
                hot.request_erasure(project, "gone", "test").await.unwrap();
                assert!(matches!(
                    archiver.erase_once().await.unwrap(),
                    RunOutcome::Completed(_)
                ));
            })
        });
    });
    let (planner, _dir) = app.planner(QueryConfig {
        failpoint: strata_query::FailPoint(Some(hook)),
        ..QueryConfig::default()
    });
    let signup = strata_model::EventType::parse("signup").unwrap();
    let range = strata_model::DayRange::new(d, d, 10).unwrap();
    // The first request's answer is the one of the moment it began, though
    // the erasure finished before it mapped its users; the next one no
    // longer sees the user.
    for size in [2, 1] {
        let r = planner
            .retention(
                project,
                range,
                (strata_model::Period::Day, 1),
                Some(&signup),
                None,
            )
            .await
            .unwrap();
        let body = serde_json::to_value(&r).unwrap();
        assert_eq!(body["cohorts"][0]["size"], size, "{body}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn bad_parameters_are_400_with_a_clear_message() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest,read").await;
    let cases = [
        ("/v1/stats/dau?to=2026-01-01", "from is required"),
        ("/v1/stats/dau?from=2026-01-01", "to is required"),
        ("/v1/stats/dau?from=yesterday&to=2026-01-01", "YYYY-MM-DD"),
        ("/v1/stats/dau?from=2026-02-30&to=2026-03-01", "2026-02-30"),
        ("/v1/stats/dau?from=2026-02-02&to=2026-02-01", "after"),
        (
            "/v1/stats/dau?from=2000-01-01&to=2026-01-01",
            "over the limit of 3660",
        ),
        (
            "/v1/stats/dau?from=2026-01-01&to=2026-01-02&limit=3",
            "unknown parameter",
        ),
        (
            "/v1/stats/dau?from=2026-01-01&from=2026-01-02&to=2026-01-03",
            "repeated",
        ),
        (
            "/v1/stats/dau?from=2026-01-01&to=2026-01-02&event_type=",
            "event_type",
        ),
        (
            "/v1/stats/top-events?from=2026-01-01&to=2026-01-02&limit=0",
            "between 1 and 1000",
        ),
        (
            "/v1/stats/top-events?from=2026-01-01&to=2026-01-02&limit=1001",
            "between 1 and 1000",
        ),
        (
            "/v1/stats/top-events?from=2026-01-01&to=2026-01-02&limit=ten",
            "limit",
        ),
        (
            "/v1/stats/retention?from=2026-01-01&to=2026-01-02&period=month",
            "day or week",
        ),
        (
            "/v1/stats/retention?from=2026-01-01&to=2026-01-02&periods=101",
            "between 1 and 100",
        ),
        (
            "/v1/stats/retention?from=2026-01-01&to=2026-01-02&periods=-1",
            "periods",
        ),
        ("/v1/stats/dau?from=%FF&to=2026-01-01", "from"),
        (
            "/v1/stats/funnel?from=2026-01-01&to=2026-01-02",
            "steps is required",
        ),
        (
            "/v1/stats/funnel?from=2026-01-01&to=2026-01-02&steps=view",
            "2 to 10 steps",
        ),
        (
            "/v1/stats/funnel?from=2026-01-01&to=2026-01-02&steps=a,b,c,d,e,f,g,h,i,j,k",
            "this names 11",
        ),
        (
            "/v1/stats/funnel?from=2026-01-01&to=2026-01-02&steps=view,,buy",
            "step 2",
        ),
        (
            "/v1/stats/funnel?from=2026-01-01&to=2026-01-02&steps=view,buy&window=59",
            "between 60 and 7776000",
        ),
        (
            "/v1/stats/funnel?from=2026-01-01&to=2026-01-02&steps=view,buy&window=7d",
            "between 60 and 7776000",
        ),
        (
            "/v1/stats/dau?from=2026-01-01&to=2026-01-02&group_by=plan",
            "property:<key>",
        ),
        (
            "/v1/stats/dau?from=2026-01-01&to=2026-01-02&limit_groups=0",
            "between 1 and 100",
        ),
        (
            "/v1/stats/top-events?from=2026-01-01&to=2026-01-02&group_by=property:plan&limit_groups=101",
            "between 1 and 100",
        ),
        (
            "/v1/stats/funnel?from=2026-01-01&to=2026-01-02&steps=view,buy&limit=3",
            "unknown parameter",
        ),
    ];
    for (path, needle) in cases {
        let (status, body) = app.get_json(&key, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{path}: {msg:?} lacks {needle:?}");
    }
}

#[tokio::test]
async fn stats_need_the_read_scope_and_see_only_their_project() {
    let app = spawn_app().await;
    let ingest_only = app.key("acme", "ingest").await;
    let reader = app.key("acme", "read").await;
    let other = app.key("other", "ingest,read").await;
    let d = day_ago(1);
    send(&app, &other, &[("x", "view", at(d, 10))]).await;
    let path = format!("/v1/stats/dau?from={d}&to={d}");
    let (status, _) = app.get_json(&ingest_only, &path).await;
    assert_eq!(status, 403);
    let resp = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(dau_of(&ok(&app, &reader, &path).await), vec![(d, 0)]);
    assert_eq!(dau_of(&ok(&app, &other, &path).await), vec![(d, 1)]);
}

#[tokio::test]
async fn a_database_outage_is_a_quick_503_for_stats() {
    let app = TestApp::builder().pg_proxy().spawn().await;
    let key = app.key("acme", "read").await;
    // PostgreSQL "goes down": every connection of the server is cut.
    app.pg_proxy.as_ref().unwrap().cut().await;
    let d = day_ago(1);
    let resp = tokio::time::timeout(
        Duration::from_secs(20),
        app.client
            .get(app.url(&format!("/v1/stats/dau?from={d}&to={d}")))
            .bearer_auth(&key)
            .send(),
    )
    .await
    .expect("the request hung")
    .unwrap();
    assert_eq!(resp.status(), 503);
}

#[tokio::test]
async fn the_cold_cache_evicts_the_least_recently_used_file_first() {
    let app = TestApp::builder().cold(TestCold::s3()).spawn().await;
    let key = app.key("acme", "ingest,read").await;
    let days = [day_ago(33), day_ago(32), day_ago(31)];
    let events: Vec<_> = days.iter().map(|d| ("u", "view", at(*d, 10))).collect();
    send(&app, &key, &events).await;
    app.archive(30).await;
    app.drop_rollups().await; // the cold days come from their files
    let total: i64 = sqlx::query_scalar("SELECT sum(bytes)::int8 FROM cold_files")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    // Room for any two of the three files, not all three.
    let (planner, _dir) = app.planner(QueryConfig {
        cache_bytes: total as u64 - 1,
        ..QueryConfig::default()
    });
    let project = strata_model::ProjectId(app.project_id("acme").await);
    let misses = |day: NaiveDate| {
        let planner = planner.clone();
        async move {
            let range = strata_model::DayRange::new(day, day, 10).unwrap();
            let r = planner.dau(project, range, None).await.unwrap();
            assert_eq!(r.days[0].users, 1);
            r.meta.cold.cache.misses
        }
    };
    let [a, b, c] = days;
    assert_eq!(misses(a).await, 1);
    assert_eq!(misses(b).await, 1);
    assert_eq!(misses(c).await, 1); // evicts a
    assert_eq!(misses(b).await, 0);
    assert_eq!(misses(a).await, 1); // evicts c, the least recently used
    assert_eq!(misses(b).await, 0);
    assert_eq!(misses(c).await, 1);
    assert!(planner.cached_bytes() < total as u64);
}

#[tokio::test]
async fn a_future_dated_first_event_forms_no_cohort_before_its_period_starts() {
    use chrono::Datelike;
    let app = spawn_app().await;
    let key = app.key("acme", "ingest,read").await;
    let tomorrow = today() + chrono::Duration::days(1);
    // Accepted: within the +24 h future allowance (one second past midnight).
    send(
        &app,
        &key,
        &[
            ("now", "view", Utc::now() - chrono::Duration::seconds(5)),
            ("ahead", "view", at(tomorrow, 1)),
        ],
    )
    .await;
    for period in ["day", "week"] {
        let body = ok(
            &app,
            &key,
            &format!(
                "/v1/stats/retention?from={}&to={tomorrow}&period={period}&periods=3",
                today()
            ),
        )
        .await;
        let cohorts = retention_of(&body);
        let current = if period == "day" {
            today()
        } else {
            today() - chrono::Duration::days(i64::from(today().weekday().num_days_from_monday()))
        };
        // Only periods that have started; the future user joins no cohort
        // until its own period begins (same week: the current cohort).
        let same_week = period == "week" && tomorrow.weekday() != chrono::Weekday::Mon;
        let size = if same_week { 2 } else { 1 };
        assert_eq!(
            cohorts,
            vec![(current, size, vec![size])],
            "{period}: {body}"
        );
        assert_eq!(body["periods"], 3);
    }
}
