//! `arbiter scan`: intake → detector (the configured route, or `--detector`) → flow facts →
//! policy → decision and audit entry.

use anyhow::{Context, bail};
use arbiter_core::AnalyzeOptions;
use arbiter_db::Db;
use arbiter_detect::IntakeLimits;
use arbiter_policy::Policy;
use arbiter_providers::{Detectors, RouteSpec};
use arbiter_server::policies::LivePolicies;
use arbiter_server::{
    DecideRequest, FlowRegistry, LogSink, Outcome, Pipeline, PolicyStore, SinkSet,
};
use clap::Args;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Image files to analyse.
    #[arg(required = true)]
    files: Vec<PathBuf>,

    /// The flow whose facts and policy apply [default: the first of this build's flows by name,
    /// `insurance` in the full build].
    #[arg(long)]
    flow: Option<String>,

    /// A domain fact, as a dotted path and a value (`claim.amount=12000`); repeatable.
    #[arg(long = "fact", value_name = "KEY=VALUE")]
    facts: Vec<String>,

    /// A policy file to use for the flow instead of the live one.
    #[arg(long)]
    policy: Option<PathBuf>,

    /// The directory of live policies (default: ./policies if present, else the shipped ones).
    #[arg(long, env = "ARBITER_POLICIES_DIR")]
    policies_dir: Option<PathBuf>,

    /// The tenant the decisions are recorded for.
    #[arg(long, default_value = "default")]
    tenant: String,

    /// One JSON object per file per line instead of a table.
    #[arg(long)]
    json: bool,

    /// The detector: `local`, a provider (`reality_defender`, `reality_ai`), or a comma-separated
    /// cascade (`local,reality_defender`) [default: the route `detector.routes` gives the flow].
    #[arg(long, value_name = "NAME")]
    detector: Option<String>,

    /// The configuration file, for the detectors' settings [default: ./arbiter.yaml when present].
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The flow `--flow` names, else the first of the registered flows by name.
fn flow_name(args: &ScanArgs, flows: &FlowRegistry) -> anyhow::Result<String> {
    match &args.flow {
        Some(flow) => Ok(flow.clone()),
        None => flows
            .names()
            .next()
            .map(str::to_owned)
            .context("this build has no flow"),
    }
}

fn load_policies(args: &ScanArgs, flow: &str, flows: &FlowRegistry) -> anyhow::Result<PolicyStore> {
    let default_dir = Path::new("policies");
    let mut store = match &args.policies_dir {
        Some(dir) => PolicyStore::from_dir(dir, flows)?,
        None if default_dir.is_dir() => PolicyStore::from_dir(default_dir, flows)?,
        None => PolicyStore::embedded(flows)?,
    };
    if let Some(path) = &args.policy {
        let policy = Policy::load(path)?;
        if policy.flow() != flow {
            bail!(
                "{}: the policy is for flow `{}`, not `{flow}`",
                path.display(),
                policy.flow(),
            );
        }
        store.replace(policy, flows)?;
    }
    Ok(store)
}

/// The domain input from `--fact` assignments, each typed as the flow's schema declares it.
fn domain_input(args: &ScanArgs, name: &str, flows: &FlowRegistry) -> anyhow::Result<Value> {
    let flow = flows.get(name).with_context(|| {
        format!(
            "unknown flow `{name}` (this build has: {})",
            flows.names().collect::<Vec<_>>().join(", ")
        )
    })?;
    let mut facts = arbiter_core::Facts::new();
    for assignment in &args.facts {
        let Some((path, raw)) = assignment.split_once('=') else {
            bail!("--fact {assignment:?}: expected KEY=VALUE, such as claim.amount=12000");
        };
        if path.is_empty() || path.split('.').any(str::is_empty) {
            bail!("--fact {assignment:?}: {path:?} is not a dotted fact path");
        }
        facts.set_path(path, flow.schema().typed_value(path, raw));
    }
    let input = Value::Object(facts.as_map().clone());
    flow.schema()
        .validate(&input)
        .map_err(|err| anyhow::anyhow!("--fact {}: {}", err.field, err.message))?;
    Ok(input)
}

pub async fn run(db: Db, args: ScanArgs) -> anyhow::Result<ExitCode> {
    let flows = FlowRegistry::builtin()
        .map_err(anyhow::Error::msg)
        .context("while building the flows")?;
    let flow = flow_name(&args, &flows)?;
    let input = domain_input(&args, &flow, &flows)?;
    let policies = load_policies(&args, &flow, &flows)?;
    arbiter_server::policies::keep_versions(&db, policies.all(), chrono::Utc::now())
        .await
        .context("while keeping the policies' texts")?;
    let sinks = SinkSet::new(vec![Arc::new(LogSink)]);
    let config = arbiter_config::Config::load(args.config.as_deref())
        .context("while loading the configuration")?;
    let guard = config.outbound.guard();
    let usage = Arc::new(arbiter_server::provider_usage::DbUsage(db.clone()));
    let mut detectors = Detectors::build_with_usage(&config.detector, guard, usage)
        .context("while building the detectors")?;
    if let Some(name) = &args.detector {
        let spec =
            RouteSpec::parse(name).map_err(|err| anyhow::anyhow!("--detector {name:?}: {err}"))?;
        detectors = Detectors::single(
            detectors
                .route(&spec, "--detector")
                .map_err(anyhow::Error::msg)?,
        );
    }
    let pipeline = Pipeline::new(
        db,
        detectors,
        flows,
        LivePolicies::fixed(policies),
        sinks,
        IntakeLimits::default(),
    );
    let options = AnalyzeOptions::default();

    if !args.json {
        println!(
            "{:<32} {:<14} {:<22} {:<6} {:<22} FIRED",
            "FILE", "SHA-256", "VERDICT", "RISK", "ACTION"
        );
    }
    let mut failed = 0usize;
    for path in &args.files {
        let reference_id = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned());
        let request = DecideRequest {
            tenant: &args.tenant,
            flow: &flow,
            input: &input,
            reference_id: reference_id.as_deref(),
            options: &options,
        };
        match pipeline.decide_file(path, &request).await {
            Ok(outcome) if args.json => println!("{}", outcome_json(path, &outcome)),
            Ok(outcome) => print_row(path, &outcome),
            Err(err) => {
                failed += 1;
                if args.json {
                    println!(
                        "{}",
                        json!({"file": path, "error": {"code": err.code(), "message": err.to_string()}})
                    );
                } else {
                    eprintln!("{}: {} ({})", path.display(), err, err.code());
                }
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} files failed", args.files.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn outcome_json(path: &Path, outcome: &Outcome) -> Value {
    let analysis = &outcome.analysis;
    let mut decision = Map::new();
    decision.insert("action".into(), json!(outcome.decision.action));
    decision.insert("reason".into(), json!(outcome.decision.reason));
    decision.insert("fired".into(), json!(outcome.decision.fired));
    decision.insert("policy".into(), json!(outcome.decision.policy));
    if let Some(description) = &outcome.decision.description {
        decision.insert("description".into(), json!(description));
    }
    json!({
        "file": path,
        "request_id": outcome.request_id,
        "reference_id": outcome.reference_id,
        "image_info": analysis.image_info,
        "verdict": analysis.verdict,
        "detector": analysis.detector,
        "providers": analysis.providers,
        "model_results": analysis.model_results,
        "processing_time_ms": analysis.processing_time_ms,
        "decision": decision,
        "audit": {"tenant": outcome.audit.entry.tenant, "seq": outcome.audit.entry.seq, "entry_hash": outcome.audit.entry_hash},
    })
}

fn print_row(path: &Path, outcome: &Outcome) {
    let verdict = &outcome.analysis.verdict;
    let name = path.display().to_string();
    let name = if name.chars().count() > 32 {
        let tail: String = name
            .chars()
            .rev()
            .take(31)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    } else {
        name
    };
    println!(
        "{:<32} {:<14} {:<22} {:<6} {:<22} {}",
        name,
        &outcome.analysis.image_info.sha256[..12],
        format!("{} {:.2}", verdict.label, verdict.confidence),
        verdict.risk_level.as_str(),
        outcome.decision.action,
        if outcome.decision.fired.is_empty() {
            "(default)".to_owned()
        } else {
            outcome.decision.fired.join(",")
        },
    );
}
