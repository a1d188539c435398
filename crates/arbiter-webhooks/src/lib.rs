//! Arbiter's outbound webhooks: the two signatures every delivery carries
//! (`X-CheckReal-Signature` and Standard Webhooks), `whsec_` secrets and their encryption at rest,
//! the retry schedule, and one HTTP delivery attempt.
//!
//! The queue itself (which delivery is due, leases, stored attempts) lives with the database in
//! `arbiter-server`; everything here is pure or a single request.
#![forbid(unsafe_code)]

pub mod cipher;
pub mod config;
pub mod retry;
pub mod secret;
pub mod send;
pub mod sign;

pub use cipher::{CipherError, SecretCipher};
pub use config::WebhooksConfig;
pub use retry::{
    AttemptClass, AttemptOutcome, NextState, RetryPolicy, classify, parse_retry_after,
};
pub use secret::{SecretError, WebhookSecret};
pub use send::{AddressCheck, AttemptResult, Sender, SenderConfig, check_url};
pub use sign::{
    CHECKREAL_HEADER, SignatureError, SignedHeaders, TIMESTAMP_TOLERANCE_SECS, checkreal_signature,
    sign, standard_signature, verify_checkreal, verify_standard,
};
