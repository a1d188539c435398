//! PDF report cards: the facts of a request (one image) or a case (a claim, a KYC session, each
//! of its images) read from the database into `arbiter_report::Report`, then written as a PDF
//! by `arbiter-report`; and the thumbnails kept for them (`reports.thumbnails`), made when an
//! image is decided.

use crate::Engine;
use crate::error::EngineError;
use arbiter_audit::{EntryFilter, Order};
use arbiter_core::{Analysis, ImageInfo, MediaInput, ModelLabel, ModelResult, RunStatus};
use arbiter_db::sea_orm::ConnectionTrait;
use arbiter_db::thumbnails::{self, Thumbnail};
use arbiter_report::{
    AuditSection, CaseSection, CheckpointLine, DecisionSection, EntryLine, HeatmapSection,
    ImageSection, Report, ResultLine, ReviewLine, VerdictSection,
};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use std::io::Cursor;

/// The longest side of a kept thumbnail, in pixels.
pub const THUMBNAIL_MAX_PX: u32 = 256;

/// The most pixels decoded to make a thumbnail (intake's own limits come first).
const THUMBNAIL_MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// A thumbnail of an image, at most [`THUMBNAIL_MAX_PX`] on its longer side, as PNG; `None`
/// when its format cannot be decoded here (HEIC) or the file does not decode.
pub fn thumbnail(bytes: &[u8]) -> Option<Thumbnail> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(THUMBNAIL_MAX_ALLOC);
    reader.limits(limits);
    let decoded = std::panic::catch_unwind(move || reader.decode())
        .ok()?
        .ok()?;
    let small = decoded
        .thumbnail(THUMBNAIL_MAX_PX, THUMBNAIL_MAX_PX)
        .to_rgb8();
    let mut png = Cursor::new(Vec::new());
    small.write_to(&mut png, image::ImageFormat::Png).ok()?;
    Some(Thumbnail {
        width: i32::try_from(small.width()).ok()?,
        height: i32::try_from(small.height()).ok()?,
        png: png.into_inner(),
    })
}

/// The thumbnail to keep of an image being decided, when thumbnails are kept
/// (`reports.thumbnails`); made off the async threads.
pub async fn make_thumbnail(enabled: bool, media: &MediaInput) -> Option<Thumbnail> {
    if !enabled {
        return None;
    }
    let bytes = media.bytes.clone();
    tokio::task::spawn_blocking(move || thumbnail(&bytes))
        .await
        .ok()
        .flatten()
}

/// Keeps a tenant's thumbnail of an image (inside the caller's transaction, or on its own).
pub async fn keep_thumbnail(
    conn: &impl ConnectionTrait,
    tenant: &str,
    image_sha256: &str,
    thumbnail: Option<&Thumbnail>,
    now: DateTime<Utc>,
) -> Result<(), EngineError> {
    if let Some(thumbnail) = thumbnail {
        thumbnails::keep(conn, tenant, image_sha256, thumbnail, now).await?;
    }
    Ok(())
}

/// Writes a report as a PDF, off the async threads.
pub async fn pdf(report: Report) -> Result<Vec<u8>, EngineError> {
    tokio::task::spawn_blocking(move || arbiter_report::render(&report))
        .await
        .map_err(EngineError::internal)?
        .map_err(EngineError::internal)
}

/// The report of one of a tenant's requests; another tenant's request, or one not analysed
/// yet, is not found. `verifier_key` is the audit checkpoints' public key, printed for checking.
pub async fn request_report(
    state: Engine<'_>,
    verifier_key: &str,
    tenant: &str,
    request_id: &str,
) -> Result<Report, EngineError> {
    let image = image_section(state, tenant, request_id, None)
        .await?
        .ok_or_else(|| {
            EngineError::not_found(format!("no analysed request {request_id} for this tenant"))
        })?;
    let audit = audit_section(state, verifier_key, tenant, std::slice::from_ref(&image)).await?;
    Ok(Report {
        title: format!("Request {request_id}"),
        tenant: tenant.to_owned(),
        generated_at: now_text(state),
        case: None,
        images: vec![image],
        audit,
    })
}

/// The report of a tenant's case (a claim, a KYC session) with each of its images.
pub async fn case_report(
    state: Engine<'_>,
    verifier_key: &str,
    tenant: &str,
    flow: &str,
    case_id: &str,
) -> Result<Report, EngineError> {
    let (_, spec) = crate::cases::case_flow(state, flow)?;
    let conn = state.pipeline.db().conn();
    let row = arbiter_db::cases::get(conn, tenant, flow, case_id)
        .await?
        .ok_or_else(|| {
            EngineError::not_found(format!("no {} {case_id} for this tenant", spec.kind))
        })?;
    let attached = arbiter_db::cases::images(conn, tenant, flow, case_id).await?;
    let count = attached.len();
    let mut images = Vec::with_capacity(count);
    for image in &attached {
        let role = image
            .role
            .as_deref()
            .map(|role| format!(" ({role})"))
            .unwrap_or_default();
        let heading = format!("Image {} of {count}{role}", image.n);
        if let Some(section) =
            image_section(state, tenant, &image.request_id, Some(heading)).await?
        {
            images.push(section);
        }
    }
    let decision = row
        .decision
        .as_deref()
        .map(serde_json::from_str::<Value>)
        .transpose()
        .map_err(EngineError::internal)?
        .map(|summary| case_decision(&summary));
    let audit = audit_section(state, verifier_key, tenant, &images).await?;
    Ok(Report {
        title: format!("{} {case_id}", spec.title),
        tenant: tenant.to_owned(),
        generated_at: now_text(state),
        case: Some(CaseSection {
            kind: spec.kind.to_owned(),
            case_id: case_id.to_owned(),
            complete: row.complete,
            decision,
        }),
        images,
        audit,
    })
}

fn now_text(state: Engine<'_>) -> String {
    state.clock.now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A case decision as the case row keeps it (the deciding image's decision summary).
fn case_decision(summary: &Value) -> DecisionSection {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    DecisionSection {
        action: text(&summary["action"]),
        reason: text(&summary["reason"]),
        description: summary["description"].as_str().map(str::to_owned),
        fired: summary["fired"]
            .as_array()
            .map(|rules| rules.iter().map(text).collect())
            .unwrap_or_default(),
        policy_id: text(&summary["policy"]["id"]),
        policy_version: summary["policy"]["version"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or_default(),
        policy_sha256: text(&summary["policy"]["sha256"]),
    }
}

/// One image's section: its request row, decision, reviews, thumbnail and audit entries.
async fn image_section(
    state: Engine<'_>,
    tenant: &str,
    request_id: &str,
    heading: Option<String>,
) -> Result<Option<ImageSection>, EngineError> {
    let conn = state.pipeline.db().conn();
    let Some(row) = arbiter_db::requests::get(conn, tenant, request_id).await? else {
        return Ok(None);
    };
    let analysis: Analysis = serde_json::from_str(&row.analysis).map_err(EngineError::internal)?;
    let decision = arbiter_db::decisions::get(conn, tenant, request_id)
        .await?
        .map(|stored| {
            Ok::<_, EngineError>(DecisionSection {
                action: stored.action,
                reason: stored.reason,
                description: stored.description,
                fired: serde_json::from_str(&stored.fired).map_err(EngineError::internal)?,
                policy_id: stored.policy_id,
                policy_version: u32::try_from(stored.policy_version).unwrap_or_default(),
                policy_sha256: stored.policy_sha256,
            })
        })
        .transpose()?;
    let filter = arbiter_db::review::ItemFilter {
        request_id: Some(request_id),
        ..Default::default()
    };
    let reviews = arbiter_db::review::list(conn, tenant, &filter, 100)
        .await?
        .into_iter()
        .map(|item| ReviewLine {
            outcome: review_outcome(&item),
            queue: item.queue,
            status: item.status,
        })
        .collect();
    let entries = arbiter_audit::entries(
        conn,
        &EntryFilter {
            tenant: Some(tenant.to_owned()),
            request_id: Some(request_id.to_owned()),
            order: Order::Asc,
            ..EntryFilter::default()
        },
    )
    .await
    .map_err(EngineError::internal)?
    .into_iter()
    .map(|stored| EntryLine {
        seq: i64::try_from(stored.entry.seq).unwrap_or(i64::MAX),
        event: stored.entry.event.name().to_owned(),
        entry_hash: stored.entry_hash,
    })
    .collect();
    let thumbnail_png = thumbnails::get(conn, tenant, &row.image_sha256)
        .await?
        .map(|t| t.png);
    Ok(Some(ImageSection {
        heading,
        request_id: row.request_id,
        reference_id: row.reference_id,
        sha256: row.image_sha256,
        image_line: image_line(&analysis.image_info),
        recorded_at: row.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        thumbnail_png,
        verdict: VerdictSection {
            label: analysis.verdict.label.to_string(),
            confidence: analysis.verdict.confidence,
            risk_level: analysis.verdict.risk_level.to_string(),
        },
        detector: analysis.detector.clone(),
        results: results(&analysis),
        heatmap: heatmap(&analysis),
        decision,
        reviews,
        entries,
    }))
}

/// The latest signed checkpoint covering every entry of the report, and the verifier key.
async fn audit_section(
    state: Engine<'_>,
    verifier_key: &str,
    tenant: &str,
    images: &[ImageSection],
) -> Result<AuditSection, EngineError> {
    let last_seq = images
        .iter()
        .flat_map(|image| image.entries.iter().map(|e| e.seq))
        .max();
    let latest = arbiter_audit::checkpoint::checkpoints_page(
        state.pipeline.db().conn(),
        tenant,
        Order::Desc,
        None,
        1,
    )
    .await?
    .checkpoints
    .into_iter()
    .next();
    // The latest checkpoint is the largest: if it does not cover the last entry, none does.
    let checkpoint = match (latest, last_seq) {
        (Some(cp), Some(seq)) if cp.size > seq => Some(CheckpointLine {
            size: cp.size,
            root_hash: cp.root_hash,
            issued_at: cp.issued_at,
        }),
        _ => None,
    };
    Ok(AuditSection {
        checkpoint,
        verifier_key: verifier_key.to_owned(),
    })
}

/// `JPEG, 1024 x 768 px, 245 KB`.
fn image_line(info: &ImageInfo) -> String {
    let size = info.file_size_bytes;
    let size = if size >= 1024 * 1024 {
        format!("{:.1} MB", size as f64 / (1024.0 * 1024.0))
    } else if size >= 1024 {
        format!("{} KB", size.div_ceil(1024))
    } else {
        format!("{size} bytes")
    };
    format!(
        "{}, {} x {} px, {size}",
        info.format, info.width, info.height
    )
}

fn outcome(result: &ModelResult) -> String {
    match (result.label, result.score) {
        (ModelLabel::NotRun, _) => "not run".to_owned(),
        (label, Some(score)) => format!("{}, score {score:.2}", label.as_str()),
        (label, None) => label.as_str().to_owned(),
    }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// Each model's result, each vendor's, and the file's metadata facts, in words.
fn results(analysis: &Analysis) -> Vec<ResultLine> {
    let mut lines: Vec<ResultLine> = analysis
        .model_results
        .iter()
        .map(|(kind, result)| ResultLine {
            source: kind.result_key().to_owned(),
            outcome: outcome(result),
            evidence: result
                .detail
                .clone()
                .unwrap_or_else(|| "no detail given".to_owned()),
        })
        .collect();
    for run in &analysis.providers {
        let outcome = match (run.status, &run.verdict) {
            (RunStatus::Ok, Some(verdict)) => format!(
                "{}, confidence {:.2}{}",
                verdict.label,
                verdict.confidence,
                run.vendor_status
                    .as_deref()
                    .map(|s| format!(" (its word: {s})"))
                    .unwrap_or_default()
            ),
            (status, _) => format!("{status:?}").to_ascii_lowercase(),
        };
        let mut evidence: Vec<String> = Vec::new();
        if let Some(score) = run.score {
            evidence.push(format!("score {score:.2}"));
        }
        if !run.models.is_empty() {
            evidence.push(format!(
                "models: {}",
                run.models
                    .iter()
                    .map(|m| serde_json::to_string(m).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        evidence.extend(run.reasons.iter().cloned());
        if let Some(error) = &run.error {
            evidence.push(error.clone());
        }
        if let Some(sha) = &run.answer_sha256 {
            evidence.push(format!("its answer's SHA-256 {sha}"));
        }
        lines.push(ResultLine {
            source: run.name.clone(),
            outcome,
            evidence: if evidence.is_empty() {
                "no detail given".to_owned()
            } else {
                evidence.join("; ")
            },
        });
    }
    let m = &analysis.metadata;
    let mut facts = vec![
        format!("EXIF present: {}", yes_no(m.exif_present)),
        format!("GPS: {}", yes_no(m.gps_present)),
    ];
    let camera = [m.camera_make.as_deref(), m.camera_model.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if !camera.is_empty() {
        facts.push(format!("camera: {camera}"));
    }
    if let Some(time) = &m.capture_time {
        facts.push(format!("captured: {time}"));
    }
    if let Some(software) = &m.software {
        facts.push(format!("software: {software}"));
    }
    facts.push(format!(
        "C2PA: {}",
        match (m.c2pa_present, m.c2pa_valid) {
            (false, _) => "none",
            (true, true) => "present and valid",
            (true, false) => "present, not valid",
        }
    ));
    if let Some(generator) = &m.generator {
        facts.push(format!("generator named: {generator}"));
    }
    facts.push(format!("AI declared: {}", yes_no(m.ai_declared)));
    lines.push(ResultLine {
        source: "file metadata".to_owned(),
        outcome: format!("capture evidence: {}", m.capture_evidence()),
        evidence: facts.join("; "),
    });
    lines
}

/// The first heatmap a model made, decoded.
fn heatmap(analysis: &Analysis) -> Option<HeatmapSection> {
    let (kind, map) = analysis
        .model_results
        .iter()
        .find_map(|(kind, result)| result.heatmap.as_ref().map(|map| (kind, map)))?;
    let png = base64::engine::general_purpose::STANDARD
        .decode(&map.png_base64)
        .ok()?;
    Some(HeatmapSection {
        png,
        caption: format!(
            "From {}: {} x {} regions, each a {} px square of the image; brighter regions agree \
             less with the rest of the image.",
            kind.result_key(),
            map.width,
            map.height,
            map.region_px
        ),
    })
}

/// A review item's outcome in words.
fn review_outcome(item: &arbiter_db::entity::review_item::Model) -> String {
    let at = |t: &Option<DateTime<Utc>>| {
        t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    match item.status.as_str() {
        arbiter_db::review::RESOLVED => {
            let mut text = format!(
                "{} by {} at {}; action {}",
                item.label.as_deref().unwrap_or("resolved"),
                item.resolved_by.as_deref().unwrap_or("a reviewer"),
                at(&item.resolved_at),
                item.resolved_action.as_deref().unwrap_or(&item.action),
            );
            if let Some(note) = &item.note {
                text.push_str(&format!("; note: {note}"));
            }
            text
        }
        arbiter_db::review::CLAIMED => format!(
            "claimed by {} at {}, not resolved yet",
            item.claimed_by.as_deref().unwrap_or("a reviewer"),
            at(&item.claimed_at)
        ),
        _ => format!(
            "waiting in the queue since {}",
            item.created_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thumbnail_is_at_most_256_px_and_keeps_the_shape() {
        let image = image::RgbImage::from_fn(1000, 500, |x, _| image::Rgb([(x % 256) as u8, 0, 0]));
        let mut jpeg = Cursor::new(Vec::new());
        image
            .write_to(&mut jpeg, image::ImageFormat::Jpeg)
            .expect("encode");
        let thumb = thumbnail(jpeg.get_ref()).expect("a thumbnail");
        assert_eq!((thumb.width, thumb.height), (256, 128));
        let back = image::load_from_memory(&thumb.png).expect("a PNG");
        assert_eq!((back.width(), back.height()), (256, 128));
        assert!(thumbnail(b"not an image").is_none());
    }

    #[test]
    fn an_image_line_gives_the_format_the_size_in_pixels_and_the_file_size_in_words() {
        let info = |file_size_bytes| ImageInfo {
            width: 1024,
            height: 768,
            format: arbiter_core::ImageFormat::Jpeg,
            file_size_bytes,
            sha256: String::new(),
        };
        let format = arbiter_core::ImageFormat::Jpeg.as_str();
        assert_eq!(
            image_line(&info(900)),
            format!("{format}, 1024 x 768 px, 900 bytes")
        );
        assert_eq!(
            image_line(&info(245 * 1024 - 10)),
            format!("{format}, 1024 x 768 px, 245 KB")
        );
        assert_eq!(
            image_line(&info(3 * 1024 * 1024 / 2)),
            format!("{format}, 1024 x 768 px, 1.5 MB")
        );
    }

    #[test]
    fn a_case_decision_is_read_from_the_summary_its_row_keeps() {
        let summary = serde_json::json!({
            "action": "siu_escalation",
            "reason": "AI_GENERATED",
            "fired": ["ai_generated"],
            "policy": {"id": "insurance-fnol", "version": 3, "sha256": "abc"},
        });
        let decision = case_decision(&summary);
        assert_eq!(decision.action, "siu_escalation");
        assert_eq!(decision.reason, "AI_GENERATED");
        assert_eq!(decision.description, None);
        assert_eq!(decision.fired, ["ai_generated"]);
        assert_eq!(
            (decision.policy_id.as_str(), decision.policy_version),
            ("insurance-fnol", 3)
        );
        assert_eq!(decision.policy_sha256, "abc");
    }

    /// Reports read from a database where one KYC selfie was recorded and decided.
    #[cfg(feature = "flow-kyc")]
    mod from_the_database {
        use super::*;
        use crate::Pipeline;
        use crate::clock::ManualClock;
        use crate::detector_result::{DetectorResult, request_row};
        use crate::flows::FlowsConfig;
        use crate::record::Record;
        use crate::test_support::{image, pipeline};
        use arbiter_core::{AnalyzeOptions, RequestId, Verdict, VerdictLabel};
        use arbiter_db::{Db, DbTarget};
        use serde_json::json;

        struct Recorded {
            pipeline: Pipeline,
            flows: FlowsConfig,
            clock: ManualClock,
            wake: tokio::sync::Notify,
            request_id: RequestId,
        }

        impl Recorded {
            fn engine(&self) -> Engine<'_> {
                Engine {
                    pipeline: &self.pipeline,
                    flows: &self.flows,
                    clock: &self.clock,
                    deliveries_wake: &self.wake,
                }
            }
        }

        /// A synthetic selfie recorded with its request row and thumbnail.
        async fn recorded(dir: &std::path::Path) -> Recorded {
            let db = Db::connect(&DbTarget::DataDir(dir.into())).await.unwrap();
            let (pipeline, _) = pipeline(db.clone(), Verdict::new(VerdictLabel::AiGenerated, 0.97));
            let media = image(30);
            let analysis = pipeline
                .analyze(
                    pipeline.detector_for(None, None),
                    &media,
                    &AnalyzeOptions::default(),
                )
                .await
                .unwrap();
            let input = json!({"image_role": "selfie", "liveness": {"passed": true}});
            let decided = pipeline.apply_policy("kyc", &input, &analysis).unwrap();
            let request_id = RequestId::new();
            let obtained = DetectorResult {
                analysis: analysis.clone(),
                cached_from: None,
                cache_key: "key".to_owned(),
                at: Utc::now(),
                thumbnail: make_thumbnail(true, &media).await,
            };
            assert!(make_thumbnail(false, &media).await.is_none());
            let record = Record {
                tenant: "acme",
                request_id: &request_id,
                reference_id: Some("ref-30"),
                analysis: &analysis,
                decided: Some(&decided),
                request_row: Some(
                    request_row("acme", &request_id, Some("ref-30".into()), &obtained).unwrap(),
                ),
                case: None,
            };
            pipeline.record(&record).await.unwrap();
            keep_thumbnail(
                db.conn(),
                "acme",
                &analysis.image_info.sha256,
                obtained.thumbnail.as_ref(),
                Utc::now(),
            )
            .await
            .unwrap();
            let start = DateTime::parse_from_rfc3339("2026-12-01T10:00:00.250Z")
                .unwrap()
                .with_timezone(&Utc);
            Recorded {
                pipeline,
                flows: FlowsConfig::default(),
                clock: ManualClock::new(start),
                wake: tokio::sync::Notify::new(),
                request_id,
            }
        }

        #[tokio::test]
        async fn a_request_report_holds_its_decision_review_thumbnail_and_entries() {
            let dir = tempfile::tempdir().unwrap();
            let recorded = recorded(dir.path()).await;
            let id = recorded.request_id.to_string();
            let report = request_report(recorded.engine(), "vkey", "acme", &id)
                .await
                .unwrap();
            assert_eq!(report.title, format!("Request {id}"));
            assert_eq!(report.generated_at, "2026-12-01T10:00:00Z");
            assert!(report.case.is_none());
            assert_eq!(report.audit.verifier_key, "vkey");
            assert!(
                report.audit.checkpoint.is_none(),
                "no checkpoint signed yet"
            );
            let [section] = &report.images[..] else {
                panic!("one image");
            };
            assert_eq!(section.reference_id.as_deref(), Some("ref-30"));
            assert_eq!(section.verdict.label, "AI_GENERATED");
            let decision = section.decision.as_ref().unwrap();
            assert_eq!(
                (decision.action.as_str(), decision.reason.as_str()),
                ("reject", "SYNTHETIC_SELFIE")
            );
            assert_eq!(decision.fired, ["reject-synthetic-selfie"]);
            assert_eq!(decision.policy_id, "kyc.verification");
            let reviews: Vec<_> = section
                .reviews
                .iter()
                .map(|r| (r.queue.as_str(), r.status.as_str()))
                .collect();
            assert_eq!(reviews, [("kyc_review", "open")]);
            let entries: Vec<_> = section
                .entries
                .iter()
                .map(|e| (e.seq, e.event.as_str()))
                .collect();
            assert_eq!(entries, [(0, "decision.recorded")]);
            let png = section.thumbnail_png.as_ref().expect("the kept thumbnail");
            assert_eq!(png, &thumbnail(&image(30).bytes).unwrap().png);

            let pdf = pdf(report).await.unwrap();
            assert!(pdf.starts_with(b"%PDF"));
        }

        #[tokio::test]
        async fn another_tenants_request_or_an_unknown_case_is_not_found() {
            let dir = tempfile::tempdir().unwrap();
            let recorded = recorded(dir.path()).await;
            let id = recorded.request_id.to_string();
            let err = request_report(recorded.engine(), "vkey", "other", &id)
                .await
                .unwrap_err();
            assert_eq!(err.code(), arbiter_core::ErrorCode::NotFound);
            assert_eq!(
                err.to_string(),
                format!("no analysed request {id} for this tenant")
            );
            let err = case_report(recorded.engine(), "vkey", "acme", "kyc", "S-1")
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), "no session S-1 for this tenant");
            let err = case_report(recorded.engine(), "vkey", "acme", "payroll", "S-1")
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), "flow payroll is not enabled");
        }
    }
}
