//! PDF report cards through the real server: a request, an insurance claim and a KYC session,
//! each read back with `pdftotext` (the words a reader checks against an audit export are all
//! there) and rendered with `pdftoppm` into `target/report-renders/` for a look; another
//! tenant's ids and unknown ids are not found; a key without `requests:read` is refused.
//! Without poppler's tools the read-back is skipped loudly, unless `ARBITER_REQUIRE_PDF_TOOLS=1`
//! (set by CI), which makes that a failure.

use crate::harness::{TestServer, b64, config, each_database, fixture, new_key, repo, sample};
use arbiter_server::keys::Scope;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `pdftotext` and `pdftoppm` are there; a failure without them when CI requires them.
pub(crate) fn pdf_tools() -> bool {
    let works = |tool: &str| {
        Command::new(tool)
            .arg("-v")
            .output()
            .is_ok_and(|out| out.status.success())
    };
    let present = works("pdftotext") && works("pdftoppm");
    if !present {
        assert!(
            std::env::var("ARBITER_REQUIRE_PDF_TOOLS").as_deref() != Ok("1"),
            "pdftotext and pdftoppm (poppler-utils) are required (ARBITER_REQUIRE_PDF_TOOLS=1)"
        );
        eprintln!("SKIPPED: the PDF read-back needs pdftotext and pdftoppm (poppler-utils)");
    }
    present
}

/// Where the rendered pages go.
fn renders() -> PathBuf {
    let dir = repo().join("target/report-renders");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The PDF's text, as `pdftotext` extracts it; its pages rendered as PNG files next to it.
pub(crate) fn read_back(pdf: &[u8], name: &str) -> String {
    let dir = renders();
    let file = dir.join(format!("{name}.pdf"));
    std::fs::write(&file, pdf).unwrap();
    let text = Command::new("pdftotext")
        .arg(&file)
        .arg("-")
        .output()
        .unwrap();
    assert!(
        text.status.success(),
        "pdftotext failed on {}",
        file.display()
    );
    let rendered = Command::new("pdftoppm")
        .args(["-png", "-r", "80"])
        .arg(&file)
        .arg(dir.join(name))
        .status()
        .unwrap();
    assert!(rendered.success(), "pdftoppm failed on {}", file.display());
    String::from_utf8(text.stdout).unwrap()
}

/// The number of pages `pdftoppm` rendered for a report.
pub(crate) fn pages(name: &str) -> usize {
    std::fs::read_dir(renders())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            file.starts_with(&format!("{name}-")) && file.ends_with(".png")
        })
        .count()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn assert_has(text: &str, needle: &str, what: &str) {
    assert!(
        text.contains(needle),
        "{what}: {needle:?} is missing from the report's text:\n{text}"
    );
}

/// Fetches a report: the status, content type and bytes.
async fn fetch(server: &TestServer, key: &str, path: &str) -> (StatusCode, String, Vec<u8>) {
    let response = server.get_raw(key, path).await;
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, kind, response.bytes().await.unwrap().to_vec())
}

/// The entry hashes of a request's audit trail.
async fn entry_hashes(server: &TestServer, key: &str, request_id: &str) -> Vec<String> {
    let (status, trail) = server
        .get(key, &format!("/v1/requests/{request_id}/trail"))
        .await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry_hash"].as_str().unwrap().to_owned())
        .collect()
}

/// The words of a decision a report must show: its fired rules and policy SHA-256.
fn decision_words(decision: &Value) -> Vec<String> {
    let mut words: Vec<String> = decision["fired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    words.push(decision["policy"]["sha256"].as_str().unwrap().to_owned());
    words.push(decision["action"].as_str().unwrap().to_owned());
    words
}

fn not_found(status: StatusCode, body: &[u8], what: &str) {
    assert_eq!(status, StatusCode::NOT_FOUND, "{what}");
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND", "{what}: {body}");
    assert!(body["error"]["request_id"].is_string(), "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn report_cards_of_a_request_a_claim_and_a_session_read_back_and_render() {
    let tools = pdf_tools();
    each_database(async |label, dir, url| {
        let server = TestServer::start(config(dir, &url)).await;
        let (_, key) = server
            .mint_key(new_key("acme", "enterprise", &Scope::ALL))
            .await;
        let (_, other_tenant) = server
            .mint_key(new_key("globex", "enterprise", &Scope::ALL))
            .await;
        let (_, no_read) = server
            .mint_key(new_key("acme", "enterprise", &[Scope::Analyze]))
            .await;

        // A request decided under the insurance flow, with a heatmap and a reference id with
        // every punctuation mark a reference may hold.
        let camera = fixture("camera/DSCN0010.jpg");
        let (status, _, single) = server
            .post(
                &key,
                "/v1/analyze?flow=insurance",
                json!({
                    "image_base64": b64(&camera),
                    "reference_id": "claim/78#photo@7:a_b.c",
                    "options": {"return_heatmap": true},
                    "facts": {"claim": {"amount": 800, "currency": "EUR"}},
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {single}");
        let request_id = single["request_id"].as_str().unwrap().to_owned();

        // A claim of two photos, the second escalated to SIU and resolved by a reviewer.
        let photos = "/v1/flows/insurance/claims/CLM-77/photos";
        let claim = json!({"amount": 12000, "currency": "EUR"});
        let mut claim_images = Vec::new();
        for (name, role) in [("plain-render.png", "damage"), ("sd-generated-duck.png", "vehicle")] {
            let (status, _, photo) = server
                .post(&key, photos, json!({"image_base64": b64(&sample(name)), "claim": claim, "photo": {"role": role}}))
                .await;
            assert_eq!(status, StatusCode::OK, "{label}: {photo}");
            claim_images.push(photo);
        }
        let escalated = &claim_images[1];
        let (_, queue) = server
            .get(&key, "/v1/review/items?queue=siu&status=open")
            .await;
        let item = queue["data"][0]["item_id"].as_str().unwrap().to_owned();
        let (status, _, _) = server
            .post(&key, &format!("/v1/review/items/{item}/claim"), json!({"reviewer": "rv-17"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}");
        let (status, _, resolved) = server
            .post(
                &key,
                &format!("/v1/review/items/{item}/resolve"),
                json!({"reviewer": "rv-17", "label": "confirmed_fake", "note": "Seen in a 2024 claim"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {resolved}");

        // A KYC session: ID document, selfie, liveness.
        let images = "/v1/flows/kyc/sessions/kyc-9/images";
        let mut session_images = Vec::new();
        for (name, role) in [("camera/DSCN0010.jpg", "id_document"), ("camera/nikon-e950.jpg", "selfie")] {
            let (status, _, image) = server
                .post(&key, images, json!({"image_base64": b64(&fixture(name)), "role": role}))
                .await;
            assert_eq!(status, StatusCode::OK, "{label}: {image}");
            session_images.push(image);
        }
        let (status, _, _) = server
            .post(&key, "/v1/flows/kyc/sessions/kyc-9/liveness", json!({"passed": true, "score": 0.97}))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}");

        // Everything so far is covered by a signed checkpoint.
        let signed = server
            .state
            .checkpoint_worker()
            .sign(true, chrono::Utc::now())
            .await
            .unwrap();
        let root = signed
            .iter()
            .find(|cp| cp.tenant == "acme")
            .map(|cp| cp.root_hash.clone())
            .unwrap();
        let vkey = server.state.audit.signer.verifier_key().to_string();

        let reports = [
            (format!("/v1/requests/{request_id}/report.pdf"), "request"),
            ("/v1/flows/insurance/claims/CLM-77/report.pdf".to_owned(), "claim"),
            ("/v1/flows/kyc/sessions/kyc-9/report.pdf".to_owned(), "session"),
        ];
        let mut pdfs = Vec::new();
        for (path, what) in &reports {
            let (status, kind, pdf) = fetch(&server, &key, path).await;
            assert_eq!(status, StatusCode::OK, "{label} {what}: {}", String::from_utf8_lossy(&pdf));
            assert_eq!(kind, "application/pdf", "{label} {what}");
            assert!(pdf.starts_with(b"%PDF-"), "{label} {what}");
            pdfs.push(pdf);
        }

        // Another tenant's request, claim and session, and unknown ids: not found.
        for (path, what) in &reports {
            let (status, _, body) = fetch(&server, &other_tenant, path).await;
            not_found(status, &body, &format!("{label}: another tenant's {what}"));
        }
        for path in [
            "/v1/requests/req_01JZZZZZZZZZZZZZZZZZZZZZZZ/report.pdf",
            "/v1/flows/insurance/claims/CLM-404/report.pdf",
            "/v1/flows/kyc/sessions/nobody/report.pdf",
        ] {
            let (status, _, body) = fetch(&server, &key, path).await;
            not_found(status, &body, &format!("{label}: {path}"));
        }
        // A key without requests:read is refused.
        let (status, _, body) = fetch(&server, &no_read, &reports[0].0).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert!(body["error"]["code"].is_string(), "{label}: {body}");

        if !tools {
            server.stop().await;
            return;
        }
        // The request: its image, verdict, decision, heatmap and audit entries.
        let text = read_back(&pdfs[0], &format!("{label}-request"));
        let what = format!("{label} request");
        assert_eq!(pages(&format!("{label}-request")), 1, "{what}: one page");
        assert_has(&text, &sha256(&camera), &what);
        assert_has(&text, "claim/78#photo@7:a_b.c", &what);
        assert_has(&text, &request_id, &what);
        assert_has(&text, single["verdict"]["label"].as_str().unwrap(), &what);
        for word in decision_words(&single["decision"]) {
            assert_has(&text, &word, &what);
        }
        assert_has(&text, "Manipulation heatmap", &what);
        assert!(!text.contains("No thumbnail was kept"), "{what}: the thumbnail is there");
        for hash in entry_hashes(&server, &key, &request_id).await {
            assert_has(&text, &hash, &what);
        }
        assert_has(&text, &root, &what);
        assert_has(&text, &vkey, &what);

        // The claim: both photos, the case decision, the review.
        let text = read_back(&pdfs[1], &format!("{label}-claim"));
        let what = format!("{label} claim");
        assert!(pages(&format!("{label}-claim")) <= 2, "{what}: at most two pages");
        assert_has(&text, "CLM-77", &what);
        for (photo, name) in claim_images.iter().zip(["plain-render.png", "sd-generated-duck.png"]) {
            assert_has(&text, &sha256(&sample(name)), &what);
            assert_has(&text, photo["reference_id"].as_str().unwrap(), &what);
            assert_has(&text, photo["verdict"]["label"].as_str().unwrap(), &what);
            for word in decision_words(&photo["decision"]) {
                assert_has(&text, &word, &what);
            }
            let id = photo["request_id"].as_str().unwrap();
            for hash in entry_hashes(&server, &key, id).await {
                assert_has(&text, &hash, &what);
            }
        }
        assert_has(&text, "confirmed_fake by rv-17", &what);
        assert_has(&text, "Seen in a 2024 claim", &what);
        assert_has(&text, escalated["case"]["decision"]["action"].as_str().unwrap(), &what);
        assert_has(&text, &root, &what);
        assert_has(&text, &vkey, &what);

        // The session: both images and its decision.
        let text = read_back(&pdfs[2], &format!("{label}-session"));
        let what = format!("{label} session");
        assert!(pages(&format!("{label}-session")) <= 2, "{what}: at most two pages");
        assert_has(&text, "kyc-9", &what);
        for image in &session_images {
            assert_has(&text, image["image_info"]["sha256"].as_str().unwrap(), &what);
            assert_has(&text, image["reference_id"].as_str().unwrap(), &what);
            for word in decision_words(&image["decision"]) {
                assert_has(&text, &word, &what);
            }
        }
        assert_has(&text, &root, &what);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_thumbnails_a_report_says_it_has_none() {
    let tools = pdf_tools();
    each_database(async |label, dir: &Path, url| {
        let mut config = config(dir, &url);
        config.reports.thumbnails = false;
        let server = TestServer::start(config).await;
        let (_, key) = server
            .mint_key(new_key("acme", "enterprise", &Scope::ALL))
            .await;
        let (status, _, reply) = server
            .post(
                &key,
                "/v1/analyze",
                json!({"image_base64": b64(&sample("plain-render.png"))}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {reply}");
        let request_id = reply["request_id"].as_str().unwrap();
        let (status, _, pdf) = fetch(
            &server,
            &key,
            &format!("/v1/requests/{request_id}/report.pdf"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{label}");
        let kept = arbiter_db::thumbnails::get(
            server.state.pipeline.db().conn(),
            "acme",
            &sha256(&sample("plain-render.png")),
        )
        .await
        .unwrap();
        assert!(
            kept.is_none(),
            "{label}: no thumbnail is kept when reports.thumbnails is off"
        );
        if tools {
            let text = read_back(&pdf, &format!("{label}-no-thumbnail")).replace('\n', " ");
            let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_has(&words, "No thumbnail was kept of this image.", label);
            assert_has(&words, "No flow decided about this image", label);
            assert_has(
                &words,
                "no signed checkpoint covers these entries yet",
                label,
            );
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_image_keeps_its_thumbnail_for_its_report() {
    each_database(async |label, dir: &Path, url| {
        let server = TestServer::start(config(dir, &url)).await;
        let (_, key) = server
            .mint_key(new_key("acme", "enterprise", &Scope::ALL))
            .await;
        let image = fixture("camera/canon-ixus.jpg");
        let (status, _, accepted) = server
            .post(
                &key,
                "/v1/analyze/batch",
                json!({"images": [{"image_base64": b64(&image), "reference_id": "upload-1"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{label}: {accepted}");
        let batch = accepted["batch_id"].as_str().unwrap().to_owned();
        crate::harness::wait_for(
            "the batch",
            std::time::Duration::from_secs(60),
            async || {
                let (_, status) = server.get(&key, &format!("/v1/batches/{batch}")).await;
                (status["status"] == "COMPLETE").then_some(())
            },
        )
        .await;
        let kept =
            arbiter_db::thumbnails::get(server.state.pipeline.db().conn(), "acme", &sha256(&image))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{label}: no thumbnail kept for the batch image"));
        assert!(kept.width <= 256 && kept.height <= 256, "{label}");
        assert!(kept.png.starts_with(b"\x89PNG"), "{label}");
        // Another tenant has none of it.
        let other = arbiter_db::thumbnails::get(
            server.state.pipeline.db().conn(),
            "globex",
            &sha256(&image),
        )
        .await
        .unwrap();
        assert!(other.is_none(), "{label}");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_of_six_photos_stays_within_two_pages() {
    let tools = pdf_tools();
    each_database(async |label, dir: &Path, url| {
        let server = TestServer::start(config(dir, &url)).await;
        let (_, key) = server
            .mint_key(new_key("acme", "enterprise", &Scope::ALL))
            .await;
        let photos = "/v1/flows/insurance/claims/CLM-6/photos";
        let claim = json!({"amount": 12000, "currency": "EUR"});
        let images = [
            sample("plain-render.png"),
            sample("sd-generated-duck.png"),
            sample("c2pa-edited-photo.jpg"),
            fixture("camera/DSCN0010.jpg"),
            fixture("camera/nikon-e950.jpg"),
            sample("comfyui-render.png"),
        ];
        let mut ids = Vec::new();
        for bytes in &images {
            let (status, _, photo) = server
                .post(
                    &key,
                    photos,
                    json!({"image_base64": b64(bytes), "claim": claim, "photo": {"role": "damage"}, "options": {"return_heatmap": true}}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{label}: {photo}");
            ids.push(photo["request_id"].as_str().unwrap().to_owned());
        }
        let (status, kind, pdf) = fetch(&server, &key, "/v1/flows/insurance/claims/CLM-6/report.pdf").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert_eq!(kind, "application/pdf", "{label}");
        if tools {
            let name = format!("{label}-six-photos");
            let text = read_back(&pdf, &name);
            assert!(pages(&name) <= 2, "{label}: {} pages", pages(&name));
            for (id, bytes) in ids.iter().zip(&images) {
                assert_has(&text, id, &name);
                assert_has(&text, &sha256(bytes), &name);
                for hash in entry_hashes(&server, &key, id).await {
                    assert_has(&text, &hash, &name);
                }
            }
        }
        server.stop().await;
    })
    .await;
}
