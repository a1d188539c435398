//! The way one image travels: intake → detector → flow facts → policy → one transaction
//! (decision row + audit entry) → actions.

use crate::announce::AnalysisDeliveries;
use crate::flows::FlowRegistry;
use crate::policies::LivePolicies;
pub use crate::record::{CaseContext, Decided, Record};
use crate::sinks::SinkSet;
use arbiter_audit::entry::AnalysisFields;
use arbiter_audit::{Alongside, AuditError, Event, Head, StoredEntry};
use arbiter_core::{
    ActionRequest, Analysis, AnalyzeOptions, Decision, DetectError, Detector, ErrorCode, Facts,
    FlowError, MediaInput, RequestId, ReviewId,
};
use arbiter_db::entity::{review_item, webhook_endpoint};
use arbiter_db::group::{GroupCommit, GroupWrite};
use arbiter_db::sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr};
use arbiter_db::{Db, Script, decisions, requests, review, webhooks};
use arbiter_detect::{IntakeError, IntakeLimits};
use arbiter_providers::Detectors;
use arbiter_webhooks::Deliveries;
use chrono::Utc;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Why an image did not get a decision.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The image was refused at intake.
    #[error(transparent)]
    Intake(#[from] IntakeError),
    /// The detector refused or failed.
    #[error(transparent)]
    Detect(#[from] DetectError),
    /// The domain input is invalid.
    #[error("invalid {flow} input: {source}")]
    Flow {
        /// The flow.
        flow: String,
        /// The field and problem.
        source: FlowError,
    },
    /// No such flow in this build.
    #[error("unknown flow `{0}`")]
    UnknownFlow(String),
    /// The flow has no live policy.
    #[error("no live policy for flow `{0}`")]
    NoPolicy(String),
    /// Storing the decision failed.
    #[error("cannot store the decision: {0}")]
    Store(#[from] arbiter_db::sea_orm::DbErr),
    /// Appending the audit entry failed.
    #[error("cannot append the audit entry: {0}")]
    Audit(#[from] AuditError),
}

impl PipelineError {
    /// The API error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            PipelineError::Intake(err) => err.code(),
            PipelineError::Detect(err) => err.code(),
            PipelineError::Flow { .. } | PipelineError::UnknownFlow(_) => ErrorCode::InvalidRequest,
            PipelineError::NoPolicy(_) | PipelineError::Store(_) | PipelineError::Audit(_) => {
                ErrorCode::InternalError
            }
        }
    }
}

/// One image to decide about.
#[derive(Debug, Clone)]
pub struct DecideRequest<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The flow (`insurance`, `ugc`, `kyc`).
    pub flow: &'a str,
    /// The flow's domain input (`{"claim": {...}}`).
    pub input: &'a Value,
    /// The caller's reference for the image.
    pub reference_id: Option<&'a str>,
    /// Detector options.
    pub options: &'a AnalyzeOptions,
}

/// What the pipeline decided about one image, after it was committed.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The request's id.
    pub request_id: RequestId,
    /// The caller's reference.
    pub reference_id: Option<String>,
    /// The analysis.
    pub analysis: Analysis,
    /// The facts the policy saw.
    pub facts: Facts,
    /// The decision.
    pub decision: Decision,
    /// The audit entry recording it.
    pub audit: StoredEntry,
}

/// The services one image passes through. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    db: Db,
    detectors: Detectors,
    flows: FlowRegistry,
    policies: LivePolicies,
    sinks: SinkSet,
    limits: IntakeLimits,
    recorder: GroupCommit<Recorder>,
    /// The audit heads last written in this process (see [`Recorder`]).
    heads: ByTenant<Head>,
}

impl Pipeline {
    /// A pipeline over these services. Starts its recorder on the current Tokio runtime.
    pub fn new(
        db: Db,
        detectors: Detectors,
        flows: FlowRegistry,
        policies: LivePolicies,
        sinks: SinkSet,
        limits: IntakeLimits,
    ) -> Self {
        let heads = ByTenant::default();
        let recorder = Recorder {
            db: db.clone(),
            heads: heads.clone(),
            endpoints: ByTenant::default(),
        };
        Self {
            recorder: GroupCommit::start(db.clone(), recorder, RECORD_GROUP),
            heads,
            db,
            detectors,
            flows,
            policies,
            sinks,
            limits,
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The live policies.
    pub fn policies(&self) -> &LivePolicies {
        &self.policies
    }

    /// The flows.
    pub fn flows(&self) -> &FlowRegistry {
        &self.flows
    }

    /// Reads a file through intake and decides about it.
    pub async fn decide_file(
        &self,
        path: &Path,
        request: &DecideRequest<'_>,
    ) -> Result<Outcome, PipelineError> {
        let media = arbiter_detect::intake_file(path, &self.limits).await?;
        self.decide(media, request).await
    }

    /// Analyses an image that passed intake, decides under the flow's policy, and records both.
    pub async fn decide(
        &self,
        media: MediaInput,
        request: &DecideRequest<'_>,
    ) -> Result<Outcome, PipelineError> {
        let request_id = RequestId::new();
        // Check the domain input before spending detector time on it.
        self.check_input(request.flow, request.input)?;
        let detector = self.detector_for(Some(request.flow), Some(request.input));
        let analysis = self.analyze(detector, &media, request.options).await?;
        let decided = self.apply_policy(request.flow, request.input, &analysis)?;
        let record = Record {
            tenant: request.tenant,
            request_id: &request_id,
            reference_id: request.reference_id,
            analysis: &analysis,
            decided: Some(&decided),
            request_row: None,
            case: None,
        };
        let audit = self.record(&record).await?;
        Ok(Outcome {
            request_id,
            reference_id: request.reference_id.map(str::to_owned),
            analysis,
            facts: decided.facts,
            decision: decided.decision,
            audit,
        })
    }

    /// Validates a flow's domain input, naming the bad field.
    pub fn check_input(&self, flow: &str, input: &Value) -> Result<(), PipelineError> {
        let flow_impl = self
            .flows
            .get(flow)
            .ok_or_else(|| PipelineError::UnknownFlow(flow.to_owned()))?;
        flow_impl
            .schema()
            .validate(input)
            .map_err(|source| PipelineError::Flow {
                flow: flow.to_owned(),
                source,
            })
    }

    /// Runs a detector (a route's, see [`Pipeline::detector_for`]).
    pub async fn analyze(
        &self,
        detector: &Arc<dyn Detector>,
        media: &MediaInput,
        options: &AnalyzeOptions,
    ) -> Result<Analysis, PipelineError> {
        Ok(detector.analyze(media, options).await?)
    }

    /// The detector `detector.routes` gives an image of `flow` with this domain input (by the
    /// flow and the image's role in it), else the default route's.
    pub fn detector_for(&self, flow: Option<&str>, input: Option<&Value>) -> &Arc<dyn Detector> {
        let role = match (flow.and_then(|f| self.flows.get(f)), input) {
            (Some(flow), Some(input)) => flow.image_role(input),
            _ => None,
        };
        self.detectors.for_image(flow, role.as_deref())
    }

    /// The detectors, their routes and the vendors' states.
    pub fn detectors(&self) -> &Detectors {
        &self.detectors
    }

    /// The intake limits.
    pub fn limits(&self) -> &IntakeLimits {
        &self.limits
    }

    /// The flow's facts and its live policy's decision about an analysis.
    pub fn apply_policy(
        &self,
        flow: &str,
        input: &Value,
        analysis: &Analysis,
    ) -> Result<Decided, PipelineError> {
        let flow_impl = self
            .flows
            .get(flow)
            .ok_or_else(|| PipelineError::UnknownFlow(flow.to_owned()))?;
        let policy = self
            .policies
            .snapshot()
            .for_flow(flow)
            .cloned()
            .ok_or_else(|| PipelineError::NoPolicy(flow.to_owned()))?;
        let facts = flow_impl
            .facts(analysis, input)
            .map_err(|source| PipelineError::Flow {
                flow: flow.to_owned(),
                source,
            })?;
        let decision = policy.decide(&facts);
        let review_queue = policy
            .action(&decision.action)
            .and_then(|action| action.metadata().get("review_queue"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Decided {
            flow: flow.to_owned(),
            event: flow_impl.event_for(&decision.action),
            review_queue,
            facts,
            decision,
        })
    }

    /// Commits the request row (if any), the decision row (if any), the audit entry and the
    /// outbox rows of the tenant's webhook endpoints, all in one transaction, then hands the
    /// decision's action to the sinks. Records of concurrent requests share the transaction
    /// (see [`GroupCommit`]).
    #[tracing::instrument(skip_all, fields(request_id = %record.request_id, tenant = record.tenant))]
    pub async fn record(&self, record: &Record<'_>) -> Result<StoredEntry, PipelineError> {
        let audit = self.recorder.submit(OwnedRecord::new(record)).await?;
        tracing::info!(verdict = %record.analysis.verdict.label, seq = audit.entry.seq, "recorded");
        self.act(record).await;
        Ok(audit)
    }

    /// Writes the request row (if any), the decision row (if any) with its review-queue item
    /// (when its action names a queue), and the audit entry inside the caller's transaction.
    pub async fn write(
        &self,
        txn: &impl ConnectionTrait,
        record: &Record<'_>,
    ) -> Result<StoredEntry, PipelineError> {
        let mut entries = write_many(txn, std::slice::from_ref(record)).await?;
        entries
            .pop()
            .ok_or_else(|| PipelineError::Store(DbErr::Custom("no audit entry written".to_owned())))
    }

    /// Tells the recorder where the chains of committed entries now end, so that its next
    /// records of those tenants are written in one round trip (see [`Recorder`]).
    pub fn heads_moved(&self, entries: &[StoredEntry]) {
        self.heads.moved(entries);
    }

    /// Hands a committed decision's action to the sinks.
    pub async fn act(&self, record: &Record<'_>) {
        if let Some(decided) = record.decided {
            let action = ActionRequest {
                tenant: record.tenant.to_owned(),
                request_id: record.request_id.clone(),
                reference_id: record.reference_id.map(str::to_owned),
                flow: decided.flow.clone(),
                action: decided.decision.action.clone(),
                reason: decided.decision.reason.clone(),
                payload: json!({
                    "event": decided.event,
                    "request_id": record.request_id,
                    "reference_id": record.reference_id,
                    "image_sha256": record.analysis.image_info.sha256,
                    "verdict": record.analysis.verdict,
                    "decision": decided.decision_summary(),
                }),
            };
            self.sinks.send(&action).await;
        }
    }
}

/// [`Pipeline::write`] for many records at once: each kind of row in one statement, each
/// tenant's audit entries in one run. Returns the audit entries in the records' order.
pub async fn write_many(
    txn: &impl ConnectionTrait,
    records: &[Record<'_>],
) -> Result<Vec<StoredEntry>, PipelineError> {
    let rows = Rows::of(records);
    // The request rows are written with the first tenant's audit entries: on SQLite in the same
    // round trip. A run too long for one statement is written on its own.
    let mut alongside = match rows.requests.len() {
        0 => None,
        count if count <= ROWS_ALONGSIDE => Some(Alongside {
            rows: count as u64,
            statement: requests::insert_statement(txn.get_database_backend(), rows.requests),
        }),
        _ => {
            requests::insert(txn, rows.requests).await?;
            None
        }
    };
    decisions::insert(txn, &rows.decisions).await?;
    review::insert(txn, rows.items).await?;
    let mut entries: Vec<Option<StoredEntry>> = vec![None; records.len()];
    for (tenant, indexes) in by_tenant(records) {
        let events: Vec<_> = indexes.iter().map(|&i| event(&records[i])).collect();
        // One time for the run: the first record's.
        let now = record_time(&records[indexes[0]]);
        let stored =
            arbiter_audit::append_many_alongside(txn, tenant, now, events, alongside.take())
                .await?;
        for (index, entry) in indexes.into_iter().zip(stored) {
            entries[index] = Some(entry);
        }
    }
    Ok(entries.into_iter().flatten().collect())
}

/// The rows of records, apart from their audit entries.
struct Rows<'a> {
    requests: Vec<arbiter_db::entity::request::Model>,
    decisions: Vec<decisions::NewDecision<'a>>,
    items: Vec<review_item::Model>,
}

impl<'a> Rows<'a> {
    fn of(records: &'a [Record<'a>]) -> Self {
        let requests = records
            .iter()
            .filter_map(|r| r.request_row.clone())
            .collect();
        let decided: Vec<_> = records
            .iter()
            .filter_map(|record| record.decided.map(|decided| (record, decided)))
            .collect();
        let decisions = decided
            .iter()
            .map(|(record, decided)| decisions::NewDecision {
                tenant: record.tenant,
                request_id: record.request_id,
                reference_id: record.reference_id,
                flow: &decided.flow,
                analysis: record.analysis,
                facts: &decided.facts,
                decision: &decided.decision,
                created_at: record_time(record),
            })
            .collect();
        let items = decided
            .iter()
            .filter_map(|(record, decided)| {
                let queue = decided.review_queue.as_deref()?;
                Some(review_item(record, decided, queue, record_time(record)))
            })
            .collect();
        Self {
            requests,
            decisions,
            items,
        }
    }
}

/// The records' indexes by tenant, in the records' order: each tenant's events go in one run.
fn by_tenant<'a>(records: &[Record<'a>]) -> BTreeMap<&'a str, Vec<usize>> {
    let mut by_tenant: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, record) in records.iter().enumerate() {
        by_tenant.entry(record.tenant).or_default().push(index);
    }
    by_tenant
}

/// Request rows written in the statement of the audit entries at most (nine values each).
const ROWS_ALONGSIDE: usize = 100;

/// The audit event of a record: its decision, or its analysis when no flow decided.
fn event(record: &Record<'_>) -> Event {
    match record.decided {
        Some(decided) => Event::decision(
            record.request_id,
            record.reference_id,
            &decided.flow,
            record.analysis,
            &decided.decision,
        ),
        None => Event::AnalysisRecorded {
            analysis: AnalysisFields::new(record.request_id, record.reference_id, record.analysis),
        },
    }
}

/// The review-queue item a decision asks for.
fn review_item(
    record: &Record<'_>,
    decided: &Decided,
    queue: &str,
    now: chrono::DateTime<Utc>,
) -> review_item::Model {
    review_item::Model {
        item_id: ReviewId::new().to_string(),
        tenant: record.tenant.to_owned(),
        queue: queue.to_owned(),
        flow: decided.flow.clone(),
        case_id: record.case.map(|case| case.case_id.clone()),
        request_id: record.request_id.to_string(),
        reference_id: record.reference_id.map(str::to_owned),
        image_sha256: record.analysis.image_info.sha256.clone(),
        action: decided.decision.action.clone(),
        reason: decided.decision.reason.clone(),
        status: review::OPEN.to_owned(),
        claimed_by: None,
        claimed_key: None,
        claimed_at: None,
        label: None,
        note: None,
        resolved_action: None,
        resolved_by: None,
        resolved_at: None,
        created_at: now,
    }
}

/// When a record is committed: its request row's time, else now.
fn record_time(record: &Record<'_>) -> chrono::DateTime<Utc> {
    record
        .request_row
        .as_ref()
        .map_or_else(Utc::now, |row| row.created_at)
}

/// A [`Record`] the recorder owns while it waits for its group.
#[derive(Debug)]
struct OwnedRecord {
    tenant: String,
    request_id: RequestId,
    reference_id: Option<String>,
    analysis: Analysis,
    decided: Option<Decided>,
    request_row: Option<arbiter_db::entity::request::Model>,
    case: Option<CaseContext>,
}

impl OwnedRecord {
    fn new(record: &Record<'_>) -> Self {
        Self {
            tenant: record.tenant.to_owned(),
            request_id: record.request_id.clone(),
            reference_id: record.reference_id.map(str::to_owned),
            analysis: record.analysis.clone(),
            decided: record.decided.cloned(),
            request_row: record.request_row.clone(),
            case: record.case.cloned(),
        }
    }

    fn as_record(&self) -> Record<'_> {
        Record {
            tenant: &self.tenant,
            request_id: &self.request_id,
            reference_id: self.reference_id.as_deref(),
            analysis: &self.analysis,
            decided: self.decided.as_ref(),
            request_row: self.request_row.clone(),
            case: self.case.as_ref(),
        }
    }
}

/// Records of concurrent requests written in one transaction: their rows and audit entries
/// ([`write_many`]) and their webhook deliveries.
///
/// On SQLite a group whose tenants' audit heads it knows (from this process's last writes: its
/// own and batch jobs') is written in one round trip ([`Db::write_at_once`]), with its
/// deliveries to the tenants' endpoints as last read. Another writer (another process, a
/// review, a key) moves a head or changes an endpoint without telling: the script then fails,
/// and the group is written the long way, which reads both.
struct Recorder {
    /// Where the tenants' webhook endpoints are read, beside the transaction.
    db: Db,
    /// The audit heads last written in this process.
    heads: ByTenant<Head>,
    /// The tenants' endpoints as last read, and their stamp then.
    endpoints: ByTenant<(Vec<webhook_endpoint::Model>, String)>,
}

/// Records the recorder writes to one transaction at most.
const RECORD_GROUP: usize = 64;

/// What this process last knew of each tenant. Cheap to clone: clones share it.
#[derive(Debug)]
struct ByTenant<V>(Arc<Mutex<HashMap<String, V>>>);

impl<V> Clone for ByTenant<V> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<V> Default for ByTenant<V> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<V: Clone> ByTenant<V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, V>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, tenant: &str) -> Option<V> {
        self.lock().get(tenant).cloned()
    }

    fn set(&self, tenant: &str, value: V) {
        self.lock().insert(tenant.to_owned(), value);
    }

    fn forget(&self, tenant: &str) {
        self.lock().remove(tenant);
    }
}

impl ByTenant<Head> {
    /// Remembers the heads after committed `entries`.
    fn moved(&self, entries: &[StoredEntry]) {
        for stored in entries {
            self.set(&stored.entry.tenant, stored.head_after());
        }
    }
}

impl Recorder {
    /// The tenant's endpoints and their stamp: as last read, or read now.
    async fn endpoints(
        &self,
        tenant: &str,
    ) -> Result<(Vec<webhook_endpoint::Model>, String), DbErr> {
        if let Some(known) = self.endpoints.get(tenant) {
            return Ok(known);
        }
        let read = webhooks::endpoints_stamped(self.db.conn(), tenant).await?;
        self.endpoints.set(tenant, read.clone());
        Ok(read)
    }

    /// The group in one script: its rows, deliveries and each tenant's entries after `heads`.
    async fn write_script(
        &self,
        records: &[Record<'_>],
        heads: &BTreeMap<&str, Head>,
    ) -> Result<Vec<StoredEntry>, PipelineError> {
        let backend = DbBackend::Sqlite;
        let mut script = Script::default();
        let rows = Rows::of(records);
        for statement in requests::insert_statements(backend, rows.requests)
            .into_iter()
            .chain(decisions::insert_statements(backend, &rows.decisions)?)
            .chain(review::insert_statements(backend, rows.items))
        {
            script.push(statement);
        }
        let mut deliveries = Deliveries::default();
        for tenant in heads.keys() {
            let (endpoints, stamp) = self.endpoints(tenant).await?;
            deliveries.set_endpoints(tenant, endpoints);
            let condition = format!("{} = ?", webhooks::ENDPOINTS_STAMP);
            script.require(&condition, [(*tenant).into(), stamp.into()]);
        }
        for record in records {
            deliveries
                .add_analysis(self.db.conn(), record, None, None, record_time(record))
                .await?;
        }
        for statement in deliveries.statements(backend) {
            script.push(statement);
        }
        let mut entries: Vec<Option<StoredEntry>> = vec![None; records.len()];
        for (tenant, indexes) in by_tenant(records) {
            let head = heads.get(tenant).ok_or_else(|| {
                PipelineError::Store(DbErr::Custom(format!("no audit head for {tenant}")))
            })?;
            let events: Vec<_> = indexes.iter().map(|&i| event(&records[i])).collect();
            let now = record_time(&records[indexes[0]]);
            let (stored, _) =
                arbiter_audit::append_to_script(&mut script, tenant, now, events, head)?;
            for (index, entry) in indexes.into_iter().zip(stored) {
                entries[index] = Some(entry);
            }
        }
        self.db.write_at_once(script).await?;
        Ok(entries.into_iter().flatten().collect())
    }
}

impl GroupWrite for Recorder {
    type Item = OwnedRecord;
    type Output = StoredEntry;
    type Error = PipelineError;

    async fn write(
        &self,
        txn: &DatabaseTransaction,
        items: &[OwnedRecord],
    ) -> Result<Vec<StoredEntry>, PipelineError> {
        let records: Vec<_> = items.iter().map(OwnedRecord::as_record).collect();
        // The tenants' endpoints are read on another connection while the rows are written: the
        // read does not wait for the writes, nor they for it.
        let mut deliveries = Deliveries::default();
        let tenants: BTreeSet<&str> = records.iter().map(|record| record.tenant).collect();
        let read = async {
            for tenant in tenants {
                deliveries.load_endpoints(self.db.conn(), tenant).await?;
            }
            Ok::<_, DbErr>(())
        };
        let (read, entries) = tokio::join!(read, write_many(txn, &records));
        read?;
        let entries = entries?;
        for record in &records {
            deliveries
                .add_analysis(txn, record, None, None, record_time(record))
                .await?;
        }
        deliveries.write(txn).await?;
        // Were the commit to fail, the next script would find these heads wrong and fail too.
        self.heads.moved(&entries);
        Ok(entries)
    }

    async fn write_at_once(
        &self,
        db: &Db,
        items: &[OwnedRecord],
    ) -> Option<Result<Vec<StoredEntry>, PipelineError>> {
        if db.backend() != DbBackend::Sqlite {
            return None;
        }
        let records: Vec<_> = items.iter().map(OwnedRecord::as_record).collect();
        let heads: BTreeMap<&str, Head> = records
            .iter()
            .map(|record| Some((record.tenant, self.heads.get(record.tenant)?)))
            .collect::<Option<_>>()?;
        let written = self.write_script(&records, &heads).await;
        match &written {
            Ok(entries) => self.heads.moved(entries),
            Err(err) => {
                tracing::debug!(error = %err, "a group written at once failed; writing it again");
                for tenant in heads.keys() {
                    self.heads.forget(tenant);
                    self.endpoints.forget(tenant);
                }
            }
        }
        Some(written)
    }
}

#[cfg(test)]
#[cfg(feature = "flow-kyc")]
mod tests {
    use super::*;
    use crate::test_support::{image, pipeline};
    use arbiter_core::{Verdict, VerdictLabel};
    use arbiter_db::testing;

    fn selfie(liveness: bool) -> Value {
        json!({"session": {"id": "s-1"}, "image_role": "selfie", "liveness": {"passed": liveness}})
    }

    fn request<'a>(input: &'a Value, options: &'a AnalyzeOptions) -> DecideRequest<'a> {
        DecideRequest {
            tenant: "acme",
            flow: "kyc",
            input,
            reference_id: Some("ref-1"),
            options,
        }
    }

    #[tokio::test]
    async fn a_decision_is_committed_with_its_audit_entry_review_item_and_action() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let synthetic = Verdict::new(VerdictLabel::AiGenerated, 0.97);
            let (pipeline, kept) = pipeline(db.clone(), synthetic);
            let (input, options) = (selfie(true), AnalyzeOptions::default());
            let outcome = pipeline
                .decide(image(1), &request(&input, &options))
                .await
                .unwrap();
            assert_eq!(outcome.decision.action, "reject", "{label}");
            assert_eq!(outcome.decision.reason, "SYNTHETIC_SELFIE", "{label}");
            assert_eq!(outcome.reference_id.as_deref(), Some("ref-1"));
            assert_eq!(outcome.facts.get("image_role"), Some(&json!("selfie")));

            let row = decisions::get(db.conn(), "acme", outcome.request_id.as_str())
                .await
                .unwrap()
                .expect("the decision row");
            assert_eq!(
                (row.action.as_str(), row.reason.as_str(), row.flow.as_str()),
                ("reject", "SYNTHETIC_SELFIE", "kyc"),
                "{label}"
            );
            assert_eq!(row.policy_id, "kyc.verification", "{label}");
            assert!(
                decisions::get(db.conn(), "other", outcome.request_id.as_str())
                    .await
                    .unwrap()
                    .is_none(),
                "{label}: another tenant does not see it"
            );

            let filter = arbiter_audit::EntryFilter {
                tenant: Some("acme".to_owned()),
                ..Default::default()
            };
            let entries = arbiter_audit::entries(db.conn(), &filter).await.unwrap();
            assert_eq!(entries.len(), 1, "{label}");
            assert_eq!(entries[0].entry.seq, outcome.audit.entry.seq, "{label}");
            assert_eq!(
                entries[0].entry.event.request_id(),
                Some(outcome.request_id.as_str()),
                "{label}"
            );

            // `reject` names the kyc_review queue: one open item.
            let items = review::list(db.conn(), "acme", &Default::default(), 10)
                .await
                .unwrap();
            assert_eq!(items.len(), 1, "{label}");
            assert_eq!(
                (items[0].queue.as_str(), items[0].status.as_str()),
                ("kyc_review", review::OPEN),
                "{label}"
            );
            assert_eq!(items[0].request_id, outcome.request_id.as_str(), "{label}");

            let actions = kept.0.lock().unwrap().clone();
            assert_eq!(actions.len(), 1, "{label}");
            assert_eq!(
                (actions[0].action.as_str(), actions[0].flow.as_str()),
                ("reject", "kyc"),
                "{label}"
            );
            assert_eq!(actions[0].payload["reference_id"], "ref-1", "{label}");
            db.close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }

    #[tokio::test]
    async fn an_action_without_a_queue_opens_no_review_item() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&arbiter_db::DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        let (pipeline, kept) = pipeline(db.clone(), Verdict::new(VerdictLabel::Authentic, 0.9));
        let options = AnalyzeOptions::default();
        // Liveness did not pass: step-up, which names no queue.
        let input = selfie(false);
        let outcome = pipeline
            .decide(image(2), &request(&input, &options))
            .await
            .unwrap();
        assert_eq!(
            (
                outcome.decision.action.as_str(),
                outcome.decision.reason.as_str()
            ),
            ("step_up_verification", "LIVENESS_NOT_PASSED")
        );
        let items = review::list(db.conn(), "acme", &Default::default(), 10)
            .await
            .unwrap();
        assert!(items.is_empty());
        assert_eq!(kept.0.lock().unwrap().len(), 1);
        // A passed liveness check with an authentic selfie approves.
        let input = selfie(true);
        let outcome = pipeline
            .decide(image(3), &request(&input, &options))
            .await
            .unwrap();
        assert_eq!(outcome.decision.action, "approve");
    }

    #[tokio::test]
    async fn bad_input_is_refused_before_the_detector_runs_and_nothing_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&arbiter_db::DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        let (pipeline, kept) = pipeline(db.clone(), Verdict::new(VerdictLabel::Authentic, 0.9));
        let options = AnalyzeOptions::default();
        let input = json!({"image_role": "selfie", "liveness": {"passed": "yes"}});
        let err = pipeline
            .decide(image(4), &request(&input, &options))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PipelineError::Flow { flow, .. } if flow == "kyc"),
            "{err}"
        );
        assert!(err.to_string().starts_with("invalid kyc input: "), "{err}");
        assert_eq!(err.code(), ErrorCode::InvalidRequest);

        let unknown = DecideRequest {
            flow: "payroll",
            ..request(&input, &options)
        };
        let err = pipeline.decide(image(4), &unknown).await.unwrap_err();
        assert!(matches!(&err, PipelineError::UnknownFlow(flow) if flow == "payroll"));
        assert_eq!(err.to_string(), "unknown flow `payroll`");
        assert_eq!(err.code(), ErrorCode::InvalidRequest);

        let filter = arbiter_audit::EntryFilter::default();
        assert!(
            arbiter_audit::entries(db.conn(), &filter)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(kept.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_flow_without_a_live_policy_gets_no_decision() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&arbiter_db::DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        let pipeline = Pipeline::new(
            db,
            Detectors::single(Arc::new(crate::test_support::Scripted(Verdict::new(
                VerdictLabel::Authentic,
                0.9,
            )))),
            FlowRegistry::builtin().unwrap(),
            LivePolicies::fixed(crate::PolicyStore::default()),
            SinkSet::default(),
            arbiter_detect::IntakeLimits::default(),
        );
        let analysis = pipeline
            .analyze(
                pipeline.detector_for(Some("kyc"), None),
                &image(5),
                &AnalyzeOptions::default(),
            )
            .await
            .unwrap();
        let err = pipeline
            .apply_policy("kyc", &selfie(true), &analysis)
            .unwrap_err();
        assert!(matches!(&err, PipelineError::NoPolicy(flow) if flow == "kyc"));
        assert_eq!(err.code(), ErrorCode::InternalError);
    }

    #[tokio::test]
    async fn records_of_two_tenants_go_to_two_chains_in_the_records_order() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let (pipeline, _) = pipeline(db.clone(), Verdict::new(VerdictLabel::Authentic, 0.9));
            let options = AnalyzeOptions::default();
            let analysis = pipeline
                .analyze(pipeline.detector_for(None, None), &image(6), &options)
                .await
                .unwrap();
            let ids: Vec<RequestId> = (0..3).map(|_| RequestId::new()).collect();
            let tenants = ["a", "b", "a"];
            let records: Vec<Record<'_>> = ids
                .iter()
                .zip(tenants)
                .map(|(id, tenant)| Record {
                    tenant,
                    request_id: id,
                    reference_id: None,
                    analysis: &analysis,
                    decided: None,
                    request_row: None,
                    case: None,
                })
                .collect();
            let txn = db.begin_write().await.unwrap();
            let entries = write_many(&txn, &records).await.unwrap();
            txn.commit().await.unwrap();
            let seen: Vec<_> = entries
                .iter()
                .map(|stored| (stored.entry.tenant.as_str(), stored.entry.seq))
                .collect();
            assert_eq!(seen, [("a", 0), ("b", 0), ("a", 1)], "{label}");
            for (stored, id) in entries.iter().zip(&ids) {
                assert_eq!(
                    stored.entry.event.request_id(),
                    Some(id.as_str()),
                    "{label}"
                );
                assert_eq!(stored.entry.event.name(), "analysis.recorded", "{label}");
            }
            db.close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
