//! Two `arbiter serve` processes on one fresh PostgreSQL database, hammered with concurrent
//! analyze requests for two tenants, build gapless chains; both sign checkpoints with the same
//! production key (on their timers and at shutdown), and `arbiter audit verify` finds nothing
//! wrong afterwards. Runs when `ARBITER_TEST_POSTGRES_URL` is set.

use crate::harness::process::{ok, replica_command as arbiter};
use crate::harness::{self, ServeProcess, b64, repo, sample};

use serde_json::{Value, json};
use std::path::Path;

/// A replica: `arbiter serve` in production audit mode, signing with `key_file`.
fn serve(url: &str, dir: &Path, key_file: &Path) -> ServeProcess {
    let mut command = arbiter(url, dir);
    command
        .env("ARBITER_AUDIT_MODE", "production")
        .env("ARBITER_AUDIT_SIGNING_KEY", key_file)
        .env("ARBITER_AUDIT_CHECKPOINT_EVERY_ENTRIES", "25")
        .env("ARBITER_POLICIES_DIR", repo().join("policies"))
        .env("RUST_LOG", "warn,arbiter_audit::signing=info");
    ServeProcess::start(command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_postgres_build_gapless_chains_that_verify() {
    let Some(pg) = harness::postgres().await else {
        eprintln!("ARBITER_TEST_POSTGRES_URL is not set: skipping the two-replica test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("audit.key");
    let vkey = ok(arbiter(&pg.url, dir.path())
        .args(["audit", "keygen", "--out"])
        .arg(&key_file)
        .output()
        .unwrap());
    let vkey_file = dir.path().join("vkey.txt");
    std::fs::write(&vkey_file, &vkey).unwrap();
    let mut keys = Vec::new();
    for tenant in ["acme", "globex"] {
        let created = ok(arbiter(&pg.url, dir.path())
            .args([
                "keys",
                "create",
                "--tenant",
                tenant,
                "--name",
                "load",
                "--plan",
                "enterprise",
                "--json",
            ])
            .output()
            .unwrap());
        let created: Value = serde_json::from_str(created.trim()).unwrap();
        keys.push(created["key"].as_str().unwrap().to_owned());
    }

    let replicas = [
        serve(&pg.url, &dir.path().join("a"), &key_file),
        serve(&pg.url, &dir.path().join("b"), &key_file),
    ];
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let images: Vec<String> = ["plain-render.png", "sd-generated-duck.png"]
        .iter()
        .map(|name| b64(&sample(name)))
        .collect();
    let client = reqwest::Client::new();
    const REQUESTS: usize = 120;
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|n| {
            let client = client.clone();
            let url = format!("{}/v1/analyze?flow=insurance", bases[n % 2]);
            let key = keys[(n / 2) % 2].clone();
            let body = json!({
                "image_base64": images[(n / 4) % 2],
                "reference_id": format!("load-{n}"),
                "facts": {"claim": {"id": format!("CLM-{n}"), "amount": 1000 + n}},
            });
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                assert_eq!(status, reqwest::StatusCode::OK, "{body}");
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let [a, b] = replicas;
    let logs = [a.stop(), b.stop()];
    assert!(
        logs.iter()
            .any(|log| log.contains("audit checkpoint signed")),
        "no replica signed a checkpoint:\n{}",
        logs.join("\n")
    );

    // Each tenant's chain: its key, then one entry per request, gapless, whichever replica wrote.
    let db = arbiter_db::Db::connect(&arbiter_db::DbTarget::Url(pg.url.clone()))
        .await
        .unwrap();
    for tenant in ["acme", "globex"] {
        let filter = arbiter_audit::EntryFilter {
            tenant: Some(tenant.to_owned()),
            ..Default::default()
        };
        let chain = arbiter_audit::entries(db.conn(), &filter).await.unwrap();
        let seqs: Vec<u64> = chain.iter().map(|e| e.entry.seq).collect();
        assert_eq!(
            seqs,
            (0..=REQUESTS as u64 / 2).collect::<Vec<_>>(),
            "{tenant}"
        );
        let newest = arbiter_audit::checkpoints(db.conn(), Some(tenant))
            .await
            .unwrap();
        assert_eq!(
            newest.last().map(|cp| cp.size),
            Some(REQUESTS as i64 / 2 + 1),
            "{tenant}: the chain is signed up to its last entry"
        );
    }
    db.close().await.unwrap();

    // `arbiter audit verify` on the live database, with the published verifier key.
    let output = arbiter(&pg.url, dir.path())
        .args(["audit", "verify", "--vkey"])
        .arg(&vkey_file)
        .output()
        .unwrap();
    let stdout = ok(output);
    assert!(stdout.starts_with("OK: the audit log:"), "{stdout}");
    pg.drop_db().await.unwrap();
}
