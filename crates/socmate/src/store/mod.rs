//! The database: SQLite for one process, PostgreSQL for several replicas.
//!
//! Both backends run the same SQL text (PostgreSQL-style `$n` placeholders, which sqlx's SQLite
//! driver binds by number too) through [`with_db!`], which expands the body once per backend so
//! each capability's store code is written once. Concurrency rules live in the schema (partial
//! unique indexes) and in transactions; SQLite write transactions start `IMMEDIATE` so a
//! read-then-write never fails to upgrade its lock under contention.

mod dynamic;

pub(crate) use dynamic::dyn_query;
pub use dynamic::{Arg, DynSql};

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub const SQLITE_FILE_NAME: &str = "socmate.db";
/// How long a request waits for a connection before the API answers 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of whichever backend is in use.
macro_rules! with_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_db;

/// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite, a plain `BEGIN` on PostgreSQL
/// (whose row locks and unique indexes serialise the writers that matter).
macro_rules! begin_write {
    (sqlite: $pool:expr) => {
        $pool.begin_with("BEGIN IMMEDIATE")
    };
    (postgres: $pool:expr) => {
        $pool.begin()
    };
}

/// Like [`with_db!`], but hands the body a write transaction (`$tx`) and commits it when the body
/// returns `Ok`. The body must evaluate to `Result<T, E>` with `E: From<sqlx::Error>`.
///
/// With `lock = KEY`, PostgreSQL transactions first take the transaction-scoped advisory lock
/// `KEY`, serialising every writer of that resource across replicas (SQLite's `BEGIN IMMEDIATE`
/// already serialises all writers). Without it, racing writers that touch the same rows and
/// unique-index entries in different orders can deadlock.
macro_rules! in_write_tx {
    ($db:expr, |$tx:ident| $body:expr) => {
        $crate::store::in_write_tx!($db, lock = None::<i64>, |$tx| $body)
    };
    ($db:expr, lock = $lock:expr, |$tx:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite(pool) => {
                let mut $tx = $crate::store::begin_write!(sqlite: pool).await?;
                let out = $body;
                if out.is_ok() {
                    $tx.commit().await?;
                }
                out
            }
            $crate::store::Db::Postgres(pool) => {
                let mut $tx = $crate::store::begin_write!(postgres: pool).await?;
                if let Some(key) = Option::<i64>::from($lock) {
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(key)
                        .execute(&mut *$tx)
                        .await?;
                }
                let out = $body;
                if out.is_ok() {
                    $tx.commit().await?;
                }
                out
            }
        }
    };
}
pub(crate) use {begin_write, in_write_tx};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("a uniqueness rule was violated")]
    UniqueViolation,
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::UniqueViolation,
            // PostgreSQL SQLSTATE classes 08 (connection exception), 53 (insufficient
            // resources) and 57 (operator intervention, e.g. the server shutting down) mean
            // "the database is unavailable right now", not a bug.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08") || c.starts_with("53") || c.starts_with("57")
                }) =>
            {
                Self::Unavailable(e)
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e),
            _ => Self::Other(e),
        }
    }
}

/// Deletes the rows of `table` whose `column` lies more than `retention` in the past (retention
/// pruning); both names are fixed in the code, never input. Returns how many went.
pub async fn delete_older_than(
    db: &Db,
    table: &'static str,
    column: &'static str,
    retention: Duration,
) -> Result<u64, StoreError> {
    let retention = chrono::TimeDelta::from_std(retention).unwrap_or(chrono::TimeDelta::MAX);
    let Some(cutoff) = chrono::Utc::now().checked_sub_signed(retention) else {
        return Ok(0);
    };
    let sql = format!("DELETE FROM {table} WHERE {column} < $1");
    Ok(with_db!(db, |pool| {
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(cutoff)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}

/// Database location, with the password of a PostgreSQL URL kept out of `Debug`.
pub enum DatabaseLocation<'a> {
    SqliteIn(&'a Path),
    Url(&'a SecretString),
}

impl Db {
    pub async fn connect(location: DatabaseLocation<'_>) -> Result<Self, StoreError> {
        match location {
            DatabaseLocation::SqliteIn(dir) => {
                let file = dir.join(SQLITE_FILE_NAME);
                let private = |result: std::io::Result<()>| {
                    result.map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))
                };
                // Created 0600 before SQLite opens it, so its WAL and SHM files are 0600 too.
                private(crate::private_files::create_empty(&file))?;
                for suffix in ["-wal", "-shm"] {
                    let mut side = file.clone().into_os_string();
                    side.push(suffix);
                    private(crate::private_files::restrict(Path::new(&side)))?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(&file)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await?;
                Ok(Self::Sqlite(pool))
            }
            DatabaseLocation::Url(url) => {
                let options = PgConnectOptions::from_str(url.expose_secret())?;
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await?;
                Ok(Self::Postgres(pool))
            }
        }
    }

    /// Applies pending migrations. Safe when several replicas start at once: sqlx takes an
    /// advisory lock on PostgreSQL, and SQLite serialises writers.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Cheap liveness probe for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_db!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        with_db!(self, |pool| pool.close().await)
    }
}
