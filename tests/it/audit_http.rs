//! The audit API against a real server on 127.0.0.1:0 and a real database (SQLite, and
//! PostgreSQL when `ARBITER_TEST_POSTGRES_URL` is set): entries with filters, cursor paging and
//! both orders; one entry; a request's trail; checkpoints signed by the timer and at shutdown,
//! announced as `audit.checkpoint` webhooks; the verifier key; the export as a tar archive that
//! verifies. A tenant never sees another tenant's entries, and an `audit:read` key cannot analyze.

use crate::harness::{self, Databases, TestServer, b64, new_key, sample};

use arbiter_audit::AuditMode;
use arbiter_audit::{Checkpoint, VerifierKey, verify_bundle, verify_database};
use arbiter_config::Config;
use arbiter_server::build_state;
use arbiter_server::clock::SystemClock;
use arbiter_server::keys::Scope;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

fn image(name: &str) -> String {
    b64(&sample(name))
}

/// The calls these tests make, over the harness's server.
trait AuditCalls {
    async fn key(&self, tenant: &str, scopes: &[Scope]) -> String;
    async fn analyze(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value);
    async fn raw(&self, key: &str, path: &str) -> reqwest::Response;
    async fn all_entries(&self, key: &str, query: &str) -> Vec<Value>;
}

impl AuditCalls for TestServer {
    async fn key(&self, tenant: &str, scopes: &[Scope]) -> String {
        self.mint_key(new_key(tenant, "enterprise", scopes)).await.1
    }

    async fn analyze(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let (status, _, body) = self.post(key, path, body).await;
        (status, body)
    }

    async fn raw(&self, key: &str, path: &str) -> reqwest::Response {
        self.get_raw(key, path).await
    }

    /// Every entry the key can list, following the cursors.
    async fn all_entries(&self, key: &str, query: &str) -> Vec<Value> {
        let mut entries = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/audit/entries?limit=3&{query}");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let (status, page) = self.get(key, &path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {page}");
            let items = page["entries"].as_array().unwrap();
            assert!(items.len() <= 3);
            entries.extend(items.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return entries,
            }
        }
    }
}

/// A configuration on a fresh database for `label`, development mode (the key is made in the
/// data directory).
fn config(dir: &std::path::Path, label: &str, url: &str) -> Config {
    let mut config = harness::config(&dir.join(label), url);
    config.audit.log_name = "audit.test/arbiter".into();
    config
}

fn seqs(entries: &[Value]) -> Vec<u64> {
    entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn each_tenant_reads_only_its_own_trail_with_filters_paging_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let databases = Databases::new().await;
    for (label, url) in databases.urls.clone() {
        let server = TestServer::start(config(dir.path(), label, &url)).await;
        let acme = server.key("acme", &Scope::DEFAULT).await;
        let auditor = server.key("acme", &[Scope::AuditRead]).await;
        let globex = server.key("globex", &Scope::DEFAULT).await;
        let globex_auditor = server.key("globex", &[Scope::AuditRead]).await;

        // acme: two decisions under the insurance policy and two plain analyses; globex: one.
        let mut acme_requests = Vec::new();
        for (n, (flow, sample)) in [
            (true, "sd-generated-duck.png"),
            (true, "plain-render.png"),
            (false, "comfyui-render.png"),
            (false, "plain-render.png"),
        ]
        .into_iter()
        .enumerate()
        {
            let path = if flow {
                "/v1/analyze?flow=insurance"
            } else {
                "/v1/analyze"
            };
            let mut body =
                json!({"image_base64": image(sample), "reference_id": format!("claim-{n}")});
            if flow {
                body["facts"] = json!({"claim": {"id": format!("CLM-{n}"), "amount": 12000}});
            }
            let (status, reply) = server.analyze(&acme, path, body).await;
            assert_eq!(status, StatusCode::OK, "{label}: {reply}");
            acme_requests.push(reply);
        }
        let (status, globex_reply) = server
            .analyze(
                &globex,
                "/v1/analyze",
                json!({"image_base64": image("plain-render.png"), "reference_id": "claim-0"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{label}");

        // An audit:read key cannot analyze, and an analyze key cannot read the trail.
        let (status, body) = server
            .analyze(
                &auditor,
                "/v1/analyze",
                json!({"image_base64": image("plain-render.png")}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}: {body}");
        assert_eq!(body["error"]["code"], "FORBIDDEN");
        let (status, _) = server.get(&acme, "/v1/audit/entries").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}");

        // acme's whole chain, paged oldest first: key.created x2, then the four requests.
        let all = server.all_entries(&auditor, "").await;
        assert_eq!(seqs(&all), (0..6).collect::<Vec<_>>(), "{label}");
        assert!(all.iter().all(|e| e["tenant"] == "acme"), "{label}");
        assert!(
            all.iter()
                .all(|e| e["entry_hash"].as_str().unwrap().len() == 64)
        );
        let events: Vec<_> = all.iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert_eq!(
            events,
            [
                "key.created",
                "key.created",
                "decision.recorded",
                "decision.recorded",
                "analysis.recorded",
                "analysis.recorded"
            ],
            "{label}"
        );
        // Newest first, the same entries reversed.
        let newest = server.all_entries(&auditor, "order=desc").await;
        assert_eq!(seqs(&newest), (0..6).rev().collect::<Vec<_>>(), "{label}");

        // Filters.
        let decisions = server
            .all_entries(&auditor, "event=decision.recorded")
            .await;
        assert_eq!(seqs(&decisions), [2, 3], "{label}");
        let insurance = server.all_entries(&auditor, "flow=insurance").await;
        assert_eq!(seqs(&insurance), [2, 3], "{label}");
        assert!(server.all_entries(&auditor, "flow=ugc").await.is_empty());
        let siu = server.all_entries(&auditor, "action=siu_escalation").await;
        assert_eq!(seqs(&siu), [2], "{label}: {insurance:?}");
        let by_reference = server.all_entries(&auditor, "reference_id=claim-2").await;
        assert_eq!(seqs(&by_reference), [4], "{label}");
        let request_id = acme_requests[3]["request_id"].as_str().unwrap();
        let by_request = server
            .all_entries(&auditor, &format!("request_id={request_id}"))
            .await;
        assert_eq!(seqs(&by_request), [5], "{label}");
        let sha = acme_requests[1]["image_info"]["sha256"].as_str().unwrap();
        let by_image = server
            .all_entries(&auditor, &format!("image_sha256={sha}"))
            .await;
        assert_eq!(seqs(&by_image), [3, 5], "{label}");
        let ts = all[4]["ts"].as_str().unwrap();
        let since = server
            .all_entries(&auditor, &format!("since={ts}&until=2999-01-01T00:00:00Z"))
            .await;
        let since = seqs(&since);
        assert!(
            since.ends_with(&[4, 5]) && since.iter().all(|&s| s >= 2),
            "{label}: {since:?}"
        );
        assert!(
            server
                .all_entries(&auditor, "until=2000-01-01T00:00:00Z")
                .await
                .is_empty()
        );

        // Malformed queries are 400 with the standard body.
        for bad in [
            "order=sideways",
            "cursor=abc",
            "limit=0",
            "limit=5000",
            "since=yesterday",
            "colour=red",
        ] {
            let (status, body) = server
                .get(&auditor, &format!("/v1/audit/entries?{bad}"))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{label} {bad}: {body}");
            assert_eq!(body["error"]["code"], "INVALID_REQUEST", "{label} {bad}");
        }

        // One entry; another tenant's is not found, whoever asks.
        let (status, entry) = server.get(&auditor, "/v1/audit/entries/acme/4").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert_eq!(entry, all[4]);
        for (key, path) in [
            (&auditor, "/v1/audit/entries/globex/0"),
            (&globex_auditor, "/v1/audit/entries/acme/0"),
            (&auditor, "/v1/audit/entries/acme/99"),
            (&auditor, "/v1/audit/entries/acme/x"),
        ] {
            let (status, body) = server.get(key, path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{label} {path}: {body}");
        }

        // globex's auditor sees globex's chain only, even filtering on acme's values.
        let theirs = server.all_entries(&globex_auditor, "").await;
        assert_eq!(seqs(&theirs), [0, 1, 2], "{label}");
        assert!(theirs.iter().all(|e| e["tenant"] == "globex"));
        let (_, page) = server
            .get(
                &globex_auditor,
                &format!("/v1/audit/entries?request_id={request_id}"),
            )
            .await;
        assert_eq!(page["entries"], json!([]), "{label}");

        // A request's trail, with seq and entry_hash; not found for another tenant.
        let acme_request = acme_requests[0]["request_id"].as_str().unwrap();
        let (status, trail) = server
            .get(&auditor, &format!("/v1/requests/{acme_request}/trail"))
            .await;
        assert_eq!(status, StatusCode::OK, "{label}: {trail}");
        assert_eq!(trail["request_id"], acme_request);
        assert_eq!(trail["entries"], json!([all[2]]), "{label}");
        let (status, _) = server
            .get(
                &globex_auditor,
                &format!("/v1/requests/{acme_request}/trail"),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}");
        let globex_request = globex_reply["request_id"].as_str().unwrap();
        let (status, _) = server
            .get(&auditor, &format!("/v1/requests/{globex_request}/trail"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}");

        // The verifier key, and checkpoints signed by it.
        let vkey_text = server
            .raw(&auditor, "/v1/audit/vkey")
            .await
            .text()
            .await
            .unwrap();
        let vkey = VerifierKey::parse(vkey_text.trim()).unwrap();
        assert_eq!(vkey, server.state.audit.signer.verifier_key());
        assert!(vkey_text.starts_with("audit.test/arbiter+"), "{vkey_text}");
        server
            .state
            .checkpoint_worker()
            .sign(true, chrono::Utc::now())
            .await
            .unwrap();
        let (status, page) = server.get(&auditor, "/v1/audit/checkpoints").await;
        assert_eq!(status, StatusCode::OK, "{label}: {page}");
        let checkpoints = page["checkpoints"].as_array().unwrap();
        assert_eq!(checkpoints.len(), 1, "{label}: {page}");
        let opened = Checkpoint::open(checkpoints[0]["note"].as_str().unwrap(), &vkey).unwrap();
        assert_eq!((opened.tenant.as_str(), opened.size), ("acme", 6));
        assert_eq!(opened.root_hash, all[5]["entry_hash"].as_str().unwrap());
        let (_, page) = server.get(&globex_auditor, "/v1/audit/checkpoints").await;
        assert!(
            page["checkpoints"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["tenant"] == "globex")
        );

        // The export: a tar archive of a bundle that verifies, with acme's entries only.
        let response = server.raw(&auditor, "/v1/audit/export").await;
        assert_eq!(response.status(), StatusCode::OK, "{label}");
        assert_eq!(response.headers()["content-type"], "application/x-tar");
        let archive = response.bytes().await.unwrap();
        let bundle = dir.path().join(format!("{label}-bundle"));
        arbiter_audit::export::unpack_tar(archive.as_ref(), &bundle).unwrap();
        let report = verify_bundle(&bundle, &vkey).unwrap();
        assert!(report.ok(), "{label}: {:?}", report.problems);
        assert_eq!((report.entries, report.checkpoints), (6, 1), "{label}");
        let lines = std::fs::read_to_string(bundle.join("entries.jsonl")).unwrap();
        let exported: Vec<Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(exported, all, "{label}");
        // Exports under way at once are bounded: with every place taken, 503 and Retry-After.
        let places = server.state.config.audit.max_concurrent_exports;
        assert_eq!(places, 2, "the documented default");
        let taken = server
            .state
            .audit
            .exports
            .acquire_many(places)
            .await
            .unwrap();
        let response = server.raw(&auditor, "/v1/audit/export").await;
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{label}"
        );
        assert_eq!(response.headers()["retry-after"], "10", "{label}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE", "{label}");
        drop(taken);
        let response = server.raw(&auditor, "/v1/audit/export").await;
        assert_eq!(response.status(), StatusCode::OK, "{label}");
        response.bytes().await.unwrap();
        let (status, body) = server.get(&auditor, "/v1/audit/export?from_seq=2").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {body}");
        let (status, _) = server
            .get(&auditor, "/v1/audit/export?until=2000-01-01T00:00:00Z")
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}");

        // The OpenAPI document lists the audit routes.
        let (_, doc) = server.get(&auditor, "/v1/openapi.json").await;
        for path in [
            "/v1/audit/entries",
            "/v1/audit/entries/{tenant}/{seq}",
            "/v1/audit/checkpoints",
            "/v1/audit/vkey",
            "/v1/audit/export",
            "/v1/requests/{request_id}/trail",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path}");
        }
        server.stop().await;
    }
    databases.finish().await;
}

#[tokio::test]
async fn concurrent_requests_build_gapless_chains_signed_by_the_timer_and_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let databases = Databases::new().await;
    for (label, url) in databases.urls.clone() {
        let mut config = config(dir.path(), label, &url);
        config.audit.checkpoint_every_entries = 10;
        config.audit.checkpoint_every_secs = 3600;
        config.webhooks.workers = 0;
        let server = TestServer::start(config).await;
        // An endpoint registered for audit.checkpoint gets each of acme's checkpoints.
        let cipher = server.state.webhooks.cipher().await.unwrap();
        let txn = server.state.pipeline.db().begin_write().await.unwrap();
        arbiter_webhooks::create_endpoint(
            &txn,
            cipher,
            "acme",
            "http://127.0.0.1:9/audit",
            &["audit.checkpoint".to_owned()],
            None,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        txn.commit().await.unwrap();
        let keys = [
            server.key("acme", &Scope::DEFAULT).await,
            server.key("globex", &Scope::DEFAULT).await,
        ];
        let samples = [image("plain-render.png"), image("sd-generated-duck.png")];
        let server = Arc::new(server);
        let tasks: Vec<_> = (0..40usize)
            .map(|n| {
                let server = server.clone();
                let key = keys[n % 2].clone();
                let body = json!({
                    "image_base64": samples[(n / 2) % 2].clone(),
                    "reference_id": format!("r-{n}"),
                    "facts": {"claim": {"id": format!("CLM-{n}"), "amount": 500}},
                });
                tokio::spawn(async move {
                    let mut body = body;
                    let path = if n % 4 < 2 {
                        body.as_object_mut().unwrap().remove("facts");
                        "/v1/analyze"
                    } else {
                        "/v1/analyze?flow=insurance"
                    };
                    let (status, body) = server.analyze(&key, path, body).await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let conn = server.state.pipeline.db().conn();
        let report = verify_database(conn, None).await.unwrap();
        assert!(report.ok(), "{label}: {:?}", report.problems);
        for tenant in ["acme", "globex"] {
            let filter = arbiter_audit::EntryFilter {
                tenant: Some(tenant.to_owned()),
                ..Default::default()
            };
            let chain = arbiter_audit::entries(conn, &filter).await.unwrap();
            let seqs: Vec<u64> = chain.iter().map(|e| e.entry.seq).collect();
            assert_eq!(
                seqs,
                (0..21).collect::<Vec<_>>(),
                "{label}: a key and 20 requests"
            );
        }

        // The timer signs acme's chain (21 entries, every 10) within a few ticks.
        let mut signed = Vec::new();
        for _ in 0..50 {
            signed = arbiter_audit::checkpoints(conn, Some("acme"))
                .await
                .unwrap();
            if !signed.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(!signed.is_empty(), "{label}: the timer signed nothing");

        // At shutdown every chain that grew is signed, up to its last entry.
        let state = server.state.clone();
        Arc::into_inner(server).unwrap().stop().await;
        let db = arbiter_db::Db::connect(&arbiter_db::DbTarget::new(
            Some(url.clone()),
            &dir.path().join(label),
        ))
        .await
        .unwrap();
        let heads: BTreeSet<_> = arbiter_audit::checkpoints(db.conn(), None)
            .await
            .unwrap()
            .into_iter()
            .map(|cp| (cp.tenant, cp.size))
            .collect();
        assert!(
            heads.contains(&("acme".to_owned(), 21)),
            "{label}: {heads:?}"
        );
        assert!(
            heads.contains(&("globex".to_owned(), 21)),
            "{label}: {heads:?}"
        );
        let vkey = state.audit.signer.verifier_key();
        let report = verify_database(db.conn(), Some(&vkey)).await.unwrap();
        assert!(report.ok(), "{label}: {:?}", report.problems);
        assert!(
            report.notes.iter().all(|n| !n.contains("not yet covered")),
            "{label}: {:?}",
            report.notes
        );

        // Each of acme's checkpoints went to the outbox as an audit.checkpoint webhook.
        let deliveries = arbiter_db::webhooks::list_deliveries(db.conn(), "acme", None, 100)
            .await
            .unwrap();
        let announced: BTreeSet<i64> = deliveries
            .iter()
            .filter(|d| d.event == "audit.checkpoint")
            .map(|d| {
                serde_json::from_str::<Value>(&d.body).unwrap()["size"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        let acme_sizes: BTreeSet<i64> = heads
            .iter()
            .filter(|(t, _)| t == "acme")
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(announced, acme_sizes, "{label}");
        let globex = arbiter_db::webhooks::list_deliveries(db.conn(), "globex", None, 100)
            .await
            .unwrap();
        assert!(globex.is_empty(), "{label}: globex has no endpoint");
        db.close().await.unwrap();
    }
    databases.finish().await;
}

#[tokio::test]
async fn production_mode_needs_a_signing_key_and_development_mode_makes_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut production = config(dir.path(), "production", "");
    production.audit.mode = AuditMode::Production;
    let err = build_state(production.clone(), Arc::new(SystemClock))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("production") && err.contains("arbiter audit keygen"),
        "{err}"
    );
    // A key file others may read is refused too.
    let key_file = dir.path().join("audit.key");
    arbiter_audit::SigningKey::generate()
        .unwrap()
        .write_new(&key_file)
        .unwrap();
    production.audit.signing_key = key_file.display().to_string();
    let state = build_state(production.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    assert_eq!(state.audit.signer.log_name(), "audit.test/arbiter");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = build_state(production, Arc::new(SystemClock))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    // Development mode makes a key in the data directory once, then keeps using it.
    let development = config(dir.path(), "development", "");
    let first = build_state(development.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    let made = dir.path().join("development").join("audit-signing.key");
    assert!(made.is_file());
    let again = build_state(development, Arc::new(SystemClock))
        .await
        .unwrap();
    assert_eq!(
        first.audit.signer.verifier_key(),
        again.audit.signer.verifier_key()
    );
}
