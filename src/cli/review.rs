//! `arbiter review`: the human-review queues, from the command line.

use anyhow::Context;
use arbiter_config::Config;
use arbiter_db::Db;
use arbiter_db::review::ItemFilter;
use arbiter_server::FlowRegistry;
use arbiter_server::review::{self, ItemView, Resolve};
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// List a tenant's review items, oldest first.
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Only this queue (siu, adjusters, moderation, kyc_review, ...).
        #[arg(long)]
        queue: Option<String>,
        /// Only this status: open, claimed or resolved.
        #[arg(long)]
        status: Option<String>,
        /// At most this many items.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Print JSON, one item per line.
        #[arg(long)]
        json: bool,
    },
    /// Resolve an item with a label; recorded in the audit log and announced as a webhook.
    Resolve {
        /// The item (rev_...).
        item_id: String,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// confirmed_fake, confirmed_authentic, false_positive or unclear.
        #[arg(long)]
        label: String,
        /// The reviewer's id (not a name: it goes into the audit log).
        #[arg(long)]
        reviewer: String,
        /// Why, in the reviewer's words.
        #[arg(long)]
        note: Option<String>,
        /// The flow action settled on [default: the policy's for a fake, the mildest for an
        /// authentic image].
        #[arg(long)]
        action: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(db: &Db, command: ReviewCommand) -> anyhow::Result<ExitCode> {
    match command {
        ReviewCommand::List {
            tenant,
            queue,
            status,
            limit,
            json,
        } => {
            let filter = ItemFilter {
                queue: queue.as_deref(),
                status: status.as_deref(),
                ..ItemFilter::default()
            };
            let items = review::list(db.conn(), &tenant, &filter, limit)
                .await
                .map_err(|err| anyhow::anyhow!(err.to_string()))?;
            for item in &items {
                if json {
                    println!("{}", serde_json::to_string(item)?);
                } else {
                    println!("{}", line(item));
                }
            }
            if !json {
                eprintln!("{} items", items.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        ReviewCommand::Resolve {
            item_id,
            tenant,
            label,
            reviewer,
            note,
            action,
            json,
        } => {
            let config = Config::load(None).context("while loading the configuration")?;
            let flows = FlowRegistry::configured(&config.flows).map_err(anyhow::Error::msg)?;
            let request = Resolve {
                reviewer: &reviewer,
                key: None,
                label: &label,
                note: note.as_deref(),
                action: action.as_deref(),
            };
            let (item, _) =
                review::resolve(db, &flows, &tenant, &item_id, &request, chrono::Utc::now())
                    .await
                    .map_err(|err| anyhow::anyhow!("{}: {err}", err.code()))?;
            if json {
                println!("{}", serde_json::to_string(&item)?);
            } else {
                println!("{}", line(&item));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One item as a line: id, queue, status, action and reason, the image, and the resolution.
fn line(item: &ItemView) -> String {
    let mut line = format!(
        "{}  {:<11} {:<9} {} ({})  {}",
        item.item_id,
        item.queue,
        item.status,
        item.action,
        item.reason,
        item.reference_id.as_deref().unwrap_or(&item.request_id),
    );
    if let Some(case_id) = &item.case_id {
        line.push_str(&format!("  case {case_id}"));
    }
    if let Some(by) = &item.claimed_by
        && item.status != "resolved"
    {
        line.push_str(&format!("  claimed by {by}"));
    }
    if let (Some(label), Some(by)) = (&item.label, &item.resolved_by) {
        line.push_str(&format!(
            "  {label} by {by} -> {}",
            item.resolved_action.as_deref().unwrap_or_default()
        ));
    }
    line
}
