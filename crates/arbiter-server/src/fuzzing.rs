//! The bodies of the fuzz targets of the request intake (`fuzz/fuzz_targets/batch_body.rs` and
//! `fuzz/fuzz_targets/multipart.rs`), as plain functions, so that a stable test runs them over
//! generated hostile inputs where cargo-fuzz (which needs nightly) is not available.
//!
//! Each takes arbitrary bytes as a request body and panics only when the intake breaks its
//! promise: it must never panic itself, and it must answer every body with a result or with one
//! of the errors a client's input may get (400 `INVALID_REQUEST`, 413 `FILE_SIZE_EXCEEDED`),
//! never a 5xx.

use crate::error::ApiError;
use crate::routes::analyze::{intake_body, parse_options};
use arbiter_core::ErrorCode;
use arbiter_engine::intake::RequestLimits;
use arbiter_jobs::batch_body::{self, check_image};
use std::io::Write;
use std::sync::OnceLock;

/// The boundary of the multipart bodies [`multipart`] is given.
pub const BOUNDARY: &str = "arbiterfuzz";

/// A runtime for the intake's async parts, shared by every input.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the fuzzed intake")
    })
}

/// Panics unless `err` is one a client's input may get, without internals; `false` (the body
/// was refused).
fn client_error(what: &str, err: &ApiError) -> bool {
    assert!(
        matches!(
            err.code,
            ErrorCode::InvalidRequest | ErrorCode::FileSizeExceeded
        ),
        "{what}: {:?} {}",
        err.code,
        err.message
    );
    assert!(!err.message.contains("panicked"), "{what}: {}", err.message);
    false
}

/// `data` as the body of `POST /v1/analyze/batch`: both passes of `arbiter_jobs::batch_body` (the header,
/// then each image checked as the route checks it, with a 64 KiB image limit). Whether the body
/// was taken whole.
pub fn batch_body(data: &[u8]) -> bool {
    let mut file = tempfile::tempfile().expect("a temporary file");
    file.write_all(data).expect("the body written");
    let limits = RequestLimits {
        max_reference_id_len: 64,
        max_image_bytes: 64 * 1024,
    };
    // On SQLite the images are kept in the body and named by their range; on PostgreSQL not.
    let keep = data.len().is_multiple_of(2);
    runtime().block_on(async {
        let header = match batch_body::header(&file).await {
            Ok(header) => header,
            Err(err) => return client_error("batch header", &ApiError::from(err)),
        };
        if let Some(options) = header.options
            && let Err(err) = parse_options(options)
        {
            return client_error("batch options", &ApiError::from(err));
        }
        let mut chunks = match batch_body::images(&file, move |index, image, range| {
            check_image(index, image, limits, keep.then_some(range)).map_err(ApiError::from)
        }) {
            Ok(chunks) => chunks,
            Err(err) => return client_error("batch images", &ApiError::from(err)),
        };
        let mut seen = 0;
        while let Some(chunk) = chunks.recv().await {
            match chunk {
                Ok(images) => seen += images.len(),
                Err(err) => return client_error("batch image", &err),
            }
        }
        assert_eq!(seen, header.images, "the passes disagree on the images");
        true
    })
}

/// `data` as a `multipart/form-data` body (boundary [`BOUNDARY`]) of `POST /v1/analyze`: read
/// into parts, the parts taken into the request's fields, and its options checked. Whether the
/// body was taken.
pub fn multipart(data: &[u8]) -> bool {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let body = axum::body::Bytes::copy_from_slice(data);
    runtime().block_on(async {
        match intake_body(&content_type, body).await {
            Ok((request, _file)) => {
                if let Some(options) = request.options
                    && let Err(err) = parse_options(options)
                {
                    return client_error("multipart options", &ApiError::from(err));
                }
                if let Some(reference) = &request.reference_id
                    && let Err(err) =
                        crate::analyze::check_reference_id(reference, 64).map_err(ApiError::from)
                {
                    return client_error("multipart reference_id", &err);
                }
                true
            }
            Err(err) => client_error("multipart", &err),
        }
    })
}

#[cfg(test)]
mod tests {
    //! A few thousand deterministic mutations of valid bodies through each target.

    use super::*;
    use base64::Engine;

    /// xorshift64*: deterministic, so a failure is reproduced by its seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Pieces a hostile body is made of.
    const TOKENS: &[&[u8]] = &[
        b"\"",
        b"\\",
        b"\\u",
        b"\\ud800",
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"\0",
        b"\xff\xfe",
        b"null",
        b"1e999999",
        b"-0.0000000000000000000000001",
        b"99999999999999999999999999",
        b"\"images\":",
        b"\"image_base64\":\"",
        b"\"image_url\":\"",
        b"\"reference_id\":",
        b"\"options\":{\"models\":[",
        b"\r\n",
        b"--arbiterfuzz",
        b"--arbiterfuzz--",
        b"Content-Disposition: form-data; name=\"",
        b"\"; filename=\"",
        b"Content-Type: ",
        b"\r\n\r\n",
    ];

    fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
        let mut body = seed.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(body.len() + 1);
            match rng.below(7) {
                // Flip a byte.
                0 if !body.is_empty() => {
                    let i = rng.below(body.len());
                    body[i] ^= 1 << rng.below(8);
                }
                // Cut the body.
                1 => body.truncate(at),
                // Insert a token, a few times.
                2 | 3 => {
                    let token = TOKENS[rng.below(TOKENS.len())];
                    for _ in 0..=rng.below(3) {
                        body.splice(at..at, token.iter().copied());
                    }
                }
                // Deep nesting.
                4 => {
                    let open = if rng.below(2) == 0 { b'[' } else { b'{' };
                    let depth = 1 + rng.below(2000);
                    body.splice(at..at, std::iter::repeat_n(open, depth));
                }
                // Repeat a slice of the body.
                5 => {
                    let end = (at + rng.below(64)).min(body.len());
                    let slice = body[at..end].to_vec();
                    for _ in 0..=rng.below(8) {
                        body.splice(at..at, slice.iter().copied());
                    }
                }
                // Remove a slice.
                _ => {
                    let end = (at + rng.below(16)).min(body.len());
                    body.drain(at..end);
                }
            }
        }
        body
    }

    fn image() -> String {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x80\0\0\0\x80\x08\x02\0\0\0";
        base64::engine::general_purpose::STANDARD.encode(png)
    }

    fn batch_seeds() -> Vec<Vec<u8>> {
        let image = image();
        let big = "A".repeat(90_000);
        [
            serde_json::json!({"images": [{"image_url": "https://example.com/a.jpg", "reference_id": "a"}]}),
            serde_json::json!({"batch_reference_id": "b-1", "webhook_url": "https://example.com/hook",
                "options": {"models": ["gan", "metadata"], "return_heatmap": true},
                "images": [{"image_base64": image}, {"image_url": "https://example.com/b.png"}]}),
            serde_json::json!({"images": [{"image_base64": big}], "options": {"models": ["all"]}}),
            serde_json::json!({"images": []}),
        ]
        .iter()
        .map(|seed| seed.to_string().into_bytes())
        .collect()
    }

    fn multipart_seeds() -> Vec<Vec<u8>> {
        let part = |name: &str, file: bool, value: &[u8]| {
            let mut part =
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"");
            if file {
                part.push_str("; filename=\"a.png\"\r\nContent-Type: image/png");
            }
            part.push_str("\r\n\r\n");
            let mut part = part.into_bytes();
            part.extend_from_slice(value);
            part.extend_from_slice(b"\r\n");
            part
        };
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x80\0\0\0\x80\x08\x02\0\0\0";
        let end = format!("--{BOUNDARY}--\r\n").into_bytes();
        vec![
            [part("file", true, png), end.clone()].concat(),
            [
                part("file", true, png),
                part("options", false, br#"{"models": ["noise", "splicing"]}"#),
                part("reference_id", false, b"claim-42"),
                part("facts", false, br#"{"claim": {"amount": 12000}}"#),
                end.clone(),
            ]
            .concat(),
            [part("image", true, &png.repeat(200)), end].concat(),
        ]
    }

    /// Runs `target` over the seeds and `rounds` mutations of them; how many were taken.
    fn run_mutations(seeds: &[Vec<u8>], rounds: usize, target: fn(&[u8]) -> bool) -> usize {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut taken = 0;
        for seed in seeds {
            target(seed);
        }
        for round in 0..rounds {
            let seed = &seeds[round % seeds.len()];
            let body = mutate(&mut rng, seed);
            let outcome = std::panic::catch_unwind(|| target(&body));
            match outcome {
                Ok(was_taken) => taken += usize::from(was_taken),
                Err(_) => panic!(
                    "round {round}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(512)])
                ),
            }
        }
        taken
    }

    #[test]
    fn the_batch_body_parser_survives_mutated_bodies() {
        // The seeds are taken, but the one whose image is over the limit (413).
        let seeds = batch_seeds();
        let taken: Vec<bool> = seeds.iter().map(|seed| batch_body(seed)).collect();
        assert_eq!(taken, [true, true, false, true]);
        let taken = run_mutations(&seeds, 3000, batch_body);
        // Both ends are reached: mutations the parser takes, and mutations it refuses.
        assert!((100..2900).contains(&taken), "{taken} of 3000 taken");
    }

    #[test]
    fn the_multipart_intake_survives_mutated_bodies() {
        let seeds = multipart_seeds();
        assert!(seeds.iter().all(|seed| multipart(seed)));
        let taken = run_mutations(&seeds, 3000, multipart);
        assert!((100..2900).contains(&taken), "{taken} of 3000 taken");
    }
}
