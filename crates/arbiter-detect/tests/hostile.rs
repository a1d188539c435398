//! Hostile input: files built to cost time, memory or a panic. Every one gets a result or a clear
//! input error, and the result stays small. Timings are measured by the `hostile` benchmark,
//! never asserted here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use arbiter_core::{Analysis, AnalyzeOptions, DetectError, Detector, ImageFormat, VerdictLabel};
use arbiter_detect::metadata::{self, MAX_EVIDENCE};
use arbiter_detect::{IntakeLimits, LocalDetector, intake};
use common::hostile::{hostile_files, plain_png, text_chunk_flood};
use common::images::{png_chunk, png_with_chunks_before_idat};

/// The most bytes one serialised analysis may take, whatever the file.
const MAX_ANALYSIS_JSON: usize = 64 << 10;

fn analyse(bytes: Vec<u8>) -> Analysis {
    let input = intake(bytes, &IntakeLimits::default()).unwrap();
    LocalDetector::default().analyze_sync(&input, &AnalyzeOptions::default())
}

fn metadata_detail(analysis: &Analysis) -> String {
    analysis
        .model_results
        .metadata_analysis
        .as_ref()
        .and_then(|m| m.result.detail.clone())
        .unwrap_or_default()
}

#[test]
fn a_flood_of_text_chunks_is_read_up_to_the_caps_and_gives_a_small_result() {
    let png = text_chunk_flood();
    assert!(png.len() > 4 << 20, "{}", png.len());

    let report = metadata::read_metadata(ImageFormat::Png, &png);
    assert!(
        report.evidence.len() <= MAX_EVIDENCE,
        "{}",
        report.evidence.len()
    );
    assert!(report.evidence_left_out > 0);
    assert!(report.values_skipped > 80_000, "{}", report.values_skipped);

    let analysis = analyse(png);
    // The parameters are still a declaration: the caps bound the work, not the finding.
    assert_eq!(analysis.verdict.label, VerdictLabel::AiGenerated);
    let detail = metadata_detail(&analysis);
    assert!(
        detail.contains("further declarations are not listed"),
        "{detail}"
    );
    assert!(detail.contains("metadata values were not read"), "{detail}");
    let json = serde_json::to_vec(&analysis).unwrap();
    assert!(json.len() < MAX_ANALYSIS_JSON, "{} bytes", json.len());
}

#[test]
fn a_repeated_declaration_is_listed_once() {
    let chunks: Vec<([u8; 4], Vec<u8>)> = (0..1000)
        .map(|_| {
            (
                *b"tEXt",
                b"parameters\0a duck\nSteps: 1, Seed: 1, Sampler: x".to_vec(),
            )
        })
        .collect();
    let png = png_with_chunks_before_idat(&plain_png(), &chunks);
    let report = metadata::read_metadata(ImageFormat::Png, &png);
    assert_eq!(report.evidence.len(), 1, "{:?}", report.evidence);
    assert_eq!(report.evidence_left_out, 0);
}

#[test]
fn the_metadata_detail_is_bounded_however_long_its_parts() {
    // Distinct long keys: each piece of evidence is as long as a key allows.
    let chunks: Vec<([u8; 4], Vec<u8>)> = (0..200)
        .map(|i| {
            let key = format!("{i:0>79}");
            (
                *b"tEXt",
                format!("{key}\0Steps: 1, Seed: 1, Sampler: x").into_bytes(),
            )
        })
        .collect();
    let analysis = analyse(png_with_chunks_before_idat(&plain_png(), &chunks));
    let detail = metadata_detail(&analysis);
    assert!(
        detail.len() <= arbiter_detect::local::MAX_DETAIL,
        "{}",
        detail.len()
    );
}

/// Runs the detector as the server does (on its threads, panics caught) and checks the answer:
/// a result of bounded size, or an input error; never a failure, never internal text.
async fn through_the_detector(name: &str, bytes: Vec<u8>) {
    let limits = IntakeLimits {
        min_dimension: 1,
        ..IntakeLimits::default()
    };
    let input = match intake(bytes, &limits) {
        Ok(input) => input,
        Err(err) => {
            let err = DetectError::from(err);
            assert!(matches!(err, DetectError::Input { .. }), "{name}: {err}");
            return;
        }
    };
    match LocalDetector::default()
        .analyze(&input, &AnalyzeOptions::default())
        .await
    {
        Ok(analysis) => {
            let json = serde_json::to_string(&analysis).unwrap();
            assert!(
                json.len() < MAX_ANALYSIS_JSON,
                "{name}: {} bytes",
                json.len()
            );
            for needle in [
                "panicked",
                "assertion failed",
                "assertion `",
                "unwrap()",
                ".rs:",
            ] {
                assert!(!json.contains(needle), "{name}: {needle:?} in {json}");
            }
        }
        Err(DetectError::Input { .. }) => {}
        Err(err) => panic!("{name}: {err}"),
    }
}

#[tokio::test]
async fn the_text_chunk_flood_through_the_detector() {
    through_the_detector("text chunk flood", text_chunk_flood()).await;
    let mut small = plain_png();
    small.truncate(small.len() - 12);
    png_chunk(&mut small, b"IEND", &[]);
    through_the_detector("plain", small).await;
}

/// Every file kept in the repository for detection: `tests/fixtures/` and `samples/`.
fn repository_files() -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["tests/fixtures", "samples"] {
        walk(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "{}", files.len());
    files
}

#[tokio::test]
async fn every_repository_sample_and_hostile_file_gets_a_small_result_or_an_input_error() {
    for (name, bytes) in repository_files().into_iter().chain(hostile_files()) {
        through_the_detector(&name, bytes).await;
    }
}

#[test]
fn a_tiled_tiff_with_separate_planes_is_analysed_with_its_pixels() {
    use common::images::Tiff;
    for bits in [8, 16] {
        let tiff = Tiff {
            tile: Some(16),
            planar: 2,
            bits,
            ..Tiff::rgb(200, 120)
        };
        let analysis = analyse(tiff.write());
        let noise = analysis.model_results.noise_analysis.unwrap();
        assert_ne!(
            noise.label,
            arbiter_core::ModelLabel::NotRun,
            "{:?}",
            noise.detail
        );
    }
}
