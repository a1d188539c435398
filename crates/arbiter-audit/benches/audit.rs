//! Audit log speed: appends per second with many concurrent writers (SQLite, and PostgreSQL when
//! `ARBITER_TEST_POSTGRES_URL` is set), one transaction per append and through group commit (as
//! the server records concurrent requests), and entries verified per second, each next to a
//! baseline measured in the same run.
//!
//! `cargo bench -p arbiter-audit --bench audit` (sizes: `ARBITER_BENCH_APPENDS`,
//! `ARBITER_BENCH_WRITERS`, `ARBITER_BENCH_VERIFY`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use arbiter_audit::entry::{AnalysisFields, VerdictBp};
use arbiter_audit::{
    Checkpoint, Entry, Event, GENESIS_HASH, Signer, SigningKey, append, append_many, entry_hash,
    verify_bundle, verify_database,
};
use arbiter_core::PolicyRef;
use arbiter_db::group::{GroupCommit, GroupWrite};
use arbiter_db::sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement};
use arbiter_db::testing::PostgresTestDb;
use arbiter_db::{Db, DbTarget};
use chrono::Utc;
use sha2::{Digest, Sha256};
use std::time::Instant;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A decision as the pipeline records it (about 700 bytes of canonical JSON).
fn decision(n: usize) -> Event {
    Event::DecisionRecorded {
        analysis: AnalysisFields {
            request_id: format!("req_01JH{n:022}"),
            reference_id: Some(format!("claim-{n}-photo")),
            image_sha256: hex::encode(Sha256::digest(n.to_le_bytes())),
            detector: "local".into(),
            verdict: VerdictBp {
                label: "AI_GENERATED".into(),
                confidence_bp: 9400,
                risk_level: "HIGH".into(),
            },
            scores: [
                ("frequency".to_owned(), 8800),
                ("metadata".to_owned(), 9500),
            ]
            .into(),
            providers: Default::default(),
        },
        flow: "insurance".into(),
        policy: PolicyRef {
            id: "insurance.fnol".into(),
            version: 3,
            sha256: hex::encode(Sha256::digest(b"policy-v3")),
        },
        rules: vec!["siu-high-risk".into()],
        actions: vec!["siu_escalation".into()],
    }
}

fn rate(count: usize, seconds: f64) -> f64 {
    count as f64 / seconds
}

/// `writers` tasks each run their share of `total` transactions, one append each.
async fn appends(db: &Db, total: usize, writers: usize) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                for n in (w..total).step_by(writers) {
                    let txn = db.begin_write().await.unwrap();
                    append(&txn, "acme", Utc::now(), decision(n)).await.unwrap();
                    txn.commit().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    rate(total, started.elapsed().as_secs_f64())
}

/// The baseline: the same rows and transactions with a plain INSERT, no chain.
async fn plain_inserts(db: &Db, total: usize, writers: usize) -> f64 {
    let ddl = match db.backend() {
        DbBackend::Sqlite => {
            "CREATE TABLE bench_plain (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT, body TEXT)"
        }
        _ => "CREATE TABLE bench_plain (id BIGSERIAL PRIMARY KEY, tenant TEXT, body TEXT)",
    };
    db.conn().execute_unprepared(ddl).await.unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                for n in (w..total).step_by(writers) {
                    let body = serde_json::to_string(&decision(n)).unwrap();
                    let txn = db.begin_write().await.unwrap();
                    let insert = Statement::from_sql_and_values(
                        txn.get_database_backend(),
                        match db.backend() {
                            DbBackend::Sqlite => {
                                "INSERT INTO bench_plain (tenant, body) VALUES (?, ?)"
                            }
                            _ => "INSERT INTO bench_plain (tenant, body) VALUES ($1, $2)",
                        },
                        ["acme".into(), body.into()],
                    );
                    txn.execute_raw(insert).await.unwrap();
                    txn.commit().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    rate(total, started.elapsed().as_secs_f64())
}

/// Writes through group commit, as the server records concurrent requests: each writer waits
/// for its own event's entry, and the events waiting together share a transaction.
struct Grouped {
    /// Append to the chain, or (the baseline) insert plain rows.
    chained: bool,
}

impl GroupWrite for Grouped {
    type Item = Event;
    type Output = ();
    type Error = DbErr;

    async fn write(&self, txn: &DatabaseTransaction, items: &[Event]) -> Result<Vec<()>, DbErr> {
        if self.chained {
            append_many(txn, "acme", Utc::now(), items.to_vec())
                .await
                .map_err(|err| DbErr::Custom(err.to_string()))?;
        } else {
            let placeholders: Vec<_> = (0..items.len())
                .map(|n| format!("(${}, ${})", 2 * n + 1, 2 * n + 2))
                .collect();
            let mut values = Vec::new();
            for event in items {
                values.push("acme".into());
                values.push(serde_json::to_string(event).unwrap().into());
            }
            let insert = Statement::from_sql_and_values(
                txn.get_database_backend(),
                format!(
                    "INSERT INTO bench_plain (tenant, body) VALUES {}",
                    placeholders.join(", ")
                ),
                values,
            );
            txn.execute_raw(insert).await?;
        }
        Ok(vec![(); items.len()])
    }
}

async fn grouped(db: &Db, total: usize, writers: usize, chained: bool) -> f64 {
    let commit = GroupCommit::start(db.clone(), Grouped { chained }, 64);
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let commit = commit.clone();
            tokio::spawn(async move {
                for n in (w..total).step_by(writers) {
                    commit.submit(decision(n)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    rate(total, started.elapsed().as_secs_f64())
}

async fn bench_database(label: &str, target: &DbTarget, total: usize, writers: usize) {
    let db = Db::connect(target).await.unwrap();
    let plain = plain_inserts(&db, total, writers).await;
    let chained = appends(&db, total, writers).await;
    println!(
        "{label:<8} appends, {writers} writers, one transaction each: {chained:>9.0}/s   \
         baseline plain INSERT: {plain:>9.0}/s   ratio {:.2}",
        chained / plain
    );
    let plain = grouped(&db, total, writers, false).await;
    let chained = grouped(&db, total, writers, true).await;
    println!(
        "{label:<8} appends, {writers} writers, group commit:         {chained:>9.0}/s   \
         baseline plain INSERT: {plain:>9.0}/s   ratio {:.2}",
        chained / plain
    );
    let started = Instant::now();
    let report = verify_database(db.conn(), None).await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    println!(
        "{label:<8} verify the live chain ({} entries):     {:>9.0} entries/s",
        2 * total,
        rate(2 * total, started.elapsed().as_secs_f64())
    );
    db.clone().close().await.unwrap();
}

fn bench_verify(count: usize) {
    let signer = Signer::new(SigningKey::from_seed([5; 32]), "bench/arbiter").unwrap();
    let mut lines = String::new();
    let mut canonicals = Vec::with_capacity(count);
    let mut prev = GENESIS_HASH.to_owned();
    for n in 0..count {
        let entry = Entry {
            v: 1,
            seq: n as u64,
            prev_hash: prev,
            ts: "2026-01-15T10:00:00.000Z".into(),
            tenant: "acme".into(),
            event: decision(n),
        };
        let canonical = entry.canonical().unwrap();
        prev = entry_hash(&canonical);
        lines.push_str(&entry.canonical_with_hash(&prev).unwrap());
        lines.push('\n');
        canonicals.push(canonical);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("checkpoints")).unwrap();
    std::fs::write(dir.path().join("entries.jsonl"), &lines).unwrap();
    let note = Checkpoint {
        log_name: "bench/arbiter".into(),
        tenant: "acme".into(),
        size: count as u64,
        root_hash: prev,
        issued_at: "2026-01-15T11:00:00Z".into(),
    }
    .sign(&signer);
    let cp = format!("checkpoints/cp-{count}.txt");
    std::fs::write(dir.path().join(&cp), &note).unwrap();
    let vkey = signer.verifier_key();
    std::fs::write(dir.path().join("vkey.txt"), format!("{vkey}\n")).unwrap();
    let sums: String = [cp.as_str(), "entries.jsonl", "vkey.txt"]
        .iter()
        .map(|name| {
            let bytes = std::fs::read(dir.path().join(name)).unwrap();
            format!("{}  {name}\n", hex::encode(Sha256::digest(bytes)))
        })
        .collect();
    std::fs::write(dir.path().join("SHA256SUMS"), sums).unwrap();

    // Baseline: SHA-256 of each entry's canonical bytes, nothing else.
    let started = Instant::now();
    let mut sink = 0u8;
    for canonical in &canonicals {
        sink ^= Sha256::digest(canonical.as_bytes())[0];
    }
    let baseline = rate(count, started.elapsed().as_secs_f64());
    std::hint::black_box(sink);

    let started = Instant::now();
    let report = verify_bundle(dir.path(), &vkey).unwrap();
    let verified = rate(count, started.elapsed().as_secs_f64());
    assert!(report.ok(), "{:?}", report.problems);
    println!(
        "bundle   verify {count} entries (read, SHA256SUMS, canonical check, hash, links, signature): \
         {verified:>9.0} entries/s   baseline raw SHA-256 of the canonical bytes: {baseline:>9.0}/s   ratio {:.2}",
        verified / baseline
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let total = env_or("ARBITER_BENCH_APPENDS", 20_000);
    let writers = env_or("ARBITER_BENCH_WRITERS", 32);
    let verify = env_or("ARBITER_BENCH_VERIFY", 500_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        bench_database(
            "sqlite",
            &DbTarget::DataDir(dir.path().to_path_buf()),
            total,
            writers,
        )
        .await;
        if let Some(pg) = PostgresTestDb::create().await.unwrap() {
            let target = DbTarget::Url(pg.url.clone());
            bench_database("postgres", &target, total, writers).await;
            pg.drop_db().await.unwrap();
        }
    });
    bench_verify(verify);
}
