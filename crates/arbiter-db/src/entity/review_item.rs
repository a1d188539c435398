//! `review_items`: decisions waiting in a human-review queue, and how a reviewer resolved them.

use sea_orm::entity::prelude::*;

/// One review-queue item.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "review_items")]
pub struct Model {
    /// `rev_...`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub item_id: String,
    /// The tenant.
    pub tenant: String,
    /// The queue (`siu`, `adjusters`, `moderation`, `kyc_review`).
    pub queue: String,
    /// The flow that decided.
    pub flow: String,
    /// The case (claim, session), if the image belongs to one.
    pub case_id: Option<String>,
    /// The request under review.
    pub request_id: String,
    /// The caller's reference for the image.
    pub reference_id: Option<String>,
    /// SHA-256 of the image's bytes.
    pub image_sha256: String,
    /// The action the policy decided.
    pub action: String,
    /// The deciding rule's reason code.
    pub reason: String,
    /// `open`, `claimed` or `resolved`.
    pub status: String,
    /// The reviewer holding the item.
    pub claimed_by: Option<String>,
    /// The API key that claimed it (its id); only that key may act on the claim. `None` for a
    /// claim made before keys were recorded.
    pub claimed_key: Option<String>,
    /// When it was claimed.
    pub claimed_at: Option<DateTimeUtc>,
    /// The reviewer's label (`confirmed_fake`, ...).
    pub label: Option<String>,
    /// The reviewer's note.
    pub note: Option<String>,
    /// The action the reviewer settled on.
    pub resolved_action: Option<String>,
    /// The reviewer who resolved it.
    pub resolved_by: Option<String>,
    /// When it was resolved.
    pub resolved_at: Option<DateTimeUtc>,
    /// When it was queued.
    pub created_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
