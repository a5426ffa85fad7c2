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

/// Schemathesis (`make test` installs it from PyPI and names it in
/// `STRATA_TEST_SCHEMATHESIS`) generates requests from the served document,
/// valid and invalid, the way a client generator would, and checks every
/// answer against the document with all of its checks: no server error, no
/// status, header or body the document does not describe, schema-valid
/// input accepted, schema-invalid input refused, unsupported methods 405.
/// The project routes run with a project key holding every scope, the
/// archive-run routes (operator only) with an operator key, so that every
/// operation is exercised past authentication. `schemathesis_hooks.py`
/// keeps generated day ranges within the documented cross-parameter rule
/// (`from` <= `to`, at most 3,660 days), which OpenAPI cannot express.
/// Sixty examples per operation, seed 7: fewer missed `{"days": 1137.0}`
/// (an integer to JSON Schema) being refused.
#[tokio::test]
async fn schemathesis_finds_no_mismatch_between_the_document_and_the_service() {
    let bin = std::env::var("STRATA_TEST_SCHEMATHESIS").unwrap_or_else(|_| {
        panic!("STRATA_TEST_SCHEMATHESIS is not set: run the suite with `make test`, which installs schemathesis")
    });
    let hooks = concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis_hooks.py");
    let app = spawn_app().await;
    let project_key = app.key("fuzz", "ingest,read,admin").await;
    let operator_key = app.operator_key().await;
    let operator_only = "^/v1/admin/archive/";
    for (key, filter) in [
        (project_key, "--exclude-path-regex"),
        (operator_key, "--include-path-regex"),
    ] {
        let work = tempfile::tempdir().unwrap();
        let out = tokio::process::Command::new(&bin)
            .current_dir(work.path())
            .env("SCHEMATHESIS_HOOKS", hooks)
            .arg("run")
            .arg(app.url("/openapi.json"))
            .args([filter, operator_only])
            .args(["--checks", "all"])
            .args(["--max-examples", "60"])
            .args(["--seed", "7"])
            // One worker: CPython 3.11 before 3.11.8 keeps the AST
            // constructor's recursion depth in state shared between threads,
            // so two workers parsing lambdas at once (Hypothesis describes
            // its filters that way) fail with "AST constructor recursion
            // depth mismatch" (CPython gh-106905), an error of the fuzzer,
            // not of the service.
            .args(["--workers", "1"])
            .args(["--request-timeout", "30"])
            .args(["--generation-database", "none"])
            .arg("--header")
            .arg(format!("Authorization: Bearer {key}"))
            .arg("--no-color")
            .output()
            .await
            .unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "schemathesis ({filter} {operator_only}) failed:\n{text}"
        );
        assert!(
            text.contains("Tested: "),
            "schemathesis ran no operation:\n{text}"
        );
    }
}

/// The error codes are one vocabulary: `strata_model::ErrorCode` (every
/// crate's `code()` returns one, so the server cannot send another), the
/// OpenAPI document's `ErrorCode` enum, and the table in docs/api.md list
/// the same codes.
#[test]
fn the_error_codes_of_the_code_the_document_and_the_docs_are_one_list() {
    use strum::IntoEnumIterator;
    let codes: BTreeSet<String> = strata_model::ErrorCode::iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    let doc: Value = serde_json::from_str(&strata_http::openapi::document()).unwrap();
    let listed: BTreeSet<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode is an enum in the document")
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, codes, "the OpenAPI document's ErrorCode");
    assert_eq!(
        doc["components"]["schemas"]["ErrorBody"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md")).unwrap();
    let section = page
        .split("\n## Error codes\n")
        .nth(1)
        .expect("docs/api.md has an Error codes section");
    let section = section.split("\n## ").next().unwrap();
    let documented: BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| l.split('`').next().unwrap().to_owned())
        .collect();
    assert_eq!(documented, codes, "docs/api.md's table of error codes");
}
