//! `arbiter audit`: read, sign, export and verify the audit log.

use anyhow::{Context, bail};
use arbiter_audit::{
    EntryFilter, ExportRange, Order, Report, Signer, SigningKey, VerifierKey, verify_bundle,
    verify_database,
};
use arbiter_db::Db;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The checkpoint signing key and log name: flags, else `ARBITER_AUDIT_*`, else the `audit:`
/// section of `arbiter.yaml` (in development mode, `<data_dir>/audit-signing.key`).
#[derive(Debug, Args)]
pub struct SigningArgs {
    /// The checkpoint signing key file (`audit.signing_key`), made by `arbiter audit keygen`.
    #[arg(
        long = "signing-key",
        visible_alias = "key",
        env = "ARBITER_AUDIT_SIGNING_KEY",
        value_name = "FILE"
    )]
    signing_key: Option<PathBuf>,

    /// The log name checkpoints are signed under (`audit.log_name`), e.g. `audit.example.com/arbiter`.
    #[arg(long = "log-name", env = "ARBITER_AUDIT_LOG_NAME")]
    log_name: Option<String>,
}

impl SigningArgs {
    /// The `audit:` section of `./arbiter.yaml` (or `ARBITER_CONFIG`) with the environment.
    fn config() -> anyhow::Result<arbiter_config::Config> {
        let file = std::env::var_os("ARBITER_CONFIG").map(PathBuf::from);
        arbiter_config::Config::load(file.as_deref())
            .context("while loading the configuration for the audit signing key")
    }

    fn signer(&self) -> anyhow::Result<Signer> {
        let (path, log_name) = match (&self.signing_key, &self.log_name) {
            (Some(path), Some(name)) => (path.clone(), name.clone()),
            (path, name) => {
                let config = Self::config()?;
                let Some(path) = path
                    .clone()
                    .or_else(|| config.audit.signing_key_path(&config.data_dir))
                else {
                    bail!(
                        "no checkpoint signing key: pass --signing-key FILE or set \
                         audit.signing_key (ARBITER_AUDIT_SIGNING_KEY); make one with \
                         `arbiter audit keygen --out FILE`"
                    );
                };
                (path, name.clone().unwrap_or(config.audit.log_name))
            }
        };
        let key = SigningKey::load(&path)
            .with_context(|| format!("while reading the signing key {}", path.display()))?;
        Signer::new(key, &log_name).context("while setting up the checkpoint signer")
    }

    fn given(&self) -> bool {
        self.signing_key.is_some()
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries, oldest first (or newest first with --order desc).
    Show {
        /// Only this tenant's chain.
        #[arg(long)]
        tenant: Option<String>,
        /// Only the newest N entries (listed in --order).
        #[arg(long)]
        limit: Option<u64>,
        /// `asc`: oldest first; `desc`: newest first.
        #[arg(long, default_value = "asc")]
        order: Order,
        /// Only entries about this request.
        #[arg(long)]
        request_id: Option<String>,
        /// Only entries with this reference id.
        #[arg(long)]
        reference_id: Option<String>,
        /// Only entries about this image (SHA-256 of its bytes).
        #[arg(long)]
        image_sha256: Option<String>,
        /// Only this event (`decision.recorded`, `webhook.abandoned`, ...).
        #[arg(long)]
        event: Option<String>,
        /// Only decisions of this flow (`insurance`, `ugc`, `kyc`).
        #[arg(long)]
        flow: Option<String>,
        /// Only entries naming this action (a decision's actions, a review's action).
        #[arg(long)]
        action: Option<String>,
        /// Only entries at or after this time (RFC 3339, or a date: that day's start, UTC).
        #[arg(long, value_parser = parse_time_start)]
        since: Option<DateTime<Utc>>,
        /// Only entries at or before this time (RFC 3339, or a date: that day's end, UTC).
        #[arg(long, value_parser = parse_time_end)]
        until: Option<DateTime<Utc>>,
        /// Each entry's canonical JSON (with its entry_hash), one per line.
        #[arg(long)]
        json: bool,
    },
    /// Make a checkpoint signing key file (permissions 0600) and print its verifier key.
    Keygen {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The log name checkpoints are signed under (`audit.log_name`).
        #[arg(
            long = "log-name",
            env = "ARBITER_AUDIT_LOG_NAME",
            default_value = "arbiter"
        )]
        log_name: String,
    },
    /// Print the verifier key of the signing key, to publish to auditors.
    Vkey(SigningArgs),
    /// Sign a checkpoint now for every tenant chain that grew since its last one.
    Checkpoint(SigningArgs),
    /// Write a tenant's chain as a bundle an auditor verifies (entries.jsonl, checkpoints/,
    /// vkey.txt, SHA256SUMS).
    Export(ExportArgs),
    /// Verify the live database chain by chain against its checkpoints, or an exported bundle.
    /// Exits 1 on any problem.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The tenant whose chain to export.
    #[arg(long)]
    tenant: String,
    /// The directory to write (created; must be empty).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Start at this seq: 0 or the size of a checkpoint.
    #[arg(long, conflicts_with = "since")]
    from_seq: Option<u64>,
    /// Start at the checkpoint boundary before the first entry at or after this time.
    #[arg(long, value_parser = parse_time_start)]
    since: Option<DateTime<Utc>>,
    /// End with the last entry at or before this time.
    #[arg(long, value_parser = parse_time_end)]
    until: Option<DateTime<Utc>>,
    /// The verifier key file to write as vkey.txt (default: derived from the signing key).
    #[arg(long, value_name = "FILE")]
    vkey: Option<PathBuf>,
    #[command(flatten)]
    signing: SigningArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify this export bundle instead of the live database.
    #[arg(long, value_name = "DIR", requires = "vkey")]
    export: Option<PathBuf>,
    /// The verifier key file (`<name>+<id>+<key>`), from a channel independent of the bundle.
    #[arg(long, value_name = "FILE")]
    vkey: Option<PathBuf>,
    #[command(flatten)]
    signing: SigningArgs,
}

fn parse_time(text: &str, end_of_day: bool) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is neither an RFC 3339 time nor a date (YYYY-MM-DD)"))?;
    let time = if end_of_day {
        date.and_hms_milli_opt(23, 59, 59, 999)
    } else {
        date.and_hms_opt(0, 0, 0)
    };
    time.map(|t| t.and_utc())
        .ok_or_else(|| format!("{text:?} is not a valid date"))
}

fn parse_time_start(text: &str) -> Result<DateTime<Utc>, String> {
    parse_time(text, false)
}

fn parse_time_end(text: &str) -> Result<DateTime<Utc>, String> {
    parse_time(text, true)
}

fn read_vkey(path: &Path) -> anyhow::Result<VerifierKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("while reading the verifier key {}", path.display()))?;
    VerifierKey::parse(&text)
        .with_context(|| format!("while reading the verifier key {}", path.display()))
}

fn print_report(report: &Report, what: &str) -> ExitCode {
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    if report.ok() {
        println!(
            "OK: {what}: {} entries and {} checkpoints verified",
            report.entries, report.checkpoints
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "FAILED: {what}: {} problem(s) in {} entries and {} checkpoints",
            report.problems.len(),
            report.entries,
            report.checkpoints
        );
        ExitCode::FAILURE
    }
}

pub async fn run(db: &Db, command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Show {
            tenant,
            limit,
            order,
            request_id,
            reference_id,
            image_sha256,
            event,
            flow,
            action,
            since,
            until,
            json,
        } => {
            // `--limit` keeps the newest entries whatever the order they are listed in.
            let newest_first = limit.is_some() || order == Order::Desc;
            let filter = EntryFilter {
                tenant,
                limit,
                order: if newest_first {
                    Order::Desc
                } else {
                    Order::Asc
                },
                after: None,
                request_id,
                reference_id,
                image_sha256,
                event,
                flow,
                action,
                since,
                until,
            };
            let mut entries = arbiter_audit::entries(db.conn(), &filter)
                .await
                .context("while reading the audit log")?;
            if newest_first && order == Order::Asc {
                entries.reverse();
            }
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
        AuditCommand::Keygen { out, log_name } => {
            let key = SigningKey::generate().context("while making a signing key")?;
            let signer = Signer::new(key.clone(), &log_name)
                .context("while setting up the checkpoint signer")?;
            key.write_new(&out)
                .with_context(|| format!("while writing the signing key {}", out.display()))?;
            eprintln!(
                "wrote the checkpoint signing key to {} (mode 0600); keep it secret and set \
                 ARBITER_AUDIT_SIGNING_KEY to it. Publish the verifier key below to auditors:",
                out.display()
            );
            println!("{}", signer.verifier_key());
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Vkey(signing) => {
            println!("{}", signing.signer()?.verifier_key());
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Checkpoint(signing) => {
            let signer = signing.signer()?;
            let written = arbiter_audit::write_checkpoints(db.conn(), &signer, Utc::now())
                .await
                .context("while signing checkpoints")?;
            if written.is_empty() {
                eprintln!("no chain grew since its last checkpoint; nothing to sign");
            }
            for cp in &written {
                println!(
                    "signed {} size {} {} at {}",
                    cp.tenant, cp.size, cp.root_hash, cp.issued_at
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export(args) => {
            let vkey = match &args.vkey {
                Some(path) => read_vkey(path)?,
                None => args.signing.signer()?.verifier_key(),
            };
            let range = ExportRange {
                from_seq: args.from_seq,
                since: args.since,
                until: args.until,
            };
            let summary = arbiter_audit::export(db.conn(), &args.tenant, &range, &vkey, &args.out)
                .await
                .with_context(|| format!("while exporting tenant {}", args.tenant))?;
            let checkpoints = summary
                .checkpoints
                .iter()
                .map(|size| format!("cp-{size}"))
                .collect::<Vec<_>>();
            println!(
                "exported tenant {} seq {}..={} with {} checkpoint(s) [{}] to {}",
                args.tenant,
                summary.first_seq,
                summary.last_seq,
                checkpoints.len(),
                checkpoints.join(", "),
                args.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify(args) => {
            if let Some(dir) = &args.export {
                let Some(vkey_path) = &args.vkey else {
                    bail!(
                        "--export needs --vkey FILE, the verifier key from an independent channel"
                    );
                };
                let vkey = read_vkey(vkey_path)?;
                let report = verify_bundle(dir, &vkey)
                    .with_context(|| format!("while verifying the bundle {}", dir.display()))?;
                return Ok(print_report(&report, &dir.display().to_string()));
            }
            let vkey = match &args.vkey {
                Some(path) => Some(read_vkey(path)?),
                None if args.signing.given() => Some(args.signing.signer()?.verifier_key()),
                None => None,
            };
            let report = verify_database(db.conn(), vkey.as_ref())
                .await
                .context("while verifying the audit log")?;
            Ok(print_report(&report, "the audit log"))
        }
    }
}
