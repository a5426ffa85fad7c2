use std::io::Write;

use chrono::{DateTime, Duration, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use strata_tests::{TestApp, event, recent_event, spawn_app};
use uuid::Uuid;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

async fn error_of(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn stores_events_with_every_field_intact() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let id = Uuid::new_v4();
    let ts = (Utc::now() - Duration::hours(3)).format("%Y-%m-%dT%H:%M:%S%.9f+02:00");
    let props = json!({"path": "/pricing", "nested": {"a": [1, 2.5, null, "é"]}, "flag": true});
    let e = json!({"event_id": id.to_string().to_uppercase(), "user_id": "u_42",
                   "event_type": "page_view", "timestamp": ts.to_string(), "properties": props});
    let counts = app.ingest_ok(&key, &[e]).await;
    assert_eq!(
        (counts.accepted, counts.duplicates, counts.rejected),
        (1, 0, 0)
    );

    let stored = app.stored("acme").await;
    assert_eq!(stored.len(), 1);
    let s = &stored[0];
    assert_eq!(s.event_id, id);
    assert_eq!(s.user_id, "u_42");
    assert_eq!(s.event_type, "page_view");
    assert_eq!(s.properties.as_ref(), Some(&props));
    // +02:00 converted to UTC, nanoseconds truncated to microseconds.
    let sent = DateTime::parse_from_rfc3339(&ts.to_string())
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(s.ts.timestamp_micros(), sent.timestamp_micros());
    assert_eq!(s.ts.timestamp_subsec_nanos() % 1000, 0);
}

#[tokio::test]
async fn every_validation_rule_rejects_its_event_and_keeps_the_rest() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let now = Utc::now();
    let ok_ts = (now - Duration::hours(1)).to_rfc3339();
    let base = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut e = event(Uuid::new_v4(), "u1", "click", &ok_ts);
        f(e.as_object_mut().unwrap());
        e
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            base(&|e| {
                e.remove("event_id");
            }),
            "event_id is required",
        ),
        (
            base(&|e| {
                e.insert("event_id".into(), json!("nope"));
            }),
            "is not a UUID",
        ),
        (
            base(&|e| {
                e.insert("event_id".into(), json!(12));
            }),
            "event_id must be a UUID string",
        ),
        (
            base(&|e| {
                e.remove("user_id");
            }),
            "user_id is required",
        ),
        (
            base(&|e| {
                e.insert("user_id".into(), json!(""));
            }),
            "user_id must not be empty",
        ),
        (
            base(&|e| {
                e.insert("user_id".into(), json!("x".repeat(257)));
            }),
            "user_id is 257 bytes, over the limit of 256",
        ),
        (
            base(&|e| {
                e.insert("user_id".into(), json!(42));
            }),
            "user_id must be a string",
        ),
        (
            base(&|e| {
                e.insert("user_id".into(), json!("a\u{0}b"));
            }),
            "user_id must not contain NUL",
        ),
        (
            base(&|e| {
                e.remove("event_type");
            }),
            "event_type is required",
        ),
        (
            base(&|e| {
                e.insert("event_type".into(), json!(""));
            }),
            "event_type must not be empty",
        ),
        (
            base(&|e| {
                e.insert("event_type".into(), json!("t".repeat(129)));
            }),
            "event_type is 129 bytes, over the limit of 128",
        ),
        (
            base(&|e| {
                e.remove("timestamp");
            }),
            "timestamp is required",
        ),
        (
            base(&|e| {
                e.insert("timestamp".into(), json!("last tuesday"));
            }),
            "is not an RFC 3339 date-time",
        ),
        (
            base(&|e| {
                e.insert("timestamp".into(), json!("2026-11-20T12:00:00"));
            }),
            "has no UTC offset",
        ),
        (
            base(&|e| {
                e.insert("timestamp".into(), json!(1_700_000_000));
            }),
            "timestamp must be an RFC 3339 string",
        ),
        (
            base(&|e| {
                e.insert(
                    "timestamp".into(),
                    json!((now + Duration::hours(25)).to_rfc3339()),
                );
            }),
            "more than 24h in the future",
        ),
        (
            base(&|e| {
                e.insert(
                    "timestamp".into(),
                    json!((now - Duration::days(3651)).to_rfc3339()),
                );
            }),
            "older than the 3650 days limit",
        ),
        (
            base(&|e| {
                e.insert("properties".into(), json!([1, 2]));
            }),
            "properties must be a JSON object",
        ),
        (
            base(&|e| {
                e.insert("properties".into(), json!("text"));
            }),
            "properties must be a JSON object",
        ),
        (
            base(&|e| {
                e.insert("properties".into(), json!({"big": "x".repeat(33 * 1024)}));
            }),
            "over the limit of 32768",
        ),
        (
            base(&|e| {
                e.insert("properties".into(), json!({"k": "nul\u{0}"}));
            }),
            "properties must not contain NUL",
        ),
        (
            base(&|e| {
                e.insert("colour".into(), json!("red"));
            }),
            "unknown field `colour`",
        ),
        (json!("just a string"), "event must be a JSON object"),
        (json!(null), "event must be a JSON object"),
    ];
    // Interleave a good event after every bad one.
    let mut events = Vec::new();
    let mut good_ids = Vec::new();
    for (bad, _) in &cases {
        events.push(bad.clone());
        let id = Uuid::new_v4();
        good_ids.push(id);
        events.push(event(id, "good", "view", &ok_ts));
    }
    let resp = app.post_events(&key, &json!({ "events": events })).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["accepted"], cases.len());
    assert_eq!(body["duplicates"], 0);
    let rejected = body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), cases.len(), "{body}");
    for (i, (r, (_, expected))) in rejected.iter().zip(&cases).enumerate() {
        assert_eq!(r["index"], 2 * i, "{r}");
        let msg = r["error"].as_str().unwrap();
        assert!(
            msg.contains(expected),
            "case {i}: {msg:?} lacks {expected:?}"
        );
    }
    let mut stored: Vec<Uuid> = app
        .stored("acme")
        .await
        .iter()
        .map(|e| e.event_id)
        .collect();
    stored.sort();
    good_ids.sort();
    assert_eq!(stored, good_ids);
}

#[tokio::test]
async fn all_rejected_is_still_200() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let resp = app
        .post_events(&key, &json!({"events": [{"event_id": "x"}, 7]}))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["accepted"], 0);
    assert_eq!(body["rejected"].as_array().unwrap().len(), 2);
    // An empty batch is fine too.
    let resp = app.post_events(&key, &json!({"events": []})).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn malformed_or_misshapen_bodies_are_400() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    for (body, expected) in [
        ("{\"events\": [", "not valid JSON"),
        ("", "not valid JSON"),
        ("[]", "must be a JSON object of the form"),
        (
            "{\"event\": []}",
            "unknown field `event`, expected `events`",
        ),
        ("{}", "missing field `events`"),
        ("{\"events\": {}}", "must be a JSON object of the form"),
        ("{\"events\": [], \"more\": 1}", "unknown field `more`"),
    ] {
        let resp = app.post_raw_events(&key, body).await;
        let (status, error) = error_of(resp).await;
        assert_eq!(status, 400, "{body:?}");
        assert!(error.contains(expected), "{body:?}: {error}");
    }
}

#[tokio::test]
async fn unsupported_content_type_or_encoding_is_415() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let body = json!({"events": [recent_event(Uuid::new_v4(), "u", 1)]}).to_string();
    for (name, value) in [("content-type", "text/plain"), ("content-encoding", "br")] {
        let resp = app
            .client
            .post(app.url("/v1/events"))
            .bearer_auth(&key)
            .header(name, value)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let (status, error) = error_of(resp).await;
        assert_eq!(status, 415, "{name}: {value}");
        assert!(error.contains(value), "{error}");
    }
    assert!(app.stored("acme").await.is_empty());
}

#[tokio::test]
async fn gzip_bodies_are_accepted() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let events: Vec<Value> = (0..50)
        .map(|i| recent_event(Uuid::new_v4(), &format!("u{i}"), 1))
        .collect();
    let body = gzip(json!({ "events": events }).to_string().as_bytes());
    let resp = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["accepted"], 50);

    let resp = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&key)
        .header("content-encoding", "gzip")
        .body("this is not gzip")
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(resp).await;
    assert_eq!(status, 400);
    assert!(error.contains("not valid gzip"), "{error}");
}

#[tokio::test]
async fn limits_on_count_bytes_and_decompressed_bytes_are_413() {
    let app = TestApp::builder()
        .arg("--max-batch-events", 5)
        .arg("--max-body-bytes", 64 * 1024)
        .spawn()
        .await;
    let key = app.key("acme", "ingest").await;

    // Too many events.
    let events: Vec<Value> = (0..6)
        .map(|_| recent_event(Uuid::new_v4(), "u", 1))
        .collect();
    let (status, error) = error_of(app.post_events(&key, &json!({ "events": events })).await).await;
    assert_eq!(status, 413);
    assert!(error.contains("6 events, over the limit of 5"), "{error}");

    // Too many bytes as sent.
    let padding = "x".repeat(70 * 1024);
    let big = json!({"events": [], "padding": padding}).to_string();
    let resp = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&key)
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(resp).await;
    assert_eq!(status, 413);
    assert!(error.contains("65536 bytes"), "{error}");

    // A gzip bomb: small on the wire, 20 MiB inflated.
    let bomb = gzip(&vec![b' '; 20 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024);
    let resp = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&key)
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(resp).await;
    assert_eq!(status, 413);
    assert!(error.contains("after decompression"), "{error}");

    // Chunked upload without Content-Length is cut off at the limit too.
    let stream =
        futures::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![b' '; 8 * 1024])));
    let resp = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&key)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    // Within limits everything still works.
    let events: Vec<Value> = (0..5)
        .map(|_| recent_event(Uuid::new_v4(), "u", 1))
        .collect();
    assert_eq!(app.ingest_ok(&key, &events).await.accepted, 5);
}

#[tokio::test]
async fn first_seen_keeps_each_users_earliest_event() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let project = app.project_id("acme").await;
    app.ingest_ok(
        &key,
        &[
            recent_event(Uuid::new_v4(), "ann", 10),
            recent_event(Uuid::new_v4(), "bob", 5),
        ],
    )
    .await;
    // An earlier (late-arriving) event lowers ann's first time; a later one does not change bob's.
    app.ingest_ok(
        &key,
        &[
            recent_event(Uuid::new_v4(), "ann", 200),
            recent_event(Uuid::new_v4(), "bob", 1),
        ],
    )
    .await;
    // A duplicate with an earlier timestamp is not an event and must not count.
    let dup = Uuid::new_v4();
    app.ingest_ok(&key, &[recent_event(dup, "cat", 3)]).await;
    app.ingest_ok(&key, &[recent_event(dup, "cat", 300)]).await;

    let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT user_id, first_ts FROM user_first_seen WHERE project_id = $1 ORDER BY user_id",
    )
    .bind(project)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let expected: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT user_id, min(ts) FROM events WHERE project_id = $1 GROUP BY user_id ORDER BY user_id",
    )
    .bind(project)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows, expected);
    let ann = rows[0].1;
    assert!(Utc::now() - ann > Duration::hours(199));
}

/// Each user gets a dense per-project ordinal when first seen (ADR-027):
/// in user order within a batch, kept when a late event lowers the
/// first-seen time, never reused; concurrent batches that first see the
/// same users still give each user exactly one, below what the project's
/// sequence gives next.
#[tokio::test]
async fn users_get_dense_ordinals_when_first_seen_and_keep_them() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let other = app.key("other", "ingest").await;
    let project = app.project_id("acme").await;
    let ordinals = |project: i64| {
        let pool = app.pool.clone();
        async move {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT user_id, ordinal FROM user_first_seen WHERE project_id = $1 ORDER BY ordinal",
            )
            .bind(project)
            .fetch_all(&pool)
            .await
            .unwrap();
            // The next number the project's sequence would give.
            let next: i64 = sqlx::query_scalar(&format!(
                "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
                   FROM user_ordinals_{project}"
            ))
            .fetch_one(&pool)
            .await
            .unwrap();
            (rows, next)
        }
    };
    let batch = |users: &[&str], hours_ago: i64| -> Vec<Value> {
        users
            .iter()
            .map(|u| recent_event(Uuid::new_v4(), u, hours_ago))
            .collect()
    };
    app.ingest_ok(&key, &batch(&["cat", "ann", "bob"], 5)).await;
    app.ingest_ok(&other, &batch(&["zed"], 5)).await;
    app.ingest_ok(&key, &batch(&["bob", "dan"], 4)).await;
    // An earlier event of ann lowers her first-seen time, not her ordinal.
    app.ingest_ok(&key, &batch(&["ann"], 300)).await;
    let (rows, next) = ordinals(project).await;
    let named = |v: &[(&str, i64)]| -> Vec<(String, i64)> {
        v.iter().map(|(u, o)| ((*u).to_owned(), *o)).collect()
    };
    assert_eq!(
        rows,
        named(&[("ann", 0), ("bob", 1), ("cat", 2), ("dan", 3)])
    );
    assert_eq!(next, 4);
    let zed = app.project_id("other").await;
    assert_eq!(
        ordinals(zed).await,
        (named(&[("zed", 0)]), 1),
        "per project"
    );

    // Eight concurrent batches of 40 users, each overlapping the next by half.
    let sends = (0..8).map(|b| {
        let users: Vec<String> = (b * 20..b * 20 + 40).map(|u| format!("u{u:03}")).collect();
        let refs: Vec<&str> = users.iter().map(String::as_str).collect();
        let events = batch(&refs, 2);
        let (app, key) = (&app, &key);
        async move { app.ingest_ok(key, &events).await }
    });
    futures::future::join_all(sends).await;
    let (rows, next) = ordinals(project).await;
    assert_eq!(rows.len(), 4 + 180, "every user has one ordinal");
    let mut seen = std::collections::HashSet::new();
    for (user, o) in &rows {
        assert!(seen.insert(*o), "ordinal {o} given twice ({user})");
        assert!(
            (0..next).contains(o),
            "{user}: {o} not below the counter {next}"
        );
    }
}

/// Property texts at and past the edges of what `jsonb` stores, and whether
/// Strata's own nesting limit (64 levels, stricter than PostgreSQL's stack)
/// refuses them.
fn hostile_properties() -> Vec<(String, bool)> {
    let nested = |n: usize| format!(r#"{{"a": {}{}}}"#, "[".repeat(n), "]".repeat(n));
    vec![
        r#"{"x": 1e-20000}"#.into(),
        r#"{"x": 1e-16383}"#.into(),
        r#"{"x": [0e-16384]}"#.into(),
        r#"{"x": 1e131072}"#.into(),
        r#"{"x": 9.9e131071}"#.into(),
        r#"{"x": 1e400}"#.into(),
        r#"{"x": -1e1073741823}"#.into(),
        r#"{"x": 0e100000}"#.into(),
        format!(r#"{{"x": 0.{}1}}"#, "0".repeat(16_400)),
        r#"{"x": "\u0000"}"#.into(),
        r#"{"\u0000": 1}"#.into(),
        r#"{"x": "\ud800"}"#.into(),
        r#"{"x": "\udfff\ud800"}"#.into(),
        r#"{"x": "\ud83d\ude00 ok"}"#.into(),
        format!(r#"{{"{}": 1}}"#, "k".repeat(30_000)),
    ]
    .into_iter()
    .map(|t| (t, false))
    .chain([
        (nested(40), false),
        (nested(63), false),
        (nested(64), true),
        (nested(5_000), true),
    ])
    .collect()
}

#[tokio::test]
async fn a_value_postgresql_would_refuse_is_rejected_alone_and_the_batch_is_stored() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let pool = &app.pool;
    let cases = hostile_properties();
    // The judge: what PostgreSQL itself says of each text as jsonb.
    let mut pg_accepts = Vec::new();
    for (text, _) in &cases {
        let r = sqlx::query("SELECT $1::text::jsonb")
            .bind(text)
            .execute(pool)
            .await;
        pg_accepts.push(r.is_ok());
    }
    assert!(pg_accepts.contains(&true) && pg_accepts.contains(&false));

    // One batch: each hostile event followed by a good one.
    let mut parts = Vec::new();
    let mut good = Vec::new();
    for (i, (text, _)) in cases.iter().enumerate() {
        let mut bad = recent_event(Uuid::new_v4(), &format!("u{i}"), 1);
        bad.as_object_mut().unwrap().remove("properties");
        let mut bad = serde_json::to_string(&bad).unwrap();
        bad.pop(); // the closing brace: properties go in as raw text
        parts.push(format!(r#"{bad}, "properties": {text}}}"#));
        let id = Uuid::new_v4();
        good.push(id);
        parts.push(recent_event(id, "good", 1).to_string());
    }
    let body = format!(r#"{{"events": [{}]}}"#, parts.join(","));
    let resp = app.post_raw_events(&key, body).await;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    let rejected: Vec<(usize, String)> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap() as usize,
                r["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let storable: Vec<bool> = cases
        .iter()
        .zip(&pg_accepts)
        .map(|((_, too_deep), pg)| *pg && !too_deep)
        .collect();
    for (i, accepted) in storable.iter().enumerate() {
        let ours = rejected.iter().find(|(index, _)| *index == 2 * i);
        assert_eq!(
            ours.is_none(),
            *accepted,
            "case {i} ({}…): PostgreSQL accepts: {}; ours: {ours:?}",
            &cases[i].0[..cases[i].0.len().min(40)],
            pg_accepts[i]
        );
        if let Some((_, msg)) = ours {
            assert!(msg.starts_with("properties"), "{msg}");
        }
    }
    // Every good event and every storable hostile one is stored (ids only:
    // some stored numbers, like 1e400, are beyond a JSON float parser).
    let stored: Vec<Uuid> = sqlx::query_scalar("SELECT event_id FROM events")
        .fetch_all(pool)
        .await
        .unwrap();
    let expected = good.len() + storable.iter().filter(|a| **a).count();
    assert_eq!(stored.len(), expected);
    for id in &good {
        assert!(stored.contains(id));
    }
    assert_eq!(answer["accepted"], expected);
}

#[tokio::test]
async fn one_batch_writes_into_at_most_31_late_days_and_says_which_events_to_resend() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let now = Utc::now();
    // 200 events on 200 distinct days before yesterday, then one for now:
    // an old-days flood that would otherwise create 200 partitions (and,
    // once archived, 200 one-row files).
    let mut events: Vec<Value> = (0..200)
        .map(|i| {
            let ts = (now - Duration::days(2 + i)).to_rfc3339();
            event(Uuid::new_v4(), "u", "view", &ts)
        })
        .collect();
    events.push(recent_event(Uuid::new_v4(), "u", 0));
    let resp = app.post_events(&key, &json!({ "events": events })).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["accepted"], 32, "{body}");
    let rejected = body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 169);
    assert_eq!(rejected[0]["index"], 31);
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap()
            .contains("31 distinct days before yesterday"),
        "{}",
        rejected[0]
    );
    // The hot tier gained the 31 late days and today, no more.
    assert_eq!(app.hot.list_chunks().await.unwrap().len(), 32);
    // Resent in later batches, the rest is stored.
    let rest: Vec<Value> = events[31..200].to_vec();
    for chunk in rest.chunks(31) {
        let counts = app.ingest_ok(&key, chunk).await;
        assert_eq!(counts.accepted, chunk.len() as u64);
    }
    assert_eq!(app.stored("acme").await.len(), 201);
}

/// Distinct event types are capped per project (`STRATA_MAX_EVENT_TYPES`):
/// past the cap, events of a new type are rejected by index with a reason
/// naming the limit, while known types go on; the cap is per project and
/// held in the database, so a second api process enforces the same count.
#[tokio::test]
async fn new_event_types_past_the_projects_cap_are_rejected_by_index() {
    let app = TestApp::builder().arg("--max-event-types", 3).spawn().await;
    let key = app.key("acme", "ingest").await;
    let at = |t: &str| {
        event(
            Uuid::new_v4(),
            "u",
            t,
            &(Utc::now() - Duration::minutes(5)).to_rfc3339(),
        )
    };
    let resp = app
        .post_events(
            &key,
            &json!({"events": [at("a"), at("b"), at("c"), at("d"), at("a")]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["accepted"], 4, "{body}");
    let rejected = body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{body}");
    assert_eq!(rejected[0]["index"], 3, "{body}");
    let reason = rejected[0]["error"].as_str().unwrap();
    assert!(
        reason.contains("\"d\"") && reason.contains("STRATA_MAX_EVENT_TYPES"),
        "{reason}"
    );

    // Known types pass, new ones do not, in this process and in another.
    let replica = app.spawn_replica(&[]).await;
    for url in [app.url("/v1/events"), replica.url("/v1/events")] {
        let body: Value = app
            .client
            .post(&url)
            .bearer_auth(&key)
            .json(&json!({"events": [at("e"), at("b")]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["accepted"], 1, "{body}");
        assert_eq!(body["rejected"][0]["index"], 0, "{body}");
    }
    // Another project has a cap of its own.
    let other = app.key("other", "ingest").await;
    let c = app.ingest_ok(&other, &[at("x"), at("y"), at("z")]).await;
    assert_eq!(c.accepted, 3);
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT event_type FROM events e JOIN projects p ON p.id = e.project_id
          WHERE p.name = 'acme' ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(types, ["a", "b", "c"]);
}
