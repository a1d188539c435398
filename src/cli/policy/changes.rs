//! `arbiter policy propose | approve | reject | show | history | rollback`: four-eyes change
//! control over the policy versions kept in the database. The rules live in
//! `arbiter_server::policy_changes`; this module reads the command line and prints.

use anyhow::Context;
use arbiter_config::Config;
use arbiter_db::Db;
use arbiter_policy::Policy;
use arbiter_server::FlowRegistry;
use arbiter_server::policy_changes::{self, HistoryEntry, Proposal, ProposeWith};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What `propose` and `rollback` read from the configuration: the flows, the policies a server
/// would start from, and `policies.backtest_days`.
struct Setting {
    flows: FlowRegistry,
    seed: arbiter_server::PolicyStore,
    backtest_days: u32,
}

fn setting(config: Option<&Path>) -> anyhow::Result<Setting> {
    let config = Config::load(config).context("while loading the configuration")?;
    let flows = FlowRegistry::configured(&config.flows)
        .map_err(anyhow::Error::msg)
        .context("while building the flows")?;
    let seed = arbiter_server::policies::load_policies(&config.policies_dir, &flows)
        .context("while loading the policy files")?
        .snapshot();
    Ok(Setting {
        flows,
        seed: arbiter_server::PolicyStore::clone(&seed),
        backtest_days: config.policies.backtest_days,
    })
}

pub async fn propose(
    db: &Db,
    file: &Path,
    by: &str,
    json: bool,
    config: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let setting = setting(config.as_deref())?;
    let policy = match Policy::load(file) {
        Ok(policy) => policy,
        Err(err) => {
            // Each problem on its own line, at file:line:column.
            eprintln!("{err}");
            eprintln!("{}: not proposed", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let with = ProposeWith {
        flows: &setting.flows,
        seed: &setting.seed,
        backtest_days: setting.backtest_days,
        now: chrono::Utc::now(),
    };
    match policy_changes::propose(db, with, policy, by).await {
        Ok(proposal) => {
            print_proposal(&proposal, json);
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("{err}");
            eprintln!("{}: not proposed", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn rollback(
    db: &Db,
    flow: &str,
    to: u32,
    by: &str,
    json: bool,
    config: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let setting = setting(config.as_deref())?;
    let with = ProposeWith {
        flows: &setting.flows,
        seed: &setting.seed,
        backtest_days: setting.backtest_days,
        now: chrono::Utc::now(),
    };
    let proposal = policy_changes::rollback(db, with, flow, to, by)
        .await
        .with_context(|| format!("rollback of flow `{flow}` to version {to} not proposed"))?;
    print_proposal(&proposal, json);
    Ok(ExitCode::SUCCESS)
}

pub async fn approve(db: &Db, id: &str, by: &str, json: bool) -> anyhow::Result<ExitCode> {
    let flows = FlowRegistry::builtin()
        .map_err(anyhow::Error::msg)
        .context("while building the flows")?;
    let proposal = policy_changes::approve(db, &flows, id, by, chrono::Utc::now())
        .await
        .with_context(|| format!("{id} not approved"))?;
    if json {
        print_json(serde_json::to_string_pretty(&proposal));
    } else {
        println!(
            "approved {}: {} v{} ({}) is the live version of flow {}, proposed by {}, approved by {}",
            proposal.proposal_id,
            proposal.policy.id,
            proposal.policy.version,
            proposal.policy.sha256,
            proposal.flow,
            proposal.proposed_by,
            by
        );
        println!(
            "servers with policies.source: database pick it up within policies.poll_interval_ms"
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn reject(
    db: &Db,
    id: &str,
    by: &str,
    reason: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let proposal = policy_changes::reject(db, id, by, reason, chrono::Utc::now())
        .await
        .with_context(|| format!("{id} not rejected"))?;
    if json {
        print_json(serde_json::to_string_pretty(&proposal));
    } else {
        println!(
            "rejected {}: {} v{} proposed by {}, rejected by {by}: {reason}",
            proposal.proposal_id, proposal.policy.id, proposal.policy.version, proposal.proposed_by
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn show(db: &Db, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let proposal = policy_changes::show(db, id).await?;
    print_proposal(&proposal, json);
    Ok(ExitCode::SUCCESS)
}

pub async fn history(db: &Db, flow: &str, json: bool) -> anyhow::Result<ExitCode> {
    let entries = policy_changes::history(db, flow).await?;
    if json {
        print_json(serde_json::to_string_pretty(
            &serde_json::json!({ "flow": flow, "versions": entries }),
        ));
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        println!("flow {flow}: no version recorded yet");
        return Ok(ExitCode::SUCCESS);
    }
    println!("flow {flow}: {} activations, oldest first", entries.len());
    for entry in &entries {
        println!("{}", history_line(entry));
    }
    Ok(ExitCode::SUCCESS)
}

fn history_line(entry: &HistoryEntry) -> String {
    let people = match (&entry.proposed_by, &entry.approved_by) {
        (Some(proposer), Some(approver)) => {
            format!("proposed by {proposer}, approved by {approver}")
        }
        _ => format!("activated by {}", entry.actor),
    };
    let proposal = entry
        .proposal_id
        .as_deref()
        .map(|id| format!(" ({id})"))
        .unwrap_or_default();
    let live = if entry.live { "  [live]" } else { "" };
    format!(
        "  {}  {} v{}  sha256 {}  {people}{proposal}{live}",
        entry
            .activated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        entry.policy_id,
        entry.version,
        entry.sha256
    )
}

fn print_json(text: serde_json::Result<String>) {
    match text {
        Ok(text) => println!("{text}"),
        Err(err) => eprintln!("cannot write JSON: {err}"),
    }
}

fn print_proposal(proposal: &Proposal, json: bool) {
    if json {
        print_json(serde_json::to_string_pretty(proposal));
        return;
    }
    let kind = match proposal.rollback_to {
        Some(version) => format!(" (a rollback to version {version})"),
        None => String::new(),
    };
    println!(
        "proposal_id: {}{kind}\nstatus: {}\npolicy: {} v{} for flow {}\nsha256: {}\nproposed by {} at {}",
        proposal.proposal_id,
        proposal.status,
        proposal.policy.id,
        proposal.policy.version,
        proposal.flow,
        proposal.policy.sha256,
        proposal.proposed_by,
        proposal
            .proposed_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    if let (Some(by), Some(at)) = (&proposal.decided_by, &proposal.decided_at) {
        let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        println!("{} by {by} at {at}", proposal.status);
    }
    if let Some(reason) = &proposal.reason {
        println!("reason: {reason}");
    }
    let checks = &proposal.checks;
    println!(
        "tests: {} passed, {} failed",
        checks.tests.passed, checks.tests.failed
    );
    for warning in &checks.warnings {
        println!("warning: {warning}");
    }
    match (&checks.live, &checks.diff_text) {
        (Some(live), Some(diff)) => {
            println!(
                "\ndiff against the live version {} v{} ({}):",
                live.id, live.version, live.sha256
            );
            println!("{diff}");
        }
        _ => println!("\nthe flow has no live version to compare with"),
    }
    let backtest = &checks.backtest;
    println!(
        "\nbacktest over the stored decisions of {} .. {}:",
        backtest
            .since
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        backtest
            .until
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    print!("{}", backtest.report);
    if proposal.status == "pending" {
        println!(
            "\nto activate it, a second person runs: arbiter policy approve {} --by NAME",
            proposal.proposal_id
        );
    }
}
