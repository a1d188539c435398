//! Cases: the images a flow groups (an insurance claim, a KYC session) and one decision over
//! them.
//!
//! A case holds case-level facts (the claim's amount, the session's liveness result) and its
//! images, each with its own facts (the photo's role, the image's role). The case decision is
//! the flow's roll-up (the strictest action) of the live policy's decision on every image, each
//! seen with the case's current facts; so it is recomputed whenever an image or a case fact
//! arrives. It is final once the case holds the evidence the flow requires (a KYC session: a
//! selfie, an ID document and a liveness result). Each change is committed in one transaction
//! with the image's own decision, audit entry, review item and webhooks.

use crate::Engine;
use crate::analyze::{AnalysisHandles, obtain};
use crate::announce::AnalysisDeliveries;
use crate::detector_result::{DetectorResult, request_row};
use crate::error::EngineError;
use crate::intake::FlowBody;

use crate::record::{CaseContext, Decided, Record};
use arbiter_audit::Event;
use arbiter_core::{
    Analysis, CaseFactIntake, CaseIntake, CaseSpec, Decision, Flow, IntakeMode, RequestId,
};
use arbiter_db::entity::{case, case_image};
use arbiter_db::sea_orm::ConnectionTrait;
use arbiter_db::{cases as repo, decisions};
use arbiter_webhooks::outbox::{self, Message};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

impl NewCaseImage {
    /// The image of a flow body for the case `case_id` (a `kind`, named in refusals): the
    /// case's and the image's facts read from the body's fields as the flow's `intake` says,
    /// and the body's `reference_id` taken.
    pub fn from_body(
        intake: &CaseIntake,
        kind: &'static str,
        case_id: &str,
        body: &mut FlowBody,
    ) -> Result<Self, EngineError> {
        let read = intake
            .read(kind, case_id, std::mem::take(&mut body.fields))
            .map_err(|err| EngineError::invalid(err.0))?;
        Ok(Self {
            case_id: case_id.to_owned(),
            case_facts: read.case_facts,
            image_facts: read.image_facts,
            role: read.role,
            reference_id: body.reference_id.take(),
            reference_stem: read.reference_stem,
        })
    }
}

/// Analyses a flow body's image and adds it to the case `case_id`: the case's and the image's
/// facts read from the body as the flow's intake says ([`NewCaseImage::from_body`]) and checked
/// by the flow, the detector the flow's route picks for them, the image decided under the flow's
/// policy and the case decision recomputed.
pub async fn add_analyzed_image(
    handles: &impl AnalysisHandles,
    engine: Engine<'_>,
    tenant: &str,
    flow: &str,
    request_id: &RequestId,
    case_id: &str,
    mut body: FlowBody,
) -> Result<CaseImageReply, EngineError> {
    let (flow_impl, spec) = case_flow(engine, flow)?;
    let Some(IntakeMode::Cases(intake)) = flow_impl.intake().map(|intake| intake.mode) else {
        return Err(EngineError::not_found(format!("flow {flow} has no cases")));
    };
    let image = NewCaseImage::from_body(&intake, spec.kind, case_id, &mut body)?;
    check_image_input(engine, flow, &image)?;
    let mut input = image.case_facts.clone();
    input.extend(image.image_facts.clone());
    let input = Value::Object(input);
    let options = body.options(engine.pipeline.flows(), flow, &input)?;
    let detector = engine
        .pipeline
        .detector_for(Some(flow), Some(&input))
        .clone();
    let obtained = obtain(
        handles,
        tenant,
        request_id,
        body.source,
        &options,
        &detector,
    )
    .await?;
    let reply = add_image(engine, tenant, flow, request_id, image, &obtained).await?;
    obtained.committed(handles, request_id);
    Ok(reply)
}

/// One image for a case.
#[derive(Debug, Clone)]
pub struct NewCaseImage {
    /// The case's id.
    pub case_id: String,
    /// Case-level facts this request brings (`{"claim": {...}}`), merged into the case's.
    pub case_facts: Map<String, Value>,
    /// The image's own facts (`{"photo": {"role": "damage"}}`, `{"image_role": "selfie"}`).
    pub image_facts: Map<String, Value>,
    /// The image's role, if the flow has roles.
    pub role: Option<String>,
    /// The caller's reference; by default `<case_id>-<stem>-<n>`.
    pub reference_id: Option<String>,
    /// The default reference's middle part (`photo`, or the image's role).
    pub reference_stem: String,
}

/// What adding an image gave.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CaseImageReply {
    /// The request that analysed the image.
    #[schema(value_type = String)]
    pub request_id: RequestId,
    /// The image's reference.
    pub reference_id: String,
    /// The image's number in the case, from 1.
    pub n: i32,
    /// Whether the detector result was reused from an earlier identical image.
    pub cached: bool,
    /// The guide's verdict.
    #[schema(value_type = Object)]
    pub verdict: Value,
    /// The guide's per-model results.
    #[schema(value_type = Object)]
    pub model_results: Value,
    /// Width, height, format, size and SHA-256 of the image.
    #[schema(value_type = Object)]
    pub image_info: Value,
    /// The metadata facts read from the file.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// What each detector of the image's route said, when a route of several or a vendor ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<arbiter_core::DetectorRun>,
    /// The policy's decision about this image.
    #[schema(value_type = Object)]
    pub decision: Value,
    /// The case as it now stands.
    pub case: CaseView,
}

/// A case as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CaseView {
    /// The caller's id of the case.
    pub case_id: String,
    /// The flow.
    pub flow: String,
    /// `claim` or `session`.
    pub kind: String,
    /// `decided` once the case holds every piece of evidence its flow requires, `pending` before.
    pub status: String,
    /// The evidence still missing (`liveness`, `id_document`, ...).
    pub missing: Vec<String>,
    /// The case-level facts.
    #[schema(value_type = Object)]
    pub facts: Value,
    /// The case decision: the strictest of its images' decisions, with the image that decided.
    /// Provisional while `status` is `pending`.
    #[schema(value_type = Option<Object>)]
    pub decision: Option<Value>,
    /// Its images, in arrival order, each with its own decision.
    #[schema(value_type = Vec<Object>)]
    pub images: Vec<Value>,
    /// When the case was opened.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The flow and its case rules, or a 404 when the build or configuration has no such flow.
pub fn case_flow(engine: Engine<'_>, flow: &str) -> Result<(Arc<dyn Flow>, CaseSpec), EngineError> {
    let flow_impl = engine
        .pipeline
        .flows()
        .get(flow)
        .filter(|_| engine.flows.enabled(flow))
        .cloned()
        .ok_or_else(|| EngineError::not_found(format!("flow {flow} is not enabled")))?;
    let spec = *flow_impl
        .case()
        .ok_or_else(|| EngineError::not_found(format!("flow {flow} has no cases")))?;
    Ok((flow_impl, spec))
}

/// Checks a case id from a path: 1 to 100 of `A-Z a-z 0-9 . _ - :`, so that references made
/// from it stay valid.
pub fn check_case_id(kind: &str, case_id: &str) -> Result<(), EngineError> {
    if case_id.is_empty()
        || case_id.len() > 100
        || !case_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c))
    {
        return Err(EngineError::invalid(format!(
            "{kind}_id must be 1 to 100 letters, digits and . _ - : (found {case_id:?})"
        )));
    }
    Ok(())
}

/// Checks the domain input an image brings (case facts and image facts together) before the
/// detector runs, naming the bad field.
pub fn check_image_input(
    engine: Engine<'_>,
    flow: &str,
    image: &NewCaseImage,
) -> Result<(), EngineError> {
    case_flow(engine, flow)?;
    let mut input = image.case_facts.clone();
    input.extend(image.image_facts.clone());
    engine.pipeline.check_input(flow, &Value::Object(input))?;
    Ok(())
}

/// Attaches an analysed image to its case (opening the case if needed) and commits, in one
/// transaction, its decision, audit entry, review item and webhooks, and the case's new state.
pub async fn add_image(
    engine: Engine<'_>,
    tenant: &str,
    flow: &str,
    request_id: &RequestId,
    image: NewCaseImage,
    obtained: &DetectorResult,
) -> Result<CaseImageReply, EngineError> {
    let (flow_impl, spec) = case_flow(engine, flow)?;
    let now = obtained.at;
    let txn = engine.pipeline.db().begin_write().await?;
    let mut row = repo::open(&txn, tenant, flow, &image.case_id, now).await?;
    let facts = merged(&row.facts, &image.case_facts, false)?;
    let n = row.images + 1;
    let reference_id = image
        .reference_id
        .clone()
        .unwrap_or_else(|| format!("{}-{}-{n}", image.case_id, image.reference_stem));
    let decided = engine.pipeline.apply_policy(
        flow,
        &with_image_facts(&facts, &image.image_facts),
        &obtained.analysis,
    )?;
    let attached = case_image::Model {
        request_id: request_id.to_string(),
        tenant: tenant.to_owned(),
        flow: flow.to_owned(),
        case_id: image.case_id.clone(),
        n,
        role: image.role.clone(),
        facts: to_json(&image.image_facts)?,
        created_at: now,
    };
    let mut images = repo::images(&txn, tenant, flow, &image.case_id).await?;
    images.push(attached.clone());
    let standing = CaseAssessment::assess(
        engine,
        &txn,
        flow_impl.as_ref(),
        &spec,
        &facts,
        &images,
        Some((request_id, &reference_id, &decided)),
    )
    .await?;
    row.images = n;
    let (previous, view) = restate(&mut row, &facts, &spec, &standing, &images, now)?;
    let context = CaseContext {
        kind: spec.kind,
        case_id: image.case_id.clone(),
        summary: json!(view),
    };
    let record = Record {
        tenant,
        request_id,
        reference_id: Some(&reference_id),
        analysis: &obtained.analysis,
        decided: Some(&decided),
        request_row: Some(request_row(
            tenant,
            request_id,
            Some(reference_id.clone()),
            obtained,
        )?),
        case: Some(&context),
    };
    engine.pipeline.write(&txn, &record).await?;
    let mut deliveries = outbox::Deliveries::default();
    deliveries
        .add_analysis(&txn, &record, None, None, now)
        .await?;
    let mut queued = deliveries.write(&txn).await?;
    queued += record_change(&txn, tenant, &spec, &previous, &standing, &view, now).await?;
    repo::add_image(&txn, attached).await?;
    repo::save(&txn, row).await?;
    if let Some(thumbnail) = &obtained.thumbnail {
        let sha256 = &obtained.analysis.image_info.sha256;
        arbiter_db::thumbnails::keep(&txn, tenant, sha256, thumbnail, now).await?;
    }
    txn.commit().await?;
    if queued > 0 {
        engine.deliveries_wake.notify_waiters();
    }
    engine.pipeline.act(&record).await;
    tracing::info!(flow, case_id = %image.case_id, n, action = %decided.decision.action, case_action = ?view.decision.as_ref().map(|d| d["action"].clone()), "case image recorded");
    Ok(CaseImageReply {
        request_id: request_id.clone(),
        reference_id,
        n,
        cached: obtained.cached_from.is_some(),
        verdict: json!(obtained.analysis.verdict),
        model_results: json!(obtained.analysis.model_results),
        image_info: json!(obtained.analysis.image_info),
        metadata: json!(obtained.analysis.metadata),
        providers: obtained.analysis.providers.clone(),
        decision: decided.decision_summary(),
        case: view,
    })
}

/// Replaces one case-level fact (a KYC session's `liveness`, posted as `value` and read by the
/// flow's `fact`) of an existing case and recomputes its decision; 404 when there is no such
/// case.
pub async fn set_fact(
    engine: Engine<'_>,
    tenant: &str,
    flow: &str,
    case_id: &str,
    fact: &CaseFactIntake,
    value: Value,
) -> Result<CaseView, EngineError> {
    let (flow_impl, spec) = case_flow(engine, flow)?;
    let value = (fact.read)(value).map_err(EngineError::invalid)?;
    check_case_id(spec.kind, case_id)?;
    let key = fact.name;
    let update: Map<String, Value> = [(key.to_owned(), value)].into_iter().collect();
    engine
        .pipeline
        .check_input(flow, &Value::Object(update.clone()))?;
    let now = engine.clock.now();
    let txn = engine.pipeline.db().begin_write().await?;
    let mut row = repo::lock(&txn, tenant, flow, case_id)
        .await?
        .ok_or_else(|| {
            EngineError::not_found(format!("no {} {case_id} for this tenant", spec.kind))
        })?;
    let facts = merged(&row.facts, &update, true)?;
    let images = repo::images(&txn, tenant, flow, case_id).await?;
    let standing = CaseAssessment::assess(
        engine,
        &txn,
        flow_impl.as_ref(),
        &spec,
        &facts,
        &images,
        None,
    )
    .await?;
    let (previous, view) = restate(&mut row, &facts, &spec, &standing, &images, now)?;
    let queued = record_change(&txn, tenant, &spec, &previous, &standing, &view, now).await?;
    repo::save(&txn, row).await?;
    txn.commit().await?;
    if queued > 0 {
        engine.deliveries_wake.notify_waiters();
    }
    tracing::info!(flow, case_id, fact = key, status = %view.status, "case fact recorded");
    Ok(view)
}

/// A case as it stands; 404 when there is no such case.
pub async fn get(
    engine: Engine<'_>,
    tenant: &str,
    flow: &str,
    case_id: &str,
) -> Result<CaseView, EngineError> {
    let (flow_impl, spec) = case_flow(engine, flow)?;
    let conn = engine.pipeline.db().conn();
    let row = repo::get(conn, tenant, flow, case_id)
        .await?
        .ok_or_else(|| {
            EngineError::not_found(format!("no {} {case_id} for this tenant", spec.kind))
        })?;
    let facts: Map<String, Value> =
        serde_json::from_str(&row.facts).map_err(EngineError::internal)?;
    let images = repo::images(conn, tenant, flow, case_id).await?;
    let standing = CaseAssessment::assess(
        engine,
        conn,
        flow_impl.as_ref(),
        &spec,
        &facts,
        &images,
        None,
    )
    .await?;
    Ok(view(
        &row,
        &spec,
        &standing,
        image_views(&images, &standing),
    ))
}

/// The case decision as it stood before a change.
struct Previous {
    action: Option<String>,
    complete: bool,
}

impl Previous {
    fn of(row: &case::Model) -> Self {
        Self {
            action: row.action.clone(),
            complete: row.complete,
        }
    }
}

/// Each image's decision under the case's current facts, and the case decision over them.
struct CaseAssessment {
    /// Per image, in order: its request, reference and decision (as recorded for the image
    /// being added; recomputed with the case's current facts for the others).
    images: Vec<(String, Option<String>, Decided)>,
    /// The index of the deciding image.
    decider: Option<usize>,
    /// Evidence still missing.
    missing: Vec<String>,
}

impl CaseAssessment {
    async fn assess(
        engine: Engine<'_>,
        conn: &impl ConnectionTrait,
        flow: &dyn Flow,
        spec: &CaseSpec,
        facts: &Map<String, Value>,
        images: &[case_image::Model],
        new: Option<(&RequestId, &str, &Decided)>,
    ) -> Result<Self, EngineError> {
        let mut decided = Vec::with_capacity(images.len());
        // Every image but the one being added has a stored decision: read them at once.
        let stored_ids: Vec<String> = images
            .iter()
            .filter(|image| new.is_none_or(|(id, _, _)| image.request_id != id.as_str()))
            .map(|image| image.request_id.clone())
            .collect();
        let mut stored = match images.first() {
            Some(first) if !stored_ids.is_empty() => {
                decisions::get_many(conn, &first.tenant, stored_ids).await?
            }
            _ => Default::default(),
        };
        for image in images {
            if let Some((request_id, reference_id, d)) = new
                && image.request_id == request_id.as_str()
            {
                decided.push((
                    image.request_id.clone(),
                    Some(reference_id.to_owned()),
                    d.clone(),
                ));
                continue;
            }
            let stored = stored.remove(&image.request_id).ok_or_else(|| {
                EngineError::internal(format!("no decision for {}", image.request_id))
            })?;
            let analysis: Analysis =
                serde_json::from_str(&stored.analysis).map_err(EngineError::internal)?;
            let own: Map<String, Value> =
                serde_json::from_str(&image.facts).map_err(EngineError::internal)?;
            let d = engine.pipeline.apply_policy(
                flow.name(),
                &with_image_facts(facts, &own),
                &analysis,
            )?;
            decided.push((image.request_id.clone(), stored.reference_id, d));
        }
        let decisions: Vec<Decision> = decided.iter().map(|(_, _, d)| d.decision.clone()).collect();
        let decider = flow
            .roll_up(&decisions)
            .and_then(|top| decisions.iter().position(|d| std::ptr::eq(d, top)));
        let missing = spec
            .requires
            .iter()
            .filter(|need| {
                !facts.contains_key(**need)
                    && !images.iter().any(|i| i.role.as_deref() == Some(**need))
            })
            .map(|need| (*need).to_owned())
            .collect();
        Ok(Self {
            images: decided,
            decider,
            missing,
        })
    }

    fn complete(&self) -> bool {
        self.missing.is_empty()
    }

    /// The case decision, with the image that decided it.
    fn decision(&self) -> Option<Value> {
        let (request_id, reference_id, decided) = &self.images[self.decider?];
        let mut summary = decided.decision_summary();
        summary["severity"] = json!(decided.decision.severity);
        summary["request_id"] = json!(request_id);
        summary["reference_id"] = json!(reference_id);
        Some(summary)
    }

    fn apply(&self, row: &mut case::Model, now: DateTime<Utc>) -> Result<(), EngineError> {
        let decision = self.decision();
        row.action = decision
            .as_ref()
            .and_then(|d| d["action"].as_str())
            .map(str::to_owned);
        row.decision = decision.as_ref().map(to_json).transpose()?;
        row.complete = self.complete();
        row.updated_at = now;
        Ok(())
    }
}

fn image_views(images: &[case_image::Model], standing: &CaseAssessment) -> Vec<Value> {
    images
        .iter()
        .zip(&standing.images)
        .map(|(image, (request_id, reference_id, decided))| {
            let own: Value = serde_json::from_str(&image.facts).unwrap_or_else(|_| json!({}));
            json!({
                "n": image.n,
                "request_id": request_id,
                "reference_id": reference_id,
                "role": image.role,
                "facts": own,
                "image_sha256": decided.facts.get("image.sha256"),
                "verdict": decided.facts.get("verdict"),
                "decision": decided.decision_summary(),
                "created_at": image.created_at,
            })
        })
        .collect()
}

fn view(
    row: &case::Model,
    spec: &CaseSpec,
    standing: &CaseAssessment,
    images: Vec<Value>,
) -> CaseView {
    CaseView {
        case_id: row.case_id.clone(),
        flow: row.flow.clone(),
        kind: spec.kind.to_owned(),
        status: if standing.complete() {
            "decided"
        } else {
            "pending"
        }
        .to_owned(),
        missing: standing.missing.clone(),
        facts: serde_json::from_str(&row.facts).unwrap_or_else(|_| json!({})),
        decision: standing.decision(),
        images,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// Writes the case's new facts and decision into its row; returns the decision as it was and
/// the case as it now stands.
fn restate(
    row: &mut case::Model,
    facts: &Map<String, Value>,
    spec: &CaseSpec,
    standing: &CaseAssessment,
    images: &[case_image::Model],
    now: DateTime<Utc>,
) -> Result<(Previous, CaseView), EngineError> {
    let previous = Previous::of(row);
    row.facts = to_json(facts)?;
    standing.apply(row, now)?;
    let view = view(row, spec, standing, image_views(images, standing));
    Ok((previous, view))
}

/// Records a change of the case decision in the audit log and queues the flow's case event;
/// returns the deliveries queued.
async fn record_change(
    conn: &impl ConnectionTrait,
    tenant: &str,
    spec: &CaseSpec,
    previous: &Previous,
    standing: &CaseAssessment,
    view: &CaseView,
    now: DateTime<Utc>,
) -> Result<usize, EngineError> {
    audit_change(conn, tenant, &view.case_id, previous, standing, now).await?;
    announce(conn, tenant, spec, previous, view, now).await
}

/// Records a change of the case decision (its action, or its completeness) in the audit log
/// (`case.decided`).
async fn audit_change(
    conn: &impl ConnectionTrait,
    tenant: &str,
    case_id: &str,
    previous: &Previous,
    standing: &CaseAssessment,
    now: DateTime<Utc>,
) -> Result<(), EngineError> {
    let Some((request_id, reference_id, decided)) = standing.decider.map(|i| &standing.images[i])
    else {
        return Ok(());
    };
    let decision = &decided.decision;
    if previous.action.as_deref() == Some(decision.action.as_str())
        && previous.complete == standing.complete()
    {
        return Ok(());
    }
    let event = Event::CaseDecided {
        flow: decided.flow.clone(),
        case_id: case_id.to_owned(),
        request_id: request_id.clone(),
        reference_id: reference_id.clone(),
        action: decision.action.clone(),
        policy: decision.policy.clone(),
        rules: decision.fired.clone(),
        complete: standing.complete(),
    };
    arbiter_audit::append(conn, tenant, now, event)
        .await
        .map_err(EngineError::internal)?;
    Ok(())
}

/// Queues the flow's case event (`kyc.decision`) when a final case decision is new: the case
/// just became complete, or its action changed while complete.
async fn announce(
    conn: &impl ConnectionTrait,
    tenant: &str,
    spec: &CaseSpec,
    previous: &Previous,
    view: &CaseView,
    now: DateTime<Utc>,
) -> Result<usize, EngineError> {
    let Some(event) = spec.event else {
        return Ok(0);
    };
    let action = view
        .decision
        .as_ref()
        .and_then(|d| d["action"].as_str())
        .map(str::to_owned);
    let complete = view.missing.is_empty();
    if !complete || (previous.complete && previous.action == action) {
        return Ok(0);
    }
    let decider = view
        .decision
        .as_ref()
        .and_then(|d| d["request_id"].as_str());
    let mut payload = json!({
        "event": event,
        "type": event,
        "timestamp": now,
        "decision": view.decision,
    });
    payload[format!("{}_id", spec.kind)] = json!(view.case_id);
    payload[spec.kind] = json!(view);
    let message = Message {
        event,
        payload,
        request_id: decider,
        reference_id: Some(&view.case_id),
        batch_id: None,
    };
    Ok(outbox::enqueue(conn, tenant, &message, None, now).await?)
}

/// The case's stored facts with an update merged in: object by object, or (`replace`) each
/// updated top-level fact replaced whole.
fn merged(
    stored: &str,
    update: &Map<String, Value>,
    replace: bool,
) -> Result<Map<String, Value>, EngineError> {
    let mut facts: Map<String, Value> =
        serde_json::from_str(stored).map_err(EngineError::internal)?;
    if replace {
        facts.extend(update.clone());
        return Ok(facts);
    }
    let mut merged = arbiter_core::Facts::from_map(facts);
    merged.merge(update);
    Ok(merged.as_map().clone())
}

fn with_image_facts(case: &Map<String, Value>, image: &Map<String, Value>) -> Value {
    let mut input = arbiter_core::Facts::from_map(case.clone());
    input.merge(image);
    Value::Object(input.as_map().clone())
}

fn to_json<T: Serialize>(value: &T) -> Result<String, EngineError> {
    serde_json::to_string(value).map_err(EngineError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn claim_facts_merge_field_by_field_and_a_liveness_result_replaces_the_last() {
        let stored = r#"{"claim": {"id": "C-1", "amount": 12000, "currency": "EUR"}, "liveness": {"passed": false, "score": 0.2}}"#;
        let merged_claim =
            merged(stored, &map(json!({"claim": {"amount": 13000}})), false).unwrap();
        assert_eq!(
            Value::Object(merged_claim)["claim"],
            json!({"id": "C-1", "amount": 13000, "currency": "EUR"})
        );
        let replaced = merged(stored, &map(json!({"liveness": {"passed": true}})), true).unwrap();
        assert_eq!(Value::Object(replaced)["liveness"], json!({"passed": true}));
    }

    #[test]
    fn an_image_sees_the_case_facts_and_its_own() {
        let input = with_image_facts(
            &map(json!({"claim": {"id": "C-1"}})),
            &map(json!({"photo": {"role": "damage"}})),
        );
        assert_eq!(
            input,
            json!({"claim": {"id": "C-1"}, "photo": {"role": "damage"}})
        );
    }

    #[test]
    fn case_ids_are_short_and_plain() {
        assert!(check_case_id("claim", "CLM-2026:0001.a_b").is_ok());
        for bad in ["", "a b", "x/y", &"c".repeat(101)] {
            let err = check_case_id("claim", bad).unwrap_err();
            let message = err.to_string();
            assert!(message.starts_with("claim_id"), "{message}");
        }
    }

    /// A KYC session built image by image through [`add_image`] and [`set_fact`].
    #[cfg(feature = "flow-kyc")]
    mod sessions {
        use super::*;
        use crate::analyze::ImageSource;
        use crate::clock::SystemClock;
        use crate::flows::FlowsConfig;
        use crate::test_support::{image, pipeline};
        use crate::{Engine, Pipeline};
        use arbiter_core::{AnalyzeOptions, Verdict, VerdictLabel};
        use arbiter_db::{Db, testing};

        struct Handles {
            pipeline: Pipeline,
            flows: FlowsConfig,
            wake: tokio::sync::Notify,
        }

        impl Handles {
            fn engine(&self) -> Engine<'_> {
                Engine {
                    pipeline: &self.pipeline,
                    flows: &self.flows,
                    clock: &SystemClock,
                    deliveries_wake: &self.wake,
                }
            }

            /// Adds an image of `role` whose detector says `verdict` to session `case_id`.
            async fn add(
                &self,
                case_id: &str,
                role: &str,
                seed: u8,
                verdict: Verdict,
            ) -> Result<CaseImageReply, EngineError> {
                let engine = self.engine();
                let flow = engine.pipeline.flows().get("kyc").unwrap().clone();
                let Some(IntakeMode::Cases(intake)) = flow.intake().map(|i| i.mode) else {
                    unreachable!("kyc has sessions");
                };
                let mut body = FlowBody {
                    source: ImageSource::Bytes(Vec::new()),
                    options: None,
                    reference_id: None,
                    fields: map(json!({"role": role})),
                };
                let image_in = NewCaseImage::from_body(&intake, "session", case_id, &mut body)?;
                let detector = engine.pipeline.detector_for(Some("kyc"), None);
                let mut analysis = engine
                    .pipeline
                    .analyze(detector, &image(seed), &AnalyzeOptions::default())
                    .await
                    .unwrap();
                analysis.verdict = verdict;
                let obtained = DetectorResult {
                    analysis,
                    cached_from: None,
                    cache_key: format!("key-{seed}"),
                    at: Utc::now(),
                    thumbnail: None,
                };
                add_image(
                    engine,
                    "acme",
                    "kyc",
                    &RequestId::new(),
                    image_in,
                    &obtained,
                )
                .await
            }

            async fn liveness(&self, case_id: &str, passed: bool) -> Result<CaseView, EngineError> {
                let engine = self.engine();
                let flow = engine.pipeline.flows().get("kyc").unwrap().clone();
                let Some(IntakeMode::Cases(intake)) = flow.intake().map(|i| i.mode) else {
                    unreachable!("kyc has sessions");
                };
                let fact = &intake.case_facts[0];
                set_fact(
                    engine,
                    "acme",
                    "kyc",
                    case_id,
                    fact,
                    json!({"passed": passed}),
                )
                .await
            }
        }

        fn authentic() -> Verdict {
            Verdict::new(VerdictLabel::Authentic, 0.97)
        }

        fn action(view: &CaseView) -> Option<&str> {
            view.decision.as_ref().and_then(|d| d["action"].as_str())
        }

        async fn case_events(db: &Db) -> Vec<(String, bool)> {
            let filter = arbiter_audit::EntryFilter {
                tenant: Some("acme".to_owned()),
                event: Some("case.decided".to_owned()),
                ..Default::default()
            };
            arbiter_audit::entries(db.conn(), &filter)
                .await
                .unwrap()
                .into_iter()
                .map(|stored| match stored.entry.event {
                    Event::CaseDecided {
                        action, complete, ..
                    } => (action, complete),
                    other => panic!("{other:?}"),
                })
                .collect()
        }

        #[tokio::test]
        async fn a_session_is_decided_once_complete_and_the_strictest_image_decides() {
            let dir = tempfile::tempdir().unwrap();
            let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
            for (label, target) in targets {
                let db = Db::connect(&target).await.unwrap();
                let handles = Handles {
                    pipeline: pipeline(db.clone(), authentic()).0,
                    flows: FlowsConfig::default(),
                    wake: tokio::sync::Notify::new(),
                };

                // A selfie without a liveness result: stepped up, and the session pending.
                let first = handles.add("S-1", "selfie", 10, authentic()).await.unwrap();
                assert_eq!(first.n, 1, "{label}");
                assert_eq!(first.reference_id, "S-1-selfie-1", "{label}");
                assert_eq!(first.decision["action"], "step_up_verification", "{label}");
                assert_eq!(first.case.status, "pending", "{label}");
                assert_eq!(first.case.missing, ["id_document", "liveness"], "{label}");
                assert_eq!(
                    first.case.facts,
                    json!({"session": {"id": "S-1"}}),
                    "{label}"
                );

                // The liveness result re-decides the selfie under the case's new facts.
                let view = handles.liveness("S-1", true).await.unwrap();
                assert_eq!(action(&view), Some("approve"), "{label}");
                assert_eq!(view.missing, ["id_document"], "{label}");
                assert_eq!(view.images[0]["decision"]["action"], "approve", "{label}");

                // The ID document (no camera metadata) is stepped up: the strictest decides,
                // and the session is now complete.
                let second = handles
                    .add("S-1", "id_document", 11, authentic())
                    .await
                    .unwrap();
                let case = &second.case;
                assert_eq!(case.status, "decided", "{label}");
                assert!(case.missing.is_empty(), "{label}");
                assert_eq!(action(case), Some("step_up_verification"), "{label}");
                let decision = case.decision.as_ref().unwrap();
                assert_eq!(decision["request_id"], json!(second.request_id), "{label}");
                assert_eq!(decision["reference_id"], "S-1-id_document-2", "{label}");

                // A later synthetic selfie is rejected, and rejection is stricter.
                let synthetic = Verdict::new(VerdictLabel::AiGenerated, 0.97);
                let third = handles.add("S-1", "selfie", 12, synthetic).await.unwrap();
                assert_eq!(action(&third.case), Some("reject"), "{label}");
                assert_eq!(
                    third.case.decision.as_ref().unwrap()["severity"],
                    3,
                    "{label}"
                );
                assert_eq!(third.case.images.len(), 3, "{label}");

                // As stored, the session reads the same.
                let read = get(handles.engine(), "acme", "kyc", "S-1").await.unwrap();
                assert_eq!(action(&read), Some("reject"), "{label}");
                assert_eq!(read.status, "decided", "{label}");
                let actions: Vec<_> = read
                    .images
                    .iter()
                    .map(|i| i["decision"]["action"].as_str().unwrap().to_owned())
                    .collect();
                assert_eq!(
                    actions,
                    ["approve", "step_up_verification", "reject"],
                    "{label}"
                );

                // Each change of the case decision is in the audit log once.
                assert_eq!(
                    case_events(&db).await,
                    [
                        ("step_up_verification".to_owned(), false),
                        ("approve".to_owned(), false),
                        ("step_up_verification".to_owned(), true),
                        ("reject".to_owned(), true),
                    ],
                    "{label}"
                );
                db.close().await.unwrap();
            }
            if let Some(pg) = postgres {
                pg.drop_db().await.unwrap();
            }
        }

        #[tokio::test]
        async fn an_unknown_session_or_a_bad_role_is_refused() {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::connect(&arbiter_db::DbTarget::DataDir(dir.path().into()))
                .await
                .unwrap();
            let handles = Handles {
                pipeline: pipeline(db.clone(), authentic()).0,
                flows: FlowsConfig::default(),
                wake: tokio::sync::Notify::new(),
            };
            let err = handles.liveness("S-9", true).await.unwrap_err();
            assert_eq!(err.code(), arbiter_core::ErrorCode::NotFound);
            assert_eq!(err.to_string(), "no session S-9 for this tenant");
            let err = get(handles.engine(), "acme", "kyc", "S-9")
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), "no session S-9 for this tenant");

            let err = handles
                .add("S-9", "passport", 13, authentic())
                .await
                .unwrap_err();
            assert_eq!(err.code(), arbiter_core::ErrorCode::InvalidRequest);
            assert_eq!(
                err.to_string(),
                "role: \"passport\" is not one of id_document, selfie"
            );
            let err = handles.liveness("bad id", true).await.unwrap_err();
            assert!(err.to_string().starts_with("session_id"), "{err}");

            let mut off = FlowsConfig::default();
            off.set("kyc", "enabled", json!(false)).unwrap();
            let engine = Engine {
                flows: &off,
                ..handles.engine()
            };
            let err = get(engine, "acme", "kyc", "S-9").await.unwrap_err();
            assert_eq!(err.to_string(), "flow kyc is not enabled");
        }
    }
}
