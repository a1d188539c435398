//! The Reality AI image-authentication API (the integration guide's `POST /v1/analyze`, which
//! Arbiter itself also serves): one synchronous call with a Bearer key, the image as base64;
//! 429 with `Retry-After` and 5xx are retried under the deadline, the guide's error codes are
//! refusals, and its `request_id` is kept.

use crate::call::{Answer, Backoff, CallError, Http, Vendor};
use crate::config::{CallLimits, Secret};
use crate::plugin::{BuildContext, DetectorPlugin};
use crate::route::Member;
use arbiter_core::{AnalyzeOptions, MediaInput, ModelResults, VendorModel, Verdict, VerdictLabel};
use async_trait::async_trait;
use base64::Engine;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The provider's name in routes, analyses and policies.
pub const NAME: &str = "reality_ai";

/// The Reality AI API's configuration (`detector.providers.reality_ai`).
///
/// ```yaml
/// base_url: https://api.checkreality.ai
/// api_key_file: /etc/arbiter/reality-ai.key
/// calls: { max_concurrency: 8, monthly_budget: 0 }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealityAiConfig {
    /// The API's base URL, without `/v1`.
    pub base_url: String,
    /// The API key, sent as `Authorization: Bearer`. Empty (and no `api_key_file`): the provider
    /// is not configured, and a route naming it is refused at start-up.
    pub api_key: Secret,
    /// A file whose first line is the API key, instead of `api_key`.
    pub api_key_file: String,
    /// Seconds one HTTP exchange may take.
    pub timeout_secs: u64,
    /// Seconds one analysis may take with its retries; then it fails as timed out.
    pub deadline_secs: u64,
    /// Milliseconds before the first retry of a 5xx or network error; doubles up to 10 s, each
    /// wait moved by up to 20% either way (a 429's `Retry-After` is honoured instead).
    pub retry_initial_ms: u64,
    /// Concurrency, monthly budget and circuit breaker.
    pub calls: CallLimits,
}

impl Default for RealityAiConfig {
    /// The `detector.providers.reality_ai` section of the committed `arbiter.yaml`.
    fn default() -> Self {
        arbiter_core::settings::defaults("detector.providers.reality_ai")
    }
}

/// The provider `reality_ai`: the client behind its call limits; `None` when no API key is
/// configured.
impl DetectorPlugin for RealityAiConfig {
    fn name(&self) -> &'static str {
        NAME
    }

    fn build(&self, context: &BuildContext) -> Result<Option<Member>, crate::BuildError> {
        let api_key = crate::config::read_key(
            &self.api_key,
            &self.api_key_file,
            "detector.providers.reality_ai.api_key",
        )?;
        if api_key.is_empty() {
            return Ok(None);
        }
        let deadline_secs = self.deadline_secs.max(1);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(self.timeout_secs.max(1)))
            .build()
            .map_err(|err| crate::BuildError::Config {
                key: "detector.providers.reality_ai".to_owned(),
                message: format!("cannot build an HTTP client: {err}"),
            })?;
        let initial = Duration::from_millis(self.retry_initial_ms.max(1));
        let client = RealityAi {
            url: format!("{}/v1/analyze", self.base_url.trim_end_matches('/')),
            api_key,
            http: Http {
                client,
                backoff: Backoff {
                    initial,
                    max: initial.max(Duration::from_secs(10)),
                },
                deadline_secs,
            },
        };
        Ok(Some(context.provider(
            NAME,
            Box::new(client),
            Duration::from_secs(deadline_secs),
            &self.calls,
        )))
    }
}

/// The Reality AI client.
pub struct RealityAi {
    url: String,
    api_key: Secret,
    http: Http,
}

/// The guide's response, read leniently.
#[derive(Debug, Deserialize)]
struct Response {
    request_id: Option<String>,
    verdict: Verdict,
    #[serde(default)]
    model_results: Option<serde_json::Value>,
}

/// The guide's error body.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    error: Option<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    code: Option<String>,
}

#[async_trait]
impl Vendor for RealityAi {
    async fn ask(
        &self,
        media: &MediaInput,
        options: &AnalyzeOptions,
        deadline: Instant,
    ) -> Result<Answer, CallError> {
        let mut body = serde_json::json!({
            "image_base64": base64::engine::general_purpose::STANDARD.encode(&media.bytes),
        });
        if !options.models.is_empty() || !options.metadata_analysis || options.return_heatmap {
            let mut asked = serde_json::Map::new();
            if !options.models.is_empty() {
                asked.insert("models".into(), serde_json::json!(options.models));
            }
            asked.insert("metadata_analysis".into(), options.metadata_analysis.into());
            asked.insert("return_heatmap".into(), options.return_heatmap.into());
            body["options"] = serde_json::Value::Object(asked);
        }
        let body = body.to_string();
        let reply = self
            .http
            .send("analyze", deadline, || {
                self.http
                    .client
                    .post(&self.url)
                    .bearer_auth(self.api_key.expose())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
            })
            .await?;
        if !reply.status.is_success() {
            let code = serde_json::from_slice::<ErrorBody>(&reply.body)
                .unwrap_or_default()
                .error
                .and_then(|e| e.code)
                .unwrap_or_default();
            return Err(match (reply.status, code.as_str()) {
                (StatusCode::UNAUTHORIZED, _) => {
                    CallError::Refused("analyze: the API key was refused (401)".to_owned())
                }
                (_, "QUOTA_EXCEEDED") => CallError::Quota {
                    message: "the account's daily quota is spent (QUOTA_EXCEEDED)".to_owned(),
                    permanent: false,
                },
                (status, "") => CallError::Refused(format!("analyze: HTTP {}", status.as_u16())),
                (status, code) => {
                    CallError::Refused(format!("analyze: HTTP {} ({code})", status.as_u16()))
                }
            });
        }
        let response: Response = serde_json::from_slice(&reply.body)
            .map_err(|err| CallError::Malformed(format!("analyze: {err}")))?;
        let model_results: ModelResults = response
            .model_results
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let verdict = Verdict {
            confidence: response.verdict.confidence.clamp(0.0, 1.0),
            ..response.verdict
        };
        let score = match verdict.label {
            VerdictLabel::AiGenerated | VerdictLabel::Manipulated => Some(verdict.confidence),
            VerdictLabel::Authentic => Some(1.0 - verdict.confidence),
            VerdictLabel::Inconclusive => None,
        };
        let models = model_results
            .iter()
            .map(|(kind, result)| VendorModel {
                name: kind.result_key().to_owned(),
                status: result.label.as_str().to_owned(),
                score: result.score,
            })
            .collect();
        Ok(Answer {
            verdict,
            score,
            vendor_status: verdict.label.as_str().to_owned(),
            vendor_request_id: response.request_id,
            models,
            reasons: Vec::new(),
            model_results,
            raw: reply.body,
        })
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
        let yaml = documented_example(include_str!("reality_ai.rs"), "pub struct RealityAiConfig");
        let config: RealityAiConfig = section_with("detector.providers.reality_ai", &yaml).unwrap();
        assert_eq!(config.base_url, "https://api.checkreality.ai");
        assert_eq!(config.api_key_file, "/etc/arbiter/reality-ai.key");
        assert_eq!(config.calls.max_concurrency, 8);
        // The example's key file is the operator's; this one stands in for it.
        let config = RealityAiConfig {
            api_key_file: key_file("reality_ai"),
            ..config
        };
        let context = BuildContext {
            guard: Default::default(),
            usage: Arc::new(MemoryUsage::default()),
        };
        let Some(Member::Provider(provider)) = config.build(&context).unwrap() else {
            panic!("a vendor with a key is built as a provider");
        };
        assert_eq!(provider.name(), NAME);
        assert_eq!(provider.max_concurrency(), 8);
        assert!(
            arbiter_core::Detector::health(provider.as_ref())
                .await
                .is_ok()
        );
        assert!(
            RealityAiConfig::default()
                .build(&context)
                .unwrap()
                .is_none()
        );
    }
}
