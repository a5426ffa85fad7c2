use serde_json::{Value, json};
use strata_tests::{recent_event, spawn_app};
use uuid::Uuid;

async fn status_and_error(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

fn one_event() -> Value {
    json!({ "events": [recent_event(Uuid::new_v4(), "u1", 1)] })
}

#[tokio::test]
async fn missing_malformed_and_unknown_keys_are_401() {
    let app = spawn_app().await;
    let url = app.url("/v1/events");

    let resp = app
        .client
        .post(&url)
        .json(&one_event())
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"strata\""
    );
    let (status, error) = status_and_error(resp).await;
    assert_eq!(status, 401);
    assert!(error.contains("missing API key"), "{error}");

    let resp = app
        .client
        .post(&url)
        .header("authorization", "Basic dXNlcjpwYXNz")
        .json(&one_event())
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_error(resp).await.0, 401);

    let resp = app.post_events("strata_not-a-real-key", &one_event()).await;
    let (status, error) = status_and_error(resp).await;
    assert_eq!(
        (status, error.as_str()),
        (401, "unknown or revoked API key")
    );
}

#[tokio::test]
async fn x_api_key_header_is_accepted() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let resp = app
        .client
        .post(app.url("/v1/events"))
        .header("x-api-key", &key)
        .json(&one_event())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn revoked_key_is_401_and_other_keys_keep_working() {
    let app = spawn_app().await;
    let key = app.key("acme", "ingest").await;
    let other = app.key("acme", "ingest").await;
    assert_eq!(app.post_events(&key, &one_event()).await.status(), 200);

    // Revoke by the displayed prefix, as `keys revoke` would.
    let info = app.hot.revoke_key(&key[..15]).await.unwrap();
    assert!(key.starts_with(&info.prefix));
    let (status, _) = status_and_error(app.post_events(&key, &one_event()).await).await;
    assert_eq!(status, 401);
    assert_eq!(app.post_events(&other, &one_event()).await.status(), 200);
    // Revoking again names nothing active.
    assert!(app.hot.revoke_key(&key).await.is_err());
}

#[tokio::test]
async fn key_without_ingest_scope_is_403() {
    let app = spawn_app().await;
    let key = app.key("acme", "read,admin").await;
    let (status, error) = status_and_error(app.post_events(&key, &one_event()).await).await;
    assert_eq!(status, 403);
    assert!(error.contains("ingest scope"), "{error}");
    assert!(app.stored("acme").await.is_empty());
}

#[tokio::test]
async fn a_key_writes_only_its_own_project() {
    let app = spawn_app().await;
    let key_a = app.key("project-a", "ingest").await;
    let key_b = app.key("project-b", "ingest").await;
    let id = Uuid::new_v4();
    let a = app.ingest_ok(&key_a, &[recent_event(id, "alice", 2)]).await;
    assert_eq!(a.accepted, 1);
    // The same event_id in another project is another event.
    let b = app.ingest_ok(&key_b, &[recent_event(id, "bob", 3)]).await;
    assert_eq!(b.accepted, 1);

    let in_a = app.stored("project-a").await;
    let in_b = app.stored("project-b").await;
    assert_eq!(in_a.len(), 1);
    assert_eq!(in_b.len(), 1);
    assert_eq!(in_a[0].user_id, "alice");
    assert_eq!(in_b[0].user_id, "bob");
}

/// Every error body says what went wrong for people (`error`), for programs
/// (`code`), and which request it was (`request_id`, the `x-request-id`
/// header, kept when the client sent one).
#[tokio::test]
async fn error_bodies_carry_a_stable_code_and_the_request_id() {
    let app = spawn_app().await;
    let key = app.key("acme", "read").await;
    let cases = [
        (
            "/v1/stats/dau?from=2026-01-01&to=2026-01-01",
            None,
            401,
            "unauthorized",
        ),
        (
            "/v1/stats/dau?from=2026-13-01&to=2026-01-01",
            Some(&key),
            400,
            "invalid_parameter",
        ),
        (
            "/v1/stats/dau?from=2026-01-01&to=2026-01-01&x=1",
            Some(&key),
            400,
            "unknown_parameter",
        ),
        (
            "/v1/stats/top-events?from=2026-01-01&to=2026-01-01&limit=0",
            Some(&key),
            400,
            "invalid_parameter",
        ),
        ("/v1/admin/archive/runs", Some(&key), 403, "forbidden"),
        ("/v1/nowhere", Some(&key), 404, "no_such_route"),
    ];
    for (path, key, status, code) in cases {
        let mut req = app.client.get(app.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), status, "{path}");
        let header = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], code, "{path}: {body}");
        assert!(!body["error"].as_str().unwrap().is_empty(), "{body}");
        assert_eq!(body["request_id"], header.as_str(), "{path}: {body}");
    }
    let resp = app
        .client
        .get(app.url("/v1/stats/dau?from=2026-01-01&to=2026-01-01"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["request_id"], "client-chosen-42", "{body}");
}

/// A method a route does not offer is a 405 naming the allowed ones, asked
/// with or without a key: authentication runs only for the route's own
/// methods, so a client learns the method is wrong, not that it lacks a key.
#[tokio::test]
async fn an_unsupported_method_is_405_before_any_key_is_asked_for() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        ("TRACE", "/v1/admin/tiers", "GET,HEAD"),
        ("DELETE", "/v1/stats/dau", "GET,HEAD"),
        ("GET", "/v1/events", "POST"),
        ("PUT", "/v1/admin/archive/run", "POST"),
    ] {
        let resp = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 405, "{method} {path}");
        let got = resp.headers()["allow"].to_str().unwrap().replace(' ', "");
        assert_eq!(got, allow, "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["code"], "method_not_allowed",
            "{method} {path}: {body}"
        );
        assert!(body["request_id"].is_string(), "{body}");
    }
}
