//! The API's stable error codes and the HTTP status each one maps to.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A stable, machine-readable error code (the guide's codes, plus Arbiter's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The request is malformed (400).
    InvalidRequest,
    /// Missing, unknown or revoked API key (401).
    InvalidApiKey,
    /// The key may not call this endpoint or comes from an address it is not allowed from (403).
    Forbidden,
    /// No such resource for this tenant (404).
    NotFound,
    /// The resource is not in a state that allows the change (409): a review item held by
    /// another reviewer, or resolved already.
    Conflict,
    /// The image is larger than the limit (413).
    FileSizeExceeded,
    /// The bytes are not one of the accepted formats (422).
    UnsupportedFormat,
    /// The image is smaller than 100x100 (422).
    ImageTooSmall,
    /// The bytes claim an accepted format but are truncated or corrupt (422).
    InvalidImage,
    /// `image_url` could not be fetched (422).
    UrlUnreachable,
    /// Too many requests in the current window (429).
    RateLimitExceeded,
    /// The daily quota is spent (429).
    QuotaExceeded,
    /// Something failed on Arbiter's side (500).
    InternalError,
    /// A remote detector or dependency is unavailable (503).
    ServiceUnavailable,
}

impl ErrorCode {
    /// The HTTP status the API answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::InvalidApiKey => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::FileSizeExceeded => 413,
            ErrorCode::UnsupportedFormat
            | ErrorCode::ImageTooSmall
            | ErrorCode::InvalidImage
            | ErrorCode::UrlUnreachable => 422,
            ErrorCode::RateLimitExceeded | ErrorCode::QuotaExceeded => 429,
            ErrorCode::InternalError => 500,
            ErrorCode::ServiceUnavailable => 503,
        }
    }

    /// The code as written in error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::InvalidApiKey => "INVALID_API_KEY",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::FileSizeExceeded => "FILE_SIZE_EXCEEDED",
            ErrorCode::UnsupportedFormat => "UNSUPPORTED_FORMAT",
            ErrorCode::ImageTooSmall => "IMAGE_TOO_SMALL",
            ErrorCode::InvalidImage => "INVALID_IMAGE",
            ErrorCode::UrlUnreachable => "URL_UNREACHABLE",
            ErrorCode::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            ErrorCode::QuotaExceeded => "QUOTA_EXCEEDED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_written_and_map_to_the_guides_statuses() {
        for (code, status) in [
            (ErrorCode::InvalidApiKey, 401),
            (ErrorCode::ImageTooSmall, 422),
            (ErrorCode::UnsupportedFormat, 422),
            (ErrorCode::UrlUnreachable, 422),
            (ErrorCode::FileSizeExceeded, 413),
            (ErrorCode::RateLimitExceeded, 429),
            (ErrorCode::QuotaExceeded, 429),
            (ErrorCode::InternalError, 500),
        ] {
            assert_eq!(code.http_status(), status, "{code}");
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }
}
