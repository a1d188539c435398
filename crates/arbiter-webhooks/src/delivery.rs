//! The delivery loops: they claim due deliveries under a lease, sign the stored body bytes, send
//! them, store the attempt, and record what the retry rule ([`crate::retry::next`]) makes of it:
//! delivered, tried again later, or abandoned (with a `webhook.abandoned` audit entry), the
//! endpoint disabled on a 410.
//!
//! The sending capacity of a loop is shared between tenants ([`Shares`]), and a loop refills as
//! each attempt ends rather than waiting for a whole group.

use crate::OutboxError;
use crate::cipher::CipherError;
use crate::retry::{self, AttemptOutcome, NextState, parse_retry_after};
use crate::secret::WebhookSecret;
use crate::send::AttemptResult;
use crate::service::Webhooks;
use crate::sign::sign;
use crate::store::tenant_secrets;
use arbiter_audit::Event;
use arbiter_db::Db;
use arbiter_db::entity::{webhook_attempt, webhook_delivery};
use arbiter_db::sea_orm::ActiveValue::Set;
use arbiter_db::webhooks as repo;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The time, as the caller keeps it (a test's clock moves only when told to).
pub type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What a delivery loop works with: the database, the webhook services, the time, and how often
/// an idle loop looks for deliveries another replica committed. Cheap to clone.
#[derive(Clone)]
pub struct DeliveryWorker {
    db: Db,
    webhooks: Webhooks,
    now: Now,
    poll: Duration,
    /// The replica whose claims these are: a claim's token is `<owner>.<ulid>` (a bare ULID
    /// when empty).
    owner: Arc<str>,
    /// Set while the delivery loop runs: once cancelled, a claimed delivery whose attempt has not
    /// reached sending is left unsent, for the stopping replica to hand back.
    stopping: Option<CancellationToken>,
}

impl std::fmt::Debug for DeliveryWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryWorker")
            .field("webhooks", &self.webhooks)
            .field("poll", &self.poll)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

fn now_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

impl DeliveryWorker {
    /// A worker over `db` with these services; `now` tells the time, and an idle loop looks for
    /// due deliveries every `poll` (at least 10 ms) when no commit rings [`Webhooks::wake`].
    pub fn new(db: Db, webhooks: Webhooks, now: Now, poll: Duration) -> Self {
        Self {
            db,
            webhooks,
            now,
            poll: poll.max(Duration::from_millis(10)),
            owner: Arc::from(""),
            stopping: None,
        }
    }

    /// The same worker, its claims named after the replica `owner` (`<owner>.<ulid>`), so the
    /// deliveries table and the logs say which replica holds a delivery.
    pub fn with_owner(mut self, owner: &str) -> Self {
        self.owner = Arc::from(owner);
        self
    }

    /// A new claim's token.
    fn token(&self) -> String {
        let ulid = ulid::Ulid::new();
        if self.owner.is_empty() {
            ulid.to_string()
        } else {
            format!("{}.{ulid}", self.owner)
        }
    }

    /// One pass, for tests and tools: claims the due deliveries (up to `webhooks.concurrency`)
    /// and makes one attempt of each, concurrently. Returns how many were claimed. The delivery
    /// loop ([`DeliveryWorker::run`]) refills continuously instead.
    pub async fn deliver_due(&self) -> Result<usize, OutboxError> {
        let token = self.token();
        let rows = self
            .claim_due(&token, self.webhooks.config().concurrency(), &[])
            .await?;
        let count = rows.len();
        let attempts = rows.into_iter().map(|row| self.attempt_logged(&token, row));
        futures_util::future::join_all(attempts).await;
        Ok(count)
    }

    /// Claims up to `limit` due deliveries, leaving out the tenants in `skip`.
    async fn claim_due(
        &self,
        token: &str,
        limit: usize,
        skip: &[String],
    ) -> Result<Vec<webhook_delivery::Model>, OutboxError> {
        let now = (self.now)();
        let lease = self.webhooks.config().lease();
        let lease_until =
            now_ms(now).saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        // A claim writes: through the writer connection on SQLite (see `Db::begin_write`).
        let txn = self.db.begin_write().await?;
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

    /// One attempt; a failure to record it is logged (its lease expires and it is tried again).
    async fn attempt_logged(&self, token: &str, row: webhook_delivery::Model) {
        let id = row.delivery_id.clone();
        if let Err(err) = self.attempt(token, row).await {
            tracing::warn!(delivery_id = %id, error = %err, "webhook attempt not recorded; the lease will expire and it will be tried again");
        }
    }

    /// The secrets that sign a delivery, or why it cannot be sent.
    async fn secrets_for(
        &self,
        row: &webhook_delivery::Model,
        now: DateTime<Utc>,
    ) -> Result<Result<(WebhookSecret, Option<WebhookSecret>), String>, OutboxError> {
        let conn = self.db.conn();
        let cipher = self.webhooks.cipher().await?;
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

    /// One attempt of one claimed delivery, and its outcome committed under the lease.
    #[tracing::instrument(skip_all, fields(delivery_id = %row.delivery_id, event = %row.event, tenant = %row.tenant))]
    async fn attempt(&self, token: &str, row: webhook_delivery::Model) -> Result<(), OutboxError> {
        let started = (self.now)();
        let number = row.attempts.saturating_add(1);
        let secrets = self.secrets_for(&row, started).await?;
        let result = match &secrets {
            Ok((current, previous)) => {
                let headers = sign(
                    current,
                    previous.as_ref(),
                    &row.delivery_id,
                    started.timestamp(),
                    row.body.as_bytes(),
                );
                let sender = self.webhooks.sender().await?;
                if self
                    .stopping
                    .as_ref()
                    .is_some_and(CancellationToken::is_cancelled)
                {
                    // Not sent yet: the stopping replica hands it back (see
                    // `arbiter_db::webhooks::hand_back_deliveries`), no attempt counted.
                    tracing::info!("stopping before sending: the delivery is handed back");
                    return Ok(());
                }
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
        let next = retry::next(
            &outcome(result.as_ref(), started),
            u32::try_from(number).unwrap_or(u32::MAX),
            self.webhooks.policy(),
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
        let txn = self.db.begin_write().await?;
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
    /// Up to `webhooks.concurrency` attempts run at once, and each one that ends makes room for
    /// the next at once (the loop never waits for a whole group); the capacity is shared between
    /// tenants ([`Shares`]).
    ///
    /// From `shutdown` on, attempts that have not reached sending leave their deliveries unsent
    /// and held; the replica hands them back once all its loops have ended
    /// ([`arbiter_db::webhooks::hand_back_deliveries`]).
    pub async fn run(mut self, shutdown: CancellationToken) {
        self.stopping = Some(shutdown.clone());
        let poll = self.poll;
        let mut shares = Shares::new(self.webhooks.config().concurrency());
        // When the tenants with due deliveries were last read: at most once per poll interval.
        let mut seen_waiting: Option<tokio::time::Instant> = None;
        // Attempts run as tasks of their own: an attempt that holds the writer while it records
        // its outcome must go on while this loop waits for the writer to claim more.
        let mut running: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
        let mut tenant_of: HashMap<tokio::task::Id, String> = HashMap::new();
        // Whether the last claim found nothing more to send: then claim again only when an
        // attempt ends, a commit rings, or the poll interval passes.
        let mut drained = false;
        loop {
            let wake = self.webhooks.wake.notified();
            tokio::pin!(wake);
            if !shutdown.is_cancelled() && !drained && shares.free() > 0 {
                if seen_waiting.is_none_or(|at| at.elapsed() >= poll) {
                    let now = now_ms((self.now)());
                    match repo::due_tenants(self.db.conn(), now, 1000).await {
                        Ok(tenants) => shares.waiting(tenants),
                        Err(err) => {
                            tracing::warn!(error = %err, "reading the tenants with due webhook deliveries failed")
                        }
                    }
                    seen_waiting = Some(tokio::time::Instant::now());
                }
                let token = self.token();
                let free = shares.free();
                match self.claim_due(&token, free, &shares.full()).await {
                    Ok(rows) => {
                        drained = rows.len() < free;
                        for row in rows {
                            shares.start(&row.tenant);
                            let (worker, token) = (self.clone(), token.clone());
                            let tenant = row.tenant.clone();
                            let task = running.spawn(async move {
                                worker.attempt_logged(&token, row).await;
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
}

/// What an attempt came to, for the retry rule: no result is a delivery that could not be sent;
/// `Retry-After` is read relative to the attempt's start.
fn outcome(result: Option<&AttemptResult>, started: DateTime<Utc>) -> AttemptOutcome {
    match result {
        None => AttemptOutcome::Unsendable,
        Some(AttemptResult {
            status: Some(status),
            retry_after,
            ..
        }) => AttemptOutcome::Answered {
            status: *status,
            retry_after: retry_after
                .as_deref()
                .and_then(|value| parse_retry_after(value, started)),
        },
        Some(_) => AttemptOutcome::NoAnswer,
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

/// Gives back at once the deliveries the replica `owner`'s claims still hold once its delivery
/// loops have ended (claimed, not sent), so another replica sends them now rather than when
/// their leases run out. No attempt is counted against them.
pub async fn hand_back(db: &Db, owner: &str) {
    let handed = async {
        let txn = db.begin_write().await?;
        let handed = repo::hand_back_deliveries(&txn, owner).await?;
        txn.commit().await?;
        Ok::<_, arbiter_db::sea_orm::DbErr>(handed)
    };
    match handed.await {
        Ok(0) => {}
        Ok(deliveries) => {
            tracing::info!(
                deliveries,
                "claimed webhook deliveries handed back for another replica"
            )
        }
        Err(err) => tracing::warn!(
            error = %err,
            "cannot hand back claimed webhook deliveries; their leases will run out"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: Option<u16>, retry_after: Option<&str>) -> AttemptResult {
        AttemptResult {
            status,
            duration: Duration::from_millis(3),
            body: String::new(),
            error: status
                .is_none()
                .then(|| "the connection failed or broke off".to_owned()),
            retry_after: retry_after.map(str::to_owned),
        }
    }

    #[test]
    fn an_attempt_is_read_as_the_retry_rule_sees_it() {
        let started = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(outcome(None, started), AttemptOutcome::Unsendable);
        assert_eq!(
            outcome(Some(&result(None, None)), started),
            AttemptOutcome::NoAnswer
        );
        assert_eq!(
            outcome(
                Some(&result(Some(429), Some("Wed, 21 Oct 2015 07:28:00 GMT"))),
                started
            ),
            AttemptOutcome::Answered {
                status: 429,
                retry_after: Some(Duration::from_secs(60))
            }
        );
        assert_eq!(
            outcome(Some(&result(Some(500), Some("soon"))), started),
            AttemptOutcome::Answered {
                status: 500,
                retry_after: None
            }
        );
    }

    #[test]
    fn jitter_samples_stay_within_one_either_way() {
        for _ in 0..1000 {
            let sample = jitter_sample();
            assert!((-1.0..=1.0).contains(&sample), "{sample}");
        }
    }

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
