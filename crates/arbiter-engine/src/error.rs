//! The engine's error: a refusal with the API's stable code, or a failure of storage or of the
//! audit log. The server turns it into its error body once (`From<EngineError> for ApiError`).

use arbiter_core::ErrorCode;
use std::sync::Arc;

/// What a caller is told of a failure: its cause is logged, never shown.
pub const INTERNAL_MESSAGE: &str = "internal error; retry with exponential backoff";

/// Why the engine did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Refused, for the caller to mend: the stable code and what is wrong.
    #[error("{message}")]
    Refused {
        /// The stable code (INVALID_REQUEST, NOT_FOUND, CONFLICT, ...).
        code: ErrorCode,
        /// What is wrong, for the caller.
        message: String,
    },
    /// The pipeline refused or failed (an unknown flow, bad flow input, a detector error).
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] arbiter_db::sea_orm::DbErr),
    /// The audit log could not be written.
    #[error("audit log: {0}")]
    Audit(#[from] arbiter_audit::AuditError),
    /// Anything else that should not happen (a stored row that does not parse).
    #[error("{0}")]
    Internal(String),
    /// An error shared by identical concurrent requests: the one that ran the lookup, and
    /// those that waited for it.
    #[error(transparent)]
    Shared(Arc<EngineError>),
}

impl EngineError {
    /// A refusal with this code.
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }

    /// An INVALID_REQUEST refusal.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::refused(ErrorCode::InvalidRequest, message)
    }

    /// A NOT_FOUND refusal.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::refused(ErrorCode::NotFound, message)
    }

    /// A failure that should not happen, with its cause (logged, never shown).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// The stable code: the refusal's, or INTERNAL_ERROR for a failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Refused { code, .. } => *code,
            Self::Pipeline(err) => err.code(),
            Self::Shared(err) => err.code(),
            Self::Db(_) | Self::Audit(_) | Self::Internal(_) => ErrorCode::InternalError,
        }
    }

    /// What the caller is told: the refusal's message, or [`INTERNAL_MESSAGE`] for a failure.
    pub fn caller_message(&self) -> String {
        match self {
            Self::Shared(err) => err.caller_message(),
            err if err.code() == ErrorCode::InternalError => INTERNAL_MESSAGE.to_owned(),
            err => err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_its_code_and_a_failure_is_internal() {
        let refused = EngineError::not_found("no review item x for this tenant");
        assert_eq!(refused.code(), ErrorCode::NotFound);
        assert_eq!(refused.to_string(), "no review item x for this tenant");
        let failed = EngineError::from(arbiter_db::sea_orm::DbErr::Custom("disk".into()));
        assert_eq!(failed.code(), ErrorCode::InternalError);
        assert_eq!(failed.caller_message(), INTERNAL_MESSAGE);
        let shared = EngineError::Shared(Arc::new(refused));
        assert_eq!(shared.code(), ErrorCode::NotFound);
        assert_eq!(shared.caller_message(), "no review item x for this tenant");
    }
}
