//! The lake catalog (ADR-041): its share of the archive commits, and the
//! query set's DAU and top-events queries run by DuckDB 1.5.5 (PyPI, the
//! readers' virtualenv of `scripts/ensure-tools.sh`) through the catalog
//! beside the same DuckDB over a glob of the same objects.

use super::*;
use crate::report::{LakeQuery, LakeResult};

impl Bench<'_> {
    pub(super) async fn lake(&self) -> Result<LakeResult> {
        let (commit_secs, lake_secs, commits): (f64, f64, i64) = sqlx::query_as(
            "SELECT coalesce(sum(commit_seconds), 0), coalesce(sum(lake_seconds), 0),
                    count(*) FILTER (WHERE commit_seconds > 0)
               FROM archive_runs",
        )
        .fetch_one(&self.pool)
        .await?;
        let files: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM strata_lake.ducklake_data_file WHERE end_snapshot IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        let env = |k: &str| {
            std::env::var(k)
                .map_err(|_| failed(format!("{k} is not set (scripts/ensure-tools.sh)")))
        };
        let python = env("STRATA_TEST_READERS_PYTHON")?;
        let s3 = &self.cfg.s3;
        let prefix = self.cold_url.trim_end_matches('/');
        let queries: Vec<(String, String)> = self
            .query_specs()
            .into_iter()
            .filter_map(|q| {
                let filter = format!(
                    "project_id = {} AND date BETWEEN DATE '{}' AND DATE '{}'",
                    self.project, q.from, q.to
                );
                let sql = match q.stat {
                    Stat::Dau => format!(
                        "SELECT date, count(DISTINCT user_id) FROM {{src}} WHERE {filter} GROUP BY 1"
                    ),
                    Stat::TopEvents { limit } => format!(
                        "SELECT event_type, count(*) AS n, count(DISTINCT user_id) FROM {{src}} \
                         WHERE {filter} GROUP BY 1 ORDER BY n DESC, 1 LIMIT {limit}"
                    ),
                    Stat::Retention { .. } | Stat::Funnel { .. } | Stat::DauBy { .. } => {
                        return None;
                    }
                };
                Some((q.name, sql))
            })
            .collect();
        let script = format!(
            r#"import json, statistics, time, duckdb
con = duckdb.connect()
con.execute("SET threads = 2")
for e in ("STRATA_TEST_DUCKDB_HTTPFS", "STRATA_TEST_DUCKDB_DUCKLAKE", "STRATA_TEST_DUCKDB_POSTGRES"):
    con.execute(f"LOAD '{{__import__('os').environ[e]}}'")
con.execute("""CREATE SECRET s (TYPE s3, KEY_ID '{key}', SECRET '{secret}', REGION '{region}',
               ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false)""")
con.execute("ATTACH 'ducklake:postgres:{db}' AS strata (METADATA_SCHEMA 'strata_lake', READ_ONLY)")
sources = {{
    "glob": "read_parquet('{prefix}/events/project_id={project}/*/*.parquet', hive_partitioning = true, hive_types = {{'date': DATE}})",
    "lake": "strata.events",
}}
out = []
for name, sql in {queries}:
    times = {{"glob": [], "lake": []}}
    answers = {{}}
    for run in range({runs}):
        for mode in (("glob", "lake") if run % 2 == 0 else ("lake", "glob")):
            started = time.perf_counter()
            rows = con.sql(sql.replace("{{src}}", sources[mode])).fetchall()
            times[mode].append((time.perf_counter() - started) * 1000)
            answers[mode] = sorted(map(str, rows))
    out.append([name, statistics.median(times["glob"][1:]), statistics.median(times["lake"][1:]),
                answers["glob"] == answers["lake"]])
print(json.dumps(out))
"#,
            key = s3.access_key_id,
            secret = s3.secret_access_key,
            region = s3.region,
            endpoint = s3.endpoint.trim_start_matches("http://"),
            db = self.db_url,
            project = self.project,
            queries = serde_json::to_string(&queries)?,
            runs = self.cfg.warm_runs.max(2) + 1,
        );
        let out = tokio::process::Command::new(python)
            .arg("-c")
            .arg(&script)
            .output()
            .await?;
        if !out.status.success() {
            return Err(failed(format!(
                "DuckDB through the lake catalog failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let rows: Vec<(String, f64, f64, bool)> =
            serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())?;
        Ok(LakeResult {
            commits: commits as u64,
            files: files as u64,
            commit_secs,
            lake_secs,
            share: lake_secs / commit_secs.max(1e-9),
            queries: rows
                .into_iter()
                .map(|(name, glob_ms, lake_ms, answers_equal)| LakeQuery {
                    name,
                    glob_ms,
                    lake_ms,
                    ratio: lake_ms / glob_ms.max(1e-9),
                    answers_equal,
                })
                .collect(),
        })
    }
}
