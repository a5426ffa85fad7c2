//! The ingest worker: drains the stream into PostgreSQL.
//!
//! It pulls messages through one durable consumer (several workers share
//! it; each message goes to one of them), groups what arrived within
//! `max_wait` (up to `max_events`) by project, and applies each project's
//! parts in one transaction ([`Store::apply_queued`]). Messages are
//! acknowledged only after that commit; a worker killed before its acks
//! leaves them to be delivered again, which the exact dedup and the batch
//! records make harmless.
//!
//! Failures: PostgreSQL unavailable (or NATS, for the acks) is transient:
//! the messages are released for a later delivery without limit. Anything
//! else fails the group, whose parts are then applied one by one so one
//! bad message cannot hold the others; a part that still fails is
//! released again until it was delivered `dead_letter_after` times, then
//! moved to the dead-letter stream with the reason.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;
use strata_model::ProjectId;
use strata_store::{QueuedPart, Store};
use tracing::Instrument;

use crate::{Queue, QueueError, headers};

/// How the worker drains.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The durable consumer's name (workers with the same name share it).
    pub consumer: String,
    /// Most events in one transaction (a message is never split, so one
    /// transaction may exceed it by one message).
    pub max_events: usize,
    /// Longest wait, from the first message of a group, for more.
    pub max_wait: Duration,
    /// Deliveries after which a message that keeps failing (for a reason
    /// other than an unavailable database) becomes a dead letter.
    pub dead_letter_after: i64,
    /// Unacknowledged this long, a message is delivered again (a worker
    /// that died): longer than the slowest transaction.
    pub ack_wait: Duration,
    /// Delay before a released message is delivered again.
    pub retry_delay: Duration,
    /// Batch records older than this are pruned (their status is then 404).
    pub batch_status_ttl: Duration,
    /// Groups applied at once (each in its own transaction).
    pub concurrency: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            consumer: "strata-ingest-worker".into(),
            max_events: 20_000,
            max_wait: Duration::from_millis(200),
            dead_letter_after: 5,
            ack_wait: Duration::from_secs(60),
            retry_delay: Duration::from_secs(1),
            batch_status_ttl: Duration::from_secs(7 * 86_400),
            concurrency: 2,
        }
    }
}

/// Totals since the worker started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    pub transactions: u64,
    pub parts: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub released: u64,
    pub dead_letters: u64,
}

#[derive(Debug, Default)]
struct Counters {
    transactions: AtomicU64,
    parts: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    released: AtomicU64,
    dead_letters: AtomicU64,
}

/// Drains the queue into the hot tier (see the module docs).
#[derive(Debug, Clone)]
pub struct Worker {
    hot: Store,
    queue: Queue,
    cfg: WorkerConfig,
    counters: Arc<Counters>,
}

/// One message received, decoded (or why not).
struct Received {
    msg: Message,
    part: Result<(ProjectId, QueuedPart), QueueError>,
}

impl Worker {
    pub fn new(hot: Store, queue: Queue, cfg: WorkerConfig) -> Self {
        Self {
            hot,
            queue,
            cfg,
            counters: Arc::default(),
        }
    }

    pub fn report(&self) -> WorkerReport {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkerReport {
            transactions: get(&c.transactions),
            parts: get(&c.parts),
            accepted: get(&c.accepted),
            duplicates: get(&c.duplicates),
            released: get(&c.released),
            dead_letters: get(&c.dead_letters),
        }
    }

    /// The durable pull consumer, created if missing (idempotent).
    pub async fn consumer(&self) -> Result<PullConsumer, QueueError> {
        let s = self.queue.stream(&self.queue.cfg.stream).await?;
        s.get_or_create_consumer(
            &self.cfg.consumer,
            pull::Config {
                durable_name: Some(self.cfg.consumer.clone()),
                description: Some("Strata ingest workers".into()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: self.cfg.ack_wait,
                // Unlimited: the worker decides when a message is dead.
                max_deliver: -1,
                max_ack_pending: 20_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| QueueError::Unavailable(format!("creating the queue's consumer: {e}")))
    }

    /// Drains with `concurrency` loops until `shutdown` resolves.
    /// Shutdown interrupts only the wait for messages: a group being
    /// applied is committed and acknowledged first.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> WorkerReport {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let loops = (0..self.cfg.concurrency.max(1)).map(|i| {
            let mut rx = rx.clone();
            async move {
                self.drain(i, async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await;
            }
        });
        let all = futures::future::join_all(loops);
        tokio::pin!(all);
        tokio::select! {
            _ = &mut all => {}
            () = shutdown => {
                let _ = tx.send(true);
                all.await;
            }
        }
        self.report()
    }

    /// One receive-and-apply loop.
    async fn drain(&self, index: usize, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut messages: Option<pull::Stream> = None;
        let mut pruned: Option<Instant> = None;
        loop {
            let received = tokio::select! {
                () = &mut shutdown => break,
                r = async {
                    if messages.is_none() {
                        messages = Some(self.messages().await?);
                    }
                    match messages.as_mut() {
                        Some(m) => self.receive(m).await,
                        None => Ok(Vec::new()),
                    }
                } => r,
            };
            match received {
                Ok(got) => {
                    if !got.is_empty() {
                        self.apply(got).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e.detail(), "ingest worker: retrying after an error");
                    messages = None;
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(self.cfg.retry_delay) => {}
                    }
                }
            }
            if index == 0 && pruned.is_none_or(|t| t.elapsed() > Duration::from_secs(600)) {
                pruned = Some(Instant::now());
                let before = chrono::Utc::now()
                    - chrono::Duration::from_std(self.cfg.batch_status_ttl)
                        .unwrap_or(chrono::Duration::MAX);
                match self.hot.prune_batch_records(before).await {
                    Ok(n) if n > 0 => tracing::info!(pruned = n, "batch records pruned"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "batch records not pruned"),
                }
            }
        }
    }

    /// A continuous pull from the durable consumer: the client keeps up
    /// to 64 messages asked for ahead, so a message is handed over as soon
    /// as it is stored.
    async fn messages(&self) -> Result<pull::Stream, QueueError> {
        self.consumer()
            .await?
            .stream()
            .max_messages_per_batch(64)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| QueueError::Unavailable(format!("pulling from the queue: {e}")))
    }

    /// The next group: the first message that arrives, then whatever
    /// follows within `max_wait` of it, up to `max_events`.
    async fn receive(&self, stream: &mut pull::Stream) -> Result<Vec<Received>, QueueError> {
        let lost = |e: &dyn std::fmt::Display| QueueError::Unavailable(format!("receiving: {e}"));
        let decode = |msg: Message| {
            let part = crate::message::decode(&msg.payload).and_then(|(project, part)| {
                subject_agrees(&msg, project).map(|()| (project, part))
            });
            Received { msg, part }
        };
        let first = match stream.next().await {
            Some(Ok(m)) => decode(m),
            Some(Err(e)) => return Err(lost(&e)),
            None => return Err(lost(&"the pull ended")),
        };
        let count = |r: &Received| r.part.as_ref().map_or(0, |(_, p)| p.events.len());
        let mut events = count(&first);
        let mut out = vec![first];
        let deadline = tokio::time::Instant::now() + self.cfg.max_wait;
        while events < self.cfg.max_events {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(m))) => {
                    let r = decode(m);
                    events += count(&r);
                    out.push(r);
                }
                // Apply what arrived; the broken pull is noticed next time.
                Ok(Some(Err(_)) | None) | Err(_) => break,
            }
        }
        Ok(out)
    }

    async fn apply(&self, received: Vec<Received>) {
        let mut groups: BTreeMap<ProjectId, Vec<(Message, QueuedPart)>> = BTreeMap::new();
        for r in received {
            match r.part {
                Ok((project, part)) => groups.entry(project).or_default().push((r.msg, part)),
                Err(e) => self.failed(&r.msg, &e).await,
            }
        }
        for (project, group) in groups {
            let (msgs, parts): (Vec<Message>, Vec<QueuedPart>) = group.into_iter().unzip();
            match self.transaction(project, &msgs, &parts).await {
                Ok(()) => {}
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e.detail(), project = project.0,
                        "ingest worker: database unavailable; messages released");
                    for m in &msgs {
                        self.release(m).await;
                    }
                }
                Err(e) if msgs.len() == 1 => self.failed(&msgs[0], &e).await,
                Err(e) => {
                    tracing::warn!(error = %e, project = project.0, parts = msgs.len(),
                        "ingest worker: a group failed; applying its parts one by one");
                    for (m, p) in msgs.iter().zip(parts) {
                        match self
                            .transaction(project, std::slice::from_ref(m), &[p])
                            .await
                        {
                            Ok(()) => {}
                            Err(e) if e.is_transient() => self.release(m).await,
                            Err(e) => self.failed(m, &e).await,
                        }
                    }
                }
            }
        }
    }

    /// Applies `parts` in one transaction and acknowledges `msgs`.
    async fn transaction(
        &self,
        project: ProjectId,
        msgs: &[Message],
        parts: &[QueuedPart],
    ) -> Result<(), QueueError> {
        let events: usize = parts.iter().map(|p| p.events.len()).sum();
        let span = tracing::info_span!(
            "ingest_worker_transaction",
            project = project.0,
            parts = parts.len(),
            events
        );
        {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            for m in msgs {
                if let Some(cx) = crate::trace_context(m.headers.as_ref()) {
                    span.add_link(cx);
                }
            }
        }
        let outcomes = self
            .hot
            .apply_queued(project, parts)
            .instrument(span)
            .await?;
        let c = &self.counters;
        c.transactions.fetch_add(1, Ordering::Relaxed);
        c.parts.fetch_add(parts.len() as u64, Ordering::Relaxed);
        for o in &outcomes {
            c.accepted.fetch_add(o.accepted, Ordering::Relaxed);
            c.duplicates.fetch_add(o.duplicates, Ordering::Relaxed);
        }
        for m in msgs {
            if let Err(e) = m.ack().await {
                // Committed: a redelivery finds it applied.
                tracing::warn!(error = %e, "ingest worker: an ack was lost");
            }
        }
        Ok(())
    }

    async fn release(&self, m: &Message) {
        self.counters.released.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = m.ack_with(AckKind::Nak(Some(self.cfg.retry_delay))).await {
            tracing::warn!(error = %e, "ingest worker: a release was lost (redelivered after ack_wait)");
        }
    }

    /// A message that failed for a reason other than an outage: released
    /// again, or dead-lettered once delivered `dead_letter_after` times.
    async fn failed(&self, m: &Message, e: &QueueError) {
        let delivered = m.info().map_or(1, |i| i.delivered);
        // Dead-lettered only for failing on its own: not while the
        // database takes no writes at all, whatever the error said.
        if delivered >= self.cfg.dead_letter_after && !self.hot.takes_writes().await {
            tracing::warn!(error = %e, delivered, subject = %m.subject,
                "ingest worker: a message failed while the database takes no writes; released");
            self.release(m).await;
            return;
        }
        if delivered < self.cfg.dead_letter_after {
            tracing::warn!(error = %e, delivered, subject = %m.subject,
                "ingest worker: a message failed; released for another try");
            self.release(m).await;
            return;
        }
        match self.dead_letter(m, &e.to_string(), delivered).await {
            Ok(()) => {
                self.counters.dead_letters.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, delivered, subject = %m.subject,
                    "ingest worker: message moved to the dead letters");
                if let Err(e) = m.ack().await {
                    tracing::warn!(error = %e, "ingest worker: a dead letter's ack was lost");
                }
            }
            Err(err) => {
                tracing::warn!(error = %err.detail(), "ingest worker: dead letter not stored; released");
                self.release(m).await;
            }
        }
    }

    async fn dead_letter(
        &self,
        m: &Message,
        reason: &str,
        delivered: i64,
    ) -> Result<(), QueueError> {
        let (project, batch) =
            crate::subject_parts(m.subject.as_str()).unwrap_or(("unknown", "unknown"));
        let mut h = crate::trace_of(m.headers.as_ref());
        let reason: String = reason.chars().take(1000).collect();
        h.insert(headers::DEAD_REASON, reason.as_str());
        h.insert(headers::DEAD_DELIVERIES, delivered.to_string().as_str());
        h.insert(headers::DEAD_AT, chrono::Utc::now().to_rfc3339().as_str());
        if let Ok(info) = m.info() {
            h.insert(
                "Nats-Msg-Id",
                format!("dead.{}", info.stream_sequence).as_str(),
            );
        }
        self.queue
            .store(
                self.queue.dead_subject(project, batch),
                h,
                m.payload.clone(),
            )
            .await?;
        Ok(())
    }
}

/// The part's project must be the one its subject names
/// (`<stream>.<project>.<batch>`): the api publishes both from the key's
/// project, so a message whose two disagree was not published by it, and
/// is refused (dead-lettered) instead of writing into the body's project.
fn subject_agrees(msg: &Message, project: ProjectId) -> Result<(), QueueError> {
    match crate::subject_parts(msg.subject.as_str()) {
        Some((p, _)) if p == project.0.to_string() => Ok(()),
        _ => Err(QueueError::Decode(format!(
            "the subject {} does not name the part's project {project}",
            msg.subject
        ))),
    }
}
