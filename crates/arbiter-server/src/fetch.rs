//! Fetching `image_url` safely: http(s) only; every resolved address (of the first request and
//! of each redirect) must be public unless an allow-list permits it; a bounded number of
//! redirects; a timeout; the body streamed and cut off at the size limit.

use arbiter_config::OutboundConfig;
use arbiter_core::ErrorCode;
pub use arbiter_core::net::AddressGuard;
use futures_util::StreamExt;
use reqwest::Url;
use std::net::SocketAddr;
use std::time::Duration;

/// Why a URL could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL is not http(s), resolves to a refused address, redirects too often, times out,
    /// or answers with an error.
    #[error("image_url unreachable: {0}")]
    Unreachable(String),
    /// The body is larger than the limit.
    #[error("the image at image_url is larger than the {0}-byte limit")]
    TooLarge(u64),
}

impl FetchError {
    /// The API error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            FetchError::Unreachable(_) => ErrorCode::UrlUnreachable,
            FetchError::TooLarge(_) => ErrorCode::FileSizeExceeded,
        }
    }
}

/// Fetches images from URLs under the outbound rules.
#[derive(Debug, Clone)]
pub struct Fetcher {
    guard: AddressGuard,
    timeout: Duration,
    max_redirects: u8,
}

#[async_trait::async_trait]
impl arbiter_engine::analyze::ImageFetcher for Fetcher {
    async fn fetch_image(
        &self,
        url: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, arbiter_engine::EngineError> {
        self.fetch(url, max_bytes)
            .await
            .map_err(|err| arbiter_engine::EngineError::refused(err.code(), err.to_string()))
    }
}

impl Fetcher {
    /// A fetcher following the outbound configuration.
    pub fn new(config: &OutboundConfig) -> Self {
        Self {
            guard: config.guard(),
            timeout: Duration::from_secs(config.timeout_secs),
            max_redirects: config.max_redirects,
        }
    }

    /// Fetches `url`, reading at most `max_bytes`.
    pub async fn fetch(&self, url: &str, max_bytes: u64) -> Result<Vec<u8>, FetchError> {
        match tokio::time::timeout(self.timeout, self.fetch_inner(url, max_bytes)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Unreachable(format!(
                "no complete answer within {} s",
                self.timeout.as_secs()
            ))),
        }
    }

    async fn fetch_inner(&self, url: &str, max_bytes: u64) -> Result<Vec<u8>, FetchError> {
        let unreachable = |why: String| FetchError::Unreachable(why);
        let mut url =
            Url::parse(url).map_err(|err| unreachable(format!("{url:?} is not a URL: {err}")))?;
        for hop in 0..=self.max_redirects {
            let addr = self.resolve(&url).await?;
            let host = url.host_str().unwrap_or_default().to_owned();
            // Connect only to the address that was checked.
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .resolve(&host, addr)
                .no_proxy()
                .timeout(self.timeout)
                .build()
                .map_err(|err| unreachable(format!("cannot build a client: {err}")))?;
            let response = client
                .get(url.clone())
                .send()
                .await
                .map_err(|err| connection_failed(&host, &err))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .ok_or_else(|| unreachable(format!("{status} without a Location")))?;
                url = url
                    .join(location)
                    .map_err(|err| unreachable(format!("bad redirect {location:?}: {err}")))?;
                if hop == self.max_redirects {
                    return Err(unreachable(format!(
                        "more than {} redirects",
                        self.max_redirects
                    )));
                }
                continue;
            }
            if !status.is_success() {
                return Err(unreachable(format!("the server answered {status}")));
            }
            if response.content_length().is_some_and(|len| len > max_bytes) {
                return Err(FetchError::TooLarge(max_bytes));
            }
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|err| connection_failed(&host, &err))?;
                if body.len() as u64 + chunk.len() as u64 > max_bytes {
                    return Err(FetchError::TooLarge(max_bytes));
                }
                body.extend_from_slice(&chunk);
            }
            return Ok(body);
        }
        Err(unreachable(format!(
            "more than {} redirects",
            self.max_redirects
        )))
    }

    /// Resolves the URL's host and checks every address; returns the one to connect to.
    async fn resolve(&self, url: &Url) -> Result<SocketAddr, FetchError> {
        let unreachable = |why: String| FetchError::Unreachable(why);
        if !matches!(url.scheme(), "http" | "https") {
            return Err(unreachable(format!(
                "scheme {:?} is not http or https",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| unreachable("the URL has no host".to_owned()))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let host_for_lookup = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host_for_lookup, port))
            .await
            .map_err(|err| unreachable(format!("cannot resolve {host}: {err}")))?
            .collect();
        let first = *addrs
            .first()
            .ok_or_else(|| unreachable(format!("{host} has no address")))?;
        check_all(&self.guard, host, &addrs)?;
        self.guard.check_port(host, port).map_err(unreachable)?;
        Ok(first)
    }
}

/// A connection that failed or broke off, told the caller in general terms: the cause
/// (refused, reset, no route) would tell which ports of which hosts are open. It is logged.
fn connection_failed(host: &str, err: &reqwest::Error) -> FetchError {
    tracing::info!(host, error = %root_cause(err), "image_url: the connection failed");
    FetchError::Unreachable(format!("{host}: the connection failed or broke off"))
}

/// Every address a host resolves to must pass, so that a name cannot hide a private address
/// behind a public one.
pub fn check_all(guard: &AddressGuard, host: &str, addrs: &[SocketAddr]) -> Result<(), FetchError> {
    guard
        .check_all(host, addrs)
        .map_err(FetchError::Unreachable)
}

fn root_cause(err: &dyn std::error::Error) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bad_address_among_good_ones_refuses_the_host() {
        let guard = AddressGuard::default();
        let addrs: Vec<SocketAddr> = vec![
            "93.184.216.34:443".parse().unwrap(),
            "10.0.0.5:443".parse().unwrap(),
        ];
        let err = check_all(&guard, "images.example", &addrs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image_url unreachable: images.example resolves to 10.0.0.5 (a private address), which is not allowed"
        );
        assert!(check_all(&guard, "images.example", &addrs[..1]).is_ok());
    }

    #[tokio::test]
    async fn a_port_off_the_list_is_refused_before_any_connection() {
        let fetcher = Fetcher::new(&arbiter_config::Config::default().outbound);
        for url in [
            "http://93.184.216.34:5432/a.jpg",
            "https://8.8.8.8:22/a.jpg",
            "http://[2606:4700::1111]:6379/a.jpg",
        ] {
            let err = fetcher.fetch(url, 10).await.unwrap_err();
            assert_eq!(err.code(), ErrorCode::UrlUnreachable, "{url}");
            assert!(
                err.to_string()
                    .contains("is not allowed (outbound.allow_ports: 80, 443, 8080, 8443)"),
                "{url}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn a_failed_connection_is_told_without_its_cause() {
        // A loopback port that was just closed: the connection is refused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let config = OutboundConfig {
            allow_cidrs: vec!["127.0.0.0/8".parse().unwrap()],
            ..arbiter_config::Config::default().outbound
        };
        let err = Fetcher::new(&config)
            .fetch(&format!("http://127.0.0.1:{port}/a.jpg"), 10)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "image_url unreachable: 127.0.0.1: the connection failed or broke off"
        );
    }

    #[tokio::test]
    async fn other_schemes_are_refused_before_any_lookup() {
        let fetcher = Fetcher::new(&arbiter_config::Config::default().outbound);
        for url in [
            "file:///etc/passwd",
            "ftp://example.com/a.jpg",
            "gopher://x/",
        ] {
            let err = fetcher.fetch(url, 10).await.unwrap_err();
            assert_eq!(err.code(), ErrorCode::UrlUnreachable, "{url}");
        }
    }
}
