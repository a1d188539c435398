//! Signing in and out, and the session behind each console request.
//!
//! A session token is 32 random bytes in the person's cookie; the database keeps its SHA-256,
//! the user, the CSRF token of the session's forms and when it expires. Failed sign-ins are
//! rows, counted per tenant and user over a window, so the throttle holds across replicas.

use crate::pages::cases::CaseKind;
use crate::role::Role;
use crate::{password, token, users};
use arbiter_audit::Event;
use arbiter_db::Db;
use arbiter_db::entity::{console_session, console_sign_in_failure, console_user};
use arbiter_db::sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
};
use chrono::{DateTime, Duration, Utc};
use std::sync::OnceLock;

/// The throttle and the session lifetime, from `console:` in the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    /// How long a session lasts.
    pub session_ttl: Duration,
    /// Failed sign-ins of one user within `window` after which sign-in is refused.
    pub max_failures: u64,
    /// The window failures are counted over.
    pub window: Duration,
}

/// A signed-in person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The tenant they work for.
    pub tenant: String,
    /// Their user id.
    pub user: String,
    /// Their role.
    pub role: Role,
    /// The CSRF token their forms carry.
    pub csrf: String,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
    /// The kinds of case this build keeps, each a list in the navigation: the server fills
    /// them from the flow registry; a session read from the database has none.
    pub cases: Vec<CaseKind>,
}

/// A session just begun: the token for the cookie, and the session.
#[derive(Clone)]
pub struct NewSession {
    /// The token (the cookie's value; never stored).
    pub token: String,
    /// The session.
    pub session: Session,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("token", &"[REDACTED]")
            .field("session", &self.session)
            .finish()
    }
}

/// Why a sign-in was refused. The person is told only "wrong tenant, user or password" or
/// "too many attempts"; the audit entry says which.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Wrong tenant, user or password, or a disabled user.
    #[error("wrong tenant, user or password")]
    Refused,
    /// Too many failures in the window.
    #[error("too many failed sign-ins; try again in a few minutes")]
    Throttled,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A hash to verify against when the user does not exist, so that a wrong user id takes as
/// long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| password::hash("decoy password for unknown users").unwrap_or_default())
}

async fn verify_blocking(stored: Option<String>, password: String) -> Result<bool, DbErr> {
    tokio::task::spawn_blocking(move || match stored {
        Some(stored) => password::verify(&stored, &password),
        None => {
            password::verify(decoy_hash(), &password);
            false
        }
    })
    .await
    .map_err(|err| DbErr::Custom(format!("the password check failed: {err}")))
}

/// Failed sign-ins of a user since `since`.
pub async fn failures_since(
    conn: &impl ConnectionTrait,
    tenant: &str,
    user: &str,
    since: DateTime<Utc>,
) -> Result<u64, DbErr> {
    console_sign_in_failure::Entity::find()
        .filter(console_sign_in_failure::Column::Tenant.eq(tenant))
        .filter(console_sign_in_failure::Column::UserId.eq(user))
        .filter(console_sign_in_failure::Column::At.gt(since))
        .count(conn)
        .await
}

/// Signs a person in: checks the throttle, the user and the password; on success stores a new
/// session and its `console.signed_in` entry, on failure a failure row and (for a tenant that
/// has console users) its `console.sign_in_failed` entry.
pub async fn sign_in(
    db: &Db,
    throttle: &Throttle,
    tenant: &str,
    user: &str,
    password: &str,
    now: DateTime<Utc>,
) -> Result<NewSession, SignInError> {
    // Ids that could not exist are refused without touching the tables.
    if users::check_id("tenant", tenant).is_err() || users::check_id("user", user).is_err() {
        verify_blocking(None, password.to_owned()).await?;
        return Err(SignInError::Refused);
    }
    let failures = failures_since(db.conn(), tenant, user, now - throttle.window).await?;
    if failures >= throttle.max_failures {
        fail(db, tenant, user, "throttled", now).await?;
        return Err(SignInError::Throttled);
    }
    let row = users::get(db.conn(), tenant, user).await?;
    let stored = row.as_ref().map(|r| r.password_hash.clone());
    let matches = verify_blocking(stored, password.to_owned()).await?;
    let row = match row {
        None => {
            fail(db, tenant, user, "unknown_user", now).await?;
            return Err(SignInError::Refused);
        }
        Some(_) if !matches => {
            fail(db, tenant, user, "wrong_password", now).await?;
            return Err(SignInError::Refused);
        }
        Some(row) if row.disabled => {
            fail(db, tenant, user, "disabled", now).await?;
            return Err(SignInError::Refused);
        }
        Some(row) => row,
    };
    let role: Role = row
        .role
        .parse()
        .map_err(|err: crate::role::UnknownRole| DbErr::Custom(err.to_string()))?;
    open(db, throttle, tenant, user, role, None, now).await
}

/// Stores a new session and its `console.signed_in` entry (with `method` when not a password).
async fn open(
    db: &Db,
    throttle: &Throttle,
    tenant: &str,
    user: &str,
    role: Role,
    method: Option<&str>,
    now: DateTime<Utc>,
) -> Result<NewSession, SignInError> {
    let new = NewSession {
        token: token::new(),
        session: Session {
            tenant: tenant.to_owned(),
            user: user.to_owned(),
            role,
            csrf: token::new(),
            expires_at: now + throttle.session_ttl,
            cases: Vec::new(),
        },
    };
    let txn = db.begin_write().await?;
    if let Some(method) = method {
        // A person who signs in through the identity provider is a console user with the role
        // the provider's claims map to (kept up to date at each sign-in) and no password.
        match users::get(&txn, tenant, user).await? {
            Some(row) if row.disabled => {
                txn.rollback().await?;
                sso_failed(db, tenant, user, "disabled", now).await?;
                return Err(SignInError::Refused);
            }
            Some(row) => {
                if row.role != role.as_str() {
                    let mut row: console_user::ActiveModel = row.into();
                    row.role = Set(role.as_str().to_owned());
                    console_user::Entity::update(row).exec(&txn).await?;
                }
            }
            None => {
                console_user::Entity::insert(console_user::ActiveModel {
                    tenant: Set(tenant.to_owned()),
                    user_id: Set(user.to_owned()),
                    role: Set(role.as_str().to_owned()),
                    // Not a PHC string: no password ever matches it.
                    password_hash: Set(format!("!{method}")),
                    disabled: Set(false),
                    created_at: Set(now),
                })
                .exec(&txn)
                .await?;
            }
        }
    }
    console_session::Entity::insert(console_session::ActiveModel {
        token_sha256: Set(token::sha256(&new.token)),
        tenant: Set(tenant.to_owned()),
        user_id: Set(user.to_owned()),
        csrf_token: Set(new.session.csrf.clone()),
        created_at: Set(now),
        expires_at: Set(new.session.expires_at),
    })
    .exec(&txn)
    .await?;
    // Sessions that expired are cleared as new ones begin.
    console_session::Entity::delete_many()
        .filter(console_session::Column::ExpiresAt.lte(now))
        .exec(&txn)
        .await?;
    let event = Event::ConsoleSignedIn {
        actor: user.to_owned(),
        role: role.as_str().to_owned(),
        method: method.map(str::to_owned),
    };
    audit(&txn, tenant, now, event).await?;
    txn.commit().await?;
    tracing::info!(
        tenant,
        user,
        role = role.as_str(),
        method = method.unwrap_or("password"),
        "console sign-in"
    );
    Ok(new)
}

/// Signs in a person an identity provider vouched for (`method`, e.g. `oidc`) with the role
/// their claims map to: creates or updates their console user (no password), refuses a
/// disabled one, and opens a session as a password sign-in does.
pub async fn sign_in_external(
    db: &Db,
    throttle: &Throttle,
    tenant: &str,
    user: &str,
    role: Role,
    method: &str,
    now: DateTime<Utc>,
) -> Result<NewSession, SignInError> {
    if users::check_id("tenant", tenant).is_err() || users::check_id("user", user).is_err() {
        sso_failed(db, tenant, user, "bad_user_id", now).await?;
        return Err(SignInError::Refused);
    }
    open(db, throttle, tenant, user, role, Some(method), now).await
}

/// Records a refused single sign-on: a `console.sign_in_failed` entry when the tenant has
/// console users (no throttle row: there was no password to guess).
pub async fn sso_failed(
    db: &Db,
    tenant: &str,
    actor: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let txn = db.begin_write().await?;
    if users::check_id("tenant", tenant).is_ok() && users::tenant_has_users(&txn, tenant).await? {
        let event = Event::ConsoleSignInFailed {
            actor: actor.to_owned(),
            reason: reason.to_owned(),
        };
        audit(&txn, tenant, now, event).await?;
    }
    txn.commit().await?;
    tracing::warn!(tenant, actor, reason, "console single sign-on refused");
    Ok(())
}

async fn audit(
    conn: &impl ConnectionTrait,
    tenant: &str,
    now: DateTime<Utc>,
    event: Event,
) -> Result<(), DbErr> {
    arbiter_audit::append(conn, tenant, now, event)
        .await
        .map(drop)
        .map_err(|err| DbErr::Custom(format!("cannot append to the audit log: {err}")))
}

/// Records a refused sign-in: a failure row, and an audit entry when the tenant has console
/// users (a form cannot start audit chains for tenants that do not exist).
async fn fail(
    db: &Db,
    tenant: &str,
    user: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let txn = db.begin_write().await?;
    console_sign_in_failure::Entity::insert(console_sign_in_failure::ActiveModel {
        id: NotSet,
        tenant: Set(tenant.to_owned()),
        user_id: Set(user.to_owned()),
        at: Set(now),
    })
    .exec(&txn)
    .await?;
    if users::tenant_has_users(&txn, tenant).await? {
        let event = Event::ConsoleSignInFailed {
            actor: user.to_owned(),
            reason: reason.to_owned(),
        };
        audit(&txn, tenant, now, event).await?;
    }
    txn.commit().await?;
    tracing::warn!(tenant, user, reason, "console sign-in refused");
    Ok(())
}

/// The session a cookie's token names: `None` when there is none, it expired, or its user is
/// disabled or gone.
pub async fn lookup(
    conn: &impl ConnectionTrait,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Session>, DbErr> {
    let Some(row) = console_session::Entity::find_by_id(token::sha256(token))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    if row.expires_at <= now {
        return Ok(None);
    }
    let Some(user) = console_user::Entity::find_by_id((row.tenant.clone(), row.user_id.clone()))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    if user.disabled {
        return Ok(None);
    }
    let Ok(role) = user.role.parse::<Role>() else {
        return Ok(None);
    };
    Ok(Some(Session {
        tenant: row.tenant,
        user: row.user_id,
        role,
        csrf: row.csrf_token,
        expires_at: row.expires_at,
        cases: Vec::new(),
    }))
}

/// Ends a session and records `console.signed_out`; nothing happens for an unknown token.
pub async fn sign_out(db: &Db, token: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    let txn = db.begin_write().await?;
    let Some(row) = console_session::Entity::find_by_id(token::sha256(token))
        .one(&txn)
        .await?
    else {
        txn.rollback().await?;
        return Ok(());
    };
    console_session::Entity::delete_by_id(row.token_sha256.clone())
        .exec(&txn)
        .await?;
    let event = Event::ConsoleSignedOut {
        actor: row.user_id.clone(),
    };
    audit(&txn, &row.tenant, now, event).await?;
    txn.commit().await?;
    tracing::info!(tenant = row.tenant, user = row.user_id, "console sign-out");
    Ok(())
}
