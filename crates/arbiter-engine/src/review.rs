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

    /// Claims and resolutions on a database, of items a KYC policy queued.
    #[cfg(feature = "flow-kyc")]
    mod on_a_database {
        use super::*;
        use arbiter_db::testing;

        /// An open KYC item the policy rejected.
        fn item(item_id: &str, tenant: &str) -> review_item::Model {
            review_item::Model {
                item_id: item_id.to_owned(),
                tenant: tenant.to_owned(),
                queue: "kyc_review".to_owned(),
                flow: "kyc".to_owned(),
                case_id: None,
                request_id: format!("req_{item_id}"),
                reference_id: Some(format!("ref-{item_id}")),
                image_sha256: "ab".repeat(32),
                action: "reject".to_owned(),
                reason: "SYNTHETIC_SELFIE".to_owned(),
                status: repo::OPEN.to_owned(),
                claimed_by: None,
                claimed_key: None,
                claimed_at: None,
                label: None,
                note: None,
                resolved_action: None,
                resolved_by: None,
                resolved_at: None,
                created_at: Utc::now(),
            }
        }

        fn actor<'a>(reviewer: &'a str, key: &'a str) -> Actor<'a> {
            Actor {
                reviewer,
                key: Some(key),
            }
        }

        fn resolve_as<'a>(reviewer: &'a str, key: &'a str, label: &'a str) -> Resolve<'a> {
            Resolve {
                reviewer,
                key: Some(key),
                label,
                note: None,
                action: None,
            }
        }

        async fn each_database<F, Fut>(test: F)
        where
            F: Fn(&'static str, Db) -> Fut,
            Fut: std::future::Future<Output = ()>,
        {
            let dir = tempfile::tempdir().unwrap();
            let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
            for (label, target) in targets {
                let db = Db::connect(&target).await.unwrap();
                let items = ["rev_a", "rev_b", "rev_c"].map(|id| item(id, "acme"));
                repo::insert(db.conn(), items).await.unwrap();
                test(label, db.clone()).await;
                db.close().await.unwrap();
            }
            if let Some(pg) = postgres {
                pg.drop_db().await.unwrap();
            }
        }

        fn refusal_of(err: &EngineError) -> (ErrorCode, String) {
            (err.code(), err.to_string())
        }

        async fn events(db: &Db) -> Vec<&'static str> {
            let filter = arbiter_audit::EntryFilter {
                tenant: Some("acme".to_owned()),
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
        async fn a_claim_belongs_to_one_reviewer_through_one_key() {
            each_database(|label, db| async move {
                let now = Utc::now();
                let claimed = claim(&db, "acme", "rev_a", actor("rv-1", "key_1"), now)
                    .await
                    .unwrap();
                assert_eq!(claimed.status, repo::CLAIMED, "{label}");
                assert_eq!(claimed.claimed_by.as_deref(), Some("rv-1"), "{label}");
                let held = (
                    ErrorCode::Conflict,
                    "review item rev_a is claimed by another reviewer, or through another API key"
                        .to_owned(),
                );
                for other in [actor("rv-2", "key_1"), actor("rv-1", "key_2")] {
                    let err = claim(&db, "acme", "rev_a", other, now).await.unwrap_err();
                    assert_eq!(refusal_of(&err), held, "{label}");
                }
                let err = claim(&db, "other", "rev_a", actor("rv-1", "key_1"), now)
                    .await
                    .unwrap_err();
                assert_eq!(
                    refusal_of(&err),
                    (
                        ErrorCode::NotFound,
                        "no review item rev_a for this tenant".to_owned()
                    ),
                    "{label}"
                );
                let err = claim(&db, "acme", "rev_a", actor("Jane Doe", "key_1"), now)
                    .await
                    .unwrap_err();
                assert_eq!(err.code(), ErrorCode::InvalidRequest, "{label}");
                assert_eq!(events(&db).await, ["review.claimed"], "{label}");

                // Another reviewer cannot resolve the held item either; its holder can.
                let err = resolve(
                    &db,
                    &FlowRegistry::builtin().unwrap(),
                    "acme",
                    "rev_a",
                    &resolve_as("rv-2", "key_1", "confirmed_fake"),
                    now,
                )
                .await
                .unwrap_err();
                assert_eq!(refusal_of(&err), held, "{label}");
                let (resolved, queued) = resolve(
                    &db,
                    &FlowRegistry::builtin().unwrap(),
                    "acme",
                    "rev_a",
                    &resolve_as("rv-1", "key_1", "confirmed_fake"),
                    now,
                )
                .await
                .unwrap();
                assert_eq!(queued, 0, "{label}: no endpoints");
                assert_eq!(resolved.status, repo::RESOLVED, "{label}");
                assert_eq!(resolved.label.as_deref(), Some("confirmed_fake"), "{label}");
                // A fake keeps the policy's action.
                assert_eq!(
                    resolved.resolved_action.as_deref(),
                    Some("reject"),
                    "{label}"
                );
                assert_eq!(resolved.resolved_by.as_deref(), Some("rv-1"), "{label}");

                let gone = (
                    ErrorCode::Conflict,
                    "review item rev_a was resolved already".to_owned(),
                );
                let err = claim(&db, "acme", "rev_a", actor("rv-1", "key_1"), now)
                    .await
                    .unwrap_err();
                assert_eq!(refusal_of(&err), gone, "{label}");
                assert_eq!(
                    events(&db).await,
                    ["review.claimed", "review.resolved"],
                    "{label}"
                );
                // The label stays with the request, for backtests.
                let labels = repo::labels(db.conn(), Some("acme")).await.unwrap();
                assert_eq!(
                    labels,
                    [("req_rev_a".to_owned(), "confirmed_fake".to_owned())],
                    "{label}"
                );
            })
            .await;
        }

        #[tokio::test]
        async fn a_resolution_checks_its_label_note_and_action_and_defaults_the_action() {
            each_database(|label, db| async move {
                let flows = FlowRegistry::builtin().unwrap();
                let now = Utc::now();
                let refused = |request: Resolve<'static>| {
                    let (db, flows) = (db.clone(), flows.clone());
                    async move {
                        let err = resolve(&db, &flows, "acme", "rev_b", &request, now)
                            .await
                            .unwrap_err();
                        assert_eq!(err.code(), ErrorCode::InvalidRequest);
                        err.to_string()
                    }
                };
                assert_eq!(
                    refused(resolve_as("rv-1", "key_1", "fake")).await,
                    "label must be one of confirmed_fake, confirmed_authentic, false_positive, \
                 unclear; found \"fake\"",
                    "{label}"
                );
                let long = Box::leak("n".repeat(MAX_NOTE_CHARS + 1).into_boxed_str());
                assert_eq!(
                    refused(Resolve {
                        note: Some(long),
                        ..resolve_as("rv-1", "key_1", "unclear")
                    })
                    .await,
                    "note is longer than 4000 characters",
                    "{label}"
                );
                assert_eq!(
                    refused(Resolve {
                        action: Some("ban"),
                        ..resolve_as("rv-1", "key_1", "unclear")
                    })
                    .await,
                    "action must be one of the kyc flow's actions (reject, step_up_verification, \
                 approve); found \"ban\"",
                    "{label}"
                );

                // An open item may be resolved at once; an authentic image gets the mildest action.
                let (item, _) = resolve(
                    &db,
                    &flows,
                    "acme",
                    "rev_b",
                    &resolve_as("rv-1", "key_1", "false_positive"),
                    now,
                )
                .await
                .unwrap();
                assert_eq!(item.resolved_action.as_deref(), Some("approve"), "{label}");
                // An undecided label keeps the policy's action; a named action wins.
                let (item, _) = resolve(
                    &db,
                    &flows,
                    "acme",
                    "rev_c",
                    &Resolve {
                        action: Some("step_up_verification"),
                        note: Some("blurry"),
                        ..resolve_as("rv-2", "key_2", "unclear")
                    },
                    now,
                )
                .await
                .unwrap();
                assert_eq!(
                    (item.resolved_action.as_deref(), item.note.as_deref()),
                    (Some("step_up_verification"), Some("blurry")),
                    "{label}"
                );
                assert_eq!(
                    events(&db).await,
                    ["review.resolved", "review.resolved"],
                    "{label}"
                );
            })
            .await;
        }

        #[tokio::test]
        async fn items_are_paged_oldest_first_and_filtered_by_status() {
            each_database(|label, db| async move {
                let filter = ItemFilter::default();
                let first = list_page(db.conn(), "acme", &filter, Some(2))
                    .await
                    .unwrap();
                let ids: Vec<_> = first.items.iter().map(|i| i.item_id.as_str()).collect();
                assert_eq!(ids, ["rev_a", "rev_b"], "{label}");
                assert_eq!(first.next_cursor.as_deref(), Some("rev_b"), "{label}");
                let after = ItemFilter {
                    after: Some("rev_b"),
                    ..ItemFilter::default()
                };
                let last = list_page(db.conn(), "acme", &after, Some(2)).await.unwrap();
                let ids: Vec<_> = last.items.iter().map(|i| i.item_id.as_str()).collect();
                assert_eq!(ids, ["rev_c"], "{label}");
                assert_eq!(last.next_cursor, None, "{label}");
                assert!(
                    list_page(db.conn(), "other", &filter, None)
                        .await
                        .unwrap()
                        .items
                        .is_empty(),
                    "{label}"
                );

                claim(&db, "acme", "rev_b", actor("rv-1", "key_1"), Utc::now())
                    .await
                    .unwrap();
                let claimed = ItemFilter {
                    status: Some(repo::CLAIMED),
                    ..ItemFilter::default()
                };
                let items = list(db.conn(), "acme", &claimed, 10).await.unwrap();
                assert_eq!(items.len(), 1, "{label}");
                assert_eq!(items[0].item_id, "rev_b", "{label}");
                let bad = ItemFilter {
                    status: Some("done"),
                    ..ItemFilter::default()
                };
                let err = list(db.conn(), "acme", &bad, 10).await.unwrap_err();
                assert_eq!(
                    err.to_string(),
                    "status must be one of open, claimed, resolved; found \"done\"",
                    "{label}"
                );
                let err = get(db.conn(), "acme", "rev_z").await.unwrap_err();
                assert_eq!(err.code(), ErrorCode::NotFound, "{label}");
            })
            .await;
        }
    }
}
