//! Command-line arguments and dispatch.

mod audit;
mod keys;
mod policy;
mod replay;
mod review;
mod scan;
mod serve;
mod users;
mod webhooks;

use anyhow::Context;
use arbiter_db::{Db, DbTarget};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arbiter: image-authenticity detection wired into claims, moderation and KYC workflows.
#[derive(Debug, Parser)]
#[command(name = "arbiter", version, about)]
pub struct Cli {
    /// Where the embedded database lives [default: .arbiter].
    #[arg(long, global = true, env = "ARBITER_DATA_DIR")]
    data_dir: Option<PathBuf>,

    /// A PostgreSQL URL (postgres://...) to use instead of the embedded SQLite file.
    #[arg(
        long,
        global = true,
        env = "ARBITER_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Analyse image files, decide what to do with each under a flow's policy, and record the
    /// decisions in the audit log.
    Scan(scan::ScanArgs),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Serve the HTTP API.
    Serve(serve::ServeArgs),
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Check, test, explain, diff and backtest policy files.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Webhook secrets and endpoints.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Re-decide a recorded decision from its recorded facts under its recorded policy text (and,
    /// with --image, analyse the image again): exit 0 when identical, 1 with the differences.
    Replay(replay::ReplayArgs),
    /// List and resolve human-review queue items.
    #[command(subcommand)]
    Review(review::ReviewCommand),
    /// Create, list and disable the people who sign in to the console, and reset passwords.
    #[command(subcommand)]
    Users(users::UsersCommand),
}

impl Cli {
    async fn connect(&self) -> anyhow::Result<Db> {
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(".arbiter"));
        let target = DbTarget::new(self.database_url.clone(), &data_dir);
        let shown = match &target {
            DbTarget::DataDir(dir) => format!("the embedded database in {}", dir.display()),
            DbTarget::Url(_) => "the database at ARBITER_DATABASE_URL".to_owned(),
        };
        Db::connect(&target)
            .await
            .with_context(|| format!("while opening {shown}"))
    }
}

/// Runs a parsed command line; the exit code says whether everything succeeded.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => return serve::run(args, cli.data_dir, cli.database_url).await,
        // Checking, testing, explaining and diffing policy files needs no database.
        Command::Policy(command) if !command.needs_database() => {
            crate::logging::init_command();
            return policy::run(None, command).await;
        }
        _ => {}
    }
    crate::logging::init_command();
    let db = cli.connect().await?;
    let result = match cli.command {
        Command::Scan(args) => scan::run(db.clone(), args).await,
        Command::Audit(command) => audit::run(&db, command).await,
        Command::Keys(command) => keys::run(&db, command).await,
        Command::Policy(command) => policy::run(Some(&db), command).await,
        Command::Webhooks(command) => webhooks::run(&db, cli.data_dir.clone(), command).await,
        Command::Review(command) => review::run(&db, command).await,
        Command::Replay(args) => replay::run(&db, args).await,
        Command::Users(command) => users::run(&db, command).await,
        Command::Serve(_) => unreachable!("served above"),
    };
    db.clone().close().await.ok();
    result
}
