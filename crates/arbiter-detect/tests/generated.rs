//! Generated cases: manifests signed in the test with an ephemeral certificate, a camera-like
//! JPEG, a PNG re-encoded without metadata, and hostile files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use arbiter_core::{AnalyzeOptions, ImageFormat, ModelKind, ModelLabel, RiskLevel, VerdictLabel};
use arbiter_detect::{IntakeLimits, LocalDetector, LocalDetectorConfig, intake};
use base64::Engine;

/// A textured grey-scale image, JPEG-encoded.
fn textured_jpeg(width: u32, height: u32, quality: u8) -> Vec<u8> {
    let luma: Vec<u8> = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .map(|(x, y)| {
            let mut h = u64::from(x).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ u64::from(y).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
            h ^= h >> 31;
            (80.0
                + 40.0 * ((f64::from(x) / 19.0).sin() + (f64::from(y) / 13.0).cos())
                + (h % 24) as f64) as u8
        })
        .collect();
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    image::ImageEncoder::write_image(encoder, &luma, width, height, image::ExtendedColorType::L8)
        .unwrap();
    out
}

fn analyse_with(detector: &LocalDetector, bytes: Vec<u8>) -> arbiter_core::Analysis {
    let input = intake(bytes, &IntakeLimits::default()).unwrap();
    detector.analyze_sync(&input, &AnalyzeOptions::default())
}

#[cfg_attr(not(feature = "c2pa"), allow(dead_code))]
fn detail(analysis: &arbiter_core::Analysis) -> String {
    analysis
        .model_results
        .metadata_analysis
        .as_ref()
        .and_then(|m| m.result.detail.clone())
        .unwrap_or_default()
}

#[cfg(feature = "c2pa")]
mod signed {
    use super::*;
    use c2pa::Signer;

    const AI: &str = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";
    const CAPTURE: &str = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture";

    /// Signs `jpeg` with a manifest whose one action is `c2pa.created` from `source`; returns
    /// the signed file and the PEM of the ephemeral CA that issued the signing certificate.
    fn sign(jpeg: &[u8], source: &str) -> (Vec<u8>, String) {
        sign_as("image/jpeg", jpeg, source)
    }

    /// [`sign`] for a file of the given media type.
    fn sign_as(mime: &str, jpeg: &[u8], source: &str) -> (Vec<u8>, String) {
        let signer = c2pa::EphemeralSigner::new("arbiter-test.local").unwrap();
        let definition = serde_json::json!({
            "claim_generator_info": [{"name": "arbiter-detect tests", "version": "1"}],
            "title": "generated.jpg",
            "assertions": [{
                "label": "c2pa.actions",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": source}]}
            }]
        });
        let context = c2pa::Context::new()
            .with_settings(r#"{"verify": {"remote_manifest_fetch": false}}"#)
            .unwrap();
        let mut builder = c2pa::Builder::from_context(context)
            .with_definition(definition.to_string().as_str())
            .unwrap();
        let mut source = std::io::Cursor::new(jpeg.to_vec());
        let mut dest = std::io::Cursor::new(Vec::new());
        builder.sign(&signer, mime, &mut source, &mut dest).unwrap();
        let certs = signer.certs().unwrap();
        let ca = certs.last().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(ca);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        (dest.into_inner(), pem)
    }

    /// Flips bits in the middle of the entropy-coded scan: the pixels change, the manifest
    /// does not.
    fn alter_pixels(jpeg: &mut [u8]) {
        let sos = jpeg.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
        let at = sos + (jpeg.len() - sos) / 2;
        for b in &mut jpeg[at..at + 8] {
            if *b != 0xFF && *b != 0x00 {
                *b ^= 0x10;
            }
        }
    }

    #[test]
    fn a_signed_ai_creation_is_ai_generated_even_from_an_untrusted_signer() {
        let (signed, _) = sign(&textured_jpeg(320, 240, 85), AI);
        let analysis = analyse_with(&LocalDetector::default(), signed);
        assert_eq!(
            analysis.verdict.label,
            VerdictLabel::AiGenerated,
            "{}",
            detail(&analysis)
        );
        assert_eq!(
            analysis.verdict.confidence,
            arbiter_detect::local::C2PA_AI_CREATED
        );
        assert_eq!(analysis.verdict.risk_level, RiskLevel::High);
        assert!(detail(&analysis).contains("c2pa_ai_created"));
        assert!(analysis.metadata.c2pa_valid && analysis.metadata.ai_declared);
    }

    #[test]
    fn the_same_file_with_its_pixels_altered_is_manipulated_with_lower_confidence() {
        let (mut signed, _) = sign(&textured_jpeg(320, 240, 85), AI);
        alter_pixels(&mut signed);
        let analysis = analyse_with(&LocalDetector::default(), signed);
        let said = detail(&analysis);
        assert_eq!(analysis.verdict.label, VerdictLabel::Manipulated, "{said}");
        assert_eq!(analysis.verdict.risk_level, RiskLevel::Medium, "{said}");
        assert!(said.contains("the image changed after signing"), "{said}");
        assert!(said.contains("its pixels or its metadata"), "{said}");
        assert!(said.contains("declared AI-generated"), "{said}");
    }

    /// What some mail, chat and storage systems do: bytes added after the image's end.
    const TRAILER: &[u8] = b"\r\n--boundary appended by a gateway--\r\n";

    #[test]
    fn bytes_added_after_the_end_keep_the_manifests_own_conclusion() {
        let (mut signed, _) = sign(&textured_jpeg(320, 240, 85), AI);
        signed.extend(TRAILER);
        let analysis = analyse_with(&LocalDetector::default(), signed);
        let said = detail(&analysis);
        assert_eq!(analysis.verdict.label, VerdictLabel::AiGenerated, "{said}");
        assert!(said.contains("c2pa_ai_created"), "{said}");
        assert!(
            said.contains(&format!(
                "only by {} bytes added after the end of the JPEG image",
                TRAILER.len()
            )),
            "{said}"
        );
        assert!(analysis.metadata.c2pa_valid, "{said}");

        // A trusted capture stays AUTHENTIC: the image is what the camera signed.
        let (mut capture, capture_ca) = sign(&textured_jpeg(320, 240, 90), CAPTURE);
        capture.extend(TRAILER);
        let trusting =
            LocalDetector::with_trust_anchors_pem(LocalDetectorConfig::default(), &capture_ca)
                .unwrap();
        let analysis = analyse_with(&trusting, capture);
        assert_eq!(
            analysis.verdict.label,
            VerdictLabel::Authentic,
            "{}",
            detail(&analysis)
        );
    }

    #[test]
    fn bytes_added_after_a_png_iend_keep_the_manifests_own_conclusion() {
        let luma: Vec<u8> = (0..160u32 * 120).map(|i| (i * 7 % 251) as u8).collect();
        let mut png = Vec::new();
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut png),
            &luma,
            160,
            120,
            image::ExtendedColorType::L8,
        )
        .unwrap();
        let (mut signed, _) = sign_as("image/png", &png, AI);
        assert_eq!(
            analyse_with(&LocalDetector::default(), signed.clone())
                .verdict
                .label,
            VerdictLabel::AiGenerated
        );
        signed.extend(TRAILER);
        let analysis = analyse_with(&LocalDetector::default(), signed);
        let said = detail(&analysis);
        assert_eq!(analysis.verdict.label, VerdictLabel::AiGenerated, "{said}");
        assert!(
            said.contains("added after the end of the PNG image"),
            "{said}"
        );
    }

    #[test]
    fn a_change_inside_the_image_is_still_manipulated_with_or_without_a_trailer() {
        let (mut signed, _) = sign(&textured_jpeg(320, 240, 85), AI);
        alter_pixels(&mut signed);
        signed.extend(TRAILER);
        let analysis = analyse_with(&LocalDetector::default(), signed);
        let said = detail(&analysis);
        assert_eq!(analysis.verdict.label, VerdictLabel::Manipulated, "{said}");
        assert!(said.contains("c2pa_pixels_changed"), "{said}");
        assert!(
            said.contains("not only by bytes added after its end"),
            "{said}"
        );

        // A metadata-only rewrite (a comment added before the image data) cannot be told from
        // a pixel edit: the detail says either may have happened.
        let (signed, _) = sign(&textured_jpeg(320, 240, 85), CAPTURE);
        let mut rewritten = signed[..2].to_vec();
        rewritten.extend([0xFF, 0xFE, 0, 9]);
        rewritten.extend(b"edited!");
        rewritten.extend(&signed[2..]);
        let analysis = analyse_with(&LocalDetector::default(), rewritten);
        let said = detail(&analysis);
        assert_eq!(analysis.verdict.label, VerdictLabel::Manipulated, "{said}");
        assert!(said.contains("its pixels or its metadata"), "{said}");
    }

    #[test]
    fn a_real_manifest_with_a_trailer_keeps_its_reading_and_a_real_alteration_does_not_hide_behind_one()
     {
        let fixture = |path: &str| {
            std::fs::read(format!(
                "{}/../../tests/fixtures/{path}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        let mut ca = fixture("c2pa/CA.jpg");
        ca.extend(TRAILER);
        let analysis = analyse_with(&LocalDetector::default(), ca);
        let said = detail(&analysis);
        assert_eq!(analysis.verdict.label, VerdictLabel::Inconclusive, "{said}");
        assert!(said.contains("c2pa.color_adjustments"), "{said}");
        assert!(said.contains("added after the end"), "{said}");

        let mut xca = fixture("c2pa/XCA.jpg");
        xca.extend(TRAILER);
        let analysis = analyse_with(&LocalDetector::default(), xca);
        let said = detail(&analysis);
        assert_eq!(analysis.verdict.label, VerdictLabel::Manipulated, "{said}");
        assert!(said.contains("assertion.dataHash.mismatch"), "{said}");
    }

    #[test]
    fn a_capture_is_authentic_only_from_a_trusted_signer() {
        let (signed, ca_pem) = sign(&textured_jpeg(320, 240, 90), CAPTURE);
        let untrusted = analyse_with(&LocalDetector::default(), signed.clone());
        assert_eq!(
            untrusted.verdict.label,
            VerdictLabel::Inconclusive,
            "{}",
            detail(&untrusted)
        );
        assert!(detail(&untrusted).contains("counts only from a trusted signer"));

        let dir = tempfile::tempdir().unwrap();
        let anchors = dir.path().join("anchors.pem");
        std::fs::write(&anchors, &ca_pem).unwrap();
        let trusting = LocalDetector::build(LocalDetectorConfig {
            trust_anchors: Some(anchors),
            ..LocalDetectorConfig::default()
        })
        .unwrap();
        let trusted = analyse_with(&trusting, signed);
        let said = detail(&trusted);
        assert_eq!(trusted.verdict.label, VerdictLabel::Authentic, "{said}");
        assert_eq!(trusted.verdict.risk_level, RiskLevel::Low);
        assert!(trusted.metadata.c2pa_trusted, "{said}");
        assert!(said.contains("a trusted signer"), "{said}");

        // The same trust list does not make an AI creation authentic.
        let (ai, ai_ca) = sign(&textured_jpeg(320, 240, 90), AI);
        let trusting =
            LocalDetector::with_trust_anchors_pem(LocalDetectorConfig::default(), &ai_ca).unwrap();
        let analysis = analyse_with(&trusting, ai);
        assert_eq!(analysis.verdict.label, VerdictLabel::AiGenerated);
    }
}

#[test]
fn a_missing_trust_anchors_file_is_a_build_error_naming_the_path() {
    let err = LocalDetector::build(LocalDetectorConfig {
        trust_anchors: Some("/nonexistent/anchors.pem".into()),
        ..LocalDetectorConfig::default()
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/anchors.pem"),
        "{err}"
    );
}

#[test]
fn a_camera_like_jpeg_is_inconclusive_and_every_pixel_model_runs() {
    // EXIF (Make, Model) in APP1, then a real image.
    let jpeg = textured_jpeg(640, 480, 92);
    let mut tiff = b"II*\0\x08\0\0\0\x02\0".to_vec();
    tiff.extend([0x0F, 0x01, 2, 0, 6, 0, 0, 0, 38, 0, 0, 0]);
    tiff.extend([0x10, 0x01, 2, 0, 6, 0, 0, 0, 44, 0, 0, 0]);
    tiff.extend([0; 4]);
    tiff.extend(b"Canon\0EOS R\0");
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(&tiff);
    let mut file = vec![0xFF, 0xD8, 0xFF, 0xE1];
    file.extend(((app1.len() + 2) as u16).to_be_bytes());
    file.extend(&app1);
    file.extend(&jpeg[2..]);
    let analysis = analyse_with(&LocalDetector::default(), file);
    assert_eq!(analysis.verdict.label, VerdictLabel::Inconclusive);
    assert_eq!(analysis.verdict.risk_level, RiskLevel::Low);
    assert_eq!(analysis.metadata.camera_make.as_deref(), Some("Canon"));
    for model in [ModelKind::Noise, ModelKind::Frequency, ModelKind::Splicing] {
        let result = analysis.model_results.get(model).unwrap();
        assert!(result.score.is_some(), "{model:?}: {result:?}");
        assert_ne!(result.label, ModelLabel::Authentic);
    }
}

#[test]
fn a_generator_png_re_encoded_without_metadata_is_inconclusive_never_authentic() {
    let sample = std::fs::read(format!(
        "{}/../../samples/sd-generated-duck.png",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let declared = analyse_with(&LocalDetector::default(), sample.clone());
    assert_eq!(declared.verdict.label, VerdictLabel::AiGenerated);

    let image = image::load_from_memory(&sample).unwrap();
    let mut stripped = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut stripped),
            image::ImageFormat::Png,
        )
        .unwrap();
    let analysis = analyse_with(&LocalDetector::default(), stripped);
    assert_eq!(analysis.verdict.label, VerdictLabel::Inconclusive);
    assert_eq!(analysis.verdict.risk_level, RiskLevel::Low);
    assert!(!analysis.metadata.ai_declared);
    let splicing = analysis.model_results.splicing_detection.unwrap();
    assert_eq!(splicing.label, ModelLabel::NotRun);
}

#[test]
fn the_heatmap_comes_back_only_when_asked_for() {
    let input = intake(textured_jpeg(512, 384, 80), &IntakeLimits::default()).unwrap();
    let plain = LocalDetector::default().analyze_sync(&input, &AnalyzeOptions::default());
    assert!(
        plain
            .model_results
            .splicing_detection
            .unwrap()
            .heatmap
            .is_none()
    );
    let options = AnalyzeOptions {
        return_heatmap: true,
        ..AnalyzeOptions::default()
    };
    let with_map = LocalDetector::default().analyze_sync(&input, &options);
    let map = with_map
        .model_results
        .splicing_detection
        .unwrap()
        .heatmap
        .unwrap();
    assert_eq!((map.width, map.height, map.region_px), (64, 48, 8));
    let png = base64::engine::general_purpose::STANDARD
        .decode(map.png_base64)
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
}

mod hostile {
    use super::*;

    #[test]
    fn zero_length_random_and_wrong_extension_files_are_refused_or_analysed_without_panic() {
        assert!(intake(Vec::new(), &IntakeLimits::default()).is_err());
        // A JPEG named .png: formats are sniffed, never taken from a name.
        let jpeg = textured_jpeg(200, 200, 80);
        let input = intake(jpeg, &IntakeLimits::default()).unwrap();
        assert_eq!(input.info.format, ImageFormat::Jpeg);
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for len in [1usize, 7, 64, 1000, 70_000] {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            assert!(intake(bytes, &IntakeLimits::default()).is_err());
        }
    }

    #[test]
    fn truncated_files_never_panic() {
        let jpeg = textured_jpeg(256, 256, 80);
        let mut analysed = 0;
        for keep in [jpeg.len() / 4, jpeg.len() / 2, jpeg.len() - 10] {
            let Ok(input) = intake(jpeg[..keep].to_vec(), &IntakeLimits::default()) else {
                continue;
            };
            let analysis =
                LocalDetector::default().analyze_sync(&input, &AnalyzeOptions::default());
            assert_eq!(analysis.verdict.label, VerdictLabel::Inconclusive);
            analysed += 1;
        }
        // Each truncation keeps the header, so each reaches the detector: the loop is not
        // skipped by intake refusing every file.
        assert_eq!(analysed, 3, "truncated files analysed");
    }

    #[test]
    fn lying_dimensions_do_not_reach_the_pixel_models() {
        // A real 200x200 JPEG whose frame header is patched to claim 60000x60000.
        let mut jpeg = textured_jpeg(200, 200, 80);
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
        let input = intake(jpeg, &IntakeLimits::default()).unwrap();
        let analysis = LocalDetector::default().analyze_sync(&input, &AnalyzeOptions::default());
        let noise = analysis.model_results.noise_analysis.unwrap();
        assert_eq!(noise.label, ModelLabel::NotRun);
        assert!(noise.detail.unwrap().contains("decode limit"));
    }

    #[test]
    fn a_png_bomb_is_refused_before_allocation() {
        // 20000x20000 RGBA in a few kilobytes of zlib.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let chunk = |png: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
            png.extend((data.len() as u32).to_be_bytes());
            png.extend(kind);
            png.extend(data);
            png.extend([0; 4]);
        };
        let mut ihdr = 20_000u32.to_be_bytes().to_vec();
        ihdr.extend(20_000u32.to_be_bytes());
        ihdr.extend([8, 6, 0, 0, 0]);
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(
            &mut png,
            b"IDAT",
            &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        );
        chunk(&mut png, b"IEND", &[]);
        let input = intake(png, &IntakeLimits::default()).unwrap();
        let config = LocalDetectorConfig {
            max_decode_pixels: 50_000_000,
            ..LocalDetectorConfig::default()
        };
        let detector = LocalDetector::build(config).unwrap();
        let analysis = detector.analyze_sync(&input, &AnalyzeOptions::default());
        let noise = analysis.model_results.noise_analysis.unwrap();
        assert!(
            noise.detail.unwrap().contains("400 MP"),
            "refused by size before decoding"
        );
    }

    #[test]
    fn oversized_and_deeply_nested_metadata_is_bounded() {
        // A PNG with 2000 text chunks and one 4 MB chunk; EXIF with a long IFD chain.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let chunk = |png: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
            png.extend((data.len() as u32).to_be_bytes());
            png.extend(kind);
            png.extend(data);
            png.extend([0; 4]);
        };
        let mut ihdr = 128u32.to_be_bytes().to_vec();
        ihdr.extend(128u32.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        chunk(&mut png, b"IHDR", &ihdr);
        for i in 0..2000 {
            chunk(&mut png, b"tEXt", format!("Comment\0{i}").as_bytes());
        }
        let mut big = b"Comment\0".to_vec();
        big.resize(4 << 20, b'x');
        chunk(&mut png, b"tEXt", &big);
        // EXIF: 1000 IFDs, each pointing to the next through an ExifIFD pointer.
        let mut tiff = b"MM\0*\0\0\0\x08".to_vec();
        for i in 0..1000u32 {
            let next = 8 + (i + 1) * 18;
            tiff.extend([0, 1, 0x87, 0x69, 0, 4, 0, 0, 0, 1]);
            tiff.extend(next.to_be_bytes());
            tiff.extend([0; 4]);
        }
        chunk(&mut png, b"eXIf", &tiff);
        chunk(
            &mut png,
            b"IDAT",
            &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        );
        chunk(&mut png, b"IEND", &[]);
        let started = std::time::Instant::now();
        let report = arbiter_detect::metadata::read_metadata(ImageFormat::Png, &png);
        assert!(report.facts.exif_present);
        assert_eq!(report.declaration, None);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}

/// The generator samples are 1x1 (64x64 for the stealth one); their metadata, copied into
/// generated images of at least 100x100, passes intake and is AI_GENERATED end to end.
mod copied_chunks {
    use super::*;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../tests/fixtures/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn chunks(png: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
        arbiter_detect::container::png_chunks(png)
            .map(|(kind, data)| (kind, data.to_vec()))
            .collect()
    }

    fn with_chunks(base: &[u8], extra: &[([u8; 4], Vec<u8>)]) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        for (i, (kind, data)) in chunks(base).into_iter().enumerate() {
            let mut write = |kind: &[u8; 4], data: &[u8]| {
                out.extend((data.len() as u32).to_be_bytes());
                out.extend(kind);
                out.extend(data);
                let mut crc = flate2::Crc::new();
                crc.update(kind);
                crc.update(data);
                out.extend(crc.sum().to_be_bytes());
            };
            write(&kind, &data);
            if i == 0 {
                for (kind, data) in extra {
                    write(kind, data);
                }
            }
        }
        out
    }

    fn generated_png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 2) as u8, (y * 2) as u8, ((x + y) % 251) as u8])
        });
        let mut out = Vec::new();
        image
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn png_text_chunks_in_a_full_size_image() {
        for (path, generator) in [
            ("genmeta/automatic1111_cropped.png", "AUTOMATIC1111"),
            ("genmeta/comfyui_img2img_cropped.png", "ComfyUI"),
            ("genmeta/novelai1_cropped.png", "NovelAI"),
            ("genmeta/invokeai_imeta1.png", "InvokeAI"),
            ("genmeta/invokeai_sdmeta1.png", "InvokeAI"),
            ("genmeta/fooocus1_cropped.png", "Fooocus"),
        ] {
            let text: Vec<_> = chunks(&fixture(path))
                .into_iter()
                .filter(|(kind, _)| matches!(kind, b"tEXt" | b"iTXt" | b"zTXt"))
                .collect();
            assert!(!text.is_empty(), "{path}");
            let png = with_chunks(&generated_png(160, 120), &text);
            let analysis = analyse_with(&LocalDetector::default(), png);
            assert_eq!(analysis.verdict.label, VerdictLabel::AiGenerated, "{path}");
            assert_eq!(analysis.verdict.risk_level, RiskLevel::High, "{path}");
            assert_eq!(
                analysis.metadata.generator.as_deref(),
                Some(generator),
                "{path}"
            );
        }
    }

    #[test]
    fn the_a1111_jpeg_exif_in_a_full_size_jpeg() {
        let sample = fixture("genmeta/automatic1111_cropped.jpg");
        let (_, exif) = arbiter_detect::container::jpeg_segments(&sample)
            .find(|(marker, payload)| *marker == 0xE1 && payload.starts_with(b"Exif"))
            .unwrap();
        let jpeg = textured_jpeg(200, 150, 85);
        let mut file = vec![0xFF, 0xD8, 0xFF, 0xE1];
        file.extend(((exif.len() + 2) as u16).to_be_bytes());
        file.extend(exif);
        file.extend(&jpeg[2..]);
        let analysis = analyse_with(&LocalDetector::default(), file);
        assert_eq!(analysis.verdict.label, VerdictLabel::AiGenerated);
        assert_eq!(
            analysis.metadata.generator.as_deref(),
            Some("AUTOMATIC1111")
        );
    }

    #[test]
    fn stealth_alpha_data_in_a_full_size_image() {
        // The sample's alpha LSBs, read column by column, written into a 128x128 RGBA image in
        // the same order.
        let sample = image::load_from_memory(&fixture("genmeta/automatic1111_stealth.png"))
            .unwrap()
            .into_rgba8();
        let (w, h) = sample.dimensions();
        let bits: Vec<u8> = (0..w * h)
            .map(|i| sample.get_pixel(i / h, i % h)[3] & 1)
            .collect();
        let size = 128u32;
        let mut image = image::RgbaImage::from_fn(size, size, |x, y| {
            image::Rgba([(x * 2) as u8, (y * 2) as u8, 90, 255])
        });
        for (i, bit) in bits.iter().enumerate() {
            let i = i as u32;
            let pixel = image.get_pixel_mut(i / size, i % size);
            pixel[3] = 254 | bit;
        }
        let mut png = Vec::new();
        image
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let analysis = analyse_with(&LocalDetector::default(), png);
        assert_eq!(
            analysis.verdict.label,
            VerdictLabel::AiGenerated,
            "{}",
            detail_of(&analysis)
        );
        assert!(detail_of(&analysis).contains("stealth"));
    }

    fn detail_of(analysis: &arbiter_core::Analysis) -> String {
        analysis
            .model_results
            .metadata_analysis
            .as_ref()
            .and_then(|m| m.result.detail.clone())
            .unwrap_or_default()
    }
}
