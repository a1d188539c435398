//! `arbiter replay`: a decision recorded by `arbiter scan` is re-decided from its recorded facts
//! under its kept policy text (and, with the image, analysed again), on SQLite and on PostgreSQL
//! (when `ARBITER_TEST_POSTGRES_URL` is set). A changed record is reported field by field.

use crate::harness::{DbArg, arbiter};
use arbiter_db::sea_orm::ConnectionTrait;
use arbiter_db::{Db, DbTarget};
use serde_json::Value;

async fn each_database(check: impl AsyncFn(&str, DbArg, DbTarget)) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join(".arbiter");
    check(
        "sqlite",
        DbArg::DataDir(data.clone()),
        DbTarget::new(None, &data),
    )
    .await;
    if let Some(pg) = crate::harness::postgres().await {
        let target = DbTarget::new(Some(pg.url.clone()), &data);
        check("postgres", DbArg::Url(pg.url.clone()), target).await;
        pg.drop_db().await.unwrap();
    }
}

fn json_of(output: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().next().unwrap_or("null")).unwrap()
}

#[tokio::test]
async fn a_recorded_decision_replays_identically_and_a_changed_record_is_named() {
    each_database(async |label, db, target| {
        let scanned = arbiter(
            &db,
            &[
                "scan",
                "--json",
                "--fact",
                "claim.amount=12000",
                "samples/sd-generated-duck.png",
            ],
        );
        assert!(scanned.status.success(), "{label}: {scanned:?}");
        let request_id = json_of(&scanned)["request_id"].as_str().unwrap().to_owned();

        // The facts under the kept policy text: the same decision.
        let replayed = arbiter(&db, &["replay", &request_id, "--json"]);
        assert!(replayed.status.success(), "{label}: {replayed:?}");
        let report = json_of(&replayed);
        assert_eq!(report["identical"], true, "{label}: {report}");
        assert_eq!(report["action"], "siu_escalation", "{label}");
        assert_eq!(report["policy"]["id"], "insurance.fnol");

        // With the image: its SHA-256 checked, the analysis the same.
        let with_image = arbiter(
            &db,
            &[
                "replay",
                &request_id,
                "--image",
                "samples/sd-generated-duck.png",
                "--json",
            ],
        );
        assert!(with_image.status.success(), "{label}: {with_image:?}");
        assert_eq!(json_of(&with_image)["image_checked"], true);
        let other = arbiter(
            &db,
            &["replay", &request_id, "--image", "samples/plain-render.png"],
        );
        assert!(!other.status.success(), "{label}");
        assert!(
            String::from_utf8_lossy(&other.stderr).contains("not the recorded"),
            "{label}: {other:?}"
        );

        // A record changed behind the log's back: the replay names the field, and exits 1.
        let conn = Db::connect(&target).await.unwrap();
        conn.conn()
            .execute_unprepared(&format!(
                "UPDATE decisions SET action = 'proceed' WHERE request_id = '{request_id}'"
            ))
            .await
            .unwrap();
        conn.close().await.unwrap();
        let changed = arbiter(&db, &["replay", &request_id]);
        assert_eq!(changed.status.code(), Some(1), "{label}: {changed:?}");
        let text = String::from_utf8_lossy(&changed.stdout);
        assert!(
            text.contains("action: recorded \"proceed\" -> replayed \"siu_escalation\""),
            "{label}: {text}"
        );

        let unknown = arbiter(&db, &["replay", "req_01NOSUCHREQUEST00000000000"]);
        assert!(!unknown.status.success());
        assert!(String::from_utf8_lossy(&unknown.stderr).contains("no decision is recorded"));
    })
    .await;
}
