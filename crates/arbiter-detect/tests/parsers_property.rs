//! A bounded, deterministic stand-in for the fuzz target in `fuzz/` that runs with the normal test
//! suite: the metadata, container and provenance parsers over random bytes and over mutations of
//! every fixture (bit flips, truncations, duplicated and deleted spans, length fields set to
//! extremes). None may panic; each must finish quickly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use arbiter_core::{AnalyzeOptions, ImageFormat};
use arbiter_detect::provenance::ProvenanceReader;
use arbiter_detect::{IntakeLimits, LocalDetector, container, intake, metadata, sniff, splicing};
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn fixtures() -> Vec<Vec<u8>> {
    let root = format!("{}/../../tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["c2pa", "camera", "genmeta"] {
        let mut entries: Vec<_> = std::fs::read_dir(format!("{root}/{dir}"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let bytes = std::fs::read(&path).unwrap();
            // Large files are cut so the suite stays fast; the head holds the metadata.
            files.push(bytes[..bytes.len().min(300_000)].to_vec());
        }
    }
    files
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(6) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes.truncate(at),
            2 => {
                let end = (at + rng.below(64)).min(bytes.len());
                let span = bytes[at..end].to_vec();
                bytes.splice(at..at, span);
            }
            3 => {
                let end = (at + rng.below(64)).min(bytes.len());
                bytes.drain(at..end);
            }
            4 => {
                // A length-like field set to an extreme.
                let value = [0u8, 0xFF][rng.below(2)];
                for b in bytes.iter_mut().skip(at).take(4) {
                    *b = value;
                }
            }
            _ => bytes[at] = rng.next() as u8,
        }
    }
    bytes
}

/// Runs every parser over `bytes`; whether the bytes still sniff as an image format (so the
/// format's own parsers read deeper than its magic bytes).
fn parse_everything(bytes: &[u8], provenance: &ProvenanceReader) -> bool {
    for format in [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Webp,
        ImageFormat::Heic,
        ImageFormat::Tiff,
        ImageFormat::Bmp,
    ] {
        let _ = metadata::read_metadata(format, bytes);
        let _ = sniff::dimensions(format, bytes);
    }
    let _ = container::jpeg_segments(bytes).count();
    let _ = container::png_chunks(bytes).count();
    let _ = container::riff_chunks(bytes).count();
    let _ = container::bmff_boxes(bytes).count();
    let _ = splicing::quantisation_tables(bytes);
    if let Ok(format) = sniff::sniff_format(bytes) {
        let _ = provenance.read(format, bytes);
        return true;
    }
    false
}

#[test]
fn parsers_survive_random_and_mutated_input() {
    let provenance = ProvenanceReader::untrusted();
    let seeds = fixtures();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let (mut random, mut recognised) = (0, 0);
    for round in 0..1500 {
        let bytes = if round % 5 == 0 {
            let len = rng.below(4096);
            random += 1;
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed)
        };
        let one = Instant::now();
        if parse_everything(&bytes, &provenance) {
            recognised += 1;
        }
        slowest = slowest.max(one.elapsed());
    }
    // A fifth of the inputs are random bytes; the rest are mutated fixtures, most of which must
    // still be read as images, or the format parsers were never exercised past the magic bytes.
    assert_eq!(random, 300);
    let mutated = 1500 - random;
    assert!(
        recognised * 10 >= mutated * 8,
        "only {recognised} of {mutated} mutated inputs still sniff as an image"
    );
    assert!(
        slowest < Duration::from_secs(5),
        "one input took {slowest:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(240));
}

#[test]
fn the_whole_detector_survives_mutated_small_images() {
    let limits = IntakeLimits {
        min_dimension: 1,
        ..IntakeLimits::default()
    };
    let seeds: Vec<Vec<u8>> = fixtures()
        .into_iter()
        .filter(|f| f.len() < 10_000)
        .collect();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..150 {
        let seed = &seeds[rng.below(seeds.len())];
        let bytes = mutate(&mut rng, seed);
        if let Ok(input) = intake(bytes, &limits) {
            let _ = LocalDetector::default().analyze_sync(&input, &AnalyzeOptions::default());
        }
    }
}

/// The stand-in for the fuzz target's floods: a text chunk of a generator sample, mutated, then
/// repeated thousands of times. The per-file caps hold whatever the chunk says.
#[test]
fn the_per_file_caps_hold_for_floods_of_mutated_chunks() {
    use arbiter_core::ModelKind;
    use arbiter_detect::local::MAX_DETAIL;
    let chunks: Vec<Vec<u8>> = fixtures()
        .iter()
        .flat_map(|f| container::png_chunks(f).collect::<Vec<_>>())
        .filter(|(kind, _)| matches!(kind, b"tEXt" | b"iTXt" | b"zTXt" | b"eXIf"))
        .map(|(kind, data)| {
            let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
            chunk.extend(kind);
            chunk.extend(data);
            chunk.extend([0; 4]);
            chunk
        })
        .collect();
    assert!(chunks.len() >= 8, "{}", chunks.len());
    let limits = IntakeLimits {
        min_dimension: 1,
        ..IntakeLimits::default()
    };
    let options = AnalyzeOptions {
        models: vec![ModelKind::Metadata],
        ..AnalyzeOptions::default()
    };
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    for round in 0..24 {
        let chunk = &chunks[round % chunks.len()];
        let chunk = if round < chunks.len() {
            chunk.clone()
        } else {
            mutate(&mut rng, chunk)
        };
        let times = ((1 << 20) / chunk.len().max(1)).clamp(1, 5_000);
        let mut png =
            b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x80\0\0\0\x80\x08\x02\0\0\0\0\0\0\0".to_vec();
        png.extend(chunk.repeat(times));
        png.extend(b"\0\0\0\0IDAT\0\0\0\0\0\0\0\0IEND\0\0\0\0");
        let report = metadata::read_metadata(ImageFormat::Png, &png);
        assert!(report.evidence.len() <= metadata::MAX_EVIDENCE);
        assert!(report.observations.len() <= 18, "{:?}", report.observations);
        // A mutated length can end the walk before IDAT: intake refuses that file.
        let Ok(input) = intake(png, &limits) else {
            continue;
        };
        let analysis = LocalDetector::default().analyze_sync(&input, &options);
        let detail = analysis
            .model_results
            .metadata_analysis
            .and_then(|m| m.result.detail)
            .unwrap_or_default();
        assert!(detail.len() <= MAX_DETAIL, "{}", detail.len());
    }
}
