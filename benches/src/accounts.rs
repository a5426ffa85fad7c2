//! PostgreSQL's accounts of a load: what each statement of it cost, in CPU,
//! WAL bytes and full-page images, per million events.
//!
//! Per statement from `pg_stat_statements` (when the server preloads it, as
//! the cluster `make bench` starts does): calls, execution time, WAL bytes
//! and full-page images, recorded when each statement ends. Totals from the
//! server: WAL bytes as the distance the WAL insert position moved, CPU from
//! the kernel's accounts of every `postgres` process. `pg_stat_statements`
//! has no CPU column; each party's CPU is the total apportioned by its share
//! of execution time (on 2 cores under 8 clients, a statement's time is
//! mostly CPU or waiting for one, both of which the share reflects).

use std::time::Instant;

use serde::Serialize;
use sqlx::PgPool;

use crate::error::Result;
use crate::procs;

/// One kind of statement's share of a load, per million events.
#[derive(Debug, Clone, Serialize)]
pub struct Party {
    pub name: String,
    pub calls: u64,
    pub exec_secs: f64,
    pub cpu_secs: f64,
    pub wal_bytes: f64,
    pub wal_fpi: f64,
}

/// What one load cost PostgreSQL.
#[derive(Debug, Clone, Serialize)]
pub struct Accounts {
    pub load: String,
    pub events: u64,
    pub secs: f64,
    pub events_per_s: f64,
    /// PostgreSQL CPU seconds per million events.
    pub postgres_cpu: f64,
    /// WAL bytes per event (the WAL insert position's move).
    pub wal_bytes_per_event: f64,
    /// Full-page images per 1,000 events (`pg_stat_statements`; `None`
    /// without it).
    pub fpi_per_1000: Option<f64>,
    /// Per kind of statement, per million events; empty without
    /// `pg_stat_statements`.
    pub parties: Vec<Party>,
}

/// The statement kinds the accounts tell apart, by what their text names.
/// The first match wins.
const KINDS: &[(&str, &str)] = &[
    ("pg_advisory", "day and claim locks"),
    ("event_ids", "dedup claim"),
    ("COPY events", "events COPY"),
    ("user_first_seen", "first-seen upkeep"),
    ("bench_baseline", "\\copy"),
    ("bench_peer", "INSERT … ON CONFLICT"),
    ("api_keys", "key lookup"),
    ("COMMIT", "commit"),
    ("BEGIN", "begin"),
];

fn kind(query: &str) -> &'static str {
    let head: String = query.chars().take(400).collect();
    KINDS
        .iter()
        .find(|(needle, _)| head.contains(needle))
        .map_or("other", |(_, name)| name)
}

/// True when the database can keep per-statement accounts: the server
/// preloads `pg_stat_statements` (the extension is then created here).
pub async fn enable_statements(pool: &PgPool) -> Result<bool> {
    let preloaded: String =
        sqlx::query_scalar("SELECT current_setting('shared_preload_libraries')")
            .fetch_one(pool)
            .await?;
    if !preloaded.contains("pg_stat_statements") {
        tracing::warn!(
            "the server does not preload pg_stat_statements: no per-statement accounts \
             (make bench starts a cluster that does)"
        );
        return Ok(false);
    }
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(pool)
        .await?;
    Ok(true)
}

/// A load being measured: the counters at its start.
#[derive(Debug)]
pub struct Meter {
    statements: bool,
    lsn: i64,
    cpu: f64,
    started: Instant,
}

impl Meter {
    /// Resets the per-statement counters and reads the totals.
    pub async fn start(pool: &PgPool, statements: bool) -> Result<Self> {
        if statements {
            sqlx::query("SELECT pg_stat_statements_reset()")
                .execute(pool)
                .await?;
        }
        Ok(Self {
            statements,
            lsn: wal_lsn(pool).await?,
            cpu: procs::cpu_secs_named("postgres"),
            started: Instant::now(),
        })
    }

    /// The load's accounts: `events` were sent in the time since
    /// [`Meter::start`] (or in `secs`, when the caller timed the load
    /// itself).
    pub async fn finish(
        self,
        pool: &PgPool,
        load: &str,
        events: u64,
        secs: Option<f64>,
    ) -> Result<Accounts> {
        let secs = secs.unwrap_or_else(|| self.started.elapsed().as_secs_f64());
        let cpu = procs::cpu_secs_named("postgres") - self.cpu;
        let wal = (wal_lsn(pool).await? - self.lsn) as f64;
        let per_m = 1e6 / events.max(1) as f64;
        let mut parties: Vec<Party> = Vec::new();
        let mut fpi = None;
        if self.statements {
            let rows: Vec<(String, i64, f64, i64, i64)> = sqlx::query_as(
                "SELECT query, calls, total_exec_time, wal_bytes::int8, wal_fpi
                   FROM pg_stat_statements
                  WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                    AND query NOT LIKE '%pg_stat_statements%'",
            )
            .fetch_all(pool)
            .await?;
            let total_ms: f64 = rows.iter().map(|r| r.2).sum();
            for (query, calls, ms, wal_bytes, wal_fpi) in rows {
                let name = kind(&query);
                let at = match parties.iter().position(|p| p.name == name) {
                    Some(i) => i,
                    None => {
                        parties.push(Party {
                            name: name.to_owned(),
                            calls: 0,
                            exec_secs: 0.0,
                            cpu_secs: 0.0,
                            wal_bytes: 0.0,
                            wal_fpi: 0.0,
                        });
                        parties.len() - 1
                    }
                };
                let p = &mut parties[at];
                p.calls += calls as u64;
                p.exec_secs += ms / 1e3 * per_m;
                p.cpu_secs += if total_ms > 0.0 {
                    cpu * ms / total_ms
                } else {
                    0.0
                } * per_m;
                p.wal_bytes += wal_bytes as f64 * per_m;
                p.wal_fpi += wal_fpi as f64 * per_m;
            }
            parties.sort_by(|a, b| b.cpu_secs.total_cmp(&a.cpu_secs));
            fpi = Some(parties.iter().map(|p| p.wal_fpi).sum::<f64>() / 1e3);
        }
        Ok(Accounts {
            load: load.to_owned(),
            events,
            secs,
            events_per_s: events as f64 / secs.max(1e-9),
            postgres_cpu: cpu * per_m,
            wal_bytes_per_event: wal / events.max(1) as f64,
            fpi_per_1000: fpi,
            parties,
        })
    }
}

async fn wal_lsn(pool: &PgPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::int8")
            .fetch_one(pool)
            .await?,
    )
}

/// The accounts of several loads as one markdown table, a row per party.
pub fn markdown(loads: &[&Accounts]) -> String {
    let mut o = String::new();
    o.push_str(
        "| load | statement | calls | CPU s / M events | exec s / M | WAL bytes / event | full-page images / 1,000 events |\n",
    );
    o.push_str("|---|---|---:|---:|---:|---:|---:|\n");
    for a in loads {
        let fpi = a
            .fpi_per_1000
            .map_or_else(|| "n/a".to_owned(), |f| format!("{f:.1}"));
        o.push_str(&format!(
            "| **{}** ({:.0} events/s) | **all** | | **{:.1}** | | **{:.0}** | **{fpi}** |\n",
            a.load, a.events_per_s, a.postgres_cpu, a.wal_bytes_per_event
        ));
        for p in &a.parties {
            o.push_str(&format!(
                "| | {} | {} | {:.1} | {:.1} | {:.0} | {:.1} |\n",
                p.name,
                p.calls,
                p.cpu_secs,
                p.exec_secs,
                p.wal_bytes / 1e6,
                p.wal_fpi / 1e3
            ));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_told_apart_by_what_they_name() {
        assert_eq!(
            kind("INSERT INTO event_ids (project_id, event_id) SELECT"),
            "dedup claim"
        );
        assert_eq!(kind("COPY events (project_id) FROM STDIN"), "events COPY");
        assert_eq!(
            kind("INSERT INTO user_first_seen AS f"),
            "first-seen upkeep"
        );
        assert_eq!(
            kind("SELECT pg_advisory_xact_lock_shared($1, d) FROM event_ids"),
            "day and claim locks"
        );
        assert_eq!(kind("COMMIT"), "commit");
        assert_eq!(kind("SELECT 1"), "other");
    }
}
