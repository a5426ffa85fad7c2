//! Operator views: what each project holds in each tier.

use std::collections::BTreeMap;

use crate::Chunk;
use crate::{Store, StoreError};

/// One project's footprint in both tiers. Hot bytes are the project's share
/// (by rows) of the events table with its indexes, plus its share of the
/// idempotency records: the tables are shared, so this is an estimate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProjectTiers {
    pub project_id: i64,
    pub project: String,
    pub hot_days: i64,
    pub hot_rows: i64,
    pub hot_bytes: i64,
    pub cold_days: i64,
    pub cold_files: i64,
    pub cold_rows: i64,
    pub cold_bytes: i64,
    /// The most files of one cold day, and the cold days with more than
    /// one (ADR-033: compaction brings both down).
    pub max_files_per_day: i64,
    pub days_with_several_files: i64,
    /// Cold days with a rollup, and the bytes of its user sets (ADR-027).
    pub rollup_days: i64,
    pub rollup_bytes: i64,
    /// Sealed hot days with a rollup, and the bytes of its user sets
    /// (ADR-028).
    pub hot_rollup_days: i64,
    pub hot_rollup_bytes: i64,
    /// The retention policy in days (`None`: forever; ADR-031).
    pub retention_days: Option<u32>,
}

/// The hot tier's size, from the catalog (no scan of the events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HotSize {
    /// PostgreSQL's row estimate over the chunks.
    pub rows_estimate: i64,
    /// The chunks on disk, with their indexes.
    pub events_bytes: i64,
    /// The idempotency records, with their indexes.
    pub dedup_bytes: i64,
}

impl Store {
    /// The size of `chunks` (as [`Store::list_chunks`] returns them) and
    /// of the idempotency records. Cheap enough for every metrics scrape;
    /// the same measure for both layouts.
    pub async fn hot_size(&self, chunks: &[Chunk]) -> Result<HotSize, StoreError> {
        let names: Vec<&str> = chunks.iter().map(|c| c.name.as_str()).collect();
        let (rows_estimate, events_bytes): (i64, i64) = sqlx::query_as(
            "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::int8,
                    coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8
               FROM unnest($1::text[]) n JOIN pg_class c ON c.oid = to_regclass(n)",
        )
        .bind(&names)
        .fetch_one(&self.pool)
        .await?;
        let dedup_bytes = crate::events::claims::bytes(&self.pool).await?;
        Ok(HotSize {
            rows_estimate,
            events_bytes,
            dedup_bytes,
        })
    }

    /// Every project's tiers, by project id.
    pub async fn tier_summary(&self) -> Result<Vec<ProjectTiers>, StoreError> {
        let pool = &self.pool;
        let mut out: BTreeMap<i64, ProjectTiers> = BTreeMap::new();
        let projects: Vec<(i64, String, Option<i32>)> =
            sqlx::query_as("SELECT id, name, retention_days FROM projects")
                .fetch_all(pool)
                .await?;
        for (id, name, retention) in projects {
            out.insert(
                id,
                ProjectTiers {
                    project_id: id,
                    project: name,
                    retention_days: retention.and_then(|d| u32::try_from(d).ok()),
                    ..ProjectTiers::default()
                },
            );
        }
        let hot: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT project_id, count(DISTINCT (ts AT TIME ZONE 'UTC')::date), count(*)
               FROM events GROUP BY project_id",
        )
        .fetch_all(pool)
        .await?;
        let ids = crate::events::claims::per_project(pool).await?;
        let size = self.hot_size(&self.list_chunks().await?).await?;
        let share = |part: i64, total: i64, bytes: i64| -> i64 {
            if total == 0 {
                0
            } else {
                (bytes as f64 * part as f64 / total as f64).round() as i64
            }
        };
        let hot_total: i64 = hot.iter().map(|h| h.2).sum();
        let ids_total: i64 = ids.iter().map(|i| i.1).sum();
        for (id, days, rows) in hot {
            let p = out.entry(id).or_default();
            p.project_id = id;
            p.hot_days = days;
            p.hot_rows = rows;
            p.hot_bytes += share(rows, hot_total, size.events_bytes);
        }
        for (id, n) in ids {
            let p = out.entry(id).or_default();
            p.hot_bytes += share(n, ids_total, size.dedup_bytes);
        }
        let cold = self.manifest().per_project().await?;
        for c in cold {
            let p = out.entry(c.project_id).or_default();
            p.cold_days = c.days;
            p.cold_files = c.files;
            p.cold_rows = c.rows;
            p.cold_bytes = c.bytes;
            p.max_files_per_day = c.max_files_per_day;
            p.days_with_several_files = c.days_with_several_files;
        }
        for (id, days, bytes) in crate::summaries::rollups::per_project(pool, "day_rollups").await?
        {
            let p = out.entry(id).or_default();
            p.rollup_days = days;
            p.rollup_bytes = bytes;
        }
        for (id, days, bytes) in crate::summaries::rollups::per_project(pool, "hot_rollups").await?
        {
            let p = out.entry(id).or_default();
            p.hot_rollup_days = days;
            p.hot_rollup_bytes = bytes;
        }
        Ok(out.into_values().collect())
    }
}
