//! Arbiter's tamper-evident audit log: one hash chain per tenant over RFC 8785 canonical JSON
//! entries, appended in the same transaction as the change each entry records, with
//! Ed25519-signed checkpoints (C2SP signed notes) and the worker that signs them
//! ([`CheckpointWorker`]).
#![forbid(unsafe_code)]

pub mod canonical;
pub mod chain;
pub mod checkpoint;
pub mod config;
pub mod entry;
pub mod export;
pub mod keys;
pub mod query;
pub mod signing;
pub mod stream;
pub mod verify;

pub use chain::{
    Alongside, AuditError, Cursor, EntryFilter, Head, Order, Page, StoredEntry, append,
    append_many, append_many_alongside, append_to_script, entries, request_trail,
};
pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointPage, CheckpointPolicy, StoredCheckpoint,
    checkpoint_due, checkpoints, checkpoints_page, write_checkpoints, write_due_checkpoints,
};
pub use config::{AuditConfig, AuditMode};
pub use entry::{Entry, Event, GENESIS_HASH, entry_hash};
pub use export::{ExportError, ExportRange, ExportSummary, export};
pub use keys::{KeyError, Signer, SigningKey, VerifierKey};
pub use signing::{Announce, AuditSigning, CheckpointWorker, NoAnnouncement, SigningSetupError};
pub use verify::{Problem, Report, VerifyError, verify_bundle, verify_database, verify_tenant};
