//! `arbiter serve`'s log: JSON lines for log shippers (`log.format: json`), each naming the
//! replica, a request's lines carrying its request id and tenant; no colour codes when stderr is
//! not a terminal; the replica in `/metrics`.

use crate::harness::{DbArg, arbiter, arbiter_command, spawn_server_logged};
use serde_json::Value;
use std::process::Child;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

fn create_key(db: &DbArg) -> String {
    let output = arbiter(
        db,
        &[
            "keys", "create", "--tenant", "acme", "--name", "logs", "--json",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    created["key"].as_str().unwrap().to_owned()
}

fn serve(db: &DbArg, format: &str) -> (Child, String, Receiver<String>) {
    let mut command = arbiter_command(db);
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("ARBITER_LOG_FORMAT", format)
        .env("ARBITER_REPLICA_ID", "eu-west-1a")
        .env("ARBITER_JOBS_WORKERS", "0")
        .env_remove("RUST_LOG")
        .env_remove("ARBITER_CONFIG")
        .env_remove("ARBITER_LOG_LEVEL");
    spawn_server_logged(command)
}

/// One request whose id the server answers with.
async fn request(base: &str, key: &str) -> String {
    let response = reqwest::Client::new()
        .get(format!("{base}/v1/requests/req_01JH0000000000000000000001"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The lines written until one satisfies `found`, or 10 s.
fn lines_until(log: &Receiver<String>, found: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = log.recv_timeout(left) else {
            break;
        };
        let done = found(&line);
        lines.push(line);
        if done {
            return lines;
        }
    }
    panic!("not found in:\n{}", lines.join("\n"));
}

#[tokio::test]
async fn json_lines_name_the_replica_and_a_requests_lines_its_id_and_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let db = DbArg::DataDir(dir.path().into());
    let key = create_key(&db);
    let (mut child, base, log) = serve(&db, "json");
    let request_id = request(&base, &key).await;
    let lines = lines_until(&log, |line| line.contains(&request_id));
    for line in &lines {
        let json: Value = serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
        assert_eq!(json["replica"], "eu-west-1a", "{line}");
        assert!(
            json["timestamp"].is_string() && json["level"].is_string(),
            "{line}"
        );
    }
    let answered: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(answered["message"], "answered");
    assert_eq!(answered["status"], 404);
    assert_eq!(answered["span"]["request_id"], request_id.as_str());
    assert_eq!(answered["span"]["tenant"], "acme");

    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\narbiter_replica_info{replica=\"eu-west-1a\"} 1\n"),
        "{metrics}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn text_lines_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = DbArg::DataDir(dir.path().into());
    let key = create_key(&db);
    let (mut child, base, log) = serve(&db, "text");
    let request_id = request(&base, &key).await;
    let lines = lines_until(&log, |line| line.contains(&request_id));
    let answered = lines.last().unwrap();
    assert!(!lines.iter().any(|line| line.contains('\x1b')), "{lines:?}");
    for field in [
        " eu-west-1a ",
        &format!("request_id={request_id}"),
        "tenant=acme",
        "answered",
    ] {
        assert!(answered.contains(field), "{field}: {answered}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
