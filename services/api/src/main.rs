//! `strata-api`: the HTTP server and its admin commands. Wiring only; the
//! logic lives in `libs/`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use strata_archive::{ArchiveConfig, Archiver};
use strata_http::app::App;
use strata_model::{GeneratorSpec, ProjectName, RetentionDays, Scope, Scopes};
use strata_runtime::config::{DatabaseArgs, QueueArgs, S3Args, ServeArgs, TieringArgs, WorkerArgs};
use strata_store::{KeyInfo, KeyLimit, Store};

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
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Manage API keys.
    Keys {
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage projects.
    Projects {
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(subcommand)]
        command: ProjectsCommand,
    },
    /// Erase users' events from both tiers (ADR-032).
    Users(Box<UsersArgs>),
    /// Load generated demo history (months of events) and archive what is
    /// past the hot retention, so that both tiers answer.
    DemoData(DemoArgs),
    /// Drain the ingest queue into PostgreSQL (queue mode, ADR-034): run
    /// one or more beside `serve` when STRATA_INGEST_QUEUE is set.
    IngestWorker(Box<IngestWorkerArgs>),
    /// Print the OpenAPI document (what `/openapi.json` serves).
    Openapi,
}

#[derive(Debug, clap::Args)]
struct IngestWorkerArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(flatten)]
    queue: QueueArgs,
    #[command(flatten)]
    worker: WorkerArgs,
}

/// The hot and cold stores of a command that runs archive work.
#[derive(Debug, clap::Args)]
struct Stores {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(flatten)]
    tiering: TieringArgs,
    #[command(flatten)]
    s3: S3Args,
}

impl Stores {
    /// An archiver over `hot` and this cold store, with the defaults but
    /// the hot retention.
    fn archiver(&self, hot: &Store) -> anyhow::Result<Archiver> {
        Ok(Archiver::new(
            hot.clone(),
            self.tiering.cold_store(&self.s3)?,
            ArchiveConfig {
                hot_retention: self.tiering.hot_retention,
                cold_delete_grace: self.tiering.cold_delete_grace,
                lake_history: self.tiering.lake_history,
                ..ArchiveConfig::default()
            },
        ))
    }
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    #[command(flatten)]
    stores: Stores,
    /// Project to load into (created if new).
    #[arg(long, default_value = "demo")]
    project: String,
    /// Days of history, ending today.
    #[arg(long, default_value_t = 120)]
    days: u32,
    /// Distinct users over the whole period.
    #[arg(long, default_value_t = 5_000)]
    users: u32,
    #[arg(long, default_value_t = 2_000)]
    events_per_day: u32,
    /// Same seed, same events.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Debug, clap::Args)]
struct UsersArgs {
    #[command(flatten)]
    stores: Stores,
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Erase every stored event of a user, in both tiers, with the user's
    /// first-seen record; prints the erasure's audit record. Runs the
    /// erasure here unless an archiver is running, which then does it.
    Erase {
        #[arg(long)]
        project: String,
        /// The user id exactly as it was sent with the events.
        #[arg(long)]
        user: String,
        /// Only record the request (the archiver's next run does it).
        #[arg(long)]
        no_wait: bool,
    },
    /// Show an erasure's progress or audit record.
    Erasure { id: i64 },
}

#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// Requests per second refilled into this key's bucket.
    #[arg(long, requires = "burst")]
    rate: Option<f64>,
    /// Requests this key may send at once.
    #[arg(long, requires = "rate")]
    burst: Option<u32>,
}

impl LimitArgs {
    fn parse(&self) -> anyhow::Result<Option<KeyLimit>> {
        Ok(match (self.rate, self.burst) {
            (Some(rate), Some(burst)) => Some(KeyLimit::new(rate, burst)?),
            _ => None,
        })
    }
}

fn limit_text(limit: Option<KeyLimit>) -> String {
    limit.map_or_else(
        || "default".to_owned(),
        |l| format!("{}/s burst {}", l.rate_per_sec, l.burst),
    )
}

#[derive(Debug, Subcommand)]
enum ProjectsCommand {
    /// Keep a project's events for a number of days, today included
    /// (`400d`), or `forever`. Stats stop answering from earlier days at
    /// once; the archiver's next run deletes them from both tiers.
    SetRetention { project: String, retention: String },
    /// Declare a top-level property (at most 8 per project) whose values
    /// the rollups of closed days keep, so breakdowns by it
    /// (`group_by=property:<key>`) answer from them. Days rolled up before
    /// get its values from `strata-archiver rollups rebuild`.
    DeclareProperty { project: String, property: String },
    /// Stop keeping a declared property's values in new rollups.
    UndeclareProperty { project: String, property: String },
    /// List projects with their retention.
    List,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key (and the project, if new). The key is printed once, alone
    /// on the last line of stdout.
    Create {
        /// The project the key belongs to (created if new).
        #[arg(long, required_unless_present = "operator")]
        project: Option<String>,
        /// Comma-separated: ingest, read, admin (admin: the project's own
        /// admin views).
        #[arg(long, default_value = "ingest,read", conflicts_with = "operator")]
        scopes: String,
        /// An operator key instead: belongs to no project, sees every
        /// project's footprint and runs the archiver (`/v1/admin/*`), and
        /// can neither ingest nor read events.
        #[arg(long, conflicts_with = "project")]
        operator: bool,
        /// A client key instead, fit to embed in a browser or mobile app:
        /// the `ingest` scope only, and its rate limit (`--rate`/`--burst`
        /// or the server's default) applies to each client address on its
        /// own rather than to the key as a whole.
        #[arg(long, requires = "project", conflicts_with_all = ["scopes", "operator"])]
        client: bool,
        #[command(flatten)]
        limit: LimitArgs,
    },
    /// Set a key's own rate limit (`--rate` and `--burst`), or return it to
    /// the server's defaults (`--default`).
    SetLimit {
        key_prefix_or_id: String,
        #[command(flatten)]
        limit: LimitArgs,
        /// Use the server's default limit again.
        #[arg(long, conflicts_with_all = ["rate", "burst"])]
        default: bool,
    },
    /// Revoke a key by its id, its listed prefix, or the key itself.
    Revoke { key_prefix_or_id: String },
    /// List keys (never their secrets).
    List,
}

async fn open_migrated(db: &DatabaseArgs) -> anyhow::Result<Store> {
    db.open_hot().await.context("applying migrations")
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    strata_runtime::telemetry::run_main("strata-api", run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => serve(ServeFromEnv::parse().args).await,
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::Migrate(db)) => {
            open_migrated(&db).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Some(Command::Keys { db, command }) => keys(&db, command).await,
        Some(Command::Projects { db, command }) => projects(&db, command).await,
        Some(Command::Users(args)) => users(*args).await,
        Some(Command::DemoData(args)) => demo_data(args).await,
        Some(Command::IngestWorker(args)) => ingest_worker(*args).await,
        Some(Command::Openapi) => {
            #[allow(clippy::print_stdout)]
            {
                print!("{}", strata_http::openapi::document());
            }
            Ok(())
        }
    }
}

#[allow(clippy::print_stdout)]
async fn demo_data(args: DemoArgs) -> anyhow::Result<()> {
    let hot = open_migrated(&args.stores.db).await?;
    let archiver = args.stores.archiver(&hot)?;
    let spec = GeneratorSpec {
        days: args.days,
        last_day: chrono::Utc::now().date_naive(),
        users: args.users,
        events_per_day: args.events_per_day,
        seed: args.seed,
    };
    let project = ProjectName::parse(&args.project)?;
    let r = strata_archive::load_demo(&hot, &archiver, &project, spec).await?;
    println!(
        "project {} (id {}): {} events stored ({} late, in an archived day), {} day chunk(s) archived",
        project.as_str(),
        r.project_id,
        r.events,
        r.late_events,
        r.chunks_archived
    );
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn users(args: UsersArgs) -> anyhow::Result<()> {
    let hot = open_migrated(&args.stores.db).await?;
    let record = match args.command {
        UsersCommand::Erasure { id } => hot
            .erasure(None, id)
            .await?
            .with_context(|| format!("no erasure {id}"))?,
        UsersCommand::Erase {
            project,
            user,
            no_wait,
        } => {
            let name = ProjectName::parse(&project)?;
            let user = strata_model::UserId::parse(user)?;
            let id = hot
                .find_project(&name)
                .await?
                .with_context(|| format!("project {project} does not exist"))?;
            let (mut record, _) = hot
                .request_erasure(id, user.as_str(), "strata-api users erase")
                .await?;
            if !no_wait {
                let archiver = args.stores.archiver(&hot)?;
                // A running archiver does the erasure in its own run (or
                // its next): wait for it. `deleting`: the user is gone from
                // every answer; the objects replaced wait out the grace
                // period (STRATA_COLD_DELETE_GRACE) and a later run
                // deletes them.
                let open = |r: &strata_store::ErasureRecord| {
                    matches!(r.status.as_str(), "pending" | "running")
                };
                while open(&record) {
                    let ran = match archiver.erase_once().await? {
                        strata_archive::RunOutcome::Completed(_) => true,
                        strata_archive::RunOutcome::Skipped => {
                            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                            false
                        }
                    };
                    record = hot
                        .erasure(None, record.id)
                        .await?
                        .context("the erasure record disappeared")?;
                    if ran && open(&record) {
                        anyhow::bail!(
                            "erasure {} not finished (the archiver's next run tries again): {}",
                            record.id,
                            record.error.as_deref().unwrap_or("unknown error")
                        );
                    }
                }
            }
            record
        }
    };
    println!("{}", serde_json::to_string_pretty(&record)?);
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn projects(db: &DatabaseArgs, command: ProjectsCommand) -> anyhow::Result<()> {
    let hot = open_migrated(db).await?;
    let shown = |d: Option<u32>| d.map_or_else(|| "forever".to_owned(), |d| format!("{d}d"));
    match command {
        ProjectsCommand::SetRetention { project, retention } => {
            let name = ProjectName::parse(&project)?;
            let days = RetentionDays::parse(&retention)?;
            let id = hot
                .find_project(&name)
                .await?
                .with_context(|| format!("project {project} does not exist"))?;
            hot.set_retention(id, days).await?;
            let horizon = days.map_or_else(String::new, |d| {
                format!(
                    "; stats answer from {} on",
                    d.horizon(chrono::Utc::now().date_naive())
                )
            });
            println!(
                "project {project}: retention {}{horizon}",
                shown(days.map(|d| d.days()))
            );
        }
        ProjectsCommand::DeclareProperty { project, property } => {
            declared(&hot, &project, &property, true).await?;
        }
        ProjectsCommand::UndeclareProperty { project, property } => {
            declared(&hot, &project, &property, false).await?;
        }
        ProjectsCommand::List => {
            println!("id\tproject\tretention");
            for p in hot.tier_summary().await? {
                println!(
                    "{}\t{}\t{}",
                    p.project_id,
                    p.project,
                    shown(p.retention_days)
                );
            }
        }
    }
    Ok(())
}

/// Declares (or undeclares) `property` of `project` and prints what is
/// declared then.
#[allow(clippy::print_stdout)]
async fn declared(hot: &Store, project: &str, property: &str, declare: bool) -> anyhow::Result<()> {
    let name = ProjectName::parse(project)?;
    let key = strata_model::PropertyKey::parse(property)?;
    let id = hot
        .find_project(&name)
        .await?
        .with_context(|| format!("project {project} does not exist"))?;
    let declared = if declare {
        hot.declare_property(id, &key).await?
    } else {
        hot.undeclare_property(id, &key).await?
    };
    let list = if declared.is_empty() {
        "(none)".to_owned()
    } else {
        declared.join(", ")
    };
    println!("project {project}: declared properties {list}");
    if declare {
        println!(
            "days closed from now on keep its values; `strata-archiver rollups rebuild` adds them to earlier days"
        );
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn keys(db: &DatabaseArgs, command: KeysCommand) -> anyhow::Result<()> {
    let hot = open_migrated(db).await?;
    match command {
        KeysCommand::Create {
            project,
            scopes,
            operator,
            client,
            limit,
        } => {
            let (key, info) = match project {
                Some(project) if client => {
                    let project = ProjectName::parse(&project)?;
                    hot.create_client_key(&project, limit.parse()?).await?
                }
                Some(project) if !operator => {
                    let project = ProjectName::parse(&project)?;
                    let scopes = Scopes::parse_list(&scopes)?;
                    hot.create_key(&project, &scopes, limit.parse()?).await?
                }
                _ => hot.create_operator_key(limit.parse()?).await?,
            };
            println!(
                "created {} key {} ({}) for project {} with scopes {}, rate limit {}; it is shown only once:",
                key_kind(&info),
                info.id,
                info.prefix,
                info.project,
                info.scopes,
                limit_text(info.limit)
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
        KeysCommand::SetLimit {
            key_prefix_or_id,
            limit,
            default,
        } => {
            let limit = limit.parse()?;
            anyhow::ensure!(
                default || limit.is_some(),
                "give --rate and --burst, or --default"
            );
            let info = hot.set_key_limit(&key_prefix_or_id, limit).await?;
            println!(
                "key {} ({}) of project {}: rate limit {}",
                info.id,
                info.prefix,
                info.project,
                limit_text(info.limit)
            );
        }
        KeysCommand::List => {
            println!("id\tproject\tprefix\tscopes\tcreated_at\trevoked_at\trate_limit\tkind");
            for k in hot.list_keys().await? {
                let revoked = k.revoked_at.map(|t| t.to_rfc3339()).unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.project,
                    k.prefix,
                    k.scopes,
                    k.created_at.to_rfc3339(),
                    revoked,
                    limit_text(k.limit),
                    key_kind(&k)
                );
            }
        }
    }
    Ok(())
}

/// How `keys create` and `keys list` name a key's kind.
fn key_kind(info: &KeyInfo) -> &'static str {
    if info.client {
        "client"
    } else if info.scopes.contains(Scope::Operator) {
        "operator"
    } else {
        "project"
    }
}

async fn ingest_worker(args: IngestWorkerArgs) -> anyhow::Result<()> {
    let cfg = args.queue.config().context(
        "STRATA_INGEST_QUEUE (--ingest-queue) must name the queue, e.g. nats://127.0.0.1:4222",
    )?;
    let shutdown = strata_runtime::shutdown_signal();
    tokio::pin!(shutdown);
    // PostgreSQL may be down while the queue fills: wait for it.
    let hot = loop {
        match open_migrated(&args.db).await {
            Ok(hot) => break hot,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "ingest worker: waiting for PostgreSQL");
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                }
            }
        }
    };
    // Ready the dedup filters as `serve` does, so claims check new ids
    // against them instead of PostgreSQL (the worker does not wait: until
    // then ids are looked up, slower but exact).
    {
        let hot = hot.clone();
        tokio::spawn(async move {
            if let Err(e) = hot.warm_dedup().await {
                tracing::warn!(error = %e, "dedup records not warmed; the first transaction will");
            }
        });
    }
    let stream = cfg.stream.clone();
    let queue = strata_queue::Queue::connect(cfg).await?;
    let worker = strata_queue::Worker::new(hot, queue, args.worker.config());
    tracing::info!(stream = %stream, "ingest worker draining");
    #[allow(clippy::print_stdout)]
    {
        println!("strata-api ingest-worker draining {stream}");
    }
    let report = worker.run(shutdown).await;
    tracing::info!(?report, "ingest worker stopped");
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let app = App::build(&args).await.map_err(|e| match e {
        // The only hot-tier step of the build is opening (and migrating) it.
        strata_http::ApiError::Store(e) => anyhow::Error::new(e).context("applying migrations"),
        other => anyhow::Error::new(other),
    })?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(listen = %addr, "strata-api serving");
    // The one line serve prints on stdout: where it listens (with
    // `--listen 127.0.0.1:0`, the port the system chose).
    #[allow(clippy::print_stdout)]
    {
        println!("strata-api listening on http://{addr}");
    }
    app.serve(listener, async {
        strata_runtime::shutdown_signal().await;
        tracing::info!("finishing in-flight requests");
    })
    .await?;
    tracing::info!("strata-api stopped");
    Ok(())
}
