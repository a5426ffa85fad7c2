//! Lifecycle and queue mode: retention, erasure and compaction timed, and
//! ingest through the queue.

use super::*;

impl Bench<'_> {
    /// Compaction of the days that late events split, then the erasure of
    /// the user with the most hot events, each as its own command.
    pub(super) async fn lifecycle(&mut self) -> Result<LifecycleResult> {
        let (cold_days, days, files, rows): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE n > 1),
                    coalesce(sum(n) FILTER (WHERE n > 1), 0)::int8,
                    coalesce(sum(r) FILTER (WHERE n > 1), 0)::int8
               FROM (SELECT day, count(*) AS n, sum(rows) AS r FROM cold_files
                      WHERE project_id = $1 GROUP BY day) d",
        )
        .bind(self.project)
        .fetch_one(&self.pool)
        .await?;
        tracing::info!(days, files, "compacting");
        let started = Instant::now();
        procs::run_output(
            &self.archiver_bin,
            &[
                "compact",
                "--compact-max-files",
                "4",
                "--compact-min-bytes",
                "8388608",
            ],
            &self.env,
        )
        .await?;
        let compact_secs = secs(started);
        let compacted: i32 =
            sqlx::query_scalar("SELECT compacted_days FROM archive_runs ORDER BY id DESC LIMIT 1")
                .fetch_one(&self.pool)
                .await?;
        if i64::from(compacted) != days {
            return Err(failed(format!(
                "compaction merged {compacted} day(s), {days} had several files"
            )));
        }
        let user: String = sqlx::query_scalar(
            "SELECT user_id FROM events WHERE project_id = $1 GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
        )
        .bind(self.project)
        .fetch_one(&self.pool)
        .await?;
        tracing::info!("erasing one user");
        let started = Instant::now();
        let out = procs::run_output(
            &self.api_bin,
            &["users", "erase", "--project", "bench", "--user", &user],
            // No grace period: the replaced objects are deleted in the
            // erasure's own run, as they were before ADR-037, so the time
            // measured still includes the deletes.
            &[
                self.env.as_slice(),
                &[("STRATA_COLD_DELETE_GRACE".to_owned(), "0s".to_owned())],
            ]
            .concat(),
        )
        .await?;
        let erase_secs = secs(started);
        let record: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| failed(format!("`strata-api users erase` printed {out:?}: {e}")))?;
        let n = |k: &str| record[k].as_u64().unwrap_or(0);
        if record["status"] != "done" {
            return Err(failed(format!("the erasure did not finish: {record}")));
        }
        Ok(LifecycleResult {
            cold_days: cold_days as u64,
            compacted_days: days as u64,
            compacted_files: files as u64,
            compacted_rows: rows as u64,
            compact_secs,
            compact_rows_per_s: rows as f64 / compact_secs,
            erased_cold_rows: n("cold_rows"),
            erased_hot_rows: n("hot_rows"),
            erase_days_scanned: n("days_total"),
            erase_files_rewritten: n("files_rewritten"),
            erase_rows_rewritten: n("rows_rewritten"),
            erase_secs,
            erase_rows_per_s: n("rows_rewritten") as f64 / erase_secs,
        })
    }

    /// Queue mode (ADR-034) beside direct mode: the same 30 generated days
    /// into two fresh projects, one through a direct server, one through a
    /// queue-mode server with no worker (the accept rate), then drained by
    /// one `strata-api ingest-worker` (the drain rate); then small batches
    /// one at a time, each timed from its 202 to its status `applied`.
    pub(super) async fn queue_mode(&mut self, copy_events_per_s: f64) -> Result<QueueResult> {
        let cfg = self.cfg;
        let mut g = data::generator(30, self.today, cfg.users, cfg.events_per_day, 77);
        let days: Vec<NaiveDate> = g.days().collect();
        let mut load = Load::default();
        for (i, d) in days.iter().enumerate() {
            load.push(&g.day(i as u32, *d), cfg.batch)?;
        }
        let (events, bodies) = (load.events, Arc::new(load.bodies));

        let direct_key = create_key(&self.api_bin, &self.env, "bench_direct", "ingest").await?;
        let (api, ingest) = self.start_api_with(&self.env.clone(), &direct_key).await?;
        tracing::info!("queue mode: {events} events in direct mode");
        let direct = ingest.send(Arc::clone(&bodies), cfg.clients).await?;
        api.stop().await?;

        let nats_dir = self.path("nats");
        let _ = std::fs::remove_dir_all(&nats_dir);
        std::fs::create_dir_all(&nats_dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let nats_bin =
            std::env::var("STRATA_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        let nats = Proc::spawn(
            Path::new(&nats_bin),
            &[
                "-a",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-js",
                "-sd",
                &nats_dir.display().to_string(),
            ],
            &[],
            &self.path("nats.log"),
        )?;
        let mut env = self.env.clone();
        env.extend([
            (
                "STRATA_INGEST_QUEUE".to_owned(),
                format!("nats://127.0.0.1:{port}"),
            ),
            ("STRATA_QUEUE_STREAM".to_owned(), "BENCH".to_owned()),
            (
                "STRATA_QUEUE_MAX_BYTES".to_owned(),
                (16u64 << 30).to_string(),
            ),
        ]);
        let queued_key = create_key(&self.api_bin, &env, "bench_queued", "ingest").await?;
        let (api, ingest) = self.start_api_with(&env, &queued_key).await?;
        tracing::info!("queue mode: the same events through the queue");
        let accepted = ingest.send(Arc::clone(&bodies), cfg.clients).await?;
        let log = self.path("worker.log");
        let _ = std::fs::remove_file(&log);
        let worker = Proc::spawn(&self.api_bin, &["ingest-worker"], &env, &log)?;
        // Timed from the worker's first line (it has connected and begins
        // to pull): its start-up is not drain time.
        let up = Instant::now();
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("draining")
        {
            if up.elapsed() > Duration::from_secs(60) {
                return Err(failed("the ingest worker did not start; see worker.log"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let started = Instant::now();
        let project: i64 =
            sqlx::query_scalar("SELECT id FROM projects WHERE name = 'bench_queued'")
                .fetch_one(&self.pool)
                .await?;
        loop {
            let n: i64 = sqlx::query_scalar(
                "SELECT coalesce(sum(accepted), 0)::int8 FROM ingest_batches WHERE project_id = $1",
            )
            .bind(project)
            .fetch_one(&self.pool)
            .await?;
            if n as u64 >= events {
                break;
            }
            if started.elapsed() > Duration::from_secs(1800) {
                return Err(failed(format!(
                    "the worker applied {n} of {events} events in 30 minutes"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let drain_secs = secs(started);

        tracing::info!("queue mode: latency from 202 to applied");
        let mut g = data::generator(1, self.today, cfg.users, 10, 78);
        let mut lat = Vec::new();
        for _ in 0..200 {
            let body = data::ingest_body(&g.day(0, self.today))?;
            let batch = ingest.post_queued(body.into()).await?;
            let sent = Instant::now();
            loop {
                let applied: Option<i64> = sqlx::query_scalar(
                    "SELECT count(*) FROM ingest_batches WHERE batch_id = $1 HAVING count(*) = max(parts)",
                )
                .bind(batch)
                .fetch_optional(&self.pool)
                .await?;
                if applied.is_some() {
                    break;
                }
                if sent.elapsed() > Duration::from_secs(60) {
                    return Err(failed(format!("batch {batch} not applied within a minute")));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            lat.push(sent.elapsed().as_secs_f64() * 1e3);
        }
        worker.stop().await?;
        api.stop().await?;
        nats.stop().await?;
        Ok(QueueResult {
            events,
            direct_events_per_s: direct.per_sec(),
            accept_events_per_s: accepted.per_sec(),
            drain_events_per_s: events as f64 / drain_secs,
            copy_events_per_s,
            latency: Latency::of(&lat),
            worker_max_wait_ms: 200,
        })
    }
}
