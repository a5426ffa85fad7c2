//! Strata's own binaries run as child processes, as in production, so that
//! their memory can be measured: a sampler reads the kernel's high-water
//! mark of resident memory (`VmHWM`) every 20 ms while the process lives.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::error::{Result, failed};

/// A running Strata binary.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    peak: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

/// The peak resident memory of `pid` so far, in bytes (Linux; `None`
/// elsewhere or once the process is gone).
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The resident memory of `pid` now, in bytes (Linux; 0 elsewhere).
pub fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// CPU seconds (user + system) `pid` has used so far (Linux; 0 elsewhere).
/// `/proc/<pid>/stat` counts in clock ticks, 100 a second on Linux; the
/// fields after the command name are numbered from 0 here (utime is 11).
pub fn cpu_secs(pid: u32) -> f64 {
    stat_ticks(pid, 11, 12)
}

/// CPU seconds used by the children of this process that it has waited for.
pub fn reaped_children_cpu_secs() -> f64 {
    stat_ticks(std::process::id(), 13, 14)
}

fn stat_ticks(pid: u32, a: usize, b: usize) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let (_, rest) = s.rsplit_once(')')?;
            let f: Vec<f64> = rest
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0.0))
                .collect();
            Some((f.get(a)? + f.get(b)?) / 100.0)
        })
        .unwrap_or(0.0)
}

/// CPU seconds used so far by every process named `name` (e.g. all of
/// PostgreSQL's backends), including children they have reaped.
pub fn cpu_secs_named(name: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .map(|pid| cpu_secs(pid) + stat_ticks(pid, 13, 14))
        .sum()
}

impl Proc {
    /// CPU seconds the process has used so far.
    pub fn cpu_secs(&self) -> f64 {
        self.child.id().map_or(0.0, cpu_secs)
    }

    /// Starts `bin` with `args`, `env` added to the inherited environment,
    /// and stdout and stderr appended to `log`.
    pub fn spawn(bin: &Path, args: &[&str], env: &[(String, String)], log: &Path) -> Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot start {}: {e}", bin.display())))?;
        let pid = child
            .id()
            .ok_or_else(|| failed(format!("{} exited at once", bin.display())))?;
        let peak = Arc::new(AtomicU64::new(0));
        let sampled = Arc::clone(&peak);
        let sampler = tokio::spawn(async move {
            while let Some(bytes) = peak_rss(pid) {
                sampled.fetch_max(bytes, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Ok(Self {
            name: bin.file_name().map_or_else(
                || bin.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            child,
            peak,
            sampler,
        })
    }

    /// Resident memory now, in bytes.
    pub fn rss(&self) -> u64 {
        self.child.id().map_or(0, rss)
    }

    /// Peak resident memory seen so far, in bytes.
    pub fn peak_rss(&self) -> u64 {
        if let Some(now) = self.child.id().and_then(peak_rss) {
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
        self.peak.load(Ordering::Relaxed)
    }

    /// Waits for the process to exit; its exit status and peak memory.
    pub async fn wait(mut self) -> Result<(ExitStatus, u64)> {
        let status = self.child.wait().await?;
        self.sampler.abort();
        Ok((status, self.peak.load(Ordering::Relaxed)))
    }

    /// Stops the process as an orchestrator would (SIGTERM, then waits).
    pub async fn stop(mut self) -> Result<u64> {
        let peak = self.peak_rss();
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
                return Err(failed(format!("{} did not stop on SIGTERM", self.name)));
            }
        }
        self.sampler.abort();
        Ok(peak)
    }
}

/// Runs `bin args` to completion; its stdout, or an error with its output.
pub async fn run_output(bin: &Path, args: &[&str], env: &[(String, String)]) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| failed(format!("cannot start {}: {e}", bin.display())))?;
    if !out.status.success() {
        return Err(failed(format!(
            "{} {} failed ({}): {}",
            bin.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The directory holding this binary's sibling binaries (`strata-api`, …).
pub fn bin_dir() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    me.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| failed("cannot locate the binaries beside strata-bench"))
}
