//! The load generator's sending side: `clients` concurrent HTTP clients
//! post pre-encoded batches, each waiting for its answer (200 = committed)
//! before sending the next, as a well-behaved producer does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use serde::Deserialize;

use crate::data::Body;
use crate::error::{Result, failed};

/// Posts batches to one Strata server with one key.
#[derive(Debug, Clone)]
pub struct Ingestor {
    pub client: reqwest::Client,
    pub base: String,
    pub key: String,
}

/// What a load achieved.
#[derive(Debug, Clone, Default)]
pub struct LoadStats {
    pub events: u64,
    pub batches: u64,
    pub secs: f64,
    /// Each request's time to its answer, in milliseconds.
    pub latencies_ms: Vec<f64>,
}

impl LoadStats {
    pub fn per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.events as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Direct mode's 200 (`accepted`) or queue mode's 202 (`queued`).
#[derive(Deserialize)]
struct IngestAnswer {
    #[serde(default)]
    accepted: Option<u64>,
    #[serde(default)]
    queued: Option<u64>,
    duplicates: u64,
    #[serde(default)]
    batch_id: Option<uuid::Uuid>,
}

type Clients = tokio::task::JoinSet<Result<LoadStats>>;

/// Waits for every client; their totals over the time since `started`.
async fn join(mut tasks: Clients, started: Instant) -> Result<LoadStats> {
    let mut total = LoadStats::default();
    while let Some(done) = tasks.join_next().await {
        let s = done.map_err(|e| failed(format!("load client panicked: {e}")))??;
        total.events += s.events;
        total.batches += s.batches;
        total.latencies_ms.extend(s.latencies_ms);
    }
    total.secs = started.elapsed().as_secs_f64();
    Ok(total)
}

impl Ingestor {
    /// Sends `bodies` from `clients` concurrent clients. Every event must be
    /// accepted (the data holds no duplicates), or the load fails.
    pub async fn send(&self, bodies: Arc<Vec<Body>>, clients: usize) -> Result<LoadStats> {
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Clients::new();
        for _ in 0..clients.max(1) {
            let (me, bodies, next) = (self.clone(), Arc::clone(&bodies), Arc::clone(&next));
            tasks.spawn(async move {
                let mut stats = LoadStats::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    me.post(body).await?;
                    stats.events += u64::from(body.events);
                    stats.batches += 1;
                }
                Ok(stats)
            });
        }
        join(tasks, started).await
    }

    /// Sends freshly generated events of `day` (a new batch of `batch`
    /// events per request, from `users` users) from `clients` clients until
    /// `stop` is set. Client `i` generates from seed `seed + i`: loads into
    /// one project need seeds at least `clients` apart. Generating costs the clients a few milliseconds per
    /// batch, the same in every load this is compared with.
    pub async fn send_generated(
        &self,
        day: chrono::NaiveDate,
        users: u32,
        batch: u32,
        clients: usize,
        seed: u64,
        stop: Arc<AtomicBool>,
    ) -> Result<LoadStats> {
        let started = Instant::now();
        let mut tasks = Clients::new();
        for client in 0..clients.max(1) {
            let (me, stop) = (self.clone(), Arc::clone(&stop));
            tasks.spawn(async move {
                let mut g = crate::data::generator(1, day, users, batch, seed + client as u64);
                let mut stats = LoadStats::default();
                while !stop.load(Ordering::Relaxed) {
                    let events = g.day(0, day);
                    let body = Body {
                        bytes: crate::data::ingest_body(&events)?.into(),
                        events: events.len() as u32,
                    };
                    let sent = Instant::now();
                    me.post(&body).await?;
                    stats.latencies_ms.push(sent.elapsed().as_secs_f64() * 1e3);
                    stats.events += u64::from(body.events);
                    stats.batches += 1;
                }
                Ok(stats)
            });
        }
        join(tasks, started).await
    }

    /// Asks for DAU over `[from, to]` one request at a time, every
    /// `pause`, until `stop` is set: each answer's latency in milliseconds.
    pub async fn probe_stats(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
        pause: std::time::Duration,
        stop: Arc<AtomicBool>,
    ) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            let res = self
                .client
                .get(format!("{}/v1/stats/dau?from={from}&to={to}", self.base))
                .bearer_auth(&self.key)
                .send()
                .await?;
            let status = res.status();
            let _ = res.bytes().await?;
            if !status.is_success() {
                return Err(failed(format!("stats answered {status} during the load")));
            }
            out.push(sent.elapsed().as_secs_f64() * 1e3);
            tokio::time::sleep(pause).await;
        }
        Ok(out)
    }

    async fn post(&self, body: &Body) -> Result<Option<uuid::Uuid>> {
        let res = self
            .client
            .post(format!("{}/v1/events", self.base))
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(body.bytes.clone())
            .send()
            .await?;
        let status = res.status();
        if !status.is_success() {
            return Err(failed(format!(
                "ingest answered {status}: {}",
                res.text().await.unwrap_or_default()
            )));
        }
        let answer: IngestAnswer = res.json().await?;
        let stored = answer.accepted.or(answer.queued).unwrap_or(0);
        if stored != u64::from(body.events) || answer.duplicates != 0 {
            return Err(failed(format!(
                "ingest took {stored} of {} events ({} duplicates)",
                body.events, answer.duplicates
            )));
        }
        Ok(answer.batch_id)
    }

    /// Posts one body to a queue-mode server; its batch id.
    pub async fn post_queued(&self, bytes: bytes::Bytes) -> Result<uuid::Uuid> {
        let events = serde_json::from_slice::<serde_json::Value>(&bytes)?["events"]
            .as_array()
            .map_or(0, Vec::len) as u32;
        self.post(&Body { bytes, events })
            .await?
            .ok_or_else(|| failed("a queue-mode server answered without a batch_id"))
    }
}
