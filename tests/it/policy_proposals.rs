//! Four-eyes policy change control end to end, with the real `arbiter policy` commands and
//! servers running in this process with `policies.source: database`, on SQLite and on
//! PostgreSQL: propose, a refused self-approval, approval by a second person and the running
//! servers deciding with the new version; rejection; a stale proposal; rollback; history; a bad
//! file refused at its line.

use crate::harness::{DbArg, TestServer, arbiter_command, config, each_database, new_key, repo};

use arbiter_config::PolicySource;
use arbiter_server::keys::{NewKey, Scope};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

fn db_arg(dir: &Path, url: &str) -> DbArg {
    if url.is_empty() {
        DbArg::DataDir(dir.to_path_buf())
    } else {
        DbArg::Url(url.to_owned())
    }
}

/// Runs `arbiter` without blocking the runtime: exit code, stdout, stderr.
async fn run(db: &DbArg, args: &[&str]) -> (i32, String, String) {
    let mut command = arbiter_command(db);
    command.args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a command that must succeed and print JSON.
async fn run_json(db: &DbArg, args: &[&str]) -> Value {
    let (code, out, err) = run(db, args).await;
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// The shipped insurance policy at `version`, written to `dir`.
fn insurance_at(dir: &Path, version: u32, note: &str) -> String {
    let original = std::fs::read_to_string(repo().join("policies/insurance-fnol.yaml")).unwrap();
    let text = original
        .replacen("version: 2", &format!("version: {version}"), 1)
        .replacen("title:", &format!("# {note}\n  title:"), 1);
    assert_ne!(text, original, "the shipped policy states `version: 2`");
    let path = dir.join(format!("insurance-v{version}-{note}.yaml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The `system` chain's policy entries, canonical JSON.
async fn policy_entries(db: &arbiter_db::Db) -> Vec<Value> {
    let filter = arbiter_audit::EntryFilter {
        tenant: Some("system".into()),
        ..Default::default()
    };
    arbiter_audit::entries(db.conn(), &filter)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.entry.event.name().starts_with("policy."))
        .map(|e| serde_json::from_str(&e.entry.canonical().unwrap()).unwrap())
        .collect()
}

/// The SHA-256 of the insurance policy a server decides with: the policy a simulated decision
/// names.
async fn deciding_sha(server: &TestServer, key: &str) -> String {
    let facts = json!({"facts": {"verdict": {"label": "AI_GENERATED", "confidence": 0.94, "risk_level": "HIGH"}, "claim": {"amount": 12000}}});
    let (status, _, body) = server
        .post(key, "/v1/policies/insurance.fnol/simulate", facts)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["decision"]["action"], "siu_escalation", "{body}");
    body["decision"]["policy"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// How long after `since` the server's live insurance policy became `sha` (watched every
/// millisecond in this process, so the probe costs the server nothing).
async fn live_after(server: &TestServer, sha: &str, since: Instant) -> Duration {
    loop {
        let live = server.state.pipeline.policies().snapshot();
        if live
            .for_flow("insurance")
            .is_some_and(|p| p.sha256() == sha)
        {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "the approved version never went live"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn an_approved_proposal_goes_live_on_every_running_server_and_the_proposer_cannot_approve_it()
{
    each_database(async |label, dir, url| {
        let mut server_config = config(dir, &url);
        server_config.policies.source = PolicySource::Database;
        server_config.policies.poll_interval_ms = 100;
        server_config.jobs.workers = 0;
        server_config.webhooks.workers = 0;
        // Two replicas on one database.
        let servers = [
            TestServer::start(server_config.clone()).await,
            TestServer::start(server_config).await,
        ];
        let new = NewKey {
            name: "admin".into(),
            ..new_key("acme", "growth", &[Scope::PoliciesRead])
        };
        let (_, key) = servers[0].mint_key(new).await;
        let seeded = deciding_sha(&servers[0], &key).await;
        let db = db_arg(dir, &url);

        let files = tempfile::tempdir().unwrap();
        let v3 = insurance_at(files.path(), 3, "reviewed");
        let proposal = run_json(&db, &["policy", "propose", &v3, "--by", "alice", "--json"]).await;
        let id = proposal["proposal_id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("prop_"), "{label}: {proposal}");
        assert_eq!(proposal["base_sha256"], seeded.as_str(), "{label}");
        assert_eq!(proposal["checks"]["live"]["version"], 2, "{label}");
        assert_eq!(
            proposal["checks"]["diff"]["settings"],
            json!(["version: 2 -> 3"]),
            "{label}"
        );
        insta::assert_json_snapshot!("policy_propose", proposal, {
            ".proposal_id" => "[proposal_id]",
            ".proposed_at" => "[time]",
            ".base_sha256" => "[sha256]",
            ".policy.sha256" => "[sha256]",
            ".checks.live.sha256" => "[sha256]",
            ".checks.backtest.since" => "[time]",
            ".checks.backtest.until" => "[time]",
            ".checks.backtest.report" => "[report]",
        });

        // Four eyes: the proposer cannot approve their own change.
        let (code, out, err) = run(&db, &["policy", "approve", &id, "--by", "alice"]).await;
        assert_eq!(code, 1, "{label}: {out}{err}");
        assert!(
            err.contains(&format!(
                "four-eyes rule: alice proposed {id} and cannot approve it"
            )),
            "{label}: {err}"
        );
        assert_eq!(deciding_sha(&servers[1], &key).await, seeded, "{label}");

        // A second person approves; both running servers decide with the new version.
        let (code, out, err) = run(&db, &["policy", "approve", &id, "--by", "bob"]).await;
        let approved_at = Instant::now();
        assert_eq!(code, 0, "{label}: {out}{err}");
        let new_sha = proposal["policy"]["sha256"].as_str().unwrap().to_owned();
        let mut waits = Vec::new();
        let both = servers
            .iter()
            .map(|server| live_after(server, &new_sha, approved_at));
        waits.extend(futures_util::future::join_all(both).await);
        for server in &servers {
            assert_eq!(deciding_sha(server, &key).await, new_sha, "{label}");
        }
        let mut live_sha = new_sha.clone();
        let mut approve_runs = Vec::new();
        // More rounds, for the measurement: approve exiting -> both servers deciding with it.
        for version in 4..=8 {
            let file = insurance_at(files.path(), version, "round");
            let next = run_json(
                &db,
                &["policy", "propose", &file, "--by", "carol", "--json"],
            )
            .await;
            let next_id = next["proposal_id"].as_str().unwrap();
            let next_sha = next["policy"]["sha256"].as_str().unwrap();
            let started = Instant::now();
            let (code, out, err) = run(&db, &["policy", "approve", next_id, "--by", "dave"]).await;
            let approved_at = Instant::now();
            approve_runs.push(approved_at - started);
            assert_eq!(code, 0, "{label}: {out}{err}");
            let both = servers
                .iter()
                .map(|server| live_after(server, next_sha, approved_at));
            waits.extend(futures_util::future::join_all(both).await);
            for server in &servers {
                assert_eq!(deciding_sha(server, &key).await, next_sha, "{label}");
            }
            live_sha = next_sha.to_owned();
        }
        waits.sort();
        eprintln!(
            "{label}: approve exit -> both servers deciding with the new version, poll_interval_ms \
             100, {} observations: min {} ms, median {} ms, max {} ms",
            waits.len(),
            waits[0].as_millis(),
            waits[waits.len() / 2].as_millis(),
            waits[waits.len() - 1].as_millis()
        );
        approve_runs.sort();
        eprintln!(
            "{label}: for comparison, the `arbiter policy approve` process itself: median {} ms",
            approve_runs[approve_runs.len() / 2].as_millis()
        );

        // A second approval of the same proposal is refused.
        let (code, _, err) = run(&db, &["policy", "approve", &id, "--by", "carol"]).await;
        assert_eq!(code, 1, "{label}");
        assert!(err.contains("is approved already"), "{label}: {err}");

        // The audit chain names the people.
        let entries = policy_entries(servers[0].state.pipeline.db()).await;
        let first = entries
            .iter()
            .position(|e| e["proposal_id"] == id.as_str())
            .unwrap();
        let events: Vec<_> = entries[first..first + 3]
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(
            events,
            ["policy.proposed", "policy.approved", "policy.activated"],
            "{label}: {entries:?}"
        );
        let proposed = &entries[first];
        assert_eq!(proposed["proposed_by"], "alice");
        assert_eq!(proposed["proposal_id"], id.as_str());
        assert_eq!(proposed["previous_version"], 2);
        let approved = &entries[first + 1];
        assert_eq!(approved["approved_by"], "bob");
        assert_eq!(approved["proposed_by"], "alice");
        assert_eq!(approved["policy"]["sha256"], new_sha.as_str());
        let activated = &entries[first + 2];
        assert_eq!(activated["actor"], "bob");
        assert_eq!(activated["policy"]["version"], 3);
        assert_eq!(activated["previous_version"], 2);

        for server in servers {
            server.stop().await;
        }
        // A restarted server starts from the approved version, not the files.
        let mut restart = config(dir, &url);
        restart.policies.source = PolicySource::Database;
        let server = TestServer::start(restart).await;
        assert_eq!(deciding_sha(&server, &key).await, live_sha, "{label}");
        // ... and records no activation again.
        assert_eq!(
            policy_entries(server.state.pipeline.db()).await.len(),
            entries.len(),
            "{label}"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn proposals_are_rejected_go_stale_roll_back_and_leave_a_history() {
    each_database(async |label, dir, url| {
        let db = db_arg(dir, &url);
        let files = tempfile::tempdir().unwrap();

        // A bad file is refused at its line, and nothing is stored.
        let bad = std::fs::read_to_string(repo().join("policies/insurance-fnol.yaml"))
            .unwrap()
            .replace(
                "{ fact: verdict.risk_level, eq: HIGH }",
                "{ fact: verdict.risk_level, eq: HGH }",
            );
        let bad_path = files.path().join("bad.yaml");
        std::fs::write(&bad_path, bad).unwrap();
        let bad_path = bad_path.display().to_string();
        let (code, out, err) = run(&db, &["policy", "propose", &bad_path, "--by", "alice"]).await;
        assert_eq!(code, 1, "{label}: {out}{err}");
        assert!(
            err.contains(&format!(
                "{bad_path}:65:43: `HGH` is not a value of `verdict.risk_level`"
            )),
            "{label}: {err}"
        );
        assert!(
            err.contains(&format!("{bad_path}: not proposed")),
            "{label}: {err}"
        );
        // A version that does not raise the live one is refused too.
        let same = insurance_at(files.path(), 2, "same");
        let (code, _, err) = run(&db, &["policy", "propose", &same, "--by", "alice"]).await;
        assert_eq!(code, 1, "{label}");
        assert!(
            err.contains("version 2 must be greater than the live version 2"),
            "{label}: {err}"
        );
        // An e-mail address is not an operator name.
        let v3 = insurance_at(files.path(), 3, "a");
        let (code, _, err) = run(&db, &["policy", "propose", &v3, "--by", "a@b.example"]).await;
        assert_eq!(code, 1, "{label}");
        assert!(err.contains("is not an operator name"), "{label}: {err}");

        // Stored decisions for the backtest shown with each proposal.
        let (code, out, err) = run(
            &db,
            &[
                "scan",
                "--json",
                "--fact",
                "claim.amount=12000",
                "samples/sd-generated-duck.png",
                "samples/plain-render.png",
                "samples/c2pa-edited-photo.jpg",
            ],
        )
        .await;
        assert_eq!(code, 0, "{label}: {out}{err}");

        // Rejected: it never goes live, and cannot be approved afterwards.
        let rejected = run_json(&db, &["policy", "propose", &v3, "--by", "alice", "--json"]).await;
        let backtest = &rejected["checks"]["backtest"];
        assert_eq!(backtest["replayed"], 3, "{label}: {backtest}");
        assert_eq!(backtest["changed"], 0, "{label}: {backtest}");
        assert!(
            backtest["report"]
                .as_str()
                .unwrap()
                .contains("replayed 3 decisions"),
            "{label}: {backtest}"
        );
        let rejected_id = rejected["proposal_id"].as_str().unwrap();
        let (code, out, err) = run(
            &db,
            &[
                "policy",
                "reject",
                rejected_id,
                "--by",
                "bob",
                "--reason",
                "needs SIU sign-off",
            ],
        )
        .await;
        assert_eq!(code, 0, "{label}: {out}{err}");
        let shown = run_json(&db, &["policy", "show", rejected_id, "--json"]).await;
        assert_eq!(shown["status"], "rejected", "{label}");
        assert_eq!(shown["decided_by"], "bob");
        assert_eq!(shown["reason"], "needs SIU sign-off");
        let (code, _, err) = run(&db, &["policy", "approve", rejected_id, "--by", "carol"]).await;
        assert_eq!(code, 1, "{label}");
        assert!(err.contains("is rejected already"), "{label}: {err}");

        // Two proposals against the same live version: the first approved wins, the second is
        // stale and cannot overwrite it.
        let first = run_json(&db, &["policy", "propose", &v3, "--by", "alice", "--json"]).await;
        let v3b = insurance_at(files.path(), 3, "b");
        let second = run_json(&db, &["policy", "propose", &v3b, "--by", "carol", "--json"]).await;
        let first_id = first["proposal_id"].as_str().unwrap();
        let second_id = second["proposal_id"].as_str().unwrap();
        run_json(
            &db,
            &["policy", "approve", first_id, "--by", "bob", "--json"],
        )
        .await;
        let (code, _, err) = run(&db, &["policy", "approve", second_id, "--by", "bob"]).await;
        assert_eq!(code, 1, "{label}");
        assert!(
            err.contains(&format!("proposal {second_id} is stale")),
            "{label}: {err}"
        );
        let v4 = insurance_at(files.path(), 4, "c");
        let fourth = run_json(&db, &["policy", "propose", &v4, "--by", "carol", "--json"]).await;
        assert_eq!(fourth["checks"]["live"]["version"], 3, "{label}");
        let fourth_id = fourth["proposal_id"].as_str().unwrap();
        run_json(
            &db,
            &["policy", "approve", fourth_id, "--by", "alice", "--json"],
        )
        .await;

        // Two approvals at once of two proposals against the same live version: exactly one
        // goes live, the other is refused as stale (the version check is in the transaction).
        let v5a = insurance_at(files.path(), 5, "race-a");
        let v5b = insurance_at(files.path(), 5, "race-b");
        let race_a = run_json(&db, &["policy", "propose", &v5a, "--by", "alice", "--json"]).await;
        let race_b = run_json(&db, &["policy", "propose", &v5b, "--by", "alice", "--json"]).await;
        let approve_a = [
            "policy",
            "approve",
            race_a["proposal_id"].as_str().unwrap(),
            "--by",
            "bob",
        ];
        let approve_b = [
            "policy",
            "approve",
            race_b["proposal_id"].as_str().unwrap(),
            "--by",
            "carol",
        ];
        let (a, b) = tokio::join!(run(&db, &approve_a), run(&db, &approve_b));
        let mut codes = [a.0, b.0];
        codes.sort();
        assert_eq!(codes, [0, 1], "{label}: {a:?} {b:?}");
        let refused = if a.0 == 1 { &a.2 } else { &b.2 };
        assert!(refused.contains("is stale"), "{label}: {refused}");
        // The winner is live; the next change builds on it.
        let v6 = insurance_at(files.path(), 6, "after-race");
        let sixth = run_json(&db, &["policy", "propose", &v6, "--by", "carol", "--json"]).await;
        assert_eq!(sixth["checks"]["live"]["version"], 5, "{label}");
        let (code, _, err) = run(
            &db,
            &[
                "policy",
                "reject",
                sixth["proposal_id"].as_str().unwrap(),
                "--by",
                "alice",
                "--reason",
                "not now",
            ],
        )
        .await;
        assert_eq!(code, 0, "{label}: {err}");

        // Rollback to version 3 is itself a proposal needing a second person.
        let rollback = run_json(
            &db,
            &[
                "policy",
                "rollback",
                "insurance",
                "--to",
                "3",
                "--by",
                "carol",
                "--json",
            ],
        )
        .await;
        assert_eq!(rollback["rollback_to"], 3, "{label}: {rollback}");
        assert_eq!(rollback["policy"]["version"], 3);
        assert_eq!(rollback["policy"]["sha256"], first["policy"]["sha256"]);
        assert_eq!(rollback["status"], "pending");
        let rollback_id = rollback["proposal_id"].as_str().unwrap();
        let (code, _, err) = run(&db, &["policy", "approve", rollback_id, "--by", "carol"]).await;
        assert_eq!(code, 1, "{label}");
        assert!(err.contains("four-eyes rule"), "{label}: {err}");
        run_json(
            &db,
            &["policy", "approve", rollback_id, "--by", "bob", "--json"],
        )
        .await;
        let (code, _, err) = run(
            &db,
            &[
                "policy",
                "rollback",
                "insurance",
                "--to",
                "9",
                "--by",
                "carol",
            ],
        )
        .await;
        assert_eq!(code, 1, "{label}");
        assert!(err.contains("never had version 9 live"), "{label}: {err}");

        // History: every version that was live, with its SHA-256 and people.
        let history = run_json(&db, &["policy", "history", "insurance", "--json"]).await;
        let versions = history["versions"].as_array().unwrap();
        let summary: Vec<_> = versions
            .iter()
            .map(|v| {
                (
                    v["version"].as_u64().unwrap(),
                    v["proposed_by"].as_str().unwrap().to_owned(),
                    v["approved_by"].as_str().unwrap().to_owned(),
                    v["live"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (3, "alice".to_owned(), "bob".to_owned(), false),
                (4, "carol".to_owned(), "alice".to_owned(), false),
                (5, "alice".to_owned(), summary[2].2.clone(), false),
                (3, "carol".to_owned(), "bob".to_owned(), true),
            ],
            "{label}: {history}"
        );
        assert_eq!(versions[0]["sha256"], first["policy"]["sha256"]);
        assert_eq!(versions[1]["sha256"], fourth["policy"]["sha256"]);
        assert_eq!(versions[3]["proposal_id"], rollback_id);
        let (code, out, _) = run(&db, &["policy", "history", "insurance"]).await;
        assert_eq!(code, 0);
        assert!(
            out.contains("insurance.fnol v4  sha256 ")
                && out.contains("proposed by carol, approved by alice"),
            "{label}: {out}"
        );

        // Every kept version's text is in policy_versions under its SHA-256.
        let target = arbiter_db::DbTarget::new((!url.is_empty()).then(|| url.clone()), dir);
        let conn = arbiter_db::Db::connect(&target).await.unwrap();
        for version in versions {
            let sha = version["sha256"].as_str().unwrap();
            let kept = arbiter_db::policy_versions::get(conn.conn(), sha)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                    kept.source.as_bytes()
                )),
                sha
            );
        }
        let rejections: Vec<_> = policy_entries(&conn)
            .await
            .into_iter()
            .filter(|e| e["event"] == "policy.rejected")
            .collect();
        assert_eq!(rejections.len(), 2, "{label}");
        assert_eq!(rejections[0]["rejected_by"], "bob");
        assert_eq!(rejections[0]["reason"], "needs SIU sign-off");
        conn.close().await.unwrap();
    })
    .await;
}
