//! Redactions for `insta::assert_json_snapshot!`: the values that change on every run.

/// A request id in a snapshot.
pub const REQUEST_ID: &str = "[request_id]";
/// A timestamp in a snapshot.
pub const PROCESSED_AT: &str = "[processed_at]";
/// A duration in milliseconds in a snapshot.
pub const MILLISECONDS: &str = "[ms]";
