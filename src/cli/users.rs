//! `arbiter users`: the people who sign in to the console.

use anyhow::{Context, bail};
use arbiter_console::users;
use arbiter_db::Db;
use clap::Subcommand;
use std::io::Read;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a console user; the password is read from standard input.
    Create {
        /// The tenant the user works for.
        #[arg(long)]
        tenant: String,
        /// The user's id (an id, not a name: it goes into the audit log).
        #[arg(long)]
        user: String,
        /// admin, reviewer, auditor or analyst.
        #[arg(long)]
        role: String,
        /// Read the password from standard input (its first line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List console users (never their password hashes).
    List {
        /// Only this tenant's users.
        #[arg(long)]
        tenant: Option<String>,
        /// One JSON object per user per line.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: they cannot sign in, and their sessions end at once.
    Disable {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The user's id.
        #[arg(long)]
        user: String,
    },
    /// Give a user a new password, read from standard input; their sessions end.
    ResetPassword {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The user's id.
        #[arg(long)]
        user: String,
        /// Read the password from standard input (its first line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

/// The first line of standard input, without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)
        .context("while reading the password from standard input")?;
    let password = input.lines().next().unwrap_or_default().to_owned();
    if password.is_empty() {
        bail!("the password on standard input is empty; give one of 1 to 1024 bytes");
    }
    Ok(password)
}

pub async fn run(db: &Db, command: UsersCommand) -> anyhow::Result<ExitCode> {
    match command {
        UsersCommand::Create {
            tenant,
            user,
            role,
            password_stdin: _,
        } => {
            // The role and ids are checked before the password is read.
            role.parse::<arbiter_console::Role>()
                .map_err(|err| anyhow::anyhow!("--{err}"))?;
            users::check_id("tenant", &tenant).map_err(|err| anyhow::anyhow!("--{err}"))?;
            users::check_id("user", &user).map_err(|err| anyhow::anyhow!("--{err}"))?;
            let password = read_password()?;
            let created = users::create(
                db.writer(),
                &tenant,
                &user,
                &role,
                &password,
                chrono::Utc::now(),
            )
            .await?;
            println!(
                "created {} user {} of tenant {}",
                created.role, created.user, created.tenant
            );
        }
        UsersCommand::List { tenant, json } => {
            let all = users::list(db.conn(), tenant.as_deref()).await?;
            if json {
                for user in &all {
                    println!("{}", serde_json::to_string(user)?);
                }
            } else if all.is_empty() {
                println!("no console users");
            } else {
                println!(
                    "{:<20} {:<24} {:<9} {:<8} created",
                    "tenant", "user", "role", "status"
                );
                for user in &all {
                    println!(
                        "{:<20} {:<24} {:<9} {:<8} {}",
                        user.tenant,
                        user.user,
                        user.role,
                        if user.disabled { "disabled" } else { "active" },
                        user.created_at.format("%Y-%m-%dT%H:%M:%SZ")
                    );
                }
            }
        }
        UsersCommand::Disable { tenant, user } => {
            users::set_disabled(db.writer(), &tenant, &user, true).await?;
            println!("disabled user {user} of tenant {tenant}; their sessions have ended");
        }
        UsersCommand::ResetPassword {
            tenant,
            user,
            password_stdin: _,
        } => {
            let password = read_password()?;
            users::reset_password(db.writer(), &tenant, &user, &password).await?;
            println!(
                "reset the password of user {user} of tenant {tenant}; their sessions have ended"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
