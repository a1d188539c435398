//! One image's detector result as the engine records it, and the request row made of it.

use crate::error::EngineError;
use arbiter_core::{Analysis, RequestId};
use arbiter_db::entity::request;
use arbiter_db::thumbnails::Thumbnail;
use chrono::{DateTime, Utc};

/// A detector result for one request: fresh, or reused from an earlier identical request.
#[derive(Debug)]
pub struct DetectorResult {
    /// The analysis.
    pub analysis: Analysis,
    /// The request whose result was reused, if it was.
    pub cached_from: Option<RequestId>,
    /// The cache key of the image and options.
    pub cache_key: String,
    /// When the request was taken in (milliseconds).
    pub at: DateTime<Utc>,
    /// The thumbnail to keep for report cards (`reports.thumbnails`), made when the image was
    /// analysed afresh.
    pub thumbnail: Option<Thumbnail>,
}

/// The request row of an obtained result.
pub fn request_row(
    tenant: &str,
    request_id: &RequestId,
    reference_id: Option<String>,
    obtained: &DetectorResult,
) -> Result<request::Model, EngineError> {
    Ok(request::Model {
        request_id: request_id.to_string(),
        tenant: tenant.to_owned(),
        reference_id,
        image_sha256: obtained.analysis.image_info.sha256.clone(),
        cache_key: obtained.cache_key.clone(),
        cached_from: obtained.cached_from.as_ref().map(ToString::to_string),
        status: "complete".to_owned(),
        analysis: serde_json::to_string(&obtained.analysis).map_err(EngineError::internal)?,
        created_at: obtained.at,
    })
}
