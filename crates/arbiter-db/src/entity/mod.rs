//! sea-orm entities, one module per table.

pub mod api_key;
pub mod audit_checkpoint;
pub mod audit_entry;
pub mod audit_head;
pub mod decision;
pub mod request;
