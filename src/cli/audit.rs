//! `arbiter audit`: read the audit log.

use arbiter_audit::EntryFilter;
use arbiter_db::Db;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries, oldest first.
    Show {
        /// Only this tenant's chain.
        #[arg(long)]
        tenant: Option<String>,
        /// Only the newest N entries.
        #[arg(long)]
        limit: Option<u64>,
        /// Each entry's canonical JSON (with its entry_hash), one per line.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(db: &Db, command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Show {
            tenant,
            limit,
            json,
        } => {
            let entries = arbiter_audit::entries(db.conn(), &EntryFilter { tenant, limit }).await?;
            if !json {
                println!(
                    "{:<12} {:>5} {:<24} {:<20} {:<16} HASH",
                    "TENANT", "SEQ", "TS", "EVENT", "REQUEST"
                );
            }
            for stored in &entries {
                if json {
                    println!("{}", stored.to_line()?);
                } else {
                    let entry = &stored.entry;
                    println!(
                        "{:<12} {:>5} {:<24} {:<20} {:<16} {}",
                        entry.tenant,
                        entry.seq,
                        entry.ts,
                        entry.event.name(),
                        entry.event.request_id().unwrap_or("-"),
                        &stored.entry_hash[..16],
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
