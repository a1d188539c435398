//! Live policies over HTTP: what is live, simulation without side effects, and reloads that
//! validate and test a changed file before swapping it in (a bad file leaves the previous
//! version live), each activation an audit entry. SQLite and PostgreSQL.

use crate::harness::{Databases, TestServer, config, each_database, new_key, repo, wait_for};

use arbiter_config::Config;
use arbiter_server::keys::{NewKey, Scope};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

async fn activations(state: &arbiter_server::AppState) -> Vec<Value> {
    let filter = arbiter_audit::EntryFilter {
        tenant: Some("system".into()),
        event: Some("policy.activated".into()),
        ..Default::default()
    };
    let entries = arbiter_audit::entries(state.pipeline.db().conn(), &filter)
        .await
        .unwrap();
    entries
        .iter()
        .map(|e| serde_json::from_str(&e.entry.canonical().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn policies_are_listed_simulated_and_reloaded_safely() {
    let databases = Databases::new().await;
    for (label, url) in databases.urls.clone() {
        let dir = tempfile::tempdir().unwrap();
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        for name in ["insurance-fnol.yaml", "ugc-moderation.yaml", "kyc.yaml"] {
            std::fs::copy(repo().join("policies").join(name), policies.join(name)).unwrap();
        }
        let config = Config {
            policies_dir: policies.display().to_string(),
            // Reloads are driven by the test.
            policy_reload_secs: 0,
            ..config(&dir.path().join("data"), &url)
        };
        let server = TestServer::start(config).await;
        let new = NewKey {
            name: "admin".into(),
            ..new_key("acme", "growth", &[Scope::PoliciesRead])
        };
        let (_, key) = server.mint_key(new).await;
        let (base, state) = (&server.base, &server.state);
        let client = reqwest::Client::new();
        let get = |path: String| client.get(format!("{base}{path}")).bearer_auth(&key).send();

        // Start-up activations are recorded once.
        for _ in 0..100 {
            if activations(state).await.len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(activations(state).await.len(), 3, "{label}");

        let list: Value = get("/v1/policies".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut ids: Vec<_> = list["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        assert_eq!(ids.len(), 3, "{label}: {list}");
        let insurance = list["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["flow"] == "insurance")
            .unwrap()
            .clone();
        let id = insurance["id"].as_str().unwrap().to_owned();
        let detail: Value = get(format!("/v1/policies/{id}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(!detail["rules"].as_array().unwrap().is_empty());
        assert_eq!(
            get("/v1/policies/nope".into()).await.unwrap().status(),
            StatusCode::NOT_FOUND
        );

        // Simulation explains and records nothing.
        let facts = json!({"facts": {"verdict": {"label": "AI_GENERATED", "confidence": 0.94, "risk_level": "HIGH"}, "claim": {"amount": 12000}}});
        let response = client
            .post(format!("{base}/v1/policies/{id}/simulate"))
            .bearer_auth(&key)
            .json(&facts)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{label}");
        let simulated: Value = response.json().await.unwrap();
        assert_eq!(
            simulated["decision"]["action"], "siu_escalation",
            "{simulated}"
        );
        assert!(simulated["explanation"].is_object());
        let all = arbiter_audit::entries(state.pipeline.db().conn(), &Default::default())
            .await
            .unwrap();
        assert!(
            all.iter()
                .all(|e| e.entry.event.name() != "decision.recorded")
        );

        // A broken edit is refused; the live version stays and the error is reported.
        let file = policies.join("insurance-fnol.yaml");
        let original = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, original.replace("rules:", "rules:\n  - id: broken\n    when: { fact: verdict.risk_level, eq: HGH }\n    then: { action: proceed, reason: X }")).unwrap();
        let flows = state.pipeline.flows().clone();
        assert!(
            state.pipeline.policies().reload(&flows).is_empty(),
            "{label}"
        );
        let list: Value = get("/v1/policies".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let live = list["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["flow"] == "insurance")
            .unwrap();
        assert_eq!(
            live["sha256"], insurance["sha256"],
            "{label}: the previous version stays live"
        );
        let errors: Vec<_> = list["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["error"].is_string())
            .collect();
        assert_eq!(errors.len(), 1, "{label}: {list}");
        assert!(
            errors[0]["error"].as_str().unwrap().contains("HIGH"),
            "{}",
            errors[0]
        );

        // A changed file that keeps its version is refused too.
        std::fs::write(&file, original.replace("title:", "# edited\n  title:")).unwrap();
        assert!(
            state.pipeline.policies().reload(&flows).is_empty(),
            "{label}"
        );

        // A good edit with a new version goes live and is recorded.
        let version = insurance["version"].as_u64().unwrap();
        let bumped = original.replacen(
            &format!("version: {version}"),
            &format!("version: {}", version + 1),
            1,
        );
        assert_ne!(
            bumped, original,
            "the policy file states its version as `version: N`"
        );
        std::fs::write(&file, bumped).unwrap();
        let activated = state.pipeline.policies().reload(&flows);
        assert_eq!(activated.len(), 1, "{label}");
        let list: Value = get("/v1/policies".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let live = list["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["flow"] == "insurance")
            .unwrap();
        assert_eq!(live["version"], version + 1);
        assert!(
            list["files"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["error"].is_null()),
            "{list}"
        );
        // The server's watcher records reload activations; here the test records them.
        let policies: Vec<_> = activated.into_iter().map(|(p, _)| p).collect();
        arbiter_server::policies::record_activations(
            state.pipeline.db(),
            &policies,
            "reload",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        let recorded = activations(state).await;
        assert_eq!(recorded.len(), 4, "{label}");
        assert_eq!(recorded[3]["previous_version"], version);

        server.stop().await;
    }
    databases.finish().await;
}

/// The live insurance policy as `GET /v1/policies` lists it, and the status of its file.
async fn live_insurance(server: &TestServer, key: &str) -> (Value, Value) {
    let (status, list) = server.get(key, "/v1/policies").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let live = list["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["flow"] == "insurance")
        .unwrap()
        .clone();
    let file = list["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"].as_str().unwrap().ends_with("insurance-fnol.yaml"))
        .unwrap()
        .clone();
    (live, file)
}

#[tokio::test]
async fn a_reload_whose_embedded_tests_fail_is_refused_by_the_watcher() {
    each_database(async |label, dir, url| {
        let policies = dir.join("policies");
        std::fs::create_dir_all(&policies).unwrap();
        for name in ["insurance-fnol.yaml", "ugc-moderation.yaml", "kyc.yaml"] {
            std::fs::copy(repo().join("policies").join(name), policies.join(name)).unwrap();
        }
        let config = Config {
            policies_dir: policies.display().to_string(),
            // The server's own watcher re-reads the directory every second.
            policy_reload_secs: 1,
            ..config(&dir.join("data"), &url)
        };
        let server = TestServer::start(config).await;
        let (_, key) = server
            .mint_key(new_key("acme", "growth", &[Scope::PoliciesRead]))
            .await;
        let state = &server.state;
        wait_for("the start-up activations", Duration::from_secs(10), async || {
            (activations(state).await.len() == 3).then_some(())
        })
        .await;
        let (before, _) = live_insurance(&server, &key).await;
        let version = before["version"].as_u64().unwrap();

        // A new version that is valid but sends inconclusive photos to SIU: the embedded test
        // "Inconclusive photo warns the adjuster" fails.
        let file = policies.join("insurance-fnol.yaml");
        let original = std::fs::read_to_string(&file).unwrap();
        let bumped = original.replacen(
            &format!("version: {version}"),
            &format!("version: {}", version + 1),
            1,
        );
        let failing = bumped.replace(
            "then: { action: adjuster_review, reason: INCONCLUSIVE_IMAGE }",
            "then: { action: siu_escalation, reason: INCONCLUSIVE_IMAGE }",
        );
        assert_ne!(failing, bumped, "the policy has the inconclusive rule");
        std::fs::write(&file, &failing).unwrap();
        let error = wait_for("the watcher's verdict", Duration::from_secs(30), async || {
            let (_, file) = live_insurance(&server, &key).await;
            file["error"].as_str().map(str::to_owned)
        })
        .await;
        assert!(error.contains("embedded tests fail"), "{label}: {error}");
        assert!(
            error.contains("Inconclusive photo warns the adjuster"),
            "{label}: {error}"
        );
        let (live, _) = live_insurance(&server, &key).await;
        assert_eq!(live["version"], version, "{label}: the previous version stays");
        assert_eq!(live["sha256"], before["sha256"], "{label}");
        assert_eq!(activations(state).await.len(), 3, "{label}: nothing activated");
        // The live policy still decides as before.
        let id = live["id"].as_str().unwrap();
        let facts = json!({"facts": {"verdict": {"label": "INCONCLUSIVE", "confidence": 0.0, "risk_level": "LOW"}, "photo": {"role": "damage"}}});
        let (status, _, simulated) = server
            .post(&key, &format!("/v1/policies/{id}/simulate"), facts)
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {simulated}");
        assert_eq!(
            simulated["decision"]["action"], "adjuster_review",
            "{label}: {simulated}"
        );

        // The same new version with its tests passing goes live through the same watcher.
        std::fs::write(&file, &bumped).unwrap();
        wait_for("the passing version", Duration::from_secs(30), async || {
            let (live, _) = live_insurance(&server, &key).await;
            (live["version"] == version + 1).then_some(())
        })
        .await;
        wait_for("its activation", Duration::from_secs(10), async || {
            (activations(state).await.len() == 4).then_some(())
        })
        .await;
        server.stop().await;
    })
    .await;
}
