//! API keys: `arb_<ULID>_<secret>`. Only the SHA-256 of the whole key is stored; the ULID part
//! names the row (`key_<ULID>`), so a lookup is by primary key and the hash is compared in
//! constant time.

use arbiter_audit::{AuditError, Event};
use arbiter_core::KeyId;
use arbiter_db::api_keys::Lookups;
use arbiter_db::entity::api_key;
use arbiter_db::sea_orm::{ConnectionTrait, DbErr};
use base64::Engine;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

const KEY_PREFIX: &str = "arb_";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Scope {
    /// `POST /v1/analyze` and flow intake.
    #[serde(rename = "analyze")]
    Analyze,
    /// `POST /v1/analyze/batch`, `GET /v1/batches/...`.
    #[serde(rename = "batch")]
    Batch,
    /// `GET /v1/requests/...`.
    #[serde(rename = "requests:read")]
    RequestsRead,
    /// The audit trail.
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Reading and simulating policies.
    #[serde(rename = "policies:read")]
    PoliciesRead,
    /// Webhook endpoints and deliveries (`/v1/webhooks/...`).
    #[serde(rename = "webhooks")]
    Webhooks,
    /// Human-review queues: list, claim and resolve items (`/v1/review/...`).
    #[serde(rename = "review")]
    Review,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 7] = [
        Scope::Analyze,
        Scope::Batch,
        Scope::RequestsRead,
        Scope::AuditRead,
        Scope::PoliciesRead,
        Scope::Webhooks,
        Scope::Review,
    ];

    /// The scopes of a key created without `--scope`.
    pub const DEFAULT: [Scope; 3] = [Scope::Analyze, Scope::Batch, Scope::RequestsRead];

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Analyze => "analyze",
            Scope::Batch => "batch",
            Scope::RequestsRead => "requests:read",
            Scope::AuditRead => "audit:read",
            Scope::PoliciesRead => "policies:read",
            Scope::Webhooks => "webhooks",
            Scope::Review => "review",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown scope {s:?} (known: {})", known.join(", "))
            })
    }
}

/// A key's secret text. Prints `[REDACTED]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// The key as the caller sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// A key as stored, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRecord {
    /// `key_...`.
    pub id: KeyId,
    /// The tenant it acts for.
    pub tenant: String,
    /// Its label.
    pub name: String,
    /// Its rate-limit plan.
    pub plan: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Networks it may be used from; empty allows any.
    pub allow_ips: Vec<IpNet>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The flow that decides uploads made with it through the RD-compatible endpoints.
    pub flow: Option<String>,
}

/// Why a stored key row could not be read.
fn corrupt(id: &str, what: &str, err: impl fmt::Display) -> DbErr {
    DbErr::Custom(format!("api key {id}: bad {what}: {err}"))
}

impl TryFrom<api_key::Model> for KeyRecord {
    type Error = DbErr;

    fn try_from(row: api_key::Model) -> Result<Self, DbErr> {
        Ok(Self {
            id: row.id.parse().map_err(|e| corrupt(&row.id, "id", e))?,
            scopes: serde_json::from_str(&row.scopes).map_err(|e| corrupt(&row.id, "scopes", e))?,
            allow_ips: serde_json::from_str(&row.allow_ips)
                .map_err(|e| corrupt(&row.id, "allow_ips", e))?,
            tenant: row.tenant,
            name: row.name,
            plan: row.plan,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
            flow: row.flow,
        })
    }
}

impl KeyRecord {
    /// Whether a client at `ip` may use this key.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allow_ips.is_empty() || self.allow_ips.iter().any(|net| net.contains(&ip))
    }
}

/// What a new key is for.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The tenant.
    pub tenant: String,
    /// A label.
    pub name: String,
    /// The plan.
    pub plan: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Networks it may be used from.
    pub allow_ips: Vec<IpNet>,
    /// The flow that decides uploads made with it through the RD-compatible endpoints.
    pub flow: Option<String>,
}

/// Checks a tenant name for a new key: 1 to 64 letters, digits, `-`, `_` or `.`, and not the
/// reserved `system` (in any case), whose audit chain records Arbiter's own events (policy
/// activations) and must hold no tenant's entries.
pub fn check_tenant(tenant: &str) -> Result<(), String> {
    if tenant.is_empty()
        || tenant.len() > 64
        || !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "tenant {tenant:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
        ));
    }
    if tenant.eq_ignore_ascii_case(crate::policies::SYSTEM_TENANT) {
        return Err(format!(
            "tenant {tenant:?} is reserved for Arbiter's own audit chain; choose another name"
        ));
    }
    Ok(())
}

/// A list as a JSON string (lists of scopes and networks always serialise).
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_owned())
}

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Compares two equal-length strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Creates a key and its `key.created` audit entry (inside the caller's transaction); the secret
/// is returned once and never stored.
pub async fn create(
    conn: &impl ConnectionTrait,
    new: NewKey,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(KeyRecord, SecretKey), DbErr> {
    check_tenant(&new.tenant).map_err(DbErr::Custom)?;
    let id = KeyId::new();
    let mut random = [0u8; 32];
    getrandom::fill(&mut random)
        .map_err(|err| DbErr::Custom(format!("no randomness for a new key: {err}")))?;
    let ulid = &id.as_str()[KeyId::PREFIX.len() + 1..];
    let secret = SecretKey(format!(
        "{KEY_PREFIX}{ulid}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    ));
    let row = api_key::Model {
        id: id.to_string(),
        tenant: new.tenant,
        name: new.name,
        plan: new.plan,
        scopes: to_json(&new.scopes),
        allow_ips: to_json(&new.allow_ips),
        secret_hash: hash(secret.expose()),
        created_at: now,
        revoked_at: None,
        flow: new.flow,
    };
    arbiter_db::api_keys::insert(conn, row.clone()).await?;
    let event = Event::KeyCreated {
        key_id: row.id.clone(),
        actor: actor.to_owned(),
    };
    append(conn, &row.tenant, now, event).await?;
    Ok((KeyRecord::try_from(row)?, secret))
}

/// The live key a presented secret belongs to; `None` for a malformed, unknown, wrong or
/// revoked key.
pub async fn authenticate(lookups: &Lookups, presented: &str) -> Result<Option<KeyRecord>, DbErr> {
    let Some((ulid, _)) = presented
        .strip_prefix(KEY_PREFIX)
        .and_then(|rest| rest.split_once('_'))
    else {
        return Ok(None);
    };
    let Ok(id) = format!("{}_{ulid}", KeyId::PREFIX).parse::<KeyId>() else {
        return Ok(None);
    };
    let Some(row) = lookups.get(id.to_string()).await? else {
        return Ok(None);
    };
    if row.revoked_at.is_some()
        || !constant_time_eq(hash(presented).as_bytes(), row.secret_hash.as_bytes())
    {
        return Ok(None);
    }
    KeyRecord::try_from(row).map(Some)
}

/// A key by id, revoked or not.
pub async fn get(conn: &impl ConnectionTrait, id: &str) -> Result<Option<KeyRecord>, DbErr> {
    arbiter_db::api_keys::get(conn, id)
        .await?
        .map(KeyRecord::try_from)
        .transpose()
}

/// Every key, without secrets.
pub async fn list(
    conn: &impl ConnectionTrait,
    tenant: Option<&str>,
) -> Result<Vec<KeyRecord>, DbErr> {
    arbiter_db::api_keys::list(conn, tenant)
        .await?
        .into_iter()
        .map(KeyRecord::try_from)
        .collect()
}

/// Revokes a key and records `key.revoked` (inside the caller's transaction); `None` when there
/// is no such live key.
pub async fn revoke(
    conn: &impl ConnectionTrait,
    id: &KeyId,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<KeyRecord>, DbErr> {
    if !arbiter_db::api_keys::revoke(conn, id.as_str(), now).await? {
        return Ok(None);
    }
    let Some(row) = arbiter_db::api_keys::get(conn, id.as_str()).await? else {
        return Ok(None);
    };
    let event = Event::KeyRevoked {
        key_id: row.id.clone(),
        actor: actor.to_owned(),
    };
    append(conn, &row.tenant, now, event).await?;
    KeyRecord::try_from(row).map(Some)
}

/// Appends an audit entry, as a database error for the caller's transaction to roll back.
async fn append(
    conn: &impl ConnectionTrait,
    tenant: &str,
    now: DateTime<Utc>,
    event: Event,
) -> Result<(), DbErr> {
    match arbiter_audit::append(conn, tenant, now, event).await {
        Ok(_) => Ok(()),
        Err(AuditError::Db(err)) => Err(err),
        Err(err) => Err(DbErr::Custom(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_db::{Db, DbTarget};

    #[tokio::test]
    async fn a_created_key_authenticates_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        let new = NewKey {
            tenant: "acme".into(),
            name: "ci".into(),
            plan: "starter".into(),
            scopes: Scope::DEFAULT.to_vec(),
            allow_ips: vec![],
            flow: None,
        };
        let (record, secret) = create(db.conn(), new, "test", Utc::now()).await.unwrap();
        let lookups = Lookups::start(db.conn().clone(), arbiter_db::api_keys::KeyLookup);
        assert!(secret.expose().starts_with("arb_"));
        assert_eq!(format!("{secret:?}"), "[REDACTED]");
        let found = authenticate(&lookups, secret.expose())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, record.id);
        // The stored row holds a hash, not the secret.
        let row = arbiter_db::api_keys::get(db.conn(), record.id.as_str())
            .await
            .unwrap()
            .unwrap();
        assert!(!row.secret_hash.contains(&secret.expose()[30..]));

        let mut wrong = secret.expose().to_owned();
        wrong.pop();
        wrong.push('x');
        assert!(authenticate(&lookups, &wrong).await.unwrap().is_none());
        assert!(
            authenticate(&lookups, "Bearer nonsense")
                .await
                .unwrap()
                .is_none()
        );

        assert!(
            revoke(db.conn(), &record.id, "test", Utc::now())
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            authenticate(&lookups, secret.expose())
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            revoke(db.conn(), &record.id, "test", Utc::now())
                .await
                .unwrap()
                .is_none()
        );
        // Creation and revocation are audit events of the key's tenant.
        let entries = arbiter_audit::entries(db.conn(), &Default::default())
            .await
            .unwrap();
        let events: Vec<_> = entries
            .iter()
            .map(|e| (e.entry.tenant.as_str(), e.entry.event.name()))
            .collect();
        assert_eq!(events, [("acme", "key.created"), ("acme", "key.revoked")]);
    }

    #[tokio::test]
    async fn the_system_tenant_is_reserved() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        for tenant in ["system", "SYSTEM", "System", "", "a b", &"t".repeat(65)] {
            assert!(check_tenant(tenant).is_err(), "{tenant:?}");
            let new = NewKey {
                tenant: tenant.to_owned(),
                name: "n".into(),
                plan: "starter".into(),
                scopes: Scope::DEFAULT.to_vec(),
                allow_ips: vec![],
                flow: None,
            };
            assert!(
                create(db.conn(), new, "test", Utc::now()).await.is_err(),
                "{tenant:?}"
            );
        }
        assert!(check_tenant("systems").is_ok());
        assert!(check_tenant("acme-eu.1").is_ok());
        let entries = arbiter_audit::entries(db.conn(), &Default::default())
            .await
            .unwrap();
        assert!(entries.is_empty(), "no key, no entry");
    }

    #[test]
    fn ip_ranges_and_scopes() {
        let record = KeyRecord {
            id: KeyId::new(),
            tenant: "acme".into(),
            name: "n".into(),
            plan: "starter".into(),
            scopes: vec![Scope::Analyze],
            allow_ips: vec!["10.1.0.0/16".parse().unwrap()],
            created_at: Utc::now(),
            revoked_at: None,
            flow: None,
        };
        assert!(record.allows_ip("10.1.2.3".parse().unwrap()));
        assert!(record.allows_ip("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!record.allows_ip("10.2.0.1".parse().unwrap()));
        assert_eq!("audit:read".parse::<Scope>(), Ok(Scope::AuditRead));
        assert!(
            "admin"
                .parse::<Scope>()
                .unwrap_err()
                .contains("known: analyze")
        );
    }
}
