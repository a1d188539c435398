//! `arbiter policy`: check, test, explain, diff and backtest policy files.

use anyhow::{Context, bail};
use arbiter_core::Facts;
use arbiter_db::Db;
use arbiter_policy::{Diagnostic, Policy, PolicyError, RuleMode};
use arbiter_server::FlowRegistry;
use arbiter_server::review;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;
use serde_json::json;
use std::collections::BTreeMap;
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
}

impl PolicyCommand {
    /// Only a backtest reads the database.
    pub fn needs_database(&self) -> bool {
        matches!(self, PolicyCommand::Backtest { .. })
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
    let rows = arbiter_db::decisions::list_between(db.conn(), tenant, since, until)
        .await
        .context("while reading the stored decisions")?;
    let mut replayed = 0usize;
    let mut unreadable = 0usize;
    let mut changed = 0usize;
    let mut reason_only = 0usize;
    let mut matrix: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut old_hits: BTreeMap<String, usize> = BTreeMap::new();
    let mut new_hits: BTreeMap<String, usize> = BTreeMap::new();
    let mut shadow_hits: BTreeMap<String, usize> = BTreeMap::new();
    let mut shown = Vec::new();
    let labels: BTreeMap<String, String> = arbiter_db::review::labels(db.conn(), tenant)
        .await
        .context("while reading the reviewers' labels")?
        .into_iter()
        .collect();
    // Per rule of this policy: labelled decisions it fired on, and how many of those the
    // reviewers agreed with.
    let mut judged: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut labelled = 0usize;
    for row in rows.iter().filter(|r| r.flow == policy.flow()) {
        let Ok(facts) = serde_json::from_str::<Facts>(&row.facts) else {
            unreadable += 1;
            continue;
        };
        replayed += 1;
        let decision = policy.decide(&facts);
        for rule in serde_json::from_str::<Vec<String>>(&row.fired).unwrap_or_default() {
            *old_hits.entry(rule).or_default() += 1;
        }
        for rule in &decision.fired {
            *new_hits.entry(rule.clone()).or_default() += 1;
        }
        for hit in &decision.shadow {
            *shadow_hits.entry(hit.rule.clone()).or_default() += 1;
        }
        if let Some(fake) = labels
            .get(&row.request_id)
            .and_then(|label| review::label_says_fake(label))
        {
            labelled += 1;
            let fired = decision
                .fired
                .iter()
                .chain(decision.shadow.iter().map(|hit| &hit.rule));
            for rule in fired {
                let entry = judged.entry(rule.clone()).or_default();
                entry.0 += 1;
                if rule_flags(&policy, rule) == fake {
                    entry.1 += 1;
                }
            }
        }
        *matrix
            .entry((row.action.clone(), decision.action.clone()))
            .or_default() += 1;
        if row.action != decision.action {
            changed += 1;
            if shown.len() < samples {
                shown.push(format!(
                    "  {} {} {}: {} ({}) [{} v{}] -> {} ({}) fired [{}]",
                    row.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    row.tenant,
                    row.request_id,
                    row.action,
                    row.reason,
                    row.policy_id,
                    row.policy_version,
                    decision.action,
                    decision.reason,
                    decision.fired.join(", ")
                ));
            }
        } else if row.reason != decision.reason {
            reason_only += 1;
        }
    }

    println!(
        "backtest of {} v{} (flow {}) on decisions from {} to {}{}",
        policy.id(),
        policy.version(),
        policy.flow(),
        since.format("%Y-%m-%dT%H:%M:%SZ"),
        until.format("%Y-%m-%dT%H:%M:%SZ"),
        tenant.map(|t| format!(", tenant {t}")).unwrap_or_default()
    );
    #[allow(clippy::cast_precision_loss, reason = "a percentage for display")]
    let share = if replayed == 0 {
        0.0
    } else {
        changed as f64 * 100.0 / replayed as f64
    };
    println!(
        "replayed {replayed} decisions; {changed} would change action ({share:.1}%), {reason_only} only the reason"
    );
    if unreadable > 0 {
        println!("skipped {unreadable} decisions whose stored facts could not be read");
    }
    if replayed > 0 {
        println!();
        println!("old action -> new action");
        for ((old, new), count) in &matrix {
            let mark = if old == new { "" } else { "  (changed)" };
            println!("  {old:<24} -> {new:<24} {count:>8}{mark}");
        }
        println!();
        println!("rule hits (stored decisions -> this policy)");
        for rule in policy.rules() {
            let old = old_hits.get(rule.id).copied().unwrap_or_default();
            let new = match rule.mode {
                RuleMode::Enforce => new_hits.get(rule.id),
                RuleMode::Shadow => shadow_hits.get(rule.id),
            }
            .copied()
            .unwrap_or_default();
            let shadow = if rule.mode == RuleMode::Shadow {
                " (shadow)"
            } else {
                ""
            };
            println!("  {:<40} {old:>8} -> {new:>8}{shadow}", rule.id);
        }
        for (rule, count) in &old_hits {
            if policy.rules().all(|r| r.id != rule) {
                println!("  {rule:<40} {count:>8} -> (not in this policy)");
            }
        }
    }
    if !shown.is_empty() {
        println!();
        println!("changed decisions (first {})", shown.len());
        for line in &shown {
            println!("{line}");
        }
    }
    println!();
    if labelled == 0 {
        println!(
            "per-rule precision: no replayed decision has a reviewer's label yet (arbiter review resolve)"
        );
    } else {
        println!(
            "per-rule precision ({labelled} decisions labelled by reviewers; a rule is right when it flags a fake or passes an authentic image)"
        );
        for rule in policy.rules() {
            let Some((hits, right)) = judged.get(rule.id) else {
                continue;
            };
            #[allow(clippy::cast_precision_loss, reason = "a percentage for display")]
            let share = *right as f64 * 100.0 / *hits as f64;
            println!(
                "  {:<40} {right:>4} of {hits:<4} right ({share:.1}%)",
                rule.id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a rule's action flags the image (is stricter than the policy's mildest action).
fn rule_flags(policy: &Policy, rule: &str) -> bool {
    let mildest = policy.actions().map(|a| a.severity()).min().unwrap_or(0);
    policy
        .rules()
        .find(|r| r.id == rule)
        .and_then(|r| policy.action(r.action))
        .is_some_and(|action| action.severity() > mildest)
}
