//! `decisions`: one row per policy decision, with the facts it saw (for backtests).

use sea_orm::entity::prelude::*;

/// A stored decision.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "decisions")]
pub struct Model {
    /// The request that led to the decision.
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// The caller's reference for the image.
    pub reference_id: Option<String>,
    /// SHA-256 of the analysed image's exact bytes.
    pub image_sha256: String,
    /// The flow (`insurance`, `ugc`, `kyc`).
    pub flow: String,
    /// The detector that analysed the image.
    pub detector: String,
    /// The verdict's label.
    pub verdict_label: String,
    /// The verdict's confidence.
    pub confidence: f64,
    /// The verdict's risk level.
    pub risk_level: String,
    /// The action decided.
    pub action: String,
    /// The deciding rule's reason code.
    pub reason: String,
    /// Fired rule ids, as a JSON array.
    pub fired: String,
    /// The deciding rule's description, rendered with the facts; `None` when the rule has
    /// none, and in rows recorded before descriptions were stored.
    pub description: Option<String>,
    /// The deciding policy's id.
    pub policy_id: String,
    /// The deciding policy's version.
    pub policy_version: i32,
    /// SHA-256 of the deciding policy's file.
    pub policy_sha256: String,
    /// The facts the policy saw, as JSON.
    pub facts: String,
    /// The full analysis, as JSON.
    pub analysis: String,
    /// When the decision was recorded.
    pub created_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
