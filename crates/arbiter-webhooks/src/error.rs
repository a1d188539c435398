//! Why a webhook secret or delivery could not be handled.

use crate::cipher::CipherError;
use crate::secret::SecretError;
use arbiter_db::sea_orm::DbErr;

/// Why a webhook secret or delivery could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
    /// A stored secret could not be opened, or the key file used.
    #[error(transparent)]
    Cipher(#[from] CipherError),
    /// A stored secret is malformed, or no new one could be made.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The HTTP client could not be built.
    #[error("{0}")]
    Client(String),
    /// The audit entry could not be appended.
    #[error(transparent)]
    Audit(#[from] arbiter_audit::AuditError),
}
