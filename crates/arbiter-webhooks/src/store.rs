//! Secrets at rest: the tenant's secret (made on first use, rotated with an overlap during which
//! the previous one signs as well) and each registered endpoint's own secret, sealed under the
//! key file ([`SecretCipher`]).

use crate::OutboxError;
use crate::cipher::SecretCipher;
use crate::secret::WebhookSecret;
use arbiter_core::EndpointId;
use arbiter_db::entity::{webhook_endpoint, webhook_secret};
use arbiter_db::sea_orm::{ConnectionTrait, DbErr};
use arbiter_db::webhooks as repo;
use chrono::{DateTime, SubsecRound, Utc};
use std::time::Duration;

/// The tenant's current secret and, during a rotation's overlap, the previous one; the first
/// secret is made on first use.
pub async fn tenant_secrets(
    conn: &impl ConnectionTrait,
    cipher: &SecretCipher,
    tenant: &str,
    now: DateTime<Utc>,
) -> Result<(WebhookSecret, Option<WebhookSecret>), OutboxError> {
    let row = match repo::get_secret(conn, tenant).await? {
        Some(row) => row,
        None => {
            let secret = WebhookSecret::generate()?;
            repo::insert_secret_if_absent(
                conn,
                webhook_secret::Model {
                    tenant: tenant.to_owned(),
                    secret: cipher.seal(tenant, secret.expose())?,
                    previous: None,
                    previous_until_ms: None,
                    rotated_at: now,
                },
            )
            .await?;
            repo::get_secret(conn, tenant)
                .await?
                .ok_or_else(|| DbErr::RecordNotFound(format!("webhook secret of {tenant}")))?
        }
    };
    let current: WebhookSecret = cipher.open(tenant, &row.secret)?.parse()?;
    let previous = match (&row.previous, row.previous_until_ms) {
        (Some(sealed), Some(until)) if until > now.timestamp_millis() => {
            Some(cipher.open(tenant, sealed)?.parse()?)
        }
        _ => None,
    };
    Ok((current, previous))
}

/// Rotates the tenant's secret: a new one signs from now on, and the old one signs as well until
/// `overlap` has passed. Returns the new secret and the overlap's end.
pub async fn rotate_tenant_secret(
    conn: &impl ConnectionTrait,
    cipher: &SecretCipher,
    tenant: &str,
    now: DateTime<Utc>,
    overlap: Duration,
) -> Result<(WebhookSecret, DateTime<Utc>), OutboxError> {
    let (old, _) = tenant_secrets(conn, cipher, tenant, now).await?;
    let new = WebhookSecret::generate()?;
    let until = now + chrono::Duration::from_std(overlap).unwrap_or(chrono::Duration::zero());
    repo::replace_secret(
        conn,
        webhook_secret::Model {
            tenant: tenant.to_owned(),
            secret: cipher.seal(tenant, new.expose())?,
            previous: Some(cipher.seal(tenant, old.expose())?),
            previous_until_ms: Some(until.timestamp_millis()),
            rotated_at: now,
        },
    )
    .await?;
    Ok((new, until))
}

/// Registers an endpoint with its own new secret, returned once.
pub async fn create_endpoint(
    conn: &impl ConnectionTrait,
    cipher: &SecretCipher,
    tenant: &str,
    url: &str,
    events: &[String],
    description: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(webhook_endpoint::Model, WebhookSecret), OutboxError> {
    let id = EndpointId::new().to_string();
    let secret = WebhookSecret::generate()?;
    let row = webhook_endpoint::Model {
        endpoint_id: id.clone(),
        tenant: tenant.to_owned(),
        url: url.to_owned(),
        events: serde_json::to_string(events).unwrap_or_else(|_| "[]".to_owned()),
        description: description.map(str::to_owned),
        secret: cipher.seal(&id, secret.expose())?,
        disabled_at: None,
        disabled_reason: None,
        created_at: now.trunc_subsecs(3),
    };
    repo::insert_endpoint(conn, row.clone()).await?;
    Ok((row, secret))
}
