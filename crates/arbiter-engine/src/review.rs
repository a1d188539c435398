//! Human review: the queues policies' actions put images in (`siu`, `adjusters`, `moderation`,
//! `kyc_review`), claimed by one reviewer at a time and resolved with a label.
//!
//! A resolution is committed in one transaction with its `review.resolved` audit entry and
//! webhook. Labels stay with the decision (by request id), so a policy backtest can say how
//! often each rule was right.

use crate::error::EngineError;
use crate::flows::FlowRegistry;
use arbiter_audit::Event;
use arbiter_core::ErrorCode;
use arbiter_db::Db;
use arbiter_db::entity::review_item;
use arbiter_db::review::{self as repo, Actor, ItemFilter, Resolution};
use arbiter_db::sea_orm::ConnectionTrait;
use arbiter_webhooks::outbox::{self, Message};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The labels a reviewer gives, and whether each says the image is fake: `Some(true)` fake,
/// `Some(false)` authentic, `None` undecided.
pub const LABELS: [(&str, Option<bool>); 4] = [
    ("confirmed_fake", Some(true)),
    ("confirmed_authentic", Some(false)),
    ("false_positive", Some(false)),
    ("unclear", None),
];

/// The label names, comma-separated.
pub fn label_names() -> String {
    LABELS.map(|(name, _)| name).join(", ")
}

/// Whether a label says the image is fake; `None` for an undecided or unknown label.
pub fn label_says_fake(label: &str) -> Option<bool> {
    LABELS
        .iter()
        .find(|(name, _)| *name == label)
        .and_then(|(_, fake)| *fake)
}

/// The item statuses, as `?status=` takes them.
pub const STATUSES: [&str; 3] = [repo::OPEN, repo::CLAIMED, repo::RESOLVED];

/// A review item as the API and the CLI show it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemView {
    /// `rev_...`.
    pub item_id: String,
    /// The queue.
    pub queue: String,
    /// `open`, `claimed` or `resolved`.
    pub status: String,
    /// The flow that decided.
    pub flow: String,
    /// The claim or session, if the image belongs to one.
    pub case_id: Option<String>,
    /// The request under review (its analysis: `GET /v1/requests/{request_id}`).
    pub request_id: String,
    /// The caller's reference for the image.
    pub reference_id: Option<String>,
    /// SHA-256 of the image's bytes.
    pub image_sha256: String,
    /// The action the policy decided.
    pub action: String,
    /// The deciding rule's reason code.
    pub reason: String,
    /// The reviewer holding the item.
    pub claimed_by: Option<String>,
    /// When it was claimed.
    pub claimed_at: Option<DateTime<Utc>>,
    /// The reviewer's label.
    pub label: Option<String>,
    /// The reviewer's note.
    pub note: Option<String>,
    /// The action the reviewer settled on.
    pub resolved_action: Option<String>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

impl From<review_item::Model> for ItemView {
    fn from(row: review_item::Model) -> Self {
        Self {
            item_id: row.item_id,
            queue: row.queue,
            status: row.status,
            flow: row.flow,
            case_id: row.case_id,
            request_id: row.request_id,
            reference_id: row.reference_id,
            image_sha256: row.image_sha256,
            action: row.action,
            reason: row.reason,
            claimed_by: row.claimed_by,
            claimed_at: row.claimed_at,
            label: row.label,
            note: row.note,
            resolved_action: row.resolved_action,
            resolved_by: row.resolved_by,
            resolved_at: row.resolved_at,
            created_at: row.created_at,
        }
    }
}

/// Checks a reviewer id: 1 to 64 of `A-Z a-z 0-9 . _ - : @`. An id, never a person's name:
/// it goes into the audit log.
pub fn check_reviewer(reviewer: &str) -> Result<(), EngineError> {
    if reviewer.is_empty()
        || reviewer.len() > 64
        || !reviewer
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:@".contains(c))
    {
        return Err(EngineError::invalid(format!(
            "reviewer must be an id of 1 to 64 letters, digits and . _ - : @ (found {reviewer:?})"
        )));
    }
    Ok(())
}

/// Lists a tenant's items, oldest first, at most `limit` after the cursor `after`.
pub async fn list(
    conn: &impl ConnectionTrait,
    tenant: &str,
    filter: &ItemFilter<'_>,
    limit: u64,
) -> Result<Vec<ItemView>, EngineError> {
    if let Some(status) = filter.status
        && !STATUSES.contains(&status)
    {
        return Err(EngineError::invalid(format!(
            "status must be one of {}; found {status:?}",
            STATUSES.join(", ")
        )));
    }
    let rows = repo::list(conn, tenant, filter, limit).await?;
    Ok(rows.into_iter().map(ItemView::from).collect())
}

/// Items listed when no limit is given.
pub const DEFAULT_LIST: u64 = 100;
/// The most items listed at once.
pub const MAX_LIST: u64 = 500;

/// A list's limit: [`DEFAULT_LIST`] when not given, 1 to [`MAX_LIST`].
pub fn list_limit(limit: Option<u64>) -> Result<u64, EngineError> {
    let limit = limit.unwrap_or(DEFAULT_LIST);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(EngineError::invalid("limit must be 1 to 500"));
    }
    Ok(limit)
}

/// A page of items.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ItemPage)]
pub struct ItemsPage {
    /// The items, oldest first.
    #[serde(rename = "data")]
    pub items: Vec<ItemView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A page of a tenant's items, oldest first ([`list`] with the limit checked by
/// [`list_limit`]).
pub async fn list_page(
    conn: &impl ConnectionTrait,
    tenant: &str,
    filter: &ItemFilter<'_>,
    limit: Option<u64>,
) -> Result<ItemsPage, EngineError> {
    let limit = list_limit(limit)?;
    let items = list(conn, tenant, filter, limit).await?;
    let next_cursor = (items.len() as u64 == limit)
        .then(|| items.last().map(|item| item.item_id.clone()))
        .flatten();
    Ok(ItemsPage { items, next_cursor })
}

/// One of a tenant's items.
pub async fn get(
    conn: &impl ConnectionTrait,
    tenant: &str,
    item_id: &str,
) -> Result<ItemView, EngineError> {
    repo::get(conn, tenant, item_id)
        .await?
        .map(ItemView::from)
        .ok_or_else(|| not_found(item_id))
}

fn not_found(item_id: &str) -> EngineError {
    EngineError::not_found(format!("no review item {item_id} for this tenant"))
}

/// Why an item cannot be taken: 404, or 409. A 409 does not say who holds the item.
async fn refusal(db: &Db, tenant: &str, item_id: &str) -> EngineError {
    match repo::get(db.conn(), tenant, item_id).await {
        Ok(Some(item)) if item.status == repo::RESOLVED => EngineError::refused(
            ErrorCode::Conflict,
            format!("review item {item_id} was resolved already"),
        ),
        Ok(Some(_)) => EngineError::refused(
            ErrorCode::Conflict,
            format!(
                "review item {item_id} is claimed by another reviewer, or through another API key"
            ),
        ),
        Ok(None) => not_found(item_id),
        Err(err) => err.into(),
    }
}

/// Claims an item for a reviewer through an API key: 409 when it is held by another reviewer
/// or through another key, or resolved. The claim belongs to that reviewer and that key.
pub async fn claim(
    db: &Db,
    tenant: &str,
    item_id: &str,
    actor: Actor<'_>,
    now: DateTime<Utc>,
) -> Result<ItemView, EngineError> {
    check_reviewer(actor.reviewer)?;
    let txn = db.begin_write().await?;
    let claimed = repo::claim(&txn, tenant, item_id, actor, now).await?;
    if !claimed {
        txn.rollback().await?;
        return Err(refusal(db, tenant, item_id).await);
    }
    let item = repo::get(&txn, tenant, item_id)
        .await?
        .ok_or_else(|| not_found(item_id))?;
    let event = Event::ReviewClaimed {
        request_id: item.request_id,
        reference_id: item.reference_id,
        queue: item.queue,
        actor: actor.reviewer.to_owned(),
        key_id: actor.key.map(str::to_owned),
    };
    arbiter_audit::append(&txn, tenant, now, event).await?;
    txn.commit().await?;
    tracing::info!(
        item_id,
        reviewer = actor.reviewer,
        key_id = actor.key,
        "review item claimed"
    );
    get(db.conn(), tenant, item_id).await
}

/// A reviewer's verdict on an item.
#[derive(Debug, Clone)]
pub struct Resolve<'a> {
    /// Who resolves (an id).
    pub reviewer: &'a str,
    /// The id of the API key it is resolved through; `None` for the operator's command line.
    pub key: Option<&'a str>,
    /// One of [`LABELS`].
    pub label: &'a str,
    /// Why, in the reviewer's words.
    pub note: Option<&'a str>,
    /// The action settled on; by default the policy's for a fake, the flow's mildest for an
    /// authentic image.
    pub action: Option<&'a str>,
}

/// The queue feedback given through the RD-compatible endpoints is filed under.
pub const FEEDBACK_QUEUE: &str = "feedback";

/// An open review item for feedback on an analysed request, to be resolved at once with the
/// feedback's label (so it counts like a reviewer's label).
pub fn feedback_item(
    tenant: &str,
    result: &arbiter_core::AnalysisResponse,
    flow: &str,
    action: &str,
    now: DateTime<Utc>,
) -> arbiter_db::entity::review_item::Model {
    arbiter_db::entity::review_item::Model {
        item_id: arbiter_core::ReviewId::new().to_string(),
        tenant: tenant.to_owned(),
        queue: FEEDBACK_QUEUE.to_owned(),
        flow: flow.to_owned(),
        case_id: None,
        request_id: result.request_id.to_string(),
        reference_id: result.reference_id.clone(),
        image_sha256: result.image_info.sha256.clone(),
        action: action.to_owned(),
        reason: "FEEDBACK".to_owned(),
        status: repo::OPEN.to_owned(),
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

/// The longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 4000;

/// Resolves an item (open, or held by the reviewer through the same key) and commits its `review.resolved` audit
/// entry and webhook deliveries with it. Returns the item and how many deliveries were queued.
pub async fn resolve(
    db: &Db,
    flows: &FlowRegistry,
    tenant: &str,
    item_id: &str,
    request: &Resolve<'_>,
    now: DateTime<Utc>,
) -> Result<(ItemView, usize), EngineError> {
    check_reviewer(request.reviewer)?;
    let Some((_, fake)) = LABELS.iter().find(|(name, _)| *name == request.label) else {
        return Err(EngineError::invalid(format!(
            "label must be one of {}; found {:?}",
            label_names(),
            request.label
        )));
    };
    if request
        .note
        .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
    {
        return Err(EngineError::invalid(format!(
            "note is longer than {MAX_NOTE_CHARS} characters"
        )));
    }
    let item = repo::get(db.conn(), tenant, item_id)
        .await?
        .ok_or_else(|| not_found(item_id))?;
    let vocabulary = flows
        .get(&item.flow)
        .map(|flow| flow.actions().to_vec())
        .unwrap_or_default();
    let action = match (request.action, fake) {
        (Some(action), _) => {
            if !vocabulary.iter().any(|a| a.name == action) {
                return Err(EngineError::invalid(format!(
                    "action must be one of the {} flow's actions ({}); found {action:?}",
                    item.flow,
                    vocabulary
                        .iter()
                        .map(|a| a.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            action.to_owned()
        }
        (None, Some(false)) => vocabulary
            .iter()
            .min_by_key(|a| a.severity)
            .map_or_else(|| item.action.clone(), |a| a.name.to_owned()),
        (None, _) => item.action.clone(),
    };
    let txn = db.begin_write().await?;
    let resolution = Resolution {
        actor: Actor {
            reviewer: request.reviewer,
            key: request.key,
        },
        label: request.label,
        note: request.note,
        action: &action,
        at: now,
    };
    if !repo::resolve(&txn, tenant, item_id, &resolution).await? {
        txn.rollback().await?;
        return Err(refusal(db, tenant, item_id).await);
    }
    let event = Event::ReviewResolved {
        request_id: item.request_id.clone(),
        reference_id: item.reference_id.clone(),
        queue: item.queue.clone(),
        actor: request.reviewer.to_owned(),
        key_id: request.key.map(str::to_owned),
        label: request.label.to_owned(),
        action: action.clone(),
    };
    let audit = arbiter_audit::append(&txn, tenant, now, event).await?;
    let resolved = repo::get(&txn, tenant, item_id)
        .await?
        .map(ItemView::from)
        .ok_or_else(|| not_found(item_id))?;
    let payload = json!({
        "event": "review.resolved",
        "type": "review.resolved",
        "timestamp": now,
        "item": resolved,
        "audit": {"seq": audit.entry.seq, "entry_hash": audit.entry_hash},
    });
    let message = Message {
        event: "review.resolved",
        payload,
        request_id: Some(&item.request_id),
        reference_id: item.reference_id.as_deref(),
        batch_id: None,
    };
    let queued = outbox::enqueue(&txn, tenant, &message, None, now).await?;
    txn.commit().await?;
    tracing::info!(item_id, reviewer = request.reviewer, label = request.label, action = %action, seq = audit.entry.seq, "review item resolved");
    Ok((resolved, queued))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_limits_default_to_100_and_stay_within_1_to_500() {
        assert_eq!(list_limit(None).unwrap(), 100);
        assert_eq!(list_limit(Some(1)).unwrap(), 1);
        assert_eq!(list_limit(Some(500)).unwrap(), 500);
        for bad in [0, 501] {
            let err = list_limit(Some(bad)).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidRequest);
            assert_eq!(err.to_string(), "limit must be 1 to 500");
        }
    }

    #[test]
    fn labels_say_whether_the_image_is_fake() {
        assert_eq!(label_says_fake("confirmed_fake"), Some(true));
        assert_eq!(label_says_fake("confirmed_authentic"), Some(false));
        assert_eq!(label_says_fake("false_positive"), Some(false));
        assert_eq!(label_says_fake("unclear"), None);
        assert_eq!(label_says_fake("nonsense"), None);
        assert_eq!(
            label_names(),
            "confirmed_fake, confirmed_authentic, false_positive, unclear"
        );
    }

    #[test]
    fn reviewers_are_ids() {
        assert!(check_reviewer("rv-17").is_ok());
        assert!(check_reviewer("key_01JH0000000000000000000001").is_ok());
        for bad in ["", "Jane Doe", &"r".repeat(65)] {
            assert!(check_reviewer(bad).is_err(), "{bad}");
        }
    }
}
