//! One delivery attempt: a signed `POST` of the stored body bytes, no redirects followed, every
//! address the endpoint's host resolves to checked by the caller's address rules, a time limit,
//! and the answer's status, duration and first bytes of body.

use crate::sign::SignedHeaders;
use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Decides whether an address may be contacted (the same rules as `image_url` fetching).
pub trait AddressCheck: Send + Sync + 'static {
    /// `Ok` when `ip` may be contacted; else why not.
    fn check(&self, ip: IpAddr) -> Result<(), String>;

    /// `Ok` when `port` may be contacted at `host` (a URL's host, before it is resolved); else
    /// why not. By default any port.
    fn check_port(&self, host: &str, port: u16) -> Result<(), String> {
        let _ = (host, port);
        Ok(())
    }
}

impl<F> AddressCheck for F
where
    F: Fn(IpAddr) -> Result<(), String> + Send + Sync + 'static,
{
    fn check(&self, ip: IpAddr) -> Result<(), String> {
        self(ip)
    }
}

/// How attempts are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderConfig {
    /// An answer must be complete within this time (the guide: 10 s).
    pub timeout: Duration,
    /// The response body is stored cut to this many bytes.
    pub max_response_body: usize,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_response_body: 1024,
        }
    }
}

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// The status code, when an answer came in time.
    pub status: Option<u16>,
    /// How long the attempt took.
    pub duration: Duration,
    /// The answer's body, cut to the configured size (lossy UTF-8).
    pub body: String,
    /// Why there was no answer (refused address, connection error, timeout).
    pub error: Option<String>,
    /// The answer's `Retry-After` header, as sent.
    pub retry_after: Option<String>,
}

/// A host refused by the address rules: the one failure to connect whose cause is told.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Resolves names and refuses the whole host when any address is refused.
struct GuardedResolver(Arc<dyn AddressCheck>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let check = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for addr in &addrs {
                check.check(addr.ip()).map_err(|why| {
                    Refused(format!("{host} resolves to {why}, which is not allowed"))
                })?;
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Sends delivery attempts over one pooled client. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    check: Arc<dyn AddressCheck>,
    config: SenderConfig,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("config", &self.config)
            .finish()
    }
}

/// Why a URL may not receive webhooks.
pub fn check_url(url: &str, check: &dyn AddressCheck) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|err| format!("{url:?} is not a URL: {err}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", parsed.scheme()));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| "the URL has no host".to_owned())?;
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        check
            .check(ip)
            .map_err(|why| format!("{why} is not allowed"))?;
    }
    check.check_port(host, parsed.port_or_known_default().unwrap_or(80))?;
    Ok(parsed)
}

impl Sender {
    /// A sender checking addresses with `check`.
    pub fn new(config: SenderConfig, check: Arc<dyn AddressCheck>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(config.timeout)
            .pool_max_idle_per_host(64)
            .user_agent(concat!("Arbiter-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver(check.clone())))
            .build()
            .map_err(|err| format!("cannot build the webhook client: {err}"))?;
        Ok(Self {
            client,
            check,
            config,
        })
    }

    /// The address rules in force.
    pub fn address_check(&self) -> &dyn AddressCheck {
        self.check.as_ref()
    }

    /// POSTs `body` to `url` with the signature headers.
    pub async fn send(&self, url: &str, headers: &SignedHeaders, body: Vec<u8>) -> AttemptResult {
        let started = Instant::now();
        let outcome =
            tokio::time::timeout(self.config.timeout, self.attempt(url, headers, body)).await;
        let duration = started.elapsed();
        match outcome {
            Ok(Ok((status, body, retry_after))) => AttemptResult {
                status: Some(status),
                duration,
                body,
                error: None,
                retry_after,
            },
            Ok(Err(error)) => AttemptResult {
                status: None,
                duration,
                body: String::new(),
                error: Some(error),
                retry_after: None,
            },
            Err(_) => AttemptResult {
                status: None,
                duration,
                body: String::new(),
                error: Some(format!(
                    "no complete answer within {} s",
                    self.config.timeout.as_secs()
                )),
                retry_after: None,
            },
        }
    }

    async fn attempt(
        &self,
        url: &str,
        headers: &SignedHeaders,
        body: Vec<u8>,
    ) -> Result<(u16, String, Option<String>), String> {
        let url = check_url(url, self.check.as_ref())?;
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers.pairs() {
            request = request.header(name, value);
        }
        // The cause (refused, reset, no route) would tell which ports of which hosts are open:
        // it is logged, and the attempt says only that the connection failed.
        let response = request.send().await.map_err(|err| {
            let mut cause: &dyn std::error::Error = &err;
            while let Some(source) = cause.source() {
                if let Some(refused) = source.downcast_ref::<Refused>() {
                    return refused.to_string();
                }
                cause = source;
            }
            tracing::info!(error = %cause, "webhook: the connection failed");
            "the connection failed or broke off".to_owned()
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut kept = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            let room = self.config.max_response_body.saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if kept.len() >= self.config.max_response_body {
                break;
            }
        }
        Ok((
            status,
            String::from_utf8_lossy(&kept).into_owned(),
            retry_after,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::WebhookSecret;
    use crate::sign::sign;
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;

    fn loopback_only() -> Arc<dyn AddressCheck> {
        Arc::new(|ip: IpAddr| {
            if ip.is_loopback() {
                Ok(())
            } else {
                Err(format!("{ip} (not loopback)"))
            }
        })
    }

    fn refuse_all() -> Arc<dyn AddressCheck> {
        Arc::new(|ip: IpAddr| Err(format!("{ip} (a loopback address)")))
    }

    async fn receiver() -> String {
        let app = Router::new()
            .route(
                "/ok",
                post(|headers: HeaderMap, body: String| async move {
                    let sig = headers["webhook-signature"].to_str().unwrap().to_owned();
                    (StatusCode::OK, format!("{sig} {}", body.len()))
                }),
            )
            .route("/big", post(|| async { "x".repeat(10_000) }))
            .route(
                "/moved",
                post(|| async { (StatusCode::MOVED_PERMANENTLY, [("location", "/ok")], "") }),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route(
                "/busy",
                post(|| async { (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "42")], "") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }

    #[tokio::test]
    async fn attempts_record_status_body_and_retry_after_without_following_redirects() {
        let base = receiver().await;
        let config = SenderConfig {
            timeout: Duration::from_millis(500),
            max_response_body: 100,
        };
        let sender = Sender::new(config, loopback_only()).unwrap();
        let secret = WebhookSecret::generate().unwrap();
        let headers = sign(&secret, None, "msg_1", 1, b"{}");
        let ok = sender
            .send(&format!("{base}/ok"), &headers, b"{}".to_vec())
            .await;
        assert_eq!(ok.status, Some(200));
        assert_eq!(ok.body, format!("{} 2", headers.signature));
        let big = sender
            .send(&format!("{base}/big"), &headers, b"{}".to_vec())
            .await;
        assert_eq!(big.body.len(), 100);
        let moved = sender
            .send(&format!("{base}/moved"), &headers, b"{}".to_vec())
            .await;
        assert_eq!(moved.status, Some(301));
        let busy = sender
            .send(&format!("{base}/busy"), &headers, b"{}".to_vec())
            .await;
        assert_eq!(
            (busy.status, busy.retry_after.as_deref()),
            (Some(429), Some("42"))
        );
        let slow = sender
            .send(&format!("{base}/slow"), &headers, b"{}".to_vec())
            .await;
        assert_eq!(slow.status, None);
        assert!(slow.error.is_some());
    }

    #[tokio::test]
    async fn refused_addresses_are_never_contacted() {
        let base = receiver().await;
        let sender = Sender::new(SenderConfig::default(), refuse_all()).unwrap();
        let headers = sign(&WebhookSecret::generate().unwrap(), None, "msg_1", 1, b"{}");
        let literal = sender
            .send(&format!("{base}/ok"), &headers, b"{}".to_vec())
            .await;
        assert_eq!(literal.status, None);
        assert!(literal.error.unwrap().contains("not allowed"));
        let port = base.rsplit(':').next().unwrap();
        let named = sender
            .send(
                &format!("http://localhost:{port}/ok"),
                &headers,
                b"{}".to_vec(),
            )
            .await;
        assert_eq!(named.status, None);
        assert!(named.error.unwrap().contains("not allowed"));
        assert!(check_url("ftp://x/", refuse_all().as_ref()).is_err());
    }

    #[tokio::test]
    async fn a_failed_connection_is_recorded_without_its_cause() {
        // A loopback port that was just closed: the connection is refused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let sender = Sender::new(SenderConfig::default(), loopback_only()).unwrap();
        let headers = sign(&WebhookSecret::generate().unwrap(), None, "msg_1", 1, b"{}");
        let attempt = sender
            .send(
                &format!("http://127.0.0.1:{port}/ok"),
                &headers,
                b"{}".to_vec(),
            )
            .await;
        assert_eq!(attempt.status, None);
        assert_eq!(
            attempt.error.as_deref(),
            Some("the connection failed or broke off")
        );
    }
}
