//! Human-review queue items: queued with the decision that asked for them, claimed by one
//! reviewer, resolved with a label that stays with the decision.

use crate::entity::review_item;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};

/// Waiting for a reviewer.
pub const OPEN: &str = "open";
/// Held by one reviewer.
pub const CLAIMED: &str = "claimed";
/// Labelled and closed.
pub const RESOLVED: &str = "resolved";

/// Queues items (inside the caller's transaction).
pub async fn insert(
    conn: &impl ConnectionTrait,
    rows: impl IntoIterator<Item = review_item::Model>,
) -> Result<(), DbErr> {
    crate::insert_rows(conn, rows.into_iter().map(review_item::ActiveModel::from)).await
}

/// The inserts of review items, for the caller to run.
pub fn insert_statements(
    backend: DbBackend,
    rows: impl IntoIterator<Item = review_item::Model>,
) -> Vec<Statement> {
    crate::insert_statements(
        backend,
        rows.into_iter().map(review_item::ActiveModel::from),
    )
}

/// Which items to list.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter<'a> {
    /// Only this queue.
    pub queue: Option<&'a str>,
    /// Only this status.
    pub status: Option<&'a str>,
    /// Only items after this one (the paging cursor).
    pub after: Option<&'a str>,
    /// Only this request's items.
    pub request_id: Option<&'a str>,
    /// Only this case's items (a claim id, a KYC session id).
    pub case_id: Option<&'a str>,
}

/// A tenant's items, oldest first (item ids sort by creation time).
pub async fn list(
    conn: &impl ConnectionTrait,
    tenant: &str,
    filter: &ItemFilter<'_>,
    limit: u64,
) -> Result<Vec<review_item::Model>, DbErr> {
    let mut query = review_item::Entity::find().filter(review_item::Column::Tenant.eq(tenant));
    if let Some(queue) = filter.queue {
        query = query.filter(review_item::Column::Queue.eq(queue));
    }
    if let Some(status) = filter.status {
        query = query.filter(review_item::Column::Status.eq(status));
    }
    if let Some(after) = filter.after {
        query = query.filter(review_item::Column::ItemId.gt(after));
    }
    if let Some(request_id) = filter.request_id {
        query = query.filter(review_item::Column::RequestId.eq(request_id));
    }
    if let Some(case_id) = filter.case_id {
        query = query.filter(review_item::Column::CaseId.eq(case_id));
    }
    query
        .order_by_asc(review_item::Column::ItemId)
        .limit(limit)
        .all(conn)
        .await
}

/// One of a tenant's items.
pub async fn get(
    conn: &impl ConnectionTrait,
    tenant: &str,
    item_id: &str,
) -> Result<Option<review_item::Model>, DbErr> {
    review_item::Entity::find_by_id(item_id.to_owned())
        .filter(review_item::Column::Tenant.eq(tenant))
        .one(conn)
        .await
}

/// Who acts on an item: a reviewer id, through an API key (`None`: the operator's command line).
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The reviewer named.
    pub reviewer: &'a str,
    /// The id of the API key used.
    pub key: Option<&'a str>,
}

/// The items `actor` may act on: open ones, and the ones it holds: claimed by the same reviewer
/// through the same key.
fn actionable(tenant: &str, item_id: &str, actor: Actor<'_>) -> Condition {
    let same_key = match actor.key {
        Some(key) => review_item::Column::ClaimedKey.eq(key),
        None => review_item::Column::ClaimedKey.is_null(),
    };
    Condition::all()
        .add(review_item::Column::ItemId.eq(item_id))
        .add(review_item::Column::Tenant.eq(tenant))
        .add(
            Condition::any()
                .add(review_item::Column::Status.eq(OPEN))
                .add(
                    Condition::all()
                        .add(review_item::Column::Status.eq(CLAIMED))
                        .add(review_item::Column::ClaimedBy.eq(actor.reviewer))
                        .add(same_key),
                ),
        )
}

/// Claims an open item (or re-claims one the actor holds). `false` when the item is not open,
/// or is held by another reviewer or through another key: nothing is written.
pub async fn claim(
    conn: &impl ConnectionTrait,
    tenant: &str,
    item_id: &str,
    actor: Actor<'_>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = review_item::Entity::update_many()
        .col_expr(review_item::Column::Status, Expr::value(CLAIMED))
        .col_expr(review_item::Column::ClaimedBy, Expr::value(actor.reviewer))
        .col_expr(review_item::Column::ClaimedKey, Expr::value(actor.key))
        .col_expr(review_item::Column::ClaimedAt, Expr::value(now))
        .filter(actionable(tenant, item_id, actor))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// A reviewer's resolution.
#[derive(Debug, Clone)]
pub struct Resolution<'a> {
    /// Who resolves.
    pub actor: Actor<'a>,
    /// The label.
    pub label: &'a str,
    /// The note.
    pub note: Option<&'a str>,
    /// The action settled on.
    pub action: &'a str,
    /// When.
    pub at: DateTime<Utc>,
}

/// Resolves an open item, or one the actor holds. `false` when it is resolved already or held
/// by another reviewer or through another key: nothing is written.
pub async fn resolve(
    conn: &impl ConnectionTrait,
    tenant: &str,
    item_id: &str,
    resolution: &Resolution<'_>,
) -> Result<bool, DbErr> {
    let result = review_item::Entity::update_many()
        .col_expr(review_item::Column::Status, Expr::value(RESOLVED))
        .col_expr(review_item::Column::Label, Expr::value(resolution.label))
        .col_expr(review_item::Column::Note, Expr::value(resolution.note))
        .col_expr(
            review_item::Column::ResolvedAction,
            Expr::value(resolution.action),
        )
        .col_expr(
            review_item::Column::ResolvedBy,
            Expr::value(resolution.actor.reviewer),
        )
        .col_expr(review_item::Column::ResolvedAt, Expr::value(resolution.at))
        .col_expr(
            review_item::Column::ClaimedBy,
            Expr::col(review_item::Column::ClaimedBy).if_null(resolution.actor.reviewer),
        )
        .col_expr(
            review_item::Column::ClaimedKey,
            Expr::value(resolution.actor.key),
        )
        .filter(actionable(tenant, item_id, resolution.actor))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The labels reviewers gave, by request id: one tenant's, or every tenant's.
pub async fn labels(
    conn: &impl ConnectionTrait,
    tenant: Option<&str>,
) -> Result<Vec<(String, String)>, DbErr> {
    let mut query = review_item::Entity::find()
        .select_only()
        .column(review_item::Column::RequestId)
        .column(review_item::Column::Label)
        .filter(review_item::Column::Status.eq(RESOLVED));
    if let Some(tenant) = tenant {
        query = query.filter(review_item::Column::Tenant.eq(tenant));
    }
    let rows: Vec<(String, Option<String>)> = query
        .order_by_asc(review_item::Column::ResolvedAt)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(request_id, label)| Some((request_id, label?)))
        .collect())
}
