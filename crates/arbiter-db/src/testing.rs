//! Databases for tests: a fresh SQLite file, and a fresh PostgreSQL database per test when
//! `ARBITER_TEST_POSTGRES_URL` is set.

use crate::{Db, DbError, DbTarget};
use sea_orm::{ConnectionTrait, Database};

/// The environment variable naming the PostgreSQL server tests may use.
pub const POSTGRES_ENV: &str = "ARBITER_TEST_POSTGRES_URL";

/// The environment variable that makes a missing [`POSTGRES_ENV`] a failure.
pub const REQUIRE_ENV: &str = "ARBITER_REQUIRE_POSTGRES";

/// Prefix of the databases tests create, so a CI run can drop leftovers.
pub const TEST_DB_PREFIX: &str = "arbiter_test_";

/// A PostgreSQL database created for one test, dropped by [`PostgresTestDb::drop_db`].
#[derive(Debug)]
pub struct PostgresTestDb {
    admin_url: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl PostgresTestDb {
    /// Creates a fresh database on the server named by `ARBITER_TEST_POSTGRES_URL`; `None` when
    /// the variable is not set, unless `ARBITER_REQUIRE_POSTGRES=1` (set by CI) makes that an
    /// error, so that no test passes on SQLite alone where PostgreSQL was required.
    pub async fn create() -> Result<Option<Self>, DbError> {
        let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
            if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
                return Err(DbError::Db(sea_orm::DbErr::Custom(format!(
                    "{REQUIRE_ENV}=1 but {POSTGRES_ENV} is not set"
                ))));
            }
            return Ok(None);
        };
        let name = format!(
            "{TEST_DB_PREFIX}{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let admin = Database::connect(&admin_url).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        admin.close().await?;
        let (base, _) = admin_url.rsplit_once('/').unwrap_or((&admin_url, ""));
        let url = format!("{base}/{name}");
        Ok(Some(Self {
            admin_url,
            name,
            url,
        }))
    }

    /// Connects to the database and runs the migrations.
    pub async fn connect(&self) -> Result<Db, DbError> {
        Db::connect(&DbTarget::Url(self.url.clone())).await
    }

    /// Drops the database (after every connection to it is closed).
    pub async fn drop_db(self) -> Result<(), DbError> {
        let admin = Database::connect(&self.admin_url).await?;
        admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await?;
        admin.close().await?;
        Ok(())
    }
}

/// The databases a test should run against: a SQLite file in `dir`, and PostgreSQL when
/// configured. Each comes with a label for assertion messages.
pub async fn test_targets(
    dir: &std::path::Path,
) -> Result<(Vec<(&'static str, DbTarget)>, Option<PostgresTestDb>), DbError> {
    let mut targets = vec![("sqlite", DbTarget::DataDir(dir.to_path_buf()))];
    let postgres = PostgresTestDb::create().await?;
    if let Some(pg) = &postgres {
        targets.push(("postgres", DbTarget::Url(pg.url.clone())));
    }
    Ok((targets, postgres))
}
