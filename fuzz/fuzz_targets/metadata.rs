//! The metadata and container parsers on arbitrary bytes: never a panic, never a hang, and the
//! per-file caps hold (at most `MAX_EVIDENCE` pieces of evidence, a metadata detail of at most
//! `MAX_DETAIL` bytes), also when the input is repeated into a file of thousands of chunks.
#![no_main]

use arbiter_core::{AnalyzeOptions, ImageFormat, ModelKind};
use arbiter_detect::metadata::{self, MetadataReport};
use arbiter_detect::{
    IntakeLimits, LocalDetector, container, intake, local, provenance::ProvenanceReader, sniff,
    splicing,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(format) = sniff::sniff_format(data) {
        let _ = sniff::dimensions(format, data);
    }
    for format in [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Webp,
        ImageFormat::Heic,
        ImageFormat::Tiff,
        ImageFormat::Bmp,
    ] {
        check(&metadata::read_metadata(format, data));
        if let Some(end) = container::image_end(format, data) {
            assert!(end <= data.len());
        }
    }
    let _ = container::jpeg_segments(data).count();
    let _ = container::png_chunks(data).count();
    let _ = container::riff_chunks(data).count();
    let _ = container::bmff_boxes(data).count();
    let _ = splicing::quantisation_tables(data);
    if let Ok(format) = sniff::sniff_format(data) {
        let _ = ProvenanceReader::untrusted().read(format, data);
    }

    // The input after its first byte, repeated (the first byte says how often, up to 1 MiB in
    // all) as the chunks of a PNG and the segments of a JPEG: floods built of fuzzer-chosen
    // chunks reach the per-file caps.
    let Some((&times, body)) = data.split_first() else {
        return;
    };
    if body.is_empty() {
        return;
    }
    let times = (usize::from(times) * 8 + 1)
        .min((1 << 20) / body.len())
        .max(1);
    let mut png =
        b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x80\0\0\0\x80\x08\x02\0\0\0\0\0\0\0".to_vec();
    png.extend(body.repeat(times));
    png.extend(b"\0\0\0\0IDAT\0\0\0\0\0\0\0\0IEND\0\0\0\0");
    let mut jpeg = vec![0xFF, 0xD8];
    jpeg.extend(body.repeat(times));
    for file in [png, jpeg] {
        let Ok(format) = sniff::sniff_format(&file) else {
            continue;
        };
        check(&metadata::read_metadata(format, &file));
        let limits = IntakeLimits {
            min_dimension: 1,
            ..IntakeLimits::default()
        };
        if let Ok(input) = intake(file, &limits) {
            let options = AnalyzeOptions {
                models: vec![ModelKind::Metadata],
                ..AnalyzeOptions::default()
            };
            let analysis = LocalDetector::default().analyze_sync(&input, &options);
            let detail = analysis
                .model_results
                .metadata_analysis
                .and_then(|m| m.result.detail)
                .unwrap_or_default();
            assert!(detail.len() <= local::MAX_DETAIL, "{}", detail.len());
        }
    }
});

fn check(report: &MetadataReport) {
    assert!(report.evidence.len() <= metadata::MAX_EVIDENCE);
    // At most 16 observations, the camera summary and the note of values not read.
    assert!(report.observations.len() <= 18);
}
