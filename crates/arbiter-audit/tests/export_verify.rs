//! Export bundles and verification: the reference bundle verifies, exports of a live chain
//! verify, and every kind of tampering is reported with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use arbiter_audit::{
    Event, ExportRange, Report, Signer, SigningKey, VerifierKey, append, export, verify_bundle,
    verify_database, write_checkpoints,
};
use arbiter_db::sea_orm::ConnectionTrait;
use arbiter_db::sea_orm::DbBackend;
use arbiter_db::{Db, testing::test_targets};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::path::Path;

const REFERENCE_VKEY: &str =
    "audit.example.com/arbiter+d496a7ba+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea";

const REFERENCE_ENTRIES: &str = concat!(
    r#"{"actions":["siu_escalation"],"detector":"local","entry_hash":"0e11e83ebc803fb47278815bfcb30949c322a22f3fd4cf258617999383edc789","event":"decision.recorded","flow":"insurance","image_sha256":"f5b3ba83db432e3605e941c0587b0b1c12ce90c5392567e6eccdd4a558181931","policy":{"id":"insurance.fnol","sha256":"91ef1697b95bbfd4ceb80325d2525c10b913b6e7b13f584b332080c2b4b052ee","version":3},"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","reference_id":"claim-1001-photo-a","request_id":"req_01JH0000000000000000000001","rules":["siu-high-risk"],"scores":{"frequency":8800,"metadata":9500},"seq":0,"tenant":"acme","ts":"2026-01-15T10:00:00.000Z","v":1,"verdict":{"confidence_bp":9400,"label":"AI_GENERATED","risk_level":"HIGH"}}"#,
    "\n",
    r#"{"actions":["proceed"],"detector":"local","entry_hash":"8c8cad635651db27f77afef657348198ff77924bfa2a7c980623981c9e896aea","event":"decision.recorded","flow":"insurance","image_sha256":"0e91f050fec39c6abc0e4e18fe01dc1c6f42ebae81e2b2b551d61371fad2ee1c","policy":{"id":"insurance.fnol","sha256":"91ef1697b95bbfd4ceb80325d2525c10b913b6e7b13f584b332080c2b4b052ee","version":3},"prev_hash":"0e11e83ebc803fb47278815bfcb30949c322a22f3fd4cf258617999383edc789","reference_id":"claim-1001-photo-b","request_id":"req_01JH0000000000000000000002","rules":[],"scores":{"metadata":500},"seq":1,"tenant":"acme","ts":"2026-01-15T10:00:01.250Z","v":1,"verdict":{"confidence_bp":1200,"label":"AUTHENTIC","risk_level":"LOW"}}"#,
    "\n",
    r#"{"attempts":6,"detail":"ünreachable after 6 attempts","endpoint":"claims-system","entry_hash":"0f2c05a183824bd99a22446d78a5e5be79a4e5f96f160183501d0132b5d6c7f4","event":"webhook.abandoned","prev_hash":"8c8cad635651db27f77afef657348198ff77924bfa2a7c980623981c9e896aea","reference_id":"claim-1001-photo-a","request_id":"req_01JH0000000000000000000001","seq":2,"tenant":"acme","ts":"2026-01-15T10:05:00.000Z","v":1}"#,
    "\n",
);

const REFERENCE_CP3: &str = "arbiter-audit-checkpoint/v1\naudit.example.com/arbiter/acme\n3\n0f2c05a183824bd99a22446d78a5e5be79a4e5f96f160183501d0132b5d6c7f4\n2026-01-15T11:00:00Z\n\n\u{2014} audit.example.com/arbiter 1JanugRBm09EV7OfAPeDq0Jq2saoNXkn6sjNOHZvd2Tg418aBaahW+gtohya3GQNHGQdVqavUSnpKNbl42SkegGKsgg=\n";

/// Rewrites SHA256SUMS, as anyone who tampers with a bundle would.
fn reseal(dir: &Path) {
    let mut names = vec!["entries.jsonl".to_owned(), "vkey.txt".to_owned()];
    for item in std::fs::read_dir(dir.join("checkpoints")).unwrap() {
        names.push(format!(
            "checkpoints/{}",
            item.unwrap().file_name().to_string_lossy()
        ));
    }
    names.sort();
    let sums: String = names
        .iter()
        .map(|name| {
            let digest = hex::encode(Sha256::digest(std::fs::read(dir.join(name)).unwrap()));
            format!("{digest}  {name}\n")
        })
        .collect();
    std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
}

fn write_bundle(dir: &Path, entries: &str, checkpoints: &[(u64, &str)]) {
    std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
    std::fs::write(dir.join("entries.jsonl"), entries).unwrap();
    for (size, note) in checkpoints {
        std::fs::write(dir.join(format!("checkpoints/cp-{size}.txt")), note).unwrap();
    }
    std::fs::write(dir.join("vkey.txt"), format!("{REFERENCE_VKEY}\n")).unwrap();
    reseal(dir);
}

fn problems(report: &Report) -> String {
    report
        .problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_reference_bundle_verifies_and_each_tampering_is_named() {
    let vkey = VerifierKey::parse(REFERENCE_VKEY).unwrap();
    let root = tempfile::tempdir().unwrap();
    let good = root.path().join("good");
    write_bundle(&good, REFERENCE_ENTRIES, &[(3, REFERENCE_CP3)]);
    let report = verify_bundle(&good, &vkey).unwrap();
    assert!(report.ok(), "{}", problems(&report));
    assert_eq!((report.entries, report.checkpoints), (3, 1));

    let lines: Vec<&str> = REFERENCE_ENTRIES.lines().collect();
    let join = |lines: &[&str]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    let cases: Vec<(&str, String, String, &str)> = vec![
        (
            "edited entry",
            REFERENCE_ENTRIES.replace("\"confidence_bp\":9400", "\"confidence_bp\":1400"),
            REFERENCE_CP3.to_owned(),
            "entries.jsonl:1 (tenant acme, seq 0): the entry was altered",
        ),
        (
            "deleted line",
            join(&[lines[0], lines[2]]),
            REFERENCE_CP3.to_owned(),
            "entries.jsonl:2 (tenant acme, seq 2): seq 2 where 1 was expected: 1 entry is missing",
        ),
        (
            "reordered pair",
            join(&[lines[1], lines[0], lines[2]]),
            REFERENCE_CP3.to_owned(),
            "entries.jsonl:1 (tenant acme, seq 1): the log starts at seq 1, which is not a checkpoint boundary",
        ),
        (
            "truncated export",
            join(&lines[..2]),
            REFERENCE_CP3.to_owned(),
            "the log stops at size 2 but checkpoints/cp-3.txt signs size 3",
        ),
        (
            "cut-off last line",
            REFERENCE_ENTRIES[..REFERENCE_ENTRIES.len() - 30].to_owned(),
            REFERENCE_CP3.to_owned(),
            "entries.jsonl:3 (tenant acme): the last line is not terminated",
        ),
        (
            "edited checkpoint",
            REFERENCE_ENTRIES.to_owned(),
            REFERENCE_CP3.replace("11:00:00Z", "12:00:00Z"),
            "checkpoints/cp-3.txt: the signature by audit.example.com/arbiter+d496a7ba",
        ),
    ];
    for (name, entries, cp3, expected) in cases {
        let dir = root.path().join(name);
        write_bundle(&dir, &entries, &[(3, &cp3)]);
        let report = verify_bundle(&dir, &vkey).unwrap();
        let found = problems(&report);
        assert!(!report.ok(), "{name}: accepted");
        assert!(found.contains(expected), "{name}:\n{found}");
    }

    // A rewritten chain (every hash recomputed) no longer matches the signed checkpoint.
    let key = SigningKey::from_seed([9; 32]);
    let forger = Signer::new(key, "audit.example.com/arbiter").unwrap();
    let dir = root.path().join("rewritten");
    let mut prev = "0".repeat(64);
    let mut rewritten = String::new();
    for line in &lines {
        let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
        let object = value.as_object_mut().unwrap();
        object.remove("entry_hash");
        object.insert("prev_hash".into(), prev.clone().into());
        if object["seq"] == 0 {
            object.insert("actions".into(), serde_json::json!(["proceed"]));
        }
        let canonical = serde_jcs::to_string(&value).unwrap();
        prev = hex::encode(Sha256::digest(canonical.as_bytes()));
        value
            .as_object_mut()
            .unwrap()
            .insert("entry_hash".into(), prev.clone().into());
        rewritten.push_str(&serde_jcs::to_string(&value).unwrap());
        rewritten.push('\n');
    }
    write_bundle(&dir, &rewritten, &[(3, REFERENCE_CP3)]);
    let found = problems(&verify_bundle(&dir, &vkey).unwrap());
    assert!(
        found.contains("checkpoints/cp-3.txt does not match the log"),
        "{found}"
    );
    // ... and a checkpoint re-signed by another key is not signed by the verifier key.
    let forged = arbiter_audit::Checkpoint {
        log_name: "audit.example.com/arbiter".into(),
        tenant: "acme".into(),
        size: 3,
        root_hash: prev,
        issued_at: "2026-01-15T11:00:00Z".into(),
    }
    .sign(&forger);
    let dir = root.path().join("forged");
    write_bundle(&dir, &rewritten, &[(3, &forged)]);
    let found = problems(&verify_bundle(&dir, &vkey).unwrap());
    assert!(
        found.contains("no signature by the verifier key"),
        "{found}"
    );

    // A changed file without resealing is caught by SHA256SUMS.
    let dir = root.path().join("unsealed");
    write_bundle(&dir, REFERENCE_ENTRIES, &[(3, REFERENCE_CP3)]);
    std::fs::write(dir.join("vkey.txt"), "x\n").unwrap();
    let found = problems(&verify_bundle(&dir, &vkey).unwrap());
    assert!(found.contains("vkey.txt: its SHA-256 differs"), "{found}");
}

#[test]
fn a_bundle_cannot_lead_the_verifier_outside_its_folder() {
    let vkey = VerifierKey::parse(REFERENCE_VKEY).unwrap();
    let root = tempfile::tempdir().unwrap();
    let outside = root.path().join("outside.txt");
    std::fs::write(&outside, "not part of any bundle\n").unwrap();
    let digest = hex::encode(Sha256::digest(std::fs::read(&outside).unwrap()));

    // SHA256SUMS naming files elsewhere, with their right digests: none is opened, each is named.
    let dir = root.path().join("names");
    write_bundle(&dir, REFERENCE_ENTRIES, &[(3, REFERENCE_CP3)]);
    let mut sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    for name in [
        outside.display().to_string(),
        "../outside.txt".into(),
        "/dev/zero".into(),
    ] {
        sums.push_str(&format!("{digest}  {name}\n"));
    }
    std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
    let report = verify_bundle(&dir, &vkey).unwrap();
    let found = problems(&report);
    for (line, name) in [
        (4, outside.display().to_string()),
        (5, "../outside.txt".into()),
        (6, "/dev/zero".into()),
    ] {
        let expected = format!(
            "SHA256SUMS:{line}: names {name:?}, which is not a file of the bundle: not read"
        );
        assert!(found.contains(&expected), "{expected}\n{found}");
    }

    // A checkpoint that is a link (to a file elsewhere, or to an endless device) is not followed.
    let dir = root.path().join("linked-checkpoint");
    write_bundle(&dir, REFERENCE_ENTRIES, &[(3, REFERENCE_CP3)]);
    std::fs::write(root.path().join("cp-elsewhere.txt"), REFERENCE_CP3).unwrap();
    std::os::unix::fs::symlink(
        root.path().join("cp-elsewhere.txt"),
        dir.join("checkpoints/cp-4.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("checkpoints/cp-5.txt")).unwrap();
    let found = problems(&verify_bundle(&dir, &vkey).unwrap());
    for name in ["cp-4.txt", "cp-5.txt"] {
        let expected = format!(
            "checkpoints/{name}: not a regular file (a link, a device or a folder): not read"
        );
        assert!(found.contains(&expected), "{expected}\n{found}");
    }

    // entries.jsonl as a link to /dev/zero, or holding one endless line: refused, not read on.
    let dir = root.path().join("linked-entries");
    write_bundle(&dir, REFERENCE_ENTRIES, &[(3, REFERENCE_CP3)]);
    std::fs::remove_file(dir.join("entries.jsonl")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("entries.jsonl")).unwrap();
    let err = verify_bundle(&dir, &vkey).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
    let dir = root.path().join("long-line");
    let long = "x".repeat(arbiter_audit::verify::MAX_LINE_BYTES + 1);
    write_bundle(
        &dir,
        &format!("{REFERENCE_ENTRIES}{long}\n"),
        &[(3, REFERENCE_CP3)],
    );
    let err = verify_bundle(&dir, &vkey).unwrap_err().to_string();
    assert!(err.contains("a line longer than"), "{err}");
}

fn abandoned(n: u32) -> Event {
    Event::WebhookAbandoned {
        request_id: format!("req_{n}"),
        reference_id: Some(format!("claim-{n}")),
        endpoint: "claims-system".to_owned(),
        attempts: 6,
        detail: "unreachable".to_owned(),
    }
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-15T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + chrono::Duration::seconds(seconds)
}

#[tokio::test]
async fn exports_of_a_live_chain_verify_and_ranges_start_at_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (targets, postgres) = test_targets(&dir.path().join("db")).await.unwrap();
    let signer = Signer::new(SigningKey::from_seed([3; 32]), "arbiter.test/audit").unwrap();
    let vkey = signer.verifier_key();
    for (label, target) in targets {
        let db = Db::connect(&target).await.unwrap();
        let conn = db.conn();
        // acme: 0..5 signed at 5, 5..8 signed at 8, 8..10 unsigned; globex: 2 entries.
        for n in 0..10u32 {
            let txn = db.begin_write().await.unwrap();
            append(&txn, "acme", at(i64::from(n) * 60), abandoned(n))
                .await
                .unwrap();
            if n < 2 {
                append(&txn, "globex", at(i64::from(n)), abandoned(n))
                    .await
                    .unwrap();
            }
            txn.commit().await.unwrap();
            if n == 4 || n == 7 {
                write_checkpoints(conn, &signer, at(1000 + i64::from(n)))
                    .await
                    .unwrap();
            }
        }
        let report = verify_database(conn, Some(&vkey)).await.unwrap();
        assert!(report.ok(), "{label}: {}", problems(&report));
        assert_eq!(report.entries, 12, "{label}");
        assert!(
            report.notes.iter().any(|n| n.contains("entries 8..9")),
            "{label}: {:?}",
            report.notes
        );

        let out = |name: &str| dir.path().join(format!("{label}-{name}"));
        let whole = export(conn, "acme", &ExportRange::default(), &vkey, &out("all"))
            .await
            .unwrap();
        assert_eq!((whole.first_seq, whole.last_seq), (0, 9));
        assert_eq!(whole.checkpoints, [5, 8]);
        let report = verify_bundle(&out("all"), &vkey).unwrap();
        assert!(report.ok(), "{label}: {}", problems(&report));
        assert_eq!(report.entries, 10);

        // As a tar archive (GET /v1/audit/export): the same files, unpacked intact.
        let mut archive = Vec::new();
        arbiter_audit::export::write_tar(&out("all"), &mut archive).unwrap();
        arbiter_audit::export::unpack_tar(archive.as_slice(), &out("untarred")).unwrap();
        for name in [
            "entries.jsonl",
            "vkey.txt",
            "SHA256SUMS",
            "checkpoints/cp-5.txt",
            "checkpoints/cp-8.txt",
        ] {
            assert_eq!(
                std::fs::read(out("all").join(name)).unwrap(),
                std::fs::read(out("untarred").join(name)).unwrap(),
                "{label}: {name}"
            );
        }
        let report = verify_bundle(&out("untarred"), &vkey).unwrap();
        assert!(report.ok(), "{label}: {}", problems(&report));
        // An archive with any other member is refused before anything is written for it.
        let mut hostile = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        header.set_cksum();
        hostile
            .append_data(&mut header, "checkpoints/evil.txt", &b"x"[..])
            .unwrap();
        let hostile = hostile.into_inner().unwrap();
        let err =
            arbiter_audit::export::unpack_tar(hostile.as_slice(), &out("hostile")).unwrap_err();
        assert!(
            err.to_string().contains("not a file of an audit bundle"),
            "{err}"
        );
        assert!(!out("hostile").join("checkpoints/evil.txt").exists());

        // --since 10:06 (seq 6) starts at the boundary 5 and includes cp-5 as its anchor.
        let range = ExportRange {
            since: Some(at(6 * 60)),
            until: Some(at(8 * 60 + 1)),
            ..ExportRange::default()
        };
        let part = export(conn, "acme", &range, &vkey, &out("since"))
            .await
            .unwrap();
        assert_eq!((part.first_seq, part.last_seq), (5, 8));
        assert_eq!(part.checkpoints, [5, 8]);
        let report = verify_bundle(&out("since"), &vkey).unwrap();
        assert!(report.ok(), "{label}: {}", problems(&report));

        let err = export(
            conn,
            "acme",
            &ExportRange {
                from_seq: Some(6),
                ..ExportRange::default()
            },
            &vkey,
            &out("bad"),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("0, 5, 8"), "{err}");
        let err = export(conn, "acme", &ExportRange::default(), &vkey, &out("all"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");

        // Tampering in the database itself (triggers lifted, as an operator with full rights
        // could) is found by verify_database. The statements go through the writer, the
        // connection for writes outside a transaction: through SQLite's reader pool, a trigger
        // dropped on one connection was once still there for the next.
        let writer = db.writer();
        let (lift, restore) = match db.backend() {
            DbBackend::Sqlite => (
                vec!["DROP TRIGGER audit_entries_no_update"],
                vec![
                    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries \
                     BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
                ],
            ),
            _ => (
                vec!["ALTER TABLE audit_entries DISABLE TRIGGER USER"],
                vec!["ALTER TABLE audit_entries ENABLE TRIGGER USER"],
            ),
        };
        for sql in &lift {
            writer.execute_unprepared(sql).await.unwrap();
        }
        writer.execute_unprepared(
            "UPDATE audit_entries SET canonical = REPLACE(canonical, '\"attempts\":6', '\"attempts\":1') \
             WHERE tenant = 'acme' AND seq = 3",
        )
        .await
        .unwrap();
        // The columns the trail and the filters read, each changed on its own row: the entry
        // still verifies, but the row serves something else.
        for (seq, set) in [
            (1, "request_id = 'req_999'"),
            (2, "reference_id = 'claim-999'"),
            (4, "image_sha256 = 'ab'"),
            (5, "event = 'key.created'"),
            (6, "ts = '2030-01-01T00:00:00.000Z', request_id = NULL"),
        ] {
            writer
                .execute_unprepared(&format!(
                    "UPDATE audit_entries SET {set} WHERE tenant = 'acme' AND seq = {seq}"
                ))
                .await
                .unwrap();
        }
        for sql in &restore {
            writer.execute_unprepared(sql).await.unwrap();
        }
        let report = verify_database(conn, Some(&vkey)).await.unwrap();
        let found = problems(&report);
        assert_eq!(report.problems.len(), 6, "{label}: {found}");
        assert!(
            found.contains("database (tenant acme, seq 3): the entry was altered"),
            "{label}: {found}"
        );
        for (seq, columns) in [
            (1, "request_id column differs"),
            (2, "reference_id column differs"),
            (4, "image_sha256 column differs"),
            (5, "event column differs"),
            (6, "ts, request_id columns differ"),
        ] {
            let expected =
                format!("database (tenant acme, seq {seq}): the row's {columns} from the entry");
            assert!(found.contains(&expected), "{label}: {expected}\n{found}");
        }
        db.clone().close().await.unwrap();
    }
    if let Some(pg) = postgres {
        pg.drop_db().await.unwrap();
    }
}

/// A bundle of several megabytes is read in blocks: problems deep in it keep their line, seq and
/// byte offset, and a line cut across the file's end is still found.
#[test]
fn large_bundles_verify_and_name_problems_anywhere() {
    let signer = Signer::new(SigningKey::from_seed([3; 32]), "audit.example.com/arbiter").unwrap();
    let vkey = signer.verifier_key();
    let mut lines = Vec::new();
    let mut prev = arbiter_audit::GENESIS_HASH.to_owned();
    for n in 0..6000u32 {
        let entry = arbiter_audit::Entry {
            v: 1,
            seq: u64::from(n),
            prev_hash: prev,
            ts: "2026-01-15T10:00:00.000Z".into(),
            tenant: "acme".into(),
            event: Event::WebhookAbandoned {
                request_id: format!("req_{n}"),
                reference_id: None,
                endpoint: "claims-system".into(),
                attempts: n,
                detail: format!("ünreachable {}", "x".repeat((n % 700) as usize)),
            },
        };
        prev = arbiter_audit::entry_hash(&entry.canonical().unwrap());
        lines.push(entry.canonical_with_hash(&prev).unwrap());
    }
    let note = arbiter_audit::Checkpoint {
        log_name: "audit.example.com/arbiter".into(),
        tenant: "acme".into(),
        size: 6000,
        root_hash: prev,
        issued_at: "2026-01-15T11:00:00Z".into(),
    }
    .sign(&signer);
    let root = tempfile::tempdir().unwrap();
    let bundle = |name: &str, entries: &[u8]| {
        let dir = root.path().join(name);
        std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
        std::fs::write(dir.join("entries.jsonl"), entries).unwrap();
        std::fs::write(dir.join("checkpoints/cp-6000.txt"), &note).unwrap();
        std::fs::write(dir.join("vkey.txt"), format!("{vkey}\n")).unwrap();
        reseal(&dir);
        verify_bundle(&dir, &vkey).unwrap()
    };
    let join = |lines: &[String]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    let whole = join(&lines);
    assert!(whole.len() > 3 << 20, "{}", whole.len());

    let report = bundle("good", whole.as_bytes());
    assert!(report.ok(), "{}", problems(&report));
    assert_eq!(report.entries, 6000);

    let mut edited = lines.clone();
    edited[4999] = edited[4999].replace("\"attempts\":4999", "\"attempts\":5");
    let found = problems(&bundle("edited", join(&edited).as_bytes()));
    assert!(
        found.contains("entries.jsonl:5000 (tenant acme, seq 4999): the entry was altered"),
        "{found}"
    );

    let mut removed = lines.clone();
    removed.remove(3999);
    let found = problems(&bundle("removed", join(&removed).as_bytes()));
    assert!(
        found.contains(
            "entries.jsonl:4000 (tenant acme, seq 4000): seq 4000 where 3999 was expected: 1 entry is missing"
        ),
        "{found}"
    );

    let mut bytes = whole.clone().into_bytes();
    let line_4500 = join(&lines[..4499]).len();
    bytes[line_4500 + 10] = 0xff;
    let found = problems(&bundle("not-utf8", &bytes));
    assert!(
        found.contains(&format!(
            "entries.jsonl:4500 (tenant acme, seq 4499): not UTF-8 (byte {})",
            line_4500 + 10
        )),
        "{found}"
    );

    let found = problems(&bundle("cut", &whole.as_bytes()[..whole.len() - 100]));
    assert!(
        found.contains("entries.jsonl:6000 (tenant acme): the last line is not terminated"),
        "{found}"
    );
}
