//! `cases`: the images a flow groups (an insurance claim, a KYC session) and the case-level
//! decision over them.

use sea_orm::entity::prelude::*;

/// One case.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cases")]
pub struct Model {
    /// The tenant.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant: String,
    /// The flow (`insurance`, `kyc`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub flow: String,
    /// The caller's id of the case (a claim id, a session id).
    #[sea_orm(primary_key, auto_increment = false)]
    pub case_id: String,
    /// The case-level facts, as a JSON object (`{"claim": {...}}`, `{"liveness": {...}}`).
    pub facts: String,
    /// Images attached so far.
    pub images: i32,
    /// The case-level action, once there is a decision.
    pub action: Option<String>,
    /// The case-level decision, as JSON.
    pub decision: Option<String>,
    /// Whether the case has every piece of evidence its flow requires.
    pub complete: bool,
    /// When the case was opened.
    pub created_at: DateTimeUtc,
    /// When it last changed.
    pub updated_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
