//! The logic of one analysis (`POST /v1/analyze`, a job, a flow's image), apart from HTTP: fetch
//! or decode the image, intake, the idempotent result cache (shared by concurrent identical
//! requests, and across replicas by [`crate::single_flight`]), the detector, the optional flow
//! decision, and the record.
//!
//! The handles an analysis uses are an [`Analyzer`]; whoever holds them (the server's state, the
//! job runner's context) lends one through [`AnalysisHandles`].

use crate::clock::Clock;
pub use crate::detector_result::{DetectorResult, request_row};
use crate::error::EngineError;
use crate::pipeline::{Decided, Pipeline, Record};
use arbiter_core::{
    Analysis, AnalysisResponse, AnalyzeOptions, Decision, Detector, ErrorCode, Facts, MediaInput,
    ModelKind, RequestId,
};
use arbiter_db::requests::CachedLookups;
use arbiter_db::sea_orm::ConnectionTrait;
use arbiter_detect::IntakeLimits;
use base64::Engine as _;
use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// Fetches the image of an `image_url`, under the deployment's outbound rules.
#[async_trait::async_trait]
pub trait ImageFetcher: Send + Sync {
    /// The bytes at `url`, at most `max_bytes` of them; a refusal names why (URL_UNREACHABLE,
    /// FILE_SIZE_EXCEEDED).
    async fn fetch_image(&self, url: &str, max_bytes: u64) -> Result<Vec<u8>, EngineError>;
}

/// Where an analysis reports what it did, for the process's metrics.
pub trait AnalysisMetrics: Send + Sync {
    /// A cache lookup: whether it found an earlier result.
    fn cache(&self, hit: bool);
    /// A detector run and how long it took.
    fn detector(&self, elapsed: Duration);
    /// A single-flight cache miss: whether this request leads (or follows another replica's).
    fn single_flight(&self, leader: bool);
}

/// The settings an analysis follows, taken from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct AnalysisSettings {
    /// How long a result may be reused by identical requests (`cache.ttl_secs`); 0: never.
    pub cache_ttl_secs: u64,
    /// Whether replicas share one detector run for identical requests (`cache.single_flight`).
    pub single_flight: bool,
    /// How long a request may take (`limits.request_timeout_secs`): a single-flight follower
    /// waits no longer.
    pub request_timeout_secs: u64,
    /// Whether thumbnails are kept for report cards (`reports.thumbnails`).
    pub thumbnails: bool,
}

/// The handles one analysis uses, borrowed from their holder.
#[derive(Clone, Copy)]
pub struct Analyzer<'a> {
    /// Intake, detector, flows, policies, storage.
    pub pipeline: &'a Pipeline,
    /// The time.
    pub clock: &'a Arc<dyn Clock>,
    /// Fetches `image_url`.
    pub fetcher: &'a dyn ImageFetcher,
    /// Earlier results read for concurrent requests together.
    pub cached_lookups: &'a CachedLookups,
    /// Analyses under way and recent results, shared by identical requests.
    pub inflight: &'a Inflight,
    /// Where cache, detector and single-flight counts go.
    pub metrics: &'a dyn AnalysisMetrics,
    /// The settings in force.
    pub settings: AnalysisSettings,
    /// This replica's id, in the single-flight leases it takes.
    pub replica_id: &'a str,
}

/// What holds the handles of an analysis and lends them.
pub trait AnalysisHandles: Sync {
    /// The handles, borrowed.
    fn analyzer(&self) -> Analyzer<'_>;
}

impl AnalysisHandles for Analyzer<'_> {
    fn analyzer(&self) -> Analyzer<'_> {
        *self
    }
}

/// Where the image comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// Bytes in the request (decoded base64 or a multipart file).
    Bytes(Vec<u8>),
    /// Bytes in the request, already taken in (hashed, sniffed, checked against the limits).
    Taken(MediaInput),
    /// A URL to fetch.
    Url(String),
}

impl ImageSource {
    /// Takes in the bytes of a request now; a URL is left for [`obtain`] to fetch.
    pub fn take_in(self, limits: &IntakeLimits) -> Result<Self, EngineError> {
        match self {
            ImageSource::Bytes(bytes) => intake(bytes, limits).map(ImageSource::Taken),
            other => Ok(other),
        }
    }
}

fn intake(bytes: Vec<u8>, limits: &IntakeLimits) -> Result<MediaInput, EngineError> {
    arbiter_detect::intake(bytes, limits)
        .map_err(|err| EngineError::refused(err.code(), err.to_string()))
}

/// One analysis request, parsed.
#[derive(Debug, Clone)]
pub struct AnalyzeCall {
    /// The image.
    pub source: ImageSource,
    /// Detector options.
    pub options: AnalyzeOptions,
    /// The caller's reference.
    pub reference_id: Option<String>,
    /// A flow and its domain input, for a decision.
    pub flow: Option<(String, Value)>,
}

/// The response body: the guide's fields, whether the result came from the cache, and the
/// decision when a flow was named.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AnalyzeReply {
    /// The guide's response.
    #[serde(flatten)]
    pub result: AnalysisResponse,
    /// Whether the detector result was reused from an earlier identical request.
    pub cached: bool,
    /// The request whose detector result was reused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<RequestId>,
    /// The policy decision, when `?flow=` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub decision: Option<Value>,
}

/// A shared detector result: the analysis and the request that produced it.
type Shared = Arc<OnceCell<Result<(Analysis, RequestId), Arc<EngineError>>>>;

/// Analyses under way, and recent committed results, by tenant and cache key. The recent results
/// spare the cache-hit path a database read; the database stays the source of truth.
#[derive(Debug, Clone, Default)]
pub struct Inflight {
    running: Arc<Mutex<HashMap<String, Shared>>>,
    recent: Arc<Mutex<HashMap<String, Recent>>>,
}

/// A committed result: the analysis, the request that produced it, and when.
type Recent = (Arc<Analysis>, RequestId, DateTime<Utc>);

/// How many recent results are kept in memory before the oldest half is dropped.
const RECENT_RESULTS: usize = 256;

impl Inflight {
    /// A recent committed result for a key, created at or after `since`.
    fn recent(&self, key: &str, since: DateTime<Utc>) -> Option<(Analysis, RequestId)> {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (analysis, origin, at) = recent.get(key)?;
        (*at >= since).then(|| (Analysis::clone(analysis), origin.clone()))
    }

    /// Remembers a committed result.
    fn remember(&self, key: &str, analysis: &Analysis, origin: &RequestId, at: DateTime<Utc>) {
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if recent.len() >= RECENT_RESULTS {
            let mut times: Vec<_> = recent.values().map(|(_, _, at)| *at).collect();
            times.sort();
            let cutoff = times[times.len() / 2];
            recent.retain(|_, (_, _, at)| *at > cutoff);
        }
        recent.insert(
            key.to_owned(),
            (Arc::new(analysis.clone()), origin.clone(), at),
        );
    }

    /// The cell for a key, and whether this caller created it (and so must remove it).
    fn join(&self, key: &str) -> (Shared, bool) {
        let mut map = self
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match map.get(key) {
            Some(cell) => (cell.clone(), false),
            None => {
                let cell = Shared::default();
                map.insert(key.to_owned(), cell.clone());
                (cell, true)
            }
        }
    }

    fn leave(&self, key: &str) {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key);
    }
}

/// Decodes `image_base64` (standard alphabet, an optional `data:...;base64,` prefix).
pub fn decode_base64(encoded: &str) -> Result<Vec<u8>, EngineError> {
    let encoded = encoded.trim();
    // Only a string that starts as a data URL is searched for the end of its header.
    let encoded = match encoded.strip_prefix("data:") {
        Some(url) => url.split_once(";base64,").map_or(encoded, |(_, data)| data),
        None => encoded,
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|err| EngineError::invalid(format!("image_base64 is not valid base64: {err}")))
}

/// SHA-256 over the image hash, the detector and the options: requests with the same key may
/// share a detector result.
pub fn cache_key(image_sha256: &str, detector: &str, options: &AnalyzeOptions) -> String {
    let mut models = options.models.clone();
    models.sort();
    models.dedup();
    let options = serde_json::json!({
        "models": models,
        "metadata_analysis": options.metadata_analysis,
        "return_heatmap": options.return_heatmap,
    });
    hex::encode(Sha256::digest(
        format!("{image_sha256}\n{detector}\n{options}").as_bytes(),
    ))
}

/// Runs one analysis request for a tenant: the path of `POST /v1/analyze`, also taken by the
/// console's scans.
pub async fn analyze_for(
    handles: &impl AnalysisHandles,
    tenant: &str,
    request_id: &RequestId,
    call: AnalyzeCall,
) -> Result<AnalyzeReply, EngineError> {
    let state = handles.analyzer();
    if let Some((flow, input)) = &call.flow {
        state.pipeline.check_input(flow, input)?;
    }
    let detector = state
        .pipeline
        .detector_for(
            call.flow.as_ref().map(|(f, _)| f.as_str()),
            call.flow.as_ref().map(|(_, i)| i),
        )
        .clone();
    let obtained = obtain(
        &state,
        tenant,
        request_id,
        call.source,
        &call.options,
        &detector,
    )
    .await?;
    let decided = record(
        &state,
        tenant,
        request_id,
        &call.reference_id,
        call.flow.as_ref(),
        &obtained,
    )
    .await?;
    obtained.committed(&state, request_id);
    // Kept after the decision commits, on its own: a thumbnail that fails to be written is
    // logged, and its report says it has none.
    if let Err(err) = crate::reports::keep_thumbnail(
        state.pipeline.db().conn(),
        tenant,
        &obtained.analysis.image_info.sha256,
        obtained.thumbnail.as_ref(),
        obtained.at,
    )
    .await
    {
        tracing::warn!(error = %err, "thumbnail not kept");
    }
    Ok(reply(
        request_id,
        call.reference_id.clone(),
        obtained.at,
        obtained.analysis.clone(),
        obtained.cached_from.clone(),
        decided,
    ))
}

/// A detector result held by the request that obtained it. While it is held, identical
/// requests wait for it; once the request's record is committed, [`HeldResult::committed`]
/// offers it to later ones.
#[derive(Debug)]
pub struct HeldResult {
    /// The result.
    result: DetectorResult,
    /// The tenant and cache key.
    slot: String,
    /// Set while this request leads the lookup identical requests wait for.
    _lead: Lead,
    /// Set while this request leads identical requests on other replicas.
    _flight: Option<crate::single_flight::Held>,
}

impl std::ops::Deref for HeldResult {
    type Target = DetectorResult;

    fn deref(&self) -> &DetectorResult {
        &self.result
    }
}

impl HeldResult {
    /// Offers a fresh, committed result to later identical requests.
    pub fn committed(&self, handles: &impl AnalysisHandles, request_id: &RequestId) {
        let state = handles.analyzer();
        if state.settings.cache_ttl_secs > 0 && self.cached_from.is_none() {
            state
                .inflight
                .remember(&self.slot, &self.analysis, request_id, self.at);
        }
    }
}

/// Frees a shared lookup slot when the request that leads it ends, however it ends.
#[derive(Debug)]
struct Lead(Option<(Inflight, String)>);

impl Drop for Lead {
    fn drop(&mut self) {
        if let Some((inflight, slot)) = &self.0 {
            inflight.leave(slot);
        }
    }
}

/// Fetches or decodes the image, takes it in, and finds its detector result: in memory, in the
/// database within the cache TTL, or from `detector` (the image's route). Identical concurrent
/// requests share one lookup; the route is part of the cache key.
pub async fn obtain(
    handles: &impl AnalysisHandles,
    tenant: &str,
    request_id: &RequestId,
    source: ImageSource,
    options: &AnalyzeOptions,
    detector: &Arc<dyn Detector>,
) -> Result<HeldResult, EngineError> {
    let state = handles.analyzer();
    let pipeline = state.pipeline;
    let max_bytes = pipeline.limits().max_bytes;
    let media = match source {
        ImageSource::Taken(media) => media,
        ImageSource::Bytes(bytes) => intake(bytes, pipeline.limits())?,
        ImageSource::Url(url) => {
            let bytes = state.fetcher.fetch_image(&url, max_bytes).await?;
            intake(bytes, pipeline.limits())?
        }
    };
    let key = cache_key(&media.info.sha256, detector.name(), options);
    let now = state.clock.now().trunc_subsecs(3);
    let ttl_secs = state.settings.cache_ttl_secs;

    // With the cache on, identical concurrent requests share one cell: the first runs the lookup
    // (memory, then the database, then the detector) and the others wait for its result.
    let slot = format!("{tenant}\n{key}");
    let (cell, leader) = if ttl_secs > 0 {
        state.inflight.join(&slot)
    } else {
        (Shared::default(), false)
    };
    let lead = Lead(leader.then(|| (state.inflight.clone(), slot.clone())));
    // The single-flight lease this request leads with, held until it ends.
    let flight: Mutex<Option<crate::single_flight::Held>> = Mutex::new(None);
    let looked_up = cell
        .get_or_init(|| async {
            let found: Result<_, EngineError> = async {
                if ttl_secs > 0 {
                    let since = now
                        - chrono::Duration::seconds(
                            i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2_000),
                        );
                    if let Some(found) = state.inflight.recent(&slot, since) {
                        return Ok(found);
                    }
                    let query = (tenant.to_owned(), key.clone(), since);
                    if let Some(row) = state.cached_lookups.get(query).await? {
                        return crate::single_flight::stored_result(&row);
                    }
                    // Missed here: led or followed across replicas.
                    match crate::single_flight::begin(state, tenant, &key, since).await? {
                        crate::single_flight::Flight::Found(found) => return Ok(*found),
                        crate::single_flight::Flight::Run(held) => {
                            *flight.lock().unwrap_or_else(|p| p.into_inner()) = held;
                        }
                    }
                }
                Ok((
                    run_detector(state, detector, &media, options).await?,
                    request_id.clone(),
                ))
            }
            .await;
            found.map_err(Arc::new)
        })
        .await;
    let (analysis, origin) = match looked_up {
        Ok(found) => found.clone(),
        Err(err) => return Err(EngineError::Shared(err.clone())),
    };
    let cached = &origin != request_id;
    if ttl_secs > 0 {
        state.metrics.cache(cached);
    }
    // A result reused from an earlier request of the tenant's has its thumbnail kept already.
    let thumbnail = if cached {
        None
    } else {
        crate::reports::make_thumbnail(state.settings.thumbnails, &media).await
    };
    Ok(HeldResult {
        result: DetectorResult {
            analysis,
            cached_from: cached.then_some(origin),
            cache_key: key,
            at: now,
            thumbnail,
        },
        slot,
        _lead: lead,
        _flight: flight.into_inner().unwrap_or_else(|p| p.into_inner()),
    })
}

async fn run_detector(
    state: Analyzer<'_>,
    detector: &Arc<dyn Detector>,
    media: &arbiter_core::MediaInput,
    options: &AnalyzeOptions,
) -> Result<Analysis, EngineError> {
    let started = Instant::now();
    let analysis = state.pipeline.analyze(detector, media, options).await?;
    state.metrics.detector(started.elapsed());
    Ok(analysis)
}

async fn record(
    state: &Analyzer<'_>,
    tenant: &str,
    request_id: &RequestId,
    reference_id: &Option<String>,
    flow: Option<&(String, Value)>,
    obtained: &DetectorResult,
) -> Result<Option<Decided>, EngineError> {
    let analysis = &obtained.analysis;
    let decided = match flow {
        Some((flow, input)) => Some(state.pipeline.apply_policy(flow, input, analysis)?),
        None => None,
    };
    let record = Record {
        tenant,
        request_id,
        reference_id: reference_id.as_deref(),
        analysis,
        decided: decided.as_ref(),
        request_row: Some(request_row(
            tenant,
            request_id,
            reference_id.clone(),
            obtained,
        )?),
        case: None,
    };
    state.pipeline.record(&record).await?;
    Ok(decided)
}

/// The response body for a stored or fresh result.
pub fn reply(
    request_id: &RequestId,
    reference_id: Option<String>,
    processed_at: DateTime<Utc>,
    analysis: Analysis,
    cached_from: Option<RequestId>,
    decided: Option<Decided>,
) -> AnalyzeReply {
    AnalyzeReply {
        result: AnalysisResponse {
            request_id: request_id.clone(),
            reference_id,
            status: "complete".to_owned(),
            processed_at,
            verdict: analysis.verdict,
            model_results: analysis.model_results,
            image_info: analysis.image_info,
            processing_time_ms: analysis.processing_time_ms,
            providers: analysis.providers,
        },
        cached: cached_from.is_some(),
        cached_from,
        decision: decided.map(|d| d.decision_summary()),
    }
}

/// A tenant's stored result by id, as the original request was answered (with its decision,
/// when a flow decided it); another tenant's is not found.
pub async fn stored_reply(
    conn: &impl ConnectionTrait,
    tenant: &str,
    request_id: &str,
) -> Result<AnalyzeReply, EngineError> {
    let row = arbiter_db::requests::get(conn, tenant, request_id)
        .await?
        .ok_or_else(|| {
            EngineError::not_found(format!("no request {request_id} for this tenant"))
        })?;
    let id: RequestId = row.request_id.parse().map_err(EngineError::internal)?;
    let analysis: Analysis = serde_json::from_str(&row.analysis).map_err(EngineError::internal)?;
    let cached_from = row
        .cached_from
        .as_deref()
        .map(str::parse::<RequestId>)
        .transpose()
        .map_err(EngineError::internal)?;
    let decided = match arbiter_db::decisions::get(conn, tenant, request_id).await? {
        Some(stored) => Some(Decided {
            flow: stored.flow.clone(),
            event: None,
            review_queue: None,
            facts: serde_json::from_str::<Facts>(&stored.facts).map_err(EngineError::internal)?,
            decision: Decision {
                action: stored.action,
                reason: stored.reason,
                fired: serde_json::from_str(&stored.fired).map_err(EngineError::internal)?,
                shadow: Vec::new(),
                description: None,
                severity: 0,
                policy: arbiter_core::PolicyRef {
                    id: stored.policy_id,
                    version: u32::try_from(stored.policy_version).unwrap_or_default(),
                    sha256: stored.policy_sha256,
                },
            },
        }),
        None => None,
    };
    Ok(reply(
        &id,
        row.reference_id,
        row.created_at,
        analysis,
        cached_from,
        decided,
    ))
}

/// Checks a caller's `reference_id`: at most `max_len` characters from `A-Z a-z 0-9 . _ - : / @ #`.
pub fn check_reference_id(reference_id: &str, max_len: usize) -> Result<(), EngineError> {
    if reference_id.is_empty() || reference_id.chars().count() > max_len {
        return Err(EngineError::invalid(format!(
            "reference_id must be 1 to {max_len} characters"
        )));
    }
    if let Some(bad) = reference_id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-:/@#".contains(*c)))
    {
        return Err(EngineError::refused(
            ErrorCode::InvalidRequest,
            format!("reference_id may hold only letters, digits and . _ - : / @ #; found {bad:?}"),
        ));
    }
    Ok(())
}

/// `options` of an analysis request.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestOptions {
    /// Models to run: `["all"]` (the default) or a subset of `gan`, `diffusion`, `noise`,
    /// `metadata`, `frequency`, `splicing`.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub models: Option<Vec<String>>,
    /// Include EXIF and provenance analysis (default true).
    #[serde(default)]
    pub metadata_analysis: Option<bool>,
    /// Include a manipulation heatmap (default false).
    #[serde(default)]
    pub return_heatmap: Option<bool>,
    /// Deliver the result to this URL and answer 202 at once (http or https; its host must
    /// resolve to an address the server may reach, which the document cannot state).
    #[serde(default)]
    #[schema(pattern = "^https?://[^/?#]+")]
    pub webhook_url: Option<String>,
}

/// Checks `options` (without `webhook_url`) and builds the detector options.
pub fn parse_options(options: RequestOptions) -> Result<AnalyzeOptions, EngineError> {
    let models = match options.models.as_deref() {
        None => Vec::new(),
        Some(names) if names.iter().any(|n| n == "all") => Vec::new(),
        Some([]) => return Err(EngineError::invalid("options.models is empty; use [\"all\"] or name models")),
        Some(names) => names
            .iter()
            .map(|name| {
                ModelKind::from_short_name(name).ok_or_else(|| {
                    EngineError::invalid(format!("options.models: unknown model {name:?}; use all, gan, diffusion, noise, metadata, frequency or splicing"))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(AnalyzeOptions {
        models,
        metadata_analysis: options.metadata_analysis.unwrap_or(true),
        return_heatmap: options.return_heatmap.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_name_models_by_their_short_names_and_default_to_all() {
        let all = parse_options(RequestOptions::default()).unwrap();
        assert!(all.models.is_empty() && all.metadata_analysis && !all.return_heatmap);
        let named = |names: &[&str]| RequestOptions {
            models: Some(names.iter().map(|n| (*n).to_owned()).collect()),
            ..RequestOptions::default()
        };
        assert!(
            parse_options(named(&["gan", "all"]))
                .unwrap()
                .models
                .is_empty()
        );
        assert_eq!(
            parse_options(named(&["gan", "noise"]))
                .unwrap()
                .models
                .len(),
            2
        );
        for bad in [named(&[]), named(&["colour"])] {
            let err = parse_options(bad).unwrap_err();
            assert!(
                matches!(
                    &err,
                    EngineError::Refused {
                        code: ErrorCode::InvalidRequest,
                        ..
                    }
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn image_base64_may_be_a_data_url() {
        assert_eq!(decode_base64(" aGk= ").unwrap(), b"hi");
        assert_eq!(decode_base64("data:image/png;base64,aGk=").unwrap(), b"hi");
        // Only a data URL's header is skipped: the same text later in the string is not one.
        let err = decode_base64("aGk=;base64,aGk=").unwrap_err().to_string();
        assert!(err.starts_with("image_base64 is not valid base64"), "{err}");
        assert!(decode_base64("data:image/png,aGk=").is_err());
    }

    #[test]
    fn the_cache_key_ignores_the_order_and_repeats_of_models_but_not_the_detector() {
        let options = |models: &[&str]| AnalyzeOptions {
            models: serde_json::from_value(serde_json::json!(models)).unwrap(),
            metadata_analysis: true,
            return_heatmap: false,
        };
        let key = cache_key("abc", "local", &options(&["noise", "metadata"]));
        assert_eq!(
            key,
            cache_key("abc", "local", &options(&["metadata", "noise", "noise"]))
        );
        assert_ne!(
            key,
            cache_key("abc", "vendor", &options(&["noise", "metadata"]))
        );
        assert_ne!(
            key,
            cache_key("abd", "local", &options(&["noise", "metadata"]))
        );
        assert_ne!(key, cache_key("abc", "local", &options(&["noise"])));
        assert_eq!(key.len(), 64);
    }

    #[test]
    fn a_reference_id_is_short_and_plain() {
        assert!(check_reference_id("claim-1/photo@2#a:b.c_d", 64).is_ok());
        assert!(check_reference_id("", 64).is_err());
        assert!(check_reference_id("abcd", 3).is_err());
        let err = check_reference_id("a b", 64).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        assert!(err.to_string().contains("' '"), "{err}");
    }

    /// Analyses through [`analyze_for`], with the result cache and the counts it reports.
    #[cfg(feature = "flow-kyc")]
    mod cached {
        use super::*;
        use crate::test_support::{Counts, Handles, handles, image};
        use arbiter_db::{Db, DbTarget};
        use serde_json::json;

        fn call(seed: u8, models: Option<Vec<ModelKind>>) -> AnalyzeCall {
            AnalyzeCall {
                source: ImageSource::Bytes(image(seed).bytes.to_vec()),
                options: AnalyzeOptions {
                    models: models.unwrap_or_default(),
                    ..AnalyzeOptions::default()
                },
                reference_id: Some(format!("ref-{seed}")),
                flow: Some((
                    "kyc".to_owned(),
                    json!({"image_role": "selfie", "liveness": {"passed": true}}),
                )),
            }
        }

        async fn run(handles: &Handles, tenant: &str, call: AnalyzeCall) -> AnalyzeReply {
            analyze_for(handles, tenant, &RequestId::new(), call)
                .await
                .unwrap()
        }

        #[tokio::test]
        async fn an_identical_request_within_the_ttl_reuses_the_result() {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
                .await
                .unwrap();
            let handles = handles(&db, 60);
            let first = run(&handles, "acme", call(40, None)).await;
            assert!(!first.cached);
            assert_eq!(first.decision.as_ref().unwrap()["action"], "reject");
            let again = run(&handles, "acme", call(40, None)).await;
            assert!(again.cached);
            assert_eq!(again.cached_from.as_ref(), Some(&first.result.request_id));
            assert_eq!(
                again.result.image_info.sha256,
                first.result.image_info.sha256
            );
            assert_eq!(again.decision, first.decision, "decided again, the same");
            assert_eq!(handles.counts.read(), (1, 1, 1));

            // Another process finds it in the database.
            let other_process = Handles {
                inflight: Inflight::default(),
                counts: Counts::default(),
                ..handles
            };
            let found = run(&other_process, "acme", call(40, None)).await;
            assert_eq!(found.cached_from.as_ref(), Some(&first.result.request_id));
            assert_eq!(other_process.counts.read(), (1, 0, 0));

            // Another tenant, or other options, run the detector again.
            assert!(!run(&other_process, "globex", call(40, None)).await.cached);
            let models = Some(vec![ModelKind::ALL[0]]);
            assert!(!run(&other_process, "acme", call(40, models)).await.cached);
            assert_eq!(other_process.counts.read(), (1, 2, 2));
        }

        #[tokio::test]
        async fn without_a_ttl_every_request_runs_the_detector() {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
                .await
                .unwrap();
            let handles = handles(&db, 0);
            assert!(!run(&handles, "acme", call(41, None)).await.cached);
            assert!(!run(&handles, "acme", call(41, None)).await.cached);
            assert_eq!(handles.counts.read(), (0, 0, 2), "no cache lookups counted");
        }

        #[tokio::test]
        async fn a_stored_result_is_answered_as_the_original_with_its_decision() {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
                .await
                .unwrap();
            let handles = handles(&db, 60);
            let first = run(&handles, "acme", call(42, None)).await;
            let id = first.result.request_id.to_string();
            let stored = stored_reply(db.conn(), "acme", &id).await.unwrap();
            assert_eq!(stored.result.reference_id.as_deref(), Some("ref-42"));
            assert_eq!(stored.result.verdict, first.result.verdict);
            assert!(!stored.cached);
            let decision = stored.decision.unwrap();
            assert_eq!(
                (&decision["action"], &decision["reason"]),
                (&json!("reject"), &json!("SYNTHETIC_SELFIE"))
            );
            let err = stored_reply(db.conn(), "globex", &id).await.unwrap_err();
            assert_eq!(err.code(), ErrorCode::NotFound);
            assert_eq!(err.to_string(), format!("no request {id} for this tenant"));
        }

        #[tokio::test]
        async fn a_refused_fetch_or_bad_input_records_nothing() {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
                .await
                .unwrap();
            let handles = handles(&db, 60);
            let url = AnalyzeCall {
                source: ImageSource::Url("https://images.example/a.png".to_owned()),
                ..call(43, None)
            };
            let err = analyze_for(&handles, "acme", &RequestId::new(), url)
                .await
                .unwrap_err();
            assert_eq!(err.code(), ErrorCode::UrlUnreachable);
            let bad = AnalyzeCall {
                flow: Some(("kyc".to_owned(), json!({"liveness": {"passed": 1}}))),
                ..call(43, None)
            };
            let err = analyze_for(&handles, "acme", &RequestId::new(), bad)
                .await
                .unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidRequest);
            assert_eq!(handles.counts.read(), (0, 0, 0));
            let filter = arbiter_audit::EntryFilter::default();
            assert!(
                arbiter_audit::entries(db.conn(), &filter)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }
}
