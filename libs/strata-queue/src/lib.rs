//! Queue-mode ingest (ADR-034): `POST /v1/events` publishes a batch's valid
//! events to a NATS JetStream stream and answers 202 once JetStream
//! acknowledged them; `strata-api ingest-worker` drains the stream into
//! PostgreSQL in large transactions with the same exact dedup.
//!
//! Subjects are `<stream>.<project id>.<batch id>` (every part of a batch
//! on its batch's subject, so "is it still queued?" is one lookup), dead
//! letters `<stream>_DLQ.<project id>.<batch id>`. The stream keeps
//! messages until a worker acknowledges them (work-queue retention) and
//! refuses new ones past its limits (discard new), so a full or absent
//! queue is a 503, never a silent drop.

mod error;
pub mod message;
mod worker;

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use strata_model::ProjectId;
use tokio::sync::OnceCell;
use uuid::Uuid;

pub use error::QueueError;
pub use message::OutgoingBatch;
pub use worker::{Worker, WorkerConfig, WorkerReport};

/// Headers on every message beside the payload.
pub mod headers {
    /// Why a message was dead-lettered.
    pub const DEAD_REASON: &str = "Strata-Dead-Reason";
    /// How many times it was delivered before that.
    pub const DEAD_DELIVERIES: &str = "Strata-Dead-Deliveries";
    /// When it was dead-lettered (RFC 3339).
    pub const DEAD_AT: &str = "Strata-Dead-At";
}

/// Where the queue is and its limits.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// `nats://host:port`.
    pub url: String,
    /// The stream's name; its dead letters go to `<stream>_DLQ`.
    pub stream: String,
    /// Limits of the stream: past either, publishes are refused (503).
    pub max_bytes: i64,
    pub max_messages: i64,
    /// Most bytes of events in one message (a batch is split above it).
    pub max_message_bytes: usize,
    /// How long a publish waits for JetStream's acknowledgement.
    pub publish_timeout: Duration,
    /// Replicas of both streams (1 on a single server).
    pub replicas: usize,
    /// Dead letters older than this are deleted by NATS (ADR-037): they
    /// hold whole events, so none is kept forever.
    pub dead_letter_max_age: Duration,
    /// TLS to NATS: the CA that signed the server's certificate (TLS is
    /// then required), and this client's certificate and key when the
    /// server asks for one. User and password, or a token, go in the URL
    /// (`nats://user:password@host:4222`, `nats://token@host:4222`).
    pub tls: QueueTls,
}

/// TLS settings of the connection to NATS (ADR-037).
#[derive(Debug, Clone, Default)]
pub struct QueueTls {
    pub ca: Option<std::path::PathBuf>,
    /// Client certificate and its key (PEM).
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl QueueConfig {
    pub fn dead_letter_stream(&self) -> String {
        format!("{}_DLQ", self.stream)
    }

    fn validate(&self) -> Result<(), QueueError> {
        let name_ok = !self.stream.is_empty()
            && self
                .stream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(QueueError::Invalid(format!(
                "queue stream name {:?}: use letters, digits, '_' and '-'",
                self.stream
            )));
        }
        if self.max_message_bytes < 64 * 1024 {
            return Err(QueueError::Invalid(
                "the queue's message size must be at least 64 KiB (one event may be 32 KiB)".into(),
            ));
        }
        if self.max_bytes <= 0 || self.max_messages <= 0 {
            return Err(QueueError::Invalid(
                "the queue's limits must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// The answer to a queued publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub batch_id: Uuid,
    pub parts: u32,
}

/// The backlog: messages not yet acknowledged by a worker.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, utoipa::ToSchema)]
pub struct Lag {
    pub messages: u64,
    pub bytes: u64,
    /// Age of the oldest message, seconds (0 when empty).
    pub oldest_age_seconds: f64,
    pub dead_letters: u64,
}

/// A dead-lettered message, as the admin API lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream (what replay takes).
    pub seq: u64,
    pub batch_id: String,
    pub reason: String,
    pub deliveries: u64,
    pub dead_at: DateTime<Utc>,
    pub bytes: usize,
}

/// A connection to the queue, for the api (publish, status, admin) and the
/// worker.
#[derive(Debug, Clone)]
pub struct Queue {
    client: async_nats::Client,
    js: jetstream::Context,
    cfg: QueueConfig,
    /// Set once both streams exist with this configuration.
    ready: std::sync::Arc<OnceCell<()>>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(format!("{what}: {e}"))
}

impl Queue {
    /// Connects (in the background: an unreachable server is retried
    /// forever, and calls fail with [`QueueError::Unavailable`] meanwhile)
    /// and creates or updates both streams if NATS answers now.
    pub async fn connect(cfg: QueueConfig) -> Result<Self, QueueError> {
        cfg.validate()?;
        // TLS (`tls://`, STRATA_QUEUE_TLS_CA) needs rustls's process-wide
        // crypto provider, which it cannot pick itself when the dependency
        // tree enables two: ring, as everywhere else here (a second call
        // finds it installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut options = async_nats::ConnectOptions::new()
            .name("strata")
            .retry_on_initial_connect()
            .max_reconnects(None::<usize>);
        // Credentials in the URL (async-nats reads none from it): a user
        // and password, or a token alone.
        let addr: async_nats::ServerAddr = cfg
            .url
            .parse()
            .map_err(|e| QueueError::Invalid(format!("STRATA_INGEST_QUEUE: {e}")))?;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        match (addr.username(), addr.password()) {
            (Some(user), Some(pass)) => {
                options = options.user_and_password(decode(user), decode(pass))
            }
            (Some(token), None) => options = options.token(decode(token)),
            _ => {}
        }
        if let Some(ca) = &cfg.tls.ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &cfg.tls.client {
            options = options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        let client = options
            .connect(cfg.url.as_str())
            .await
            .map_err(|e| QueueError::Invalid(format!("STRATA_INGEST_QUEUE: {e}")))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(cfg.publish_timeout)
            .build(client.clone());
        let q = Self {
            client,
            js,
            cfg,
            ready: Default::default(),
        };
        // A server that answers is normally connected within milliseconds:
        // wait that long, so the streams exist when this returns.
        let until = std::time::Instant::now() + q.cfg.publish_timeout;
        while !q.is_connected() && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Err(e) = q.ensure_streams().await {
            tracing::warn!(error = %e.detail(), "queue streams not ready yet; retried on use");
        }
        Ok(q)
    }

    fn connected(&self) -> Result<(), QueueError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            other => Err(QueueError::Unavailable(format!(
                "NATS connection {other:?}"
            ))),
        }
    }

    /// Creates or updates the stream and its dead-letter stream with the
    /// configured settings (idempotent; once per process when it works).
    pub async fn ensure_streams(&self) -> Result<(), QueueError> {
        self.connected()?;
        self.ready
            .get_or_try_init(|| async {
                let main = stream::Config {
                    name: self.cfg.stream.clone(),
                    subjects: vec![format!("{}.*.*", self.cfg.stream)],
                    retention: stream::RetentionPolicy::WorkQueue,
                    discard: stream::DiscardPolicy::New,
                    max_bytes: self.cfg.max_bytes,
                    max_messages: self.cfg.max_messages,
                    storage: stream::StorageType::File,
                    num_replicas: self.cfg.replicas,
                    duplicate_window: Duration::from_secs(120),
                    description: Some("Strata: ingest batches waiting for a worker".into()),
                    ..Default::default()
                };
                let dlq = stream::Config {
                    name: self.cfg.dead_letter_stream(),
                    subjects: vec![format!("{}.*.*", self.cfg.dead_letter_stream())],
                    retention: stream::RetentionPolicy::Limits,
                    discard: stream::DiscardPolicy::New,
                    max_bytes: self.cfg.max_bytes,
                    max_age: self.cfg.dead_letter_max_age,
                    storage: stream::StorageType::File,
                    num_replicas: self.cfg.replicas,
                    description: Some("Strata: ingest messages a worker could not apply".into()),
                    ..Default::default()
                };
                for c in [main, dlq] {
                    self.js
                        .create_or_update_stream(c)
                        .await
                        .map_err(|e| unavailable("creating the queue's streams", e))?;
                }
                Ok::<(), QueueError>(())
            })
            .await?;
        Ok(())
    }

    /// `<stream>.<project>.<batch>`: where a batch's parts are published.
    fn subject(&self, project: impl std::fmt::Display, batch: impl std::fmt::Display) -> String {
        format!("{}.{project}.{batch}", self.cfg.stream)
    }

    /// The same in the dead-letter stream.
    pub(crate) fn dead_subject(
        &self,
        project: impl std::fmt::Display,
        batch: impl std::fmt::Display,
    ) -> String {
        format!("{}.{project}.{batch}", self.cfg.dead_letter_stream())
    }

    /// Publishes one message and waits until JetStream stored it.
    pub(crate) async fn store(
        &self,
        subject: String,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<(), QueueError> {
        self.js
            .publish_with_headers(subject, headers, payload)
            .await
            .map_err(publish_error)?
            .await
            .map_err(publish_error)?;
        Ok(())
    }

    /// Publishes `batch` and returns once JetStream stored every part.
    /// On an error some parts may be stored: their events are applied,
    /// and the client's retry (a new batch) finds them duplicates.
    pub async fn publish(&self, batch: &OutgoingBatch<'_>) -> Result<Receipt, QueueError> {
        self.ensure_streams().await?;
        let payloads = message::encode(batch, self.cfg.max_message_bytes)?;
        let subject = self.subject(batch.project.0, batch.batch_id);
        let trace = trace_headers();
        let mut acks = Vec::with_capacity(payloads.len());
        for (i, payload) in payloads.iter().enumerate() {
            let mut h = trace.clone();
            h.insert("Nats-Msg-Id", format!("{}.{i}", batch.batch_id).as_str());
            let ack = self
                .js
                .publish_with_headers(subject.clone(), h, Bytes::copy_from_slice(payload))
                .await
                .map_err(publish_error)?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(publish_error)?;
        }
        Ok(Receipt {
            batch_id: batch.batch_id,
            parts: u32::try_from(payloads.len()).unwrap_or(u32::MAX),
        })
    }

    async fn stream(&self, name: &str) -> Result<stream::Stream<()>, QueueError> {
        self.ensure_streams().await?;
        self.js
            .get_stream_no_info(name)
            .await
            .map_err(|e| unavailable("opening the queue stream", e))
    }

    /// Whether any part of `batch_id` still waits in the stream.
    pub async fn is_queued(&self, project: ProjectId, batch_id: Uuid) -> Result<bool, QueueError> {
        let s = self.stream(&self.cfg.stream).await?;
        match s
            .get_last_raw_message_by_subject(&self.subject(project.0, batch_id))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => {
                Ok(false)
            }
            Err(e) => Err(unavailable("reading the queue", e)),
        }
    }

    /// `project`'s last dead letter of `batch_id`, if a part of it is
    /// among the dead letters.
    pub async fn dead_letter_of(
        &self,
        project: ProjectId,
        batch_id: Uuid,
    ) -> Result<Option<DeadLetter>, QueueError> {
        let s = self.stream(&self.cfg.dead_letter_stream()).await?;
        match s
            .get_last_raw_message_by_subject(&self.dead_subject(project.0, batch_id))
            .await
        {
            Ok(m) => Ok(Some(dead_letter(&m))),
            Err(e) if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => {
                Ok(None)
            }
            Err(e) => Err(unavailable("reading the dead letters", e)),
        }
    }

    /// The backlog and the dead letters' count.
    pub async fn lag(&self) -> Result<Lag, QueueError> {
        let main = self.stream(&self.cfg.stream).await?;
        let info = main
            .get_info()
            .await
            .map_err(|e| unavailable("reading the queue's state", e))?;
        let dead = self
            .stream(&self.cfg.dead_letter_stream())
            .await?
            .get_info()
            .await
            .map_err(|e| unavailable("reading the dead letters' state", e))?;
        let st = info.state;
        let oldest_age_seconds = if st.messages == 0 {
            0.0
        } else {
            let first_ns = st.first_timestamp.unix_timestamp_nanos();
            let now_ns = i128::from(Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX));
            ((now_ns - first_ns).max(0) as f64) / 1e9
        };
        Ok(Lag {
            messages: st.messages,
            bytes: st.bytes,
            oldest_age_seconds,
            dead_letters: dead.state.messages,
        })
    }

    /// Up to `limit` of `project`'s dead letters from sequence `from` on.
    pub async fn dead_letters(
        &self,
        project: ProjectId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        let s = self.stream(&self.cfg.dead_letter_stream()).await?;
        let mut out = Vec::new();
        let mut seq = from.max(1);
        while out.len() < limit {
            let Some(m) = self.next_dead_letter(&s, project, seq).await? else {
                break;
            };
            seq = m.sequence + 1;
            out.push(dead_letter(&m));
        }
        Ok(out)
    }

    /// `project`'s first dead letter at or after sequence `seq`.
    async fn next_dead_letter(
        &self,
        s: &stream::Stream<()>,
        project: ProjectId,
        seq: u64,
    ) -> Result<Option<jetstream::message::StreamMessage>, QueueError> {
        let filter = format!("{}.{}.*", self.cfg.dead_letter_stream(), project.0);
        match s
            .raw_message_builder()
            .sequence(seq)
            .next_by_subject(filter)
            .send()
            .await
        {
            Ok(m) => Ok(Some(m)),
            Err(e) if matches!(e.kind(), stream::RawMessageErrorKind::NoMessageFound) => Ok(None),
            Err(e) => Err(unavailable("reading the dead letters", e)),
        }
    }

    /// Puts `project`'s dead letter `seq` back on the queue (with the same
    /// subject and payload) and removes it from the dead letters.
    pub async fn replay(&self, project: ProjectId, seq: u64) -> Result<DeadLetter, QueueError> {
        let s = self.stream(&self.cfg.dead_letter_stream()).await?;
        let m = match s.get_raw_message(seq).await {
            Ok(m) => m,
            Err(e) if matches!(e.kind(), stream::RawMessageErrorKind::NoMessageFound) => {
                return Err(QueueError::NotFound(format!("no dead letter {seq}")));
            }
            Err(e) => return Err(unavailable("reading the dead letters", e)),
        };
        let batch = match subject_parts(m.subject.as_str()) {
            Some((owner, batch)) if owner == project.0.to_string() => batch,
            // Another project's: as if absent.
            _ => return Err(QueueError::NotFound(format!("no dead letter {seq}"))),
        };
        self.store(
            self.subject(project.0, batch),
            trace_of(Some(&m.headers)),
            m.payload.clone(),
        )
        .await?;
        s.delete_message(seq)
            .await
            .map_err(|e| unavailable("removing the replayed dead letter", e))?;
        Ok(dead_letter(&m))
    }

    /// Removes `user`'s events from `project`'s dead letters (an erasure,
    /// ADR-037): a dead letter holding any is deleted, and a copy without
    /// them, if anything is left, is stored in its place (a new sequence,
    /// the same subject and headers). A payload that is not a batch part
    /// but names the user anywhere is deleted whole. Returns the dead
    /// letters changed.
    pub async fn purge_user(&self, project: ProjectId, user: &str) -> Result<usize, QueueError> {
        let s = self.stream(&self.cfg.dead_letter_stream()).await?;
        let needle = serde_json::to_string(user)
            .map_err(|e| QueueError::Internal(format!("encoding a user id: {e}")))?;
        let (mut seq, mut changed) = (1, 0);
        while let Some(m) = self.next_dead_letter(&s, project, seq).await? {
            seq = m.sequence + 1;
            if !contains(&m.payload, needle.as_bytes()) {
                continue;
            }
            if let Some(rest) = message::without_user(&m.payload, user) {
                // The copy is a new message: not the deduplication id of
                // the one it replaces.
                let headers: HeaderMap = m
                    .headers
                    .iter()
                    .filter(|(name, _)| AsRef::<str>::as_ref(*name) != "Nats-Msg-Id")
                    .flat_map(|(name, values)| values.iter().map(|v| (name.clone(), v.clone())))
                    .collect();
                self.store(m.subject.to_string(), headers, rest.into())
                    .await?;
            }
            s.delete_message(m.sequence)
                .await
                .map_err(|e| unavailable("removing a dead letter", e))?;
            changed += 1;
        }
        Ok(changed)
    }

    /// Whether the connection to NATS is up now.
    pub fn is_connected(&self) -> bool {
        self.connected().is_ok()
    }
}

fn dead_letter(m: &jetstream::message::StreamMessage) -> DeadLetter {
    let header = |n: &str| m.headers.get(n).map(|v| v.as_str().to_owned());
    DeadLetter {
        seq: m.sequence,
        batch_id: subject_parts(m.subject.as_str())
            .map_or("", |(_, batch)| batch)
            .to_owned(),
        reason: header(headers::DEAD_REASON).unwrap_or_default(),
        deliveries: header(headers::DEAD_DELIVERIES)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        dead_at: header(headers::DEAD_AT)
            .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
        bytes: m.payload.len(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `(project, batch)` of a subject `<stream>.<project>.<batch>` (every
/// subject of both streams has that form: their filters are `<name>.*.*`).
pub(crate) fn subject_parts(subject: &str) -> Option<(&str, &str)> {
    let mut tokens = subject.rsplitn(3, '.');
    let batch = tokens.next()?;
    let project = tokens.next()?;
    Some((project, batch))
}

/// The W3C trace-context headers of `h` alone, for a message that carries
/// another one's payload on (a dead letter, a replay).
pub(crate) fn trace_of(h: Option<&HeaderMap>) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in ["traceparent", "tracestate"] {
        if let Some(v) = h.and_then(|h| h.get(name)) {
            out.insert(name, v.as_str());
        }
    }
    out
}

fn publish_error(e: jetstream::context::PublishError) -> QueueError {
    let text = e.to_string();
    // JetStream's limit errors (maximum messages / bytes exceeded, 10077,
    // 10047 insufficient resources) say "maximum" or "insufficient".
    if text.contains("maximum") || text.contains("insufficient") {
        QueueError::Full(text)
    } else {
        QueueError::Unavailable(format!("publishing to the queue: {text}"))
    }
}

/// The current span's W3C trace context as message headers (empty when
/// tracing export is off).
fn trace_headers() -> HeaderMap {
    use opentelemetry::propagation::{Injector, TextMapPropagator};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    struct Inject<'a>(&'a mut HeaderMap);
    impl Injector for Inject<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(key, value.as_str());
        }
    }
    let mut h = HeaderMap::new();
    let cx = tracing::Span::current().context();
    opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .inject_context(&cx, &mut Inject(&mut h));
    h
}

/// The trace context a message carries, for the worker's span links.
pub(crate) fn trace_context(h: Option<&HeaderMap>) -> Option<opentelemetry::trace::SpanContext> {
    use opentelemetry::propagation::{Extractor, TextMapPropagator};
    use opentelemetry::trace::TraceContextExt;
    struct Extract<'a>(&'a HeaderMap);
    impl Extractor for Extract<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).map(|v| v.as_str())
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent", "tracestate"]
        }
    }
    let h = h?;
    let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&Extract(h));
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// A new batch id.
pub fn new_batch_id() -> Uuid {
    Uuid::new_v4()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_s_trace_context_is_read_back_for_the_worker_s_link() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        let sc = trace_context(Some(&h)).unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(trace_context(Some(&HeaderMap::new())).is_none());
        assert!(trace_context(None).is_none());
        // Without an exporting subscriber the current span has no context,
        // and nothing is injected.
        assert!(trace_headers().get("traceparent").is_none());
    }

    #[test]
    fn settings_that_cannot_work_are_refused_before_connecting() {
        let ok = QueueConfig {
            url: "nats://127.0.0.1:1".into(),
            stream: "S".into(),
            max_bytes: 1,
            max_messages: 1,
            max_message_bytes: 64 * 1024,
            publish_timeout: Duration::from_secs(1),
            replicas: 1,
            dead_letter_max_age: Duration::from_secs(86_400),
            tls: QueueTls::default(),
        };
        assert!(ok.validate().is_ok());
        for bad in [
            QueueConfig {
                stream: "a.b".into(),
                ..ok.clone()
            },
            QueueConfig {
                stream: String::new(),
                ..ok.clone()
            },
            QueueConfig {
                max_message_bytes: 1000,
                ..ok.clone()
            },
            QueueConfig {
                max_bytes: 0,
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(QueueError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
