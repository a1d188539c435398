//! Arbiter's outbound webhooks: the outbox an event is written to in its own transaction, the
//! delivery loops that send it, the two signatures every delivery carries
//! (`X-CheckReal-Signature` and Standard Webhooks), `whsec_` secrets and their encryption at
//! rest, the retry rule, and one HTTP delivery attempt.
//!
//! It knows no HTTP server: the server registers endpoints through [`create_endpoint`] and
//! [`Webhooks::check_destination`], and starts [`DeliveryWorker::run`].
#![forbid(unsafe_code)]

pub mod cipher;
pub mod config;
pub mod delivery;
mod error;
pub mod manage;
pub mod outbox;
pub mod retry;
pub mod secret;
pub mod send;
pub mod service;
pub mod sign;
pub mod store;

pub use cipher::{CipherError, SecretCipher};
pub use config::WebhooksConfig;
pub use delivery::{DeliveryWorker, Now};
pub use error::OutboxError;
pub use outbox::{Deliveries, EVENTS, Message, enqueue, wants};
pub use retry::{
    AttemptClass, AttemptOutcome, NextState, RetryPolicy, classify, parse_retry_after,
};
pub use secret::{SecretError, WebhookSecret};
pub use send::{AddressCheck, AttemptResult, Sender, SenderConfig, check_url};
pub use service::Webhooks;
pub use sign::{
    CHECKREAL_HEADER, SignatureError, SignedHeaders, TIMESTAMP_TOLERANCE_SECS, checkreal_signature,
    sign, standard_signature, verify_checkreal, verify_standard,
};
pub use store::{create_endpoint, rotate_tenant_secret, tenant_secrets};
