//! Three replicas as one service: three `arbiter serve` processes of the built binary on one
//! PostgreSQL database take mixed traffic (single analyses, a batch, the three flows, webhooks
//! to loopback receivers, a starter key at its limit) through all of them; one is killed with
//! SIGKILL in the middle of the batch and another stopped with SIGTERM. Afterwards every
//! accepted image has exactly one result and one audit entry, the batch is complete, every
//! webhook delivery ended once (delivered, or abandoned with one audit entry), the limit held
//! exactly, and `arbiter audit verify` passes.
//!
//! PostgreSQL only (SQLite cannot be shared between processes): it runs when
//! `ARBITER_TEST_POSTGRES_URL` is set, and fails without it when `ARBITER_REQUIRE_POSTGRES=1`.
//! A failing run prints each replica's log.

use crate::batches::distinct_png;
use crate::harness::process::{ok, replica_command as arbiter};
use crate::harness::{self, Receiver, ServeProcess, b64, repo, sample, wait_for};
use arbiter_db::entity::{job, request, webhook_delivery};
use arbiter_db::sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// A replica named `id`, sharing the data directory (so the webhook secret key file) and the
/// audit signing key with the others, with short leases and polls; `deliveries` runs its webhook
/// delivery loops.
fn serve(url: &str, dir: &Path, key_file: &Path, id: &str, deliveries: bool) -> ServeProcess {
    let mut command = arbiter(url, dir);
    command
        .env("ARBITER_REPLICA_ID", id)
        .env("ARBITER_AUDIT_MODE", "production")
        .env("ARBITER_AUDIT_SIGNING_KEY", key_file)
        .env("ARBITER_AUDIT_CHECKPOINT_EVERY_ENTRIES", "20")
        .env("ARBITER_POLICIES_DIR", repo().join("policies"))
        .env("ARBITER_JOBS_LEASE_SECS", "2")
        .env("ARBITER_JOBS_POLL_INTERVAL_MS", "100")
        .env("ARBITER_OUTBOUND_ALLOW_CIDRS", "127.0.0.0/8")
        .env("ARBITER_WEBHOOKS_RETRY_SCHEDULE_SECS", "1,1")
        .env("ARBITER_WEBHOOKS_JITTER_PERCENT", "0")
        .env(
            "ARBITER_WEBHOOKS_WORKERS",
            if deliveries { "1" } else { "0" },
        )
        .env("ARBITER_FLOWS_UGC_BATCH_SIZE", "4")
        .env("ARBITER_FLOWS_UGC_MAX_WAIT_SECS", "1")
        .env("RUST_LOG", "info");
    ServeProcess::start(command)
}

/// A key for `tenant` on `plan`, made with the CLI.
fn key(url: &str, dir: &Path, tenant: &str, plan: &str) -> String {
    let created = ok(arbiter(url, dir)
        .args([
            "keys", "create", "--tenant", tenant, "--name", "load", "--plan", plan,
        ])
        .args(["--scope", "analyze,batch,requests:read,webhooks", "--json"])
        .output()
        .unwrap());
    let created: Value = serde_json::from_str(created.trim()).unwrap();
    created["key"].as_str().unwrap().to_owned()
}

/// `POST base+path` with `key`: the status and the JSON answer, or `None` when the replica did
/// not answer (it was killed).
async fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    key: &str,
    body: Value,
) -> Option<(StatusCode, Value)> {
    let response = client
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = response.status();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_killed_and_stopped_mid_traffic_behave_as_one() {
    let Some(pg) = harness::postgres().await else {
        eprintln!("ARBITER_TEST_POSTGRES_URL is not set: skipping the three-replica test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key_file = dir.path().join("audit.key");
    let vkey = ok(arbiter(&pg.url, &data)
        .args(["audit", "keygen", "--out"])
        .arg(&key_file)
        .output()
        .unwrap());
    let vkey_file = dir.path().join("vkey.txt");
    std::fs::write(&vkey_file, &vkey).unwrap();
    let acme = key(&pg.url, &data, "acme", "enterprise");
    let starter = key(&pg.url, &data, "small", "starter");

    // r3 sends no webhooks: a delivery held by a killed process waits out its lease (at least
    // 30 s), too long for this test; its jobs are taken again after 2 s.
    let mut replicas = vec![
        serve(&pg.url, &data, &key_file, "r1", true),
        serve(&pg.url, &data, &key_file, "r2", true),
        serve(&pg.url, &data, &key_file, "r3", false),
    ];
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let client = reqwest::Client::new();

    let good = Receiver::start(200).await;
    let bad = Receiver::start(500).await;
    let endpoints = [
        (
            good.url("hooks"),
            json!([
                "batch.complete",
                "content.decision",
                "kyc.decision",
                "claim.review_warning",
                "claim.siu_escalation"
            ]),
        ),
        (bad.url("hooks"), json!(["content.decision"])),
    ];
    for (url, events) in endpoints {
        let (status, body) = post(
            &client,
            &bases[0],
            "/v1/webhooks/endpoints",
            &acme,
            json!({"url": url, "events": events}),
        )
        .await
        .unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    // The starter key's 60 requests a minute, held between the three replicas.
    let mut answered = 0;
    let mut refused = 0;
    for n in 0..80 {
        let response = client
            .get(format!(
                "{}/v1/requests/req_01JH0000000000000000000001",
                bases[n % 3]
            ))
            .bearer_auth(&starter)
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::NOT_FOUND => answered += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("request {n}: {other}"),
        }
    }
    assert_eq!((answered, refused), (60, 20));

    // Mixed traffic through all three at once: single analyses, claims photos, UGC uploads and
    // a KYC session.
    let mut accepted: Vec<String> = Vec::new();
    let mut calls = Vec::new();
    for n in 0..18 {
        let base = bases[n % 3].clone();
        let body =
            json!({"image_base64": b64(&distinct_png(n)), "reference_id": format!("single-{n}")});
        calls.push((base, "/v1/analyze".to_owned(), body));
    }
    for n in 0..6 {
        let base = bases[n % 3].clone();
        let claim = json!({"amount": 12000 + n, "currency": "EUR", "line_of_business": "auto", "incident_date": "2026-03-10"});
        let body = json!({"image_base64": b64(&distinct_png(100 + n)), "claim": claim, "photo": {"role": "damage"}});
        calls.push((
            base,
            format!("/v1/flows/insurance/claims/CLM-{n}/photos"),
            body,
        ));
    }
    for n in 0..8 {
        let base = bases[n % 3].clone();
        let body = json!({"image_base64": b64(&distinct_png(200 + n)), "upload": {"id": format!("up-{n}"), "visibility": "public"}, "uploader": {"id": "p-1", "account_age_days": 400, "prior_strikes": 0}});
        calls.push((base, "/v1/flows/ugc/uploads".to_owned(), body));
    }
    let kyc = "/v1/flows/kyc/sessions/kyc-1/images";
    calls.push((
        bases[0].clone(),
        kyc.to_owned(),
        json!({"image_base64": b64(&sample("plain-render.png")), "role": "id_document"}),
    ));
    calls.push((
        bases[1].clone(),
        kyc.to_owned(),
        json!({"image_base64": b64(&distinct_png(300)), "role": "selfie"}),
    ));
    let answers = futures_util::future::join_all(
        calls
            .iter()
            .map(|(base, path, body)| post(&client, base, path, &acme, body.clone())),
    )
    .await;
    for ((_, path, _), answer) in calls.iter().zip(answers) {
        let (status, body) = answer.unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::ACCEPTED,
            "{path}: {status} {body}"
        );
        let id = body["request_id"]
            .as_str()
            .or_else(|| body["analysis"]["request_id"].as_str())
            .unwrap_or_else(|| panic!("{path}: no request_id in {body}"));
        accepted.push(id.to_owned());
    }
    let (status, body) = post(
        &client,
        &bases[2],
        "/v1/flows/kyc/sessions/kyc-1/liveness",
        &acme,
        json!({"passed": true}),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");

    // A batch, claimed by r3 first (it is woken by its own submission), which is then killed
    // with its claims held; r2 is stopped with SIGTERM while the batch runs and hands its
    // unstarted jobs back; r1 finishes.
    let images: Vec<Value> = (0..40)
        .map(|n| json!({"image_base64": b64(&distinct_png(1000 + n)), "reference_id": format!("batch-{n}")}))
        .collect();
    let (status, batch) = post(
        &client,
        &bases[2],
        "/v1/analyze/batch",
        &acme,
        json!({"images": images, "webhook_url": good.url("batch")}),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{batch}");
    let batch_id = batch["batch_id"].as_str().unwrap().to_owned();
    let db = arbiter_db::Db::connect(&arbiter_db::DbTarget::Url(pg.url.clone()))
        .await
        .unwrap();
    let conn = db.conn();
    wait_for(
        "r3 to claim batch jobs",
        Duration::from_secs(10),
        async || {
            let held = job::Entity::find()
                .filter(job::Column::BatchId.eq(batch_id.as_str()))
                .filter(job::Column::Status.eq(arbiter_db::jobs::QUEUED))
                .filter(job::Column::LeaseOwner.starts_with("r3."))
                .count(conn)
                .await
                .ok()?;
            (held > 0).then_some(())
        },
    )
    .await;
    replicas[2].kill();
    let stopping = replicas.remove(1);
    let stopped = tokio::task::spawn_blocking(move || stopping.stop());
    // While r2 drains, r1 keeps answering.
    let (status, body) = post(
        &client,
        &bases[0],
        "/v1/analyze",
        &acme,
        json!({"image_base64": b64(&distinct_png(400)), "reference_id": "during-stop"}),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    accepted.push(body["request_id"].as_str().unwrap().to_owned());
    let r2_log = stopped.await.unwrap();
    assert!(r2_log.contains("stopped"), "{r2_log}");

    let results = wait_for(
        "the batch to complete",
        Duration::from_secs(25),
        async || {
            let response = client
                .get(format!("{}/v1/batches/{batch_id}", bases[0]))
                .bearer_auth(&acme)
                .send()
                .await
                .ok()?;
            let body: Value = response.json().await.ok()?;
            (body["status"] == "COMPLETE").then_some(body)
        },
    )
    .await;
    assert_eq!(results["total"], 40, "{results}");
    assert_eq!(results["completed"], 40, "{results}");
    for result in results["results"].as_array().unwrap() {
        accepted.push(result["request_id"].as_str().unwrap().to_owned());
    }

    // Every delivery ends: delivered, or abandoned after the short schedule.
    wait_for(
        "every webhook delivery to end",
        Duration::from_secs(20),
        async || {
            let pending = webhook_delivery::Entity::find()
                .filter(webhook_delivery::Column::Status.eq(arbiter_db::webhooks::PENDING))
                .count(conn)
                .await
                .ok()?;
            (pending == 0).then_some(())
        },
    )
    .await;

    // Every accepted image: one result, one audit entry; no request recorded twice.
    let unique: BTreeSet<&String> = accepted.iter().collect();
    assert_eq!(
        unique.len(),
        accepted.len(),
        "a request id was answered twice"
    );
    let filter = arbiter_audit::EntryFilter {
        tenant: Some("acme".to_owned()),
        ..Default::default()
    };
    let mut audited: BTreeMap<String, usize> = BTreeMap::new();
    let mut abandoned: BTreeMap<String, usize> = BTreeMap::new();
    for stored in arbiter_audit::entries(conn, &filter).await.unwrap() {
        match stored.entry.event {
            arbiter_audit::Event::DecisionRecorded { analysis, .. }
            | arbiter_audit::Event::AnalysisRecorded { analysis } => {
                *audited.entry(analysis.request_id).or_insert(0) += 1;
            }
            arbiter_audit::Event::WebhookAbandoned { request_id, .. } => {
                *abandoned.entry(request_id).or_insert(0) += 1;
            }
            _ => {}
        }
    }
    for id in &accepted {
        assert_eq!(audited.get(id), Some(&1), "{id}: audit entries");
        let rows = request::Entity::find()
            .filter(request::Column::RequestId.eq(id.as_str()))
            .count(conn)
            .await
            .unwrap();
        assert_eq!(rows, 1, "{id}: results");
    }
    assert!(audited.values().all(|&n| n == 1), "{audited:?}");
    let unfinished = job::Entity::find()
        .filter(job::Column::Status.is_in([arbiter_db::jobs::QUEUED, arbiter_db::jobs::COLLECTING]))
        .count(conn)
        .await
        .unwrap();
    assert_eq!(unfinished, 0);
    // The jobs table says which replica ended each batch job (`<replica id>.<ulid>`); r3 was
    // killed holding claims, which r1 and r2 took over once their leases ran out.
    let batch_jobs = job::Entity::find()
        .filter(job::Column::BatchId.eq(batch_id.as_str()))
        .all(conn)
        .await
        .unwrap();
    assert_eq!(batch_jobs.len(), 40);
    let owner = |job: &job::Model| {
        let owner = job.lease_owner.clone().unwrap_or_default();
        owner
            .split_once('.')
            .map(|(replica, _)| replica.to_owned())
            .unwrap_or_default()
    };
    for job in &batch_jobs {
        assert!(["r1", "r2", "r3"].contains(&owner(job).as_str()), "{job:?}");
    }
    let taken_over: Vec<_> = batch_jobs.iter().filter(|job| job.attempts >= 1).collect();
    assert!(!taken_over.is_empty(), "r3 was killed holding no claims");
    assert!(
        taken_over.iter().all(|job| owner(job) != "r3"),
        "{taken_over:?}"
    );

    // Every delivery ended once: those to the good receiver delivered and received, those to
    // the failing one abandoned with one audit entry each.
    let deliveries = webhook_delivery::Entity::find().all(conn).await.unwrap();
    let received: BTreeSet<String> = good
        .received()
        .iter()
        .filter_map(|(headers, _)| Some(headers.get("webhook-id")?.to_str().ok()?.to_owned()))
        .collect();
    let mut failed = 0;
    for delivery in &deliveries {
        match delivery.status.as_str() {
            arbiter_db::webhooks::SUCCEEDED => {
                assert!(delivery.url.starts_with(&good.url("")), "{delivery:?}")
            }
            arbiter_db::webhooks::FAILED => {
                failed += 1;
                assert!(delivery.url.starts_with(&bad.url("")), "{delivery:?}");
                let id = delivery.request_id.clone().unwrap_or_default();
                assert!(abandoned.get(&id).is_some_and(|&n| n >= 1), "{delivery:?}");
            }
            other => panic!("{other}: {delivery:?}"),
        }
    }
    let succeeded = deliveries.len() - failed;
    assert_eq!(
        received.len(),
        succeeded,
        "each delivered event received, by its id"
    );
    assert_eq!(failed, 8, "one abandoned content.decision per upload");
    assert_eq!(abandoned.values().sum::<usize>(), failed, "{abandoned:?}");
    assert!(
        deliveries.iter().any(|d| d.event == "batch.complete"),
        "batch.complete queued"
    );
    db.close().await.unwrap();

    let r1_log = replicas.remove(0).stop();
    let verified = ok(arbiter(&pg.url, &data)
        .args(["audit", "verify", "--vkey"])
        .arg(&vkey_file)
        .output()
        .unwrap());
    assert!(
        verified.starts_with("OK: the audit log:"),
        "{verified}\n{r1_log}"
    );
    drop(replicas);
    pg.drop_db().await.unwrap();
}
