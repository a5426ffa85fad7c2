//! A real browser for the dashboard's tests: headless Chromium driven
//! through its ChromeDriver (WebDriver) by `fantoccini`. Each test starts its
//! own ChromeDriver on a free port (`STRATA_TEST_CHROMEDRIVER`, which `make
//! test` provides, installing Debian's `chromium-driver` when missing).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

fn chromedriver() -> String {
    std::env::var("STRATA_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into())
}

/// ChromeDriver's own log endpoint: what the page wrote to its console and
/// the network errors the browser reported (`goog:loggingPrefs`). Each call
/// returns the entries since the last one.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// One console or network entry of the page.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub level: String,
    pub message: String,
}

/// A headless Chromium session; the driver process dies with it.
#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = tokio::process::Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); `make test` installs Debian's chromium-driver",
                    chromedriver()
                )
            });
        let profile = tempfile::tempdir().unwrap();
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1280,1000",
                "--lang=en-US",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        });
        if let Ok(bin) = std::env::var("STRATA_TEST_CHROMIUM") {
            options["binary"] = json!(bin);
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        // The driver takes a moment to listen.
        for _ in 0..100 {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Self {
                        client,
                        _driver: driver,
                        _profile: profile,
                    };
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no WebDriver session on {url}: {last:?}");
    }

    /// The console and network entries since the last call.
    pub async fn log(&self) -> Vec<LogEntry> {
        let v = self.client.issue_cmd(BrowserLog).await.unwrap();
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| LogEntry {
                level: e["level"].as_str().unwrap_or_default().to_owned(),
                message: e["message"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    /// Waits until `script` (a JavaScript expression) is truthy; panics
    /// with `what` after 20 s.
    pub async fn wait_for(&self, what: &str, script: &str) {
        for _ in 0..200 {
            let v = self
                .client
                .execute(&format!("return !!({script});"), vec![])
                .await
                .unwrap();
            if v == Value::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let message = self.text("#message").await;
        panic!("timed out waiting for {what} (page message: {message:?})");
    }

    /// The rendered text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Whether the element matching `css` is rendered (not `display:
    /// none`, itself or through an ancestor).
    pub async fn shown(&self, css: &str) -> bool {
        let v = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]);
                 return !!e && e.getClientRects().length > 0;",
                vec![json!(css)],
            )
            .await
            .unwrap();
        v == Value::Bool(true)
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Types `text` into the input matching `css` (after clearing it).
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.client.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// Each body row of the table matching `css`, as its cells' rendered
    /// text (`innerText`: what a person sees).
    pub async fn table(&self, css: &str) -> Vec<Vec<String>> {
        let v = self
            .client
            .execute(
                "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]
                   .map(tr => [...tr.cells].map(c => c.innerText.trim()));",
                vec![json!(css)],
            )
            .await
            .unwrap();
        serde_json::from_value(v).unwrap()
    }

    /// Saves a screenshot of the page as `<artifacts>/<name>.png` and
    /// returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

/// Where tests leave files for people to look at (not committed):
/// `STRATA_TEST_ARTIFACTS`, else `<cargo target dir>/strata-artifacts`.
pub fn artifacts_dir() -> PathBuf {
    if let Ok(d) = std::env::var("STRATA_TEST_ARTIFACTS") {
        return PathBuf::from(d);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("strata-artifacts").join("dashboard")
}

/// A number as the page formats it ("12,345") read back.
pub fn number(text: &str) -> i64 {
    text.replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {text:?}"))
}
