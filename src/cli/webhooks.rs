//! `arbiter webhooks`: the tenant webhook secret and registered endpoints.

use anyhow::{Context, bail};
use arbiter_config::Config;
use arbiter_db::Db;
use arbiter_webhooks::SecretCipher;
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// The tenant's secret that signs deliveries to a request's or batch's `webhook_url`.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Endpoints registered per tenant, each with its own secret.
    #[command(subcommand)]
    Endpoints(EndpointsCommand),
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Print the tenant's secret (made on first use), and the previous one during an overlap.
    Show {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a new secret; the old one keeps signing as well for the overlap.
    Rotate {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Seconds the old secret keeps signing [default: webhooks.rotation_overlap_secs].
        #[arg(long)]
        overlap_secs: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EndpointsCommand {
    /// Register an endpoint; its secret is printed once.
    Create {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Where deliveries go.
        #[arg(long)]
        url: String,
        /// An event it receives; repeatable; none: every event.
        #[arg(long = "event")]
        events: Vec<String>,
        /// A label.
        #[arg(long)]
        description: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's endpoints (never their secrets).
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Delete an endpoint.
    Delete {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The endpoint (ep_...).
        id: String,
    },
}

pub async fn run(
    db: &Db,
    data_dir: Option<PathBuf>,
    command: WebhooksCommand,
) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(None).context("while loading the configuration")?;
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    let key_file = config.webhooks.key_file(&config.data_dir);
    let cipher = SecretCipher::load_or_create(&key_file)
        .with_context(|| format!("while opening the webhook key file {}", key_file.display()))?;
    let now = chrono::Utc::now();
    match command {
        WebhooksCommand::Secret(SecretCommand::Show { tenant, json }) => {
            let txn = db.begin_write().await?;
            let (current, previous) =
                arbiter_webhooks::tenant_secrets(&txn, &cipher, &tenant, now).await?;
            txn.commit().await?;
            if json {
                println!(
                    "{}",
                    json!({"tenant": tenant, "secret": current.expose(), "previous": previous.as_ref().map(|p| p.expose())})
                );
            } else {
                println!("{}", current.expose());
                if let Some(previous) = previous {
                    println!(
                        "previous (still signing during the overlap): {}",
                        previous.expose()
                    );
                }
            }
        }
        WebhooksCommand::Secret(SecretCommand::Rotate {
            tenant,
            overlap_secs,
            json,
        }) => {
            let overlap =
                Duration::from_secs(overlap_secs.unwrap_or(config.webhooks.rotation_overlap_secs));
            let txn = db.begin_write().await?;
            let (secret, until) =
                arbiter_webhooks::rotate_tenant_secret(&txn, &cipher, &tenant, now, overlap)
                    .await?;
            txn.commit().await?;
            if json {
                println!(
                    "{}",
                    json!({"tenant": tenant, "secret": secret.expose(), "previous_signs_until": until})
                );
            } else {
                println!("{}", secret.expose());
                println!("The previous secret signs as well until {until}.");
            }
        }
        WebhooksCommand::Endpoints(EndpointsCommand::Create {
            tenant,
            url,
            events,
            description,
            json,
        }) => {
            let txn = db.begin_write().await?;
            let (row, secret) = arbiter_webhooks::create_endpoint(
                &txn,
                &cipher,
                &tenant,
                &url,
                &events,
                description.as_deref(),
                now,
            )
            .await?;
            txn.commit().await?;
            if json {
                println!(
                    "{}",
                    json!({"endpoint_id": row.endpoint_id, "tenant": tenant, "url": row.url, "events": events, "secret": secret.expose()})
                );
            } else {
                println!("created {} for tenant {tenant}", row.endpoint_id);
                println!("secret: {}", secret.expose());
                println!("Keep it now: it is shown once.");
            }
        }
        WebhooksCommand::Endpoints(EndpointsCommand::List { tenant }) => {
            for row in arbiter_db::webhooks::list_endpoints(db.conn(), &tenant).await? {
                let state = if row.disabled_at.is_some() {
                    "disabled"
                } else {
                    "active"
                };
                println!(
                    "{} {state} {} events={}",
                    row.endpoint_id, row.url, row.events
                );
            }
        }
        WebhooksCommand::Endpoints(EndpointsCommand::Delete { tenant, id }) => {
            if !arbiter_db::webhooks::delete_endpoint(db.conn(), &tenant, &id).await? {
                bail!("no endpoint {id} for tenant {tenant}");
            }
            println!("deleted {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
