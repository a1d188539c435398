//! Every fixture in `tests/fixtures/` gets the verdict the rules give it (see the fixtures'
//! README for what each file is).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use arbiter_core::{Analysis, AnalyzeOptions, ModelLabel, RiskLevel, VerdictLabel};
use arbiter_detect::{IntakeLimits, LocalDetector, intake};

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Intake without the 100x100 minimum, so the 1x1 generator samples can be analysed directly.
fn analyse(path: &str) -> Analysis {
    let limits = IntakeLimits {
        min_dimension: 1,
        ..IntakeLimits::default()
    };
    let input = intake(fixture(path), &limits).unwrap();
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

#[track_caller]
fn expect(path: &str, label: VerdictLabel, risk: RiskLevel, detail_has: &[&str]) -> Analysis {
    let analysis = analyse(path);
    let detail = metadata_detail(&analysis);
    assert_eq!(analysis.verdict.label, label, "{path}: {detail}");
    assert_eq!(analysis.verdict.risk_level, risk, "{path}: {detail}");
    for needle in detail_has {
        assert!(
            detail.contains(needle),
            "{path}: {needle:?} not in {detail}"
        );
    }
    analysis
}

#[cfg(feature = "c2pa")]
#[test]
fn c2pa_fixtures_follow_the_provenance_rules() {
    use VerdictLabel as V;
    // Valid, colour adjustments, untrusted signer: nothing to decide, never AUTHENTIC.
    let ca = expect(
        "c2pa/CA.jpg",
        V::Inconclusive,
        RiskLevel::Low,
        &[
            "not verified: no C2PA trust list is configured",
            "c2pa.color_adjustments",
        ],
    );
    assert!(ca.metadata.c2pa_present && ca.metadata.c2pa_valid && !ca.metadata.c2pa_trusted);
    assert_eq!(
        ca.metadata.c2pa_signer.as_deref(),
        Some("C2PA Test Signing Cert")
    );
    assert!(!ca.metadata.ai_declared);

    let xca = expect(
        "c2pa/XCA.jpg",
        V::Manipulated,
        RiskLevel::Medium,
        &[
            "the image changed after signing",
            "assertion.dataHash.mismatch",
        ],
    );
    assert!(xca.metadata.c2pa_present && !xca.metadata.c2pa_valid);
    assert_eq!(
        xca.verdict.confidence,
        arbiter_detect::local::C2PA_PIXELS_CHANGED
    );

    for (path, code) in [
        ("c2pa/E-sig-CA.jpg", "claimSignature.mismatch"),
        (
            "c2pa/adobe-20220124-E-uri-CA.jpg",
            "assertion.hashedURI.mismatch",
        ),
    ] {
        let broken = expect(
            path,
            V::Inconclusive,
            RiskLevel::Low,
            &[code, "claims are ignored"],
        );
        assert!(broken.metadata.c2pa_present && !broken.metadata.c2pa_valid);
    }

    let algorithmic = expect(
        "c2pa/C.jpg",
        V::Inconclusive,
        RiskLevel::Low,
        &["algorithmicMedia", "not generative AI"],
    );
    assert!(!algorithmic.metadata.ai_declared);

    let firefly = expect(
        "c2pa/ocsp.jpg",
        V::Manipulated,
        RiskLevel::High,
        &[
            "c2pa_ai_edited",
            "compositeWithTrainedAlgorithmicMedia",
            "Adobe Inc.",
        ],
    );
    assert!(firefly.metadata.ai_declared && firefly.metadata.c2pa_valid);
}

#[test]
fn camera_files_are_consistent_with_a_capture_and_never_authentic() {
    for path in [
        "camera/DSCN0010.jpg",
        "camera/canon-ixus.jpg",
        "camera/nikon-e950.jpg",
        "camera/IMG_5195.HEIC",
        "camera/samplefilehub.heif",
    ] {
        let analysis = analyse(path);
        assert_eq!(analysis.verdict.label, VerdictLabel::Inconclusive, "{path}");
        assert_eq!(analysis.verdict.risk_level, RiskLevel::Low, "{path}");
        for (_, result) in analysis.model_results.iter() {
            assert_ne!(result.label, ModelLabel::Authentic, "{path}: {result:?}");
        }
    }
    let nikon = expect(
        "camera/DSCN0010.jpg",
        VerdictLabel::Inconclusive,
        RiskLevel::Low,
        &["NIKON COOLPIX P6000", "not proof of one", "Nikon Transfer"],
    );
    assert!(nikon.metadata.gps_present && nikon.metadata.exif_present);
    let metadata = nikon.model_results.metadata_analysis.unwrap();
    assert_eq!(
        metadata.device_fingerprint.as_deref(),
        Some("NIKON COOLPIX P6000")
    );
    // The splicing model reads the camera's own quantisation tables.
    let splicing = nikon.model_results.splicing_detection.unwrap();
    assert!(splicing.score.is_some(), "{splicing:?}");
}

#[test]
fn heic_reads_metadata_and_container_dimensions_but_not_pixels() {
    let analysis = analyse("camera/IMG_5195.HEIC");
    assert_eq!(
        (analysis.image_info.width, analysis.image_info.height),
        (2566, 3313)
    );
    assert_eq!(analysis.metadata.camera_make.as_deref(), Some("Apple"));
    for model in [
        &analysis.model_results.noise_analysis,
        &analysis.model_results.frequency_analysis,
        &analysis.model_results.splicing_detection,
    ] {
        let model = model.as_ref().unwrap();
        assert_eq!(model.label, ModelLabel::NotRun);
        assert!(
            model.detail.as_deref().unwrap().contains("no HEIC decoder"),
            "{model:?}"
        );
    }
}

#[test]
fn the_too_small_camera_file_is_refused_at_intake() {
    let err = intake(fixture("camera/Canon_40D.jpg"), &IntakeLimits::default()).unwrap_err();
    assert_eq!(err.code(), arbiter_core::ErrorCode::ImageTooSmall);
}

#[test]
fn every_generator_sample_is_ai_generated() {
    for (path, generator) in [
        ("genmeta/automatic1111_cropped.png", "AUTOMATIC1111"),
        ("genmeta/automatic1111_cropped.jpg", "AUTOMATIC1111"),
        ("genmeta/automatic1111_stealth.png", "AUTOMATIC1111"),
        ("genmeta/comfyui_img2img_cropped.png", "ComfyUI"),
        ("genmeta/novelai1_cropped.png", "NovelAI"),
        ("genmeta/invokeai_imeta1.png", "InvokeAI"),
        ("genmeta/invokeai_sdmeta1.png", "InvokeAI"),
        ("genmeta/fooocus1_cropped.png", "Fooocus"),
    ] {
        let analysis = expect(
            path,
            VerdictLabel::AiGenerated,
            RiskLevel::High,
            &["metadata_ai_generated"],
        );
        assert_eq!(
            analysis.metadata.generator.as_deref(),
            Some(generator),
            "{path}"
        );
        assert!(analysis.metadata.ai_declared, "{path}");
    }
    let stealth = analyse("genmeta/automatic1111_stealth.png");
    assert!(metadata_detail(&stealth).contains("alpha channel hides generation parameters"));
}
