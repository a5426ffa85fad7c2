//! NATS for queue-mode tests (ADR-034): the machine's server
//! (`STRATA_TEST_NATS_URL`, which `make test` provides) for most tests,
//! each with its own stream; a private `nats-server` process for tests
//! that stop and restart it.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use uuid::Uuid;

/// The shared NATS of the test machine.
pub fn test_nats_url() -> String {
    std::env::var("STRATA_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A stream name no other test uses.
pub fn unique_stream() -> String {
    format!("T{}", Uuid::new_v4().simple())
}

/// Deletes a test's stream and its dead letters (best effort: a server
/// that is gone, a private one, keeps nothing anyway).
pub async fn delete_streams(url: String, stream: String) {
    let connect = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(1))
        .connect(url.as_str());
    let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(2), connect).await else {
        return;
    };
    let js = async_nats::jetstream::new(client);
    for name in [stream.clone(), format!("{stream}_DLQ")] {
        let _ = tokio::time::timeout(Duration::from_secs(2), js.delete_stream(&name)).await;
    }
}

/// A `nats-server -js` of the test's own, on a free port, with its
/// JetStream store in a temporary directory that outlives restarts.
#[derive(Debug)]
pub struct NatsServer {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
    /// Flags beyond address, port and JetStream (auth, TLS).
    extra: Vec<String>,
}

fn binary() -> String {
    std::env::var("STRATA_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".into())
}

impl NatsServer {
    pub async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    /// [`Self::start`] with more `nats-server` flags (auth, TLS).
    pub async fn start_with(extra: Vec<String>) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut s = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            extra,
        };
        s.restart().await;
        s
    }

    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Starts it again (same port, same store) after [`Self::stop`].
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = tokio::process::Command::new(binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.addr.port().to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} (STRATA_TEST_NATS_SERVER): {e}", binary()));
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server did not listen on {}", self.addr);
    }

    /// Stops it (SIGKILL: what a crash or an outage looks like to clients).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }
}

/// A CA and a server certificate for 127.0.0.1 it signed, made with the
/// `openssl` command in `dir`: (ca.pem, server.pem, server.key).
pub fn test_certificates(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=strata-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}
