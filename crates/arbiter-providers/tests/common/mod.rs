//! What the provider tests share: images that passed intake, the detectors built from a
//! configuration whose vendors point at the fake servers, and an outbound guard that lets the
//! fakes' own loopback upload URLs through (and nothing else it refuses by default).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use arbiter_core::net::AddressGuard;
use arbiter_core::{AnalyzeOptions, DetectError, Detector, MediaInput};
use arbiter_detect::{IntakeLimits, intake};
use arbiter_providers::fake::reality_ai::{self as fake_ai, FakeRealityAi};
use arbiter_providers::fake::reality_defender::{self as fake_rd, FakeRealityDefender};
use arbiter_providers::reality_ai::RealityAiConfig;
use arbiter_providers::reality_defender::RealityDefenderConfig;
use arbiter_providers::{DetectorConfig, Detectors, RouteSpec, Secret};
use std::sync::Arc;

/// The generation parameters AUTOMATIC1111 writes into a PNG's `parameters` text chunk.
pub const A1111_PARAMETERS: &str = "a photo of a duck\nSteps: 20, Sampler: Euler a, CFG scale: 7, \
                                    Seed: 1, Size: 512x512, Model: sd15";

/// A plain 128x128 RGB PNG with no metadata; `seed` changes its pixels (and so its hash).
pub fn plain_png(seed: u32) -> Vec<u8> {
    let (width, height) = (128u32, 128u32);
    let pixels: Vec<u8> = (0..width * height * 3)
        .map(|i| (i.wrapping_mul(7).wrapping_add(seed.wrapping_mul(131)) % 251) as u8)
        .collect();
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        &pixels,
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    out
}

/// A small baseline JPEG with no metadata.
pub fn plain_jpeg() -> Vec<u8> {
    let (width, height) = (120u32, 120u32);
    let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i % 199) as u8).collect();
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85),
        &pixels,
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    out
}

/// A plain PNG carrying AUTOMATIC1111's `parameters` text chunk before its image data: declared
/// generation, which the local detector decides without a vendor.
pub fn a1111_png(seed: u32) -> Vec<u8> {
    let plain = plain_png(seed);
    let mut text = b"parameters\0".to_vec();
    text.extend_from_slice(A1111_PARAMETERS.as_bytes());
    // Signature (8) and IHDR (4 + 4 + 13 + 4): the text chunk goes right after IHDR.
    let ihdr_end = 8 + 25;
    let mut out = plain[..ihdr_end].to_vec();
    png_chunk(&mut out, b"tEXt", &text);
    out.extend_from_slice(&plain[ihdr_end..]);
    out
}

/// Appends one PNG chunk with its CRC.
fn png_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend((data.len() as u32).to_be_bytes());
    png.extend(kind);
    png.extend(data);
    let mut crc = 0xffff_ffffu32;
    for byte in kind.iter().chain(data) {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    png.extend((!crc).to_be_bytes());
}

/// The image after intake, as every detector receives it.
pub fn media(bytes: Vec<u8>) -> MediaInput {
    intake(bytes, &IntakeLimits::default()).expect("the test image passes intake")
}

/// The default guard, with loopback allowed so that the fakes' own upload URLs pass.
pub fn loopback_guard() -> AddressGuard {
    AddressGuard::new(vec!["127.0.0.0/8".parse().unwrap()])
}

/// Reality Defender's settings against a fake: its key, polls a few milliseconds apart, and a
/// deadline far beyond what a test takes (tests about deadlines set their own).
pub fn rd_settings(fake: &FakeRealityDefender) -> RealityDefenderConfig {
    RealityDefenderConfig {
        base_url: fake.base_url.clone(),
        api_key: Secret::new(fake_rd::API_KEY),
        timeout_secs: 10,
        deadline_secs: 20,
        poll_initial_ms: 2,
        poll_max_ms: 10,
        ..RealityDefenderConfig::default()
    }
}

/// Reality AI's settings against a fake: its key and retries a few milliseconds apart.
pub fn ra_settings(fake: &FakeRealityAi) -> RealityAiConfig {
    RealityAiConfig {
        base_url: fake.base_url.clone(),
        api_key: Secret::new(fake_ai::API_KEY),
        timeout_secs: 10,
        deadline_secs: 20,
        retry_initial_ms: 2,
        ..RealityAiConfig::default()
    }
}

/// A configuration whose default route is `route` (`reality_defender`, `local,reality_defender`).
pub fn routed(route: &str) -> DetectorConfig {
    DetectorConfig {
        route: RouteSpec::parse(route).unwrap(),
        ..DetectorConfig::default()
    }
}

/// The detectors built from `config`, as the server builds them.
pub fn build(config: &DetectorConfig) -> Detectors {
    match Detectors::build(config, loopback_guard()) {
        Ok(detectors) => detectors,
        Err(err) => panic!("the detectors do not build: {err}"),
    }
}

/// A fake Reality Defender following `script`, and the detectors whose default route is
/// Reality Defender alone, with `tune` applied to its settings.
pub async fn rd_alone(
    script: fake_rd::Script,
    tune: impl FnOnce(&mut RealityDefenderConfig),
) -> (FakeRealityDefender, Detectors) {
    let fake = FakeRealityDefender::start(script).await.unwrap();
    let mut config = routed("reality_defender");
    config.providers.reality_defender = rd_settings(&fake);
    tune(&mut config.providers.reality_defender);
    let detectors = build(&config);
    (fake, detectors)
}

/// Asks the default route about `image`.
pub async fn ask(
    detectors: &Detectors,
    image: &MediaInput,
) -> Result<arbiter_core::Analysis, DetectError> {
    detectors
        .default_detector()
        .analyze(image, &AnalyzeOptions::default())
        .await
}

/// The detector's name and message of a failure; panics on anything else.
pub fn failure(result: Result<arbiter_core::Analysis, DetectError>) -> (String, String) {
    match result {
        Err(DetectError::Failed { detector, message }) => (detector, message),
        Err(other) => panic!("not a detector failure: {other}"),
        Ok(analysis) => panic!("a verdict where an error was due: {:?}", analysis.verdict),
    }
}

/// The detectors' one detector of this name, as a plain detector.
pub fn detector(detectors: &Detectors, name: &str) -> Arc<dyn Detector> {
    detectors
        .providers()
        .iter()
        .find(|p| p.name() == name)
        .map(|p| p.clone() as Arc<dyn Detector>)
        .unwrap_or_else(|| panic!("{name} is not configured"))
}
