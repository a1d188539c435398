//! Replay: re-decides a recorded decision's facts under the exact policy text recorded with it
//! (kept under its SHA-256) and compares the action, reason, fired rules and the deciding
//! rule's description with the record, field by field. `arbiter replay` and the console's
//! request page both call [`replay`].

use arbiter_core::{Decision, Facts};
use arbiter_db::Db;
use arbiter_db::entity::decision;
use arbiter_db::sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};
use arbiter_policy::Policy;
use serde::Serialize;
use serde_json::{Value, json};

/// Why a decision cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No decision is recorded for the request.
    #[error("no decision is recorded for {0}")]
    NotRecorded(String),
    /// The policy text is not kept.
    #[error(
        "the text of policy {id} v{version} (sha256 {sha256}) is not kept: it was recorded \
         before policy texts were kept, so it cannot be replayed"
    )]
    NotKept {
        /// The policy's id.
        id: String,
        /// Its version.
        version: i32,
        /// Its SHA-256.
        sha256: String,
    },
    /// The kept text does not compile, or does not hash to the recorded SHA-256.
    #[error("{0}")]
    Policy(String),
    /// A recorded field cannot be read.
    #[error("while reading the recorded {field}: {message}")]
    Unreadable {
        /// The field (`facts`, `rules`).
        field: &'static str,
        /// Why.
        message: String,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// One field that came out differently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// The field (`action`, `reason`, `fired`, `description`, ...).
    pub field: String,
    /// What the record says.
    pub recorded: Value,
    /// What the replay gives.
    pub replayed: Value,
}

/// Compares `recorded` and `replayed` under `field`, noting a difference.
pub fn compare(differences: &mut Vec<Difference>, field: &str, recorded: Value, replayed: Value) {
    if recorded != replayed {
        differences.push(Difference {
            field: field.to_owned(),
            recorded,
            replayed,
        });
    }
}

/// A replayed decision.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The recorded decision row.
    pub row: decision::Model,
    /// The decision the kept policy text makes about the recorded facts.
    pub decision: Decision,
    /// The fields that differ from the record; empty when identical.
    pub differences: Vec<Difference>,
}

impl Replayed {
    /// Whether the replay gives the recorded decision.
    pub fn identical(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Replays the decision recorded for `request_id` (one tenant's, or any tenant's when `tenant`
/// is `None`). A record made before descriptions were stored is compared without one.
pub async fn replay(
    db: &Db,
    tenant: Option<&str>,
    request_id: &str,
) -> Result<Replayed, ReplayError> {
    let mut query = decision::Entity::find_by_id(request_id.to_owned());
    if let Some(tenant) = tenant {
        query = query.filter(decision::Column::Tenant.eq(tenant));
    }
    let row = query
        .one(db.conn())
        .await?
        .ok_or_else(|| ReplayError::NotRecorded(request_id.to_owned()))?;
    let kept = arbiter_db::policy_versions::get(db.conn(), &row.policy_sha256)
        .await?
        .ok_or_else(|| ReplayError::NotKept {
            id: row.policy_id.clone(),
            version: row.policy_version,
            sha256: row.policy_sha256.clone(),
        })?;
    let origin = format!("{} v{} (kept)", kept.policy_id, kept.version);
    let policy = Policy::from_yaml(&kept.source, &origin).map_err(|err| {
        ReplayError::Policy(format!("while compiling the kept text of {origin}: {err}"))
    })?;
    if policy.sha256() != row.policy_sha256 {
        return Err(ReplayError::Policy(format!(
            "the kept text of {origin} does not hash to the recorded SHA-256"
        )));
    }
    let unreadable = |field| {
        move |err: serde_json::Error| ReplayError::Unreadable {
            field,
            message: err.to_string(),
        }
    };
    let facts: Facts = serde_json::from_str(&row.facts).map_err(unreadable("facts"))?;
    let recorded_fired: Value = serde_json::from_str(&row.fired).map_err(unreadable("rules"))?;
    let decision = policy.decide(&facts);
    let mut differences = Vec::new();
    compare(
        &mut differences,
        "action",
        json!(row.action),
        json!(decision.action),
    );
    compare(
        &mut differences,
        "reason",
        json!(row.reason),
        json!(decision.reason),
    );
    compare(
        &mut differences,
        "fired",
        recorded_fired,
        json!(decision.fired),
    );
    if let Some(recorded) = &row.description {
        compare(
            &mut differences,
            "description",
            json!(recorded),
            json!(decision.description),
        );
    }
    Ok(Replayed {
        row,
        decision,
        differences,
    })
}

#[cfg(test)]
#[cfg(feature = "flow-kyc")]
mod tests {
    use super::*;
    use crate::test_support::{image, pipeline};
    use crate::{DecideRequest, Pipeline};
    use arbiter_core::{AnalyzeOptions, Verdict, VerdictLabel};
    use arbiter_db::sea_orm::{ActiveModelTrait, ActiveValue, IntoActiveModel};
    use arbiter_db::testing;

    /// Decides a synthetic selfie for `acme`; returns its request id.
    async fn decide(pipeline: &Pipeline) -> String {
        let input = json!({"image_role": "selfie", "liveness": {"passed": true}});
        let options = AnalyzeOptions::default();
        let request = DecideRequest {
            tenant: "acme",
            flow: "kyc",
            input: &input,
            reference_id: None,
            options: &options,
        };
        let outcome = pipeline.decide(image(7), &request).await.unwrap();
        outcome.request_id.to_string()
    }

    #[test]
    fn only_fields_that_differ_are_noted() {
        let mut differences = Vec::new();
        compare(&mut differences, "action", json!("reject"), json!("reject"));
        compare(&mut differences, "reason", json!("A"), json!("B"));
        assert_eq!(
            differences,
            [Difference {
                field: "reason".to_owned(),
                recorded: json!("A"),
                replayed: json!("B"),
            }]
        );
    }

    #[tokio::test]
    async fn a_kept_decision_replays_identically_and_an_altered_record_shows_its_fields() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let (pipeline, _) = pipeline(db.clone(), Verdict::new(VerdictLabel::AiGenerated, 0.97));
            let request_id = decide(&pipeline).await;

            // Not kept yet: the text of the policy is not in policy_versions.
            let err = replay(&db, None, &request_id).await.unwrap_err();
            assert!(
                matches!(err, ReplayError::NotKept { version: 2, .. }),
                "{label}: {err}"
            );
            assert!(
                err.to_string()
                    .starts_with("the text of policy kyc.verification v2 (sha256 "),
                "{label}: {err}"
            );

            let live = pipeline.policies().snapshot();
            crate::policies::keep_versions(&db, live.all(), chrono::Utc::now())
                .await
                .unwrap();
            let replayed = replay(&db, Some("acme"), &request_id).await.unwrap();
            assert!(replayed.identical(), "{label}: {:?}", replayed.differences);
            assert_eq!(replayed.decision.action, "reject", "{label}");
            assert_eq!(replayed.row.request_id, request_id, "{label}");

            // Another tenant's request is not found.
            let err = replay(&db, Some("other"), &request_id).await.unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("no decision is recorded for {request_id}"),
                "{label}"
            );

            // A record altered after the fact no longer replays identically.
            let mut row = replayed.row.clone().into_active_model();
            row.action = ActiveValue::Set("approve".to_owned());
            row.description = ActiveValue::Set(Some("edited".to_owned()));
            row.update(db.conn()).await.unwrap();
            let replayed = replay(&db, None, &request_id).await.unwrap();
            assert!(!replayed.identical(), "{label}");
            let fields: Vec<_> = replayed
                .differences
                .iter()
                .map(|d| (d.field.as_str(), d.recorded.clone(), d.replayed.clone()))
                .collect();
            assert_eq!(
                fields[0],
                ("action", json!("approve"), json!("reject")),
                "{label}"
            );
            assert_eq!(fields[1].0, "description", "{label}");
            assert_eq!(fields[1].1, json!("edited"), "{label}");
            assert_eq!(fields.len(), 2, "{label}");

            // A record without a description is compared without one.
            let mut row = replayed.row.clone().into_active_model();
            row.action = ActiveValue::Set("reject".to_owned());
            row.description = ActiveValue::Set(None);
            row.update(db.conn()).await.unwrap();
            assert!(
                replay(&db, None, &request_id).await.unwrap().identical(),
                "{label}"
            );
            db.close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }

    #[tokio::test]
    async fn unreadable_recorded_facts_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&arbiter_db::DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        let (pipeline, _) = pipeline(db.clone(), Verdict::new(VerdictLabel::AiGenerated, 0.97));
        let request_id = decide(&pipeline).await;
        let live = pipeline.policies().snapshot();
        crate::policies::keep_versions(&db, live.all(), chrono::Utc::now())
            .await
            .unwrap();
        let row = arbiter_db::decisions::get(db.conn(), "acme", &request_id)
            .await
            .unwrap()
            .unwrap();
        let mut row = row.into_active_model();
        row.facts = ActiveValue::Set("not json".to_owned());
        row.update(db.conn()).await.unwrap();
        let err = replay(&db, None, &request_id).await.unwrap_err();
        assert!(
            matches!(err, ReplayError::Unreadable { field: "facts", .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("while reading the recorded facts: "),
            "{err}"
        );
    }
}
