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
