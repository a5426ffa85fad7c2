//! Client keys and CORS (ADR-040), and the client examples of docs/clients
//! run against a live server: the JavaScript one from a page in Chromium on
//! another origin, the Python one as a user would run it.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use strata_model::ProjectName;
use strata_store::KeyLimit;
use strata_tests::browser::Browser;
use strata_tests::{TestApp, recent_event, test_redis_url};
use uuid::Uuid;

const JS_CLIENT: &str = include_str!("../../docs/clients/strata.js");
const PY_CLIENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/clients/strata_client.py"
);

/// A client key of `project`, with its own limit if given.
async fn client_key(app: &TestApp, project: &str, limit: Option<(f64, u32)>) -> String {
    let limit = limit.map(|(rate, burst)| KeyLimit::new(rate, burst).unwrap());
    let (key, info) = app
        .hot
        .create_client_key(&ProjectName::parse(project).unwrap(), limit)
        .await
        .unwrap();
    assert!(info.client);
    assert_eq!(info.scopes.to_string(), "ingest");
    key.expose().to_owned()
}

fn event(user: &str) -> Value {
    recent_event(Uuid::new_v4(), user, 0)
}

/// One event sent with `key`, as if forwarded for `forwarded_for`.
async fn send(app: &TestApp, key: &str, forwarded_for: &str) -> u16 {
    send_to(app, app.url("/v1/events"), key, forwarded_for).await
}

/// The same to `url` (another replica's).
async fn send_to(app: &TestApp, url: String, key: &str, forwarded_for: &str) -> u16 {
    app.client
        .post(url)
        .bearer_auth(key)
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"events": [event("u")]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_client_key_only_ingests_and_each_client_address_has_its_own_bucket() {
    let app = TestApp::builder()
        .rate_limited(&test_redis_url(), 2, "closed")
        .arg("--trusted-proxy-hops", 1)
        .spawn()
        .await;
    let client = client_key(&app, "shop", None).await;
    let (status, who) = app.get_json(&client, "/v1/key").await;
    assert_eq!(status, 200);
    assert_eq!(
        who,
        json!({"project": "shop", "operator": false, "scopes": ["ingest"], "client": true})
    );
    let (status, body) = app
        .get_json(&client, "/v1/stats/dau?from=2026-01-01&to=2026-01-01")
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );

    // Two requests per address; the address is the entry the one trusted
    // proxy appended (the last), whatever the client put before it.
    assert_eq!(send(&app, &client, "203.0.113.1").await, 200);
    assert_eq!(send(&app, &client, "203.0.113.1").await, 200);
    assert_eq!(send(&app, &client, "203.0.113.1").await, 429);
    assert_eq!(send(&app, &client, "198.51.100.7, 203.0.113.1").await, 429);
    assert_eq!(send(&app, &client, "203.0.113.2").await, 200);
    assert_eq!(send(&app, &client, "203.0.113.1, 203.0.113.2").await, 200);
    assert_eq!(send(&app, &client, "203.0.113.2").await, 429);
    assert_eq!(app.stored("shop").await.len(), 4);

    // A project key's bucket is the key's, whatever the address.
    let server = app.key("shop", "ingest").await;
    assert_eq!(send(&app, &server, "203.0.113.3").await, 200);
    assert_eq!(send(&app, &server, "203.0.113.4").await, 200);
    assert_eq!(send(&app, &server, "203.0.113.5").await, 429);

    // The schema holds the rule too: a client key never gains a scope.
    let widened = sqlx::query("UPDATE api_keys SET scopes = ARRAY['ingest', 'read'] WHERE client")
        .execute(&app.pool)
        .await;
    assert!(widened.is_err(), "a client key took the read scope");
}

/// Two api processes share a client address's bucket (it lives in Redis),
/// as they share a key's.
#[tokio::test]
async fn two_replicas_share_a_client_addresss_bucket() {
    let app = TestApp::builder()
        .rate_limited(&test_redis_url(), 2, "closed")
        .arg("--trusted-proxy-hops", 1)
        .spawn()
        .await;
    let replica = app.spawn_replica(&[]).await;
    let client = client_key(&app, "shop", None).await;
    let there = || replica.url("/v1/events");
    assert_eq!(send(&app, &client, "203.0.113.1").await, 200);
    assert_eq!(send_to(&app, there(), &client, "203.0.113.1").await, 200);
    assert_eq!(send(&app, &client, "203.0.113.1").await, 429);
    assert_eq!(send_to(&app, there(), &client, "203.0.113.1").await, 429);
    assert_eq!(send_to(&app, there(), &client, "203.0.113.2").await, 200);
}

/// In queue mode a client key's batch is queued and stored, its status
/// readable with the same key; the admin views stay closed to it.
#[tokio::test]
async fn a_client_key_sends_through_the_queue() {
    let stream = strata_tests::nats::unique_stream();
    let app = TestApp::builder()
        .queue(&strata_tests::nats::test_nats_url(), &stream)
        .spawn()
        .await;
    let _worker = app.worker(&[]).await;
    let client = client_key(&app, "shop", None).await;
    let (batch, _) = app
        .ingest_queued(&client, &[event("u1"), event("u2")])
        .await;
    app.wait_applied(&client, &batch, Duration::from_secs(10))
        .await;
    assert_eq!(app.stored("shop").await.len(), 2);
    let (status, body) = app.get_json(&client, "/v1/admin/ingest/dead-letters").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
}

#[tokio::test]
async fn without_trusted_proxies_forwarded_addresses_are_ignored() {
    let app = TestApp::builder()
        .rate_limited(&test_redis_url(), 2, "closed")
        .spawn()
        .await;
    let client = client_key(&app, "shop", None).await;
    for (forwarded_for, status) in [
        ("203.0.113.1", 200),
        ("203.0.113.2", 200),
        ("203.0.113.3", 429),
    ] {
        assert_eq!(
            send(&app, &client, forwarded_for).await,
            status,
            "{forwarded_for}"
        );
    }
}

/// `OPTIONS /v1/events` as a browser sends it before a JSON `POST`.
async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn the_ingest_route_answers_preflights_for_the_configured_origins_only() {
    let app = TestApp::builder()
        .arg(
            "--cors-origins",
            "https://app.example.com, http://localhost:3000",
        )
        .spawn()
        .await;
    let r = preflight(&app, "/v1/events", "https://app.example.com").await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(
        header(&r, "access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    let allowed = header(&r, "access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in ["authorization", "content-type", "x-api-key"] {
        assert!(allowed.contains(h), "{h} not allowed: {allowed}");
    }
    let r = preflight(&app, "/v1/events", "https://evil.example.net").await;
    assert_eq!(header(&r, "access-control-allow-origin"), None);

    // The answer itself carries the origin and lets the page read the
    // rate-limit headers; so does a refusal.
    let key = app.key("shop", "ingest").await;
    for (key, status) in [(key.as_str(), 200), ("not-a-key", 401)] {
        let r = app
            .client
            .post(app.url("/v1/events"))
            .bearer_auth(key)
            .header("origin", "http://localhost:3000")
            .json(&json!({"events": [event("u")]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            Some("http://localhost:3000")
        );
        let exposed = header(&r, "access-control-expose-headers")
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            exposed.contains("retry-after") && exposed.contains("ratelimit-remaining"),
            "{exposed}"
        );
    }

    // Reading stats stays off limits to pages: no CORS there.
    let r = preflight(&app, "/v1/stats/dau", "https://app.example.com").await;
    assert_eq!(r.status(), 405);
    assert_eq!(header(&r, "access-control-allow-origin"), None);

    // Unset, no route answers a preflight.
    let plain = TestApp::builder().spawn().await;
    let r = preflight(&plain, "/v1/events", "https://app.example.com").await;
    assert_eq!(r.status(), 405);
    assert_eq!(header(&r, "access-control-allow-origin"), None);
}

/// Serves a page that loads docs/clients/strata.js and sends 45 events of
/// 9 users with it, then writes the client's stats into `body.dataset.stats`.
async fn serve_page() -> (String, tokio::task::JoinHandle<()>) {
    const PAGE: &str = r#"<!doctype html><meta charset="utf-8"><title>shop</title>
<script type="module">
import { StrataClient } from "/strata.js";
const q = new URLSearchParams(location.search);
const strata = new StrataClient({ url: q.get("api"), key: q.get("key"), maxBatch: 10,
  flushMs: 60000, maxAttempts: Number(q.get("attempts")), baseDelayMs: 20 });
for (let i = 0; i < 45; i++) strata.track(`user-${i % 9}`, i % 2 ? "click" : "view", { i });
await strata.close();
document.body.dataset.stats = JSON.stringify(strata.stats);
</script>"#;
    let page = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Html(PAGE) }),
        )
        .route(
            "/strata.js",
            axum::routing::get(|| async { ([("content-type", "text/javascript")], JS_CLIENT) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, page).await.unwrap();
    });
    (origin, task)
}

/// Opens the page and waits for the client's stats.
async fn run_page(b: &Browser, origin: &str, app: &TestApp, key: &str, attempts: u32) -> Value {
    let url = reqwest::Url::parse_with_params(
        origin,
        &[
            ("api", app.url("")),
            ("key", key.to_owned()),
            ("attempts", attempts.to_string()),
        ],
    )
    .unwrap();
    b.client.goto(url.as_str()).await.unwrap();
    b.wait_for("the client to finish", "document.body.dataset.stats")
        .await;
    let stats = b
        .client
        .execute("return document.body.dataset.stats;", vec![])
        .await
        .unwrap();
    serde_json::from_str(stats.as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_page_on_an_allowed_origin_sends_events_with_the_javascript_client() {
    let (allowed, _page) = serve_page().await;
    let (other, _other_page) = serve_page().await;
    // Two requests at once, then two a second: the client must wait out
    // Retry-After to send its five batches.
    let app = TestApp::builder()
        .rate_limited(&test_redis_url(), 2, "closed")
        .arg("--cors-origins", &allowed)
        .spawn()
        .await;
    let key = client_key(&app, "shop", Some((2.0, 2))).await;
    let b = Browser::start().await;

    let stats = run_page(&b, &allowed, &app, &key, 8).await;
    assert_eq!(stats["accepted"], 45, "{stats}");
    assert_eq!(stats["dropped"], 0, "{stats}");
    assert!(
        stats["retries"].as_u64().unwrap() >= 1,
        "Retry-After never met: {stats}"
    );
    assert_eq!(app.stored("shop").await.len(), 45);
    let users: BTreeSet<String> = app
        .stored("shop")
        .await
        .into_iter()
        .map(|e| e.user_id)
        .collect();
    assert_eq!(users, (0..9).map(|i| format!("user-{i}")).collect());

    // A page on an origin not listed cannot send: the browser stops it.
    let stats = run_page(&b, &other, &app, &key, 2).await;
    assert_eq!(stats["accepted"], 0, "{stats}");
    assert_eq!(stats["dropped"], 45, "{stats}");
    let log = b.log().await;
    assert!(
        log.iter().any(|e| e.message.contains("CORS")),
        "no CORS refusal in the console: {log:?}"
    );
    assert_eq!(app.stored("shop").await.len(), 45);
}

#[tokio::test]
async fn the_python_client_sends_retries_and_stores_each_event_once() {
    let app = TestApp::builder()
        .rate_limited(&test_redis_url(), 2, "closed")
        .spawn()
        .await;
    let key = client_key(&app, "shop", Some((2.0, 2))).await;
    // 100 events of 7 users in batches of 20, then the first 10 again (a
    // retry of events already stored): 6 batches against a bucket of 2.
    let events: Vec<Value> = (0..100)
        .map(|i| event(&format!("user-{}", i % 7)))
        .collect();
    let lines: String = events
        .iter()
        .chain(&events[..10])
        .map(|e| format!("{e}\n"))
        .collect();
    let mut child = tokio::process::Command::new("python3")
        .arg(PY_CLIENT)
        .args(["--url", &app.url(""), "--key", &key, "--max-batch", "20"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the example client");
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(lines.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the client finished")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["accepted"], 100, "{stats}");
    assert_eq!(stats["duplicates"], 10, "{stats}");
    assert_eq!(stats["rejected"], json!([]), "{stats}");
    assert!(
        stats["retries"].as_u64().unwrap() >= 1,
        "Retry-After never met: {stats}"
    );
    assert_eq!(app.stored("shop").await.len(), 100);
    let ids: BTreeSet<Uuid> = app
        .stored("shop")
        .await
        .iter()
        .map(|e| e.event_id)
        .collect();
    let sent: BTreeSet<Uuid> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, sent);
}
