//! docs/cold-tier.md's S3 recipes run as a data engineer would run them,
//! with DuckDB (and its httpfs extension) and pyarrow from PyPI, against the
//! real S3 server the archiver wrote to; their numbers are compared with the
//! events the test sent.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate, Utc};
use serde_json::{Value, json};
use strata_tests::cold::TestCold;
use strata_tests::docs::{code_blocks, substitute};
use strata_tests::lake::python;
use strata_tests::{TestApp, event, test_seed};
use uuid::Uuid;

#[tokio::test]
async fn the_s3_recipes_of_the_cold_tier_page_count_what_was_sent() {
    let cold = TestCold::s3();
    let s3 = cold.s3.clone();
    let url = cold.url.clone();
    let app = TestApp::builder().cold(cold).spawn().await;
    let shop = app.key("shop", "ingest").await;
    let other = app.key("other", "ingest").await;

    // Five old days of two projects, with a resent tail (duplicates).
    let first = Utc::now().date_naive() - Duration::days(45);
    let seed = test_seed();
    let mut sent: Vec<(NaiveDate, String)> = Vec::new();
    for (key, n) in [(&shop, 600u64), (&other, 250)] {
        let events: Vec<Value> = (0..n)
            .map(|i| {
                let mix = i.wrapping_mul(2_654_435_761).wrapping_add(seed);
                let day = first + Duration::days((mix % 5) as i64);
                let user = format!("user-{}", mix % 97);
                if key == &shop {
                    sent.push((day, user.clone()));
                }
                event(
                    Uuid::new_v4(),
                    &user,
                    "view",
                    &format!("{day}T{:02}:00:00Z", mix % 24),
                )
            })
            .collect();
        app.ingest_ok(key, &events).await;
        app.ingest_ok(key, &events[..20]).await;
    }
    app.archive(30).await;
    let project_id = app.project_id("shop").await;

    let mut expected: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
    for (day, user) in &sent {
        let e = expected.entry(day.to_string()).or_default();
        e.0 += 1;
        e.1.insert(user.clone());
    }
    let expected: Vec<Value> = expected
        .into_iter()
        .map(|(day, (events, users))| json!([day, events, users.len()]))
        .collect();

    let endpoint = s3.endpoint.clone().unwrap();
    let host = endpoint.trim_start_matches("http://").to_owned();
    let region = s3.region.clone().unwrap();
    let key_id = s3.access_key_id.clone().unwrap();
    let secret = s3.secret_access_key.clone().unwrap();
    let blocks: Vec<String> = code_blocks("docs/cold-tier.md", "python")
        .into_iter()
        .map(|b| b.lines.join("\n") + "\n")
        .collect();

    // DuckDB with an S3 secret.
    let duck = blocks
        .iter()
        .find(|b| b.contains("CREATE SECRET"))
        .expect("the DuckDB S3 recipe");
    let httpfs = std::env::var("STRATA_TEST_DUCKDB_HTTPFS").unwrap();
    let last = first + Duration::days(4);
    let script = substitute(
        duck,
        &[
            ("con.execute(\"INSTALL httpfs\")", "None".into()),
            (
                "con.execute(\"LOAD httpfs\")",
                format!("con.execute(\"LOAD '{httpfs}'\")"),
            ),
            ("KEY_ID 'strata'", format!("KEY_ID '{key_id}'")),
            ("'the-minio-password'", format!("'{secret}'")),
            ("REGION 'us-east-1'", format!("REGION '{region}'")),
            ("minio.internal:9000", host.clone()),
            ("s3://strata/archive", url.clone()),
            ("project_id=1/", format!("project_id={project_id}/")),
            (
                "'2026-01-01' AND '2026-01-31'",
                format!("'{first}' AND '{last}'"),
            ),
        ],
    ) + "import json\nprint(json.dumps([[str(d), e, u] for d, e, u in rows]))\n";
    let out = python(&script).await;
    let got: Vec<Value> = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(got, expected, "DuckDB over S3");

    // pyarrow's S3 file system.
    let arrow = blocks
        .iter()
        .find(|b| b.contains("S3FileSystem"))
        .expect("the pyarrow S3 recipe");
    let bucket_path = url.trim_start_matches("s3://");
    let script = substitute(
        arrow,
        &[
            ("access_key=\"strata\"", format!("access_key=\"{key_id}\"")),
            ("\"the-minio-password\"", format!("\"{secret}\"")),
            ("region=\"us-east-1\"", format!("region=\"{region}\"")),
            ("minio.internal:9000", host),
            (
                "\"strata/archive/events\"",
                format!("\"{bucket_path}/events\""),
            ),
            ("== 1,", format!("== {project_id},")),
        ],
    );
    let out = python(&script).await;
    let users: BTreeSet<&String> = sent.iter().map(|(_, u)| u).collect();
    assert_eq!(
        out.trim(),
        format!("{} {}", sent.len(), users.len()),
        "pyarrow over S3"
    );
}
