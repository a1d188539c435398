//! Cases (claims, KYC sessions) and the images attached to them.
//!
//! Everything that changes a case runs in one write transaction that first locks its row
//! ([`open`] or [`lock`]): on PostgreSQL the upsert or update takes a row lock, so two images of
//! one claim arriving on two replicas are numbered one after the other; SQLite has one writer.

use crate::entity::{case, case_image};
use crate::jobs::claim_statement;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

/// Opens a case (creating it with no facts and no images) and locks its row until the end of
/// the caller's transaction.
pub async fn open(
    conn: &impl ConnectionTrait,
    tenant: &str,
    flow: &str,
    case_id: &str,
    now: DateTime<Utc>,
) -> Result<case::Model, DbErr> {
    let sql = "INSERT INTO cases (tenant, flow, case_id, facts, images, complete, created_at, updated_at) \
         VALUES ($1, $2, $3, '{}', 0, $4, $5, $5) \
         ON CONFLICT (tenant, flow, case_id) DO UPDATE SET updated_at = cases.updated_at RETURNING *";
    let statement = claim_statement(
        conn.get_database_backend(),
        sql,
        vec![
            tenant.into(),
            flow.into(),
            case_id.into(),
            false.into(),
            now.into(),
        ],
    );
    case::Entity::find()
        .from_raw_sql(statement)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("case {flow}/{case_id}")))
}

/// Locks an existing case's row until the end of the caller's transaction; `None` when there
/// is no such case.
pub async fn lock(
    conn: &impl ConnectionTrait,
    tenant: &str,
    flow: &str,
    case_id: &str,
) -> Result<Option<case::Model>, DbErr> {
    let sql = "UPDATE cases SET updated_at = updated_at \
         WHERE tenant = $1 AND flow = $2 AND case_id = $3 RETURNING *";
    let statement = claim_statement(
        conn.get_database_backend(),
        sql,
        vec![tenant.into(), flow.into(), case_id.into()],
    );
    case::Entity::find().from_raw_sql(statement).one(conn).await
}

/// A case, unlocked.
pub async fn get(
    conn: &impl ConnectionTrait,
    tenant: &str,
    flow: &str,
    case_id: &str,
) -> Result<Option<case::Model>, DbErr> {
    case::Entity::find_by_id((tenant.to_owned(), flow.to_owned(), case_id.to_owned()))
        .one(conn)
        .await
}

/// Writes a case's facts, image count and decision.
pub async fn save(conn: &impl ConnectionTrait, row: case::Model) -> Result<(), DbErr> {
    case::Entity::update(case::ActiveModel {
        tenant: Set(row.tenant),
        flow: Set(row.flow),
        case_id: Set(row.case_id),
        facts: Set(row.facts),
        images: Set(row.images),
        action: Set(row.action),
        decision: Set(row.decision),
        complete: Set(row.complete),
        created_at: Set(row.created_at),
        updated_at: Set(row.updated_at),
    })
    .exec(conn)
    .await?;
    Ok(())
}

/// Attaches an image to a case.
pub async fn add_image(conn: &impl ConnectionTrait, row: case_image::Model) -> Result<(), DbErr> {
    case_image::Entity::insert(case_image::ActiveModel::from(row))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// A case's images, in arrival order.
pub async fn images(
    conn: &impl ConnectionTrait,
    tenant: &str,
    flow: &str,
    case_id: &str,
) -> Result<Vec<case_image::Model>, DbErr> {
    case_image::Entity::find()
        .filter(case_image::Column::Tenant.eq(tenant))
        .filter(case_image::Column::Flow.eq(flow))
        .filter(case_image::Column::CaseId.eq(case_id))
        .order_by_asc(case_image::Column::N)
        .all(conn)
        .await
}

/// Which cases of a flow to list.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter<'a> {
    /// A case id, or the request id, reference id or SHA-256 of one of its images.
    pub text: Option<&'a str>,
    /// Only cases whose decision has this action.
    pub action: Option<&'a str>,
    /// Only cases opened at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only cases opened before this time.
    pub before: Option<DateTime<Utc>>,
    /// Only cases after this one, newest first (the paging cursor: a case id of the last page).
    pub after: Option<&'a str>,
}

/// One page of a tenant's cases of `flow`, newest first (by opening time, then case id), and
/// whether there are more. Paging is by keyset: the cursor case's opening time and id, so a
/// deep page costs what the first does.
pub async fn page(
    conn: &impl ConnectionTrait,
    tenant: &str,
    flow: &str,
    filter: &CaseFilter<'_>,
    limit: u64,
) -> Result<(Vec<case::Model>, bool), DbErr> {
    let mut query = case::Entity::find()
        .filter(case::Column::Tenant.eq(tenant))
        .filter(case::Column::Flow.eq(flow));
    if let Some(text) = filter.text {
        let mut cases_of_images = Query::select();
        cases_of_images
            .column(case_image::Column::CaseId)
            .from(case_image::Entity)
            .and_where(case_image::Column::Tenant.eq(tenant))
            .and_where(case_image::Column::Flow.eq(flow))
            .cond_where(
                Condition::any()
                    .add(case_image::Column::RequestId.eq(text))
                    .add(
                        case_image::Column::RequestId
                            .in_subquery(crate::requests::named_by(tenant, text)),
                    ),
            );
        query = query.filter(
            Condition::any()
                .add(case::Column::CaseId.eq(text))
                .add(case::Column::CaseId.in_subquery(cases_of_images.to_owned())),
        );
    }
    if let Some(action) = filter.action {
        query = query.filter(case::Column::Action.eq(action));
    }
    if let Some(since) = filter.since {
        query = query.filter(case::Column::CreatedAt.gte(since));
    }
    if let Some(before) = filter.before {
        query = query.filter(case::Column::CreatedAt.lt(before));
    }
    if let Some(after) = filter.after {
        // An unknown cursor (a case of another tenant, say) ends the list.
        let Some(last) = get(conn, tenant, flow, after).await? else {
            return Ok((Vec::new(), false));
        };
        // `created_at <= t` bounds the index range; the rest only breaks ties at `t`.
        query = query
            .filter(case::Column::CreatedAt.lte(last.created_at))
            .filter(
                Condition::any()
                    .add(case::Column::CreatedAt.lt(last.created_at))
                    .add(case::Column::CaseId.lt(last.case_id)),
            );
    }
    let mut rows = query
        .order_by_desc(case::Column::CreatedAt)
        .order_by_desc(case::Column::CaseId)
        .limit(limit + 1)
        .all(conn)
        .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok((rows, more))
}
