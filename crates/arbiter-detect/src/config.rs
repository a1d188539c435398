//! The local detector's configuration (`detector.local` in `arbiter.yaml`).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Configuration of the local detector. Every key is optional, its default the committed
/// `arbiter.yaml`'s; the defaults suit a 2-core host.
/// The pixel models bound their own work whatever the image size (a fixed number of sampled
/// blocks, a fixed-size crop at native resolution), so there is no working-resolution key.
///
/// ```yaml
/// # PEM bundle of C2PA trust anchors; without it no signer is verified and no image is AUTHENTIC.
/// trust_anchors: /etc/arbiter/c2pa-anchors.pem
/// max_decode_pixels: 100000000
/// max_decode_bytes: 1073741824
/// max_queued: 64
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalDetectorConfig {
    /// A PEM file of trust anchors (root or intermediate certificates) for C2PA signers. Only a
    /// manifest whose signing certificate chains to one of these can make an image AUTHENTIC.
    /// Without it, signers are reported as not verified.
    #[serde(default)]
    pub trust_anchors: Option<PathBuf>,
    /// The largest image, in pixels (width x height), whose pixels are decoded. Larger images are
    /// refused before any allocation (a decompression bomb is a small file declaring huge
    /// dimensions); the pixel models then report "not run".
    #[serde(default = "default_max_decode_pixels")]
    pub max_decode_pixels: u64,
    /// The most memory decoding one image may take, in bytes: the decoder's buffers (16-bit
    /// samples at their full size) and the luminance and alpha planes made from them. An image
    /// that needs more is not decoded; the pixel models then report "not run".
    #[serde(default = "default_max_decode_bytes")]
    pub max_decode_bytes: u64,
    /// The most analyses that wait for a free analysis thread (there is one per core), for the
    /// whole process. Past it an analysis is refused at once: `POST /v1/analyze` answers 503
    /// `SERVICE_UNAVAILABLE` with `Retry-After`, and a job is retried later. An analysis whose
    /// caller has gone while it waited is skipped, not run.
    #[serde(default = "default_max_queued")]
    pub max_queued: usize,
}

/// A key of `detector.local` in the committed `arbiter.yaml`: the default of a key left out.
fn documented<T: serde::de::DeserializeOwned>(key: &str) -> T {
    arbiter_core::settings::defaults(&format!("detector.local.{key}"))
}

fn default_max_queued() -> usize {
    documented("max_queued")
}

fn default_max_decode_pixels() -> u64 {
    documented("max_decode_pixels")
}

fn default_max_decode_bytes() -> u64 {
    documented("max_decode_bytes")
}

impl Default for LocalDetectorConfig {
    /// The `detector.local` section of the committed `arbiter.yaml`.
    fn default() -> Self {
        arbiter_core::settings::defaults("detector.local")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `yaml` example of this file's doc comment, its comment markers stripped.
    fn documented_example() -> String {
        let source = include_str!("config.rs");
        let start = source.find("```yaml").unwrap_or_default();
        source[start..]
            .lines()
            .skip(1)
            .take_while(|line| !line.trim_start_matches(['/', ' ']).starts_with("```"))
            .map(|line| {
                let line = line.trim_start().trim_start_matches("///");
                line.strip_prefix(' ').unwrap_or(line)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn the_documented_example_parses_and_builds_a_healthy_detector() {
        use arbiter_core::Detector;
        let config: LocalDetectorConfig = serde_saphyr::from_str(&documented_example()).unwrap();
        assert_eq!(
            config,
            LocalDetectorConfig {
                trust_anchors: Some("/etc/arbiter/c2pa-anchors.pem".into()),
                ..LocalDetectorConfig::default()
            }
        );
        // It builds (the anchors file is the operator's; without it the rest builds the same).
        let built = crate::LocalDetector::build(LocalDetectorConfig {
            trust_anchors: None,
            ..config
        })
        .unwrap();
        assert!(built.health().await.is_ok());
    }

    #[test]
    fn every_key_is_optional_and_unknown_keys_are_refused() {
        let empty: LocalDetectorConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, LocalDetectorConfig::default());
        assert!(serde_json::from_str::<LocalDetectorConfig>(r#"{"trust_anchor": "x"}"#).is_err());
    }
}
