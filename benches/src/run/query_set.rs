//! Queries: each stat from Strata and from DuckDB over Parquet alone,
//! compared answer for answer; a flood of late events; the memory of a
//! long range.

use super::*;

impl Bench<'_> {
    /// The queries of the set, each ending today.
    pub(super) fn query_specs(&self) -> Vec<QuerySpec> {
        let today = self.today;
        let d = |n: i64| today - chrono::Duration::days(n);
        [
            ("DAU 90 days", Stat::Dau, d(89)),
            ("DAU 365 days", Stat::Dau, d(364)),
            ("top events 365 days", Stat::TopEvents { limit: 10 }, d(364)),
            ("retention 12 weeks", Stat::Retention { periods: 12 }, d(83)),
            (
                "funnel 3 steps, 7-day window, 30 days",
                Stat::Funnel { window_days: 7 },
                d(29),
            ),
            (
                "funnel 3 steps, 7-day window, 365 days",
                Stat::Funnel { window_days: 7 },
                d(364),
            ),
            (
                "DAU 365 days by plan (declared)",
                Stat::DauBy {
                    property: "plan",
                    declared: true,
                },
                d(364),
            ),
            (
                "DAU 365 days by locale (undeclared)",
                Stat::DauBy {
                    property: "locale",
                    declared: false,
                },
                d(364),
            ),
        ]
        .into_iter()
        .map(|(name, stat, from)| QuerySpec {
            name: name.to_owned(),
            stat,
            from,
            to: today,
        })
        .collect()
    }

    /// The queries of the set, each against its baselines.
    pub(super) async fn queries(&mut self, parquet_dir: &Path) -> Result<Vec<QueryResult>> {
        let mut results = Vec::new();
        for spec in self.query_specs() {
            tracing::info!("query: {}", spec.name);
            results.push(self.query(&spec, parquet_dir).await?);
        }
        Ok(results)
    }

    /// A hostile client floods old days (each batch: 1,000 events on 1,000
    /// distinct past days) beside the usual load.
    pub(super) async fn late_day_flood(&mut self) -> Result<FloodResult> {
        let (api, ingest) = self.start_api().await?;
        let flood_stop = Arc::new(AtomicBool::new(false));
        let flood = {
            let (ingest, stop) = (
                Ingestor {
                    key: self.load_key.clone(),
                    ..ingest.clone()
                },
                Arc::clone(&flood_stop),
            );
            let today = self.today;
            tokio::spawn(async move { late_day_flood(&ingest, today, stop).await })
        };
        let stop = Arc::clone(&flood_stop);
        let (flood_load, _) = self
            .load_until(&ingest, 4_000, async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                stop.store(true, Ordering::Relaxed);
            })
            .await?;
        let (batches, accepted, rejected) = flood
            .await
            .map_err(|e| failed(format!("flood task failed: {e}")))??;
        api.stop().await?;
        Ok(FloodResult {
            batches,
            accepted,
            rejected,
            load_latency: Latency::of(&flood_load.latencies_ms),
        })
    }

    pub(super) async fn query(&mut self, spec: &QuerySpec, parquet: &Path) -> Result<QueryResult> {
        let (strata_t, strata_a, tiers) = self.strata_side(spec).await?;
        let pg = if spec.stat.has_postgres_baseline() {
            Some(
                queries::measure(self.cfg.warm_runs, |_| {
                    queries::postgres(&self.pool, self.project, spec, self.today)
                })
                .await?,
            )
        } else {
            None
        };
        let (duck_t, duck_a) = self.duck_side(spec, parquet).await?;
        let pg_a = pg.as_ref().map(|(_, a)| a);
        let equal = strata_a == duck_a && pg_a.is_none_or(|a| *a == duck_a);
        if !equal {
            tracing::error!(
                query = spec.name,
                "answers differ:\n strata {strata_a:?}\n postgres {pg_a:?}\n duckdb {duck_a:?}"
            );
        }
        let slower = tiers.hot.max(tiers.cold);
        Ok(QueryResult {
            spec: spec.clone(),
            strata: strata_t,
            strata_server_ms: tiers.total,
            strata_hot_ms: tiers.hot,
            strata_cold_ms: tiers.cold,
            postgres: pg.as_ref().map(|(t, _)| *t),
            duckdb: duck_t,
            vs_slower_tier: strata_t.median_ms / (1.2 * slower + 50.0),
            speedup_vs_postgres: pg.map(|(t, _)| t.median_ms / strata_t.median_ms),
            speedup_vs_duckdb: duck_t.median_ms / strata_t.median_ms,
            answers_equal: equal,
        })
    }

    /// `spec` asked of a fresh strata-api (the first run fetches every cold
    /// file it reads from the S3 server into an empty cache): timings, the
    /// answer, and the medians of the warm runs' `meta` times.
    pub(super) async fn strata_side(
        &mut self,
        spec: &QuerySpec,
    ) -> Result<(Timing, Answer, TierMs)> {
        let (api, ingest) = self.start_api().await?;
        let tiers: Arc<std::sync::Mutex<Vec<TierMs>>> = Arc::default();
        let (timing, answer) = queries::measure(self.cfg.warm_runs, |_| {
            let (client, base, key) = (
                ingest.client.clone(),
                ingest.base.clone(),
                ingest.key.clone(),
            );
            let tiers = Arc::clone(&tiers);
            let spec = spec.clone();
            async move {
                let (answer, t) = queries::strata(&client, &base, &key, &spec).await?;
                tiers.lock().map_err(|_| failed("poisoned"))?.push(t);
                Ok(answer)
            }
        })
        .await?;
        api.stop().await?;
        let tiers = tiers.lock().map_err(|_| failed("poisoned"))?.clone();
        let warm = &tiers[1.min(tiers.len())..];
        let med = |f: fn(&TierMs) -> f64| median(warm.iter().map(f).collect());
        let meta = TierMs {
            total: med(|t| t.total),
            hot: med(|t| t.hot),
            cold: med(|t| t.cold),
        };
        Ok((timing, answer, meta))
    }

    /// `spec` asked of DuckDB alone over the Parquet of every event in
    /// `parquet`, a new database for the first run.
    pub(super) async fn duck_side(
        &self,
        spec: &QuerySpec,
        parquet: &Path,
    ) -> Result<(Timing, Answer)> {
        let conn = std::cell::RefCell::new(queries::duck_connection(2, "1GB")?);
        queries::measure(self.cfg.warm_runs, |first| {
            let answer = tokio::task::block_in_place(|| {
                if first {
                    // A new database: nothing of the files is cached in DuckDB.
                    *conn.borrow_mut() = queries::duck_connection(2, "1GB")?;
                }
                queries::duckdb(&conn.borrow(), parquet, self.project, spec, self.today)
            });
            std::future::ready(answer)
        })
        .await
    }

    /// A fresh strata-api answers top events over the longest range it
    /// accepts (3,660 days: every cold file of the bench); its resident
    /// memory before and at peak.
    pub(super) async fn long_range_memory(&mut self) -> Result<MemoryResult> {
        let (api, ingest) = self.start_api().await?;
        let before = api.rss();
        let from = self.today - chrono::Duration::days(3659);
        let sent = Instant::now();
        let res = ingest
            .client
            .get(format!(
                "{}/v1/stats/top-events?from={from}&to={}&limit=10",
                ingest.base, self.today
            ))
            .bearer_auth(&ingest.key)
            .send()
            .await?;
        let status = res.status();
        let _ = res.bytes().await?;
        let request_ms = sent.elapsed().as_secs_f64() * 1e3;
        if !status.is_success() {
            return Err(failed(format!(
                "top events over 3660 days answered {status}"
            )));
        }
        let peak = api.peak_rss();
        api.stop().await?;
        Ok(MemoryResult {
            request: "top events over 3,660 days (every cold file)".into(),
            api_rss_before_mib: to_mib(before),
            api_peak_rss_mib: to_mib(peak),
            request_ms,
        })
    }
}

/// Posts batches of 1,000 events on 1,000 distinct past days (a new window
/// of days each time, so that every accepted day is new) until `stop`:
/// batches sent, events accepted and rejected.
pub(super) async fn late_day_flood(
    ingest: &Ingestor,
    today: NaiveDate,
    stop: Arc<AtomicBool>,
) -> Result<(u64, u64, u64)> {
    let (mut batches, mut accepted, mut rejected) = (0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let events: Vec<serde_json::Value> = (0..1_000i64)
            .map(|i| {
                let back = 2 + (batches as i64 * 31 + i) % 3_000;
                let ts = (today - chrono::Duration::days(back))
                    .and_hms_opt(12, 0, 0)
                    .map(|t| t.and_utc().to_rfc3339())
                    .unwrap_or_default();
                serde_json::json!({
                    "event_id": uuid::Uuid::new_v4(),
                    "user_id": "flood",
                    "event_type": "flood",
                    "timestamp": ts,
                })
            })
            .collect();
        let res = ingest
            .client
            .post(format!("{}/v1/events", ingest.base))
            .bearer_auth(&ingest.key)
            .json(&serde_json::json!({ "events": events }))
            .send()
            .await?;
        let status = res.status();
        let body: serde_json::Value = res.json().await?;
        if !status.is_success() {
            return Err(failed(format!("the flood was answered {status}: {body}")));
        }
        batches += 1;
        accepted += body["accepted"].as_u64().unwrap_or(0);
        rejected += body["rejected"].as_array().map_or(0, |r| r.len() as u64);
    }
    Ok((batches, accepted, rejected))
}
