//! Storage: what the hot and cold tiers hold against the baselines.

use super::*;

impl Bench<'_> {
    /// Every event is still in PostgreSQL: its size, and the baseline
    /// table's for the same rows.
    pub(super) async fn hot_footprint(&self) -> Result<HotFootprint> {
        let hot = strata_store::Store::open(self.pool.clone()).await?;
        let chunks = hot.list_chunks().await?;
        let size = hot.hot_size(&chunks).await?;
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await?;
        let baseline_bytes: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::int8
               FROM pg_inherits WHERE inhparent = 'bench_baseline.events'::regclass",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(HotFootprint {
            hot,
            size,
            events,
            baseline_bytes,
        })
    }

    /// Hot and cold bytes per event, and what the cold tier holds now.
    pub(super) async fn storage(
        &self,
        hot: &HotFootprint,
        history_events: u64,
    ) -> Result<(StorageResult, ColdHolding)> {
        let cold = hot
            .hot
            .manifest()
            .totals(Some(strata_model::ProjectId(self.project)))
            .await?;
        let hot_rows_after: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE project_id = $1")
                .bind(self.project)
                .fetch_one(&self.pool)
                .await?;
        let (rollup_days, rollup_bytes) = hot
            .hot
            .rollup_footprint(Some(strata_model::ProjectId(self.project)))
            .await?;
        let size = &hot.size;
        let hot_bpe = (size.events_bytes + size.dedup_bytes) as f64 / hot.events as f64;
        let cold_bpe = cold.bytes as f64 / cold.rows.max(1) as f64;
        let storage = StorageResult {
            hot_events: hot.events as u64,
            hot_events_bytes: size.events_bytes as u64,
            hot_dedup_bytes: size.dedup_bytes as u64,
            hot_bytes_per_event: hot_bpe,
            cold_rows: cold.rows as u64,
            cold_bytes: cold.bytes as u64,
            cold_bytes_per_event: cold_bpe,
            rollup_days: rollup_days as u64,
            rollup_bytes: rollup_bytes as u64,
            ratio: hot_bpe / cold_bpe,
            baseline_table_bytes_per_event: hot.baseline_bytes as f64 / history_events as f64,
        };
        let holding = ColdHolding {
            files: cold.files,
            rows: cold.rows,
            hot_rows_after,
        };
        Ok((storage, holding))
    }

    /// The baselines get the rest of the rows: PostgreSQL's table, and the
    /// Parquet that DuckDB alone reads (its directory).
    pub(super) async fn load_baselines(
        &self,
        history_csv: &Path,
        late_csv: &Path,
    ) -> Result<PathBuf> {
        tracing::info!("loading the baselines");
        self.psql_copy(late_csv).await?;
        self.sql("ANALYZE bench_baseline.events; ANALYZE events; ANALYZE user_first_seen")
            .await?;
        let parquet = self.duck_parquet(history_csv, late_csv).await?;
        self.wait_for_autovacuum().await?;
        Ok(parquet)
    }

    /// Waits (up to three minutes) until autovacuum has caught up with the
    /// users first seen by the load, as it has on a server at steady state
    /// (the migration of ADR-036 vacuums `user_first_seen` after every
    /// 1,000 new users): until then retention's index-only cohort read
    /// fetches heap pages, and the queries would measure the load's wake.
    pub(super) async fn wait_for_autovacuum(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            let pending: Option<i64> = sqlx::query_scalar(
                "SELECT n_ins_since_vacuum FROM pg_stat_user_tables
                  WHERE relid = 'user_first_seen'::regclass",
            )
            .fetch_optional(&self.pool)
            .await?;
            let pending = pending.unwrap_or(0);
            if pending < 1_000 {
                tracing::info!(
                    "autovacuum caught up with user_first_seen after {:.0} s",
                    secs(started)
                );
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(180) {
                tracing::warn!("autovacuum left {pending} new users unvacuumed; measuring anyway");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// DuckDB alone's Parquet of the history and the late events.
    pub(super) async fn duck_parquet(
        &self,
        history_csv: &Path,
        late_csv: &Path,
    ) -> Result<PathBuf> {
        let parquet_dir = self.path("duckdb-parquet");
        let _ = std::fs::remove_dir_all(&parquet_dir);
        let (h, e, p) = (
            history_csv.to_path_buf(),
            late_csv.to_path_buf(),
            parquet_dir.clone(),
        );
        tokio::task::spawn_blocking(move || queries::build_parquet(&[&h, &e], &p))
            .await
            .map_err(|e| failed(e.to_string()))??;
        Ok(parquet_dir)
    }
}

/// [`Bench::hot_footprint`].
pub(super) struct HotFootprint {
    pub(super) hot: strata_store::Store,
    pub(super) size: strata_store::HotSize,
    pub(super) events: i64,
    pub(super) baseline_bytes: i64,
}

/// What the cold tier holds after archiving and late events.
pub(super) struct ColdHolding {
    pub(super) files: i64,
    pub(super) rows: i64,
    pub(super) hot_rows_after: i64,
}
