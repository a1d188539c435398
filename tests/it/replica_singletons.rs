//! Two replicas (two servers on one database: an SQLite file, and PostgreSQL when
//! `ARBITER_TEST_POSTGRES_URL` is set) racing for each singleton produce exactly one of it:
//! the migrations and the start-up activations of two replicas started together, a
//! `policy.activated` entry per policy version recorded by both at once, the UGC collector's
//! sealing of a tenant's uploads spread over both, and an audit checkpoint signed by both at once.
//! And a policy file edited under two replicas watching the same files (`policies.source:
//! files`) is live on both within `policy_reload_secs` plus the time to read it, recorded once.

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
use std::time::{Duration, Instant};

/// A replica with its workers off (nothing analysed: only the singletons are under test),
/// collecting UGC uploads four to a batch and never flushing them by age.
async fn replica(dir: &Path, url: &str) -> TestServer {
    let mut config = config(dir, url);
    config.jobs.workers = 0;
    config.webhooks.workers = 0;
    config.policy_reload_secs = 0;
    config.flows.set("ugc", "batch_size", json!(4)).unwrap();
    config
        .flows
        .set("ugc", "max_wait_secs", json!(3600))
        .unwrap();
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

/// Every `policy.activated` entry of the policy `id`: the sha256 of the file each recorded.
async fn activated_versions(pipeline: &Pipeline, id: &str) -> Vec<String> {
    let filter = arbiter_audit::EntryFilter {
        tenant: Some(SYSTEM_TENANT.to_owned()),
        event: Some("policy.activated".to_owned()),
        ..Default::default()
    };
    arbiter_audit::entries(pipeline.db().conn(), &filter)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|stored| match stored.entry.event {
            arbiter_audit::Event::PolicyActivated { policy, .. } if policy.id == id => {
                Some(policy.sha256)
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_edited_policy_file_is_live_on_both_replicas_within_the_reload_period_recorded_once() {
    each_database(async |label, dir, url| {
        // One directory of policy files both replicas watch (one volume shipped to both).
        let shared = dir.join("shared-policies");
        std::fs::create_dir_all(&shared).unwrap();
        for entry in std::fs::read_dir(repo().join("policies")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "yaml") {
                std::fs::copy(&path, shared.join(path.file_name().unwrap())).unwrap();
            }
        }
        let reload_secs = 1;
        let start = async || {
            let mut config = config(dir, &url);
            config.jobs.workers = 0;
            config.webhooks.workers = 0;
            config.policies_dir = shared.display().to_string();
            config.policy_reload_secs = reload_secs;
            TestServer::start(config).await
        };
        let (a, b) = tokio::join!(start(), start());
        let id = "ugc.moderation";
        let live = |server: &TestServer| {
            server
                .state
                .pipeline
                .policies()
                .snapshot()
                .by_id(id)
                .map(|policy| policy.sha256().to_owned())
                .unwrap()
        };
        let before = live(&a);
        assert_eq!(live(&b), before, "{label}");
        wait_for(
            "the start-up activation",
            Duration::from_secs(10),
            async || (!activated_versions(&a.state.pipeline, id).await.is_empty()).then_some(()),
        )
        .await;

        // The file edited as a deployment writes it: a new file renamed over the old one.
        let file = shared.join("ugc-moderation.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        let next = shared.join(".ugc-moderation.yaml.new");
        // A changed policy raises its version.
        let text = text.replacen("\n  version: 1\n", "\n  version: 2\n", 1);
        assert!(text.contains("\n  version: 2\n"), "{label}");
        std::fs::write(&next, format!("{text}\n# edited under two replicas\n")).unwrap();
        std::fs::rename(&next, &file).unwrap();
        let edited = Instant::now();

        // Live on both within the reload period plus the time to read the files (bounded
        // here at a second, far above what reading takes).
        let bound = Duration::from_secs(reload_secs + 1);
        wait_for("both replicas to pick the edit up", bound, async || {
            (live(&a) != before && live(&b) != before).then_some(())
        })
        .await;
        assert_eq!(live(&a), live(&b), "{label}");
        let after = live(&a);
        eprintln!(
            "{label}: live on both replicas {:?} after the edit",
            edited.elapsed()
        );

        // Both replicas recorded the new version on their reload: one entry between them.
        tokio::time::sleep(Duration::from_secs(reload_secs) * 2).await;
        let versions = activated_versions(&a.state.pipeline, id).await;
        assert_eq!(
            versions.iter().filter(|sha| **sha == after).count(),
            1,
            "{label}: {versions:?}"
        );
        assert_eq!(
            versions.iter().filter(|sha| **sha == before).count(),
            1,
            "{label}: {versions:?}"
        );
        a.stop().await;
        b.stop().await;
    })
    .await;
}
