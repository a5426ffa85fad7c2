//! The shell examples of README.md and docs/api.md, run as a reader would
//! run them against a live server, their outputs compared with what the
//! pages show. A block runs when it calls the API on port 8080; a `# {…}`
//! line after a command is the output the page promises for it.
//!
//! Comparison: the same JSON, object keys included (a field the server
//! sends and the page leaves out fails), except that a string ending in `…`
//! matches any string starting with what precedes it, and the `meta` of a
//! stats answer (which tier answered, bytes, milliseconds: it depends on
//! when the data was loaded) is compared by its shape. A later command's
//! `<field>` stands for the value of `field` in an earlier answer shown with
//! a placeholder (`<batch_id>`). Pages show `make run`'s hot layout
//! (native partitions); on a hypertable the server's own layout is expected.
//! Of a block, only the commands that talk to the API run: `curl` (and the
//! `echo … |` feeding it) and variable assignments; `make run`, `docker
//! compose` and the like are the reader's setup, done here by the test.
//! A step that only reads is tried again for a few seconds until it gives
//! the answer shown (a queued batch is applied in the background).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use serde_json::Value;
use strata_model::{GeneratorSpec, ProjectName};
use strata_tests::docs::code_blocks;
use strata_tests::nats::{test_nats_url, unique_stream};
use strata_tests::{TestApp, spawn_app};

/// One command group of a shell block and the outputs shown after it.
#[derive(Debug)]
struct Step {
    script: String,
    expected: Vec<Value>,
}

#[derive(Debug)]
struct Example {
    /// `page:line`, for messages.
    place: String,
    /// The heading the block sits under.
    section: String,
    steps: Vec<Step>,
}

/// The `sh` blocks of `name` that call the API.
fn examples(name: &str) -> Vec<Example> {
    let mut out = Vec::new();
    for block in code_blocks(name, "sh") {
        if !block
            .lines
            .iter()
            .any(|l| l.contains("curl") && l.contains(":8080"))
        {
            continue;
        }
        let mut steps = vec![Step {
            script: String::new(),
            expected: Vec::new(),
        }];
        for l in &block.lines {
            let shown = l
                .strip_prefix("# ")
                .filter(|s| s.starts_with('{') || s.starts_with('['));
            match shown {
                Some(json) => {
                    let v = serde_json::from_str(json).unwrap_or_else(|e| {
                        panic!("{}: shown output is not JSON: {e}: {json}", block.place)
                    });
                    steps.last_mut().unwrap().expected.push(v);
                }
                None => {
                    if !steps.last().unwrap().expected.is_empty() {
                        steps.push(Step {
                            script: String::new(),
                            expected: Vec::new(),
                        });
                    }
                    let step = steps.last_mut().unwrap();
                    step.script.push_str(l);
                    step.script.push('\n');
                }
            }
        }
        out.push(Example {
            place: block.place,
            section: block.section,
            steps,
        });
    }
    out
}

/// Whether `actual` is what the page shows as `expected`; the fields
/// shown with a placeholder are recorded in `bound` as `<field>`.
fn matches(
    expected: &Value,
    actual: &Value,
    shape_only: bool,
    bound: &mut BTreeMap<String, String>,
) -> bool {
    match (expected, actual) {
        (Value::String(e), Value::String(a)) if e.ends_with('…') => {
            a.starts_with(e.trim_end_matches('…'))
        }
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len()
                && e.iter().all(|(k, ev)| {
                    let Some(av) = a.get(k) else { return false };
                    if let (Some(shown), Some(got)) = (ev.as_str(), av.as_str())
                        && shown.ends_with('…')
                    {
                        bound.insert(format!("<{k}>"), got.to_owned());
                    }
                    matches(ev, av, shape_only || k == "meta", bound)
                })
        }
        (Value::Array(e), Value::Array(a)) if shape_only => {
            // The shape of a list: each element like the first shown.
            match e.first() {
                None => true,
                Some(first) => a.iter().all(|av| matches(first, av, true, bound)),
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len()
                && e.iter()
                    .zip(a)
                    .all(|(ev, av)| matches(ev, av, false, bound))
        }
        (Value::Number(_), Value::Number(_)) if shape_only => true,
        (Value::String(_), Value::String(_)) if shape_only => true,
        (e, a) => e == a,
    }
}

/// The commands of a shell script that run here (see the module comment),
/// comments removed, each with its continuation lines (a trailing `\`,
/// `|` or `&&`, or an open quote).
fn api_commands(script: &str) -> String {
    let mut commands = Vec::new();
    let mut current = String::new();
    let (mut single, mut double) = (false, false);
    for line in script.lines() {
        let mut kept = String::new();
        let mut prev = ' ';
        for c in line.chars() {
            match c {
                '\'' if !double => single = !single,
                '"' if !single => double = !double,
                '#' if !single && !double && prev.is_whitespace() => break,
                _ => {}
            }
            kept.push(c);
            prev = c;
        }
        let kept = kept.trim_end();
        current.push_str(kept);
        current.push('\n');
        let continues =
            single || double || kept.ends_with('\\') || kept.ends_with('|') || kept.ends_with("&&");
        if !continues {
            commands.push(std::mem::take(&mut current));
        }
    }
    commands
        .into_iter()
        .filter(|c| {
            let c = c.trim_start();
            let word = c.split_whitespace().next().unwrap_or_default();
            word == "curl"
                || word == "echo"
                || word.split_once('=').is_some_and(|(name, _)| {
                    !name.is_empty() && name.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_')
                })
        })
        .collect()
}

/// Runs every step of `example` with `bash` in a folder holding
/// `.strata/demo.key` (as `make run` leaves it), the page's host replaced by
/// `app`'s (already running as the block describes).
async fn run(example: &Example, app: &TestApp, key: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".strata")).unwrap();
    std::fs::write(dir.path().join(".strata/demo.key"), key).unwrap();
    let base = app.url("");
    let layout = app.hot.layout().as_str();
    let mut bound = BTreeMap::new();
    for step in &example.steps {
        let expected: Vec<Value> = step
            .expected
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if e.get("hot_layout").is_some() {
                    e["hot_layout"] = Value::from(layout);
                }
                e
            })
            .collect();
        let reads_only = !step.script.contains("-X POST");
        for attempt in 1.. {
            let outcome =
                run_step(example, step, &expected, &base, dir.path(), key, &mut bound).await;
            match outcome {
                Ok(()) => break,
                Err(_) if reads_only && attempt < 50 => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(message) => panic!("{message}"),
            }
        }
    }
}

/// One step: runs it and compares; `Err` with the message when the answer
/// is not the one shown.
async fn run_step(
    example: &Example,
    step: &Step,
    expected: &[Value],
    base: &str,
    dir: &Path,
    key: &str,
    bound: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    let mut script = api_commands(&step.script)
        .replace("http://127.0.0.1:8080", base)
        .replace("localhost:8080", base);
    for (placeholder, value) in bound.iter() {
        script = script.replace(placeholder, value);
    }
    let prelude = "set -eo pipefail\n";
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .current_dir(dir)
        .env("KEY", key)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} ({}): the step failed: {}\n{script}",
            example.place,
            example.section,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // curl ends no answer with a newline: the answers follow each other.
    let answers = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "{} ({}): the output is not JSON ({e}): {stdout}\n{script}",
                example.place, example.section
            )
        })?;
    if let Some(a) = answers.iter().find(|a| a.get("code").is_some()) {
        return Err(format!(
            "{} ({}): the example gets an error: {a}\n{script}",
            example.place, example.section
        ));
    }
    if expected.is_empty() {
        return Ok(());
    }
    if answers.len() != expected.len() {
        return Err(format!(
            "{} ({}): {} answers, the page shows {}: {answers:?}\n{script}",
            example.place,
            example.section,
            answers.len(),
            expected.len()
        ));
    }
    for (e, a) in expected.iter().zip(&answers) {
        if !matches(e, a, false, bound) {
            return Err(format!(
                "{} ({}): the page shows\n  {e}\nthe server answers\n  {a}\n{script}",
                example.place, example.section
            ));
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_readmes_examples_give_the_answers_it_shows() {
    let app = spawn_app().await;
    let key = app.key("demo", "ingest,read,admin").await;
    let found = examples("README.md");
    assert!(found.len() >= 2, "the README's API examples: {found:?}");
    for example in &found {
        run(example, &app, &key).await;
    }
}

#[tokio::test]
async fn the_queue_mode_example_of_the_api_page_gives_the_answers_it_shows() {
    let stream = unique_stream();
    let app = TestApp::builder()
        .queue(&test_nats_url(), &stream)
        .spawn()
        .await;
    let _worker = app.worker(&[]).await;
    let key = app.key("demo", "ingest,read").await;
    let found: Vec<Example> = examples("docs/api.md")
        .into_iter()
        .filter(|e| e.section.starts_with("Queue mode"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    run(&found[0], &app, &key).await;
}

#[tokio::test]
async fn the_stats_examples_of_the_api_page_give_the_answers_they_show() {
    let app = spawn_app().await;
    let key = app.key("demo", "ingest,read,admin").await;
    // What `make demo` loaded on the day the page's outputs were taken.
    strata_archive::load_demo(
        &app.hot,
        &app.archiver(30),
        &ProjectName::parse("demo").unwrap(),
        GeneratorSpec {
            days: 120,
            last_day: NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
            users: 5_000,
            events_per_day: 2_000,
            seed: 42,
        },
    )
    .await
    .unwrap();
    let found: Vec<Example> = examples("docs/api.md")
        .into_iter()
        .filter(|e| e.section == "Stats API")
        .collect();
    assert!(found.len() >= 5, "{found:?}");
    for example in &found {
        run(example, &app, &key).await;
    }
}
