//! Archiving: a run under ingest load, late events into archived days,
//! and one big chunk for the archiver's memory.

use super::*;

impl Bench<'_> {
    /// The newest archive run: rows, chunks, seconds.
    pub(super) async fn last_archive_run(&self) -> Result<(u64, u64, f64)> {
        let hot = strata_store::Store::open(self.pool.clone()).await?;
        let Some((run, _)) = hot.runs().list(1).await?.into_iter().next() else {
            return Err(failed("no archive run was recorded"));
        };
        if run.status != "succeeded" {
            return Err(failed(format!("the archive run ended {}", run.status)));
        }
        let secs = run.finished_at.map_or(0.0, |f| {
            (f - run.started_at).num_milliseconds() as f64 / 1000.0
        });
        Ok((run.rows_moved as u64, run.chunks_moved as u64, secs))
    }

    /// Archives while today's events keep arriving (in another project).
    /// The same load runs alone for 15 s before and 15 s after, so that the
    /// growth of the database during the run weighs on both sides of the
    /// comparison.
    pub(super) async fn archive_under_load(&mut self, load: &Ingestor) -> Result<ArchiveUnderLoad> {
        let window = Duration::from_secs(15);
        let (before, stats_before) = self
            .load_until(load, 1_000, tokio::time::sleep(window))
            .await?;
        tracing::info!("archiving with ingest running");
        let archiver = self.spawn_archiver()?;
        let (status_tx, status_rx) = tokio::sync::oneshot::channel();
        let (during, stats_during) = self
            .load_until(load, 2_000, async move {
                let _ = status_tx.send(archiver.wait().await);
            })
            .await?;
        let (status, archiver_peak) = status_rx
            .await
            .map_err(|_| failed("the archiver's status was lost"))??;
        self.archiver_succeeded(status)?;
        let (rows, chunks, secs) = self.last_archive_run().await?;
        let (after, stats_after) = self
            .load_until(load, 3_000, tokio::time::sleep(window))
            .await?;
        Ok(ArchiveUnderLoad {
            rows,
            chunks,
            secs,
            archiver_peak,
            alone: LoadStats {
                events: before.events + after.events,
                batches: before.batches + after.batches,
                secs: before.secs + after.secs,
                latencies_ms: [before.latencies_ms, after.latencies_ms].concat(),
            },
            during,
            stats_alone: [stats_before, stats_after].concat(),
            stats_during,
        })
    }

    /// One `strata-archiver run --once` with nothing else running.
    pub(super) async fn archive_once(&self) -> Result<()> {
        tracing::info!("archiving");
        let (status, _) = self.spawn_archiver()?.wait().await?;
        self.archiver_succeeded(status)
    }

    /// `strata-archiver run --once`, logging to `archiver.log`.
    pub(super) fn spawn_archiver(&self) -> Result<Proc> {
        Proc::spawn(
            &self.archiver_bin,
            &["run", "--once"],
            &self.env,
            &self.path("archiver.log"),
        )
    }

    pub(super) fn archiver_succeeded(&self, status: std::process::ExitStatus) -> Result<()> {
        if status.success() {
            return Ok(());
        }
        Err(failed(format!(
            "strata-archiver run --once failed ({status}); see {}",
            self.path("archiver.log").display()
        )))
    }

    /// Late events into archived days: those days are then held by both
    /// tiers, and every query has to merge them. Returns how many, and
    /// their CSV for the baselines.
    pub(super) async fn late_events_into_archived_days(
        &self,
        load: &Ingestor,
    ) -> Result<(u64, PathBuf)> {
        let cfg = self.cfg;
        let mut late: Vec<ValidEvent> = Vec::new();
        for i in 0..8u32 {
            let back = 35 + i64::from(i) * (i64::from(cfg.days) - 40) / 8;
            let d = self.today - chrono::Duration::days(back);
            let n = (cfg.events_per_day / 50).max(10);
            late.extend(data::generator(1, d, cfg.users, n, 100 + u64::from(i)).day(0, d));
        }
        load.send(self.bodies(&late)?, cfg.clients).await?;
        let late_csv = self.path("late.csv");
        let mut w = BufWriter::new(std::fs::File::create(&late_csv)?);
        data::write_csv(&late, self.project, &mut w)?;
        w.flush()?;
        Ok((late.len() as u64, late_csv))
    }

    /// Fills one day with `big_chunk_rows` rows (SQL, untimed) and archives
    /// it with strata-archiver, watching its memory.
    pub(super) async fn big_chunk(&mut self, day: NaiveDate) -> Result<BigChunk> {
        let rows = self.cfg.big_chunk_rows;
        // One real ingest creates the day's partition the way production does.
        let (api, ingest) = self.start_api().await?;
        let first = data::generator(1, day, 10, 1, 9).day(0, day);
        let bodies = self.bodies(&first)?;
        ingest.send(bodies, 1).await?;
        api.stop().await?;
        tracing::info!("filling one day with {rows} rows");
        sqlx::query(
            "INSERT INTO events (project_id, event_id, user_id, event_type, ts, properties, received_at)
             SELECT $1, gen_random_uuid(), 'user_' || (g * 7919 % 200000),
                    (ARRAY['page_view', 'click', 'search', 'scroll', 'add_to_cart'])[1 + g % 5],
                    $2::timestamptz + make_interval(secs => (g % 86000)::float8 + (g % 1000) / 1000.0),
                    jsonb_build_object('path', '/p/' || (g % 500), 'session', 's' || (g / 5),
                        'ua', 'Mozilla/5.0 (X11; Linux x86_64)', 'plan', 'pro', 'ms', g % 5000,
                        'ref', 'https://news.example.com/article/' || (g % 10007),
                        'locale', 'en-US', 'screen', '1920x1080'),
                    now()
               FROM generate_series(1, $3) AS g",
        )
        .bind(self.project)
        .bind(day.and_time(chrono::NaiveTime::MIN).and_utc())
        .bind(rows as i64)
        .execute(&self.pool)
        .await?;
        // As a day-old chunk would be in production: autovacuum has been
        // through it, so its work does not land in the archive's CPU.
        self.sql("VACUUM (ANALYZE) events").await?;
        tracing::info!("archiving the big chunk");
        let archiver = Proc::spawn(
            &self.archiver_bin,
            &["run", "--once"],
            &self.env,
            &self.path("archiver-big.log"),
        )?;
        let cpu0 = (
            procs::reaped_children_cpu_secs(),
            procs::cpu_secs_named("postgres"),
        );
        let (status, peak) = archiver.wait().await?;
        let archiver_cpu = procs::reaped_children_cpu_secs() - cpu0.0;
        let postgres_cpu = procs::cpu_secs_named("postgres") - cpu0.1;
        if !status.success() {
            return Err(failed(format!(
                "strata-archiver on the big chunk failed ({status}); see {}",
                self.path("archiver-big.log").display()
            )));
        }
        let (moved, _, run_secs) = self.last_archive_run().await?;
        Ok(BigChunk {
            rows: moved,
            run_secs,
            rows_per_s: moved as f64 / run_secs,
            archiver_peak_rss_mib: to_mib(peak),
            archiver_cpu_secs: archiver_cpu,
            postgres_cpu_secs: postgres_cpu,
        })
    }
}

/// [`Bench::archive_under_load`].
pub(super) struct ArchiveUnderLoad {
    pub(super) rows: u64,
    pub(super) chunks: u64,
    pub(super) secs: f64,
    pub(super) archiver_peak: u64,
    pub(super) alone: LoadStats,
    pub(super) during: LoadStats,
    pub(super) stats_alone: Vec<f64>,
    pub(super) stats_during: Vec<f64>,
}

impl ArchiveUnderLoad {
    pub(super) fn result(&self, big_chunk: BigChunk) -> ArchiveResult {
        ArchiveResult {
            rows: self.rows,
            chunks: self.chunks,
            run_secs: self.secs,
            rows_per_s: self.rows as f64 / self.secs,
            archiver_peak_rss_mib: to_mib(self.archiver_peak),
            ingest_alone_events_per_s: self.alone.per_sec(),
            ingest_during_events_per_s: self.during.per_sec(),
            ingest_drop: 1.0 - self.during.per_sec() / self.alone.per_sec(),
            ingest_latency_alone: Latency::of(&self.alone.latencies_ms),
            ingest_latency_during: Latency::of(&self.during.latencies_ms),
            stats_latency_alone: Latency::of(&self.stats_alone),
            stats_latency_during: Latency::of(&self.stats_during),
            big_chunk,
        }
    }
}
