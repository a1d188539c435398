//! The bookkeeping of the Reality Defender–compatible endpoints, apart from HTTP: presigned
//! upload slots (an unguessable token kept as its hash, an hour to use it, one upload), the call
//! an upload becomes, media details built from a stored result, a job or a slot, the media list
//! a page at a time, and RD feedback recorded as a review label. The shapes and the rules that
//! need no storage are `arbiter_providers::reality_defender::facade`; the server reads the HTTP
//! bodies and answers in RD's error shape.

use crate::analyze::{AnalyzeCall, ImageSource, stored_reply};
use crate::error::EngineError;
use crate::flows::{FlowRegistry, FlowsConfig};
use crate::review::{self, Resolve};
use arbiter_core::{AnalyzeOptions, ErrorCode, RequestId};
use arbiter_db::Db;
use arbiter_db::entity::rd_upload;
use arbiter_db::rd_uploads;
use arbiter_db::sea_orm::ConnectionTrait;
use arbiter_providers::reality_defender::facade::{
    self, AnalysisState, FacadeError, Media, day, reference_id, review_label, same,
};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// How long an upload URL works after it is presigned.
pub const UPLOAD_URL_TTL: Duration = Duration::hours(1);

/// The most items a list page holds.
pub const MAX_PAGE_SIZE: u64 = 100;

impl From<FacadeError> for EngineError {
    fn from(err: FacadeError) -> Self {
        Self::invalid(err.0)
    }
}

/// A presigned upload: the request it will be, and the token its URL carries.
#[derive(Debug)]
pub struct Presigned {
    /// The request the upload becomes.
    pub request_id: RequestId,
    /// 32 random bytes, hex: only its SHA-256 is stored.
    pub token: String,
}

/// The hex SHA-256 of an upload token, as it is stored.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Presigns an upload of `file_name` for the tenant's key `key_id`: a slot that takes one
/// upload within [`UPLOAD_URL_TTL`] of `now`.
pub async fn presign(
    db: &Db,
    tenant: &str,
    key_id: &str,
    file_name: String,
    now: DateTime<Utc>,
) -> Result<Presigned, EngineError> {
    let request_id = RequestId::new();
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(EngineError::internal)?;
    let token = hex::encode(bytes);
    let slot = rd_uploads::new_slot(
        request_id.to_string(),
        tenant.to_owned(),
        key_id.to_owned(),
        file_name,
        token_hash(&token),
        now + UPLOAD_URL_TTL,
        now,
    );
    let txn = db.begin_write().await?;
    rd_uploads::insert(&txn, slot).await?;
    txn.commit().await?;
    Ok(Presigned { request_id, token })
}

/// The slot an upload to `request_id` with `token` may fill at `now`: refused (403) when there
/// is none, the token is wrong or the slot has expired, and (409) when it was filled already.
pub async fn open_slot(
    conn: &impl ConnectionTrait,
    request_id: &str,
    token: Option<&str>,
    now: DateTime<Utc>,
) -> Result<rd_upload::Model, EngineError> {
    let refused = || EngineError::refused(ErrorCode::Forbidden, "this upload URL is not valid");
    let slot = rd_uploads::get(conn, request_id)
        .await?
        .ok_or_else(refused)?;
    let presented = token_hash(token.unwrap_or_default());
    if !same(presented.as_bytes(), slot.token_sha256.as_bytes()) {
        return Err(refused());
    }
    if now >= slot.expires_at {
        return Err(EngineError::refused(
            ErrorCode::Forbidden,
            "this upload URL has expired: presign again",
        ));
    }
    if slot.uploaded_at.is_some() {
        return Err(EngineError::refused(
            ErrorCode::Conflict,
            "this image was uploaded already",
        ));
    }
    Ok(slot)
}

/// The analysis an upload into `slot` becomes, with its request id: under the flow of the key
/// that presigned it (when that flow is on), which must still be live (a revocation holds at
/// once: 401).
pub async fn upload_call(
    conn: &impl ConnectionTrait,
    flows: &FlowsConfig,
    slot: &rd_upload::Model,
    media: ImageSource,
) -> Result<(RequestId, AnalyzeCall), EngineError> {
    let key = crate::keys::get(conn, &slot.key_id)
        .await?
        .filter(|key| key.revoked_at.is_none())
        .ok_or_else(|| {
            EngineError::refused(
                ErrorCode::InvalidApiKey,
                "the API key that presigned this upload is revoked",
            )
        })?;
    let flow = key
        .flow
        .filter(|flow| flows.enabled(flow))
        .map(|flow| (flow, json!({})));
    let call = AnalyzeCall {
        source: media,
        options: AnalyzeOptions::default(),
        reference_id: Some(reference_id(&slot.file_name)),
        flow,
    };
    let id = slot.request_id.parse().map_err(EngineError::internal)?;
    Ok((id, call))
}

/// Marks the slot of `request_id` filled at `now`.
pub async fn mark_uploaded(
    db: &Db,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<(), EngineError> {
    let txn = db.begin_write().await?;
    rd_uploads::mark_uploaded(&txn, request_id, now).await?;
    txn.commit().await?;
    Ok(())
}

/// One request in RD's media-detail shape: pending, final or failed. Never a 404 for an id
/// issued to the tenant.
pub async fn media_detail(
    conn: &impl ConnectionTrait,
    tenant: &str,
    request_id: &str,
) -> Result<Value, EngineError> {
    let slot = rd_uploads::get(conn, request_id)
        .await?
        .filter(|slot| slot.tenant == tenant);
    let name = |fallback: Option<&str>| {
        slot.as_ref()
            .map(|s| s.file_name.clone())
            .or_else(|| fallback.map(str::to_owned))
            .unwrap_or_else(|| request_id.to_owned())
    };
    let uploaded = |fallback: DateTime<Utc>| slot.as_ref().map_or(fallback, |s| s.created_at);
    match stored_reply(conn, tenant, request_id).await {
        Ok(reply) => {
            let result = &reply.result;
            let name = name(result.reference_id.as_deref());
            let media = Media {
                request_id,
                file_name: &name,
                uploaded: uploaded(result.processed_at),
                file_size: Some(result.image_info.file_size_bytes),
            };
            let standing = AnalysisState::Final {
                verdict: &result.verdict,
                model_results: &result.model_results,
                providers: &result.providers,
            };
            Ok(facade::media_detail(&media, &standing))
        }
        Err(err) if err.code() == ErrorCode::NotFound => {
            let job = arbiter_db::jobs::get(conn, tenant, request_id).await?;
            if job.is_none() && slot.is_none() {
                return Err(err);
            }
            let name = name(job.as_ref().and_then(|j| j.reference_id.as_deref()));
            let media = Media {
                request_id,
                file_name: &name,
                uploaded: uploaded(job.as_ref().map_or_else(Utc::now, |j| j.created_at)),
                file_size: None,
            };
            let standing = match &job {
                Some(job) if job.status == arbiter_db::jobs::FAILED => AnalysisState::Failed {
                    code: job.error_code.as_deref().unwrap_or("INTERNAL_ERROR"),
                    message: job.error_message.as_deref().unwrap_or_default(),
                },
                _ => AnalysisState::Pending,
            };
            Ok(facade::media_detail(&media, &standing))
        }
        Err(err) => Err(err),
    }
}

/// The media list's query.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    /// Items per page (default 10, at most 100).
    pub size: Option<u64>,
    /// Part of the file name.
    pub name: Option<String>,
    /// The first day, `YYYY-MM-DD` (unpadded months and days are read too).
    #[serde(rename = "startDate")]
    pub start_date: Option<String>,
    /// The last day, inclusive.
    #[serde(rename = "endDate")]
    pub end_date: Option<String>,
}

/// The tenant's uploads a page at a time (`page` from 0), newest first, as media details with
/// RD's counts; a malformed day is refused (400).
pub async fn media_page(
    conn: &impl ConnectionTrait,
    tenant: &str,
    page: u64,
    query: &PageQuery,
) -> Result<Value, EngineError> {
    let size = query.size.unwrap_or(10).clamp(1, MAX_PAGE_SIZE);
    let filter = rd_uploads::Filter {
        name: query.name.as_deref().filter(|n| !n.is_empty()),
        since: query
            .start_date
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(|d| day(d, "startDate"))
            .transpose()?,
        until: query
            .end_date
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(|d| day(d, "endDate").map(|end| end + Duration::days(1)))
            .transpose()?,
    };
    let (rows, total) = rd_uploads::page(conn, tenant, &filter, page, size).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(media_detail(conn, tenant, &row.request_id).await?);
    }
    Ok(json!({
        "totalItems": total,
        "totalPages": total.div_ceil(size),
        "currentPage": page,
        "currentPageItemsCount": items.len(),
        "mediaList": items,
    }))
}

/// RD's feedback body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Feedback {
    /// The request: one of this tenant's results (another answers 400).
    #[schema(pattern = "^req_[0-9A-HJKMNP-TV-Z]{26}$")]
    pub request_id: String,
    /// `REAL`, `SYNTHETIC`, `MANIPULATED` or `UNKNOWN`.
    #[schema(pattern = "^(REAL|SYNTHETIC|MANIPULATED|UNKNOWN)$")]
    pub label: String,
    /// `FALSE_POSITIVE`, `FALSE_NEGATIVE`, `CONFIRMATION` or `OTHER`.
    #[schema(pattern = "^(FALSE_POSITIVE|FALSE_NEGATIVE|CONFIRMATION|OTHER)$")]
    pub feedback_category: Option<String>,
    /// A comment.
    pub comment: Option<String>,
}

/// Records RD feedback (`body`, RD's JSON [`Feedback`]) from the key `key_id` as a resolved
/// review item on the request (queue `feedback`, the key as reviewer), with its
/// `review.resolved` audit entry; answers RD's feedback record. A body that is not RD's
/// feedback, an unknown label or another tenant's request is refused (400).
pub async fn feedback(
    db: &Db,
    registry: &FlowRegistry,
    tenant: &str,
    key_id: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Value, EngineError> {
    let given: Feedback = serde_json::from_slice(body)
        .map_err(|err| EngineError::invalid(format!("the body is not RD's feedback: {err}")))?;
    let label = review_label(&given.label, given.feedback_category.as_deref())?;
    let reply = stored_reply(db.conn(), tenant, &given.request_id)
        .await
        .map_err(|_| EngineError::invalid("Media result does not exist!"))?;
    let (flow, action) =
        reply
            .decision
            .as_ref()
            .map_or(("none".to_owned(), "none".to_owned()), |d| {
                (
                    d["flow"].as_str().unwrap_or("none").to_owned(),
                    d["action"].as_str().unwrap_or("none").to_owned(),
                )
            });
    let item = review::feedback_item(tenant, &reply.result, &flow, &action, now);
    let item_id = item.item_id.clone();
    let txn = db.begin_write().await?;
    arbiter_db::review::insert(&txn, [item]).await?;
    txn.commit().await?;
    let note = given
        .comment
        .as_deref()
        .map(|c| c.chars().take(1000).collect::<String>());
    review::resolve(
        db,
        registry,
        tenant,
        &item_id,
        &Resolve {
            reviewer: key_id,
            key: Some(key_id),
            label,
            note: note.as_deref(),
            action: None,
        },
        now,
    )
    .await?;
    Ok(json!({
        "id": item_id,
        "userId": key_id,
        "requestId": given.request_id,
        "institutionId": tenant,
        "category": given.feedback_category.unwrap_or_else(|| "OTHER".to_owned()),
        "label": given.label,
        "comment": given.comment,
        "createdAt": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{NewKey, Scope, create, revoke};
    use arbiter_db::DbTarget;
    use chrono::SubsecRound;

    #[tokio::test]
    async fn a_slot_takes_one_upload_with_its_token_before_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        let new = NewKey {
            tenant: "acme".into(),
            name: "sdk".into(),
            plan: "starter".into(),
            scopes: Scope::DEFAULT.to_vec(),
            allow_ips: vec![],
            flow: None,
        };
        let now = Utc::now().trunc_subsecs(3);
        let (key, _) = create(db.conn(), new, "test", now).await.unwrap();
        let key_id = key.id.to_string();
        let presigned = presign(&db, "acme", &key_id, "a photo.jpg".into(), now)
            .await
            .unwrap();
        let id = presigned.request_id.to_string();
        let token = Some(presigned.token.as_str());
        let code = |result: Result<rd_upload::Model, EngineError>| result.unwrap_err().code();
        // A wrong or missing token, and an expired slot, are refused.
        let wrong = presigned.token.replace(|c| c != '0', "0");
        assert_eq!(
            code(open_slot(db.conn(), &id, Some(&wrong), now).await),
            ErrorCode::Forbidden
        );
        assert_eq!(
            code(open_slot(db.conn(), &id, None, now).await),
            ErrorCode::Forbidden
        );
        let late = now + UPLOAD_URL_TTL;
        assert_eq!(
            code(open_slot(db.conn(), &id, token, late).await),
            ErrorCode::Forbidden
        );
        assert_eq!(
            code(open_slot(db.conn(), "req_x", token, now).await),
            ErrorCode::Forbidden
        );
        // The right token opens it, and the upload becomes a request named by the file.
        let slot = open_slot(db.conn(), &id, token, now).await.unwrap();
        let flows = FlowsConfig::default();
        let media = ImageSource::Url("https://example.com/a.jpg".into());
        let (request_id, call) = upload_call(db.conn(), &flows, &slot, media.clone())
            .await
            .unwrap();
        assert_eq!(request_id, presigned.request_id);
        assert_eq!(call.reference_id.as_deref(), Some("a_photo.jpg"));
        // Pending until analysed: never a 404 for an issued id, nor seen by another tenant.
        let detail = media_detail(db.conn(), "acme", &id).await.unwrap();
        assert_eq!(detail["overallStatus"], "ANALYZING");
        assert_eq!(
            media_detail(db.conn(), "other", &id)
                .await
                .unwrap_err()
                .code(),
            ErrorCode::NotFound
        );
        // Once filled, it takes no other upload.
        mark_uploaded(&db, &id, now).await.unwrap();
        assert_eq!(
            code(open_slot(db.conn(), &id, token, now).await),
            ErrorCode::Conflict
        );
        // A revoked key's upload is refused.
        revoke(db.conn(), &key.id, "test", now).await.unwrap();
        let err = upload_call(db.conn(), &flows, &slot, media)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidApiKey);
    }

    #[tokio::test]
    async fn a_page_refuses_a_malformed_day() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        let query = PageQuery {
            start_date: Some("2026-13-01".into()),
            ..PageQuery::default()
        };
        let err = media_page(db.conn(), "acme", 0, &query).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        assert!(err.to_string().starts_with("startDate: "), "{err}");
        let page = media_page(db.conn(), "acme", 0, &PageQuery::default())
            .await
            .unwrap();
        assert_eq!(
            (page["totalItems"].as_u64(), page["totalPages"].as_u64()),
            (Some(0), Some(0))
        );
    }
}
