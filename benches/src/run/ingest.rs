//! Ingest: the generated history loaded through the API and by `COPY`
//! into the baseline table, and ingest again at steady state (full dedup
//! windows).

use super::*;

impl Bench<'_> {
    /// `psql \copy` of `csv` into the baseline table; seconds taken.
    pub(super) async fn psql_copy(&self, csv: &Path) -> Result<f64> {
        let started = Instant::now();
        let out = tokio::process::Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.db_url,
                "-c",
            ])
            .arg(format!(
                "\\copy {} ({CSV_COLUMNS}) FROM '{}' WITH (FORMAT csv)",
                queries::PG_TABLE,
                csv.display()
            ))
            .output()
            .await
            .map_err(|e| failed(format!("cannot run psql: {e}")))?;
        if !out.status.success() {
            return Err(failed(format!(
                "psql \\copy failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(secs(started))
    }

    pub(super) async fn create_baseline_table(&self, first: NaiveDate) -> Result<()> {
        let mut sql = format!(
            "CREATE SCHEMA bench_baseline;
             CREATE TABLE {t} (LIKE public.events) PARTITION BY RANGE (ts);
             ALTER TABLE {t} ALTER COLUMN received_at SET DEFAULT now();
             CREATE INDEX ON {t} (project_id, ts);",
            t = queries::PG_TABLE
        );
        let mut d = first;
        while d <= self.today + chrono::Duration::days(2) {
            sql.push_str(&format!(
                "CREATE TABLE bench_baseline.events_{} PARTITION OF {} \
                 FOR VALUES FROM ('{d} 00:00:00+00') TO ('{} 00:00:00+00');",
                d.format("%Y%m%d"),
                queries::PG_TABLE,
                d + chrono::Duration::days(1)
            ));
            d += chrono::Duration::days(1);
        }
        self.sql(&sql).await
    }

    pub(super) fn bodies(&self, events: &[ValidEvent]) -> Result<Arc<Vec<data::Body>>> {
        let mut load = Load::default();
        load.push(events, self.cfg.batch)?;
        Ok(Arc::new(load.bodies))
    }

    /// Posts generated events of today to the `load` project from the
    /// configured clients until `until` resolves, while one more client
    /// asks for 30 days of DAU every 200 ms; what they sent, and the stats
    /// requests' latencies.
    pub(super) async fn load_until(
        &self,
        ingest: &Ingestor,
        seed: u64,
        until: impl Future<Output = ()>,
    ) -> Result<(LoadStats, Vec<f64>)> {
        let stop = Arc::new(AtomicBool::new(false));
        let ingest = Ingestor {
            key: self.load_key.clone(),
            ..ingest.clone()
        };
        let (today, users, batch, clients) = (
            self.today,
            self.cfg.users,
            self.cfg.batch as u32,
            self.cfg.clients,
        );
        let prober = {
            let (stop, reader) = (Arc::clone(&stop), ingest.clone());
            let reader = Ingestor {
                key: self.key.clone(),
                ..reader
            };
            tokio::spawn(async move {
                let from = today - chrono::Duration::days(29);
                reader
                    .probe_stats(from, today, Duration::from_millis(200), stop)
                    .await
            })
        };
        let task = {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                ingest
                    .send_generated(today, users, batch, clients, seed, stop)
                    .await
            })
        };
        until.await;
        stop.store(true, Ordering::Relaxed);
        let load = task
            .await
            .map_err(|e| failed(format!("load task failed: {e}")))??;
        let probes = prober
            .await
            .map_err(|e| failed(format!("stats prober failed: {e}")))??;
        Ok((load, probes))
    }

    /// The history: every day's events as request bodies, and as the CSV
    /// the copy baseline loads.
    pub(super) fn history(&self) -> Result<History> {
        let cfg = self.cfg;
        tracing::info!(
            "generating {} days × {} events",
            cfg.days,
            cfg.events_per_day
        );
        let mut g = data::generator(cfg.days, self.today, cfg.users, cfg.events_per_day, 1);
        let days: Vec<NaiveDate> = g.days().collect();
        let csv = self.path("history.csv");
        let mut load = Load::default();
        let mut w = BufWriter::new(std::fs::File::create(&csv)?);
        for (i, d) in days.iter().enumerate() {
            let events = g.day(i as u32, *d);
            load.push(&events, cfg.batch)?;
            data::write_csv(&events, self.project, &mut w)?;
        }
        w.flush()?;
        Ok(History {
            load,
            csv,
            first_day: days.first().copied().unwrap_or(self.today),
        })
    }

    /// Strata's ingest of the history over HTTP, `psql \copy` of the same
    /// rows, and the seed design's writes of the same bodies, each with
    /// PostgreSQL's accounts.
    pub(super) async fn measure_ingest(&mut self, history: History) -> Result<IngestResult> {
        let cfg = self.cfg;
        let events = history.load.events;
        let bodies = Arc::new(history.load.bodies);
        let (api, ingest) = self.start_api().await?;
        self.sql("CHECKPOINT").await?;
        tracing::info!("ingesting {events} events over HTTP");
        let cpu0 = (api.cpu_secs(), own_cpu());
        let meter = Meter::start(&self.pool, self.statements).await?;
        let http = ingest.send(Arc::clone(&bodies), cfg.clients).await?;
        let strata = meter
            .finish(&self.pool, "Strata", http.events, Some(http.secs))
            .await?;
        let (api_cpu, client_cpu) = (api.cpu_secs() - cpu0.0, own_cpu() - cpu0.1);
        let api_peak = api.peak_rss();
        api.stop().await?;

        self.create_baseline_table(history.first_day - chrono::Duration::days(5))
            .await?;
        self.sql("CHECKPOINT").await?;
        tracing::info!("psql \\copy of the same rows");
        let meter = Meter::start(&self.pool, self.statements).await?;
        let copy_secs = self.psql_copy(&history.csv).await?;
        let copy = meter
            .finish(&self.pool, "psql \\copy", events, Some(copy_secs))
            .await?;

        crate::peer::create(&self.pool).await?;
        self.sql("CHECKPOINT").await?;
        tracing::info!("the seed design's INSERT … ON CONFLICT of the same bodies");
        let meter = Meter::start(&self.pool, self.statements).await?;
        let peer_load = crate::peer::send(&self.db_url, bodies, cfg.clients).await?;
        let peer = meter
            .finish(
                &self.pool,
                "seed design",
                peer_load.events,
                Some(peer_load.secs),
            )
            .await?;
        let per_m = 1e6 / events.max(1) as f64;
        Ok(IngestResult {
            clients: cfg.clients,
            batch_events: cfg.batch,
            events: http.events,
            strata_secs: http.secs,
            strata_events_per_s: http.per_sec(),
            copy_secs,
            copy_events_per_s: copy.events_per_s,
            ratio: http.per_sec() / copy.events_per_s,
            api_peak_rss_mib: to_mib(api_peak),
            cpu_per_million: CpuUse {
                api: api_cpu * per_m,
                postgres: strata.postgres_cpu,
                client: client_cpu * per_m,
            },
            copy_postgres_cpu_per_million: copy.postgres_cpu,
            peer_events_per_s: peer.events_per_s,
            peer_ratio: http.per_sec() / peer.events_per_s,
            accounts: vec![strata, copy, peer],
            steady: None,
        })
    }

    /// Ingest into a second database whose idempotency and first-seen
    /// records are filled to 0, 1, 10 and 30 dedup windows of the bench
    /// (`BenchConfig::steady`); `None` when that list is empty.
    pub(super) async fn steady_state(&mut self, admin: &PgPool) -> Result<Option<SteadyResult>> {
        let cfg = self.cfg;
        if cfg.steady.is_empty() {
            return Ok(None);
        }
        let db = format!("{DB}_steady");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .execute(admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(admin)
            .await?;
        let url = with_database(&cfg.admin_url, &db)?;
        let mut env = self.env.clone();
        for (k, v) in &mut env {
            if k == "STRATA_DATABASE_URL" {
                v.clone_from(&url);
            }
        }
        procs::run_output(&self.api_bin, &["migrate"], &env).await?;
        let key = create_key(&self.api_bin, &env, "steady", "ingest").await?;
        let pool = PgPool::connect(&url).await?;
        let statements = accounts::enable_statements(&pool).await?;
        let project: i64 = sqlx::query_scalar("SELECT id FROM projects WHERE name = 'steady'")
            .fetch_one(&pool)
            .await?;
        let hot = strata_store::Store::open(pool.clone())
            .await
            .map_err(|e| failed(e.to_string()))?;
        let window_ids = 90 * u64::from(cfg.events_per_day);
        let load_events = 40 * cfg.events_per_day;
        let today = self.today;
        let bodies = |seed: u64, n: u32| -> Result<Arc<Vec<data::Body>>> {
            let events = data::generator(1, today, cfg.users, n, seed).day(0, today);
            let mut load = Load::default();
            load.push(&events, cfg.batch)?;
            Ok(Arc::new(load.bodies))
        };
        // The users become known first, as in a store that has been running.
        let (api, ingest) = self.start_api_with(&env, &key).await?;
        ingest
            .send(bodies(500, load_events / 4)?, cfg.clients)
            .await?;
        api.stop().await?;
        let (mut ids, mut users) = (0u64, 0u64);
        let mut points = Vec::new();
        for &windows in &cfg.steady {
            let (want_ids, want_users) = (
                window_ids * u64::from(windows),
                u64::from(cfg.users) * u64::from(windows),
            );
            tracing::info!("steady state: filling the dedup records to {want_ids} ids");
            if want_ids > ids {
                strata_store::events::fill::fill_dedup(
                    &pool,
                    strata_model::ProjectId(project),
                    want_ids - ids,
                    90,
                )
                .await
                .map_err(|e| failed(e.to_string()))?;
                ids = want_ids;
            }
            if want_users > users {
                strata_store::events::fill::fill_first_seen(
                    &pool,
                    strata_model::ProjectId(project),
                    users,
                    want_users,
                    90,
                )
                .await
                .map_err(|e| failed(e.to_string()))?;
                users = want_users;
            }
            for table in ["event_ids", "user_first_seen"] {
                sqlx::query(&format!("VACUUM (ANALYZE) {table}"))
                    .execute(&pool)
                    .await?;
            }
            // A fresh server: it lists the filled days and builds their
            // filters before the load, as a server running for days has.
            let (api, ingest) = self.start_api_with(&env, &key).await?;
            wait_for_dedup_filters(&ingest, if ids > 0 { 90.0 } else { 0.0 }).await?;
            sqlx::raw_sql("CHECKPOINT").execute(&pool).await?;
            let load = bodies(600 + u64::from(windows), load_events)?;
            let api0 = api.cpu_secs();
            let meter = Meter::start(&pool, statements).await?;
            let sent = ingest.send(load, cfg.clients).await?;
            let accounts = meter
                .finish(
                    &pool,
                    &format!("{windows}× window"),
                    sent.events,
                    Some(sent.secs),
                )
                .await?;
            let dedup_bytes = hot
                .hot_size(&[])
                .await
                .map_err(|e| failed(e.to_string()))?
                .dedup_bytes;
            points.push(SteadyPoint {
                windows,
                dedup_ids: ids,
                first_seen_users: users,
                dedup_bytes: dedup_bytes as u64,
                api_cpu: (api.cpu_secs() - api0) * 1e6 / sent.events.max(1) as f64,
                accounts,
            });
            api.stop().await?;
        }
        pool.close().await;
        if !cfg.keep {
            sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .execute(admin)
                .await?;
        }
        Ok(Some(SteadyResult { window_ids, points }))
    }
}

/// Waits until the server knows at least `days` sealed days of dedup
/// records and has a filter for each (its `/metrics` gauges), at most two
/// minutes. A server without those gauges is not waited for.
pub(super) async fn wait_for_dedup_filters(ingest: &Ingestor, days: f64) -> Result<()> {
    let gauge = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = ingest
            .client
            .get(format!("{}/metrics", ingest.base))
            .send()
            .await?
            .text()
            .await?;
        match (
            gauge(&text, "strata_dedup_filtered_days"),
            gauge(&text, "strata_dedup_sealed_days"),
        ) {
            (Some(built), Some(sealed)) if built < sealed.max(days) => {
                if Instant::now() > deadline {
                    return Err(failed(format!(
                        "dedup filters: {built} of {sealed} days built after 2 minutes"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            _ => return Ok(()),
        }
    }
}
