//! `arbiter replay REQUEST_ID [--image FILE] [--json]`: shows that a recorded decision is exactly
//! what its recorded facts and policy text produce, and, with the image, that the local detector
//! still reads the image as recorded.

use anyhow::{Context, bail};
use arbiter_core::{Analysis, AnalyzeOptions, ModelKind};
use arbiter_db::Db;
use arbiter_db::entity::decision;
use arbiter_detect::{IntakeLimits, LocalDetector};
use arbiter_server::replay::{Difference, Replayed, compare};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The request whose decision is replayed (req_...).
    request_id: String,

    /// The image the request analysed: checked against the recorded SHA-256, then analysed again
    /// by the local detector and compared with the recorded analysis.
    #[arg(long)]
    image: Option<PathBuf>,

    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(db: &Db, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let Replayed {
        row,
        decision,
        mut differences,
    } = arbiter_server::replay::replay(db, None, &args.request_id).await?;
    if let Some(path) = &args.image {
        let recorded: Analysis =
            serde_json::from_str(&row.analysis).context("while reading the recorded analysis")?;
        reanalyse(path, &row, &recorded, &mut differences).await?;
    }
    let identical = differences.is_empty();
    if args.json {
        println!(
            "{}",
            json!({
                "request_id": row.request_id,
                "policy": {"id": row.policy_id, "version": row.policy_version, "sha256": row.policy_sha256},
                "image_checked": args.image.is_some(),
                "identical": identical,
                "action": decision.action,
                "fired": decision.fired,
                "description": decision.description,
                "differences": differences,
            })
        );
    } else if identical {
        println!(
            "{}: identical under {} v{}: {} ({}), fired {}{}{}",
            row.request_id,
            row.policy_id,
            row.policy_version,
            decision.action,
            decision.reason,
            if decision.fired.is_empty() {
                "none".to_owned()
            } else {
                decision.fired.join(", ")
            },
            decision
                .description
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default(),
            if args.image.is_some() {
                "; the image analyses the same"
            } else {
                ""
            }
        );
    } else {
        println!("{}: differs from the record", row.request_id);
        for d in &differences {
            println!(
                "  {}: recorded {} -> replayed {}",
                d.field, d.recorded, d.replayed
            );
        }
    }
    Ok(if identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Checks the image against the recorded SHA-256 and analyses it again with the local
/// detector, with the models the record ran; a route's vendors are taken as recorded.
async fn reanalyse(
    path: &std::path::Path,
    row: &decision::Model,
    recorded: &Analysis,
    differences: &mut Vec<Difference>,
) -> anyhow::Result<()> {
    let media = arbiter_detect::intake_file(path, &IntakeLimits::default())
        .await
        .map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?;
    if media.info.sha256 != row.image_sha256 {
        bail!(
            "{}: its SHA-256 is {}, not the recorded {}",
            path.display(),
            media.info.sha256,
            row.image_sha256
        );
    }
    let options = AnalyzeOptions {
        models: recorded
            .model_results
            .iter()
            .map(|(kind, _)| kind)
            .collect(),
        metadata_analysis: recorded.model_results.get(ModelKind::Metadata).is_some(),
        return_heatmap: recorded
            .model_results
            .iter()
            .any(|(_, result)| result.heatmap.is_some()),
    };
    let replayed = LocalDetector::default().analyze_sync(&media, &options);
    // The local detector's own part: the whole analysis, or its run within a route.
    let recorded_verdict = match recorded
        .providers
        .iter()
        .find(|run| run.name == LocalDetector::NAME)
    {
        Some(run) => run.verdict,
        None if recorded.detector == LocalDetector::NAME => Some(recorded.verdict),
        None => None,
    };
    if let Some(verdict) = recorded_verdict {
        compare(
            differences,
            "verdict",
            json!(verdict),
            json!(replayed.verdict),
        );
    }
    for (kind, result) in replayed.model_results.iter() {
        let was = recorded.model_results.get(kind);
        let same_model = |r: &arbiter_core::ModelResult| (r.score, r.label);
        // Within a route, model slots may hold a vendor's scores: only the local detector's
        // own analysis is compared model by model.
        if recorded.detector == LocalDetector::NAME {
            compare(
                differences,
                &format!("model_results.{}", kind.result_key()),
                json!(was.map(same_model)),
                json!(Some(same_model(result))),
            );
        }
    }
    compare(
        differences,
        "metadata",
        json!(recorded.metadata),
        json!(replayed.metadata),
    );
    Ok(())
}
