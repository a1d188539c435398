//! Storing and reading decisions.

use crate::entity::decision;
use arbiter_core::{Analysis, Decision, Facts, RequestId};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, Statement,
};

/// Everything a decision row records.
#[derive(Debug, Clone)]
pub struct NewDecision<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The request.
    pub request_id: &'a RequestId,
    /// The caller's reference.
    pub reference_id: Option<&'a str>,
    /// The flow.
    pub flow: &'a str,
    /// The analysis the decision is about.
    pub analysis: &'a Analysis,
    /// The facts the policy saw.
    pub facts: &'a Facts,
    /// The policy's decision.
    pub decision: &'a Decision,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, DbErr> {
    serde_json::to_string(value).map_err(|err| DbErr::Custom(format!("cannot serialise: {err}")))
}

/// Inserts decision rows (inside the caller's transaction).
pub async fn insert(conn: &impl ConnectionTrait, new: &[NewDecision<'_>]) -> Result<(), DbErr> {
    let rows: Vec<_> = new.iter().map(row).collect::<Result<_, _>>()?;
    crate::insert_rows(conn, rows).await
}

/// The inserts of decisions, for the caller to run.
pub fn insert_statements(
    backend: DbBackend,
    new: &[NewDecision<'_>],
) -> Result<Vec<Statement>, DbErr> {
    let rows: Vec<_> = new.iter().map(row).collect::<Result<_, _>>()?;
    Ok(crate::insert_statements(backend, rows))
}

fn row(new: &NewDecision<'_>) -> Result<decision::ActiveModel, DbErr> {
    let verdict = &new.analysis.verdict;
    Ok(decision::ActiveModel {
        request_id: Set(new.request_id.to_string()),
        tenant: Set(new.tenant.to_owned()),
        reference_id: Set(new.reference_id.map(str::to_owned)),
        image_sha256: Set(new.analysis.image_info.sha256.clone()),
        flow: Set(new.flow.to_owned()),
        detector: Set(new.analysis.detector.clone()),
        verdict_label: Set(verdict.label.as_str().to_owned()),
        confidence: Set(verdict.confidence),
        risk_level: Set(verdict.risk_level.as_str().to_owned()),
        action: Set(new.decision.action.clone()),
        reason: Set(new.decision.reason.clone()),
        fired: Set(to_json(&new.decision.fired)?),
        description: Set(new.decision.description.clone()),
        policy_id: Set(new.decision.policy.id.clone()),
        policy_version: Set(i32::try_from(new.decision.policy.version).unwrap_or(i32::MAX)),
        policy_sha256: Set(new.decision.policy.sha256.clone()),
        facts: Set(to_json(new.facts)?),
        analysis: Set(to_json(new.analysis)?),
        created_at: Set(new.created_at),
    })
}

/// One stored decision.
pub async fn get(
    conn: &impl ConnectionTrait,
    tenant: &str,
    request_id: &str,
) -> Result<Option<decision::Model>, DbErr> {
    decision::Entity::find_by_id(request_id.to_owned())
        .filter(decision::Column::Tenant.eq(tenant))
        .one(conn)
        .await
}

/// A tenant's decisions about these requests, by request id.
pub async fn get_many(
    conn: &impl ConnectionTrait,
    tenant: &str,
    request_ids: impl IntoIterator<Item = String>,
) -> Result<std::collections::HashMap<String, decision::Model>, DbErr> {
    Ok(decision::Entity::find()
        .filter(decision::Column::Tenant.eq(tenant))
        .filter(decision::Column::RequestId.is_in(request_ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|row| (row.request_id.clone(), row))
        .collect())
}

/// A tenant's decisions, oldest first.
pub async fn list(
    conn: &impl ConnectionTrait,
    tenant: &str,
) -> Result<Vec<decision::Model>, DbErr> {
    decision::Entity::find()
        .filter(decision::Column::Tenant.eq(tenant))
        .order_by_asc(decision::Column::CreatedAt)
        .order_by_asc(decision::Column::RequestId)
        .all(conn)
        .await
}

/// Decisions recorded from `since` (inclusive) until `until` (exclusive), oldest first: one
/// tenant's, or every tenant's when `tenant` is `None`. For replaying stored facts (backtests).
pub async fn list_between(
    conn: &impl ConnectionTrait,
    tenant: Option<&str>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<decision::Model>, DbErr> {
    let mut query = decision::Entity::find()
        .filter(decision::Column::CreatedAt.gte(since))
        .filter(decision::Column::CreatedAt.lt(until));
    if let Some(tenant) = tenant {
        query = query.filter(decision::Column::Tenant.eq(tenant));
    }
    query
        .order_by_asc(decision::Column::CreatedAt)
        .order_by_asc(decision::Column::RequestId)
        .all(conn)
        .await
}
