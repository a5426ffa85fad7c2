use serde_json::Value;
use strata_tests::spawn_app;

#[tokio::test]
async fn livez_readyz_and_unknown_routes() {
    let app = spawn_app().await;
    let live = app.client.get(app.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    assert!(live.headers().contains_key("x-request-id"));

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");

    let missing = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "no such route");
}

#[tokio::test]
async fn readyz_is_503_when_migrations_are_missing() {
    let app = spawn_app().await;
    sqlx::query("DELETE FROM _sqlx_migrations")
        .execute(&app.pool)
        .await
        .unwrap();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unready");
    assert_eq!(body["postgres"], "migrations not applied");
}

#[tokio::test]
async fn a_database_outage_is_503_with_retry_after_not_500() {
    let app = strata_tests::TestApp::builder().pg_proxy().spawn().await;
    let key = app.key("acme", "ingest").await;
    // PostgreSQL "goes down": every connection of the server is cut.
    app.pg_proxy.as_ref().unwrap().cut().await;
    let body =
        serde_json::json!({"events": [strata_tests::recent_event(uuid::Uuid::new_v4(), "u", 1)]});
    let resp = app.post_events(&key, &body).await;
    let (status, retry_after) = (resp.status(), resp.headers().get("retry-after").cloned());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.unwrap(), "1");
    assert_eq!(body["error"], "the database is unavailable; retry later");
    assert_eq!(body["code"], "database_unavailable");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    // A stable word, not the driver's message (hosts, users, …).
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["postgres"], "unavailable", "{body}");
}

#[tokio::test]
async fn readyz_follows_postgresql_down_and_back_without_a_restart() {
    let app = strata_tests::TestApp::builder().pg_proxy().spawn().await;
    let ready = |app: &strata_tests::TestApp| {
        let req = app.client.get(app.url("/readyz")).send();
        async move {
            let r = tokio::time::timeout(std::time::Duration::from_secs(15), req)
                .await
                .expect("readyz hung")
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["redis"], "not configured");
    assert_eq!(body["cold_store"], "ok");
    let proxy = app.pg_proxy.as_ref().unwrap();
    proxy.cut().await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unready");
    proxy.restore();
    let mut last = (0, Value::Null);
    for _ in 0..50 {
        last = ready(&app).await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(last.0, 200, "not ready again: {}", last.1);
}
