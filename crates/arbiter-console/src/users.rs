//! Console users: create, list, disable, reset a password.

use crate::password;
use crate::role::{Role, UnknownRole};
use arbiter_db::entity::{console_session, console_user};
use arbiter_db::sea_orm::sea_query::Expr;
use arbiter_db::sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Why a change to the users could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Not a role.
    #[error(transparent)]
    Role(#[from] UnknownRole),
    /// A tenant or user id that is not an id.
    #[error("{field} must be an id of 1 to 64 letters, digits and . _ - : @ (found {value:?})")]
    BadId {
        /// `tenant` or `user`.
        field: &'static str,
        /// What was given.
        value: String,
    },
    /// An empty password, or one too long to be typed.
    #[error("the password is empty; give one of 1 to 1024 bytes")]
    EmptyPassword,
    /// A password over 1024 bytes.
    #[error("the password is longer than 1024 bytes")]
    LongPassword,
    /// The user exists already.
    #[error(
        "user {user:?} of tenant {tenant:?} exists already (reset its password with `arbiter users reset-password`)"
    )]
    Exists {
        /// The tenant.
        tenant: String,
        /// The user.
        user: String,
    },
    /// No such user.
    #[error("no user {user:?} of tenant {tenant:?}")]
    NotFound {
        /// The tenant.
        tenant: String,
        /// The user.
        user: String,
    },
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] password::HashError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A user as the CLI and the users page show it (never the hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserView {
    /// The tenant.
    pub tenant: String,
    /// The user id.
    pub user: String,
    /// The role.
    pub role: String,
    /// Whether the user is disabled.
    pub disabled: bool,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
}

impl From<console_user::Model> for UserView {
    fn from(row: console_user::Model) -> Self {
        Self {
            tenant: row.tenant,
            user: row.user_id,
            role: row.role,
            disabled: row.disabled,
            created_at: row.created_at,
        }
    }
}

/// Checks a tenant or user id: 1 to 64 of `A-Z a-z 0-9 . _ - : @`.
pub fn check_id(field: &'static str, value: &str) -> Result<(), UserError> {
    if value.is_empty()
        || value.len() > 64
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:@".contains(c))
    {
        return Err(UserError::BadId {
            field,
            value: value.to_owned(),
        });
    }
    Ok(())
}

fn check_password(password: &str) -> Result<(), UserError> {
    if password.is_empty() {
        return Err(UserError::EmptyPassword);
    }
    if password.len() > 1024 {
        return Err(UserError::LongPassword);
    }
    Ok(())
}

/// Hashes off the async threads: argon2id is meant to be slow.
async fn hash_blocking(password: &str) -> Result<String, UserError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|err| DbErr::Custom(format!("the hashing task failed: {err}")))?
        .map_err(UserError::from)
}

/// Creates a user.
pub async fn create(
    conn: &impl ConnectionTrait,
    tenant: &str,
    user: &str,
    role: &str,
    password: &str,
    now: DateTime<Utc>,
) -> Result<UserView, UserError> {
    check_id("tenant", tenant)?;
    check_id("user", user)?;
    let role: Role = role.parse()?;
    check_password(password)?;
    if get(conn, tenant, user).await?.is_some() {
        return Err(UserError::Exists {
            tenant: tenant.to_owned(),
            user: user.to_owned(),
        });
    }
    let hash = hash_blocking(password).await?;
    let row = console_user::ActiveModel {
        tenant: Set(tenant.to_owned()),
        user_id: Set(user.to_owned()),
        role: Set(role.as_str().to_owned()),
        password_hash: Set(hash),
        disabled: Set(false),
        created_at: Set(now),
    };
    let row = console_user::Entity::insert(row)
        .exec_with_returning(conn)
        .await?;
    Ok(row.into())
}

/// One user.
pub async fn get(
    conn: &impl ConnectionTrait,
    tenant: &str,
    user: &str,
) -> Result<Option<console_user::Model>, DbErr> {
    console_user::Entity::find_by_id((tenant.to_owned(), user.to_owned()))
        .one(conn)
        .await
}

/// The users, of one tenant or of all, by tenant and id.
pub async fn list(
    conn: &impl ConnectionTrait,
    tenant: Option<&str>,
) -> Result<Vec<UserView>, DbErr> {
    let mut query = console_user::Entity::find()
        .order_by_asc(console_user::Column::Tenant)
        .order_by_asc(console_user::Column::UserId);
    if let Some(tenant) = tenant {
        query = query.filter(console_user::Column::Tenant.eq(tenant));
    }
    Ok(query
        .all(conn)
        .await?
        .into_iter()
        .map(UserView::from)
        .collect())
}

/// Whether a tenant has any console user.
pub async fn tenant_has_users(conn: &impl ConnectionTrait, tenant: &str) -> Result<bool, DbErr> {
    Ok(console_user::Entity::find()
        .filter(console_user::Column::Tenant.eq(tenant))
        .one(conn)
        .await?
        .is_some())
}

/// Ends every session of a user.
async fn end_sessions(conn: &impl ConnectionTrait, tenant: &str, user: &str) -> Result<(), DbErr> {
    console_session::Entity::delete_many()
        .filter(console_session::Column::Tenant.eq(tenant))
        .filter(console_session::Column::UserId.eq(user))
        .exec(conn)
        .await?;
    Ok(())
}

/// Disables a user (or enables one again) and ends their sessions.
pub async fn set_disabled(
    conn: &impl ConnectionTrait,
    tenant: &str,
    user: &str,
    disabled: bool,
) -> Result<(), UserError> {
    let result = console_user::Entity::update_many()
        .col_expr(console_user::Column::Disabled, Expr::value(disabled))
        .filter(console_user::Column::Tenant.eq(tenant))
        .filter(console_user::Column::UserId.eq(user))
        .exec(conn)
        .await?;
    if result.rows_affected == 0 {
        return Err(UserError::NotFound {
            tenant: tenant.to_owned(),
            user: user.to_owned(),
        });
    }
    end_sessions(conn, tenant, user).await?;
    Ok(())
}

/// Gives a user a new password and ends their sessions.
pub async fn reset_password(
    conn: &impl ConnectionTrait,
    tenant: &str,
    user: &str,
    password: &str,
) -> Result<(), UserError> {
    check_password(password)?;
    if get(conn, tenant, user).await?.is_none() {
        return Err(UserError::NotFound {
            tenant: tenant.to_owned(),
            user: user.to_owned(),
        });
    }
    let hash = hash_blocking(password).await?;
    console_user::Entity::update_many()
        .col_expr(console_user::Column::PasswordHash, Expr::value(hash))
        .filter(console_user::Column::Tenant.eq(tenant))
        .filter(console_user::Column::UserId.eq(user))
        .exec(conn)
        .await?;
    end_sessions(conn, tenant, user).await?;
    Ok(())
}
