//! adbudget's persistence: the diesel schema, the connection pool for both backends, the
//! repositories (`repo`) and the scheduled jobs' handlers (`jobs`). What to decide lives in
//! `adbudget-core`; this crate reads and writes what the decisions need.
//!
//! `DbConnection` is a diesel `MultiConnection` over PostgreSQL and SQLite: common queries are
//! written once against it. The few statements that diesel's multi-backend cannot express (upserts,
//! batch inserts, row locks) go through [`per_backend!`], which compiles the same code once for each
//! concrete connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::{DomainError, DomainResult};

pub mod error;
pub mod jobs;
pub mod repo;
pub mod schema;

pub use adbudget_core::database_url::{DatabaseUrl, redact};

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// The connection pool, and whether the database has been refusing connections lately.
#[derive(Clone)]
pub struct DbPool {
    pool: Pool<DbManager>,
    last_failure_ms: Arc<AtomicI64>,
    sqlite: bool,
    /// Held by every clone: the SQLite checkpointer stops when the last one is dropped.
    _alive: Arc<()>,
}

impl std::ops::Deref for DbPool {
    type Target = Pool<DbManager>;
    fn deref(&self) -> &Pool<DbManager> {
        &self.pool
    }
}

impl DbPool {
    /// Whether the pool's database is SQLite.
    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// Whether opening a connection failed in the last 10 seconds and none succeeded since (r2d2
    /// retries in the background while anyone waits, so an outage keeps this fresh).
    pub fn failing(&self) -> bool {
        let at = self.last_failure_ms.load(Ordering::Relaxed);
        at != 0 && chrono::Utc::now().timestamp_millis() - at < 10_000
    }
}
pub type PooledConn = PooledConnection<DbManager>;

/// Runs `$body` with `$c` bound to the concrete connection inside `$conn`, compiled once per backend.
#[macro_export]
macro_rules! per_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::DbConnection::Postgresql($c) => $body,
            $crate::DbConnection::Sqlite($c) => $body,
        }
    };
}

/// A hash of the migrations this build embeds (both dialects' files; see `build.rs`).
pub const MIGRATIONS_FINGERPRINT: &str = env!("ADBUDGET_MIGRATIONS_FINGERPRINT");

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Opens connections of the backend the URL names. SQLite connections get their pragmas here, on
/// every new connection: a PRAGMA only affects the connection that runs it.
#[derive(Debug)]
pub struct DbManager {
    url: DatabaseUrl,
    /// SQLite: leave WAL checkpoints to the pool's checkpointer thread (see [`connect`]).
    background_checkpoints: bool,
    /// When the last attempt to open a connection failed (milliseconds since the Unix epoch), 0
    /// after one succeeded: while the database is down, callers give up at once instead of
    /// waiting out the pool's timeout. Shared with the [`DbPool`].
    last_failure_ms: Arc<AtomicI64>,
}

impl DbManager {
    pub fn new(url: DatabaseUrl) -> Self {
        DbManager {
            url,
            background_checkpoints: false,
            last_failure_ms: Arc::default(),
        }
    }

    fn note(&self, failed: bool) {
        let at = if failed {
            chrono::Utc::now().timestamp_millis()
        } else {
            0
        };
        self.last_failure_ms.store(at, Ordering::Relaxed);
    }
}

impl ManageConnection for DbManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        let connected = self.open();
        self.note(connected.is_err());
        connected
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

impl DbManager {
    fn open(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => diesel::PgConnection::establish(url)
                .map(DbConnection::Postgresql)
                .map_err(diesel::r2d2::Error::ConnectionError),
            DatabaseUrl::Sqlite(path) => {
                let mut c = diesel::SqliteConnection::establish(path)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // WAL lets readers run beside the writer; busy_timeout makes writers queue instead
                // of failing with "database is locked"; foreign keys are off by default in SQLite;
                // temp_store keeps statement journals in memory (a multi-row insert's journal
                // otherwise spills to a temporary file, opened and closed per transaction).
                // page_size applies to a database this connection creates (an existing one keeps
                // its size): every commit writes each page it dirtied to the WAL, and a spend
                // batch dirties about a page an event in the random-keyed indexes, so 1 KiB pages
                // write a quarter of the bytes 4 KiB pages do (faster ingestion: BENCHMARKS.md).
                c.batch_execute(
                    "PRAGMA page_size = 1024; \
                     PRAGMA busy_timeout = 15000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                     PRAGMA temp_store = MEMORY;",
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
                if self.background_checkpoints {
                    c.batch_execute("PRAGMA wal_autocheckpoint = 0;")
                        .map_err(diesel::r2d2::Error::QueryError)?;
                }
                Ok(DbConnection::Sqlite(c))
            }
        }
    }
}

/// A pool over `url`. Fails fast if the database cannot be reached.
///
/// On SQLite the pool's connections do not checkpoint the WAL themselves: by default the commit
/// that crosses 1,000 WAL pages copies them into the database file and syncs it, inside the
/// committing thread, which stalls the single spend writer under load (BENCHMARKS.md). A thread of the
/// pool does it instead, every [`CHECKPOINT_EVERY`], beside the writers (a PASSIVE checkpoint
/// waits for no one).
pub fn connect(url: &str, max_size: u32) -> anyhow::Result<DbPool> {
    let parsed = DatabaseUrl::parse(url).map_err(|e| anyhow::anyhow!("DATABASE_URL {e}"))?;
    let sqlite = matches!(parsed, DatabaseUrl::Sqlite(_));
    let mut manager = DbManager::new(parsed.clone());
    manager.background_checkpoints = sqlite;
    let last_failure_ms = manager.last_failure_ms.clone();
    let pool = Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(CHECKOUT_TIMEOUT)
        .build(manager)
        .with_context(|| format!("failed to connect to the database at {}", redact(url)))?;
    let alive = Arc::new(());
    if sqlite {
        let alive = Arc::downgrade(&alive);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_while(&DbManager::new(parsed), &alive))
            .context("failed to start the SQLite checkpointer")?;
    }
    Ok(DbPool {
        pool,
        last_failure_ms,
        sqlite,
        _alive: alive,
    })
}

/// How often the SQLite checkpointer copies the WAL into the database file.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Checkpoints the SQLite WAL every [`CHECKPOINT_EVERY`] while the pool is alive. A failure is
/// logged once until a checkpoint succeeds again (meanwhile the WAL grows; nothing is lost).
fn checkpoint_while(manager: &DbManager, alive: &std::sync::Weak<()>) {
    let mut conn = None;
    let mut failing = false;
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        if alive.strong_count() == 0 {
            return;
        }
        let done = match &mut conn {
            Some(DbConnection::Sqlite(c)) => c
                .batch_execute("PRAGMA wal_checkpoint(PASSIVE);")
                .map_err(|e| e.to_string()),
            _ => manager
                .open()
                .map(|c| conn = Some(c))
                .map_err(|e| e.to_string()),
        };
        match done {
            Ok(()) => failing = false,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "SQLite WAL checkpoint failed; retrying every 200 ms");
                }
                failing = true;
                conn = None;
            }
        }
    }
}

/// One connection, without a pool, for short-lived commands. A pool keeps a background thread that
/// may be opening a connection when `main` returns, and libpq's exit handlers racing that thread
/// crash the process (seen as SIGSEGV at exit of CLI commands on PostgreSQL).
pub fn connect_one(url: &str) -> anyhow::Result<DbConnection> {
    let parsed = DatabaseUrl::parse(url).map_err(|e| anyhow::anyhow!("DATABASE_URL {e}"))?;
    DbManager::new(parsed)
        .connect()
        .with_context(|| format!("failed to connect to the database at {}", redact(url)))
}

/// Applies pending migrations; returns how many ran.
pub fn migrate(conn: &mut DbConnection) -> anyhow::Result<usize> {
    let applied = match conn {
        DbConnection::Postgresql(c) => c.run_pending_migrations(PG_MIGRATIONS).map(|v| v.len()),
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
    };
    applied.map_err(|e| anyhow::anyhow!("failed to apply migrations: {e}"))
}

/// Applies pending migrations one at a time up to and including the one whose version starts
/// with `version` (e.g. `"2026-11-30-000005"`), and no further: tests of a migration's backfill
/// write rows as the schema before it had them. Returns how many ran.
pub fn migrate_through(conn: &mut DbConnection, version: &str) -> anyhow::Result<usize> {
    fn step<C: MigrationHarness<B>, B: diesel::backend::Backend>(
        c: &mut C,
        source: EmbeddedMigrations,
        version: &str,
    ) -> anyhow::Result<usize> {
        let pending = c
            .pending_migrations(source)
            .map_err(|e| anyhow::anyhow!("pending migrations: {e}"))?;
        for (ran, next) in pending.iter().enumerate() {
            let name = next.name().to_string();
            c.run_migration(next.as_ref())
                .map_err(|e| anyhow::anyhow!("migration {name}: {e}"))?;
            if name.starts_with(version) {
                return Ok(ran + 1);
            }
        }
        anyhow::bail!("no migration {version} among the pending ones")
    }
    match conn {
        DbConnection::Postgresql(c) => step(c, PG_MIGRATIONS, version),
        DbConnection::Sqlite(c) => step(c, SQLITE_MIGRATIONS, version),
    }
}

/// Runs `f` in a transaction that takes the write lock up front.
///
/// On SQLite a deferred transaction that reads before it writes can fail with SQLITE_BUSY
/// instead of waiting, so write transactions begin IMMEDIATE there. On PostgreSQL this is a plain
/// READ COMMITTED transaction; row locks taken inside order concurrent writers.
pub fn write_transaction<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        }
        DbConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    match f(conn) {
        Ok(value) => {
            per_backend!(conn, c => AnsiTransactionManager::commit_transaction(c))?;
            Ok(value)
        }
        Err(e) => {
            // The error that made us roll back is the one worth reporting.
            let _ = per_backend!(conn, c => AnsiTransactionManager::rollback_transaction(c));
            Err(e)
        }
    }
}

/// How long a checkout waits for a connection when the database was reachable last time.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long it waits while the database is failing: an outage is answered with 503 at once
/// (r2d2 keeps trying to reconnect in the background, and the first success ends this).
pub const CHECKOUT_TIMEOUT_WHILE_FAILING: Duration = Duration::from_millis(250);

/// Checks out a connection, mapping an exhausted or unreachable pool to `Unavailable`. A busy
/// pool is waited for up to [`CHECKOUT_TIMEOUT`]; a database that refuses connections is given
/// up on within [`CHECKOUT_TIMEOUT_WHILE_FAILING`] of the pool noticing.
pub fn get(pool: &DbPool) -> DomainResult<PooledConn> {
    let deadline = std::time::Instant::now() + CHECKOUT_TIMEOUT;
    loop {
        match pool.get_timeout(CHECKOUT_TIMEOUT_WHILE_FAILING) {
            Ok(conn) => return Ok(conn),
            Err(e) if pool.failing() || std::time::Instant::now() >= deadline => {
                return Err(e.into());
            }
            Err(_) => {}
        }
    }
}

/// `SELECT 1`, for readiness probes.
pub fn ping(pool: &DbPool) -> DomainResult<()> {
    let mut conn = get(pool)?;
    conn.ping().map_err(|e| DomainError::Unavailable(e.into()))
}
