//! The dashboard (ADR-035) in a real browser: headless Chromium through
//! ChromeDriver, against a server holding demo data in both tiers. Every
//! number a table shows is compared with the API's answer for the same
//! range and key; screenshots land in the artifacts folder.

use chrono::{Duration, Utc};
use serde_json::Value;
use strata_model::{GeneratorSpec, ProjectName};
use strata_tests::browser::{Browser, LogEntry, number};
use strata_tests::cold::TestCold;
use strata_tests::{TestApp, spawn_app, test_redis_url, test_seed};

/// Console and network entries that are errors, except those `expected`
/// names (by a substring of their message).
fn errors(log: &[LogEntry], expected: &[&str]) -> Vec<String> {
    log.iter()
        .filter(|e| e.level == "SEVERE" || e.level == "ERROR")
        .filter(|e| !expected.iter().any(|x| e.message.contains(x)))
        .map(|e| e.message.clone())
        .collect()
}

/// Loads `days` of the demo project's generated events ending today,
/// archiving the days older than 30 through `archiver`.
async fn load_demo(
    app: &TestApp,
    archiver: &strata_archive::Archiver,
    (days, users, events_per_day): (u32, u32, u32),
) {
    let r = strata_archive::load_demo(
        &app.hot,
        archiver,
        &ProjectName::parse("demo").unwrap(),
        GeneratorSpec {
            days,
            last_day: Utc::now().date_naive(),
            users,
            events_per_day,
            seed: test_seed(),
        },
    )
    .await
    .unwrap();
    assert!(r.chunks_archived > 0, "{r:?}");
}

/// Pastes `keys` into the key form.
async fn paste(b: &Browser, keys: &str) {
    b.type_into("#key-input", keys).await;
    b.click("#key-form button[type=submit]").await;
}

async fn wait_done(b: &Browser, view: &str) {
    b.wait_for(
        &format!("the {view} view"),
        &format!("document.getElementById('view-{view}').dataset.state === 'done'"),
    )
    .await;
}

async fn wait_message(b: &Browser, view: &str) -> String {
    b.wait_for(
        &format!("an error on the {view} view"),
        &format!(
            "document.getElementById('view-{view}').dataset.state === 'error'
             && !document.getElementById('message').hidden"
        ),
    )
    .await;
    b.text("#message").await
}

#[tokio::test]
async fn the_dashboard_shows_the_apis_answers_for_every_view() {
    let app = spawn_app().await;
    let key = app.key("demo", "read,admin").await;
    let operator = app.operator_key().await;
    load_demo(&app, &app.archiver(30), (45, 120, 90)).await;
    let today = Utc::now().date_naive();
    let (from, to) = (today - Duration::days(89), today);
    let range = format!("from={from}&to={to}");

    let b = Browser::start().await;
    b.client.goto(&app.url("/ui/")).await.unwrap();
    let hint = wait_message(&b, "dau").await;
    assert!(hint.contains("Paste an API key"), "{hint}");
    let log = b.log().await;
    assert!(errors(&log, &[]).is_empty(), "console: {log:?}");

    // A bad key: the API's 401, in words, and nothing stored.
    paste(&b, "strata_not_a_real_key_00000000000000000000000").await;
    b.wait_for(
        "the 401 message",
        "document.getElementById('message').textContent.includes('(401)')",
    )
    .await;
    let message = b.text("#message").await;
    assert!(message.contains("unknown or revoked API key"), "{message}");
    b.screenshot("bad-key").await;
    let stored: Value = b
        .client
        .execute("return sessionStorage.getItem('strata.keys');", vec![])
        .await
        .unwrap();
    assert!(!stored.to_string().contains("not_a_real"), "{stored}");

    // Both keys at once; the project comes from the key.
    paste(&b, &format!("{key} {operator}")).await;
    wait_done(&b, "dau").await;
    assert_eq!(b.text("#project").await.trim(), "demo");
    let url = b.client.current_url().await.unwrap();
    for k in [&key, &operator] {
        assert!(
            !url.as_str().contains(k.as_str()),
            "a key reached the URL: {url}"
        );
    }
    b.click("[data-days='90']").await;
    b.wait_for(
        "the 90-day range",
        &format!(
            "document.querySelectorAll('#dau-table tbody tr').length === 90
             && document.getElementById('view-dau').dataset.state === 'done'
             && document.getElementById('from').value === '{from}'"
        ),
    )
    .await;

    // DAU: every day's users and the tier that answered it.
    let (status, api) = app.get_json(&key, &format!("/v1/stats/dau?{range}")).await;
    assert_eq!(status, 200, "{api}");
    let rows = b.table("#dau-table").await;
    let days = api["days"].as_array().unwrap();
    assert_eq!(rows.len(), days.len());
    let mut tiers = std::collections::BTreeSet::new();
    for (row, day) in rows.iter().zip(days) {
        assert_eq!(row[0], day["date"].as_str().unwrap());
        assert_eq!(number(&row[1]), day["users"].as_i64().unwrap(), "{row:?}");
        tiers.insert(row[2].clone());
    }
    // 45 demo days in a 90-day range: cold days, hot days, the late
    // events' day in both, and days with nothing stored.
    for t in ["cold", "hot", "both", "none"] {
        assert!(tiers.contains(t), "no {t} day in {tiers:?}");
    }
    let both = api["meta"]["both_days"][0].as_str().unwrap();
    assert!(rows.iter().any(|r| r[0] == both && r[2] == "both"));
    let meta = b.text("#dau-meta").await;
    assert!(
        meta.contains("Hot (PostgreSQL)") && meta.contains("Cold (Parquet)"),
        "{meta}"
    );
    assert!(meta.contains(both), "{meta}");
    let canvas = b
        .client
        .execute(
            "return document.querySelectorAll('#dau-chart canvas').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(canvas, 1, "the DAU chart was not drawn");
    b.screenshot("dau").await;

    // DAU of one event type.
    b.type_into("#dau-event", "signup").await;
    b.click("#refresh").await;
    wait_done(&b, "dau").await;
    let (_, api) = app
        .get_json(&key, &format!("/v1/stats/dau?{range}&event_type=signup"))
        .await;
    let rows = b.table("#dau-table").await;
    let shown: Vec<i64> = rows.iter().map(|r| number(&r[1])).collect();
    let want: Vec<i64> = api["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["users"].as_i64().unwrap())
        .collect();
    assert_eq!(shown, want);

    // DAU by a property: a column (and a line) per group, as the API's.
    b.type_into("#dau-event", "").await;
    b.type_into("#dau-group", "plan").await;
    b.click("#refresh").await;
    wait_done(&b, "dau").await;
    let (_, api) = app
        .get_json(
            &key,
            &format!("/v1/stats/dau?{range}&group_by=property:plan"),
        )
        .await;
    let groups = api["groups"].as_array().unwrap();
    let labels: Vec<&str> = groups
        .iter()
        .map(|g| g["value"].as_str().unwrap())
        .collect();
    assert_eq!(labels.len(), 3, "free, pro and team: {api}");
    let rows = b.table("#dau-table").await;
    assert_eq!(rows.len(), api["days"].as_array().unwrap().len());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(number(&row[1]), api["days"][i]["users"].as_i64().unwrap());
        for (j, g) in groups.iter().enumerate() {
            assert_eq!(
                number(&row[3 + j]),
                g["days"][i]["users"].as_i64().unwrap(),
                "{row:?}"
            );
        }
    }
    let head: Vec<String> = serde_json::from_value(
        b.client
            .execute(
                "return [...document.querySelectorAll('#dau-table thead th')].map(th => th.innerText.trim());",
                vec![],
            )
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(&head[3..], labels.as_slice());
    b.screenshot("dau-by-property").await;
    b.type_into("#dau-group", "").await;
    b.click("#refresh").await;
    wait_done(&b, "dau").await;

    // Top events, reached with the keyboard from the DAU tab.
    b.click("#tab-dau").await;
    wait_done(&b, "dau").await;
    b.client
        .active_element()
        .await
        .unwrap()
        .send_keys(&fantoccini::key::Key::Right.to_string())
        .await
        .unwrap();
    wait_done(&b, "top").await;
    let (_, api) = app
        .get_json(&key, &format!("/v1/stats/top-events?{range}&limit=10"))
        .await;
    let rows = b.table("#top-table").await;
    let events = api["events"].as_array().unwrap();
    assert!(!events.is_empty());
    assert_eq!(rows.len(), events.len());
    for (row, e) in rows.iter().zip(events) {
        assert_eq!(row[0], e["event_type"].as_str().unwrap());
        assert_eq!(number(&row[1]), e["count"].as_i64().unwrap());
        assert_eq!(number(&row[2]), e["users"].as_i64().unwrap());
    }
    b.screenshot("top-events").await;

    // Top events by a property: each group's event types.
    b.type_into("#top-group", "plan").await;
    b.click("#refresh").await;
    wait_done(&b, "top").await;
    let (_, api) = app
        .get_json(
            &key,
            &format!("/v1/stats/top-events?{range}&limit=10&group_by=property:plan"),
        )
        .await;
    let want: Vec<(String, i64, i64)> = api["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["events"].as_array().unwrap().iter())
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_owned(),
                e["count"].as_i64().unwrap(),
                e["users"].as_i64().unwrap(),
            )
        })
        .collect();
    // A group's first row starts with its name; the last cell is the bar.
    let shown: Vec<(String, i64, i64)> = b
        .table("#top-groups")
        .await
        .iter()
        .map(|r| {
            let n = r.len();
            (r[n - 4].clone(), number(&r[n - 3]), number(&r[n - 2]))
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(shown, want);
    b.screenshot("top-events-by-property").await;

    // Retention: the triangle's sizes and counts.
    b.click("#tab-retention").await;
    wait_done(&b, "retention").await;
    let (_, api) = app
        .get_json(
            &key,
            &format!("/v1/stats/retention?{range}&period=week&periods=8"),
        )
        .await;
    let rows = b.table("#ret-table").await;
    let cohorts = api["cohorts"].as_array().unwrap();
    assert_eq!(rows.len(), cohorts.len());
    for (row, c) in rows.iter().zip(cohorts) {
        assert_eq!(row[0], c["cohort"].as_str().unwrap());
        assert_eq!(number(&row[1]), c["size"].as_i64().unwrap());
        let retained = c["retained"].as_array().unwrap();
        for (k, n) in retained.iter().enumerate() {
            // "42.0%\n17": the share, then the count.
            let count = row[2 + k].lines().last().unwrap_or_default();
            assert_eq!(number(count), n.as_i64().unwrap(), "{row:?} period {k}");
        }
        // Periods that have not started are blank.
        assert!(
            row[2 + retained.len()..].iter().all(String::is_empty),
            "{row:?}"
        );
    }
    assert!(cohorts.iter().any(|c| c["size"].as_i64() > Some(0)));
    b.screenshot("retention").await;

    // Funnel: asks for its steps, then shows each step and each group.
    b.click("#tab-funnel").await;
    assert!(wait_message(&b, "funnel").await.contains("steps"));
    b.type_into("#funnel-steps", "page_view, click,purchase")
        .await;
    b.type_into("#funnel-window", "7").await;
    b.type_into("#funnel-group", "plan").await;
    b.click("#refresh").await;
    wait_done(&b, "funnel").await;
    let (_, api) = app
        .get_json(
            &key,
            &format!(
                "/v1/stats/funnel?{range}&steps=page_view,click,purchase&window=604800&group_by=property:plan"
            ),
        )
        .await;
    let rows = b.table("#funnel-table").await;
    let steps = api["steps"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for (row, s) in rows.iter().zip(steps) {
        assert_eq!(row[1], s["event_type"].as_str().unwrap());
        assert_eq!(number(&row[2]), s["users"].as_i64().unwrap());
        let pct = s["conversion_from_first"].as_f64().unwrap() * 100.0;
        let shown: f64 = row[4].trim_end_matches('%').parse().unwrap();
        assert!((shown - pct).abs() <= 0.05, "{row:?} against {pct}");
    }
    assert!(steps[2]["users"].as_i64() > Some(0), "{api}");
    let rows = b.table("#funnel-groups").await;
    let groups = api["groups"].as_array().unwrap();
    assert_eq!(rows.len(), groups.len());
    for (row, g) in rows.iter().zip(groups) {
        assert_eq!(row[0], g["value"].as_str().unwrap());
        for (k, s) in g["steps"].as_array().unwrap().iter().enumerate() {
            // "1,234 (56.7%)": the users, then the conversion from step 1.
            let users = row[1 + k].split(" (").next().unwrap();
            assert_eq!(number(users), s["users"].as_i64().unwrap(), "{row:?}");
        }
    }
    b.screenshot("funnel").await;

    // Tiers, with the operator key: every project, both tiers.
    b.click("#tab-tiers").await;
    wait_done(&b, "tiers").await;
    let (_, api) = app.get_json(&operator, "/v1/admin/tiers").await;
    let rows = b.table("#tiers-table").await;
    let p = &api["projects"][0];
    assert_eq!(api["projects"].as_array().unwrap().len(), 1, "{api}");
    assert_eq!(rows.len(), 2);
    for (row, tier) in rows.iter().zip(["hot", "cold"]) {
        assert_eq!(row[0], "demo");
        assert!(row[1].starts_with(tier), "{row:?}");
        assert_eq!(
            number(&row[2]),
            p[tier]["days"].as_i64().unwrap(),
            "{row:?}"
        );
        assert_eq!(
            number(&row[3]),
            p[tier]["rows"].as_i64().unwrap(),
            "{row:?}"
        );
    }
    assert_eq!(number(&rows[1][6]), p["cold_files"].as_i64().unwrap());
    assert_eq!(number(&rows[1][8]), p["rollups"]["days"].as_i64().unwrap());
    assert!(b.text("#tiers-lag").await.starts_with("Archive lag"));
    b.screenshot("tiers").await;

    // Archive runs: the demo's run, with its outcome.
    b.click("#tab-runs").await;
    wait_done(&b, "runs").await;
    let (_, api) = app.get_json(&operator, "/v1/admin/archive/runs").await;
    let rows = b.table("#runs-table").await;
    let runs = api["runs"].as_array().unwrap();
    assert!(!runs.is_empty());
    assert_eq!(rows.len(), runs.len());
    for (row, r) in rows.iter().zip(runs) {
        assert_eq!(number(&row[0]), r["id"].as_i64().unwrap());
        assert_eq!(row[2], r["status"].as_str().unwrap());
        assert_eq!(number(&row[3]), r["chunks_moved"].as_i64().unwrap());
        assert_eq!(number(&row[5]), r["rows_moved"].as_i64().unwrap());
    }
    b.screenshot("archive-runs").await;

    // Without the operator key, the runs view says why it is empty.
    b.click("#keys button[aria-label='Forget the operator key']")
        .await;
    let message = wait_message(&b, "runs").await;
    assert!(
        message.contains("(403)") && message.contains("operator key"),
        "{message}"
    );
    assert!(
        !b.shown("#runs-table").await,
        "the operator key's runs are still shown"
    );

    // The only errors the browser saw are the two refusals asked for.
    let log = b.log().await;
    let unexpected = errors(
        &log,
        &[
            "/v1/key - Failed to load resource: the server responded with a status of 401",
            "/v1/admin/archive/runs",
        ],
    );
    assert!(unexpected.is_empty(), "console: {log:?}");
}

#[tokio::test]
async fn the_dashboard_explains_unreadable_cold_days_and_rate_limits() {
    // Cold days written through a reachable store, read through an
    // unreachable one; three requests per key before the limit.
    let app = TestApp::builder()
        .cold(TestCold::unreachable())
        .rate_limited(&test_redis_url(), 3, "closed")
        .spawn()
        .await;
    let key = app.key("demo", "read").await;
    let s3 = TestCold::s3();
    let archiver = strata_archive::Archiver::new(
        app.hot.clone(),
        s3.store.clone(),
        strata_tests::no_compaction(),
    );
    load_demo(&app, &archiver, (40, 50, 40)).await;
    app.drop_rollups().await;

    let b = Browser::start().await;
    b.client.goto(&app.url("/ui/")).await.unwrap();
    paste(&b, &key).await; // request 1: the key
    wait_done(&b, "dau").await; // request 2: the last 30 days, all hot
    // Request 3: 90 days reach the archived days, whose files cannot be
    // read without their rollups.
    b.click("[data-days='90']").await;
    let message = wait_message(&b, "dau").await;
    assert!(
        message.contains("(503)") && message.contains("Cold days could not be read"),
        "{message}"
    );
    assert!(message.contains("Try again in 5 seconds"), "{message}");
    let today = Utc::now().date_naive();
    let other = app.key("demo", "read").await; // its own rate limit
    let (status, api) = app
        .get_json(
            &other,
            &format!(
                "/v1/stats/dau?from={}&to={today}",
                today - Duration::days(89)
            ),
        )
        .await;
    assert_eq!(status, 503, "{api}");
    for day in api["days"].as_array().unwrap() {
        assert!(
            message.contains(day.as_str().unwrap()),
            "{day} not in {message}"
        );
    }
    // The 30-day answer before it is not left standing under the message.
    assert!(!b.shown("#dau-table").await && !b.shown("#dau-chart").await);
    b.screenshot("cold-unavailable").await;

    b.click("#refresh").await; // request 4: over the limit
    b.wait_for(
        "the 429 message",
        "document.getElementById('message').textContent.includes('(429)')",
    )
    .await;
    let message = b.text("#message").await;
    assert!(
        message.contains("Too many requests") && message.contains("Try again in"),
        "{message}"
    );
    assert!(
        !message.contains("a few"),
        "Retry-After not shown: {message}"
    );
    b.screenshot("rate-limited").await;
}

#[tokio::test]
async fn the_page_and_its_key_check_are_served_with_their_headers() {
    let app = spawn_app().await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirect.get(app.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/ui/");
    for (path, kind, needle) in [
        ("/ui/", "text/html", "<title>Strata dashboard</title>"),
        ("/ui/app.js", "text/javascript", "/v1/key"),
        ("/ui/app.css", "text/css", "--hot"),
        (
            "/ui/vendor/uPlot.iife.min.js",
            "text/javascript",
            "uPlot (v1.6.32)",
        ),
        ("/ui/vendor/uPlot.min.css", "text/css", ".uplot"),
        ("/ui/vendor/uPlot.LICENSE", "text/plain", "MIT License"),
    ] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers().clone();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}: {h:?}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("connect-src 'self'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = resp.text().await.unwrap();
        assert!(body.contains(needle), "{path} lacks {needle:?}");
    }

    let key = app.key("acme", "ingest,read").await;
    let (status, body) = app.get_json(&key, "/v1/key").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"project": "acme", "operator": false, "scopes": ["ingest", "read"], "client": false})
    );
    let operator = app.operator_key().await;
    let (_, body) = app.get_json(&operator, "/v1/key").await;
    assert_eq!(
        body,
        serde_json::json!({"project": null, "operator": true, "scopes": ["operator"], "client": false})
    );
    let (status, body) = app.get_json("strata_nope", "/v1/key").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "unauthorized", "{body}");
}
