//! `case_images`: which request (image and decision) belongs to which case, in arrival order.

use sea_orm::entity::prelude::*;

/// One image of a case.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "case_images")]
pub struct Model {
    /// The request that analysed and decided the image.
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    /// The tenant.
    pub tenant: String,
    /// The flow.
    pub flow: String,
    /// The case.
    pub case_id: String,
    /// The image's number in the case, from 1.
    pub n: i32,
    /// The image's role (`damage`, `selfie`, ...), if given.
    pub role: Option<String>,
    /// The image's own domain facts, as a JSON object (`{"photo": {"role": "damage"}}`).
    pub facts: String,
    /// When it was attached.
    pub created_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
