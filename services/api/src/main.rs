//! `strata-api`: the HTTP server and its admin commands. Wiring only; the
//! logic lives in `libs/`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use strata_core::config::{DatabaseArgs, ServeArgs};
use strata_hot::{HotStore, PoolConfig};
use strata_http::{AppState, ServerConfig};
use strata_model::{IngestLimits, ProjectName, Scopes};

#[derive(Debug, Parser)]
#[command(name = "strata-api", version, about = "Strata event analytics API")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// `strata-api` with no subcommand serves, configured from the environment.
#[derive(Debug, Parser)]
#[command(name = "strata-api")]
struct ServeFromEnv {
    #[command(flatten)]
    args: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (the default). Applies migrations first.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Manage API keys.
    Keys {
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key (and the project, if new). The key is printed once, alone
    /// on the last line of stdout.
    Create {
        #[arg(long)]
        project: String,
        /// Comma-separated: ingest, read, admin.
        #[arg(long, default_value = "ingest,read")]
        scopes: String,
    },
    /// Revoke a key by its id, its listed prefix, or the key itself.
    Revoke { key_prefix_or_id: String },
    /// List keys (never their secrets).
    List,
}

fn pool_config(db: &DatabaseArgs) -> PoolConfig {
    PoolConfig {
        max_connections: db.database_max_connections,
        acquire_timeout: db.database_acquire_timeout,
    }
}

async fn open_migrated(db: &DatabaseArgs) -> anyhow::Result<HotStore> {
    let pool = strata_hot::lazy_pool(&db.database_url, &pool_config(db))?;
    strata_hot::migrate(&pool)
        .await
        .context("applying migrations")?;
    Ok(HotStore::open(pool).await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    strata_core::telemetry::init_logging()?;
    match cli.command {
        None => serve(ServeFromEnv::parse().args).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Migrate(db)) => {
            open_migrated(&db).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Some(Command::Keys { db, command }) => keys(&db, command).await,
    }
}

#[allow(clippy::print_stdout)]
async fn keys(db: &DatabaseArgs, command: KeysCommand) -> anyhow::Result<()> {
    let hot = open_migrated(db).await?;
    match command {
        KeysCommand::Create { project, scopes } => {
            let project = ProjectName::parse(&project)?;
            let scopes = Scopes::parse_list(&scopes)?;
            let (key, info) = hot.create_key(&project, &scopes).await?;
            println!(
                "created key {} ({}) for project {} with scopes {}; it is shown only once:",
                info.id, info.prefix, info.project, info.scopes
            );
            println!("{}", key.expose());
        }
        KeysCommand::Revoke { key_prefix_or_id } => {
            let info = hot.revoke_key(&key_prefix_or_id).await?;
            println!(
                "revoked key {} ({}) of project {}",
                info.id, info.prefix, info.project
            );
        }
        KeysCommand::List => {
            println!("id\tproject\tprefix\tscopes\tcreated_at\trevoked_at");
            for k in hot.list_keys().await? {
                let revoked = k.revoked_at.map(|t| t.to_rfc3339()).unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.project,
                    k.prefix,
                    k.scopes,
                    k.created_at.to_rfc3339(),
                    revoked
                );
            }
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let hot = open_migrated(&args.db).await?;
    if args.redis_url.is_some() {
        tracing::info!("STRATA_REDIS_URL is set; Redis is not used by this version yet");
    }
    strata_hot::spawn_dedup_pruner(hot.clone(), args.dedup_window, args.dedup_prune_interval);
    let state = AppState {
        hot,
        limits: IngestLimits::from(&args.limits),
    };
    let config = ServerConfig {
        request_timeout: args.request_timeout,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "strata-api serving");
    strata_http::serve(listener, state, &config, async {
        strata_core::shutdown_signal().await;
        tracing::info!("finishing in-flight requests");
    })
    .await?;
    tracing::info!("strata-api stopped");
    Ok(())
}
