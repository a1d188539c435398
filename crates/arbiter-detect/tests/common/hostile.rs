//! Hostile files, generated: shared by the corpus test and the `hostile` benchmark.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use super::images::{Tiff, png_chunk, png_with_chunks_before_idat};

/// A plain 128x128 RGB PNG.
pub fn plain_png() -> Vec<u8> {
    let mut out = Vec::new();
    let pixels: Vec<u8> = (0..128u32 * 128 * 3).map(|i| (i * 7 % 251) as u8).collect();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        &pixels,
        128,
        128,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    out
}

/// The file: 90,000 `tEXt` chunks of generation parameters, each under its own key
/// (about 4.3 MiB).
pub fn text_chunk_flood() -> Vec<u8> {
    let chunks: Vec<([u8; 4], Vec<u8>)> = (0..90_000)
        .map(|i| {
            let data = format!("k{i}\0Steps: 1, Seed: 1, Sampler: x");
            (*b"tEXt", data.into_bytes())
        })
        .collect();
    png_with_chunks_before_idat(&plain_png(), &chunks)
}

/// A 200x200 JPEG.
pub fn plain_jpeg() -> Vec<u8> {
    let luma: Vec<u8> = (0..200u32 * 200).map(|i| (i * 13 % 241) as u8).collect();
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85),
        &luma,
        200,
        200,
        image::ExtendedColorType::L8,
    )
    .unwrap();
    out
}

/// `jpeg` with `segments` (marker, payload) inserted after its SOI marker.
pub fn jpeg_with_segments(jpeg: &[u8], segments: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    for (marker, payload) in segments {
        out.extend([0xFF, *marker]);
        out.extend(((payload.len() + 2) as u16).to_be_bytes());
        out.extend(payload);
    }
    out.extend(&jpeg[2..]);
    out
}

/// An ISO box: length, type, body.
pub fn bmff_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend(kind);
    out.extend(body);
    out
}

/// A JUMBF superbox labelled `label` (the C2PA type UUID) around `children`.
pub fn jumbf(label: &str, children: &[u8]) -> Vec<u8> {
    let mut description = vec![
        0x63, 0x32, 0x70, 0x61, 0x00, 0x11, 0x00, 0x10, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B,
        0x71, 0x03,
    ];
    description.extend(label.as_bytes());
    description.push(0);
    let mut body = bmff_box(b"jumd", &description);
    body.extend(children);
    bmff_box(b"jumb", &body)
}

/// A JPEG APP11 payload carrying one JUMBF packet.
pub fn app11(jumbf: &[u8]) -> (u8, Vec<u8>) {
    let mut payload = b"JP\0\x01\0\0\0\x01".to_vec();
    payload.extend(jumbf);
    (0xEB, payload)
}

/// A TIFF structure whose IFDs chain through ExifIFD pointers `depth` deep, each IFD also
/// holding 500 `ImageDescription` entries that all point at the same 1 MiB of parameters.
pub fn deep_exif(depth: u32) -> Vec<u8> {
    let entries = 501u32;
    let ifd_len = 2 + entries * 12 + 4;
    let text_at = 8 + depth * ifd_len;
    let mut tiff = b"MM\0*\0\0\0\x08".to_vec();
    for i in 0..depth {
        let next = 8 + (i + 1) * ifd_len;
        tiff.extend((entries as u16).to_be_bytes());
        for _ in 0..entries - 1 {
            tiff.extend([0x01, 0x0E, 0, 2]);
            tiff.extend((1u32 << 20).to_be_bytes());
            tiff.extend(text_at.to_be_bytes());
        }
        tiff.extend([0x87, 0x69, 0, 4, 0, 0, 0, 1]);
        tiff.extend(next.to_be_bytes());
        tiff.extend([0; 4]);
    }
    let mut text = b"a duck\nSteps: 1, Seed: 1, Sampler: x ".to_vec();
    text.resize(1 << 20, b'x');
    tiff.extend(text);
    tiff
}

pub fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

/// The generated hostile files, by name.
pub fn hostile_files() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let png = plain_png();
    let jpeg = plain_jpeg();

    files.push(("tEXt flood".into(), text_chunk_flood()));
    let bomb = zlib(&vec![b'a'; 8 << 20]);
    let ztxt: Vec<([u8; 4], Vec<u8>)> = (0..20_000)
        .map(|i| {
            let mut data = format!("k{i}\0\0").into_bytes();
            if i % 200 == 0 {
                data.extend(&bomb);
            } else {
                data.extend(zlib(b"Steps: 1, Seed: 1, Sampler: x"));
            }
            (*b"zTXt", data)
        })
        .collect();
    files.push((
        "zTXt flood".into(),
        png_with_chunks_before_idat(&png, &ztxt),
    ));
    let itxt: Vec<([u8; 4], Vec<u8>)> = (0..20_000)
        .map(|i| {
            let compressed = i % 2 == 0;
            let mut data = format!("k{i}\0{}\0en\0k\0", u8::from(compressed)).into_bytes();
            let text = b"Steps: 1, Seed: 1, Sampler: x";
            if compressed {
                data.extend(zlib(text));
            } else {
                data.extend(text);
            }
            (*b"iTXt", data)
        })
        .collect();
    files.push((
        "iTXt flood".into(),
        png_with_chunks_before_idat(&png, &itxt),
    ));
    let xmp =
        b"<x:xmpmeta>digitalsourcetype/trainedAlgorithmicMedia Made with Google AI</x:xmpmeta>";
    let mut xmp_chunk = b"XML:com.adobe.xmp\0\0\0\0\0".to_vec();
    xmp_chunk.extend(xmp);
    files.push((
        "iTXt XMP flood".into(),
        png_with_chunks_before_idat(&png, &vec![(*b"iTXt", xmp_chunk); 30_000]),
    ));
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend(deep_exif(12));
    files.push((
        "PNG eXIf deep IFD chain".into(),
        png_with_chunks_before_idat(&png, &[(*b"eXIf", exif[6..].to_vec())]),
    ));
    // Not an image (no width or length in the first IFD): refused at intake.
    files.push(("TIFF deep IFD chain".into(), deep_exif(12)));

    // Huge declared dimensions.
    let mut huge = png[..8].to_vec();
    let mut ihdr = 60_000u32.to_be_bytes().to_vec();
    ihdr.extend(60_000u32.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]);
    png_chunk(&mut huge, b"IHDR", &ihdr);
    png_chunk(&mut huge, b"IDAT", &zlib(&[0; 1024]));
    png_chunk(&mut huge, b"IEND", &[]);
    files.push(("PNG 60000x60000".into(), huge));
    let mut huge_tiff = Tiff::rgb(100, 100).write();
    huge_tiff[18..22].copy_from_slice(&u32::MAX.to_le_bytes());
    huge_tiff[30..34].copy_from_slice(&9_000u32.to_le_bytes());
    files.push(("TIFF 4294967295x9000".into(), huge_tiff));
    let mut huge_jpeg = jpeg.clone();
    let sof = huge_jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .unwrap();
    huge_jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    files.push(("JPEG 65535x65535".into(), huge_jpeg));

    // TIFF layouts, whole and truncated.
    for (name, tiff) in [
        (
            "tiled",
            Tiff {
                tile: Some(16),
                ..Tiff::rgb(200, 120)
            },
        ),
        (
            "tiled planar",
            Tiff {
                tile: Some(16),
                planar: 2,
                ..Tiff::rgb(200, 120)
            },
        ),
        (
            "tiled planar 16-bit big-endian",
            Tiff {
                tile: Some(32),
                planar: 2,
                bits: 16,
                big_endian: true,
                ..Tiff::rgb(200, 120)
            },
        ),
        (
            "planar strips",
            Tiff {
                planar: 2,
                ..Tiff::rgb(200, 120)
            },
        ),
        (
            "grey 16-bit",
            Tiff {
                samples: 1,
                bits: 16,
                ..Tiff::rgb(200, 120)
            },
        ),
    ] {
        let bytes = tiff.write();
        for keep in [bytes.len(), bytes.len() / 2, 600, 40] {
            files.push((format!("TIFF {name}, {keep} bytes"), bytes[..keep].to_vec()));
        }
    }

    // C2PA boxes: nested deep, lengths past the end, a 64-bit length, in JPEG and PNG.
    let mut nested = Vec::new();
    for _ in 0..1_500 {
        nested = jumbf("c2pa", &nested);
    }
    let mut oversized = jumbf("c2pa", &jumbf("c2pa.assertions", &[]));
    oversized[..4].copy_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
    let mut wide = 1u32.to_be_bytes().to_vec();
    wide.extend(b"jumb");
    wide.extend(u64::MAX.to_be_bytes());
    wide.extend(jumbf("c2pa", &[]));
    for (name, box_) in [
        ("nested", nested),
        ("oversized", oversized),
        ("64-bit", wide),
    ] {
        files.push((
            format!("JPEG C2PA {name}"),
            jpeg_with_segments(&jpeg, &[app11(&box_)]),
        ));
        files.push((
            format!("PNG C2PA {name}"),
            png_with_chunks_before_idat(&png, &[(*b"caBX", box_.clone())]),
        ));
    }
    let many: Vec<(u8, Vec<u8>)> = (0..2_000)
        .map(|_| app11(&jumbf("c2pa", &jumbf("c2pa.assertions", &[]))))
        .collect();
    files.push((
        "JPEG 2000 C2PA segments".into(),
        jpeg_with_segments(&jpeg, &many),
    ));

    // JPEG segment floods: comments with parameters, EXIF structures.
    let comment = {
        let mut c = b"a duck\nSteps: 1, Seed: 1, Sampler: x ".to_vec();
        c.resize(60_000, b'x');
        c
    };
    files.push((
        "JPEG 100 long comments".into(),
        jpeg_with_segments(&jpeg, &vec![(0xFE, comment); 100]),
    ));
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend(&deep_exif(1)[..8 + 2 + 501 * 12 + 4]);
    files.push((
        "JPEG 1000 EXIF segments".into(),
        jpeg_with_segments(&jpeg, &vec![(0xE1, exif); 1_000]),
    ));
    files
}
