//! `arbiter policy`: check, test, explain, diff and backtest policy files; propose, approve,
//! reject, show, roll back and list the versions of the database's policies (four-eyes change
//! control, in `changes`).

mod changes;

use anyhow::{Context, bail};
use arbiter_core::Facts;
use arbiter_db::Db;
use arbiter_policy::{Diagnostic, Policy, PolicyError, RuleMode};
use arbiter_server::FlowRegistry;
use arbiter_server::policy_changes;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate policy files: shape, then meaning against the flow. Errors and warnings are
    /// printed as file:line:column; exit 1 on any error.
    Check {
        /// Policy files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the tests embedded in policy files and report per-rule coverage; a failing test
    /// shows its explanation. Exit 1 on any failure.
    Test {
        /// Policy files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Fail unless at least this percentage of each policy's rules is covered by a test.
        #[arg(long, value_name = "PERCENT")]
        min_coverage: Option<f64>,
    },
    /// Show the decision a policy makes on a set of facts and why.
    Explain {
        /// The policy file.
        file: PathBuf,
        /// The facts, as YAML or JSON (`{ verdict: { label: AI_GENERATED }, claim: { amount: 12000 } }`).
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// The decision and explanation as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the rules added, removed and changed between two versions of a policy.
    Diff {
        /// The old version.
        old: PathBuf,
        /// The new version.
        new: PathBuf,
    },
    /// Replay the facts of stored decisions through a policy and report what would change.
    Backtest {
        /// The policy file (a draft).
        file: PathBuf,
        /// First day (2026-10-01) or instant (RFC 3339) to replay, inclusive.
        #[arg(long)]
        since: String,
        /// Day or instant to stop at, exclusive (default: now).
        #[arg(long)]
        until: Option<String>,
        /// Only this tenant's decisions (default: every tenant's).
        #[arg(long)]
        tenant: Option<String>,
        /// How many changed decisions to show.
        #[arg(long, default_value_t = 10)]
        samples: usize,
    },
    /// Propose a policy file as the next version of its flow: it is validated, its embedded
    /// tests run, diffed against the live version and backtested over the last
    /// `policies.backtest_days` of stored decisions; it goes live only when another person
    /// approves it.
    Propose {
        /// The policy file.
        file: PathBuf,
        /// Who proposes it (an operator name, not an e-mail address).
        #[arg(long, value_name = "USER")]
        by: String,
        /// The proposal as JSON.
        #[arg(long)]
        json: bool,
        /// The configuration file [default: ./arbiter.yaml when present, else built-in defaults].
        #[arg(long, env = "ARBITER_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Approve a proposal and make it the live version of its flow. Refused for its proposer
    /// (four eyes), and when the live version changed since it was proposed.
    Approve {
        /// The proposal (`prop_...`).
        id: String,
        /// Who approves it: not its proposer.
        #[arg(long, value_name = "USER")]
        by: String,
        /// The approved proposal as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reject a proposal.
    Reject {
        /// The proposal (`prop_...`).
        id: String,
        /// Who rejects it.
        #[arg(long, value_name = "USER")]
        by: String,
        /// Why.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// The rejected proposal as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a proposal: its status, people, tests, diff and backtest.
    Show {
        /// The proposal (`prop_...`).
        id: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every version that was live in a flow, with its SHA-256, who proposed and approved it,
    /// and when.
    History {
        /// The flow (`insurance`, `ugc`, `kyc`).
        flow: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Propose restoring a version a flow had live before; it needs approval like any change.
    Rollback {
        /// The flow.
        flow: String,
        /// The version to restore (see `arbiter policy history FLOW`).
        #[arg(long, value_name = "VERSION")]
        to: u32,
        /// Who proposes it.
        #[arg(long, value_name = "USER")]
        by: String,
        /// The proposal as JSON.
        #[arg(long)]
        json: bool,
        /// The configuration file [default: ./arbiter.yaml when present, else built-in defaults].
        #[arg(long, env = "ARBITER_CONFIG")]
        config: Option<PathBuf>,
    },
}

impl PolicyCommand {
    /// Checking, testing, explaining and diffing files reads no database.
    pub fn needs_database(&self) -> bool {
        !matches!(
            self,
            PolicyCommand::Check { .. }
                | PolicyCommand::Test { .. }
                | PolicyCommand::Explain { .. }
                | PolicyCommand::Diff { .. }
        )
    }
}

pub async fn run(db: Option<&Db>, command: PolicyCommand) -> anyhow::Result<ExitCode> {
    let flows = FlowRegistry::builtin()
        .map_err(anyhow::Error::msg)
        .context("while building the flows")?;
    match command {
        PolicyCommand::Check { files } => Ok(check(&files, &flows)),
        PolicyCommand::Test {
            files,
            min_coverage,
        } => Ok(test(&files, min_coverage, &flows)),
        PolicyCommand::Explain { file, input, json } => explain(&file, &input, json, &flows),
        PolicyCommand::Diff { old, new } => diff(&old, &new),
        PolicyCommand::Backtest {
            file,
            since,
            until,
            tenant,
            samples,
        } => {
            let since = parse_instant(&since).context("while reading --since")?;
            let until = match until {
                Some(until) => parse_instant(&until).context("while reading --until")?,
                None => Utc::now(),
            };
            let db = db.context("a backtest needs the database")?;
            backtest(db, &file, since, until, tenant.as_deref(), samples, &flows).await
        }
        PolicyCommand::Propose {
            file,
            by,
            json,
            config,
        } => changes::propose(db.context("needs the database")?, &file, &by, json, config).await,
        PolicyCommand::Approve { id, by, json } => {
            changes::approve(db.context("needs the database")?, &id, &by, json).await
        }
        PolicyCommand::Reject {
            id,
            by,
            reason,
            json,
        } => changes::reject(db.context("needs the database")?, &id, &by, &reason, json).await,
        PolicyCommand::Show { id, json } => {
            changes::show(db.context("needs the database")?, &id, json).await
        }
        PolicyCommand::History { flow, json } => {
            changes::history(db.context("needs the database")?, &flow, json).await
        }
        PolicyCommand::Rollback {
            flow,
            to,
            by,
            json,
            config,
        } => {
            let db = db.context("needs the database")?;
            changes::rollback(db, &flow, to, &by, json, config).await
        }
    }
}

/// Loads a policy and validates it against its flow: the policy and its warnings, or every
/// error.
fn load(path: &Path, flows: &FlowRegistry) -> Result<(Policy, Vec<Diagnostic>), Vec<String>> {
    let lines = |error: PolicyError| -> Vec<String> {
        error.to_string().lines().map(str::to_owned).collect()
    };
    let policy = Policy::load(path).map_err(lines)?;
    let Some(flow) = flows.get(policy.flow()) else {
        return Err(vec![format!(
            "{}: flow `{}` is not one of this build's flows ({})",
            path.display(),
            policy.flow(),
            flows.names().collect::<Vec<_>>().join(", ")
        )]);
    };
    let warnings = policy.validate_against(flow.as_ref()).map_err(lines)?;
    Ok((policy, warnings))
}

fn check(files: &[PathBuf], flows: &FlowRegistry) -> ExitCode {
    let mut failed = 0usize;
    for path in files {
        match load(path, flows) {
            Ok((policy, warnings)) => {
                for warning in &warnings {
                    println!("{warning}");
                }
                println!(
                    "{}: ok ({} v{}, flow {}, {} rules, {} tests, {} warnings)",
                    path.display(),
                    policy.id(),
                    policy.version(),
                    policy.flow(),
                    policy.rules().count(),
                    policy.test_count(),
                    warnings.len()
                );
            }
            Err(errors) => {
                failed += 1;
                for error in &errors {
                    println!("{error}");
                }
                let plural = if errors.len() == 1 { "" } else { "s" };
                println!("{}: {} error{plural}", path.display(), errors.len());
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} files have errors", files.len());
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn test(files: &[PathBuf], min_coverage: Option<f64>, flows: &FlowRegistry) -> ExitCode {
    let mut ok = true;
    for path in files {
        let policy = match load(path, flows) {
            Ok((policy, _)) => policy,
            Err(errors) => {
                ok = false;
                for error in &errors {
                    println!("{error}");
                }
                continue;
            }
        };
        let report = policy.run_tests();
        println!("{} ({} v{})", path.display(), policy.id(), policy.version());
        for result in &report.results {
            if result.passed {
                println!("  ok   {}", result.name);
                continue;
            }
            let at = result.position.map(|p| format!(":{p}")).unwrap_or_default();
            println!(
                "  FAIL {} ({}{at}): {}",
                result.name,
                path.display(),
                result.message
            );
            if let Some(explanation) = &result.explanation {
                for line in explanation.to_string().lines() {
                    println!("       {line}");
                }
            }
        }
        println!("  rule coverage:");
        let width = report
            .coverage
            .iter()
            .map(|c| c.id.len())
            .max()
            .unwrap_or(0);
        for rule in &report.coverage {
            let shadow = if rule.mode == RuleMode::Shadow {
                " (shadow)"
            } else {
                ""
            };
            let mark = if rule.tests == 0 { "  UNCOVERED" } else { "" };
            println!("    {:<width$} {} tests{shadow}{mark}", rule.id, rule.tests);
        }
        let covered = report.coverage.iter().filter(|c| c.tests > 0).count();
        let percent = report.coverage_percent();
        println!(
            "  {} passed, {} failed; coverage {percent:.0}% ({covered} of {} rules)",
            report.passed(),
            report.failed(),
            report.coverage.len()
        );
        if !report.all_passed() {
            ok = false;
        }
        if let Some(min) = min_coverage
            && percent < min
        {
            println!("  coverage {percent:.0}% is below --min-coverage {min}");
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn read_facts(path: &Path) -> anyhow::Result<Facts> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("while reading the facts in {}", path.display()))?;
    Ok(arbiter_policy::facts_from_text(
        &text,
        &path.display().to_string(),
    )?)
}

fn explain(
    file: &Path,
    input: &Path,
    json: bool,
    flows: &FlowRegistry,
) -> anyhow::Result<ExitCode> {
    let policy = match load(file, flows) {
        Ok((policy, _)) => policy,
        Err(errors) => {
            for error in &errors {
                println!("{error}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let facts = read_facts(input)?;
    let (decision, explanation) = policy.explain(&facts);
    if json {
        println!(
            "{}",
            json!({ "decision": decision, "explanation": explanation })
        );
        return Ok(ExitCode::SUCCESS);
    }
    let by = match &explanation.decided_by {
        Some(rule) => format!("rule {rule}"),
        None if decision.reason == arbiter_policy::EVALUATION_ERROR => "an evaluation error".into(),
        None => "the default".to_owned(),
    };
    println!(
        "decision: {} ({}) by {by}; policy {} v{}",
        decision.action,
        decision.reason,
        policy.id(),
        policy.version()
    );
    if let Some(description) = &decision.description {
        println!("description: {description}");
    }
    if !decision.fired.is_empty() {
        println!("fired: {}", decision.fired.join(", "));
    }
    for hit in &decision.shadow {
        println!("shadow: {} would {}", hit.rule, hit.action);
    }
    println!();
    print!("{explanation}");
    Ok(ExitCode::SUCCESS)
}

fn diff(old: &Path, new: &Path) -> anyhow::Result<ExitCode> {
    let old_policy =
        Policy::load(old).with_context(|| format!("while loading {}", old.display()))?;
    let new_policy =
        Policy::load(new).with_context(|| format!("while loading {}", new.display()))?;
    println!("{} -> {}", old.display(), new.display());
    println!("{}", old_policy.diff(&new_policy));
    Ok(ExitCode::SUCCESS)
}

/// A day (midnight UTC) or an RFC 3339 instant.
fn parse_instant(text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").with_context(|| {
        format!("`{text}` is neither a day (2026-10-01) nor an RFC 3339 instant")
    })?;
    day.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .context("midnight exists on every day")
}

async fn backtest(
    db: &Db,
    file: &Path,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    tenant: Option<&str>,
    samples: usize,
    flows: &FlowRegistry,
) -> anyhow::Result<ExitCode> {
    if since >= until {
        bail!("--since {since} is not before --until {until}");
    }
    let policy = match load(file, flows) {
        Ok((policy, _)) => policy,
        Err(errors) => {
            for error in &errors {
                println!("{error}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let report = policy_changes::backtest(db, &policy, since, until, tenant, samples)
        .await
        .context("while reading the stored decisions and the reviewers' labels")?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}
