//! The customer integrations of `examples/` (an insurer's claims system, a platform's moderation
//! service, a KYC backend) run against the real `arbiter serve` on a loopback port, each with its
//! own webhook receiver, signatures verified by the `standardwebhooks` package from PyPI. SQLite
//! always, PostgreSQL too when `ARBITER_TEST_POSTGRES_URL` is set.
//!
//! Without python3 and its `standardwebhooks` package these tests are skipped with a loud
//! message, unless `ARBITER_REQUIRE_PYTHON=1` (set by CI), which makes that a failure.

use crate::harness::{self, DbArg, ServeProcess, arbiter_command, repo};

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

fn python_available() -> bool {
    harness::python_available("standardwebhooks", "the examples")
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// `arbiter serve` of the real binary on a loopback port, with a key for tenant `acme`; killed
/// when dropped.
struct Server {
    _process: ServeProcess,
    base: String,
    key: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(rt: &Runtime, database_url: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let db = match database_url {
            Some(url) => DbArg::Url(url.to_owned()),
            None => DbArg::DataDir(data.clone()),
        };
        let arbiter = || {
            let mut command = arbiter_command(&db);
            command
                .env("ARBITER_DATA_DIR", &data) // key files, also with PostgreSQL
                .env("ARBITER_OUTBOUND_ALLOW_CIDRS", "127.0.0.0/8")
                .env("ARBITER_FLOWS_UGC_MAX_WAIT_SECS", "1")
                .env("RUST_LOG", "warn");
            command
        };
        let created = arbiter()
            .args(["keys", "create", "--tenant", "acme", "--name", "examples"])
            .args(["--scope", "analyze,requests:read,webhooks,review", "--json"])
            .output()
            .unwrap();
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        let created: Value = serde_json::from_slice(&created.stdout).unwrap();
        let key = created["key"].as_str().unwrap().to_owned();

        let process = ServeProcess::start(arbiter());
        let server = Self {
            base: process.base.clone(),
            _process: process,
            key,
            client: reqwest::Client::new(),
            _dir: dir,
        };
        let started = Instant::now();
        while !rt.block_on(server.healthy()) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server never became healthy"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    async fn healthy(&self) -> bool {
        let response = self.client.get(format!("{}/healthz", self.base)).send();
        response.await.is_ok_and(|r| r.status().is_success())
    }

    /// An API call with the key; the JSON answer, which must be a success.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }
}

/// Runs `check` against a fresh server on SQLite, then on a fresh PostgreSQL database when
/// `ARBITER_TEST_POSTGRES_URL` is set.
fn on_each_database(check: impl Fn(&Runtime, &Server)) {
    let rt = runtime();
    check(&rt, &Server::start(&rt, None));
    if let Some(pg) = rt.block_on(harness::postgres()) {
        {
            let server = Server::start(&rt, Some(&pg.url));
            check(&rt, &server);
        }
        rt.block_on(pg.drop_db()).unwrap();
    } else {
        eprintln!("ARBITER_TEST_POSTGRES_URL is not set: the examples ran on SQLite only");
    }
}

/// Runs `python3 examples/<name>` against the server, handing each line of its output to
/// `on_line` as it comes; asserts it exits 0 and returns its output.
fn run_example(
    server: &Server,
    name: &str,
    args: &[&str],
    mut on_line: impl FnMut(&str),
) -> String {
    let mut child = Command::new("python3")
        .arg(repo().join("examples").join(name))
        .args(["--arbiter", &server.base, "--timeout", "60"])
        .args(args)
        .env("ARBITER_API_KEY", &server.key)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).ok();
        text
    });
    let mut output = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        on_line(&line);
        output.push_str(&line);
        output.push('\n');
    }
    let status = child.wait().unwrap();
    let errors = errors.join().unwrap();
    assert!(
        status.success(),
        "{name} exited {status}:\n{output}{errors}"
    );
    output
}

fn assert_has(output: &str, wanted: &str) {
    assert!(
        output.lines().any(|line| line.contains(wanted)),
        "no line with {wanted:?} in:\n{output}"
    );
}

#[test]
fn the_claims_system_flags_an_ai_photo_for_siu_refuses_a_forgery_and_hears_the_review() {
    if !python_available() {
        return;
    }
    on_each_database(|rt, server| {
        let claim = "CLM-2026-0042";
        let mut forged_status = None;
        let output = run_example(
            server,
            "claims_system.py",
            &[
                "--claim",
                claim,
                "--await-review",
                "samples/sd-generated-duck.png",
                "tests/fixtures/camera/DSCN0010.jpg",
            ],
            |line| {
                // The example waits for the review, so it still listens when the forgery comes.
                if line.starts_with("registered ep_")
                    && let Some((_, url)) = line.split_once(" -> ")
                {
                    forged_status = Some(rt.block_on(forge(url)));
                }
                if line == "awaiting SIU review" {
                    rt.block_on(resolve_siu_item(server));
                }
            },
        );
        assert_eq!(forged_status, Some(401), "{output}");
        assert_has(
            &output,
            "REJECTED delivery msg_forged: bad signature (No matching signature found)",
        );
        assert_has(
            &output,
            "photo 1 (sd-generated-duck.png): AI_GENERATED HIGH -> siu_escalation",
        );
        assert_has(
            &output,
            "photo 2 (DSCN0010.jpg): INCONCLUSIVE LOW -> adjuster_review",
        );
        assert_has(
            &output,
            &format!(
                "SIU: claim {claim} flagged for investigation, photo {claim}-photo-1: HIGH_RISK_IMAGE"
            ),
        );
        assert_has(
            &output,
            &format!("ADJUSTER: claim {claim}, photo {claim}-photo-2: INCONCLUSIVE_IMAGE"),
        );
        assert_has(
            &output,
            &format!(
                "REVIEWED: claim {claim}, photo {claim}-photo-1: confirmed_fake, action siu_escalation by siu-7"
            ),
        );
        assert_has(
            &output,
            &format!(
                "claim {claim}: decided, 2 photos, decision siu_escalation (HIGH_RISK_IMAGE), SIU flag: HIGH_RISK_IMAGE"
            ),
        );
        let endpoints =
            rt.block_on(server.call(reqwest::Method::GET, "/v1/webhooks/endpoints", None));
        assert_eq!(
            endpoints["data"],
            json!([]),
            "the example removes its endpoint"
        );
    });
}

/// Posts a delivery signed with a secret that is not the endpoint's; the receiver's status.
async fn forge(url: &str) -> u16 {
    let body = r#"{"type":"claim.siu_escalation","event":"claim.siu_escalation"}"#;
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let response = reqwest::Client::new()
        .post(url)
        .header("webhook-id", "msg_forged")
        .header("webhook-timestamp", timestamp)
        .header(
            "webhook-signature",
            "v1,bm90IHRoZSBzaWduYXR1cmUgb2YgdGhpcyBib2R5IGF0IGFsbA==",
        )
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// An SIU investigator confirms the one open SIU item as fake.
async fn resolve_siu_item(server: &Server) {
    let open = server
        .call(
            reqwest::Method::GET,
            "/v1/review/items?queue=siu&status=open",
            None,
        )
        .await;
    let items = open["data"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{open}");
    let item_id = items[0]["item_id"].as_str().unwrap();
    let resolution = json!({"label": "confirmed_fake", "reviewer": "siu-7"});
    server
        .call(
            reqwest::Method::POST,
            &format!("/v1/review/items/{item_id}/resolve"),
            Some(resolution),
        )
        .await;
}

#[test]
fn the_moderation_service_rejects_holds_and_publishes_as_decisions_arrive() {
    if !python_available() {
        return;
    }
    on_each_database(|_, server| {
        let output = run_example(
            server,
            "moderation_service.py",
            &[
                "samples/sd-generated-duck.png",
                "samples/c2pa-altered-after-signing.jpg",
                "samples/plain-render.png",
            ],
            |_| {},
        );
        assert_eq!(
            output.matches("COLLECTED, decision to come").count(),
            3,
            "{output}"
        );
        assert_has(
            &output,
            "(sd-generated-duck.png): AI_GENERATED -> auto_reject (HIGH_RISK_SYNTHETIC): now rejected",
        );
        assert_has(
            &output,
            "(c2pa-altered-after-signing.jpg): MANIPULATED -> hold_for_review (MEDIUM_RISK_SYNTHETIC): now held",
        );
        assert_has(
            &output,
            "(plain-render.png): INCONCLUSIVE -> publish (NO_RULE_MATCHED): now published",
        );
        assert_has(&output, "moderation queue: 1 open, 1 of ours");
        assert_has(&output, "content table: 1 published, 1 held, 1 rejected");
        assert!(!output.contains("REJECTED delivery"), "{output}");
    });
}

#[test]
fn the_kyc_backend_sees_a_pending_session_then_a_signed_rejection() {
    if !python_available() {
        return;
    }
    on_each_database(|_, server| {
        let output = run_example(
            server,
            "kyc_backend.py",
            &[
                "--session",
                "kyc-0007",
                "--id-document",
                "tests/fixtures/camera/DSCN0010.jpg",
                "--selfie",
                "samples/sd-generated-duck.png",
            ],
            |_| {},
        );
        assert_has(
            &output,
            "selfie (sd-generated-duck.png): AI_GENERATED HIGH -> reject (SYNTHETIC_SELFIE)",
        );
        assert_has(&output, "session kyc-0007: pending, missing ['liveness']");
        assert_has(
            &output,
            "kyc.decision (verified) for kyc-0007: session decided, reject (SYNTHETIC_SELFIE",
        );
        assert_has(&output, "outcome: application refused, sent to compliance");
        assert!(!output.contains("REJECTED delivery"), "{output}");
    });
}

/// Each example's `verified` takes a delivery signed with the endpoint's secret and refuses a
/// changed body, a wrong secret and a stale timestamp.
#[test]
fn every_example_refuses_a_delivery_its_secret_did_not_sign() {
    if !python_available() {
        return;
    }
    let script = r#"
import base64, importlib, sys
from datetime import datetime, timedelta, timezone
from standardwebhooks.webhooks import Webhook
sys.path.insert(0, "examples")
secret = "whsec_" + base64.b64encode(b"a test secret of 32 bytes ......").decode()
other = "whsec_" + base64.b64encode(b"another secret of 32 bytes .....").decode()
body = '{"type": "kyc.decision", "session_id": "s-1"}'
def headers(at, key=secret, msg="msg_1"):
    return {"webhook-id": msg, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(key).sign(msg, at, body)}
now = datetime.now(timezone.utc)
for name in ["claims_system", "moderation_service", "kyc_backend"]:
    verified = importlib.import_module(name).verified
    assert verified(Webhook(secret), headers(now), body)["session_id"] == "s-1", name
    assert verified(Webhook(secret), headers(now), body.replace("s-1", "s-2")) is None, name
    assert verified(Webhook(secret), headers(now, key=other), body) is None, name
    assert verified(Webhook(secret), headers(now - timedelta(hours=1)), body) is None, name
    print("OK", name)
"#;
    let output = Command::new("python3")
        .args(["-c", script])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(repo())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for name in ["claims_system", "moderation_service", "kyc_backend"] {
        assert!(text.contains(&format!("OK {name}")), "{text}");
    }
    assert_eq!(text.matches("REJECTED delivery msg_1").count(), 9, "{text}");
}
