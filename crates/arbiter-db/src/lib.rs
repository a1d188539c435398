//! Arbiter's storage: one database (an embedded SQLite file, or PostgreSQL) holding decisions
//! and the audit log; migrations run on connect.
#![forbid(unsafe_code)]

pub mod api_keys;
pub mod cases;
pub mod decisions;
pub mod entity;
pub mod group;
pub mod jobs;
pub mod leases;
pub mod policy_changes;
pub mod policy_versions;
pub mod rate_counters;
pub mod rd_uploads;
pub mod requests;
pub mod review;
pub mod singleton;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod thumbnails;
pub mod usage;
pub mod webhooks;

use arbiter_migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, QueryTrait, RuntimeErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use sea_orm;

/// Rows written per multi-row INSERT: well inside both databases' limits on bound values.
const ROWS_PER_INSERT: usize = 100;

/// Inserts rows, [`ROWS_PER_INSERT`] to a statement (inside the caller's transaction).
pub(crate) async fn insert_rows<A>(
    conn: &impl sea_orm::ConnectionTrait,
    rows: impl IntoIterator<Item = A>,
) -> Result<(), DbErr>
where
    A: sea_orm::ActiveModelTrait + Send,
{
    for statement in insert_statements(conn.get_database_backend(), rows) {
        conn.execute_raw(statement).await?;
    }
    Ok(())
}

/// Statements gathered to run as one transaction in one round trip ([`Db::write_at_once`]).
/// Every statement binds its values with `?`, in the order they are given (as sea-query writes
/// statements for SQLite).
#[derive(Debug, Default)]
pub struct Script {
    sql: String,
    values: Vec<sea_orm::Value>,
}

impl Script {
    /// Adds a statement.
    pub fn push(&mut self, statement: sea_orm::Statement) {
        self.sql.push_str(&statement.sql);
        self.sql.push_str(";\n");
        self.values
            .extend(statement.values.map(|values| values.0).unwrap_or_default());
    }

    /// Adds a check: the script fails (and writes nothing) unless `condition` holds when it
    /// runs. The condition is SQL binding its values with `?`.
    pub fn require(&mut self, condition: &str, values: impl IntoIterator<Item = sea_orm::Value>) {
        // `json` refuses text that is not JSON: an error that ends the script.
        let sql = format!("SELECT CASE WHEN {condition} THEN 1 ELSE json('a check failed') END");
        self.push(sea_orm::Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            values,
        ));
    }
}

/// Inserts of rows, [`ROWS_PER_INSERT`] to a statement, for the caller to run.
pub(crate) fn insert_statements<A>(
    backend: DbBackend,
    rows: impl IntoIterator<Item = A>,
) -> Vec<sea_orm::Statement>
where
    A: sea_orm::ActiveModelTrait + Send,
{
    let mut rows = rows.into_iter().peekable();
    let mut statements = Vec::new();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(ROWS_PER_INSERT).collect();
        statements.push(<A::Entity as sea_orm::EntityTrait>::insert_many(chunk).build(backend));
    }
    statements
}

/// Pages of SQLite write-ahead log after which a committing connection copies the log into the
/// database file itself (SQLite's default is 1,000). A server checkpoints in the background
/// ([`Db::checkpoint_wal`]) long before that, so a commit does not wait for the copy and its
/// fsyncs; this bounds the log where nothing does.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// KiB of page cache per SQLite connection (SQLite's default is 2,000). Each pooled connection
/// has its own; the operating system caches the file as well, so a small one keeps a server's
/// memory from growing with the data it reads.
const SQLITE_CACHE_KIB: u32 = 256;

/// The file name of the embedded database inside the data directory.
pub const SQLITE_FILE: &str = "arbiter.db";

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The URL names a database Arbiter does not support.
    #[error("unsupported database URL (expected postgres://... or sqlite://...): {0}")]
    UnsupportedUrl(String),
    /// A query or connection failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbTarget {
    /// The embedded SQLite file in a data directory, created on first use.
    DataDir(PathBuf),
    /// A database URL (`postgres://...` or `sqlite://...`).
    Url(String),
}

impl DbTarget {
    /// The URL if one is given, else the embedded file in `data_dir`.
    pub fn new(database_url: Option<String>, data_dir: &Path) -> Self {
        match database_url {
            Some(url) if !url.trim().is_empty() => DbTarget::Url(url),
            _ => DbTarget::DataDir(data_dir.to_path_buf()),
        }
    }
}

/// A handle to Arbiter's database. Cheap to clone.
///
/// On SQLite, write transactions go through a pool of one connection: writers wait their turn in
/// the pool's queue instead of sleeping in SQLite's busy handler. Reads use the main pool.
#[derive(Debug, Clone)]
pub struct Db {
    conn: DatabaseConnection,
    writer: DatabaseConnection,
}

/// Creates the data directory (0700) and the SQLite file in it (0600) when they do not exist
/// yet, whatever the umask: the database holds every tenant's results and audit log. SQLite
/// gives its `-wal` and `-shm` files the database file's permissions.
fn create_private(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(dir.join(SQLITE_FILE)) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// Puts a SQLite file in write-ahead-log mode once, before the pools open. The switch takes an
/// exclusive lock that SQLite's busy timeout does not wait for, so processes opening a new file
/// together could be refused ("database is locked"); here the refusal is retried for up to
/// [`WAL_SWITCH_WAIT`]. Once the file is in WAL mode, each connection's `journal_mode = WAL` takes
/// no lock.
async fn switch_to_wal(url: &str) -> Result<(), DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .max_connections(1)
        .min_connections(1)
        .map_sqlx_sqlite_opts(|opts| opts.busy_timeout(WAL_SWITCH_WAIT));
    let conn = Database::connect(options).await?;
    let switch = sea_orm::Statement::from_string(DbBackend::Sqlite, "PRAGMA journal_mode = WAL");
    let deadline = std::time::Instant::now() + WAL_SWITCH_WAIT;
    loop {
        let mode = match conn.query_one_raw(switch.clone()).await {
            Ok(row) => row
                .map(|row| row.try_get_by_index::<String>(0))
                .transpose()?,
            Err(err) if busy(&err) => None,
            Err(err) => return Err(err),
        };
        if mode.is_some_and(|mode| mode.eq_ignore_ascii_case("wal")) {
            break;
        }
        if std::time::Instant::now() >= deadline {
            return Err(DbErr::Custom(format!(
                "the database stayed locked for {} s while switching to WAL mode",
                WAL_SWITCH_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    conn.close().await
}

/// How long opening a SQLite file waits for the switch to WAL mode.
const WAL_SWITCH_WAIT: Duration = Duration::from_secs(30);

/// Whether SQLite refused for a lock held elsewhere (`SQLITE_BUSY` and its extended codes).
fn busy(err: &DbErr) -> bool {
    let (DbErr::Conn(RuntimeErr::SqlxError(err))
    | DbErr::Exec(RuntimeErr::SqlxError(err))
    | DbErr::Query(RuntimeErr::SqlxError(err))) = err
    else {
        return false;
    };
    err.as_database_error()
        .and_then(|err| err.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == 5)
}

impl Db {
    /// Connects (creating the SQLite file and directory if needed) and runs pending migrations.
    pub async fn connect(target: &DbTarget) -> Result<Self, DbError> {
        let url = match target {
            DbTarget::DataDir(dir) => {
                create_private(dir).map_err(|source| DbError::DataDir {
                    path: dir.clone(),
                    source,
                })?;
                format!("sqlite://{}?mode=rwc", dir.join(SQLITE_FILE).display())
            }
            DbTarget::Url(url) => url.clone(),
        };
        let sqlite = url.starts_with("sqlite:");
        if !sqlite && !url.starts_with("postgres:") && !url.starts_with("postgresql:") {
            return Err(DbError::UnsupportedUrl(url));
        }
        let options = |max_connections: Option<u32>| {
            let mut options = ConnectOptions::new(url.clone());
            options
                .sqlx_logging(false)
                .acquire_timeout(Duration::from_secs(30));
            if let Some(max) = max_connections {
                options.max_connections(max).min_connections(max);
            }
            if sqlite {
                // A connection to a local file cannot go stale: no ping before each use (on
                // SQLite a ping is a round trip to the connection's thread).
                options.test_before_acquire(false);
                options.map_sqlx_sqlite_opts(|opts| {
                    opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                        .busy_timeout(Duration::from_secs(30))
                        .foreign_keys(true)
                        .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
                        .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"))
                });
            } else {
                // A busy pool's connections are known good; one idle this long is pinged first.
                options.test_before_acquire_if_idle_for(Duration::from_secs(30));
            }
            options
        };
        // On SQLite each connection is a thread of its own: reads gain nothing from more threads
        // than cores, and each idle one is another thread to wake. A few busy readers answer
        // sooner than many idle ones.
        let readers = sqlite.then(|| {
            std::thread::available_parallelism().map_or(2, |cores| cores.get().max(2)) as u32
        });
        if sqlite {
            switch_to_wal(&url).await?;
        }
        let conn = Database::connect(options(readers)).await?;
        if sqlite {
            // Processes opening one file together migrate one at a time: the migrations run in
            // one transaction holding SQLite's write lock from its start.
            let migrating = conn
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..TransactionOptions::default()
                })
                .await?;
            Migrator::up(&migrating, None).await?;
            migrating.commit().await?;
        } else {
            // Replicas starting together on one PostgreSQL migrate one at a time: the others wait
            // here, then find nothing left to do.
            let migrating = conn.begin().await?;
            singleton::hold(&migrating, singleton::names::MIGRATIONS).await?;
            Migrator::up(&conn, None).await?;
            migrating.commit().await?;
        }
        let writer = if sqlite {
            Database::connect(options(Some(1))).await?
        } else {
            conn.clone()
        };
        Ok(Self { conn, writer })
    }

    /// The connection pool.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The connection for a write made by one statement outside a transaction: on SQLite the
    /// single writer (so it queues behind other writes instead of waiting in SQLite's busy
    /// handler), on PostgreSQL the pool.
    pub fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }

    /// Which database this is.
    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// Starts a write transaction. On SQLite it runs on the single writer connection and takes
    /// the write lock at once (`BEGIN IMMEDIATE`), so concurrent writers queue instead of failing
    /// on lock upgrade.
    pub async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        self.writer.begin_with_options(options).await
    }

    /// Runs `script` as one write transaction in one round trip to SQLite's writer connection:
    /// `BEGIN IMMEDIATE`, its statements and `COMMIT`, sent as one statement string. A statement
    /// that fails rolls the whole transaction back. SQLite only (PostgreSQL runs one statement
    /// at a time): elsewhere it is refused without touching the database.
    pub async fn write_at_once(&self, script: Script) -> Result<(), DbErr> {
        if self.backend() != DbBackend::Sqlite {
            return Err(DbErr::Custom(
                "a script is written at once on SQLite only".to_owned(),
            ));
        }
        let pool = self.writer.get_sqlite_connection_pool().clone();
        // In a task of its own: a caller that stops waiting cannot leave the connection inside
        // the transaction.
        let run = tokio::spawn(async move {
            let mut conn = pool
                .acquire()
                .await
                .map_err(|err| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(err))))?;
            let sql = format!("BEGIN IMMEDIATE;\n{}COMMIT", script.sql);
            let values = sea_query_sqlx::SqlxValues(sea_orm::Values(script.values));
            let query = sea_orm::sqlx::query_with(sea_orm::sqlx::AssertSqlSafe(sql), values);
            match query.execute(&mut *conn).await {
                Ok(_) => Ok(()),
                Err(err) => {
                    // The failed statement left the transaction open (unless it never began):
                    // end it on this same connection before it goes back to the pool.
                    let _ = sea_orm::sqlx::query("ROLLBACK").execute(&mut *conn).await;
                    Err(DbErr::Exec(RuntimeErr::SqlxError(Arc::new(err))))
                }
            }
        });
        run.await
            .map_err(|err| DbErr::Custom(format!("a script's writer task failed: {err}")))?
    }

    /// Copies SQLite's write-ahead log into the database file every `every` until `shutdown`,
    /// beside the writer, so no commit waits for the copy and its fsyncs. Nothing to do on
    /// PostgreSQL.
    pub async fn keep_wal_checkpointed(self, every: Duration, shutdown: impl Future<Output = ()>) {
        if self.backend() != DbBackend::Sqlite {
            return;
        }
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticks.tick() => {}
            }
            if let Err(err) = self.checkpoint_wal().await {
                tracing::warn!(error = %err, "copying the write-ahead log into the database failed");
            }
        }
    }

    /// Copies the SQLite write-ahead log into the database file as far as readers allow, without
    /// blocking writers or readers (`PRAGMA wal_checkpoint(PASSIVE)`); `true` when the whole log
    /// is in the file. Nothing to do on PostgreSQL.
    pub async fn checkpoint_wal(&self) -> Result<bool, DbErr> {
        if self.backend() != DbBackend::Sqlite {
            return Ok(true);
        }
        let row = self
            .conn
            .query_one_raw(sea_orm::Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA wal_checkpoint(PASSIVE)",
            ))
            .await?
            .ok_or_else(|| DbErr::Custom("wal_checkpoint answered nothing".to_owned()))?;
        let (busy, logged, copied): (i64, i64, i64) = row.try_get_many_by_index()?;
        Ok(busy == 0 && logged == copied)
    }

    /// Closes both pools.
    pub async fn close(self) -> Result<(), DbErr> {
        if self.backend() == DbBackend::Sqlite {
            self.writer.close().await?;
        }
        self.conn.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::audit_entry;
    use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, QueryOrder};

    async fn each_database(check: impl AsyncFn(&'static str, Db)) {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            check(label, db.clone()).await;
            db.clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn processes_opening_a_new_file_together_all_connect() {
        // The switch to WAL mode takes a lock SQLite's busy timeout does not wait for: opened
        // together, a new file refused some of them before `switch_to_wal` retried it.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let target = DbTarget::DataDir(dir.path().to_owned());
            let opened = futures_util::future::join_all((0..6).map(|_| Db::connect(&target))).await;
            for db in opened {
                let db = db.unwrap();
                let mode = db
                    .conn()
                    .query_one_raw(sea_orm::Statement::from_string(
                        DbBackend::Sqlite,
                        "PRAGMA journal_mode",
                    ))
                    .await
                    .unwrap()
                    .unwrap()
                    .try_get_by_index::<String>(0)
                    .unwrap();
                assert_eq!(mode, "wal");
                db.close().await.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn the_embedded_database_is_created_on_first_use_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("nested/.arbiter");
        let target = DbTarget::new(None, &data_dir);
        Db::connect(&target).await.unwrap();
        assert!(data_dir.join(SQLITE_FILE).exists());
        // Private whatever the umask: the file 0600, its directory 0700.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&data_dir.join(SQLITE_FILE)), 0o600);
            assert_eq!(mode(&data_dir), 0o700);
            let wal = data_dir.join(format!("{SQLITE_FILE}-wal"));
            assert!(wal.exists(), "WAL mode");
            assert_eq!(mode(&wal), 0o600, "SQLite gives the WAL the file's mode");
        }
        // A second start finds the schema in place.
        Db::connect(&target).await.unwrap();
    }

    #[tokio::test]
    async fn a_wal_checkpoint_copies_committed_writes_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DbTarget::DataDir(dir.path().into()))
            .await
            .unwrap();
        let txn = db.begin_write().await.unwrap();
        txn.execute_unprepared("CREATE TABLE t (x INTEGER)")
            .await
            .unwrap();
        txn.execute_unprepared("INSERT INTO t VALUES (1), (2)")
            .await
            .unwrap();
        txn.commit().await.unwrap();
        // The file alone, without the log, as a reader that ignores the log sees it.
        let file_alone = format!(
            "sqlite://{}?immutable=true",
            dir.path().join(SQLITE_FILE).display()
        );
        let in_file = async || {
            let conn = Database::connect(&file_alone).await.unwrap();
            let tables = conn
                .query_all_raw(sea_orm::Statement::from_string(
                    DbBackend::Sqlite,
                    "SELECT name FROM sqlite_master WHERE name = 't'",
                ))
                .await
                .unwrap();
            conn.close().await.unwrap();
            !tables.is_empty()
        };
        assert!(!in_file().await, "the commit itself copied the log");
        assert!(db.checkpoint_wal().await.unwrap());
        assert!(in_file().await);
    }

    #[tokio::test]
    async fn audit_entries_refuse_update_and_delete() {
        each_database(async |label, db| {
            let row = audit_entry::ActiveModel {
                tenant: Set("acme".into()),
                seq: Set(0),
                event: Set("decision.recorded".into()),
                ts: Set("2026-01-15T10:00:00.000Z".into()),
                request_id: Set(None),
                reference_id: Set(None),
                image_sha256: Set(None),
                prev_hash: Set("0".repeat(64)),
                entry_hash: Set("1".repeat(64)),
                canonical: Set("{}".into()),
            };
            audit_entry::Entity::insert(row)
                .exec_without_returning(db.conn())
                .await
                .unwrap();
            for sql in [
                "UPDATE audit_entries SET event = 'x'",
                "DELETE FROM audit_entries",
            ] {
                let err = db.conn().execute_unprepared(sql).await.unwrap_err();
                assert!(
                    err.to_string().contains("append-only"),
                    "{label}: {sql}: {err}"
                );
            }
            let count = audit_entry::Entity::find()
                .all(db.conn())
                .await
                .unwrap()
                .len();
            assert_eq!(count, 1, "{label}");
        })
        .await;
    }

    #[test]
    fn a_url_overrides_the_data_dir() {
        let dir = Path::new("/tmp/x");
        assert_eq!(DbTarget::new(None, dir), DbTarget::DataDir(dir.into()));
        assert_eq!(
            DbTarget::new(Some(" ".into()), dir),
            DbTarget::DataDir(dir.into())
        );
        let url = "postgres://postgres@127.0.0.1/test".to_owned();
        assert_eq!(DbTarget::new(Some(url.clone()), dir), DbTarget::Url(url));
    }

    #[tokio::test]
    async fn queued_images_move_to_their_own_table_and_finished_ones_are_dropped() {
        let conn = Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&conn, Some(6)).await.unwrap();
        for (id, status) in [
            ("req_1", "queued"),
            ("req_2", "complete"),
            ("req_3", "collecting"),
        ] {
            conn.execute_unprepared(&format!(
                "INSERT INTO jobs (request_id, tenant, position, source, options, status, attempts, \
                 lease_until_ms, created_at) VALUES ('{id}', 'acme', 0, '{{\"url\":\"{id}\"}}', '{{}}', \
                 '{status}', 0, 0, '2026-11-24T00:00:00Z')"
            ))
            .await
            .unwrap();
        }
        Migrator::up(&conn, None).await.unwrap();
        let images = entity::job_image::Entity::find()
            .order_by_asc(entity::job_image::Column::RequestId)
            .all(&conn)
            .await
            .unwrap();
        let ids: Vec<_> = images.iter().map(|i| i.request_id.as_str()).collect();
        assert_eq!(ids, ["req_1", "req_3"]);
        assert_eq!(images[0].source, r#"{"url":"req_1"}"#);
        let job = entity::job::Entity::find_by_id("req_1".to_owned())
            .one(&conn)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.status, "queued");
    }

    #[tokio::test]
    async fn queued_base64_images_become_bytes_on_postgres_and_stay_readable_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let postgres = testing::PostgresTestDb::create().await.unwrap();
        let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
        let mut urls = vec![("sqlite", sqlite)];
        if let Some(pg) = &postgres {
            urls.push(("postgres", pg.url.clone()));
        }
        for (label, url) in urls {
            let conn = Database::connect(&url).await.unwrap();
            Migrator::up(&conn, Some(17)).await.unwrap();
            // Plain base64 of "PNG!", and text `decode` would not take whole (a data URL).
            for (id, source) in [
                ("req_1", r#"{"base64":"UE5HIQ=="}"#),
                ("req_2", r#"{"base64":"data:image/png;base64,UE5HIQ=="}"#),
                ("req_3", r#"{"url":"https://example.com/a.png"}"#),
            ] {
                conn.execute_unprepared(&format!(
                    "INSERT INTO job_images (request_id, source) VALUES ('{id}', '{source}')"
                ))
                .await
                .unwrap();
            }
            Migrator::up(&conn, None).await.unwrap();
            let images = entity::job_image::Entity::find()
                .order_by_asc(entity::job_image::Column::RequestId)
                .all(&conn)
                .await
                .unwrap();
            let got: Vec<_> = images
                .iter()
                .map(|i| (i.source.as_str(), i.image.as_deref()))
                .collect();
            if label == "postgres" {
                assert_eq!(got[0], (r#""stored""#, Some(&b"PNG!"[..])), "{label}");
            } else {
                assert_eq!(got[0], (r#"{"base64":"UE5HIQ=="}"#, None), "{label}");
            }
            assert_eq!(
                got[1],
                (r#"{"base64":"data:image/png;base64,UE5HIQ=="}"#, None),
                "{label}"
            );
            assert_eq!(
                got[2],
                (r#"{"url":"https://example.com/a.png"}"#, None),
                "{label}"
            );
            conn.close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
