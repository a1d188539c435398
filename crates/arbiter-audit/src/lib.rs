//! Arbiter's tamper-evident audit log: one hash chain per tenant over RFC 8785 canonical JSON
//! entries, appended in the same transaction as the change each entry records.
#![forbid(unsafe_code)]

pub mod chain;
pub mod entry;

pub use chain::{AuditError, EntryFilter, StoredEntry, append, entries};
pub use entry::{Entry, Event, GENESIS_HASH, entry_hash};
