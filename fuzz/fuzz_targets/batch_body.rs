//! The batch body parser (`arbiter_jobs::batch_body`, both passes, each image checked as
//! `POST /v1/analyze/batch` checks it) on arbitrary bytes: never a panic, and every body is
//! accepted or refused with a client's error (400 or 413), never a 5xx. The checks live in
//! `arbiter_server::fuzzing::batch_body`, which a stable test also runs over mutated bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    arbiter_server::fuzzing::batch_body(data);
});
