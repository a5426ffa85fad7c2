//! Per-key token buckets in the real Redis.

use std::time::Duration;

use strata_model::{ProjectName, Scopes};
use strata_store::KeyLimit;
use strata_tests::{TestApp, test_redis_url};

/// A server limiting every key to `burst` requests (and a slow refill: a
/// test's requests never earn a token back); `on_error`: open or closed.
async fn limited_app(redis_url: &str, burst: u32, on_error: &str) -> TestApp {
    TestApp::builder()
        .rate_limited(redis_url, burst, on_error)
        .spawn()
        .await
}

async fn get(app: &TestApp, url: String, key: &str) -> reqwest::Response {
    tokio::time::timeout(
        Duration::from_secs(10),
        app.client.get(url).bearer_auth(key).send(),
    )
    .await
    .expect("request hung")
    .unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> Option<u64> {
    r.headers().get(name)?.to_str().ok()?.parse().ok()
}

const DAU: &str = "/v1/stats/dau?from=2026-01-01&to=2026-01-01";

#[tokio::test]
async fn a_burst_is_served_then_429_with_retry_after_and_ratelimit_headers() {
    let app = limited_app(&test_redis_url(), 3, "open").await;
    let key = app.key("acme", "ingest,read").await;
    let (_, ready) = app.get_public_json("/readyz").await;
    assert_eq!(ready["redis"], "ok", "{ready}");
    for remaining in [2, 1, 0] {
        let r = get(&app, app.url(DAU), &key).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "ratelimit-limit"), Some(3));
        assert_eq!(header(&r, "ratelimit-remaining"), Some(remaining));
        assert!(header(&r, "ratelimit-reset").unwrap() >= 1);
    }
    let r = get(&app, app.url(DAU), &key).await;
    assert_eq!(r.status(), 429);
    assert!(header(&r, "retry-after").unwrap() >= 1);
    assert_eq!(header(&r, "ratelimit-remaining"), Some(0));
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("rate limit"),
        "{body}"
    );
    // Ingest shares the key's bucket; health checks are never limited.
    let r = app
        .post_events(&key, &serde_json::json!({"events": []}))
        .await;
    assert_eq!(r.status(), 429);
    let r = app.client.get(app.url("/livez")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Another key has its own bucket.
    let other = app.key("acme", "read").await;
    assert_eq!(get(&app, app.url(DAU), &other).await.status(), 200);
}

#[tokio::test]
async fn a_key_with_its_own_limit_uses_it() {
    let app = limited_app(&test_redis_url(), 50, "open").await;
    let (key, _) = app
        .hot
        .create_key(
            &ProjectName::parse("acme").unwrap(),
            &Scopes::parse_list("read").unwrap(),
            Some(KeyLimit::new(0.01, 1).unwrap()),
        )
        .await
        .unwrap();
    let key = key.expose().to_owned();
    let r = get(&app, app.url(DAU), &key).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "ratelimit-limit"), Some(1));
    assert_eq!(get(&app, app.url(DAU), &key).await.status(), 429);
}

#[tokio::test]
async fn two_api_replicas_share_one_bucket() {
    let app = limited_app(&test_redis_url(), 3, "open").await;
    let replica = app.spawn_replica(&[]).await;
    let key = app.key("acme", "read").await;
    let statuses = [
        get(&app, app.url(DAU), &key).await.status(),
        get(&app, replica.url(DAU), &key).await.status(),
        get(&app, app.url(DAU), &key).await.status(),
        get(&app, replica.url(DAU), &key).await.status(),
    ];
    assert_eq!(statuses.map(|s| s.as_u16()), [200, 200, 200, 429]);
}

#[tokio::test]
async fn redis_down_lets_requests_through_when_open_and_refuses_them_when_closed() {
    let down = "redis://127.0.0.1:1";
    let open = limited_app(down, 1, "open").await;
    let key = open.key("acme", "read").await;
    for _ in 0..3 {
        let r = get(&open, open.url(DAU), &key).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("ratelimit-limit").is_none());
    }
    // Reported by /readyz, which stays ready: ingest and queries work.
    let (status, ready) = open.get_public_json("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert!(ready["redis"] == "unavailable", "{ready}");
    let closed = open
        .spawn_replica(&[("--rate-limit-on-redis-error", "closed".into())])
        .await;
    let r = get(&open, closed.url(DAU), &key).await;
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("Redis"), "{body}");
}

#[tokio::test]
async fn redis_stopping_mid_way_then_returning_is_handled_without_a_restart() {
    let url = reqwest::Url::parse(&test_redis_url()).unwrap();
    let target = tokio::net::lookup_host((url.host_str().unwrap(), url.port().unwrap_or(6379)))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = strata_tests::proxy::TcpProxy::start(target).await;
    let via_proxy = format!("redis://127.0.0.1:{}", proxy.addr.port());
    let app = limited_app(&via_proxy, 100, "open").await;
    let key = app.key("acme", "read").await;
    let limited = |r: &reqwest::Response| r.headers().contains_key("ratelimit-limit");
    let r = get(&app, app.url(DAU), &key).await;
    assert!(r.status() == 200 && limited(&r));
    proxy.cut().await;
    for _ in 0..3 {
        let r = get(&app, app.url(DAU), &key).await;
        assert_eq!(r.status(), 200, "open: served while Redis is down");
        assert!(!limited(&r));
    }
    proxy.restore();
    let mut back = false;
    for _ in 0..50 {
        let r = get(&app, app.url(DAU), &key).await;
        assert_eq!(r.status(), 200);
        if limited(&r) {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "rate limiting did not resume when Redis came back");
}
