//! The multipart intake of `POST /v1/analyze` (axum's `Multipart` extractor on a built request,
//! then the parts taken into the request's fields and its options checked) on arbitrary bytes
//! sent as `multipart/form-data; boundary=arbiterfuzz`: never a panic, and every body is taken
//! or refused with a client's error (400 or 413), never a 5xx. The checks live in
//! `arbiter_server::fuzzing::multipart`, which a stable test also runs over mutated bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    arbiter_server::fuzzing::multipart(data);
});
