//! End to end: the real `arbiter` binary scans the sample images, on SQLite and on PostgreSQL
//! (when `ARBITER_TEST_POSTGRES_URL` is set), and the decisions and audit rows are checked.

use crate::harness::{DbArg, arbiter, repo};

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Output;

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

async fn each_database(check: impl Fn(&str, DbArg)) {
    let dir = tempfile::tempdir().unwrap();
    check("sqlite", DbArg::DataDir(dir.path().join(".arbiter")));
    if let Some(pg) = crate::harness::postgres().await {
        check("postgres", DbArg::Url(pg.url.clone()));
        pg.drop_db().await.unwrap();
    }
}

#[tokio::test]
async fn scan_decides_every_sample_and_records_a_gapless_audit_chain() {
    each_database(|label, db| {
        let samples = [
            "sd-generated-duck.png",
            "comfyui-render.png",
            "plain-render.png",
            "c2pa-edited-photo.jpg",
            "c2pa-ai-edited.jpg",
            "c2pa-altered-after-signing.jpg",
        ];
        let mut args = vec![
            "scan",
            "--json",
            "--flow",
            "insurance",
            "--fact",
            "claim.amount=12000",
            "--fact",
            "claim.id=CLM-1001",
        ];
        let paths: Vec<String> = samples.iter().map(|s| format!("samples/{s}")).collect();
        args.extend(paths.iter().map(String::as_str));
        let output = arbiter(&db, &args);
        assert!(
            output.status.success(),
            "{label}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let results = json_lines(&output);
        assert_eq!(results.len(), samples.len(), "{label}");

        let expected = [
            ("AI_GENERATED", "HIGH", "siu_escalation"),
            ("AI_GENERATED", "HIGH", "siu_escalation"),
            ("INCONCLUSIVE", "LOW", "adjuster_review"),
            ("INCONCLUSIVE", "LOW", "adjuster_review"),
            // C2PA: a generative edit, then pixels changed after signing.
            ("MANIPULATED", "HIGH", "siu_escalation"),
            ("MANIPULATED", "MEDIUM", "adjuster_review"),
        ];
        for ((result, path), (label_, risk, action)) in results.iter().zip(&paths).zip(expected) {
            assert_eq!(result["file"], path.as_str());
            assert_eq!(
                result["image_info"]["sha256"],
                sha256_of(&repo().join(path)),
                "{label}: {path}"
            );
            assert_eq!(result["verdict"]["label"], label_, "{label}: {path}");
            assert_eq!(result["verdict"]["risk_level"], risk, "{label}: {path}");
            assert_eq!(result["decision"]["action"], action, "{label}: {path}");
            assert!(result["decision"]["fired"].is_array());
            assert!(result["model_results"]["metadata_analysis"]["detail"].is_string());
            assert_eq!(result["decision"]["policy"]["id"], "insurance.fnol");
        }

        // The audit chain: one decision.recorded per image, gapless and linked.
        let output = arbiter(&db, &["audit", "show", "--tenant", "default", "--json"]);
        assert!(
            output.status.success(),
            "{label}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let entries = json_lines(&output);
        assert_eq!(entries.len(), samples.len(), "{label}");
        let mut prev = "0".repeat(64);
        for (seq, (entry, result)) in entries.iter().zip(&results).enumerate() {
            assert_eq!(entry["seq"], seq as u64, "{label}");
            assert_eq!(entry["prev_hash"], prev.as_str(), "{label}");
            assert_eq!(entry["event"], "decision.recorded");
            assert_eq!(entry["request_id"], result["request_id"]);
            assert_eq!(entry["image_sha256"], result["image_info"]["sha256"]);
            assert_eq!(entry["actions"][0], result["decision"]["action"]);
            assert_eq!(entry["entry_hash"], result["audit"]["entry_hash"]);
            // entry_hash is the SHA-256 of the canonical entry without it.
            let mut without = entry.as_object().unwrap().clone();
            let hash = without.remove("entry_hash").unwrap();
            let canonical = serde_jcs::to_string(&without).unwrap();
            assert_eq!(
                hex::encode(Sha256::digest(canonical.as_bytes())),
                hash.as_str().unwrap()
            );
            prev = hash.as_str().unwrap().to_owned();
        }
    })
    .await;
}

#[tokio::test]
async fn a_bad_file_is_named_the_others_go_on_and_the_exit_code_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not an image").unwrap();
    let tiny = repo().join("tests/fixtures/genmeta/automatic1111_cropped.png");
    let truncated = dir.path().join("truncated.png");
    std::fs::write(
        &truncated,
        &std::fs::read(repo().join("samples/plain-render.png")).unwrap()[..20],
    )
    .unwrap();
    let missing = dir.path().join("missing.jpg");
    each_database(|label, db| {
        let output = arbiter(
            &db,
            &[
                "scan",
                "--json",
                "samples/plain-render.png",
                text.to_str().unwrap(),
                tiny.to_str().unwrap(),
                truncated.to_str().unwrap(),
                missing.to_str().unwrap(),
                "samples/c2pa-algorithmic.jpg",
            ],
        );
        assert_eq!(output.status.code(), Some(1), "{label}");
        let results = json_lines(&output);
        let codes: Vec<_> = results
            .iter()
            .map(|r| r["error"]["code"].as_str().unwrap_or("ok"))
            .collect();
        assert_eq!(
            codes,
            [
                "ok",
                "UNSUPPORTED_FORMAT",
                "IMAGE_TOO_SMALL",
                "INVALID_IMAGE",
                "INVALID_REQUEST",
                "ok"
            ],
            "{label}"
        );
        assert!(
            results[2]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("1x1")
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("4 of 6 files failed"), "{label}: {stderr}");

        // Only the two good files were recorded.
        let output = arbiter(&db, &["audit", "show", "--json"]);
        assert_eq!(json_lines(&output).len(), 2, "{label}");

        // The table names the bad file on stderr.
        let output = arbiter(&db, &["scan", text.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("notes.txt") && stderr.contains("UNSUPPORTED_FORMAT"),
            "{stderr}"
        );
    })
    .await;
}

#[tokio::test]
async fn bad_domain_facts_are_refused_before_anything_is_recorded() {
    each_database(|label, db| {
        let output = arbiter(
            &db,
            &[
                "scan",
                "--fact",
                "claim.amount=lots",
                "samples/plain-render.png",
            ],
        );
        assert_eq!(output.status.code(), Some(1), "{label}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("claim.amount"), "{label}: {stderr}");
        let output = arbiter(
            &db,
            &[
                "scan",
                "--flow",
                "kyc",
                "--fact",
                "image_role=passport",
                "samples/plain-render.png",
            ],
        );
        assert_eq!(output.status.code(), Some(1), "{label}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("image_role"));
        let output = arbiter(
            &db,
            &["scan", "--flow", "mortgage", "samples/plain-render.png"],
        );
        assert!(String::from_utf8_lossy(&output.stderr).contains("unknown flow `mortgage`"));
        let output = arbiter(&db, &["audit", "show", "--json"]);
        assert!(json_lines(&output).is_empty(), "{label}");
    })
    .await;
}

#[tokio::test]
async fn each_flow_decides_under_its_own_policy() {
    each_database(|label, db| {
        let output = arbiter(
            &db,
            &[
                "scan",
                "--json",
                "--flow",
                "ugc",
                "--fact",
                "uploader.account_age_days=400",
                "samples/sd-generated-duck.png",
                "samples/plain-render.png",
            ],
        );
        assert!(
            output.status.success(),
            "{label}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let actions: Vec<_> = json_lines(&output)
            .iter()
            .map(|r| r["decision"]["action"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(actions, ["auto_reject", "publish"], "{label}");

        // A KYC selfie with no liveness result is never approved.
        let output = arbiter(
            &db,
            &[
                "scan",
                "--json",
                "--flow",
                "kyc",
                "--fact",
                "image_role=selfie",
                "samples/plain-render.png",
            ],
        );
        let result = &json_lines(&output)[0];
        assert_ne!(result["decision"]["action"], "approve", "{label}");
        let output = arbiter(
            &db,
            &[
                "scan",
                "--json",
                "--flow",
                "kyc",
                "--fact",
                "image_role=selfie",
                "--fact",
                "liveness.passed=true",
                "samples/sd-generated-duck.png",
            ],
        );
        assert_eq!(
            json_lines(&output)[0]["decision"]["action"],
            "reject",
            "{label}"
        );
    })
    .await;
}

#[test]
fn scan_ends_quietly_when_its_reader_goes_away() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let db = DbArg::DataDir(dir.path().join(".arbiter"));
    // Enough files that rows are still being written after the reader has gone.
    let files: Vec<String> = (0..40)
        .map(|_| "samples/sd-generated-duck.png".to_owned())
        .collect();
    let mut child = crate::harness::arbiter_command(&db)
        .arg("scan")
        .args(&files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // `| head -1`: one line read, then the pipe is closed.
    assert!(first.starts_with("FILE"), "{first}");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
}
