//! The real `arbiter` binary: one-off commands, and `arbiter serve` as a process.

use super::repo;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

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

/// The real `arbiter` binary as one replica of several on the PostgreSQL database `url`, with
/// its own data directory and the tests' audit log name.
pub fn replica_command(url: &str, dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arbiter"));
    command
        .current_dir(repo())
        .env("ARBITER_DATABASE_URL", url)
        .env("ARBITER_DATA_DIR", dir)
        .env("ARBITER_AUDIT_LOG_NAME", "audit.test/arbiter")
        .env_remove("ARBITER_AUDIT_SIGNING_KEY")
        .env_remove("ARBITER_CONFIG");
    command
}

/// The stdout of a command that must have succeeded (its output shown when it did not).
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `arbiter` with `args` and waits for it.
pub fn arbiter(db: &DbArg, args: &[&str]) -> Output {
    arbiter_command(db).args(args).output().unwrap()
}

/// Starts a `serve --listen 127.0.0.1:0` command and returns the child and its base URL, read
/// from its "arbiter listening on" line (a plain line, or the `message` of a JSON line when
/// `log.format` is `json`). The lines the server writes to stderr after it are sent to the
/// receiver as they come, and drained all the same, so the server never blocks on a full pipe.
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

/// A running `arbiter serve --listen 127.0.0.1:0` process of the real binary; killed when
/// dropped.
pub struct ServeProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: std::sync::mpsc::Receiver<String>,
}

impl ServeProcess {
    /// Runs `command` (the `arbiter` binary with its environment) with
    /// `serve --listen 127.0.0.1:0`, and waits until it listens.
    pub fn start(mut command: Command) -> Self {
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        let (child, base, log) = spawn_server_logged(command);
        Self { child, base, log }
    }

    /// SIGTERM, then waits: the server drains and must exit 0. Returns what it logged after
    /// it started listening.
    pub fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        let log: Vec<String> = self.log.iter().collect();
        let log = log.join("\n");
        assert!(exit.success(), "{exit}:\n{log}");
        log
    }

    /// SIGKILL, and waits until it is gone.
    pub fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for ServeProcess {
    /// Kills the process; when a test is failing, prints what it logged, so the failure can be
    /// read together with the server's side of it.
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log: Vec<String> = self.log.try_iter().collect();
            eprintln!(
                "--- log of the server at {} ---\n{}\n--- end of its log ---",
                self.base,
                log.join("\n")
            );
        }
    }
}
