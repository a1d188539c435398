//! The webhook outbox: events are written as delivery rows in the same transaction as what they
//! announce (persist before acting), and delivery loops claim due rows under a lease, sign the
//! stored body bytes, send them, store the attempt, and schedule the retry, abandon (with a
//! `webhook.abandoned` audit entry) or disable the endpoint (410).

use crate::config::{Config, WebhooksConfig};
use crate::fetch::{AddressGuard, check_all};
use crate::pipeline::Record;
use crate::state::AppState;
use arbiter_audit::Event;
use arbiter_core::{EndpointId, MessageId};
use arbiter_db::entity::{webhook_attempt, webhook_delivery, webhook_endpoint, webhook_secret};
use arbiter_db::sea_orm::{ActiveValue::Set, ConnectionTrait, DbBackend, DbErr, Statement};
use arbiter_db::webhooks as repo;
use arbiter_webhooks::{
    AttemptOutcome, AttemptResult, CipherError, NextState, RetryPolicy, SecretCipher, SecretError,
    Sender, WebhookSecret, parse_retry_after, retry, sign,
};
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, OnceCell};
use tokio_util::sync::CancellationToken;

/// The events a registered endpoint can ask for (a flow's action events come on top).
pub const EVENTS: [&str; 4] = [
    "analysis.complete",
    "analysis.failed",
    "batch.complete",
    "review.resolved",
];

/// Why a webhook secret or delivery could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
    /// A stored secret could not be opened, or the key file used.
    #[error(transparent)]
    Cipher(#[from] CipherError),
    /// A stored secret is malformed, or no new one could be made.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The HTTP client could not be built.
    #[error("{0}")]
    Client(String),
    /// The audit entry could not be appended.
    #[error(transparent)]
    Audit(#[from] arbiter_audit::AuditError),
}

/// The webhook services of a process: the secret cipher, the HTTP sender, the retry rules, and
/// the bell that wakes delivery loops when rows are committed. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    config: WebhooksConfig,
    key_file: PathBuf,
    guard: AddressGuard,
    policy: RetryPolicy,
    cipher: Arc<OnceCell<SecretCipher>>,
    sender: Arc<OnceCell<Sender>>,
    /// Rung when deliveries are committed.
    pub wake: Arc<Notify>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl Webhooks {
    /// The services for a configuration; the key file and client are opened on first use.
    pub fn new(config: &Config) -> Self {
        Self {
            config: config.webhooks.clone(),
            key_file: config.webhooks.key_file(&config.data_dir),
            guard: config.outbound.guard(),
            policy: config.webhooks.retry_policy(),
            cipher: Arc::default(),
            sender: Arc::default(),
            wake: Arc::default(),
        }
    }

    /// Attempts one delivery loop makes at once (`webhooks.concurrency`, at least 1).
    fn concurrency(&self) -> usize {
        self.config.concurrency()
    }

    /// The retry rules.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The cipher of stored secrets (the key file is created 0600 on first use).
    pub async fn cipher(&self) -> Result<&SecretCipher, CipherError> {
        self.cipher
            .get_or_try_init(|| async { SecretCipher::load_or_create(&self.key_file) })
            .await
    }

    /// The HTTP sender.
    pub async fn sender(&self) -> Result<&Sender, OutboxError> {
        self.sender
            .get_or_try_init(|| async {
                let guard = self.guard.clone();
                Sender::new(self.config.sender_config(), Arc::new(OutboundRules(guard)))
                    .map_err(OutboxError::Client)
            })
            .await
    }

    /// Whether `url` may receive webhooks: http(s), and every address it resolves to passes the
    /// outbound rules (`outbound.allow_cidrs`, `outbound.allow_ports`), as for `image_url`.
    pub async fn check_destination(&self, url: &str) -> Result<(), String> {
        let parsed = arbiter_webhooks::check_url(url, &OutboundRules(self.guard.clone()))?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let lookup = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let addrs: Vec<_> = tokio::net::lookup_host((lookup.as_str(), port))
            .await
            .map_err(|err| format!("cannot resolve {host}: {err}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{host} has no address"));
        }
        check_all(&self.guard, &host, &addrs).map_err(|err| err.to_string())
    }
}

/// The outbound rules (`outbound.allow_cidrs`, `outbound.allow_ports`) as the webhook sender
/// asks them.
struct OutboundRules(AddressGuard);

impl arbiter_webhooks::AddressCheck for OutboundRules {
    fn check(&self, ip: std::net::IpAddr) -> Result<(), String> {
        self.0.check(ip)
    }

    fn check_port(&self, host: &str, port: u16) -> Result<(), String> {
        self.0.check_port(host, port)
    }
}

fn now_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// One event to announce.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// `analysis.complete`, `batch.complete`, ...
    pub event: &'a str,
    /// The body.
    pub payload: Value,
    /// The request it is about.
    pub request_id: Option<&'a str>,
    /// The caller's reference.
    pub reference_id: Option<&'a str>,
    /// The batch it is about.
    pub batch_id: Option<&'a str>,
}

/// Whether an endpoint's filter takes an event (an empty filter takes every event).
pub fn wants(events: &[String], event: &str) -> bool {
    events.is_empty() || events.iter().any(|e| e == event)
}

/// Writes the deliveries of one event (inside the caller's transaction): to `url` when given
/// (signed with the tenant's secret), and to each live endpoint of the tenant that takes the
/// event. Returns how many rows were written.
pub async fn enqueue(
    conn: &impl ConnectionTrait,
    tenant: &str,
    message: &Message<'_>,
    url: Option<&str>,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let mut deliveries = Deliveries::default();
    deliveries.add(conn, tenant, message, url, now).await?;
    deliveries.write(conn).await
}

/// Deliveries gathered inside a transaction and written together: each tenant's endpoints are
/// read once, and the rows inserted a hundred to a statement.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// Each tenant's live endpoints, with their event filters parsed.
    endpoints: HashMap<String, Vec<(webhook_endpoint::Model, Vec<String>)>>,
    rows: Vec<webhook_delivery::Model>,
}

impl Deliveries {
    /// Adds the deliveries of one event: to `url` when given (signed with the tenant's secret),
    /// and to each live endpoint of the tenant that takes the event.
    pub async fn add(
        &mut self,
        conn: &impl ConnectionTrait,
        tenant: &str,
        message: &Message<'_>,
        url: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        self.load_endpoints(conn, tenant).await?;
        let takers = self
            .takers(tenant, message.event)
            .map(|endpoint| (Some(endpoint.endpoint_id.as_str()), endpoint.url.as_str()));
        let targets: Vec<_> = url.map(|u| (None, u)).into_iter().chain(takers).collect();
        if targets.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_string(&message.payload)
            .map_err(|err| DbErr::Custom(format!("cannot serialise a webhook body: {err}")))?;
        let rows: Vec<_> = targets
            .into_iter()
            .map(|(endpoint_id, url)| webhook_delivery::Model {
                delivery_id: MessageId::new().to_string(),
                tenant: tenant.to_owned(),
                endpoint_id: endpoint_id.map(str::to_owned),
                url: url.to_owned(),
                event: message.event.to_owned(),
                request_id: message.request_id.map(str::to_owned),
                reference_id: message.reference_id.map(str::to_owned),
                batch_id: message.batch_id.map(str::to_owned),
                body: body.clone(),
                status: repo::PENDING.to_owned(),
                attempts: 0,
                next_attempt_ms: now_ms(now),
                lease_owner: None,
                lease_until_ms: 0,
                last_status: None,
                last_error: None,
                created_at: now,
                finished_at: None,
            })
            .collect();
        self.rows.extend(rows);
        Ok(())
    }

    /// Reads the tenant's live endpoints and their filters, once: the deliveries added for the
    /// tenant afterwards go to these.
    pub async fn load_endpoints(
        &mut self,
        conn: &impl ConnectionTrait,
        tenant: &str,
    ) -> Result<(), DbErr> {
        if !self.endpoints.contains_key(tenant) {
            let endpoints = repo::list_endpoints(conn, tenant).await?;
            self.set_endpoints(tenant, endpoints);
        }
        Ok(())
    }

    /// Takes `endpoints` (all of them, as read) as the tenant's.
    pub fn set_endpoints(&mut self, tenant: &str, endpoints: Vec<webhook_endpoint::Model>) {
        let live = endpoints
            .into_iter()
            .filter(|endpoint| endpoint.disabled_at.is_none())
            .map(|endpoint| {
                let events = serde_json::from_str(&endpoint.events).unwrap_or_default();
                (endpoint, events)
            })
            .collect();
        self.endpoints.insert(tenant.to_owned(), live);
    }

    /// The live endpoints of the tenant (read by [`Deliveries::load_endpoints`]) that take
    /// `event`.
    fn takers<'a>(
        &'a self,
        tenant: &str,
        event: &'a str,
    ) -> impl Iterator<Item = &'a webhook_endpoint::Model> {
        let endpoints = self.endpoints.get(tenant).map_or(&[][..], Vec::as_slice);
        endpoints
            .iter()
            .filter(move |(_, events)| wants(events, event))
            .map(|(endpoint, _)| endpoint)
    }

    /// Writes the gathered rows; returns how many.
    pub async fn write(self, conn: &impl ConnectionTrait) -> Result<usize, DbErr> {
        let count = self.rows.len();
        repo::insert_deliveries(conn, self.rows).await?;
        Ok(count)
    }

    /// The inserts of the gathered rows, for the caller to run.
    pub fn statements(self, backend: DbBackend) -> Vec<Statement> {
        repo::delivery_statements(backend, self.rows)
    }
}

impl Deliveries {
    /// Adds the guide's `analysis.complete` body (plus the decision and the flow's own event when a
    /// policy decided), for `url` and the tenant's endpoints.
    pub async fn add_analysis(
        &mut self,
        conn: &impl ConnectionTrait,
        record: &Record<'_>,
        batch_id: Option<&str>,
        url: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        let flow_event = record.decided.and_then(|d| d.event);
        let events: Vec<&str> = ["analysis.complete"]
            .into_iter()
            .chain(flow_event)
            .collect();
        // Most requests have no one to tell: build no bodies for them.
        self.load_endpoints(conn, record.tenant).await?;
        let wanted = events
            .iter()
            .any(|event| self.takers(record.tenant, event).next().is_some());
        if url.is_none() && !wanted {
            return Ok(());
        }
        let now = now.trunc_subsecs(3);
        let request_id = record.request_id.as_str();
        let mut payload = json!({
            "event": "analysis.complete",
            "type": "analysis.complete",
            "timestamp": now,
            "request_id": request_id,
            "reference_id": record.reference_id,
            "image_sha256": record.analysis.image_info.sha256,
            "verdict": record.analysis.verdict,
            "webhook_delivered_at": now,
        });
        if let Some(batch_id) = batch_id {
            payload["batch_id"] = json!(batch_id);
        }
        if let Some(decided) = record.decided {
            payload["decision"] = decided.decision_summary();
        }
        let message = Message {
            event: "analysis.complete",
            payload,
            request_id: Some(request_id),
            reference_id: record.reference_id,
            batch_id,
        };
        self.add(conn, record.tenant, &message, url, now).await?;
        if let Some((decided, event)) = record.decided.and_then(|d| d.event.map(|e| (d, e))) {
            let mut payload = json!({
                "event": event,
                "type": event,
                "timestamp": now,
                "request_id": request_id,
                "reference_id": record.reference_id,
                "image_sha256": record.analysis.image_info.sha256,
                "verdict": record.analysis.verdict,
                "decision": decided.decision_summary(),
            });
            if let Some(case) = record.case {
                payload[case.kind] = case.summary.clone();
            }
            let message = Message {
                event,
                payload,
                ..message
            };
            self.add(conn, record.tenant, &message, None, now).await?;
        }
        Ok(())
    }
}

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
        (Some(sealed), Some(until)) if until > now_ms(now) => {
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
            previous_until_ms: Some(now_ms(until)),
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

/// A sample in `[-1, 1]` for the retry jitter.
fn jitter_sample() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.0;
    }
    let unit = (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
    unit * 2.0 - 1.0
}

/// How the sending capacity of a delivery loop (`webhooks.concurrency` attempts at once) is
/// shared between tenants: each tenant with attempts under way or deliveries due may hold an
/// equal share of it, and a tenant at its share is left out of claims until one of its attempts
/// ends, so one tenant's backlog or slow endpoints cannot take the capacity of the others.
#[derive(Debug, Default)]
struct Shares {
    capacity: usize,
    in_flight: HashMap<String, usize>,
    /// Tenants with deliveries due, as last seen.
    waiting: std::collections::HashSet<String>,
}

impl Shares {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            ..Self::default()
        }
    }

    /// The tenants with deliveries due now.
    fn waiting(&mut self, tenants: Vec<String>) {
        self.waiting = tenants.into_iter().collect();
    }

    /// Attempts under way.
    fn busy(&self) -> usize {
        self.in_flight.values().sum()
    }

    /// Attempts that may start now.
    fn free(&self) -> usize {
        self.capacity.saturating_sub(self.busy())
    }

    /// One tenant's share: the capacity divided between the tenants with attempts under way or
    /// deliveries due.
    fn share(&self) -> usize {
        let waiting_only = self
            .waiting
            .iter()
            .filter(|tenant| !self.in_flight.contains_key(*tenant))
            .count();
        (self.capacity / (self.in_flight.len() + waiting_only).max(1)).max(1)
    }

    /// The tenants to leave out of the next claim: those holding their share already.
    fn full(&self) -> Vec<String> {
        let share = self.share();
        let mut full: Vec<String> = self
            .in_flight
            .iter()
            .filter(|(_, count)| **count >= share)
            .map(|(tenant, _)| tenant.clone())
            .collect();
        full.sort();
        full
    }

    fn start(&mut self, tenant: &str) {
        *self.in_flight.entry(tenant.to_owned()).or_default() += 1;
    }

    fn end(&mut self, tenant: &str) {
        if let Some(count) = self.in_flight.get_mut(tenant) {
            *count -= 1;
            if *count == 0 {
                self.in_flight.remove(tenant);
            }
        }
    }
}

/// Claims up to `limit` due deliveries, leaving out the tenants in `skip`.
async fn claim_due(
    state: &AppState,
    token: &str,
    limit: usize,
    skip: &[String],
) -> Result<Vec<webhook_delivery::Model>, OutboxError> {
    let webhooks = &state.webhooks;
    let now = state.clock.now();
    let lease = webhooks.config.lease();
    let lease_until =
        now_ms(now).saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    // A claim writes: through the writer connection on SQLite (see `Db::begin_write`).
    let txn = state.pipeline.db().begin_write().await?;
    let rows = repo::claim_deliveries(
        &txn,
        token,
        now_ms(now),
        lease_until,
        u32::try_from(limit).unwrap_or(u32::MAX),
        skip,
    )
    .await?;
    txn.commit().await?;
    Ok(rows)
}

/// One pass, for tests and tools: claims the due deliveries (up to `webhooks.concurrency`)
/// and makes one attempt of each, concurrently. Returns how many were claimed. The delivery
/// loop ([`run_worker`]) refills continuously instead.
pub async fn deliver_due(state: &AppState) -> Result<usize, OutboxError> {
    let token = ulid::Ulid::new().to_string();
    let rows = claim_due(state, &token, state.webhooks.concurrency(), &[]).await?;
    let count = rows.len();
    let attempts = rows
        .into_iter()
        .map(|row| attempt_logged(state, &token, row));
    futures_util::future::join_all(attempts).await;
    Ok(count)
}

/// One attempt; a failure to record it is logged (its lease expires and it is tried again).
async fn attempt_logged(state: &AppState, token: &str, row: webhook_delivery::Model) {
    let id = row.delivery_id.clone();
    if let Err(err) = attempt(state, token, row).await {
        tracing::warn!(delivery_id = %id, error = %err, "webhook attempt not recorded; the lease will expire and it will be tried again");
    }
}

/// The secrets that sign a delivery, or why it cannot be sent.
async fn secrets_for(
    state: &AppState,
    row: &webhook_delivery::Model,
    now: DateTime<Utc>,
) -> Result<Result<(WebhookSecret, Option<WebhookSecret>), String>, OutboxError> {
    let conn = state.pipeline.db().conn();
    let cipher = state.webhooks.cipher().await?;
    let Some(endpoint_id) = &row.endpoint_id else {
        return undecryptable(tenant_secrets(conn, cipher, &row.tenant, now).await);
    };
    match repo::get_endpoint(conn, None, endpoint_id).await? {
        None => Ok(Err(format!("endpoint {endpoint_id} was deleted"))),
        Some(endpoint) if endpoint.disabled_at.is_some() => Ok(Err(format!(
            "endpoint {endpoint_id} is disabled: {}",
            endpoint.disabled_reason.unwrap_or_default()
        ))),
        Some(endpoint) => {
            let opened = cipher
                .open(endpoint_id, &endpoint.secret)
                .map_err(OutboxError::from)
                .and_then(|text| Ok(text.parse::<WebhookSecret>()?));
            undecryptable(opened.map(|secret| (secret, None)))
        }
    }
}

/// A stored secret that does not decrypt (another key file, or damaged) or is malformed makes
/// its deliveries unsendable: they are abandoned, and audited, instead of retried for ever.
/// Other failures (the database) leave the attempt for later.
fn undecryptable<T>(opened: Result<T, OutboxError>) -> Result<Result<T, String>, OutboxError> {
    match opened {
        Ok(secrets) => Ok(Ok(secrets)),
        Err(OutboxError::Cipher(CipherError::Open) | OutboxError::Secret(_)) => Ok(Err(
            "the signing secret does not decrypt under the webhook key file (another key file, \
             or damaged): not sent"
                .to_owned(),
        )),
        Err(err) => Err(err),
    }
}

/// One attempt of one claimed delivery, and its outcome committed under the lease.
#[tracing::instrument(skip_all, fields(delivery_id = %row.delivery_id, event = %row.event, tenant = %row.tenant))]
async fn attempt(
    state: &AppState,
    token: &str,
    row: webhook_delivery::Model,
) -> Result<(), OutboxError> {
    let db = state.pipeline.db();
    let started = state.clock.now();
    let number = row.attempts.saturating_add(1);
    let secrets = secrets_for(state, &row, started).await?;
    let result = match &secrets {
        Ok((current, previous)) => {
            let headers = sign(
                current,
                previous.as_ref(),
                &row.delivery_id,
                started.timestamp(),
                row.body.as_bytes(),
            );
            let sender = state.webhooks.sender().await?;
            let result = sender
                .send(&row.url, &headers, row.body.clone().into_bytes())
                .await;
            Some(result)
        }
        Err(_) => None,
    };
    let status = result.as_ref().and_then(|r| r.status);
    let error = match (&secrets, &result) {
        (Err(why), _) => Some(why.clone()),
        (_, Some(r)) => r.error.clone(),
        _ => None,
    };
    let outcome = match &result {
        None => AttemptOutcome::Unsendable,
        Some(AttemptResult {
            status: Some(status),
            retry_after,
            ..
        }) => AttemptOutcome::Answered {
            status: *status,
            retry_after: retry_after
                .as_deref()
                .and_then(|v| parse_retry_after(v, started)),
        },
        Some(_) => AttemptOutcome::NoAnswer,
    };
    let next = retry::next(
        &outcome,
        u32::try_from(number).unwrap_or(u32::MAX),
        state.webhooks.policy(),
        jitter_sample(),
        started,
    );
    let (new_status, next_ms, abandoned, disable) = match next {
        NextState::Delivered => (repo::SUCCEEDED, 0, false, false),
        NextState::Retry { at } => (repo::PENDING, now_ms(at), false, false),
        NextState::Abandoned { disable_endpoint } => (repo::FAILED, 0, true, disable_endpoint),
    };
    let duration_ms = result.as_ref().map_or(0, |r| {
        i64::try_from(r.duration.as_millis()).unwrap_or(i64::MAX)
    });
    let ended = (new_status != repo::PENDING).then_some(started);
    let txn = db.begin_write().await?;
    let held = repo::update_delivery(
        &txn,
        &row.delivery_id,
        token,
        repo::DeliveryUpdate {
            status: new_status,
            attempts: number,
            next_attempt_ms: next_ms,
            last_status: status.map(i32::from),
            last_error: error.clone(),
            finished_at: ended,
        },
    )
    .await?;
    if !held {
        txn.rollback().await?;
        tracing::warn!("lease lost before the attempt was recorded; nothing written");
        return Ok(());
    }
    if let Some(result) = &result {
        repo::insert_attempt(
            &txn,
            webhook_attempt::ActiveModel {
                delivery_id: Set(row.delivery_id.clone()),
                attempt: Set(number),
                attempted_at: Set(started),
                status_code: Set(status.map(i32::from)),
                duration_ms: Set(duration_ms),
                response_body: Set(result.body.clone()),
                error: Set(result.error.clone()),
                ..Default::default()
            },
        )
        .await?;
    }
    if disable && let Some(endpoint_id) = &row.endpoint_id {
        repo::disable_endpoint(&txn, endpoint_id, started, "answered 410 Gone").await?;
    }
    if abandoned {
        let detail = match (status, &error) {
            (Some(410), _) => "the endpoint answered 410 Gone".to_owned(),
            (_, Some(err)) => err.clone(),
            (Some(code), None) => format!("the last attempt got {code}"),
            (None, None) => "no answer".to_owned(),
        };
        let event = Event::WebhookAbandoned {
            request_id: row
                .request_id
                .clone()
                .or_else(|| row.batch_id.clone())
                .unwrap_or_else(|| row.delivery_id.clone()),
            reference_id: row.reference_id.clone(),
            endpoint: row.endpoint_id.clone().unwrap_or_else(|| row.url.clone()),
            attempts: u32::try_from(number).unwrap_or(0),
            detail,
        };
        arbiter_audit::append(&txn, &row.tenant, started, event).await?;
    }
    txn.commit().await?;
    tracing::info!(
        attempt = number,
        status = status.map(i64::from).unwrap_or(-1),
        duration_ms,
        outcome = new_status,
        next_attempt_ms = next_ms,
        error = error.as_deref().unwrap_or(""),
        "webhook attempt"
    );
    Ok(())
}

/// A delivery loop: sends due deliveries until `shutdown`, finishing the attempts under way.
///
/// Up to `webhooks.concurrency` attempts run at once, and each one that ends makes room for the
/// next at once (the loop never waits for a whole group); the capacity is shared between
/// tenants ([`Shares`]).
pub async fn run_worker(state: AppState, shutdown: CancellationToken) {
    let poll = Duration::from_millis(state.config.jobs.poll_interval_ms.max(10));
    let mut shares = Shares::new(state.webhooks.concurrency());
    // When the tenants with due deliveries were last read: at most once per poll interval.
    let mut seen_waiting: Option<tokio::time::Instant> = None;
    // Attempts run as tasks of their own: an attempt that holds the writer while it records its
    // outcome must go on while this loop waits for the writer to claim more.
    let mut running: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
    let mut tenant_of: HashMap<tokio::task::Id, String> = HashMap::new();
    // Whether the last claim found nothing more to send: then claim again only when an attempt
    // ends, a commit rings, or the poll interval passes.
    let mut drained = false;
    loop {
        let wake = state.webhooks.wake.notified();
        tokio::pin!(wake);
        if !shutdown.is_cancelled() && !drained && shares.free() > 0 {
            if seen_waiting.is_none_or(|at| at.elapsed() >= poll) {
                let now = now_ms(state.clock.now());
                match repo::due_tenants(state.pipeline.db().conn(), now, 1000).await {
                    Ok(tenants) => shares.waiting(tenants),
                    Err(err) => {
                        tracing::warn!(error = %err, "reading the tenants with due webhook deliveries failed")
                    }
                }
                seen_waiting = Some(tokio::time::Instant::now());
            }
            let token = ulid::Ulid::new().to_string();
            let free = shares.free();
            match claim_due(&state, &token, free, &shares.full()).await {
                Ok(rows) => {
                    drained = rows.len() < free;
                    for row in rows {
                        shares.start(&row.tenant);
                        let (state, token) = (state.clone(), token.clone());
                        let tenant = row.tenant.clone();
                        let task = running.spawn(async move {
                            attempt_logged(&state, &token, row).await;
                        });
                        tenant_of.insert(task.id(), tenant);
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "claiming webhook deliveries failed");
                    drained = true;
                }
            }
        }
        if shutdown.is_cancelled() && running.is_empty() {
            break;
        }
        tokio::select! {
            Some(ended) = running.join_next_with_id(), if !running.is_empty() => {
                let id = match ended {
                    Ok((id, ())) => id,
                    Err(err) => {
                        tracing::warn!(error = %err, "a webhook attempt stopped");
                        err.id()
                    }
                };
                if let Some(tenant) = tenant_of.remove(&id) {
                    shares.end(&tenant);
                }
                // Room for another attempt, perhaps of a tenant that was at its share.
                drained = false;
            }
            () = shutdown.cancelled(), if !shutdown.is_cancelled() => {}
            () = &mut wake, if drained => drained = false,
            () = tokio::time::sleep(poll), if drained => drained = false,
        }
    }
}

/// Makes sure the key file can be opened (start-up check).
pub async fn check_key_file(webhooks: &Webhooks) -> Result<(), CipherError> {
    webhooks.cipher().await.map(|_| ())
}

/// Runs `f` in a write transaction and commits.
pub async fn in_write<T, F>(state: &AppState, f: F) -> Result<T, OutboxError>
where
    F: AsyncFnOnce(&arbiter_db::sea_orm::DatabaseTransaction) -> Result<T, OutboxError>,
{
    let txn = state.pipeline.db().begin_write().await?;
    let value = f(&txn).await?;
    txn.commit().await?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_at_its_share_is_left_out_until_one_of_its_attempts_ends() {
        let mut shares = Shares::new(4);
        // Alone, a tenant may take the whole capacity.
        for _ in 0..4 {
            assert!(shares.full().is_empty());
            shares.start("busy");
        }
        assert_eq!((shares.free(), shares.full()), (0, vec!["busy".to_owned()]));
        // Another tenant's deliveries fall due: each may hold half. When one of busy's attempts
        // ends, busy (3) is left out of the claim and the room goes to the other.
        shares.waiting(vec!["busy".to_owned(), "quiet".to_owned()]);
        shares.end("busy");
        assert_eq!(
            (shares.share(), shares.full()),
            (2, vec!["busy".to_owned()])
        );
        shares.start("quiet");
        shares.end("busy");
        assert_eq!(shares.full(), ["busy"], "busy holds 2, its share");
        shares.start("quiet");
        assert_eq!(
            (shares.free(), shares.full()),
            (0, vec!["busy".to_owned(), "quiet".to_owned()])
        );
        // Three tenants waiting: a third each (at least one place).
        shares.waiting(vec!["busy".into(), "quiet".into(), "third".into()]);
        assert_eq!(shares.share(), 1);
        for tenant in ["busy", "busy", "quiet", "quiet"] {
            shares.end(tenant);
        }
        assert_eq!((shares.free(), shares.busy()), (4, 0));
        assert!(shares.in_flight.is_empty());
    }
}
