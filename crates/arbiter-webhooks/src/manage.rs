//! What a tenant asks of its webhooks through the API: an endpoint registered (its event names
//! and URL checked, the tenant's limit kept), its deliveries
//! listed and read with every attempt, and a finished delivery sent again.

use crate::secret::WebhookSecret;
use crate::{OutboxError, Webhooks};
use arbiter_db::Db;
use arbiter_db::entity::{webhook_attempt, webhook_delivery, webhook_endpoint};
use arbiter_db::sea_orm::{ConnectionTrait, DbErr};
use arbiter_db::webhooks as repo;
use chrono::{DateTime, Utc};

/// Deliveries listed when no limit is given.
pub const DEFAULT_LIST: u64 = 100;
/// The most deliveries listed at once.
pub const MAX_LIST: u64 = 1000;

/// Why a tenant's request about its webhooks was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// A value for the caller to mend.
    #[error("{0}")]
    Invalid(String),
    /// No such endpoint or delivery for this tenant.
    #[error("{0}")]
    NotFound(String),
    /// The tenant has as many endpoints as it may have.
    #[error("{0}")]
    Full(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
    /// A secret or the outbox failed.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// Checks event names: 1 to 64 of `a-z 0-9 . _`.
pub fn check_events(events: &[String]) -> Result<(), ManageError> {
    for event in events {
        if event.is_empty()
            || event.len() > 64
            || !event
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_')
        {
            return Err(ManageError::Invalid(format!(
                "events: {event:?} is not an event name such as {}",
                crate::EVENTS.join(", ")
            )));
        }
    }
    Ok(())
}

/// An endpoint to register, as the tenant gives it.
#[derive(Debug, Clone, Copy)]
pub struct NewEndpoint<'a> {
    /// Where deliveries go.
    pub url: &'a str,
    /// Events it receives; empty: every event.
    pub events: &'a [String],
    /// A label for people.
    pub description: Option<&'a str>,
}

/// Registers an endpoint of `tenant` with its own new secret, returned once: its events checked,
/// its URL a destination `webhooks` may reach, and the tenant below `max_endpoints`
/// (`webhooks.max_endpoints_per_tenant`).
pub async fn register_endpoint(
    db: &Db,
    webhooks: &Webhooks,
    max_endpoints: u32,
    tenant: &str,
    new: NewEndpoint<'_>,
    now: DateTime<Utc>,
) -> Result<(webhook_endpoint::Model, WebhookSecret), ManageError> {
    check_events(new.events)?;
    webhooks
        .check_destination(new.url)
        .await
        .map_err(|why| ManageError::Invalid(format!("url: {why}")))?;
    let cipher = webhooks.cipher().await.map_err(OutboxError::from)?;
    let txn = db.begin_write().await?;
    let registered = repo::list_endpoints(&txn, tenant).await?.len();
    if registered >= usize::try_from(max_endpoints).unwrap_or(usize::MAX) {
        return Err(ManageError::Full(format!(
            "this tenant has {registered} webhook endpoints, the most it may have \
             (webhooks.max_endpoints_per_tenant: {max_endpoints}); delete one first"
        )));
    }
    let created = crate::create_endpoint(
        &txn,
        cipher,
        tenant,
        new.url,
        new.events,
        new.description,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

/// A `?status=` of the delivery list: `pending`, `succeeded` or `failed`.
pub fn delivery_status(status: Option<&str>) -> Result<Option<&str>, ManageError> {
    match status {
        None => Ok(None),
        Some(s @ (repo::PENDING | repo::SUCCEEDED | repo::FAILED)) => Ok(Some(s)),
        Some(other) => Err(ManageError::Invalid(format!(
            "status {other:?} is not pending, succeeded or failed"
        ))),
    }
}

/// The tenant's deliveries, newest first: those with `status` if given, at most `limit`
/// ([`DEFAULT_LIST`] when not given, brought within 1 to [`MAX_LIST`]).
pub async fn list_deliveries(
    conn: &impl ConnectionTrait,
    tenant: &str,
    status: Option<&str>,
    limit: Option<u64>,
) -> Result<Vec<webhook_delivery::Model>, ManageError> {
    let status = delivery_status(status)?;
    let limit = limit.unwrap_or(DEFAULT_LIST).clamp(1, MAX_LIST);
    Ok(repo::list_deliveries(conn, tenant, status, limit).await?)
}

/// A delivery of the tenant's with every attempt, oldest first.
pub async fn delivery_with_attempts(
    conn: &impl ConnectionTrait,
    tenant: &str,
    delivery_id: &str,
) -> Result<(webhook_delivery::Model, Vec<webhook_attempt::Model>), ManageError> {
    let row = repo::get_delivery(conn, tenant, delivery_id)
        .await?
        .ok_or_else(|| no_delivery(delivery_id))?;
    let attempts = repo::attempts(conn, delivery_id).await?;
    Ok((row, attempts))
}

/// Queues a finished delivery again (same id and body, a fresh retry schedule); refused while
/// it is still pending.
pub async fn replay(
    conn: &impl ConnectionTrait,
    tenant: &str,
    delivery_id: &str,
    now_ms: i64,
) -> Result<(), ManageError> {
    if repo::replay(conn, tenant, delivery_id, now_ms).await? {
        return Ok(());
    }
    match repo::get_delivery(conn, tenant, delivery_id).await? {
        None => Err(no_delivery(delivery_id)),
        Some(_) => Err(ManageError::Invalid(format!(
            "delivery {delivery_id} is still pending; replay it once it has succeeded or failed"
        ))),
    }
}

fn no_delivery(delivery_id: &str) -> ManageError {
    ManageError::NotFound(format!("no delivery {delivery_id} for this tenant"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_short_lowercase_words() {
        let ok = ["analysis.complete", "kyc_review.flagged", "a"].map(str::to_owned);
        assert!(check_events(&ok).is_ok());
        assert!(check_events(&[]).is_ok());
        for bad in ["", "Analysis.Complete", "a-b", &"x".repeat(65)] {
            let err = check_events(&[bad.to_owned()]).unwrap_err();
            assert!(
                matches!(&err, ManageError::Invalid(message) if message.starts_with("events: ")),
                "{bad}: {err}"
            );
        }
        assert!(check_events(&["x".repeat(64)]).is_ok());
    }

    #[test]
    fn delivery_statuses() {
        assert_eq!(delivery_status(None).unwrap(), None);
        assert_eq!(delivery_status(Some("failed")).unwrap(), Some("failed"));
        assert_eq!(
            delivery_status(Some("done")).unwrap_err().to_string(),
            "status \"done\" is not pending, succeeded or failed"
        );
    }
}
