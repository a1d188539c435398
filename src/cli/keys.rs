//! `arbiter keys`: API keys.

use anyhow::{Context, bail};
use arbiter_config::Config;
use arbiter_core::KeyId;
use arbiter_db::Db;
use arbiter_db::sea_orm::TransactionTrait;
use arbiter_server::keys::{self, NewKey, Scope};
use clap::Subcommand;
use ipnet::IpNet;
use serde_json::json;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once and stored only as a hash.
    Create {
        /// The tenant the key acts for.
        #[arg(long)]
        tenant: String,
        /// A label for people.
        #[arg(long)]
        name: String,
        /// The rate-limit plan [default: rate_limits.default_plan].
        #[arg(long)]
        plan: Option<String>,
        /// Comma-separated scopes: analyze, batch, requests:read, audit:read, policies:read,
        /// webhooks, review [default: analyze,batch,requests:read].
        #[arg(long, value_delimiter = ',')]
        scope: Vec<Scope>,
        /// A network (CIDR) the key may be used from; repeatable; none allows any.
        #[arg(long = "allow-ip")]
        allow_ip: Vec<IpNet>,
        /// The flow whose policy decides the images uploaded with this key through the Reality
        /// Defender–compatible endpoints (insurance, ugc, kyc) [default: none, a plain analysis].
        #[arg(long)]
        flow: Option<String>,
        /// Print `{"id", "key", ...}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets).
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
        /// One JSON object per key per line.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; it gets 401 at once.
    Revoke {
        /// The key's id (key_...).
        id: KeyId,
    },
}

pub async fn run(db: &Db, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let now = chrono::Utc::now();
    match command {
        KeysCommand::Create {
            tenant,
            name,
            plan,
            scope,
            allow_ip,
            flow,
            json,
        } => {
            let config =
                Config::load(None).context("while loading the configuration for the plans")?;
            let plan = plan.unwrap_or_else(|| config.rate_limits.default_plan.clone());
            if !config.rate_limits.plans.contains_key(&plan) {
                bail!(
                    "--plan {plan:?} is not one of the plans ({})",
                    config.plan_names()
                );
            }
            if let Err(why) = keys::check_tenant(&tenant) {
                bail!("--{why}");
            }
            if let Some(flow) = &flow
                && !config.flows.enabled(flow)
            {
                let on: Vec<&str> = config.flows.switched_on().collect();
                bail!(
                    "--flow {flow:?} is not a flow that is switched on ({})",
                    on.join(", ")
                );
            }
            let scopes = if scope.is_empty() {
                Scope::DEFAULT.to_vec()
            } else {
                scope
            };
            let new = NewKey {
                tenant,
                name,
                plan,
                scopes,
                allow_ips: allow_ip,
                flow,
            };
            let txn = db.begin_write().await?;
            let (record, secret) = keys::create(&txn, new, "cli", now).await?;
            txn.commit().await?;
            if json {
                println!(
                    "{}",
                    json!({"id": record.id, "key": secret.expose(), "tenant": record.tenant, "name": record.name, "plan": record.plan, "scopes": record.scopes, "allow_ips": record.allow_ips, "flow": record.flow})
                );
            } else {
                println!(
                    "created {} for tenant {} (plan {})",
                    record.id, record.tenant, record.plan
                );
                println!("key: {}", secret.expose());
                println!("Keep it now: it is shown once and stored only as a hash.");
            }
        }
        KeysCommand::List { tenant, json } => {
            let keys = keys::list(db.conn(), tenant.as_deref()).await?;
            if !json {
                println!(
                    "{:<31} {:<12} {:<16} {:<10} {:<8} SCOPES",
                    "ID", "TENANT", "NAME", "PLAN", "STATUS"
                );
            }
            for key in keys {
                if json {
                    println!("{}", serde_json::to_string(&key)?);
                } else {
                    let scopes: Vec<_> = key.scopes.iter().map(|s| s.as_str()).collect();
                    let status = if key.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<31} {:<12} {:<16} {:<10} {:<8} {}",
                        key.id,
                        key.tenant,
                        key.name,
                        key.plan,
                        status,
                        scopes.join(",")
                    );
                }
            }
        }
        KeysCommand::Revoke { id } => {
            let txn = db.conn().begin().await?;
            let revoked = keys::revoke(&txn, &id, "cli", now).await?;
            txn.commit().await?;
            match revoked {
                Some(key) => println!("revoked {} (tenant {})", key.id, key.tenant),
                None => bail!("no active key {id}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
