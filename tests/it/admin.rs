//! `/v1/admin/*`: tier footprints, archive history, starting a run.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use sqlx::Connection;
use strata_tests::{recent_event, spawn_app};
use uuid::Uuid;

use strata_store::shared::locks::ARCHIVER as ARCHIVER_LOCK;

fn old_event(days: i64, user: &str) -> Value {
    recent_event(Uuid::new_v4(), user, days * 24 + 1)
}

#[tokio::test]
async fn a_project_admin_sees_only_its_project_and_only_operators_run_the_archiver() {
    let app = spawn_app().await;
    let acme_admin = app.key("acme", "ingest,admin").await;
    let beta = app.key("beta-secret-name", "ingest").await;
    app.ingest_ok(&acme_admin, &[old_event(3, "a")]).await;
    app.ingest_ok(&beta, &[old_event(3, "b"), old_event(4, "b")])
        .await;

    let (status, body) = app.get_json(&acme_admin, "/v1/admin/tiers").await;
    assert_eq!(status, 200, "{body}");
    let projects = body["projects"].as_array().unwrap();
    assert_eq!(projects.len(), 1, "{body}");
    assert_eq!(projects[0]["project"], "acme");
    assert!(!body.to_string().contains("beta-secret-name"), "{body}");

    // Archive runs concern every project: operators only.
    let (status, body) = app.get_json(&acme_admin, "/v1/admin/archive/runs").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("operator key"),
        "{body}"
    );
    let r = app
        .client
        .post(app.url("/v1/admin/archive/run"))
        .bearer_auth(&acme_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // An operator key sees every project, and is no project's key.
    let operator = app.operator_key().await;
    let (status, body) = app.get_json(&operator, "/v1/admin/tiers").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["projects"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(
        app.get_json(&operator, "/v1/admin/archive/runs").await.0,
        200
    );
    let today = Utc::now().date_naive();
    let (status, body) = app
        .get_json(&operator, &format!("/v1/stats/dau?from={today}&to={today}"))
        .await;
    assert_eq!(status, 403, "{body}");
    let resp = app
        .post_events(
            &operator,
            &serde_json::json!({"events": [old_event(1, "x")]}),
        )
        .await;
    assert_eq!(resp.status(), 403);
    // The operator scope cannot be given to a project key.
    let err = app
        .hot
        .create_key(
            &strata_model::ProjectName::parse("acme").unwrap(),
            &strata_model::Scopes::parse_list("read,operator").unwrap(),
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--operator"), "{err}");
}

#[tokio::test]
async fn admin_views_need_the_admin_scope() {
    let app = spawn_app().await;
    let reader = app.key("acme", "ingest,read").await;
    for path in ["/v1/admin/tiers", "/v1/admin/archive/runs"] {
        assert_eq!(app.get_json(&reader, path).await.0, 403, "{path}");
    }
    let r = app
        .client
        .post(app.url("/v1/admin/archive/run"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn tiers_runs_and_a_run_started_over_http() {
    let app = spawn_app().await;
    let admin = app.operator_key().await;
    let acme = app.key("acme", "ingest").await;
    let beta = app.key("beta", "ingest").await;
    let acme_events: Vec<Value> = (0..40)
        .map(|i| old_event([1, 2, 40, 41][i % 4], &format!("u{i}")))
        .collect();
    app.ingest_ok(&acme, &acme_events).await;
    app.ingest_ok(&beta, &[old_event(3, "b")]).await;

    let (status, body) = app.get_json(&admin, "/v1/admin/tiers").await;
    assert_eq!(status, 200, "{body}");
    let acme_id = app.project_id("acme").await;
    let project = |body: &Value, id: i64| -> Value {
        body["projects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["project_id"] == id)
            .cloned()
            .unwrap()
    };
    let p = project(&body, acme_id);
    assert_eq!(p["hot"]["rows"], 40);
    assert_eq!(p["hot"]["days"], 4);
    assert_eq!(p["cold"]["rows"], 0);
    assert!(p["hot"]["bytes"].as_i64().unwrap() > 0, "{p}");
    // The oldest hot day (41 or 42 days ago) ended 10 to 11 days and some
    // hours before the 30-day retention's cutoff: that is the archiver's lag.
    let lag = body["archive_lag_seconds"].as_f64().unwrap();
    assert!((10.0 * 86_400.0..12.0 * 86_400.0).contains(&lag), "{body}");

    // Start a run over HTTP: 202 with its id; 409 while one runs.
    let mut lock = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(ARCHIVER_LOCK)
        .execute(&mut lock)
        .await
        .unwrap();
    let post = || {
        app.client
            .post(app.url("/v1/admin/archive/run"))
            .bearer_auth(&admin)
            .send()
    };
    let r = post().await.unwrap();
    assert_eq!(r.status(), 409);
    // Released synchronously: a closed connection's backend lets go of its
    // locks only when it exits, which can be after the next request.
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(ARCHIVER_LOCK)
        .execute(&mut lock)
        .await
        .unwrap();
    lock.close().await.unwrap();
    let r = post().await.unwrap();
    assert_eq!(r.status(), 202);
    let run_id = r.json::<Value>().await.unwrap()["run_id"].as_i64().unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let run = loop {
        let (status, body) = app.get_json(&admin, "/v1/admin/archive/runs?limit=5").await;
        assert_eq!(status, 200, "{body}");
        let run = body["runs"][0].clone();
        assert_eq!(run["id"], run_id);
        if run["status"] != "running" {
            break run;
        }
        assert!(tokio::time::Instant::now() < deadline, "run never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["chunks_moved"], 2, "{run}");
    assert_eq!(run["rows_moved"], 20, "{run}");
    let chunks = run["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 2);
    assert!(
        chunks
            .iter()
            .all(|c| c["status"] == "archived" && c["files"] == 1)
    );
    let today = Utc::now().date_naive();
    assert_eq!(
        chunks[0]["day"],
        (today - chrono::Duration::days(41)).to_string()
    );

    let (_, body) = app.get_json(&admin, "/v1/admin/tiers").await;
    assert_eq!(body["archive_lag_seconds"], 0.0, "{body}");
    let p = project(&body, acme_id);
    assert_eq!(
        (p["hot"]["rows"].as_i64(), p["cold"]["rows"].as_i64()),
        (Some(20), Some(20))
    );
    assert_eq!(
        (p["cold"]["days"].as_i64(), p["cold_files"].as_i64()),
        (Some(2), Some(2))
    );
    assert!(
        p["hot_to_cold_bytes_per_event"].as_f64().unwrap() > 0.0,
        "{p}"
    );
    let beta_id = app.project_id("beta").await;
    assert_eq!(project(&body, beta_id)["hot"]["rows"], 1);

    let (status, body) = app.get_json(&admin, "/v1/admin/archive/runs?limit=0").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = app.get_json(&admin, "/v1/admin/archive/runs?since=1").await;
    assert_eq!(status, 400);
}
