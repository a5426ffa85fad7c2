//! The seed design as a peer baseline: how the original documents' FastAPI
//! service would write. The same request bodies from the same number of
//! clients; each client parses a body (as that service would) and sends the
//! batch as one `INSERT … ON CONFLICT (event_id) DO NOTHING` into a table
//! whose primary key is the event id, with an index on the time for its
//! queries. One statement per batch, so one transaction and one durable
//! commit per batch, as in Strata. It does less: no per-project scope, no
//! first-seen upkeep, no day partitions, no HTTP, no rate limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use strata_model::{IngestLimits, parse_batch};
use uuid::Uuid;

use crate::data::Body;
use crate::error::{Result, failed};
use crate::load::LoadStats;

/// The peer's table.
pub const TABLE: &str = "bench_peer.events";

/// Creates the peer's schema and table in the database of `pool`.
pub async fn create(pool: &PgPool) -> Result<()> {
    sqlx::raw_sql(
        "CREATE SCHEMA IF NOT EXISTS bench_peer;
         CREATE TABLE bench_peer.events (
             event_id    uuid PRIMARY KEY,
             user_id     text NOT NULL,
             event_type  text NOT NULL,
             ts          timestamptz NOT NULL,
             properties  jsonb,
             received_at timestamptz NOT NULL DEFAULT now());
         CREATE INDEX ON bench_peer.events (ts);",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Sends `bodies` from `clients` connections to `url`; every event must be
/// stored (the data holds no duplicates).
pub async fn send(url: &str, bodies: Arc<Vec<Body>>, clients: usize) -> Result<LoadStats> {
    let pool = PgPoolOptions::new()
        .max_connections(clients.max(1) as u32)
        .connect(url)
        .await?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients.max(1) {
        let (pool, bodies, next) = (pool.clone(), Arc::clone(&bodies), Arc::clone(&next));
        tasks.spawn(async move {
            let mut events = 0u64;
            let limits = IngestLimits::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let batch = parse_batch(&body.bytes, &limits, Utc::now())
                    .map_err(|e| failed(format!("peer: {e}")))?;
                let n = batch.events.len();
                let mut ids: Vec<Uuid> = Vec::with_capacity(n);
                let mut users: Vec<&str> = Vec::with_capacity(n);
                let mut types: Vec<&str> = Vec::with_capacity(n);
                let mut times: Vec<DateTime<Utc>> = Vec::with_capacity(n);
                let mut props: Vec<Option<&str>> = Vec::with_capacity(n);
                for e in &batch.events {
                    ids.push(e.event_id.as_uuid());
                    users.push(e.user_id.as_str());
                    types.push(e.event_type.as_str());
                    times.push(e.timestamp.as_datetime());
                    props.push(e.properties.as_json());
                }
                let stored = sqlx::query(
                    "INSERT INTO bench_peer.events (event_id, user_id, event_type, ts, properties)
                     SELECT id, u, t, ts, p::jsonb
                       FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])
                            AS b(id, u, t, ts, p)
                     ON CONFLICT (event_id) DO NOTHING",
                )
                .bind(&ids)
                .bind(&users)
                .bind(&types)
                .bind(&times)
                .bind(&props)
                .execute(&pool)
                .await?
                .rows_affected();
                if stored != n as u64 {
                    return Err(failed(format!("peer stored {stored} of {n} events")));
                }
                events += stored;
            }
            Ok::<_, crate::BenchError>(events)
        });
    }
    let mut total = LoadStats::default();
    while let Some(done) = tasks.join_next().await {
        total.events += done.map_err(|e| failed(format!("peer client panicked: {e}")))??;
    }
    total.secs = started.elapsed().as_secs_f64();
    total.batches = bodies.len() as u64;
    pool.close().await;
    Ok(total)
}
