//! Four-eyes policy change control. A policy version is proposed (a file and its author),
//! checked (validation, embedded tests, the diff against the live version of its flow, and a
//! backtest over recent stored decisions), and goes live only when a different person approves
//! it. An approval moves the flow's live version with a compare-and-swap in the same
//! transaction as its audit entries, so a proposal made against a version that has since
//! changed cannot overwrite the newer one. Servers with `policies.source: database` pick the
//! approved version up ([`sync_from_database`]).
//!
//! The functions take the database, the flows and the time; they know nothing of HTTP or the
//! command line.

use crate::flows::FlowRegistry;
use crate::policies::{LivePolicies, PolicyLoadError, PolicyStore, SYSTEM_TENANT};
use arbiter_audit::{AuditError, Event};
use arbiter_core::{PolicyRef, ProposalId};
use arbiter_db::Db;
use arbiter_db::policy_changes::{self as rows, ActivationRow, ProposalRow};
use arbiter_db::sea_orm::DbErr;
use arbiter_policy::{BacktestWindow, Policy, StoredDecision};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a proposal, approval, rejection or rollback was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The policy is not valid for its flow, or its embedded tests fail.
    #[error(transparent)]
    Invalid(#[from] PolicyLoadError),
    /// A person's name is not one an audit entry may hold.
    #[error(
        "{0:?} is not an operator name: use at most {MAX_USER_LEN} letters, digits, '.', '_' and \
         '-' (audit entries hold no personal data such as e-mail addresses)"
    )]
    BadUser(String),
    /// The proposed text is the live version already.
    #[error("{origin}: this text is already the live version of flow `{flow}` (sha256 {sha256})")]
    Unchanged {
        /// The file.
        origin: String,
        /// The flow.
        flow: String,
        /// Its SHA-256.
        sha256: String,
    },
    /// No proposal has this id.
    #[error("there is no policy proposal {0}")]
    NotFound(String),
    /// The proposal was approved or rejected already.
    #[error(
        "proposal {id} is {status} already; only a pending proposal can be approved or rejected"
    )]
    NotPending {
        /// The proposal.
        id: String,
        /// Its status.
        status: String,
    },
    /// The four-eyes rule: the proposer cannot approve their own change.
    #[error(
        "four-eyes rule: {user} proposed {id} and cannot approve it; a policy change goes live \
         only when a second person approves it"
    )]
    SelfApproval {
        /// The proposal.
        id: String,
        /// The proposer.
        user: String,
    },
    /// The live version changed since the proposal was made.
    #[error(
        "proposal {id} is stale: the live version of flow `{flow}` changed since it was proposed \
         (then {then}, now {now}); it cannot overwrite the newer version: propose the change \
         again against the live version"
    )]
    Stale {
        /// The proposal.
        id: String,
        /// The flow.
        flow: String,
        /// The live version's SHA-256 when it was proposed.
        then: String,
        /// The live version's SHA-256 now.
        now: String,
    },
    /// A rollback names a version the flow never had live.
    #[error("flow `{flow}` never had version {version} live (see `arbiter policy history {flow}`)")]
    NoSuchVersion {
        /// The flow.
        flow: String,
        /// The version.
        version: u32,
    },
    /// Approved versions recorded in the database cannot be activated by this build.
    #[error("{0}")]
    NotActivated(String),
    /// A rejection needs a reason.
    #[error("a rejection needs a reason (--reason)")]
    EmptyReason,
    /// A kept policy text is missing.
    #[error("the text of policy version {0} is not in policy_versions")]
    MissingText(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// The audit log failed.
    #[error("audit log error: {0}")]
    Audit(#[from] AuditError),
}

/// The longest person's name an entry may hold.
pub const MAX_USER_LEN: usize = 128;

/// Whether `user` may be recorded as a proposer or approver: a short operator name or id,
/// never an e-mail address.
pub fn check_user(user: &str) -> Result<(), ChangeError> {
    let ok = !user.is_empty()
        && user.len() <= MAX_USER_LEN
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ChangeError::BadUser(user.to_owned()))
    }
}

/// The four-eyes rule: `approver` may approve a proposal only if they did not propose it.
pub fn check_approver(
    proposal: &str,
    proposed_by: &str,
    approver: &str,
) -> Result<(), ChangeError> {
    if proposed_by == approver {
        return Err(ChangeError::SelfApproval {
            id: proposal.to_owned(),
            user: approver.to_owned(),
        });
    }
    Ok(())
}

/// A new version must raise the live version's number (as a watched file must), except a
/// rollback, which restores an older text on purpose.
pub fn check_newer(live: Option<&Policy>, new: &Policy, rollback: bool) -> Result<(), ChangeError> {
    let Some(live) = live else {
        return Ok(());
    };
    if live.sha256() == new.sha256() {
        return Err(ChangeError::Unchanged {
            origin: new.origin().to_owned(),
            flow: new.flow().to_owned(),
            sha256: new.sha256().to_owned(),
        });
    }
    if !rollback && live.id() == new.id() && new.version() <= live.version() {
        return Err(PolicyLoadError::VersionNotIncreased {
            origin: new.origin().to_owned(),
            id: new.id().to_owned(),
            version: new.version(),
            live: live.version(),
        }
        .into());
    }
    Ok(())
}

/// The embedded tests of a proposed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestSummary {
    /// Passed (all of them: a version whose tests fail is not proposed).
    pub passed: usize,
    /// Failed.
    pub failed: usize,
}

/// How many replayed decisions go from one action to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionChange {
    /// The stored action.
    pub from: String,
    /// The action on replay.
    pub to: String,
    /// How many decisions.
    pub count: usize,
}

/// The backtest shown with a proposal: the stored decisions of its flow over the last
/// `policies.backtest_days`, replayed through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacktestSummary {
    /// First instant replayed, inclusive.
    pub since: DateTime<Utc>,
    /// Last instant, exclusive.
    pub until: DateTime<Utc>,
    /// Decisions of the flow replayed.
    pub replayed: usize,
    /// Decisions whose stored facts could not be read.
    pub unreadable: usize,
    /// Decisions whose action changes.
    pub changed: usize,
    /// Decisions whose action stays but whose reason changes.
    pub reason_only: usize,
    /// Stored action to replayed action, for every pair seen.
    pub actions: Vec<ActionChange>,
    /// The full report, as `arbiter policy backtest` prints it.
    pub report: String,
}

/// What was checked when a version was proposed, shown to the approver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checks {
    /// Lint warnings (the policy is valid).
    pub warnings: Vec<String>,
    /// The embedded tests.
    pub tests: TestSummary,
    /// The version it was compared with: the live version of its flow, when it has one.
    pub live: Option<PolicyRef>,
    /// Rules added, removed and changed against `live` (`PolicyDiff`).
    pub diff: Option<serde_json::Value>,
    /// The same diff for a human.
    pub diff_text: Option<String>,
    /// The backtest.
    pub backtest: BacktestSummary,
}

/// A proposal, as `arbiter policy show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Proposal {
    /// `prop_...`.
    pub proposal_id: String,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    /// The flow the policy decides.
    pub flow: String,
    /// The proposed version.
    pub policy: PolicyRef,
    /// The live version's SHA-256 when it was proposed; an approval is refused once it changed.
    pub base_sha256: Option<String>,
    /// For a rollback, the version it restores.
    pub rollback_to: Option<u32>,
    /// Who proposed it.
    pub proposed_by: String,
    /// When.
    pub proposed_at: DateTime<Utc>,
    /// Who approved or rejected it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// What was checked when it was proposed.
    pub checks: Checks,
}

fn version_i32(version: u32) -> i32 {
    i32::try_from(version).unwrap_or(i32::MAX)
}

fn version_u32(version: i32) -> u32 {
    u32::try_from(version).unwrap_or_default()
}

impl Proposal {
    fn from_row(row: ProposalRow) -> Result<Self, ChangeError> {
        let checks = serde_json::from_str(&row.checks).map_err(|err| {
            DbErr::Custom(format!("proposal {}: unreadable checks: {err}", row.id))
        })?;
        Ok(Self {
            proposal_id: row.id,
            status: row.status,
            flow: row.flow,
            policy: PolicyRef {
                id: row.policy_id,
                version: version_u32(row.version),
                sha256: row.sha256,
            },
            base_sha256: row.base_sha256,
            rollback_to: row.rollback_to.map(version_u32),
            proposed_by: row.proposed_by,
            proposed_at: row.proposed_at,
            decided_by: row.decided_by,
            decided_at: row.decided_at,
            reason: row.reason,
            checks,
        })
    }
}

/// The text kept under a SHA-256, compiled.
async fn kept_policy(db: &Db, sha256: &str) -> Result<Policy, ChangeError> {
    let kept = arbiter_db::policy_versions::get(db.conn(), sha256)
        .await?
        .ok_or_else(|| ChangeError::MissingText(sha256.to_owned()))?;
    let origin = format!("{} v{} ({sha256})", kept.policy_id, kept.version);
    Ok(Policy::from_yaml(&kept.source, &origin).map_err(PolicyLoadError::from)?)
}

/// The live version of a flow: the one recorded in the database, else the one `seed` holds
/// (the files a server would start from). The SHA-256 recorded, if any, comes with it.
pub async fn live_version(
    db: &Db,
    flow: &str,
    seed: &PolicyStore,
) -> Result<(Option<String>, Option<Arc<Policy>>), ChangeError> {
    match rows::head(db.conn(), flow).await? {
        Some(sha256) => {
            let policy = kept_policy(db, &sha256).await?;
            Ok((Some(sha256), Some(Arc::new(policy))))
        }
        None => Ok((None, seed.for_flow(flow).cloned())),
    }
}

/// Replays the stored decisions of `[since, until)` through `policy`.
pub async fn backtest(
    db: &Db,
    policy: &Policy,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    tenant: Option<&str>,
    samples: usize,
) -> Result<arbiter_policy::BacktestReport, DbErr> {
    let rows = arbiter_db::decisions::list_between(db.conn(), tenant, since, until).await?;
    let labels: BTreeMap<String, String> = arbiter_db::review::labels(db.conn(), tenant)
        .await?
        .into_iter()
        .collect();
    let decisions = rows.iter().map(|row| StoredDecision {
        request_id: &row.request_id,
        tenant: &row.tenant,
        flow: &row.flow,
        created_at: row.created_at,
        facts: &row.facts,
        fired: &row.fired,
        action: &row.action,
        reason: &row.reason,
        policy_id: &row.policy_id,
        policy_version: i64::from(row.policy_version),
        label_says_fake: labels
            .get(&row.request_id)
            .and_then(|label| crate::review::label_says_fake(label)),
    });
    let window = BacktestWindow {
        since,
        until,
        tenant: tenant.map(str::to_owned),
    };
    Ok(policy.backtest(window, decisions, samples))
}

/// What a proposal needs besides the policy.
#[derive(Debug, Clone, Copy)]
pub struct ProposeWith<'a> {
    /// This build's flows.
    pub flows: &'a FlowRegistry,
    /// The policies a server would start from when a flow has no version in the database.
    pub seed: &'a PolicyStore,
    /// Days of stored decisions to backtest over.
    pub backtest_days: u32,
    /// Now.
    pub now: DateTime<Utc>,
}

/// Proposes `policy` on behalf of `by`: checks it, diffs it against the live version of its
/// flow, backtests it, and stores the proposal with its `policy.proposed` audit entry.
pub async fn propose(
    db: &Db,
    with: ProposeWith<'_>,
    policy: Policy,
    by: &str,
) -> Result<Proposal, ChangeError> {
    propose_inner(db, with, policy, by, None).await
}

async fn propose_inner(
    db: &Db,
    with: ProposeWith<'_>,
    policy: Policy,
    by: &str,
    rollback_to: Option<u32>,
) -> Result<Proposal, ChangeError> {
    check_user(by)?;
    let checked = crate::policies::check(&policy, with.flows)?;
    let (base_sha256, live) = live_version(db, policy.flow(), with.seed).await?;
    check_newer(live.as_deref(), &policy, rollback_to.is_some())?;
    let diff = live.as_ref().map(|live| live.diff(&policy));
    let until = with.now;
    let since = until - Duration::days(i64::from(with.backtest_days));
    let report = backtest(db, &policy, since, until, None, 10).await?;
    let checks = Checks {
        warnings: checked.warnings.iter().map(ToString::to_string).collect(),
        tests: TestSummary {
            passed: checked.tests.passed(),
            failed: checked.tests.failed(),
        },
        live: live.as_ref().map(|live| live.policy_ref()),
        diff: diff
            .as_ref()
            .and_then(|diff| serde_json::to_value(diff).ok()),
        diff_text: diff.as_ref().map(ToString::to_string),
        backtest: BacktestSummary {
            since,
            until,
            replayed: report.replayed,
            unreadable: report.unreadable,
            changed: report.changed,
            reason_only: report.reason_only,
            actions: report
                .actions
                .iter()
                .map(|((from, to), count)| ActionChange {
                    from: from.clone(),
                    to: to.clone(),
                    count: *count,
                })
                .collect(),
            report: report.to_string(),
        },
    };
    let row = ProposalRow {
        id: ProposalId::new().to_string(),
        flow: policy.flow().to_owned(),
        policy_id: policy.id().to_owned(),
        version: version_i32(policy.version()),
        sha256: policy.sha256().to_owned(),
        source: policy.source().to_owned(),
        base_sha256,
        rollback_to: rollback_to.map(version_i32),
        proposed_by: by.to_owned(),
        proposed_at: with.now,
        status: "pending".to_owned(),
        decided_by: None,
        decided_at: None,
        reason: None,
        checks: serde_json::to_string(&checks)
            .map_err(|err| DbErr::Custom(format!("cannot store the checks: {err}")))?,
    };
    let event = Event::PolicyProposed {
        policy: policy.policy_ref(),
        proposal_id: row.id.clone(),
        proposed_by: by.to_owned(),
        previous_version: live.as_ref().map(|live| live.version()),
        rollback_to,
    };
    let txn = db.begin_write().await?;
    rows::insert_proposal(&txn, &row).await?;
    arbiter_audit::append(&txn, SYSTEM_TENANT, with.now, event).await?;
    txn.commit().await?;
    Proposal::from_row(row)
}

/// Proposes restoring the version `to` that flow `flow` had live before (the newest activation
/// of that version): a proposal like any other, which needs a second person's approval.
pub async fn rollback(
    db: &Db,
    with: ProposeWith<'_>,
    flow: &str,
    to: u32,
    by: &str,
) -> Result<Proposal, ChangeError> {
    check_user(by)?;
    let activations = rows::activations(db.conn(), flow).await?;
    let Some(activation) = activations
        .iter()
        .rev()
        .find(|a| a.version == version_i32(to))
    else {
        return Err(ChangeError::NoSuchVersion {
            flow: flow.to_owned(),
            version: to,
        });
    };
    let policy = kept_policy(db, &activation.sha256).await?;
    propose_inner(db, with, policy, by, Some(to)).await
}

/// A proposal by id.
pub async fn show(db: &Db, id: &str) -> Result<Proposal, ChangeError> {
    let row = rows::proposal_by_id(db.conn(), id)
        .await?
        .ok_or_else(|| ChangeError::NotFound(id.to_owned()))?;
    Proposal::from_row(row)
}

/// The newest proposals first (pending, approved and rejected), at most `limit`.
pub async fn list(db: &Db, limit: u64) -> Result<Vec<Proposal>, ChangeError> {
    rows::proposals(db.conn(), limit)
        .await?
        .into_iter()
        .map(Proposal::from_row)
        .collect()
}

async fn pending(db: &Db, id: &str) -> Result<ProposalRow, ChangeError> {
    let row = rows::proposal_by_id(db.conn(), id)
        .await?
        .ok_or_else(|| ChangeError::NotFound(id.to_owned()))?;
    if row.status != "pending" {
        return Err(ChangeError::NotPending {
            id: row.id,
            status: row.status,
        });
    }
    Ok(row)
}

/// Approves a proposal on behalf of `by` (never its proposer) and makes it the live version of
/// its flow, in one transaction with its `policy.approved` and `policy.activated` entries;
/// refused when the live version changed since it was proposed.
pub async fn approve(
    db: &Db,
    flows: &FlowRegistry,
    id: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Proposal, ChangeError> {
    check_user(by)?;
    let row = pending(db, id).await?;
    check_approver(&row.id, &row.proposed_by, by)?;
    // This build must be able to activate it.
    let origin = format!("proposal {}", row.id);
    let policy = Policy::from_yaml(&row.source, &origin).map_err(PolicyLoadError::from)?;
    crate::policies::check(&policy, flows)?;
    let checks: Checks = Proposal::from_row(row.clone())?.checks;

    let txn = db.begin_write().await?;
    let swapped = rows::swap_head(
        &txn,
        &row.flow,
        row.base_sha256.as_deref(),
        &row.sha256,
        now,
    )
    .await?;
    if !swapped {
        let current = rows::head(&txn, &row.flow).await?;
        txn.rollback().await?;
        return Err(ChangeError::Stale {
            id: row.id,
            flow: row.flow,
            then: row.base_sha256.unwrap_or_else(|| "none".to_owned()),
            now: current.unwrap_or_else(|| "none".to_owned()),
        });
    }
    if !rows::decide_proposal(&txn, &row.id, "approved", by, now, None).await? {
        let status = rows::proposal_by_id(&txn, &row.id)
            .await?
            .map(|r| r.status)
            .unwrap_or_default();
        txn.rollback().await?;
        return Err(ChangeError::NotPending { id: row.id, status });
    }
    let kept = arbiter_db::policy_versions::Kept {
        policy_id: row.policy_id.clone(),
        version: row.version,
        flow: row.flow.clone(),
        source: row.source.clone(),
    };
    arbiter_db::policy_versions::keep(&txn, &row.sha256, &kept, now).await?;
    rows::insert_activation(
        &txn,
        &ActivationRow {
            flow: row.flow.clone(),
            policy_id: row.policy_id.clone(),
            version: row.version,
            sha256: row.sha256.clone(),
            proposal_id: Some(row.id.clone()),
            proposed_by: Some(row.proposed_by.clone()),
            approved_by: Some(by.to_owned()),
            actor: by.to_owned(),
            activated_at: now,
        },
    )
    .await?;
    let policy_ref = policy.policy_ref();
    let events = vec![
        Event::PolicyApproved {
            policy: policy_ref.clone(),
            proposal_id: row.id.clone(),
            proposed_by: row.proposed_by.clone(),
            approved_by: by.to_owned(),
        },
        Event::PolicyActivated {
            policy: policy_ref,
            actor: by.to_owned(),
            previous_version: checks.live.as_ref().map(|live| live.version),
        },
    ];
    arbiter_audit::append_many(&txn, SYSTEM_TENANT, now, events).await?;
    txn.commit().await?;
    show(db, id).await
}

/// Rejects a pending proposal on behalf of `by`, with its `policy.rejected` entry.
pub async fn reject(
    db: &Db,
    id: &str,
    by: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Proposal, ChangeError> {
    check_user(by)?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ChangeError::EmptyReason);
    }
    let row = pending(db, id).await?;
    let txn = db.begin_write().await?;
    if !rows::decide_proposal(&txn, &row.id, "rejected", by, now, Some(reason)).await? {
        txn.rollback().await?;
        return Err(ChangeError::NotPending {
            id: row.id,
            status: "decided".to_owned(),
        });
    }
    let event = Event::PolicyRejected {
        policy: PolicyRef {
            id: row.policy_id.clone(),
            version: version_u32(row.version),
            sha256: row.sha256.clone(),
        },
        proposal_id: row.id.clone(),
        proposed_by: row.proposed_by.clone(),
        rejected_by: by.to_owned(),
        reason: reason.to_owned(),
    };
    arbiter_audit::append(&txn, SYSTEM_TENANT, now, event).await?;
    txn.commit().await?;
    show(db, id).await
}

/// One version that was live, as `arbiter policy history` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// The policy's id.
    pub policy_id: String,
    /// Its version.
    pub version: u32,
    /// SHA-256 of its exact text (kept in `policy_versions`).
    pub sha256: String,
    /// The approved proposal; absent for a file a server activated.
    pub proposal_id: Option<String>,
    /// Who proposed it.
    pub proposed_by: Option<String>,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// Who or what activated it: the approver, or a server (`startup`, `reload`).
    pub actor: String,
    /// When it went live.
    pub activated_at: DateTime<Utc>,
    /// Whether it is the live version now.
    pub live: bool,
}

/// Every version that was live in a flow, oldest first.
pub async fn history(db: &Db, flow: &str) -> Result<Vec<HistoryEntry>, ChangeError> {
    let head = rows::head(db.conn(), flow).await?;
    let activations = rows::activations(db.conn(), flow).await?;
    let last = activations.len().checked_sub(1);
    Ok(activations
        .into_iter()
        .enumerate()
        .map(|(i, a)| HistoryEntry {
            live: Some(i) == last && head.as_deref() == Some(a.sha256.as_str()),
            policy_id: a.policy_id,
            version: version_u32(a.version),
            sha256: a.sha256,
            proposal_id: a.proposal_id,
            proposed_by: a.proposed_by,
            approved_by: a.approved_by,
            actor: a.actor,
            activated_at: a.activated_at,
        })
        .collect())
}

/// For a server with `policies.source: database` at start: each flow with no version in the
/// database yet gets the one it would start from (`live`, from the files or the built-in
/// copies), recorded as its first version (`policy.activated`, actor `startup`).
pub async fn seed_database(
    db: &Db,
    live: &LivePolicies,
    now: DateTime<Utc>,
) -> Result<usize, ChangeError> {
    let mut seeded = 0;
    for policy in live.snapshot().all() {
        let txn = db.begin_write().await?;
        if !rows::swap_head(&txn, policy.flow(), None, policy.sha256(), now).await? {
            txn.rollback().await?;
            continue;
        }
        let kept = arbiter_db::policy_versions::Kept {
            policy_id: policy.id().to_owned(),
            version: version_i32(policy.version()),
            flow: policy.flow().to_owned(),
            source: policy.source().to_owned(),
        };
        arbiter_db::policy_versions::keep(&txn, policy.sha256(), &kept, now).await?;
        rows::insert_activation(
            &txn,
            &ActivationRow {
                flow: policy.flow().to_owned(),
                policy_id: policy.id().to_owned(),
                version: version_i32(policy.version()),
                sha256: policy.sha256().to_owned(),
                proposal_id: None,
                proposed_by: None,
                approved_by: None,
                actor: "startup".to_owned(),
                activated_at: now,
            },
        )
        .await?;
        let event = Event::PolicyActivated {
            policy: policy.policy_ref(),
            actor: "startup".to_owned(),
            previous_version: None,
        };
        arbiter_audit::append(&txn, SYSTEM_TENANT, now, event).await?;
        txn.commit().await?;
        seeded += 1;
    }
    Ok(seeded)
}

/// With `policies.source: database`, at start: records the files' version of each flow that
/// has none in the database yet, then swaps in each flow's version recorded there. A recorded
/// version that cannot be activated fails the start: the database is the deployment's one source
/// of truth.
pub async fn start_from_database(
    db: &Db,
    live: &LivePolicies,
    flows: &FlowRegistry,
    now: DateTime<Utc>,
) -> Result<(), ChangeError> {
    seed_database(db, live, now).await?;
    let synced = sync_from_database(db, live, flows).await?;
    if !synced.failed.is_empty() {
        return Err(ChangeError::NotActivated(synced.failed.join("\n")));
    }
    Ok(())
}

/// What [`sync_from_database`] did.
#[derive(Debug, Default)]
pub struct Synced {
    /// Each policy activated, with the version it replaced.
    pub activated: Vec<(Arc<Policy>, Option<u32>)>,
    /// Each recorded version that cannot be activated (the previous one stays live): why.
    pub failed: Vec<String>,
}

/// For a server with `policies.source: database`: swaps in the version recorded as live for
/// each of this build's flows whose live policy differs. A version that cannot be activated
/// leaves the previous one live; it is logged and reported in [`Synced::failed`].
pub async fn sync_from_database(
    db: &Db,
    live: &LivePolicies,
    flows: &FlowRegistry,
) -> Result<Synced, ChangeError> {
    let snapshot = live.snapshot();
    let mut synced = Synced::default();
    for (flow, sha256) in rows::heads(db.conn()).await? {
        if flows.get(&flow).is_none()
            || snapshot
                .for_flow(&flow)
                .is_some_and(|p| p.sha256() == sha256)
        {
            continue;
        }
        let installed = match kept_policy(db, &sha256).await {
            Ok(policy) => live.install(policy, flows).map_err(ChangeError::from),
            Err(err) => Err(err),
        };
        match installed {
            Ok((policy, previous)) => {
                tracing::info!(
                    policy = policy.id(),
                    version = policy.version(),
                    %flow,
                    "approved policy version activated"
                );
                synced.activated.push((policy, previous));
            }
            Err(err) => {
                tracing::error!(%flow, %sha256, error = %err, "the approved policy version cannot be activated; the previous version stays live");
                synced.failed.push(format!(
                    "flow `{flow}`: the approved version {sha256} cannot be activated: {err}"
                ));
            }
        }
    }
    Ok(synced)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = include_str!("../../../policies/kyc.yaml");

    fn policy(version: u32) -> Policy {
        let text = POLICY.replacen("version: 2", &format!("version: {version}"), 1);
        Policy::from_yaml(&text, "kyc.yaml").unwrap()
    }

    #[test]
    fn the_proposer_cannot_approve_and_the_refusal_names_the_rule() {
        let err = check_approver("prop_1", "alice", "alice").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("four-eyes rule: alice proposed prop_1"),
            "{text}"
        );
        assert!(text.contains("second person"), "{text}");
        check_approver("prop_1", "alice", "bob").unwrap();
    }

    #[test]
    fn names_are_operator_ids_never_email_addresses() {
        check_user("alice").unwrap();
        check_user("ops.bob-2_x").unwrap();
        for bad in ["", "alice@example.com", "a b", &"x".repeat(129)] {
            assert!(
                matches!(check_user(bad), Err(ChangeError::BadUser(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_new_version_must_raise_the_number_unless_it_is_a_rollback() {
        assert_eq!(policy(2).version(), 2, "kyc.yaml states `version: 2`");
        let live = policy(3);
        check_newer(None, &policy(1), false).unwrap();
        check_newer(Some(&live), &policy(4), false).unwrap();
        let err = check_newer(Some(&live), &policy(2), false).unwrap_err();
        assert!(
            err.to_string()
                .contains("version 2 must be greater than the live version 3"),
            "{err}"
        );
        check_newer(Some(&live), &policy(2), true).unwrap();
        let err = check_newer(Some(&live), &policy(3), true).unwrap_err();
        assert!(matches!(err, ChangeError::Unchanged { .. }), "{err}");
    }

    /// The change workflow on a database, with the KYC policy's versions.
    #[cfg(feature = "flow-kyc")]
    mod on_a_database {
        use super::*;
        use arbiter_db::testing;

        /// The flows of this build: each has its shipped policy recorded as its first version.
        fn seeds() -> usize {
            FlowRegistry::builtin().unwrap().names().count()
        }

        /// Runs `test` on a fresh database of each kind, the flows' shipped policies live and
        /// recorded as each flow's first version.
        async fn each_database<F, Fut>(test: F)
        where
            F: Fn(&'static str, Db, LivePolicies) -> Fut,
            Fut: std::future::Future<Output = ()>,
        {
            let dir = tempfile::tempdir().unwrap();
            let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
            for (label, target) in targets {
                let db = Db::connect(&target).await.unwrap();
                let flows = FlowRegistry::builtin().unwrap();
                let live = LivePolicies::fixed(PolicyStore::embedded(&flows).unwrap());
                assert_eq!(
                    seed_database(&db, &live, Utc::now()).await.unwrap(),
                    seeds()
                );
                assert_eq!(
                    seed_database(&db, &live, Utc::now()).await.unwrap(),
                    0,
                    "{label}: seeded once"
                );
                test(label, db.clone(), live).await;
                db.close().await.unwrap();
            }
            if let Some(pg) = postgres {
                pg.drop_db().await.unwrap();
            }
        }

        async fn propose_kyc(db: &Db, version: u32, by: &str) -> Result<Proposal, ChangeError> {
            let flows = FlowRegistry::builtin().unwrap();
            let seed = PolicyStore::embedded(&flows).unwrap();
            let with = ProposeWith {
                flows: &flows,
                seed: &seed,
                backtest_days: 7,
                now: Utc::now(),
            };
            propose(db, with, policy(version), by).await
        }

        async fn system_events(db: &Db) -> Vec<&'static str> {
            let filter = arbiter_audit::EntryFilter {
                tenant: Some(SYSTEM_TENANT.to_owned()),
                ..Default::default()
            };
            arbiter_audit::entries(db.conn(), &filter)
                .await
                .unwrap()
                .iter()
                .map(|stored| stored.entry.event.name())
                .collect()
        }

        #[tokio::test]
        async fn a_change_goes_live_only_when_a_second_person_approves_it() {
            each_database(|label, db, live| async move {
                let flows = FlowRegistry::builtin().unwrap();
                let v2 = policy(2);
                let proposal = propose_kyc(&db, 3, "alice").await.unwrap();
                assert_eq!(proposal.status, "pending", "{label}");
                assert_eq!(
                    proposal.base_sha256.as_deref(),
                    Some(v2.sha256()),
                    "{label}"
                );
                assert_eq!(proposal.checks.live.as_ref().unwrap().version, 2, "{label}");
                assert_eq!(proposal.checks.tests.failed, 0, "{label}");
                assert!(proposal.checks.tests.passed > 0, "{label}");

                let id = proposal.proposal_id.as_str();
                let err = approve(&db, &flows, id, "alice", Utc::now())
                    .await
                    .unwrap_err();
                assert!(
                    matches!(err, ChangeError::SelfApproval { .. }),
                    "{label}: {err}"
                );
                assert_eq!(show(&db, id).await.unwrap().status, "pending", "{label}");

                let approved = approve(&db, &flows, id, "bob", Utc::now()).await.unwrap();
                assert_eq!(approved.status, "approved", "{label}");
                assert_eq!(approved.decided_by.as_deref(), Some("bob"), "{label}");
                let err = approve(&db, &flows, id, "carol", Utc::now())
                    .await
                    .unwrap_err();
                assert_eq!(
                    err.to_string(),
                    format!(
                        "proposal {id} is approved already; only a pending proposal can be \
                     approved or rejected"
                    ),
                    "{label}"
                );

                let history: Vec<_> = history(&db, "kyc")
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|h| (h.version, h.actor, h.approved_by, h.live))
                    .collect();
                assert_eq!(
                    history,
                    [
                        (2, "startup".to_owned(), None, false),
                        (3, "bob".to_owned(), Some("bob".to_owned()), true)
                    ],
                    "{label}"
                );
                assert_eq!(
                    system_events(&db).await[seeds()..],
                    ["policy.proposed", "policy.approved", "policy.activated"],
                    "{label}"
                );

                // A server reading the database swaps the approved version in, once.
                let synced = sync_from_database(&db, &live, &flows).await.unwrap();
                assert!(synced.failed.is_empty(), "{label}");
                let activated: Vec<_> = synced
                    .activated
                    .iter()
                    .map(|(p, previous)| (p.version(), *previous))
                    .collect();
                assert_eq!(activated, [(3, Some(2))], "{label}");
                assert_eq!(live.snapshot().for_flow("kyc").unwrap().version(), 3);
                let again = sync_from_database(&db, &live, &flows).await.unwrap();
                assert!(again.activated.is_empty(), "{label}");
            })
            .await;
        }

        #[tokio::test]
        async fn a_proposal_made_against_an_older_live_version_is_stale() {
            each_database(|label, db, _| async move {
                let flows = FlowRegistry::builtin().unwrap();
                let first = propose_kyc(&db, 3, "alice").await.unwrap();
                let second = propose_kyc(&db, 4, "carol").await.unwrap();
                approve(&db, &flows, &second.proposal_id, "bob", Utc::now())
                    .await
                    .unwrap();
                let err = approve(&db, &flows, &first.proposal_id, "bob", Utc::now())
                    .await
                    .unwrap_err();
                let ChangeError::Stale { then, now, .. } = &err else {
                    panic!("{label}: {err}");
                };
                assert_eq!(then, policy(2).sha256(), "{label}");
                assert_eq!(now, policy(4).sha256(), "{label}");
                assert!(err.to_string().contains("is stale"), "{label}");
                assert_eq!(
                    show(&db, &first.proposal_id).await.unwrap().status,
                    "pending",
                    "{label}: a refused approval changes nothing"
                );
                let live = history(&db, "kyc").await.unwrap();
                assert_eq!(live.last().map(|h| (h.version, h.live)), Some((4, true)));
            })
            .await;
        }

        #[tokio::test]
        async fn a_rejection_needs_a_reason_and_ends_the_proposal() {
            each_database(|label, db, _| async move {
                let flows = FlowRegistry::builtin().unwrap();
                let proposal = propose_kyc(&db, 3, "alice").await.unwrap();
                let id = proposal.proposal_id.as_str();
                let err = reject(&db, id, "bob", "  ", Utc::now()).await.unwrap_err();
                assert!(matches!(err, ChangeError::EmptyReason), "{label}: {err}");
                let rejected = reject(&db, id, "bob", " too strict ", Utc::now())
                    .await
                    .unwrap();
                assert_eq!(rejected.status, "rejected", "{label}");
                assert_eq!(rejected.reason.as_deref(), Some("too strict"), "{label}");
                let err = approve(&db, &flows, id, "carol", Utc::now())
                    .await
                    .unwrap_err();
                assert!(
                    matches!(&err, ChangeError::NotPending { status, .. } if status == "rejected"),
                    "{label}: {err}"
                );
                let err = reject(&db, "prop_nonesuch", "bob", "no", Utc::now())
                    .await
                    .unwrap_err();
                assert_eq!(err.to_string(), "there is no policy proposal prop_nonesuch");
                assert_eq!(
                    system_events(&db).await[seeds()..],
                    ["policy.proposed", "policy.rejected"],
                    "{label}"
                );
                assert_eq!(history(&db, "kyc").await.unwrap().len(), 1, "{label}");
            })
            .await;
        }

        #[tokio::test]
        async fn a_proposal_is_refused_for_a_bad_name_a_lower_version_or_the_live_text() {
            each_database(|label, db, _| async move {
                let err = propose_kyc(&db, 3, "alice@example.com").await.unwrap_err();
                assert!(matches!(err, ChangeError::BadUser(_)), "{label}: {err}");
                let err = propose_kyc(&db, 1, "alice").await.unwrap_err();
                assert!(
                    matches!(
                        err,
                        ChangeError::Invalid(PolicyLoadError::VersionNotIncreased { live: 2, .. })
                    ),
                    "{label}: {err}"
                );
                let err = propose_kyc(&db, 2, "alice").await.unwrap_err();
                assert!(
                    matches!(err, ChangeError::Unchanged { .. }),
                    "{label}: {err}"
                );
                assert!(list(&db, 10).await.unwrap().is_empty(), "{label}");
                assert_eq!(
                    system_events(&db).await.len(),
                    seeds(),
                    "{label}: only the seeds"
                );
            })
            .await;
        }

        #[tokio::test]
        async fn a_rollback_restores_a_version_that_was_live_after_a_second_approval() {
            each_database(|label, db, _| async move {
                let flows = FlowRegistry::builtin().unwrap();
                let seed = PolicyStore::embedded(&flows).unwrap();
                let with = ProposeWith {
                    flows: &flows,
                    seed: &seed,
                    backtest_days: 7,
                    now: Utc::now(),
                };
                let v3 = propose_kyc(&db, 3, "alice").await.unwrap();
                approve(&db, &flows, &v3.proposal_id, "bob", Utc::now())
                    .await
                    .unwrap();
                let err = rollback(&db, with, "kyc", 9, "alice").await.unwrap_err();
                assert_eq!(
                    err.to_string(),
                    "flow `kyc` never had version 9 live (see `arbiter policy history kyc`)",
                    "{label}"
                );
                let back = rollback(&db, with, "kyc", 2, "alice").await.unwrap();
                assert_eq!(
                    (back.policy.version, back.rollback_to),
                    (2, Some(2)),
                    "{label}"
                );
                assert_eq!(back.policy.sha256, policy(2).sha256(), "{label}");
                assert!(matches!(
                    approve(&db, &flows, &back.proposal_id, "alice", Utc::now()).await,
                    Err(ChangeError::SelfApproval { .. })
                ));
                approve(&db, &flows, &back.proposal_id, "bob", Utc::now())
                    .await
                    .unwrap();
                let versions: Vec<_> = history(&db, "kyc")
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|h| (h.version, h.live))
                    .collect();
                assert_eq!(versions, [(2, false), (3, false), (2, true)], "{label}");
            })
            .await;
        }
    }
}
