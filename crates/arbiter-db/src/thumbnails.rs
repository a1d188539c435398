//! Small thumbnails of analysed images (`thumbnails`), per tenant and image SHA-256, shown on
//! report cards: the original images are not stored.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// A kept thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    /// Width in pixels.
    pub width: i32,
    /// Height in pixels.
    pub height: i32,
    /// The PNG file.
    pub png: Vec<u8>,
}

fn placeholders(backend: DbBackend, sql: &str) -> String {
    match backend {
        DbBackend::Postgres => sql.to_owned(),
        _ => sql.replace('$', "?"),
    }
}

/// Keeps a tenant's thumbnail of an image, once: a thumbnail already kept for the same image
/// stays as it is.
pub async fn keep(
    conn: &impl ConnectionTrait,
    tenant: &str,
    image_sha256: &str,
    thumbnail: &Thumbnail,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    let sql = placeholders(
        backend,
        "INSERT INTO thumbnails (tenant, image_sha256, width, height, png, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant, image_sha256) DO NOTHING",
    );
    let values = [
        tenant.into(),
        image_sha256.into(),
        thumbnail.width.into(),
        thumbnail.height.into(),
        thumbnail.png.clone().into(),
        now.into(),
    ];
    conn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
        .map(drop)
}

/// A tenant's thumbnail of an image; another tenant's is not found.
pub async fn get(
    conn: &impl ConnectionTrait,
    tenant: &str,
    image_sha256: &str,
) -> Result<Option<Thumbnail>, DbErr> {
    let backend = conn.get_database_backend();
    let sql = placeholders(
        backend,
        "SELECT width, height, png FROM thumbnails WHERE tenant = $1 AND image_sha256 = $2",
    );
    let Some(row) = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [tenant.into(), image_sha256.into()],
        ))
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Thumbnail {
        width: row.try_get_by_index(0)?,
        height: row.try_get_by_index(1)?,
        png: row.try_get_by_index(2)?,
    }))
}
