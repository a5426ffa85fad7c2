//! The four stats queries, answered three ways on the same events: by
//! Strata over HTTP, by PostgreSQL alone (every event in one identically
//! indexed table) and by DuckDB alone (every event as Parquet), with the
//! definitions of the product contract written as plain SQL. The answers
//! must agree exactly before any time is reported.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::time::Instant;

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::error::{Result, failed};

/// Which stat, with its parameters.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case", tag = "stat")]
pub enum Stat {
    Dau,
    TopEvents {
        limit: u32,
    },
    /// Weekly cohorts followed for `periods` weeks.
    Retention {
        periods: u32,
    },
    /// A funnel over [`FUNNEL_STEPS`] within `window_days`.
    Funnel {
        window_days: u32,
    },
    /// DAU split by a property: `declared` (ADR-043), its values kept in
    /// the rollups, or not, read from every event.
    DauBy {
        property: &'static str,
        declared: bool,
    },
}

/// The bench's funnel: three generated event types of falling frequency.
pub const FUNNEL_STEPS: [&str; 3] = ["page_view", "add_to_cart", "purchase"];

impl Stat {
    /// Whether PostgreSQL alone is asked too (funnels and breakdowns are
    /// compared with DuckDB alone only: the product's claim is about
    /// reading the archive).
    pub fn has_postgres_baseline(&self) -> bool {
        !matches!(self, Stat::Funnel { .. } | Stat::DauBy { .. })
    }

    /// The last day a query reads: a funnel reaches a window past `to`.
    pub fn read_to(&self, to: NaiveDate) -> NaiveDate {
        match self {
            Stat::Funnel { window_days } => to + Duration::days(i64::from(*window_days)),
            _ => to,
        }
    }
}

/// One benchmarked request.
#[derive(Debug, Clone, Serialize)]
pub struct QuerySpec {
    pub name: String,
    #[serde(flatten)]
    pub stat: Stat,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// One cohort row, as Strata reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CohortRow {
    pub cohort: NaiveDate,
    pub size: u64,
    pub retained: Vec<u64>,
}

/// A stat's answer, comparable across systems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Dau(Vec<(NaiveDate, u64)>),
    Top(Vec<(String, u64, u64)>),
    Retention(Vec<CohortRow>),
    /// Users at least at each step.
    Funnel(Vec<u64>),
    /// Per group, its DAU, largest total first.
    Groups(Vec<DauGroup>),
}

/// A group's value (`None`: missing) and its DAU.
pub type DauGroup = (Option<String>, Vec<(NaiveDate, u64)>);

/// Groups by total users (ties by value, missing last), as the contract
/// orders them; every value is shown (the bench's few).
fn order_groups(mut groups: Vec<DauGroup>) -> Vec<DauGroup> {
    let total = |g: &DauGroup| -> u64 { g.1.iter().map(|d| d.1).sum() };
    groups.sort_by(|a, b| {
        total(b)
            .cmp(&total(a))
            .then_with(|| a.0.is_none().cmp(&b.0.is_none()))
            .then_with(|| a.0.cmp(&b.0))
    });
    groups
}

/// What Strata said about where the time went.
#[derive(Debug, Clone, Copy, Default)]
pub struct TierMs {
    pub total: f64,
    pub hot: f64,
    pub cold: f64,
}

/// First run and the median of the warm runs, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timing {
    pub first_ms: f64,
    pub median_ms: f64,
    pub warm_runs: usize,
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Warm runs stop early (after at least 2) once they have taken this long,
/// so that the slow baselines keep the default run within 10 minutes.
const WARM_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs `f` once cold and up to `warm` more times; the timings and the
/// answer (every run must give the same).
pub async fn measure<T, F, Fut>(warm: usize, mut f: F) -> Result<(Timing, T)>
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let first = f(true).await?;
    let first_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::with_capacity(warm);
    let budget = Instant::now();
    for i in 0..warm {
        if i >= 2 && budget.elapsed() > WARM_BUDGET {
            break;
        }
        let started = Instant::now();
        let again = f(false).await?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        if again != first {
            return Err(failed("a warm run answered differently from the first run"));
        }
    }
    Ok((
        Timing {
            first_ms,
            warm_runs: times.len(),
            median_ms: median(times),
        },
        first,
    ))
}

/// The retention window of the contract: week cohorts from `from`'s week to
/// `to`'s, activity up to the last cohort's last tracked week or today.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub first_cohort: NaiveDate,
    pub last_cohort: NaiveDate,
    /// Inclusive.
    pub activity_to: NaiveDate,
    pub today: NaiveDate,
    pub periods: u32,
}

fn monday(d: NaiveDate) -> NaiveDate {
    d - Duration::days(i64::from(d.weekday().num_days_from_monday()))
}

impl Window {
    pub fn new(from: NaiveDate, to: NaiveDate, periods: u32, today: NaiveDate) -> Self {
        let (first_cohort, last_cohort) = (monday(from), monday(to));
        let tracked_to = last_cohort + Duration::days(7 * i64::from(periods) - 1);
        Self {
            first_cohort,
            last_cohort,
            activity_to: tracked_to.min(today).max(first_cohort),
            today,
            periods,
        }
    }

    /// The cohort table from cohort sizes (`k` = -1) and cells (cohort,
    /// `k`, users), zero-filled, future periods left out.
    fn assemble(&self, rows: Vec<(NaiveDate, i64, i64)>) -> Vec<CohortRow> {
        let mut by: HashMap<NaiveDate, (u64, Vec<u64>)> = HashMap::new();
        for (c, k, n) in rows {
            let e = by
                .entry(c)
                .or_insert_with(|| (0, vec![0; self.periods as usize]));
            if k < 0 {
                e.0 = n as u64;
            } else if let Some(slot) = e.1.get_mut(k as usize) {
                *slot = n as u64;
            }
        }
        let mut out = Vec::new();
        let mut c = self.first_cohort;
        while c <= self.last_cohort {
            let (size, mut retained) = by
                .remove(&c)
                .unwrap_or_else(|| (0, vec![0; self.periods as usize]));
            let started = (0..i64::from(self.periods))
                .take_while(|k| c + Duration::days(7 * k) <= self.today)
                .count();
            retained.truncate(started);
            out.push(CohortRow {
                cohort: c,
                size,
                retained,
            });
            c += Duration::days(7);
        }
        out
    }
}

fn sort_top(mut rows: Vec<(String, u64, u64)>, limit: u32) -> Vec<(String, u64, u64)> {
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows.truncate(limit as usize);
    rows
}

fn zero_filled(
    from: NaiveDate,
    to: NaiveDate,
    got: Vec<(NaiveDate, u64)>,
) -> Vec<(NaiveDate, u64)> {
    let got: HashMap<NaiveDate, u64> = got.into_iter().collect();
    from.iter_days()
        .take_while(|d| *d <= to)
        .map(|d| (d, got.get(&d).copied().unwrap_or(0)))
        .collect()
}

fn midnight(d: NaiveDate) -> chrono::DateTime<Utc> {
    d.and_time(NaiveTime::MIN).and_utc()
}

// ---------------------------------------------------------------- Strata

#[derive(Deserialize)]
struct MetaWire {
    ms: f64,
    hot: TierWire,
    cold: TierWire,
}

#[derive(Deserialize)]
struct TierWire {
    ms: f64,
}

#[derive(Deserialize)]
struct DauWire {
    days: Vec<DauPointWire>,
    meta: MetaWire,
}

#[derive(Deserialize)]
struct DauPointWire {
    date: NaiveDate,
    users: u64,
}

#[derive(Deserialize)]
struct TopWire {
    events: Vec<TopEventWire>,
    meta: MetaWire,
}

#[derive(Deserialize)]
struct TopEventWire {
    event_type: String,
    count: u64,
    users: u64,
}

#[derive(Deserialize)]
struct RetentionWire {
    cohorts: Vec<CohortRow>,
    meta: MetaWire,
}

#[derive(Deserialize)]
struct FunnelWire {
    steps: Vec<FunnelStepWire>,
    meta: MetaWire,
}

#[derive(Deserialize)]
struct FunnelStepWire {
    users: u64,
}

#[derive(Deserialize)]
struct DauByWire {
    groups: Vec<DauGroupWire>,
    meta: MetaWire,
}

#[derive(Deserialize)]
struct DauGroupWire {
    kind: String,
    value: Option<String>,
    days: Vec<DauPointWire>,
}

/// Asks a running Strata server.
pub async fn strata(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    q: &QuerySpec,
) -> Result<(Answer, TierMs)> {
    let (path, extra) = match q.stat {
        Stat::Dau => ("dau", String::new()),
        Stat::TopEvents { limit } => ("top-events", format!("&limit={limit}")),
        Stat::Retention { periods } => ("retention", format!("&period=week&periods={periods}")),
        Stat::Funnel { window_days } => (
            "funnel",
            format!(
                "&steps={}&window={}",
                FUNNEL_STEPS.join(","),
                window_days * 86_400
            ),
        ),
        Stat::DauBy { property, .. } => ("dau", format!("&group_by=property:{property}")),
    };
    let res = client
        .get(format!(
            "{base}/v1/stats/{path}?from={}&to={}{extra}",
            q.from, q.to
        ))
        .bearer_auth(key)
        .send()
        .await?;
    if !res.status().is_success() {
        return Err(failed(format!(
            "{} answered {}: {}",
            q.name,
            res.status(),
            res.text().await.unwrap_or_default()
        )));
    }
    let tiers = |m: &MetaWire| TierMs {
        total: m.ms,
        hot: m.hot.ms,
        cold: m.cold.ms,
    };
    Ok(match q.stat {
        Stat::Dau => {
            let w: DauWire = res.json().await?;
            let days = w.days.into_iter().map(|p| (p.date, p.users)).collect();
            (Answer::Dau(days), tiers(&w.meta))
        }
        Stat::TopEvents { .. } => {
            let w: TopWire = res.json().await?;
            let top = w
                .events
                .into_iter()
                .map(|e| (e.event_type, e.count, e.users))
                .collect();
            (Answer::Top(top), tiers(&w.meta))
        }
        Stat::Retention { .. } => {
            let w: RetentionWire = res.json().await?;
            (Answer::Retention(w.cohorts), tiers(&w.meta))
        }
        Stat::Funnel { .. } => {
            let w: FunnelWire = res.json().await?;
            let users = w.steps.iter().map(|s| s.users).collect();
            (Answer::Funnel(users), tiers(&w.meta))
        }
        Stat::DauBy { .. } => {
            let w: DauByWire = res.json().await?;
            if w.groups.iter().any(|g| g.kind == "other") {
                return Err(failed(format!(
                    "{}: more groups than the bench expects",
                    q.name
                )));
            }
            let groups = w
                .groups
                .into_iter()
                .map(|g| {
                    (
                        g.value,
                        g.days.into_iter().map(|p| (p.date, p.users)).collect(),
                    )
                })
                .collect();
            (Answer::Groups(groups), tiers(&w.meta))
        }
    })
}

// ------------------------------------------------------ PostgreSQL alone

/// The baseline table: every event of the run in one table, partitioned by
/// day and indexed exactly like Strata's hot `events`.
pub const PG_TABLE: &str = "bench_baseline.events";

/// `select` over the project's events in `[from, to)`, grouped by its
/// first column.
async fn in_range<T>(
    pool: &PgPool,
    select: &str,
    project: i64,
    (from, to): (chrono::DateTime<Utc>, chrono::DateTime<Utc>),
) -> Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    Ok(sqlx::query_as(&format!(
        "{select} FROM {PG_TABLE} WHERE project_id = $1 AND ts >= $2 AND ts < $3 GROUP BY 1"
    ))
    .bind(project)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?)
}

pub async fn postgres(
    pool: &PgPool,
    project: i64,
    q: &QuerySpec,
    today: NaiveDate,
) -> Result<Answer> {
    let (from, to_excl) = (midnight(q.from), midnight(q.to + Duration::days(1)));
    Ok(match q.stat {
        Stat::Dau => {
            let rows: Vec<(NaiveDate, i64)> = in_range(
                pool,
                "SELECT (ts AT TIME ZONE 'UTC')::date, count(DISTINCT user_id)",
                project,
                (from, to_excl),
            )
            .await?;
            let got = rows.into_iter().map(|(d, n)| (d, n as u64)).collect();
            Answer::Dau(zero_filled(q.from, q.to, got))
        }
        Stat::TopEvents { limit } => {
            let rows: Vec<(String, i64, i64)> = in_range(
                pool,
                "SELECT event_type, count(*), count(DISTINCT user_id)",
                project,
                (from, to_excl),
            )
            .await?;
            let rows = rows
                .into_iter()
                .map(|(t, c, u)| (t, c as u64, u as u64))
                .collect();
            Answer::Top(sort_top(rows, limit))
        }
        Stat::Retention { periods } => {
            let w = Window::new(q.from, q.to, periods, today);
            let rows: Vec<(NaiveDate, i64, i64)> = sqlx::query_as(&format!(
                "WITH firsts AS (
                     SELECT user_id, min(ts) AS first_ts FROM {PG_TABLE}
                      WHERE project_id = $1 GROUP BY user_id),
                 cohort AS (
                     SELECT user_id, date_trunc('week', first_ts AT TIME ZONE 'UTC')::date AS c
                       FROM firsts WHERE first_ts >= $2 AND first_ts < $3),
                 act AS (
                     SELECT DISTINCT user_id, date_trunc('week', ts AT TIME ZONE 'UTC')::date AS w
                       FROM {PG_TABLE} WHERE project_id = $1 AND ts >= $2 AND ts < $4)
                 SELECT c, -1::bigint, count(*) FROM cohort GROUP BY c
                 UNION ALL
                 SELECT c, ((w - c) / 7)::bigint, count(*) FROM cohort JOIN act USING (user_id)
                  WHERE w >= c AND w - c < 7 * $5 GROUP BY 1, 2"
            ))
            .bind(project)
            .bind(midnight(w.first_cohort))
            .bind(midnight(w.last_cohort + Duration::days(7)))
            .bind(midnight(w.activity_to + Duration::days(1)))
            .bind(periods as i32)
            .fetch_all(pool)
            .await?;
            Answer::Retention(w.assemble(rows))
        }
        Stat::Funnel { .. } | Stat::DauBy { .. } => {
            return Err(failed(format!("{}: no PostgreSQL baseline", q.name)));
        }
    })
}

// ---------------------------------------------------------- DuckDB alone

/// Writes every event of `csvs` as Hive-partitioned ZSTD Parquet under
/// `dir` (`date=YYYY-MM-DD/…`), the way a data engineer would lay it out.
pub fn build_parquet(csvs: &[&Path], dir: &Path) -> Result<()> {
    let conn = duckdb::Connection::open_in_memory()?;
    let files = csvs
        .iter()
        .map(|p| format!("'{}'", p.display()))
        .collect::<Vec<_>>()
        .join(", ");
    conn.execute_batch(&format!(
        "SET threads = 2;
         COPY (SELECT project_id, event_id, user_id, event_type,
                      CAST(left(ts, 26) AS TIMESTAMP) AS ts, properties,
                      CAST(left(ts, 10) AS DATE) AS date
                 FROM read_csv([{files}], header = false, quote = '\"', escape = '\"',
                               columns = {{'project_id': 'BIGINT', 'event_id': 'UUID',
                                          'user_id': 'VARCHAR', 'event_type': 'VARCHAR',
                                          'ts': 'VARCHAR', 'properties': 'VARCHAR'}}))
           TO '{}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date))",
        dir.display()
    ))?;
    Ok(())
}

/// A DuckDB database configured like Strata's cold engine.
pub fn duck_connection(threads: u32, memory_limit: &str) -> Result<duckdb::Connection> {
    let conn = duckdb::Connection::open_in_memory()?;
    conn.execute_batch(&format!(
        "SET threads = {threads}; SET memory_limit = '{memory_limit}';"
    ))?;
    Ok(conn)
}

pub fn duckdb(
    conn: &duckdb::Connection,
    dir: &Path,
    project: i64,
    q: &QuerySpec,
    today: NaiveDate,
) -> Result<Answer> {
    let src = format!(
        "read_parquet('{}/**/*.parquet', hive_partitioning = true, hive_types = {{'date': DATE}})",
        dir.display()
    );
    let in_range = |from: NaiveDate, to: NaiveDate| {
        format!("project_id = {project} AND date BETWEEN DATE '{from}' AND DATE '{to}'")
    };
    let date = |s: String| -> duckdb::Result<NaiveDate> {
        NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|e| {
            duckdb::Error::FromSqlConversionFailure(0, duckdb::types::Type::Text, Box::new(e))
        })
    };
    Ok(match q.stat {
        Stat::Dau => {
            let mut st = conn.prepare(&format!(
                "SELECT CAST(date AS VARCHAR), count(DISTINCT user_id) FROM {src}
                  WHERE {} GROUP BY 1",
                in_range(q.from, q.to)
            ))?;
            let got = st
                .query_map([], |r| Ok((date(r.get(0)?)?, r.get::<_, i64>(1)? as u64)))?
                .collect::<duckdb::Result<Vec<_>>>()?;
            Answer::Dau(zero_filled(q.from, q.to, got))
        }
        Stat::TopEvents { limit } => {
            let mut st = conn.prepare(&format!(
                "SELECT event_type, count(*), count(DISTINCT user_id) FROM {src}
                  WHERE {} GROUP BY 1",
                in_range(q.from, q.to)
            ))?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, i64>(2)? as u64,
                    ))
                })?
                .collect::<duckdb::Result<Vec<_>>>()?;
            Answer::Top(sort_top(rows, limit))
        }
        Stat::Retention { periods } => {
            let w = Window::new(q.from, q.to, periods, today);
            let mut st = conn.prepare(&format!(
                "WITH firsts AS (
                     SELECT user_id, min(ts) AS first_ts FROM {src}
                      WHERE project_id = {project} GROUP BY user_id),
                 cohort AS (
                     SELECT user_id, CAST(date_trunc('week', first_ts) AS DATE) AS c FROM firsts
                      WHERE first_ts >= TIMESTAMP '{}' AND first_ts < TIMESTAMP '{}'),
                 act AS (
                     SELECT DISTINCT user_id, CAST(date_trunc('week', ts) AS DATE) AS w FROM {src}
                      WHERE {})
                 SELECT CAST(c AS VARCHAR), -1, count(*) FROM cohort GROUP BY c
                 UNION ALL
                 SELECT CAST(c AS VARCHAR), CAST((w - c) // 7 AS BIGINT), count(*)
                   FROM cohort JOIN act USING (user_id)
                  WHERE w >= c AND w - c < 7 * {periods} GROUP BY 1, 2",
                w.first_cohort,
                w.last_cohort + Duration::days(7),
                in_range(w.first_cohort, w.activity_to),
            ))?;
            let rows = st
                .query_map([], |r| {
                    Ok((date(r.get(0)?)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                })?
                .collect::<duckdb::Result<Vec<_>>>()?;
            Answer::Retention(w.assemble(rows))
        }
        Stat::Funnel { window_days } => {
            Answer::Funnel(duckdb_funnel(conn, &src, project, q, window_days)?)
        }
        Stat::DauBy { property, .. } => {
            let mut st = conn.prepare(&format!(
                "SELECT json_extract_string(properties, '$.{property}') AS v,
                        CAST(date AS VARCHAR), count(DISTINCT user_id) FROM {src}
                  WHERE {} GROUP BY 1, 2",
                in_range(q.from, q.to)
            ))?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        date(r.get(1)?)?,
                        r.get::<_, i64>(2)? as u64,
                    ))
                })?
                .collect::<duckdb::Result<Vec<_>>>()?;
            let mut by: HashMap<Option<String>, Vec<(NaiveDate, u64)>> = HashMap::new();
            for (v, d, n) in rows {
                by.entry(v).or_default().push((d, n));
            }
            let groups = by
                .into_iter()
                .map(|(v, days)| (v, zero_filled(q.from, q.to, days)))
                .collect();
            Answer::Groups(order_groups(groups))
        }
    })
}

/// The funnel of the contract in plain SQL: from every first-step event of
/// the range, the earliest event of each next step strictly after the
/// previous one (ASOF joins), cut at the window; a user's level is their
/// best chain's.
fn duckdb_funnel(
    conn: &duckdb::Connection,
    src: &str,
    project: i64,
    q: &QuerySpec,
    window_days: u32,
) -> Result<Vec<u64>> {
    let read_to = q.stat.read_to(q.to);
    let types = FUNNEL_STEPS
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!(
        "WITH e AS (SELECT user_id, ts, event_type, date FROM {src}
                     WHERE project_id = {project} AND event_type IN ({types})
                       AND date BETWEEN DATE '{}' AND DATE '{read_to}'),
              c1 AS (SELECT user_id, ts AS t1, ts AS t FROM e
                      WHERE event_type = '{}' AND date <= DATE '{}')",
        q.from, FUNNEL_STEPS[0], q.to
    );
    for (i, step) in FUNNEL_STEPS.iter().enumerate().skip(1) {
        let k = i + 1;
        sql.push_str(&format!(
            ", c{k} AS (SELECT c.user_id, c.t1, n.ts AS t, n.ts IS NOT NULL
                             AND n.ts - c.t1 <= INTERVAL {window_days} DAY AS ok{k}
                         {prev_oks}
                          FROM c{i} c ASOF LEFT JOIN
                               (SELECT user_id, ts FROM e WHERE event_type = '{step}') n
                            ON c.user_id = n.user_id AND c.t < n.ts)",
            prev_oks = (2..k).map(|j| format!(", ok{j}")).collect::<String>(),
        ));
    }
    let n = FUNNEL_STEPS.len();
    let level = (2..=n)
        .rev()
        .map(|k| {
            let all = (2..=k)
                .map(|j| format!("ok{j}"))
                .collect::<Vec<_>>()
                .join(" AND ");
            format!("WHEN {all} THEN {k}")
        })
        .collect::<Vec<_>>()
        .join(" ");
    sql.push_str(&format!(
        " SELECT level, count(*) FROM (
              SELECT user_id, max(CASE {level} ELSE 1 END) AS level FROM c{n} GROUP BY user_id)
           GROUP BY level"
    ));
    let mut st = conn.prepare(&sql)?;
    let mut users = vec![0u64; n];
    for row in st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
        let (level, count) = row?;
        for slot in users.iter_mut().take(level as usize) {
            *slot += count as u64;
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_and_cohort_table_follow_the_contract() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(); // a Thursday
        let w = Window::new(today - Duration::days(20), today, 4, today);
        assert_eq!(w.first_cohort.to_string(), "2026-11-02");
        assert_eq!(w.last_cohort.to_string(), "2026-11-23");
        assert_eq!(w.activity_to, today);
        let c0 = w.first_cohort;
        let rows = vec![(c0, -1, 10), (c0, 0, 10), (c0, 2, 4)];
        let table = w.assemble(rows);
        assert_eq!(table.len(), 4);
        assert_eq!(table[0].retained, vec![10, 0, 4, 0]);
        assert_eq!(table[0].size, 10);
        // The last cohort's later weeks have not started.
        assert_eq!(table[3].retained, vec![0]);
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), 2.5);
    }
}
