//! `strata-archiver`: moves hot day chunks to Parquet in object storage.
//! This version parses and validates its configuration only; the archive job
//! itself is tracked as the archiver issue.

use clap::{Parser, Subcommand};
use strata_core::config::{DatabaseArgs, TieringArgs};

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
    /// Cron schedule of the daemon (sec min hour day month weekday).
    #[arg(long, env = "STRATA_ARCHIVE_SCHEDULE", default_value = "0 5 * * * *")]
    schedule: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one archive pass.
    Run {
        #[arg(long)]
        once: bool,
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    strata_core::telemetry::init_logging()?;
    tracing::info!(
        cold_url = %cli.tiering.cold_url,
        hot_retention = ?cli.tiering.hot_retention,
        schedule = %cli.schedule,
        command = ?cli.command,
        "configuration parsed"
    );
    anyhow::bail!("archiving is not implemented in this version of strata-archiver")
}
