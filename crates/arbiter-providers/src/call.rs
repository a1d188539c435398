//! What every vendor shares: HTTP exchanges retried with backoff and jitter under an overall
//! deadline, the outbound guard for URLs a vendor hands back, and the provider wrapper that
//! bounds concurrency, keeps the monthly budget and the circuit breaker, and counts calls.

use crate::breaker::{Breaker, CircuitState};
use crate::config::{BudgetSpent, CallLimits};
use arbiter_core::net::AddressGuard;
use arbiter_core::{
    Analysis, AnalyzeOptions, DetectError, DetectorRun, MediaInput, ModelKind, ModelResults,
    RunStatus, VendorModel, Verdict,
};
use async_trait::async_trait;
use chrono::{Datelike, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Why a vendor gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No answer before the deadline (the last trouble is named).
    #[error("no answer within {secs} s ({last})")]
    TimedOut {
        /// The deadline.
        secs: u64,
        /// What the last attempt met.
        last: String,
    },
    /// The vendor refused the request (400, 401, 403, 404): retrying cannot help.
    #[error("{0}")]
    Refused(String),
    /// The account's plan or credits are used up; `permanent` when only an operator can end it.
    #[error("{message}")]
    Quota {
        /// What the vendor said, by its code.
        message: String,
        /// Whether the provider stays blocked until an operator acts (a restart).
        permanent: bool,
    },
    /// The answer could not be read.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

/// A vendor's final answer about one image, in Arbiter's vocabulary, with what it said in its
/// own words.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The verdict.
    pub verdict: Verdict,
    /// 0..1 likelihood of being synthetic or manipulated, when the vendor gave a number.
    pub score: Option<f64>,
    /// The vendor's own word for its conclusion.
    pub vendor_status: String,
    /// The vendor's id for the analysis.
    pub vendor_request_id: Option<String>,
    /// The vendor's models.
    pub models: Vec<VendorModel>,
    /// Why it could not score the image.
    pub reasons: Vec<String>,
    /// Results the vendor's models give for the guide's model slots (`gan_detection`, ...).
    pub model_results: ModelResults,
    /// The raw final answer, as received (hashed into the record).
    pub raw: Vec<u8>,
}

/// A vendor's client: asks about one image before a deadline.
#[async_trait]
pub trait Vendor: Send + Sync {
    /// Asks the vendor about an image that passed intake.
    async fn ask(
        &self,
        media: &MediaInput,
        options: &AnalyzeOptions,
        deadline: Instant,
    ) -> Result<Answer, CallError>;
}

/// A vendor's client and its deadline per analysis, as a vendor's config builds them; `None`
/// when the vendor has no API key.
pub type Built = Option<(Box<dyn Vendor>, Duration)>;

/// Exponential backoff with jitter: `initial`, doubling up to `max`, each delay moved by up to
/// 20% either way.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry `attempt` (0-based), with `unit` a random number in 0..1.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        base.mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0))
    }
}

/// A random number in 0..1 for jitter.
pub fn unit_random() -> f64 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

/// One HTTP answer that was neither a network error nor passing trouble (429, 5xx).
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub body: Vec<u8>,
}

/// HTTP exchanges with a vendor, retried on 429 (honouring `Retry-After`), 5xx and network errors
/// under an overall deadline; any other answer is the caller's to read, and so is a 429 whose
/// `Retry-After` ends past the deadline.
#[derive(Clone)]
pub struct Http {
    /// The client.
    pub client: reqwest::Client,
    /// The retry delays.
    pub backoff: Backoff,
    /// The whole analysis's time limit, for messages.
    pub deadline_secs: u64,
}

impl Http {
    /// Sends what `build` makes until an answer comes that is not passing trouble.
    pub async fn send(
        &self,
        what: &str,
        deadline: Instant,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Reply, CallError> {
        let mut last = String::from("no attempt");
        for attempt in 0u32.. {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            let wait = match tokio::time::timeout(left, build().send()).await {
                Err(_) => break,
                Ok(Err(err)) => {
                    last = format!("{what}: {}", network_cause(&err));
                    None
                }
                Ok(Ok(response)) => {
                    let status = response.status();
                    let wait = retry_after(response.headers());
                    // A 429 asking for a wait past the deadline (a spent daily quota) is no
                    // passing trouble: its body, read by the caller, says more than a timeout.
                    let outlasts = status == StatusCode::TOO_MANY_REQUESTS
                        && wait.is_some_and(|wait| Instant::now() + wait >= deadline);
                    if !outlasts
                        && (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error())
                    {
                        last = format!("{what}: HTTP {}", status.as_u16());
                        wait
                    } else {
                        let body = tokio::time::timeout(
                            deadline.saturating_duration_since(Instant::now()),
                            response.bytes(),
                        )
                        .await;
                        match body {
                            Ok(Ok(body)) => {
                                return Ok(Reply {
                                    status,
                                    body: body.to_vec(),
                                });
                            }
                            Ok(Err(err)) => {
                                last = format!("{what}: reading the body: {}", network_cause(&err));
                                None
                            }
                            Err(_) => break,
                        }
                    }
                }
            };
            let delay = wait.unwrap_or_else(|| self.backoff.delay(attempt, unit_random()));
            if Instant::now() + delay >= deadline {
                break;
            }
            tokio::time::sleep(delay).await;
        }
        Err(CallError::TimedOut {
            secs: self.deadline_secs,
            last,
        })
    }
}

/// The wait a `Retry-After` header asks for, in seconds (an HTTP date is not honoured).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// A network error without the addresses and internals it may carry: what kind of failure.
fn network_cause(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else if err.is_body() || err.is_decode() {
        "broken body"
    } else {
        "network error"
    }
}

/// A client for URLs a vendor hands back (an upload URL): every address the host resolves to
/// must pass the outbound guard, an IP literal too; no redirects, no proxy.
pub fn guarded_client(guard: AddressGuard, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver(guard)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .build()
        .unwrap_or_default()
}

/// Checks a URL a vendor handed back before anything is sent to it: http(s), a port the guard
/// allows, and an IP-literal host that passes the guard (a named host is checked by the resolver
/// as it is resolved).
pub fn check_handed_url(guard: &AddressGuard, url: &str) -> Result<reqwest::Url, CallError> {
    let refused = |why: String| CallError::Refused(format!("upload URL refused: {why}"));
    let parsed = reqwest::Url::parse(url).map_err(|err| refused(format!("not a URL ({err})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refused(format!("scheme {:?}", parsed.scheme())));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| refused("no host".to_owned()))?;
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<std::net::IpAddr>() {
        guard.check(ip).map_err(refused)?;
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    guard.check_port(host, port).map_err(refused)?;
    Ok(parsed)
}

/// Resolves names with the system resolver and refuses the host when any address is refused.
struct GuardedResolver(AddressGuard);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            guard.check_all(&host, &addrs)?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Where the analyses counted against monthly budgets are kept: the database in a server (so a
/// budget holds across restarts and replicas), memory in tools and tests.
#[async_trait]
pub trait Usage: Send + Sync {
    /// Counts one analysis of `provider` in `month` (`2026-12`) if fewer than `budget` were
    /// counted; the new count, or `None` when the budget is spent.
    async fn take(&self, provider: &str, month: &str, budget: u64) -> Result<Option<u64>, String>;
}

/// Budgets counted in this process's memory.
#[derive(Debug, Default)]
pub struct MemoryUsage(Mutex<std::collections::HashMap<(String, String), u64>>);

#[async_trait]
impl Usage for MemoryUsage {
    async fn take(&self, provider: &str, month: &str, budget: u64) -> Result<Option<u64>, String> {
        let mut counts = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let used = counts
            .entry((provider.to_owned(), month.to_owned()))
            .or_default();
        if *used >= budget {
            return Ok(None);
        }
        *used += 1;
        Ok(Some(*used))
    }
}

/// What `/readyz` and `/metrics` show of one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderStatus {
    /// The provider's name.
    pub name: String,
    /// Whether it can take work now (circuit not open, not blocked, budget not spent).
    pub healthy: bool,
    /// Why not, when it cannot.
    pub problem: Option<String>,
    /// The circuit's state.
    pub circuit: CircuitState,
    /// Analyses asked of it since start.
    pub calls: u64,
    /// Analyses that failed since start.
    pub errors: u64,
    /// Total seconds spent in its analyses.
    pub seconds: f64,
    /// Analyses left in this month's budget; `None` without a budget.
    pub budget_left: Option<u64>,
}

/// A vendor with its limits: bounded concurrency, a monthly budget, a circuit breaker, counters.
/// It is a detector like any other.
pub struct Provider {
    name: String,
    vendor: Box<dyn Vendor>,
    deadline: Duration,
    limits: CallLimits,
    usage: Arc<dyn Usage>,
    slots: Semaphore,
    state: Mutex<ProviderState>,
    calls: AtomicU64,
    errors: AtomicU64,
    micros: AtomicU64,
}

struct ProviderState {
    breaker: Breaker,
    /// The month (`2026-12`) last counted, and the analyses counted in it then.
    month: String,
    used: u64,
    /// Set by a quota answer that only an operator can end.
    blocked: Option<String>,
}

/// Why a provider did not answer: not called (`Skipped`) or failed.
#[derive(Debug)]
pub struct Unanswered {
    /// `Failed` or `Skipped`.
    pub status: RunStatus,
    /// The error naming the provider.
    pub error: DetectError,
}

impl Provider {
    /// A provider over a vendor's client, counting its budget in `usage`.
    pub fn new(
        name: &str,
        vendor: Box<dyn Vendor>,
        deadline: Duration,
        limits: CallLimits,
        usage: Arc<dyn Usage>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            vendor,
            deadline,
            slots: Semaphore::new(usize::try_from(limits.max_concurrency.max(1)).unwrap_or(1)),
            state: Mutex::new(ProviderState {
                breaker: Breaker::new(
                    limits.breaker_failures,
                    Duration::from_secs(limits.breaker_open_secs),
                ),
                month: this_month(),
                used: 0,
                blocked: None,
            }),
            limits,
            usage,
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            micros: AtomicU64::new(0),
        }
    }

    fn unanswered(&self, status: RunStatus, message: String) -> Unanswered {
        Unanswered {
            status,
            error: DetectError::Failed {
                detector: self.name.clone(),
                message,
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProviderState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes one analysis from the breaker and the budget, or says why the call may not start.
    async fn admit(&self) -> Result<(), Unanswered> {
        {
            let mut state = self.lock();
            if let Some(why) = &state.blocked {
                return Err(self.unanswered(
                    RunStatus::Failed,
                    format!("{why}; blocked until an operator acts (then restart)"),
                ));
            }
            if let Err(wait) = state.breaker.admit(Instant::now()) {
                return Err(self.unanswered(
                    RunStatus::Failed,
                    format!(
                        "unavailable: its circuit is open after repeated failures (next probe \
                         in {} s)",
                        wait.as_secs().max(1)
                    ),
                ));
            }
        }
        let budget = self.limits.monthly_budget;
        if budget == 0 {
            return Ok(());
        }
        let month = this_month();
        let taken = self.usage.take(&self.name, &month, budget).await;
        let mut state = self.lock();
        let refusal = match taken {
            Ok(Some(used)) => {
                state.month = month;
                state.used = used;
                return Ok(());
            }
            Ok(None) => {
                state.month = month;
                state.used = budget;
                tracing::warn!(provider = %self.name, budget, "provider budget spent");
                let status = match self.limits.on_budget_spent {
                    BudgetSpent::Fail => RunStatus::Failed,
                    BudgetSpent::Skip => RunStatus::Skipped,
                };
                self.unanswered(
                    status,
                    format!("the monthly budget of {budget} analyses is spent"),
                )
            }
            Err(err) => self.unanswered(
                RunStatus::Failed,
                format!("its budget could not be counted: {err}"),
            ),
        };
        // No call is made: a probe the breaker let through is not spent.
        state.breaker.cancel_probe();
        Err(refusal)
    }

    /// Asks the vendor, within the provider's limits.
    pub async fn run(
        &self,
        media: &MediaInput,
        options: &AnalyzeOptions,
    ) -> Result<Analysis, Unanswered> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| self.unanswered(RunStatus::Failed, "shutting down".to_owned()))?;
        self.admit().await?;
        let started = Instant::now();
        self.calls.fetch_add(1, Ordering::Relaxed);
        let answer = self
            .vendor
            .ask(media, options, started + self.deadline)
            .await;
        let elapsed = started.elapsed();
        self.micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let mut state = self.lock();
        state.breaker.record(answer.is_ok(), Instant::now());
        match answer {
            Ok(answer) => {
                drop(state);
                Ok(self.analysis(media, answer, elapsed))
            }
            Err(err) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                if let CallError::Quota {
                    message,
                    permanent: true,
                } = &err
                {
                    state.blocked = Some(message.clone());
                }
                drop(state);
                tracing::warn!(provider = %self.name, error = %err, "provider gave no answer");
                Err(self.unanswered(RunStatus::Failed, err.to_string()))
            }
        }
    }

    fn analysis(&self, media: &MediaInput, answer: Answer, elapsed: Duration) -> Analysis {
        let processing_time_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let run = DetectorRun {
            name: self.name.clone(),
            status: RunStatus::Ok,
            verdict: Some(answer.verdict),
            score: answer.score,
            vendor_status: Some(answer.vendor_status),
            vendor_request_id: answer.vendor_request_id,
            models: answer.models,
            reasons: answer.reasons,
            answer_sha256: Some(sha256_hex(&answer.raw)),
            error: None,
            processing_time_ms,
        };
        Analysis {
            verdict: answer.verdict,
            model_results: answer.model_results,
            image_info: media.info.clone(),
            metadata: Default::default(),
            detector: self.name.clone(),
            processing_time_ms,
            providers: vec![run],
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many analyses it takes at once.
    pub fn max_concurrency(&self) -> usize {
        usize::try_from(self.limits.max_concurrency.max(1)).unwrap_or(1)
    }

    /// What `/readyz` and `/metrics` show.
    pub fn status(&self) -> ProviderStatus {
        let state = self.lock();
        let circuit = state.breaker.state(Instant::now());
        let budget = self.limits.monthly_budget;
        let used = if state.month == this_month() {
            state.used
        } else {
            0
        };
        let budget_left = (budget > 0).then(|| budget.saturating_sub(used));
        let problem = if let Some(why) = &state.blocked {
            Some(why.clone())
        } else if circuit == CircuitState::Open {
            Some("circuit open after repeated failures".to_owned())
        } else if budget_left == Some(0) {
            Some("monthly budget spent".to_owned())
        } else {
            None
        };
        ProviderStatus {
            name: self.name.clone(),
            healthy: problem.is_none(),
            problem,
            circuit,
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            seconds: self.micros.load(Ordering::Relaxed) as f64 / 1e6,
            budget_left,
        }
    }
}

#[async_trait]
impl arbiter_core::Detector for Provider {
    fn name(&self) -> &str {
        &self.name
    }

    fn models(&self) -> &[ModelKind] {
        &[ModelKind::Gan, ModelKind::Diffusion]
    }

    async fn analyze(
        &self,
        input: &MediaInput,
        options: &AnalyzeOptions,
    ) -> Result<Analysis, DetectError> {
        self.run(input, options).await.map_err(|u| u.error)
    }

    async fn health(&self) -> Result<(), DetectError> {
        match self.status().problem {
            None => Ok(()),
            Some(message) => Err(DetectError::Failed {
                detector: self.name.clone(),
                message,
            }),
        }
    }
}

/// The calendar month (UTC) budgets count in, as `2026-12`.
fn this_month() -> String {
    let now = Utc::now();
    format!("{:04}-{:02}", now.year(), now.month())
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_twenty_percent_jitter() {
        let backoff = Backoff {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(10),
        };
        assert_eq!(backoff.delay(0, 0.5), Duration::from_secs(2));
        assert_eq!(backoff.delay(1, 0.5), Duration::from_secs(4));
        assert_eq!(backoff.delay(2, 0.5), Duration::from_secs(8));
        assert_eq!(backoff.delay(3, 0.5), Duration::from_secs(10));
        assert_eq!(backoff.delay(40, 0.5), Duration::from_secs(10));
        assert_eq!(backoff.delay(0, 0.0), Duration::from_millis(1600));
        assert_eq!(backoff.delay(0, 1.0), Duration::from_millis(2400));
        let unit = unit_random();
        assert!((0.0..=1.0).contains(&unit));
    }

    #[test]
    fn a_handed_url_must_be_http_and_its_literal_address_must_pass() {
        let guard = AddressGuard::default();
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "http://127.0.0.1:9000/upload",
            "http://[::1]/x",
            "http://10.1.2.3/upload",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(check_handed_url(&guard, bad).is_err(), "{bad}");
        }
        assert!(
            check_handed_url(
                &guard,
                "https://bucket.s3.amazonaws.com/u?X-Amz-Signature=1"
            )
            .is_ok()
        );
        assert!(check_handed_url(&guard, "https://93.184.216.34/u").is_ok());
        // A port off the guard's list, on a public host.
        assert!(check_handed_url(&guard, "https://bucket.example:6379/u").is_err());
        let open = AddressGuard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(check_handed_url(&open, "http://127.0.0.1:9000/upload").is_ok());
    }
}
