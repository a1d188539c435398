//! End to end: the real `arbiter` binary scans the samples, signs checkpoints and exports the
//! chain; `arbiter audit verify` and the shipped Python verifier (`tools/verify_audit.py`) accept
//! the export and reject each tampered copy: an edited entry, a deleted line, a reordered pair,
//! a truncated export, an edited checkpoint. SQLite, and PostgreSQL when
//! `ARBITER_TEST_POSTGRES_URL` is set.
//!
//! Without python3 (or its `cryptography` package) the Python half is skipped with a loud
//! message, unless `ARBITER_REQUIRE_PYTHON=1` (set by CI), which makes that a failure.

use crate::harness::{DbArg, arbiter_command, repo};

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn arbiter(db: &DbArg, args: &[&str]) -> Output {
    arbiter_command(db)
        .env_remove("ARBITER_AUDIT_SIGNING_KEY")
        .env("ARBITER_AUDIT_LOG_NAME", "audit.test/arbiter")
        .args(args)
        .output()
        .unwrap()
}

fn ok(label: &str, output: Output) -> String {
    assert!(
        output.status.success(),
        "{label}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Whether the Python verifier can run here; panics when CI requires it and it cannot.
fn python_available() -> bool {
    crate::harness::python_available("cryptography", "the Python audit verifier")
}

fn python_verify(dir: &Path, vkey: &Path) -> Output {
    Command::new("python3")
        .arg(repo().join("tools/verify_audit.py"))
        .arg(dir)
        .arg(vkey)
        .output()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("checkpoints")).unwrap();
    for name in ["entries.jsonl", "vkey.txt", "SHA256SUMS"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
    for item in std::fs::read_dir(from.join("checkpoints")).unwrap() {
        let item = item.unwrap();
        std::fs::copy(item.path(), to.join("checkpoints").join(item.file_name())).unwrap();
    }
}

/// Rewrites SHA256SUMS, as anyone who tampers with a bundle would.
fn reseal(dir: &Path) {
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let resealed: String = sums
        .lines()
        .map(|line| {
            let name = line.split_once("  ").unwrap().1;
            let digest = hex::encode(Sha256::digest(std::fs::read(dir.join(name)).unwrap()));
            format!("{digest}  {name}\n")
        })
        .collect();
    std::fs::write(dir.join("SHA256SUMS"), resealed).unwrap();
}

fn tampered(good: &Path, root: &Path, name: &str, change: impl FnOnce(&Path)) -> PathBuf {
    let dir = root.join(name);
    copy_dir(good, &dir);
    change(&dir);
    reseal(&dir);
    dir
}

fn edit_lines(dir: &Path, change: impl FnOnce(&mut Vec<String>)) {
    let path = dir.join("entries.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    change(&mut lines);
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    std::fs::write(path, text).unwrap();
}

async fn each_database(check: impl Fn(&str, DbArg, &Path)) {
    let dir = tempfile::tempdir().unwrap();
    check(
        "sqlite",
        DbArg::DataDir(dir.path().join(".arbiter")),
        dir.path(),
    );
    if let Some(pg) = crate::harness::postgres().await {
        let dir = tempfile::tempdir().unwrap();
        check("postgres", DbArg::Url(pg.url.clone()), dir.path());
        pg.drop_db().await.unwrap();
    }
}

#[tokio::test]
async fn exports_verify_in_rust_and_python_and_every_tampering_is_rejected() {
    let python = python_available();
    let mut samples: Vec<String> = std::fs::read_dir(repo().join("samples"))
        .unwrap()
        .map(|item| item.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".png"))
        .map(|name| format!("samples/{name}"))
        .collect();
    samples.sort();
    assert!(samples.len() >= 3);
    each_database(|label, db, tmp| {
        let key = tmp.join("audit.key");
        let vkey_text = ok(
            label,
            arbiter(&db, &["audit", "keygen", "--out", key.to_str().unwrap()]),
        );
        let vkey = tmp.join("vkey.txt");
        std::fs::write(&vkey, &vkey_text).unwrap();
        let key = key.to_str().unwrap();
        let shown = ok(label, arbiter(&db, &["audit", "vkey", "--key", key]));
        assert_eq!(shown, vkey_text, "{label}");

        // Two rounds of scans, each signed: checkpoints at two sizes.
        let mut scan = vec!["scan", "--json"];
        scan.extend(samples.iter().map(String::as_str));
        for _ in 0..2 {
            ok(label, arbiter(&db, &scan));
            let signed = ok(
                label,
                arbiter(&db, &["audit", "checkpoint", "--signing-key", key]),
            );
            assert!(
                signed.starts_with("signed default size"),
                "{label}: {signed}"
            );
        }
        let n = samples.len();
        let live = ok(
            label,
            arbiter(&db, &["audit", "verify", "--signing-key", key]),
        );
        assert!(live.contains(&format!(
            "OK: the audit log: {} entries and 2 checkpoints",
            2 * n
        )));

        let good = tmp.join("export");
        let good_str = good.to_str().unwrap();
        let exported = ok(
            label,
            arbiter(
                &db,
                &[
                    "audit",
                    "export",
                    "--tenant",
                    "default",
                    "--out",
                    good_str,
                    "--signing-key",
                    key,
                ],
            ),
        );
        assert!(
            exported.contains(&format!("[cp-{n}, cp-{}]", 2 * n)),
            "{exported}"
        );
        let vkey_str = vkey.to_str().unwrap();
        let verified = ok(
            label,
            arbiter(
                &db,
                &["audit", "verify", "--export", good_str, "--vkey", vkey_str],
            ),
        );
        assert!(verified.starts_with("OK"), "{label}: {verified}");
        if python {
            let out = ok(label, python_verify(&good, &vkey));
            assert!(
                out.starts_with(&format!("OK: {} entries, 2 checkpoints", 2 * n)),
                "{out}"
            );
        }

        // Tampered copies, each with SHA256SUMS recomputed, and what each verifier must say.
        let root = tmp.join("tampered");
        let cases = [
            (
                tampered(&good, &root, "edited-entry", |dir| {
                    edit_lines(dir, |lines| {
                        lines[1] =
                            lines[1].replace("\"detector\":\"local\"", "\"detector\":\"vendor\"");
                    })
                }),
                "entries.jsonl:2 (tenant default, seq 1): the entry was altered",
                "entries.jsonl:2 (seq 1): the entry was altered",
            ),
            (
                tampered(&good, &root, "deleted-line", |dir| {
                    edit_lines(dir, |lines| {
                        lines.remove(1);
                    })
                }),
                "entries.jsonl:2 (tenant default, seq 2): seq 2 where 1 was expected",
                "entries.jsonl:2 (seq 2): seq 2 where 1 was expected",
            ),
            (
                tampered(&good, &root, "reordered-pair", |dir| {
                    edit_lines(dir, |lines| lines.swap(1, 2))
                }),
                "entries.jsonl:2 (tenant default, seq 2): seq 2 where 1 was expected",
                "entries.jsonl:2 (seq 2): seq 2 where 1 was expected",
            ),
            (
                tampered(&good, &root, "truncated", |dir| {
                    edit_lines(dir, |lines| lines.truncate(lines.len() - 1))
                }),
                "the log stops at size",
                "truncated",
            ),
            (
                tampered(&good, &root, "edited-checkpoint", |dir| {
                    let path = dir.join(format!("checkpoints/cp-{n}.txt"));
                    let note = std::fs::read_to_string(&path).unwrap();
                    let edited = note.replacen(&format!("\n{n}\n"), &format!("\n{}\n", n - 1), 1);
                    assert_ne!(note, edited);
                    std::fs::write(path, edited).unwrap();
                }),
                "does not verify: the checkpoint was altered",
                "the signature does not verify",
            ),
        ];
        for (dir, rust_says, python_says) in cases {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let output = arbiter(
                &db,
                &[
                    "audit",
                    "verify",
                    "--export",
                    dir.to_str().unwrap(),
                    "--vkey",
                    vkey_str,
                ],
            );
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert_eq!(
                output.status.code(),
                Some(1),
                "{label}: {name} accepted: {stdout}"
            );
            assert!(stdout.contains(rust_says), "{label}: {name}:\n{stdout}");
            if python {
                let output = python_verify(&dir, &vkey);
                let stdout = String::from_utf8_lossy(&output.stdout);
                assert_eq!(
                    output.status.code(),
                    Some(1),
                    "{label}: python accepted {name}: {stdout}{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                assert!(
                    stdout.contains(python_says),
                    "{label}: python, {name}:\n{stdout}"
                );
            }
        }

        // Hostile bundles: neither verifier leaves the bundle's folder or reads without bound.
        let hostile = |name: &str, change: &dyn Fn(&Path)| {
            let dir = root.join(name);
            copy_dir(&good, &dir);
            change(&dir);
            dir
        };
        let outside = tmp.join("outside.txt");
        std::fs::write(&outside, "not part of the bundle\n").unwrap();
        let outside_digest = hex::encode(Sha256::digest(std::fs::read(&outside).unwrap()));
        let outside_name = format!("{:?}", outside.display().to_string());
        let names_outside = hostile("names-outside", &|dir| {
            let mut sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
            sums.push_str(&format!("{outside_digest}  {}\n", outside.display()));
            sums.push_str(&format!("{outside_digest}  /dev/zero\n"));
            std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
        });
        let linked_checkpoint = hostile("linked-checkpoint", &|dir| {
            std::os::unix::fs::symlink("/dev/zero", dir.join("checkpoints/cp-999.txt")).unwrap();
        });
        let endless_line = hostile("endless-line", &|dir| {
            let mut entries = std::fs::read(dir.join("entries.jsonl")).unwrap();
            entries.extend(std::iter::repeat_n(b'x', 5 << 20));
            entries.push(b'\n');
            std::fs::write(dir.join("entries.jsonl"), entries).unwrap();
        });
        let not_read = format!("names {outside_name}, which is not a file of the bundle: not read");
        let dev_zero = "names \"/dev/zero\", which is not a file of the bundle: not read";
        let linked =
            "checkpoints/cp-999.txt: not a regular file (a link, a device or a folder): not read";
        for (dir, says) in [
            (&names_outside, vec![not_read.as_str(), dev_zero]),
            (&linked_checkpoint, vec![linked]),
            (&endless_line, vec!["a line longer than 4194304 bytes"]),
        ] {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let output = arbiter(
                &db,
                &[
                    "audit",
                    "verify",
                    "--export",
                    dir.to_str().unwrap(),
                    "--vkey",
                    vkey_str,
                ],
            );
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert_eq!(
                output.status.code(),
                Some(1),
                "{label}: {name} accepted: {said}"
            );
            for expected in &says {
                assert!(said.contains(expected), "{label}: {name}:\n{said}");
            }
            if python {
                let output = python_verify(dir, &vkey);
                let stdout = String::from_utf8_lossy(&output.stdout);
                assert_eq!(
                    output.status.code(),
                    Some(1),
                    "{label}: python accepted {name}: {stdout}{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                for expected in &says {
                    assert!(
                        stdout.contains(expected),
                        "{label}: python, {name}:\n{stdout}"
                    );
                }
            }
        }
    })
    .await;
}
