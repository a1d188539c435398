//! sea-orm entities, one module per table.

pub mod api_key;
pub mod audit_checkpoint;
pub mod audit_entry;
pub mod audit_head;
pub mod batch;
pub mod case;
pub mod case_image;
pub mod console_session;
pub mod console_sign_in_failure;
pub mod console_user;
pub mod decision;
pub mod job;
pub mod job_image;
pub mod rd_upload;
pub mod request;
pub mod review_item;
pub mod webhook_attempt;
pub mod webhook_delivery;
pub mod webhook_endpoint;
pub mod webhook_secret;
