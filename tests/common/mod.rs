//! Helpers shared by the end-to-end tests.
#![allow(dead_code, clippy::unwrap_used)]

use base64::Engine;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of `samples/`.
pub fn sample(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("samples").join(name)).unwrap()
}

/// Standard base64.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The database a run of the binary uses.
pub enum DbArg {
    /// The embedded SQLite file in a data directory.
    DataDir(PathBuf),
    /// A PostgreSQL URL.
    Url(String),
}

/// The real `arbiter` binary, run from the repository root against a database, with the
/// environment's Arbiter database settings cleared.
pub fn arbiter_command(db: &DbArg) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arbiter"));
    command
        .current_dir(repo())
        .env_remove("ARBITER_DATABASE_URL")
        .env_remove("ARBITER_DATA_DIR");
    match db {
        DbArg::DataDir(dir) => command.arg("--data-dir").arg(dir),
        DbArg::Url(url) => command.env("ARBITER_DATABASE_URL", url),
    };
    command
}

/// Runs `arbiter` with `args` and waits for it.
pub fn arbiter(db: &DbArg, args: &[&str]) -> Output {
    arbiter_command(db).args(args).output().unwrap()
}

/// Starts a `serve --listen 127.0.0.1:0` command and returns the child and its base URL, read
/// from its "arbiter listening on" line; its stderr keeps being drained so the server never
/// blocks on a full pipe.
pub fn spawn_server(command: Command) -> (Child, String) {
    let (child, base, _) = spawn_server_logged(command);
    (child, base)
}

/// [`spawn_server`], with the lines the server writes to stderr after the "arbiter listening on"
/// line (a plain line, or the `message` of a JSON line when `log.format` is `json`) sent to
/// the receiver as they come.
pub fn spawn_server_logged(
    mut command: Command,
) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the server exited before listening")
            .unwrap();
        let message = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|json| json["message"].as_str().map(str::to_owned))
            .unwrap_or(line);
        if let Some(addr) = message.strip_prefix("arbiter listening on ") {
            break addr.trim().to_owned();
        }
    };
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            // Nobody may be listening: the lines are drained all the same.
            let _ = send.send(line);
        }
    });
    (child, base, receive)
}

/// Verifies both signatures of a webhook delivery (Standard Webhooks and
/// `X-CheckReal-Signature`) with `secret`, at the delivery's own timestamp.
pub fn verify_delivery(
    secret: &arbiter_webhooks::WebhookSecret,
    headers: &axum::http::HeaderMap,
    body: &str,
) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let ts: i64 = header("webhook-timestamp").unwrap().parse().unwrap();
    arbiter_webhooks::verify_standard(
        secret,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        body.as_bytes(),
        ts,
    )
    .unwrap();
    arbiter_webhooks::verify_checkreal(secret, body.as_bytes(), header("x-checkreal-signature"))
        .unwrap();
}
