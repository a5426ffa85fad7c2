//! The OpenAPI document: committed copy current, structurally valid, and
//! every documented route served.

use std::collections::BTreeSet;

use serde_json::Value;
use strata_tests::spawn_app;

#[test]
fn the_committed_document_is_the_generated_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap();
    assert!(
        committed == strata_http::openapi::document(),
        "docs/openapi.json differs from the code: run `make openapi`"
    );
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => {
                        out.insert(r.clone());
                    }
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_served_document_is_valid_and_every_documented_route_exists() {
    let app = spawn_app().await;
    let (status, doc) = app.get_public_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("bearer") && schemes.contains_key("api_key"));
    // Every reference resolves.
    let mut all = BTreeSet::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 10, "{paths:?}");
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}");
            for (status, r) in responses {
                // Required by the OpenAPI schema for every response object
                // (checked by hand with openapi-spec-validator too).
                assert!(
                    r["description"].is_string(),
                    "{method} {path} {status}: no description"
                );
            }
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let status = app
                .client
                .request(m, app.url(path))
                .send()
                .await
                .unwrap()
                .status();
            assert!(
                status != 404 && status != 405,
                "{method} {path} is documented but answers {status}"
            );
        }
    }
    let ui = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    assert!(
        ui.text().await.unwrap().contains("swagger"),
        "no Swagger UI at /docs/"
    );
}
