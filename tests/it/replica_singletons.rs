//! Two replicas (two servers on one database: an SQLite file, and PostgreSQL when
//! `ARBITER_TEST_POSTGRES_URL` is set) racing for each singleton produce exactly one of it:
//! the migrations and the start-up activations of two replicas started together, a
//! `policy.activated` entry per policy version recorded by both at once, the UGC collector's
//! sealing of a tenant's uploads spread over both, and an audit checkpoint signed by both at once.

use crate::harness::{TestServer, b64, config, each_database, new_key, repo, sample, wait_for};
use arbiter_db::entity::{batch, job};
use arbiter_db::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use arbiter_server::keys::Scope;
use arbiter_server::policies::{SYSTEM_TENANT, record_activations};
use arbiter_server::{LivePolicies, Pipeline};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A replica with its workers off (nothing analysed: only the singletons are under test),
/// collecting UGC uploads four to a batch and never flushing them by age.
async fn replica(dir: &Path, url: &str) -> TestServer {
    let mut config = config(dir, url);
    config.jobs.workers = 0;
    config.webhooks.workers = 0;
    config.policy_reload_secs = 0;
    config.flows.ugc.batch_size = 4;
    config.flows.ugc.max_wait_secs = 3600;
    TestServer::start(config).await
}

/// How many `policy.activated` entries each policy id has.
async fn activations(pipeline: &Pipeline) -> BTreeMap<String, usize> {
    let filter = arbiter_audit::EntryFilter {
        tenant: Some(SYSTEM_TENANT.to_owned()),
        event: Some("policy.activated".to_owned()),
        ..Default::default()
    };
    let mut counts = BTreeMap::new();
    for stored in arbiter_audit::entries(pipeline.db().conn(), &filter)
        .await
        .unwrap()
    {
        if let arbiter_audit::Event::PolicyActivated { policy, .. } = stored.entry.event {
            *counts.entry(policy.id).or_insert(0) += 1;
        }
    }
    counts
}

/// The repository's policies, each file with `# round N` appended: a new version of every file.
fn policies_of_round(dir: &Path, round: u32, pipeline: &Pipeline) -> LivePolicies {
    let out = dir.join(format!("policies-{round}"));
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(repo().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(
                out.join(path.file_name().unwrap()),
                format!("{text}\n# round {round}\n"),
            )
            .unwrap();
        }
    }
    LivePolicies::from_dir(&out, pipeline.flows()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_racing_produce_exactly_one_of_each_singleton() {
    each_database(async |label, dir, url| {
        // Started together on a fresh database: both migrate and record the policies live at
        // start; one of each happens.
        let (a, b) = tokio::join!(replica(dir, &url), replica(dir, &url));
        let live = a.state.pipeline.policies().snapshot().all().count();
        wait_for(
            "the start-up activations",
            Duration::from_secs(10),
            async || (activations(&a.state.pipeline).await.len() == live).then_some(()),
        )
        .await;
        // Both replicas' start-up recording has had time to run.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let counts = activations(&a.state.pipeline).await;
        assert!(counts.values().all(|&n| n == 1), "{label}: {counts:?}");

        // New versions recorded by both replicas at once: each version once.
        let rounds = 4;
        for round in 0..rounds {
            let policies: Vec<_> = policies_of_round(dir, round, &a.state.pipeline)
                .snapshot()
                .all()
                .cloned()
                .collect();
            let now = chrono::Utc::now();
            let (x, y) = tokio::join!(
                record_activations(a.state.pipeline.db(), &policies, "reload", now),
                record_activations(b.state.pipeline.db(), &policies, "reload", now)
            );
            assert_eq!(
                x.unwrap() + y.unwrap(),
                policies.len(),
                "{label}: round {round}"
            );
        }
        let counts = activations(&a.state.pipeline).await;
        assert_eq!(counts.len(), live, "{label}");
        assert!(
            counts.values().all(|&n| n == 1 + rounds as usize),
            "{label}: {counts:?}"
        );

        // Uploads spread over both replicas at once: every batch sealed once, four uploads each.
        let (_, key) = a.mint_key(new_key("acme", "enterprise", &Scope::ALL)).await;
        let image = b64(&sample("plain-render.png"));
        let uploads = 24;
        let posts = (0..uploads).map(|n| {
            let replica = if n % 2 == 0 { &a } else { &b };
            let body = json!({
                "image_base64": image,
                "upload": {"id": format!("up-{n}"), "visibility": "public"},
                "uploader": {"id": "p-1", "account_age_days": 400, "prior_strikes": 0},
            });
            replica.post(&key, "/v1/flows/ugc/uploads", body)
        });
        for (status, _, body) in futures_util::future::join_all(posts).await {
            assert_eq!(status, StatusCode::ACCEPTED, "{label}: {body}");
        }
        let conn = a.state.pipeline.db().conn();
        let batches = batch::Entity::find()
            .filter(batch::Column::Tenant.eq("acme"))
            .all(conn)
            .await
            .unwrap();
        let sizes: Vec<i32> = batches.iter().map(|batch| batch.total).collect();
        assert_eq!(sizes, vec![4; uploads / 4], "{label}");
        let collecting = job::Entity::find()
            .filter(job::Column::Status.eq(arbiter_db::jobs::COLLECTING))
            .all(conn)
            .await
            .unwrap();
        assert!(collecting.is_empty(), "{label}: {collecting:?}");
        for batch in &batches {
            let members = job::Entity::find()
                .filter(job::Column::BatchId.eq(batch.batch_id.as_str()))
                .all(conn)
                .await
                .unwrap();
            assert_eq!(members.len(), 4, "{label}: {}", batch.batch_id);
        }

        // Both replicas sign every grown chain at once: one checkpoint per chain.
        let now = chrono::Utc::now();
        let (wa, wb) = (a.state.checkpoint_worker(), b.state.checkpoint_worker());
        let (x, y) = tokio::join!(wa.sign(true, now), wb.sign(true, now));
        let signed = x.unwrap().len() + y.unwrap().len();
        let stored = arbiter_audit::checkpoints(conn, None).await.unwrap();
        assert_eq!(signed, stored.len(), "{label}");
        let mut per_chain: BTreeMap<&str, usize> = BTreeMap::new();
        for checkpoint in &stored {
            *per_chain.entry(checkpoint.tenant.as_str()).or_insert(0) += 1;
        }
        assert!(!per_chain.is_empty(), "{label}");
        assert!(
            per_chain.values().all(|&n| n == 1),
            "{label}: {per_chain:?}"
        );

        a.stop().await;
        b.stop().await;
    })
    .await;
}
