//! Queries, bodies and answers of `/v1/review/items`.

use serde::Deserialize;

/// Query parameters of `GET /v1/review/items`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ItemsQuery {
    /// Only this queue (`siu`, `adjusters`, `moderation`, `kyc_review`).
    pub queue: Option<String>,
    /// Only this status: `open`, `claimed` or `resolved`.
    #[param(pattern = "^(open|claimed|resolved)$")]
    pub status: Option<String>,
    /// Only items of this request.
    pub request_id: Option<String>,
    /// The cursor: `next_cursor` of the previous page.
    pub after: Option<String>,
    /// Items per page, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
}

/// Who claims an item.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The reviewer's id (never a name: it goes into the audit log): 1 to 64 letters, digits and
    /// `. _ - : @`. Default: the API key's id.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._\\-:@]{1,64}$")]
    pub reviewer: Option<String>,
}

/// A reviewer's resolution.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// `confirmed_fake`, `confirmed_authentic`, `false_positive` or `unclear`.
    pub label: String,
    /// Why, in the reviewer's words (at most 4,000 characters; kept with the item, not in the
    /// audit log).
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub note: Option<String>,
    /// The flow action settled on: one of the actions of the item's flow (a rule the document
    /// cannot state, as it depends on the item). Default: the policy's action for a fake, the
    /// flow's mildest action (`proceed`, `publish`, `approve`) for an authentic image.
    #[serde(default)]
    pub action: Option<String>,
    /// The reviewer's id: 1 to 64 letters, digits and `. _ - : @`. Default: the API key's id.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._\\-:@]{1,64}$")]
    pub reviewer: Option<String>,
}
