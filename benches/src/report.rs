//! The run's figures: serialised as JSON, rendered as the markdown section
//! of docs/BENCHMARKS.md, each target with its measured value and verdict.

use serde::{Deserialize, Serialize};

use crate::queries::{QuerySpec, Stat, Timing};

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub cpu: String,
    pub postgres: String,
}

impl Machine {
    pub fn read(postgres: String) -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown".to_owned(), |s| s.trim().to_owned());
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: kib / 1024.0 / 1024.0,
            cpu,
            postgres,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DataInfo {
    pub scale: f64,
    pub days: u32,
    pub users: u32,
    pub history_events: u64,
    /// Events posted to a second project while the archive was measured.
    pub load_events: u64,
    pub late_events: u64,
    pub hot_rows_after_archive: u64,
    pub cold_rows: u64,
    pub cold_files: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestResult {
    pub clients: usize,
    pub batch_events: usize,
    pub events: u64,
    pub strata_secs: f64,
    pub strata_events_per_s: f64,
    pub copy_secs: f64,
    pub copy_events_per_s: f64,
    /// Strata / `psql \copy`; target ≥ 1.0.
    pub ratio: f64,
    pub api_peak_rss_mib: f64,
    /// CPU seconds per million events ingested over HTTP.
    pub cpu_per_million: CpuUse,
    /// PostgreSQL's CPU seconds per million rows of the `\copy`.
    pub copy_postgres_cpu_per_million: f64,
    /// The seed design's writes (`crate::peer`), same bodies and clients.
    pub peer_events_per_s: f64,
    /// Strata / the peer; target ≥ 2.0.
    pub peer_ratio: f64,
    /// PostgreSQL's accounts of Strata's ingest, the copy and the peer.
    pub accounts: Vec<crate::accounts::Accounts>,
    /// Ingest as the dedup window fills.
    pub steady: Option<SteadyResult>,
}

impl IngestResult {
    /// The "Ingest" subsection (also what `strata-bench ingest` prints).
    pub fn markdown(&self, cores: usize) -> String {
        let i = self;
        let mut o = String::new();
        let mut line = |l: String| {
            o.push_str(&l);
            o.push('\n');
        };
        line("### Ingest".into());
        line(String::new());
        line("| | events | seconds | events/s |".into());
        line("|---|---:|---:|---:|".into());
        line(format!(
            "| Strata: HTTP, {} clients × {}-event batches, to commit | {} | {:.1} | {:.0} |",
            i.clients, i.batch_events, i.events, i.strata_secs, i.strata_events_per_s
        ));
        line(format!(
            "| `psql \\copy` of the same rows as CSV into an identically indexed table | {} | {:.1} | {:.0} |",
            i.events, i.copy_secs, i.copy_events_per_s
        ));
        line(format!(
            "| the seed design: one `INSERT … ON CONFLICT (event_id) DO NOTHING` per batch, same bodies and clients | {} | {:.1} | {:.0} |",
            i.events,
            i.events as f64 / i.peer_events_per_s.max(1e-9),
            i.peer_events_per_s
        ));
        line(format!(
            "| **ratios** | | | **{:.2}× the copy, {:.2}× the seed design** |",
            i.ratio, i.peer_ratio
        ));
        line(String::new());
        line(format!(
            "CPU seconds per million events: Strata {:.1} (strata-api {:.1}, PostgreSQL {:.1}) \
             plus {:.1} in the load generator; `\\copy` {:.1} in PostgreSQL. On {} cores \
             that CPU bounds the rate at {:.0} events/s for Strata against {:.0} for the copy.",
            i.cpu_per_million.api + i.cpu_per_million.postgres,
            i.cpu_per_million.api,
            i.cpu_per_million.postgres,
            i.cpu_per_million.client,
            i.copy_postgres_cpu_per_million,
            cores,
            cores as f64 * 1e6
                / (i.cpu_per_million.api + i.cpu_per_million.postgres + i.cpu_per_million.client),
            cores as f64 * 1e6 / i.copy_postgres_cpu_per_million.max(1e-9),
        ));
        line(String::new());
        line(format!(
            "Peak RSS of strata-api under this load: {:.0} MiB.",
            i.api_peak_rss_mib
        ));
        line(String::new());
        line(
            "PostgreSQL's accounts, per statement (`pg_stat_statements`; CPU is the load's \
             PostgreSQL CPU apportioned by execution time; WAL bytes per event is the WAL \
             position's move, the parties' rows are their own WAL):"
                .into(),
        );
        line(String::new());
        let loads: Vec<&crate::accounts::Accounts> = i.accounts.iter().collect();
        line(crate::accounts::markdown(&loads));
        if let Some(st) = &i.steady {
            line(format!(
                "Ingest as the dedup window fills: before each point the idempotency records are \
                 filled with random ids ({} per dedup window: 90 days at the bench's daily rate) \
                 and the first-seen records with users, vacuumed, and checkpointed; then the same \
                 clients post fresh events of today. Full-page images are at their most right \
                 after a checkpoint, so these are the figures of the first minute after one.",
                st.window_ids
            ));
            line(String::new());
            line(
                "| fill | dedup ids | first-seen users | dedup bytes | events/s | PostgreSQL CPU s / M | strata-api CPU s / M | WAL bytes / event | full-page images / 1,000 events |"
                    .into(),
            );
            line("|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into());
            for p in &st.points {
                let a = &p.accounts;
                line(format!(
                    "| {}× | {} | {} | {:.0} MiB | {:.0} | {:.1} | {:.1} | {:.0} | {} |",
                    p.windows,
                    p.dedup_ids,
                    p.first_seen_users,
                    to_mib(p.dedup_bytes),
                    a.events_per_s,
                    a.postgres_cpu,
                    p.api_cpu,
                    a.wal_bytes_per_event,
                    a.fpi_per_1000
                        .map_or_else(|| "n/a".to_owned(), |f| format!("{f:.1}"))
                ));
            }
            line(String::new());
        }
        o
    }
}

/// Ingest with the idempotency and first-seen tables pre-filled: one
/// point per fill, the first with (almost) empty tables.
#[derive(Debug, Clone, Serialize)]
pub struct SteadyResult {
    /// Event ids of one full dedup window at the bench's daily rate (90
    /// days × events a day): the unit of the fills.
    pub window_ids: u64,
    pub points: Vec<SteadyPoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SteadyPoint {
    /// Fill, in dedup windows of the bench (0 = empty).
    pub windows: u32,
    pub dedup_ids: u64,
    pub first_seen_users: u64,
    /// Bytes of the idempotency records with their indexes.
    pub dedup_bytes: u64,
    /// strata-api CPU seconds per million events.
    pub api_cpu: f64,
    pub accounts: crate::accounts::Accounts,
}

impl SteadyResult {
    fn empty(&self) -> Option<&SteadyPoint> {
        self.points.first()
    }

    /// The fullest point's rate and WAL per event over the empty one's.
    pub fn ratios(&self) -> Option<(u32, f64, f64)> {
        let (e, f) = (self.empty()?, self.points.last()?);
        Some((
            f.windows,
            f.accounts.events_per_s / e.accounts.events_per_s,
            f.accounts.wal_bytes_per_event / e.accounts.wal_bytes_per_event.max(1e-9),
        ))
    }
}

/// CPU seconds used by each party of a load.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuUse {
    pub api: f64,
    pub postgres: f64,
    /// The load generator (HTTP clients; bodies were encoded beforehand).
    pub client: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveResult {
    pub rows: u64,
    pub chunks: u64,
    /// The archive run's own duration (its `archive_runs` row).
    pub run_secs: f64,
    pub rows_per_s: f64,
    pub archiver_peak_rss_mib: f64,
    pub ingest_alone_events_per_s: f64,
    pub ingest_during_events_per_s: f64,
    /// 1 - during / alone; target ≤ 0.20.
    pub ingest_drop: f64,
    /// Per-request latency of that ingest load, alone and during the run.
    pub ingest_latency_alone: Latency,
    pub ingest_latency_during: Latency,
    /// A 30-day DAU request every 200 ms beside the load, alone and during.
    pub stats_latency_alone: Latency,
    pub stats_latency_during: Latency,
    pub big_chunk: BigChunk,
}

/// Tail latency of a series of requests, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub requests: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(ms: &[f64]) -> Self {
        let mut v = ms.to_vec();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if v.is_empty() {
                0.0
            } else {
                v[((v.len() - 1) as f64 * q).round() as usize]
            }
        };
        Self {
            requests: v.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: v.last().copied().unwrap_or(0.0),
        }
    }
}

/// A client flooding old days beside the usual load.
#[derive(Debug, Clone, Serialize)]
pub struct FloodResult {
    pub batches: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// The usual load's per-request latency meanwhile.
    pub load_latency: Latency,
}

/// strata-api's resident memory for one long-range request.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    pub request: String,
    /// Resident memory of a fresh server before the request.
    pub api_rss_before_mib: f64,
    /// Its peak while answering (kernel high-water mark).
    pub api_peak_rss_mib: f64,
    pub request_ms: f64,
}

/// Queue-mode ingest (ADR-034) beside direct mode, at the end of the run.
#[derive(Debug, Clone, Serialize)]
pub struct QueueResult {
    /// Events sent to each mode (the same generated days, each into a
    /// project of its own).
    pub events: u64,
    /// Direct mode: 200 after commit.
    pub direct_events_per_s: f64,
    /// Queue mode: events acknowledged (202) by the api, no worker running.
    pub accept_events_per_s: f64,
    /// One worker draining that backlog into PostgreSQL.
    pub drain_events_per_s: f64,
    /// The run's `psql \copy` of the history.
    pub copy_events_per_s: f64,
    /// From a 202 to the batch's status `applied` (visible in stats), one
    /// small batch at a time with a worker idle.
    pub latency: Latency,
    pub worker_max_wait_ms: u64,
}

/// The lake catalog (ADR-041): its share of the archive commits' time, and
/// DuckDB (PyPI's 1.5.5) through it beside the same DuckDB over a glob of
/// the same objects.
#[derive(Debug, Clone, Serialize)]
pub struct LakeResult {
    /// Archive runs that committed, and the files the catalog shows.
    pub commits: u64,
    pub files: u64,
    /// Seconds inside the archive commits' transactions, and the catalog's
    /// part of them; target: share < 5%.
    pub commit_secs: f64,
    pub lake_secs: f64,
    pub share: f64,
    pub queries: Vec<LakeQuery>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LakeQuery {
    pub name: String,
    /// Medians of the warm runs, alternating the two.
    pub glob_ms: f64,
    pub lake_ms: f64,
    /// lake / glob; target ≤ 1.10.
    pub ratio: f64,
    pub answers_equal: bool,
}

/// Compaction of the late-event days, then the erasure of one user over
/// every day (ADR-032, ADR-033), at the end of the run.
#[derive(Debug, Clone, Serialize)]
pub struct LifecycleResult {
    /// Cold days of the project, and those with several files before the
    /// compaction.
    pub cold_days: u64,
    pub compacted_days: u64,
    pub compacted_files: u64,
    pub compacted_rows: u64,
    /// `strata-archiver compact`, start to exit.
    pub compact_secs: f64,
    pub compact_rows_per_s: f64,
    /// The busiest user's events in each tier, and the cold days that may
    /// have held them (the others were skipped by their rollups).
    pub erased_cold_rows: u64,
    pub erased_hot_rows: u64,
    pub erase_days_scanned: u64,
    pub erase_files_rewritten: u64,
    pub erase_rows_rewritten: u64,
    /// `strata-api users erase`, start to exit.
    pub erase_secs: f64,
    pub erase_rows_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BigChunk {
    pub rows: u64,
    pub run_secs: f64,
    pub rows_per_s: f64,
    pub archiver_peak_rss_mib: f64,
    pub archiver_cpu_secs: f64,
    pub postgres_cpu_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StorageResult {
    pub hot_events: u64,
    pub hot_events_bytes: u64,
    pub hot_dedup_bytes: u64,
    pub hot_bytes_per_event: f64,
    pub cold_rows: u64,
    pub cold_bytes: u64,
    pub cold_bytes_per_event: f64,
    /// Cold days with an exact rollup (ADR-027), and its bytes.
    pub rollup_days: u64,
    pub rollup_bytes: u64,
    /// hot / cold; target ≥ 10.
    pub ratio: f64,
    /// The `\copy` baseline table (heap + index), for reference.
    pub baseline_table_bytes_per_event: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    #[serde(flatten)]
    pub spec: QuerySpec,
    pub strata: Timing,
    /// Medians of the warm runs, from each response's `meta`: the whole
    /// request inside the server (`meta.ms`), and each tier's part.
    pub strata_server_ms: f64,
    pub strata_hot_ms: f64,
    pub strata_cold_ms: f64,
    /// None for the stats compared with DuckDB alone only.
    pub postgres: Option<Timing>,
    pub duckdb: Timing,
    /// Strata's warm median / (1.2 × the slower tier's + 50 ms); the
    /// target holds when this is ≤ 1.
    pub vs_slower_tier: f64,
    pub speedup_vs_postgres: Option<f64>,
    pub speedup_vs_duckdb: f64,
    /// All three systems gave the same answer.
    pub answers_equal: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub date: String,
    pub commit: String,
    pub machine: Machine,
    /// The hot layout the events table had (`native-partitions` or
    /// `timescaledb-hypertable`).
    pub layout: String,
    pub data: DataInfo,
    pub ingest: IngestResult,
    pub archive: ArchiveResult,
    pub storage: StorageResult,
    pub queries: Vec<QueryResult>,
    pub memory: MemoryResult,
    pub flood: FloodResult,
    pub lifecycle: LifecycleResult,
    pub queue: QueueResult,
    pub lake: LakeResult,
    pub targets: Vec<Target>,
    pub total_secs: f64,
}

fn target(name: &str, target: &str, measured: String, met: bool) -> Target {
    Target {
        name: name.to_owned(),
        target: target.to_owned(),
        measured,
        met,
    }
}

/// The targets, judged on the run's figures.
pub fn targets(
    ingest: &IngestResult,
    archive: &ArchiveResult,
    storage: &StorageResult,
    queries: &[QueryResult],
    lake: &LakeResult,
) -> Vec<Target> {
    let mut out = vec![
        target(
            "lake catalog's share of the archive commits",
            "< 5%",
            format!(
                "{:.2}% ({:.1} of {:.0} ms)",
                lake.share * 100.0,
                lake.lake_secs * 1e3,
                lake.commit_secs * 1e3
            ),
            lake.share < 0.05,
        ),
        target(
            "ingest vs psql \\copy",
            "≥ 1.0×",
            format!("{:.2}×", ingest.ratio),
            ingest.ratio >= 1.0,
        ),
        target(
            "ingest vs the seed design's INSERT … ON CONFLICT",
            "≥ 2.0×",
            format!("{:.2}×", ingest.peer_ratio),
            ingest.peer_ratio >= 2.0,
        ),
        target(
            "archive throughput",
            "≥ 500k rows/s",
            format!(
                "{:.0}k rows/s ({:.0}k on the big chunk)",
                archive.rows_per_s / 1e3,
                archive.big_chunk.rows_per_s / 1e3
            ),
            archive.rows_per_s >= 500e3,
        ),
        target(
            "ingest drop while archiving",
            "≤ 20%",
            format!("{:.1}%", archive.ingest_drop * 100.0),
            archive.ingest_drop <= 0.20,
        ),
        target(
            "hot / cold bytes per event",
            "≥ 10×",
            format!("{:.1}×", storage.ratio),
            storage.ratio >= 10.0,
        ),
    ];
    if let Some((windows, rate, wal)) = ingest.steady.as_ref().and_then(SteadyResult::ratios) {
        out.push(target(
            &format!("ingest at {windows}× the dedup window vs empty"),
            "≥ 0.8× the rate",
            format!("{rate:.2}×"),
            rate >= 0.8,
        ));
        out.push(target(
            &format!("WAL per event at {windows}× the dedup window vs empty"),
            "≤ 1.5×",
            format!("{wal:.2}×"),
            wal <= 1.5,
        ));
    }
    for q in &lake.queries {
        out.push(target(
            &format!("{}: DuckDB through the lake catalog vs over a glob", q.name),
            "≤ 1.10×, same answer",
            format!("{:.2}× ({:.0} vs {:.0} ms)", q.ratio, q.lake_ms, q.glob_ms),
            q.ratio <= 1.10 && q.answers_equal,
        ));
    }
    for q in queries {
        out.push(target(
            &format!("{}: Strata vs its slower tier", q.spec.name),
            "≤ 1.2 × slower tier + 50 ms",
            format!(
                "{:.0} ms vs {:.0} ms",
                q.strata.median_ms,
                q.strata_hot_ms.max(q.strata_cold_ms)
            ),
            q.vs_slower_tier <= 1.0,
        ));
        if let Some(vs_pg) = q.speedup_vs_postgres
            && q.spec.to - q.spec.from >= chrono::Duration::days(364)
        {
            out.push(target(
                &format!("{}: vs PostgreSQL alone", q.spec.name),
                "≥ 10× faster",
                format!("{vs_pg:.1}×"),
                vs_pg >= 10.0,
            ));
        }
        // Rollups (ADR-027): never slower than DuckDB alone over the same
        // events; long ranges of top events and retention 10× faster; a
        // year of DAU in 20 ms.
        let long = q.spec.to - q.spec.from >= chrono::Duration::days(364);
        // A breakdown by a declared property (ADR-043) answers from the
        // rollups' values: 10× too.
        let (want, at_least) = match q.spec.stat {
            Stat::TopEvents { .. } if long => ("≥ 10× faster", 10.0),
            Stat::Retention { .. } => ("≥ 10× faster", 10.0),
            Stat::DauBy { declared: true, .. } if long => ("≥ 10× faster", 10.0),
            _ => ("≥ 1.0×", 1.0),
        };
        out.push(target(
            &format!("{}: vs DuckDB alone", q.spec.name),
            want,
            format!("{:.2}×", q.speedup_vs_duckdb),
            q.speedup_vs_duckdb >= at_least,
        ));
        if matches!(q.spec.stat, Stat::Dau) && long {
            out.push(target(
                &format!("{}: server time (`meta.ms`)", q.spec.name),
                "≤ 20 ms",
                format!(
                    "{:.0} ms ({:.0} ms at the client)",
                    q.strata_server_ms, q.strata.median_ms
                ),
                q.strata_server_ms <= 20.0,
            ));
        }
        out.push(target(
            &format!("{}: same answer as both baselines", q.spec.name),
            "exact",
            if q.answers_equal {
                "equal"
            } else {
                "DIFFERENT"
            }
            .to_owned(),
            q.answers_equal,
        ));
    }
    out
}

/// One point of the scale curve (`strata-bench --only-queries`): the
/// query set at one `BENCH_SCALE`, against DuckDB alone over the same
/// events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScalePoint {
    pub scale: f64,
    pub layout: String,
    pub date: String,
    pub commit: String,
    pub events: u64,
    pub users: u32,
    pub cold_files: u64,
    pub cold_bytes: u64,
    pub rollup_bytes: u64,
    pub queries: Vec<ScaleQuery>,
}

/// One query at one scale: medians of the warm runs, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleQuery {
    pub name: String,
    pub strata_ms: f64,
    pub strata_server_ms: f64,
    /// The hot tier's part of the server time (`meta.hot.ms`): today's
    /// rows and the late events, read as rows.
    #[serde(default)]
    pub strata_hot_ms: f64,
    pub duckdb_ms: f64,
    pub answers_equal: bool,
}

/// The scale curve's section of docs/BENCHMARKS.md: one row per scale,
/// each time also as a multiple of the smallest scale's, beside the
/// growth of the events.
pub fn scale_markdown(layout: &str, points: &[ScalePoint]) -> String {
    let mut o = String::new();
    let Some(base) = points.first() else {
        return o;
    };
    let names: Vec<&str> = base.queries.iter().map(|q| q.name.as_str()).collect();
    o.push_str(&format!(
        "Hot layout: {layout}. Each scale is its own run (`make bench-scale`): the history \
         ingested over HTTP and archived (30 hot days), late events into 8 archived days, \
         then every query of the set, medians of the warm runs in milliseconds at the client, \
         and in brackets the server's `meta.ms` and its hot part (`meta.hot.ms`: today's rows, \
         8,000 × scale events, and the late events, read as rows; the rest is the plan and the \
         rollups). DuckDB alone over the same events beside it. `×N` is the time as a multiple \
         of the smallest scale's.\n\n"
    ));
    o.push_str("| scale | events | users | Parquet MB | rollup MB |");
    for n in &names {
        o.push_str(&format!(" {n}: Strata | DuckDB | vs DuckDB |"));
    }
    o.push('\n');
    o.push_str("|---:|---:|---:|---:|---:|");
    for _ in &names {
        o.push_str("---:|---:|---:|");
    }
    o.push('\n');
    for p in points {
        let grow = |x: f64, b: f64| if b > 0.0 { x / b } else { 0.0 };
        o.push_str(&format!(
            "| {} | {:.1}M (×{:.1}) | {}k | {:.0} | {:.1} |",
            p.scale,
            p.events as f64 / 1e6,
            grow(p.events as f64, base.events as f64),
            p.users / 1000,
            to_mib(p.cold_bytes),
            to_mib(p.rollup_bytes)
        ));
        for (q, b) in p.queries.iter().zip(&base.queries) {
            o.push_str(&format!(
                " {:.0} ({:.0}; hot {:.0}) ×{:.1} | {:.0} ×{:.1} | {:.1}×{} |",
                q.strata_ms,
                q.strata_server_ms,
                q.strata_hot_ms,
                grow(q.strata_ms, b.strata_ms),
                q.duckdb_ms,
                grow(q.duckdb_ms, b.duckdb_ms),
                grow(q.duckdb_ms, q.strata_ms),
                if q.answers_equal { "" } else { " DIFFERENT" }
            ));
        }
        o.push('\n');
    }
    o
}

/// `points` with `point` in place of any earlier point of its scale,
/// ordered by scale.
pub fn with_point(mut points: Vec<ScalePoint>, point: ScalePoint) -> Vec<ScalePoint> {
    points.retain(|p| p.scale != point.scale);
    points.push(point);
    points.sort_by(|a, b| a.scale.total_cmp(&b.scale));
    points
}

pub(crate) fn to_mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl Report {
    /// The generated section of docs/BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let d = &self.data;
        let i = &self.ingest;
        let a = &self.archive;
        let s = &self.storage;
        let mut o = String::new();
        let mut line = |l: String| {
            o.push_str(&l);
            o.push('\n');
        };
        line(format!(
            "Run {} at commit `{}` on {} cores ({}), {:.1} GiB memory, {}, hot layout **{}**; \
             {:.0} s in all.",
            self.date,
            self.commit,
            m.cores,
            m.cpu,
            m.memory_gib,
            m.postgres,
            self.layout,
            self.total_secs
        ));
        line(String::new());
        line(format!(
            "Data (`BENCH_SCALE={}`): {} events over {} days from {} users (skewed activity, \
             1/rank event types, sessions, ~200-byte properties), then {} late events into \
             archived days; {} more events went to a second project during the archive \
             measurement. The queried project then holds {} rows hot and {} rows cold in {} files.",
            d.scale,
            d.history_events,
            d.days,
            d.users,
            d.late_events,
            d.load_events,
            d.hot_rows_after_archive,
            d.cold_rows,
            d.cold_files
        ));
        line(String::new());
        line("### Targets".into());
        line(String::new());
        line("| | target | measured | |".into());
        line("|---|---|---|---|".into());
        for t in &self.targets {
            line(format!(
                "| {} | {} | {} | {} |",
                t.name,
                t.target,
                t.measured,
                if t.met { "met" } else { "**missed**" }
            ));
        }
        line(String::new());
        line(i.markdown(m.cores));
        line("### Archive".into());
        line(String::new());
        line("| | rows | seconds | rows/s | archiver peak RSS |".into());
        line("|---|---:|---:|---:|---:|".into());
        line(format!(
            "| {} day chunks, PostgreSQL → Parquet → S3 (Garage), ingest running | {} | {:.1} | {:.0} | {:.0} MiB |",
            a.chunks, a.rows, a.run_secs, a.rows_per_s, a.archiver_peak_rss_mib
        ));
        line(format!(
            "| one {}-row chunk | {} | {:.1} | {:.0} | {:.0} MiB |",
            a.big_chunk.rows,
            a.big_chunk.rows,
            a.big_chunk.run_secs,
            a.big_chunk.rows_per_s,
            a.big_chunk.archiver_peak_rss_mib
        ));
        line(String::new());
        line(format!(
            "The big chunk took {:.1} CPU seconds in strata-archiver and {:.1} in PostgreSQL: \
             on {} cores that bounds the archive rate at {:.0} rows/s.",
            a.big_chunk.archiver_cpu_secs,
            a.big_chunk.postgres_cpu_secs,
            m.cores,
            a.big_chunk.rows as f64 * m.cores as f64
                / (a.big_chunk.archiver_cpu_secs + a.big_chunk.postgres_cpu_secs).max(1e-9)
        ));
        line(String::new());
        line(format!(
            "Ingest while the archiver runs: {:.0} events/s, against {:.0} events/s alone \
             (15 s before and 15 s after the archive run): a drop of {:.1}%.",
            a.ingest_during_events_per_s,
            a.ingest_alone_events_per_s,
            a.ingest_drop * 100.0
        ));
        line(String::new());
        line("Waits beside the archive run, under the same ingest load (milliseconds; one client asks for 30 days of DAU every 200 ms; each commit attempt waits at most 500 ms for its lock, doubling per retry up to 4 s):".into());
        line(String::new());
        line("| requests | | n | p50 | p99 | max |".into());
        line("|---|---|---:|---:|---:|---:|".into());
        for (what, when, l) in [
            (
                "ingest batch",
                "same load, no archive run",
                &a.ingest_latency_alone,
            ),
            (
                "ingest batch",
                "during the archive run",
                &a.ingest_latency_during,
            ),
            (
                "DAU 30 days",
                "same load, no archive run",
                &a.stats_latency_alone,
            ),
            (
                "DAU 30 days",
                "during the archive run",
                &a.stats_latency_during,
            ),
        ] {
            line(format!(
                "| {what} | {when} | {} | {:.0} | {:.0} | {:.0} |",
                l.requests, l.p50_ms, l.p99_ms, l.max_ms
            ));
        }
        line(String::new());
        let l = &self.lake;
        line("### Lake catalog".into());
        line(String::new());
        line(format!(
            "The DuckLake catalog (ADR-041) is written inside each archive commit: {:.1} ms of the \
             {:.0} ms that the archive runs which moved chunks ({}) spent in their commit \
             transactions ({:.2}%); it shows {} files.",
            l.lake_secs * 1e3,
            l.commit_secs * 1e3,
            l.commits,
            l.share * 100.0,
            l.files
        ));
        line(String::new());
        line("DuckDB 1.5.5 (PyPI) over the cold tier on S3, through the catalog and over a glob of the project's folder (median ms of the warm runs, alternating):".into());
        line(String::new());
        line("| query | glob | lake catalog | lake / glob | same answer |".into());
        line("|---|---:|---:|---:|---|".into());
        for q in &l.queries {
            line(format!(
                "| {} | {:.0} | {:.0} | {:.2}× | {} |",
                q.name, q.glob_ms, q.lake_ms, q.ratio, q.answers_equal
            ));
        }
        line(String::new());
        line("### Storage".into());
        line(String::new());
        line("| | events | bytes | bytes/event |".into());
        line("|---|---:|---:|---:|".into());
        line(format!(
            "| hot: events heap + TOAST + indexes, plus dedup records | {} | {} + {} | {:.0} |",
            s.hot_events, s.hot_events_bytes, s.hot_dedup_bytes, s.hot_bytes_per_event
        ));
        line(format!(
            "| cold: ZSTD Parquet | {} | {} | {:.1} |",
            s.cold_rows, s.cold_bytes, s.cold_bytes_per_event
        ));
        line(format!(
            "| cold: exact rollups of {} days (users per day and per event type) | {} | {} | {:.2} |",
            s.rollup_days,
            s.cold_rows,
            s.rollup_bytes,
            s.rollup_bytes as f64 / s.cold_rows.max(1) as f64
        ));
        line(format!(
            "| (reference: the `\\copy` table, heap + index, no dedup) | | | {:.0} |",
            s.baseline_table_bytes_per_event
        ));
        line(format!("| **hot / cold** | | | **{:.1}×** |", s.ratio));
        line(String::new());
        line("### Queries".into());
        line(String::new());
        line(
            "Milliseconds: median of the warm runs (first run with an empty cache in brackets). \
             Strata is timed at the client (HTTP included); inside the same request, the \
             server's own time and each tier's are its `meta`."
                .into(),
        );
        line(String::new());
        line("| query | range | Strata | server | hot tier | cold tier | PostgreSQL alone | DuckDB alone | vs PG | vs DuckDB |".into());
        line("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|".into());
        for q in &self.queries {
            let (pg, vs_pg) = match (q.postgres, q.speedup_vs_postgres) {
                (Some(t), Some(x)) => (
                    format!("{:.0} ({:.0})", t.median_ms, t.first_ms),
                    format!("{x:.1}×"),
                ),
                _ => ("–".to_owned(), "–".to_owned()),
            };
            line(format!(
                "| {} | {} – {} | {:.0} ({:.0}) | {:.0} | {:.0} | {:.0} | {pg} | {:.0} ({:.0}) | {vs_pg} | {:.1}× |",
                q.spec.name,
                q.spec.from,
                q.spec.to,
                q.strata.median_ms,
                q.strata.first_ms,
                q.strata_server_ms,
                q.strata_hot_ms,
                q.strata_cold_ms,
                q.duckdb.median_ms,
                q.duckdb.first_ms,
                q.speedup_vs_duckdb
            ));
        }
        line(String::new());
        let r = &self.memory;
        line(format!(
            "Memory of strata-api for {}: {:.0} MiB resident before, {:.0} MiB peak while \
             answering ({:.0} ms). Hot pairs and cohort users stream into DuckDB in batches \
             and cold objects stream to the cache on disk; what remains is DuckDB's working \
             set, capped by `STRATA_DUCKDB_MEMORY_LIMIT` (1GB; it spills beyond).",
            r.request, r.api_rss_before_mib, r.api_peak_rss_mib, r.request_ms
        ));
        line(String::new());
        let f = &self.flood;
        line(format!(
            "Old-days flood: for 10 s a client sent {} batches of 1,000 events on 1,000 distinct \
             past days ({} events accepted: at most 31 new days per batch; {} rejected by index). \
             The usual ingest load beside it: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} \
             requests.",
            f.batches,
            f.accepted,
            f.rejected,
            f.load_latency.p50_ms,
            f.load_latency.p99_ms,
            f.load_latency.max_ms,
            f.load_latency.requests
        ));
        line(String::new());
        let q = &self.queue;
        line(format!(
            "Queue mode (NATS JetStream, ADR-034), {} events into fresh projects: direct ingest \
             {:.0} events/s; queue-mode accept {:.0} events/s ({:.2}× direct, {:.2}× the copy); \
             one worker's drain {:.0} events/s ({:.2}× direct, {:.2}× the copy). From 202 to \
             applied (visible in stats), one 10-event batch at a time: p50 {:.0} ms, p99 {:.0} ms \
             over {} batches (the worker waits up to {} ms for more messages before committing).",
            q.events,
            q.direct_events_per_s,
            q.accept_events_per_s,
            q.accept_events_per_s / q.direct_events_per_s.max(1e-9),
            q.accept_events_per_s / q.copy_events_per_s.max(1e-9),
            q.drain_events_per_s,
            q.drain_events_per_s / q.direct_events_per_s.max(1e-9),
            q.drain_events_per_s / q.copy_events_per_s.max(1e-9),
            q.latency.p50_ms,
            q.latency.p99_ms,
            q.latency.requests,
            q.worker_max_wait_ms
        ));
        line(String::new());
        let l = &self.lifecycle;
        line(format!(
            "Compaction (`strata-archiver compact`): {} of {} cold days had several files (the \
             late events'); {} files, {} rows merged into {} files in {:.1} s ({:.0} rows/s, \
             reading, merging by time, writing, verifying and swapping).",
            l.compacted_days,
            l.cold_days,
            l.compacted_files,
            l.compacted_rows,
            l.compacted_days,
            l.compact_secs,
            l.compact_rows_per_s
        ));
        line(String::new());
        line(format!(
            "Erasure of the busiest user (`strata-api users erase`): {} cold and {} hot rows \
             removed; {} of {} cold days could hold the user (the rest were ruled out by their \
             rollups), {} files ({} rows) rewritten in {:.1} s ({:.0} rows rewritten/s).",
            l.erased_cold_rows,
            l.erased_hot_rows,
            l.erase_days_scanned,
            l.cold_days,
            l.erase_files_rewritten,
            l.erase_rows_rewritten,
            l.erase_secs,
            l.erase_rows_per_s
        ));
        o
    }
}

/// Where the generated section of docs/BENCHMARKS.md for `layout` starts
/// and ends (one section per hot layout); the rest of the file (method,
/// analysis, history of changes) is written by hand.
pub fn markers(layout: &str) -> (String, String) {
    (
        format!(
            "<!-- strata-bench:begin {layout} (generated by `make bench`; edits here are overwritten) -->"
        ),
        format!("<!-- strata-bench:end {layout} -->"),
    )
}

/// `doc` with the generated section of `layout` replaced by `section`
/// (appended, with a title, when `doc` has none yet).
pub fn splice(doc: &str, layout: &str, section: &str) -> String {
    let (begin, end) = markers(layout);
    let generated = format!("{begin}\n{section}{end}");
    match (doc.find(&begin), doc.find(&end)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{generated}{}", &doc[..a], &doc[b + end.len()..])
        }
        _ if doc.trim().is_empty() => {
            format!("# Benchmarks\n\n## Latest run: {layout}\n\n{generated}\n")
        }
        _ => format!(
            "{}\n\n## Latest run: {layout}\n\n{generated}\n",
            doc.trim_end()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_the_generated_section_of_its_layout() {
        let first = splice("", "native-partitions", "one\n");
        assert!(first.starts_with("# Benchmarks"));
        let edited = first.replace(
            "## Latest run: native-partitions",
            "Notes kept.\n\n## Latest run: native-partitions",
        ) + "\nTail kept.\n";
        let both = splice(&edited, "timescaledb-hypertable", "hyper\n");
        let second = splice(&both, "native-partitions", "two\n");
        assert!(second.contains("Notes kept.") && second.contains("Tail kept."));
        assert!(second.contains("two\n") && !second.contains("one\n"));
        assert!(second.contains("## Latest run: timescaledb-hypertable\n\n"));
        assert!(second.contains("hyper\n"));
        for layout in ["native-partitions", "timescaledb-hypertable"] {
            assert_eq!(second.matches(&markers(layout).0).count(), 1);
        }
    }
}
