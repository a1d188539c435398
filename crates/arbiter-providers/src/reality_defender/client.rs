//! The Reality Defender client, as its own SDKs use RD: presign (`POST /api/files/aws-presigned`),
//! PUT the bytes to the signed URL (never with the API key, and only to an address the outbound
//! guard allows), then poll `GET /api/media/users/{requestId}` with backoff and jitter until the
//! answer is final or the deadline passes.

use super::wire::{self, ErrorBody, Presigned, Progress, QUOTA_CODES};
use crate::call::{Answer, Backoff, CallError, Http, Vendor, check_handed_url, guarded_client};
use crate::config::{CallLimits, Secret};
use crate::plugin::{BuildContext, DetectorPlugin};
use crate::route::Member;
use arbiter_core::net::AddressGuard;
use arbiter_core::{AnalyzeOptions, ImageFormat, MediaInput};
use async_trait::async_trait;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The provider's name in routes, analyses and policies.
pub const NAME: &str = "reality_defender";

/// Reality Defender's configuration (`detector.providers.reality_defender`).
///
/// ```yaml
/// base_url: https://api.prd.realitydefender.xyz
/// api_key_file: /etc/arbiter/reality-defender.key
/// deadline_secs: 120
/// calls: { max_concurrency: 16, monthly_budget: 1000, on_budget_spent: skip }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealityDefenderConfig {
    /// The API's base URL (an SDK's `baseUrl`).
    pub base_url: String,
    /// The API key, sent as `X-API-KEY` to the base URL only. Empty (and no `api_key_file`): the
    /// provider is not configured, and a route naming it is refused at start-up.
    pub api_key: Secret,
    /// A file whose first line is the API key, instead of `api_key`.
    pub api_key_file: String,
    /// Seconds one HTTP exchange may take.
    pub timeout_secs: u64,
    /// Seconds one analysis may take in all (presign, upload, polling); then it fails as timed
    /// out, never with a verdict.
    pub deadline_secs: u64,
    /// Milliseconds before the second poll (the first is at once); doubles up to `poll_max_ms`,
    /// each wait moved by up to 20% either way. Retries of failed exchanges use the same steps.
    pub poll_initial_ms: u64,
    /// The longest wait between polls, in milliseconds.
    pub poll_max_ms: u64,
    /// Seconds after the upload during which a 404 for the result means "not registered yet".
    pub not_found_grace_secs: u64,
    /// Concurrency, monthly budget and circuit breaker.
    pub calls: CallLimits,
}

impl Default for RealityDefenderConfig {
    /// The `detector.providers.reality_defender` section of the committed `arbiter.yaml`.
    fn default() -> Self {
        arbiter_core::settings::defaults("detector.providers.reality_defender")
    }
}

/// The provider `reality_defender`: the client, with the outbound guard for the upload URLs RD
/// hands back, behind its call limits; `None` when no API key is configured.
impl DetectorPlugin for RealityDefenderConfig {
    fn name(&self) -> &'static str {
        NAME
    }

    fn build(&self, context: &BuildContext) -> Result<Option<Member>, crate::BuildError> {
        let guard = context.guard.clone();
        let api_key = crate::config::read_key(
            &self.api_key,
            &self.api_key_file,
            "detector.providers.reality_defender.api_key",
        )?;
        if api_key.is_empty() {
            return Ok(None);
        }
        let timeout = Duration::from_secs(self.timeout_secs.max(1));
        let deadline_secs = self.deadline_secs.max(1);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|err| crate::BuildError::Config {
                key: "detector.providers.reality_defender".to_owned(),
                message: format!("cannot build an HTTP client: {err}"),
            })?;
        let backoff = Backoff {
            initial: Duration::from_millis(self.poll_initial_ms.max(1)),
            max: Duration::from_millis(self.poll_max_ms.max(self.poll_initial_ms).max(1)),
        };
        let client = RealityDefender {
            base_url: self.base_url.trim_end_matches('/').to_owned(),
            api_key,
            api: Http {
                client,
                backoff,
                deadline_secs,
            },
            upload: Http {
                client: guarded_client(guard.clone(), timeout),
                backoff,
                deadline_secs,
            },
            guard,
            not_found_grace: Duration::from_secs(self.not_found_grace_secs),
        };
        Ok(Some(context.provider(
            NAME,
            Box::new(client),
            Duration::from_secs(deadline_secs),
            &self.calls,
        )))
    }
}

/// The Reality Defender client.
pub struct RealityDefender {
    base_url: String,
    api_key: Secret,
    api: Http,
    upload: Http,
    guard: AddressGuard,
    not_found_grace: Duration,
}

impl RealityDefender {
    /// Reads an error answer: a quota code is a (permanent) quota error, the rest are refusals.
    fn refusal(step: &str, status: StatusCode, body: &[u8]) -> CallError {
        let code = serde_json::from_slice::<ErrorBody>(body)
            .unwrap_or_default()
            .code
            .unwrap_or_default();
        if status == StatusCode::BAD_REQUEST && QUOTA_CODES.contains(&code.as_str()) {
            return CallError::Quota {
                message: format!("the account's plan refuses uploads ({code})"),
                permanent: true,
            };
        }
        match status {
            StatusCode::UNAUTHORIZED => {
                CallError::Refused(format!("{step}: the API key was refused (401)"))
            }
            _ if code.is_empty() => CallError::Refused(format!("{step}: HTTP {}", status.as_u16())),
            _ => CallError::Refused(format!("{step}: HTTP {} ({code})", status.as_u16())),
        }
    }

    /// Presign, upload: the id to poll and when the upload ended.
    async fn submit(
        &self,
        media: &MediaInput,
        deadline: Instant,
    ) -> Result<(String, Instant), CallError> {
        let file_name = format!(
            "{}.{}",
            &media.info.sha256[..16.min(media.info.sha256.len())],
            extension(media.info.format)
        );
        let url = format!("{}/api/files/aws-presigned", self.base_url);
        let body = serde_json::json!({ "fileName": file_name }).to_string();
        let reply = self
            .api
            .send("presign", deadline, || {
                self.api
                    .client
                    .post(&url)
                    .header("X-API-KEY", self.api_key.expose())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
            })
            .await?;
        if !reply.status.is_success() {
            return Err(Self::refusal("presign", reply.status, &reply.body));
        }
        let presigned: Presigned = serde_json::from_slice(&reply.body)
            .map_err(|err| CallError::Malformed(format!("presign: {err}")))?;
        let (Some(request_id), Some(signed_url)) = (
            presigned.request_id.filter(|id| !id.is_empty()),
            presigned
                .response
                .and_then(|r| r.signed_url)
                .filter(|u| !u.is_empty()),
        ) else {
            return Err(CallError::Malformed(
                "presign: no requestId or signedUrl".to_owned(),
            ));
        };
        let signed_url = check_handed_url(&self.guard, &signed_url)?;
        // The bytes go to the upload host without the API key.
        let reply = self
            .upload
            .send("upload", deadline, || {
                self.upload
                    .client
                    .put(signed_url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    // The image's shared buffer, not a copy of it.
                    .body(reqwest::Body::from(bytes::Bytes::from_owner(
                        media.bytes.clone(),
                    )))
            })
            .await?;
        if !reply.status.is_success() {
            return Err(Self::refusal("upload", reply.status, &reply.body));
        }
        Ok((request_id, Instant::now()))
    }

    /// Polls until the answer is final.
    async fn poll(
        &self,
        request_id: &str,
        uploaded: Instant,
        deadline: Instant,
    ) -> Result<(wire::Mapped, Vec<u8>), CallError> {
        let url = format!("{}/api/media/users/{request_id}", self.base_url);
        for attempt in 0u32.. {
            let reply = self
                .api
                .send("result", deadline, || {
                    self.api
                        .client
                        .get(&url)
                        .header("X-API-KEY", self.api_key.expose())
                })
                .await?;
            // Pending: a `null` or ANALYZING summary, or a 404 soon after the upload.
            match reply.status {
                status if status.is_success() => match wire::read_detail(&reply.body) {
                    Ok(Progress::Final(mapped)) => return Ok((*mapped, reply.body)),
                    Ok(Progress::Pending) => {}
                    Err(why) => return Err(CallError::Malformed(why)),
                },
                StatusCode::NOT_FOUND if uploaded.elapsed() < self.not_found_grace => {}
                status => return Err(Self::refusal("result", status, &reply.body)),
            }
            let delay = self.api.backoff.delay(attempt, crate::call::unit_random());
            if Instant::now() + delay >= deadline {
                break;
            }
            tokio::time::sleep(delay).await;
        }
        Err(CallError::TimedOut {
            secs: self.api.deadline_secs,
            last: "the analysis was still ANALYZING".to_owned(),
        })
    }
}

#[async_trait]
impl Vendor for RealityDefender {
    async fn ask(
        &self,
        media: &MediaInput,
        _options: &AnalyzeOptions,
        deadline: Instant,
    ) -> Result<Answer, CallError> {
        // UNABLE_TO_EVALUATE is RD's processing error ("try again"): one new upload.
        let mut tries = 0;
        let (mapped, raw) = loop {
            tries += 1;
            let (request_id, uploaded) = self.submit(media, deadline).await?;
            let (mapped, raw) = self.poll(&request_id, uploaded, deadline).await?;
            if mapped.status != "UNABLE_TO_EVALUATE" || tries == 2 {
                break (mapped, raw);
            }
            tracing::info!(provider = NAME, rd_request_id = %request_id, "UNABLE_TO_EVALUATE: uploading once more");
        };
        Ok(Answer {
            verdict: mapped.verdict,
            score: mapped.score,
            vendor_status: mapped.status,
            vendor_request_id: mapped.request_id,
            models: mapped.models,
            reasons: mapped.reasons,
            model_results: mapped.model_results,
            raw,
        })
    }
}

/// The file extension RD reads the media type from.
fn extension(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "jpg",
        ImageFormat::Png => "png",
        ImageFormat::Webp => "webp",
        ImageFormat::Heic => "heic",
        ImageFormat::Bmp => "bmp",
        ImageFormat::Tiff => "tiff",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::MemoryUsage;
    use crate::plugin::{documented_example, key_file};
    use arbiter_core::settings::section_with;
    use std::sync::Arc;

    #[tokio::test]
    async fn the_documented_example_parses_and_builds_a_healthy_provider() {
        let yaml = documented_example(
            include_str!("client.rs"),
            "pub struct RealityDefenderConfig",
        );
        let config: RealityDefenderConfig =
            section_with("detector.providers.reality_defender", &yaml).unwrap();
        assert_eq!(config.base_url, "https://api.prd.realitydefender.xyz");
        assert_eq!(config.api_key_file, "/etc/arbiter/reality-defender.key");
        assert_eq!(config.deadline_secs, 120);
        assert_eq!(config.calls.monthly_budget, 1000);
        // The example's key file is the operator's; this one stands in for it.
        let config = RealityDefenderConfig {
            api_key_file: key_file("reality_defender"),
            ..config
        };
        let context = BuildContext {
            guard: AddressGuard::default(),
            usage: Arc::new(MemoryUsage::default()),
        };
        let Some(Member::Provider(provider)) = config.build(&context).unwrap() else {
            panic!("a vendor with a key is built as a provider");
        };
        assert_eq!(provider.name(), NAME);
        assert_eq!(provider.status().budget_left, Some(1000));
        assert!(
            arbiter_core::Detector::health(provider.as_ref())
                .await
                .is_ok()
        );
        // Without a key it is not configured.
        let unkeyed = RealityDefenderConfig::default();
        assert!(unkeyed.build(&context).unwrap().is_none());
    }
}
