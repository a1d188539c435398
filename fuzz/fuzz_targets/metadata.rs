//! The metadata and container parsers on arbitrary bytes: never a panic, never a hang.
#![no_main]

use arbiter_core::ImageFormat;
use arbiter_detect::{container, metadata, provenance::ProvenanceReader, sniff, splicing};
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
        let _ = metadata::read_metadata(format, data);
    }
    let _ = container::jpeg_segments(data).count();
    let _ = container::png_chunks(data).count();
    let _ = container::riff_chunks(data).count();
    let _ = container::bmff_boxes(data).count();
    let _ = splicing::quantisation_tables(data);
    if let Ok(format) = sniff::sniff_format(data) {
        let _ = ProvenanceReader::untrusted().read(format, data);
    }
});
