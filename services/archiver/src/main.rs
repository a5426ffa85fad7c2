//! `strata-archiver`: moves hot day chunks to Parquet in object storage.
//! `strata-archiver` runs as a daemon on a cron schedule;
//! `strata-archiver run --once [--dry-run]` runs one pass;
//! `strata-archiver compact [--dry-run]` merges the files of cold days
//! that late events split;
//! `strata-archiver rollups rebuild` rebuilds the rollups of cold days
//! and seals the closed hot days again.
//! Wiring only.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use strata_archive::{ArchiveConfig, Archiver, FAIL_POINTS, RunOutcome};
use strata_runtime::config::{DatabaseArgs, S3Args, TieringArgs};
use tokio_cron_scheduler::{Job, JobScheduler};

#[derive(Debug, Parser)]
#[command(
    name = "strata-archiver",
    version,
    about = "Strata hot-to-cold archiver"
)]
struct Cli {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(flatten)]
    tiering: TieringArgs,
    #[command(flatten)]
    s3: S3Args,
    /// Cron schedule of the daemon (sec min hour day-of-month month day-of-week).
    #[arg(long, env = "STRATA_ARCHIVE_SCHEDULE", default_value = "0 5 * * * *")]
    schedule: String,
    /// Chunks committed together: one short table lock (which holds ingest
    /// for its duration) per group instead of one per chunk.
    #[arg(long, env = "STRATA_ARCHIVE_COMMIT_GROUP", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    commit_group: u16,
    /// Compaction: a cold day with more files than this is merged into one.
    #[arg(long, global = true, env = "STRATA_COMPACT_MAX_FILES", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..))]
    compact_max_files: u16,
    /// Compaction: so is a cold day with at least two files, one smaller
    /// than this many bytes.
    #[arg(long, global = true, env = "STRATA_COMPACT_MIN_BYTES", default_value_t = 8 * 1024 * 1024)]
    compact_min_bytes: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one archive pass now and exit: 0 when every eligible chunk moved.
    Run {
        /// Required, for clarity: this command never schedules.
        #[arg(long)]
        once: bool,
        /// Print what would move, move nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Merge each cold day that has more than --compact-max-files files, or
    /// several with one below --compact-min-bytes, into one file (the
    /// scheduled run does this too); exits non-zero when a day failed.
    Compact {
        /// Print the days that would be merged, merge nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The archive's DuckLake catalog (`strata_lake`, read by DuckDB).
    Lake {
        #[command(subcommand)]
        command: LakeCommand,
    },
    /// The exact rollups of cold days.
    Rollups {
        #[command(subcommand)]
        command: RollupsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum LakeCommand {
    /// Make the catalog's latest snapshot show exactly the manifest: add
    /// the cold files it lacks (their column statistics read from their
    /// footers), end those the manifest no longer lists, and record the
    /// cold store's root as its data path. Every archive run does this
    /// first; a deployment from before the catalog needs nothing else.
    Rebuild,
}

#[derive(Debug, Subcommand)]
enum RollupsCommand {
    /// Rebuild the rollups of cold days from their Parquet files (days
    /// archived before rollups existed, or whose rollup went stale); exits
    /// non-zero when a day could not be rebuilt.
    Rebuild {
        /// Only this project (its name); default: every project.
        #[arg(long)]
        project: Option<String>,
        /// First day, YYYY-MM-DD; default: the earliest cold day.
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last day, YYYY-MM-DD, inclusive; default: the latest cold day.
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
    },
}

/// Test hook: `STRATA_ARCHIVER_FAILPOINT=<point>` kills the process there.
fn failpoint_from_env() -> anyhow::Result<Option<strata_archive::FailPointHook>> {
    let Ok(point) = std::env::var("STRATA_ARCHIVER_FAILPOINT") else {
        return Ok(None);
    };
    anyhow::ensure!(
        FAIL_POINTS.contains(&point.as_str()),
        "STRATA_ARCHIVER_FAILPOINT must be one of {FAIL_POINTS:?}"
    );
    Ok(Some(Arc::new(move |at: &'static str| {
        if at == point {
            tracing::error!(failpoint = at, "failpoint reached; exiting abruptly");
            std::process::exit(86);
        }
    })))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    strata_runtime::telemetry::run_main("strata-archiver", run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let hot = cli.db.open_hot().await.context("applying migrations")?;
    let cold = cli.tiering.cold_store(&cli.s3)?;
    let config = ArchiveConfig {
        hot_retention: cli.tiering.hot_retention,
        cold_delete_grace: cli.tiering.cold_delete_grace,
        lake_history: cli.tiering.lake_history,
        failpoint: failpoint_from_env()?,
        commit_group: usize::from(cli.commit_group),
        compact_max_files: usize::from(cli.compact_max_files),
        compact_min_bytes: cli.compact_min_bytes,
        ..ArchiveConfig::default()
    };
    let archiver = Archiver::new(hot, cold, config);
    match cli.command {
        Some(Command::Run { once, dry_run }) => {
            anyhow::ensure!(
                once,
                "use `strata-archiver run --once`, or no subcommand for the daemon"
            );
            if dry_run {
                dry_run_report(&archiver).await
            } else {
                run_once(&archiver).await
            }
        }
        Some(Command::Compact { dry_run }) => compact(&archiver, dry_run).await,
        Some(Command::Lake {
            command: LakeCommand::Rebuild,
        }) => rebuild_lake(&archiver).await,
        Some(Command::Rollups {
            command: RollupsCommand::Rebuild { project, from, to },
        }) => rebuild_rollups(&archiver, project, from, to).await,
        None => daemon(archiver, &cli.schedule).await,
    }
}

#[allow(clippy::print_stdout)]
async fn rebuild_lake(archiver: &Archiver) -> anyhow::Result<()> {
    let done = archiver.sync_lake().await?;
    println!(
        "lake catalog: {} file(s) added, {} ended",
        done.added, done.ended
    );
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn rebuild_rollups(
    archiver: &Archiver,
    project: Option<String>,
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
) -> anyhow::Result<()> {
    let project = match project {
        Some(name) => Some(archiver.find_project(&name).await?),
        None => None,
    };
    if let (Some(from), Some(to)) = (from, to) {
        anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
    }
    let report = archiver.rebuild_rollups(project, from, to).await?;
    println!(
        "{} cold day(s): {} rebuilt, {} changed while read (left as archived), {} failed; {} closed hot day(s) sealed again",
        report.days,
        report.rebuilt,
        report.changed,
        report.failed.len(),
        report.hot_days_sealed
    );
    for (p, day, reason) in &report.failed {
        println!("failed\tproject {p}\t{day}\t{reason}");
    }
    anyhow::ensure!(
        report.failed.is_empty(),
        "{} day(s) could not be rebuilt; their stats keep coming from their files",
        report.failed.len()
    );
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn compact(archiver: &Archiver, dry_run: bool) -> anyhow::Result<()> {
    if dry_run {
        let days = archiver.compaction_plan().await?;
        println!("{} day(s) would be compacted:", days.len());
        for d in days {
            println!(
                "project {}\t{}\t{} files\t{} bytes",
                d.project,
                d.day,
                d.files.len(),
                d.bytes()
            );
        }
        return Ok(());
    }
    let due = archiver.compaction_plan().await?.len();
    let report = match archiver.compact_once().await? {
        RunOutcome::Skipped => anyhow::bail!("another archiver is running; nothing was done"),
        RunOutcome::Completed(report) => report,
    };
    for c in &report.compacted {
        println!(
            "project {}\t{}\t{} files -> 1\t{} rows\t{} -> {} bytes",
            c.project_id, c.day, c.files_before, c.rows, c.bytes_before, c.bytes_after
        );
    }
    println!("{} day(s) compacted", report.compacted.len());
    if let Some(e) = report.error {
        anyhow::bail!("compaction run {} stopped: {e}", report.run_id);
    }
    anyhow::ensure!(
        report.compacted.len() >= due,
        "{} day(s) could not be compacted (see the log); the next run tries again",
        due - report.compacted.len()
    );
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn dry_run_report(archiver: &Archiver) -> anyhow::Result<()> {
    let chunks = archiver.plan().await?;
    println!(
        "{} chunk(s) end before {} and would move:",
        chunks.len(),
        archiver.cutoff().to_rfc3339()
    );
    for c in chunks {
        println!(
            "{}\t{}\t{} .. {}",
            c.day(),
            c.name,
            c.start.to_rfc3339(),
            c.end.to_rfc3339()
        );
    }
    Ok(())
}

async fn run_once(archiver: &Archiver) -> anyhow::Result<()> {
    match archiver.run_once().await? {
        RunOutcome::Skipped => anyhow::bail!("another archiver is running; nothing was done"),
        RunOutcome::Completed(report) if report.succeeded() => Ok(()),
        RunOutcome::Completed(report) => {
            let failed: Vec<String> = report
                .chunks
                .iter()
                .filter_map(|c| match &c.outcome {
                    strata_archive::ChunkOutcome::Failed(e) => Some(format!("{}: {e}", c.day)),
                    strata_archive::ChunkOutcome::Archived { .. } => None,
                })
                .collect();
            anyhow::bail!(
                "archive run {} incomplete: {} chunk(s) failed [{}], {} not attempted{}; they stay hot",
                report.run_id,
                failed.len(),
                failed.join("; "),
                report.not_attempted.len(),
                report.error.map(|e| format!(" ({e})")).unwrap_or_default()
            )
        }
    }
}

async fn daemon(archiver: Archiver, schedule: &str) -> anyhow::Result<()> {
    let scheduler = JobScheduler::new().await?;
    let job = Job::new_async(schedule, move |_id, _lock| {
        let archiver = archiver.clone();
        Box::pin(async move {
            match archiver.run_once().await {
                Ok(RunOutcome::Completed(r)) if !r.succeeded() => {
                    tracing::warn!(
                        run_id = r.run_id,
                        "archive run incomplete; retried next schedule"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "archive run failed; retried next schedule"),
            }
        })
    })
    .with_context(|| format!("invalid STRATA_ARCHIVE_SCHEDULE {schedule:?}"))?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    tracing::info!(schedule, "strata-archiver daemon started");
    strata_runtime::shutdown_signal().await;
    tracing::info!("stopping; a run in progress is abandoned and its chunks stay hot");
    let mut scheduler = scheduler;
    tokio::time::timeout(Duration::from_secs(10), scheduler.shutdown())
        .await
        .ok();
    Ok(())
}
