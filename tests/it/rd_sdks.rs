//! The Reality Defender–compatible endpoints with RD's own SDKs, unchanged but for their base
//! URL: the TypeScript SDK (npm `@realitydefender/realitydefender` 0.1.17, installed in
//! `tools/rd-sdk` by `.ci/run`) and the Python SDK (PyPI `realitydefender` 0.1.13) run their
//! README's flows against a real server on loopback (`tools/rd-sdk/*_flows.*`), on SQLite and
//! PostgreSQL. With `ARBITER_REQUIRE_SDKS` set (CI sets it) a missing SDK fails the test instead
//! of skipping it. Plus the facade's own contract over plain HTTP.

use crate::harness::{TestServer, config, each_database, new_key, repo};
use arbiter_server::keys::{NewKey, Scope};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

struct Running {
    server: TestServer,
    api: String,
    /// A key of tenant `acme` with the scopes the SDKs need.
    key: String,
    /// The id of `key`.
    key_id: String,
    /// A key of another tenant.
    other_key: String,
}

impl Running {
    async fn start(dir: &Path, url: &str, flow: Option<&str>) -> Self {
        let server = TestServer::start(config(dir, url)).await;
        let new = |tenant: &str| NewKey {
            name: "rd-sdk".into(),
            flow: flow.map(str::to_owned),
            ..new_key(
                tenant,
                "enterprise",
                &[
                    Scope::Analyze,
                    Scope::RequestsRead,
                    Scope::Review,
                    Scope::AuditRead,
                ],
            )
        };
        let (key_id, key) = server.mint_key(new("acme")).await;
        let (_, other_key) = server.mint_key(new("globex")).await;
        Self {
            api: server.base.clone(),
            key,
            key_id,
            other_key,
            server,
        }
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

/// Whether the SDKs must run (CI), else a missing one skips its test.
fn required() -> bool {
    std::env::var_os("ARBITER_REQUIRE_SDKS").is_some()
}

/// The files the flows upload: an AI-generated PNG, a camera JPEG, and a file over the 20 MiB
/// limit (under the SDKs' own 50 MB) that the server must refuse.
fn files(dir: &Path) -> [PathBuf; 3] {
    let too_large = dir.join("too-large.jpg");
    std::fs::write(&too_large, vec![0u8; 21 * 1024 * 1024]).unwrap();
    [
        repo().join("samples/sd-generated-duck.png"),
        repo().join("tests/fixtures/camera/DSCN0010.jpg"),
        too_large,
    ]
}

/// Runs one SDK's flows; its JSON lines by flow name.
async fn run_flows(program: &str, script: &str, running: &Running, dir: &Path) -> Vec<Value> {
    let [image, other, too_large] = files(dir);
    let mut command = std::process::Command::new(program);
    command
        .current_dir(repo().join("tools/rd-sdk"))
        .arg(script)
        .args([&running.api, &running.key, &running.other_key])
        .args([&image, &other, &too_large]);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{program} {script}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn flow<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|line| line["flow"] == name)
        .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
}

/// A final status, a score null or in 0..1, and the requestId the upload returned.
fn check_outcome(label: &str, line: &Value) {
    let status = line["status"].as_str().unwrap_or_default();
    assert!(
        [
            "AUTHENTIC",
            "MANIPULATED",
            "SUSPICIOUS",
            "NOT_APPLICABLE",
            "UNABLE_TO_EVALUATE"
        ]
        .contains(&status),
        "{label}: {line}"
    );
    assert!(
        line["score"].is_null()
            || line["score"]
                .as_f64()
                .is_some_and(|s| (0.0..=1.0).contains(&s)),
        "{label}: {line}"
    );
    assert_eq!(line["requestId"], line["expected"], "{label}: {line}");
    assert!(
        line["requestId"].as_str().unwrap().starts_with("req_"),
        "{label}"
    );
}

/// A bad key, a foreign requestId and an oversized upload, as the SDK reported them: the
/// oversized one as `too_large_code`, with the server's message naming the limit.
fn check_refusals(label: &str, lines: &[Value], too_large_code: &str) {
    assert_eq!(flow(lines, "bad key")["code"], "unauthorized", "{label}");
    assert_eq!(
        flow(lines, "foreign requestId")["code"],
        "not_found",
        "{label}"
    );
    let too_large = flow(lines, "too large");
    assert_eq!(too_large["code"], too_large_code, "{label}: {too_large}");
    assert!(
        too_large["message"].as_str().unwrap().contains("limit"),
        "{too_large}"
    );
}

#[tokio::test]
async fn the_typescript_sdk_runs_its_readme_flows_against_arbiter() {
    let sdk = repo().join("tools/rd-sdk/node_modules/@realitydefender/realitydefender");
    if !sdk.exists() {
        assert!(
            !required(),
            "the TypeScript SDK is not installed in tools/rd-sdk"
        );
        eprintln!("skipped: run `npm install` in tools/rd-sdk");
        return;
    }
    each_database(async |label, dir, url| {
        let running = Running::start(dir, &url, None).await;
        let lines = run_flows("node", "ts_flows.mjs", &running, dir).await;
        for name in ["detect", "upload+getResult", "pollForResults"] {
            check_outcome(&format!("{label} {name}"), flow(&lines, name));
        }
        // The AI-generated PNG declares its generator: MANIPULATED (RD's FAKE), scored.
        assert_eq!(flow(&lines, "detect")["status"], "MANIPULATED", "{label}");
        let page = flow(&lines, "getResults");
        assert_eq!(page["totalItems"], 3, "{label}: {page}");
        assert_eq!(page["totalPages"], 2, "{label}");
        assert_eq!(page["currentPageItemsCount"], 2, "{label}");
        // The SDK reports the server's 413 as a server error carrying its message.
        check_refusals(label, &lines, "server_error");
        running.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_python_sdk_runs_its_readme_flows_against_arbiter() {
    let present = std::process::Command::new("python3")
        .args(["-c", "import realitydefender"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        assert!(
            !required(),
            "the Python SDK realitydefender is not installed"
        );
        eprintln!("skipped: pip install realitydefender==0.1.13");
        return;
    }
    each_database(async |label, dir, url| {
        let running = Running::start(dir, &url, Some("insurance")).await;
        let lines = run_flows("python3", "py_flows.py", &running, dir).await;
        for name in ["upload+get_result", "poll_for_results", "detect_file"] {
            check_outcome(&format!("{label} {name}"), flow(&lines, name));
        }
        let page = flow(&lines, "get_results");
        assert_eq!(page["totalItems"], 2, "{label}: {page}");
        assert_eq!(page["items"].as_array().unwrap().len(), 2, "{label}");
        let feedback = flow(&lines, "create_user_feedback");
        assert_eq!(feedback["label"], "SYNTHETIC", "{label}");
        // The SDK reports the server's 413 as a failed upload carrying its message.
        check_refusals(label, &lines, "upload_failed");
        assert_eq!(flow(&lines, "social")["code"], "invalid_request", "{label}");
        running.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_facade_answers_in_rd_shapes_and_keeps_its_promises() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(dir.path(), "", Some("insurance")).await;
    let client = reqwest::Client::new();
    let api = &running.api;

    // Presign from a form body, as the Python SDK sends it.
    let presigned: Value = client
        .post(format!("{api}/api/files/aws-presigned"))
        .header("x-api-key", &running.key)
        .form(&[("fileName", "claims/photo 1.png")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(presigned["code"], "success");
    assert_eq!(presigned["errno"], 0);
    let request_id = presigned["requestId"].as_str().unwrap().to_owned();
    let signed = presigned["response"]["signedUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(signed.starts_with(&format!("{api}/api/files/upload/{request_id}?token=")));
    assert!(presigned["mediaId"].as_str().is_some_and(|m| !m.is_empty()));

    // Before the bytes arrive: the pending shape, never a 404.
    let detail = |key: &str| {
        client
            .get(format!("{api}/api/media/users/{request_id}"))
            .header("x-api-key", key)
            .send()
    };
    let pending: Value = detail(&running.key).await.unwrap().json().await.unwrap();
    assert_eq!(pending["overallStatus"], "ANALYZING");
    assert_eq!(pending["resultsSummary"]["status"], "ANALYZING");
    assert_eq!(
        pending["resultsSummary"]["metadata"],
        json!({"finalScore": null})
    );
    assert_eq!(pending["name"], "photo 1.png");

    // A wrong token: 403 in RD's shape, JSON.
    let wrong = client
        .put(signed.replace("token=", "token=0"))
        .body(std::fs::read(repo().join("samples/sd-generated-duck.png")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(wrong.headers()["content-type"], "application/json");
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["errno"], 403, "{body}");
    assert!(body["response"].as_str().is_some());

    // The upload: 200 with an empty body, and at once the record answers ANALYZING or final.
    let put = client
        .put(&signed)
        .header("content-type", "image/png")
        .body(std::fs::read(repo().join("samples/sd-generated-duck.png")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    assert!(put.bytes().await.unwrap().is_empty());
    let again = client.put(&signed).body("x").send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let mut last = Value::Null;
    for _ in 0..200 {
        last = detail(&running.key).await.unwrap().json().await.unwrap();
        if last["overallStatus"] != "ANALYZING" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last["overallStatus"], "FAKE", "{last}");
    assert_eq!(last["overallStatus"], last["resultsSummary"]["status"]);
    let score = last["resultsSummary"]["metadata"]["finalScore"]
        .as_f64()
        .unwrap();
    assert!((0.0..=100.0).contains(&score), "{last}");
    assert!(last["models"].is_array());
    assert_eq!(last["requestId"], request_id.as_str());

    // The key names the insurance flow: the upload was decided by its policy, with its audit
    // entry, and the Arbiter API sees the same request.
    let stored: Value = client
        .get(format!("{api}/v1/requests/{request_id}"))
        .bearer_auth(&running.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["decision"]["flow"], "insurance", "{stored}");
    assert_eq!(stored["decision"]["action"], "siu_escalation", "{stored}");
    let trail: Value = client
        .get(format!("{api}/v1/requests/{request_id}/trail"))
        .bearer_auth(&running.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(trail["entries"][0]["event"], "decision.recorded", "{trail}");

    // Another tenant's key: not found, in RD's shape; no key: 401.
    let foreign = detail(&running.other_key).await.unwrap();
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let foreign: Value = foreign.json().await.unwrap();
    assert_eq!(foreign["code"], "not-found");
    let anonymous = client
        .get(format!("{api}/api/media/users/{request_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let anonymous: Value = anonymous.json().await.unwrap();
    assert_eq!(anonymous["code"], "unauthorized");

    // Feedback becomes a resolved review label on the request.
    let feedback = client
        .post(format!("{api}/api/v2/user-feedback"))
        .header("x-api-key", &running.key)
        .json(&json!({"requestId": request_id, "label": "SYNTHETIC", "feedbackCategory": "CONFIRMATION"}))
        .send()
        .await
        .unwrap();
    assert_eq!(feedback.status(), StatusCode::CREATED);
    let feedback: Value = feedback.json().await.unwrap();
    for field in [
        "id",
        "userId",
        "requestId",
        "institutionId",
        "category",
        "label",
        "createdAt",
    ] {
        assert!(!feedback[field].is_null(), "{field}: {feedback}");
    }
    let items: Value = client
        .get(format!(
            "{api}/v1/review/items?queue=feedback&status=resolved"
        ))
        .bearer_auth(&running.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(items["data"][0]["label"], "confirmed_fake", "{items}");
    assert_eq!(items["data"][0]["request_id"], request_id.as_str());

    // A page far past the end (even past what the database takes as an offset) is empty.
    for page in ["1000", "9223372036854775808", "18446744073709551615"] {
        let response = client
            .get(format!("{api}/api/v2/media/users/pages/{page}?size=100"))
            .header("x-api-key", &running.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "page {page}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["mediaList"], json!([]), "page {page}: {body}");
        assert_eq!(body["totalItems"], 1, "page {page}: {body}");
    }

    // A slot presigned by a key revoked since: its upload URL stops working at once.
    let presigned: Value = client
        .post(format!("{api}/api/files/aws-presigned"))
        .header("x-api-key", &running.key)
        .json(&json!({"fileName": "late.png"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let signed = presigned["response"]["signedUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = crate::harness::arbiter(
        &crate::harness::DbArg::DataDir(dir.path().to_path_buf()),
        &["keys", "revoke", &running.key_id],
    );
    assert!(revoked.status.success(), "{revoked:?}");
    let late = client
        .put(&signed)
        .body(std::fs::read(repo().join("samples/sd-generated-duck.png")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), StatusCode::UNAUTHORIZED);
    let late: Value = late.json().await.unwrap();
    assert_eq!(late["code"], "unauthorized", "{late}");
    running.stop().await;
}
