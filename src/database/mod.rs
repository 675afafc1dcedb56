//! [`Database`]: the handle that owns the read and write pools of one SQLite file and runs
//! transactions on them.
//!
//! - `open.rs`: the open sequence: data directory (0700) -> database file created 0600 before
//!   SQLite sees it (SQLite gives `-wal`/`-shm` the mode of the database file) -> the path
//!   resolved once -> one connection sets `busy_timeout`, then `journal_mode=WAL` once and
//!   verifies it -> embedded migrations inside `BEGIN IMMEDIATE` (so concurrent processes
//!   opening one file do not race).
//! - `pool.rs`: the write pool, then the read pool, each connection set up by
//!   `connection.rs` (its role's PRAGMAs and litedal's per-connection state).
//! - `affinity.rs`: thread-affine read connections (a thread keeps its read connection
//!   between reads, never at another thread's expense).
//! - `transaction.rs`: immediate write transactions, the write gate, lock polling, savepoints,
//!   and what happens when SQLite rolls a transaction back on its own.
//! - `raw.rs`: the connection's `sqlite3*` handle; `sqlite_mutex.rs`: SQLite's mutexes on
//!   parking_lot. With `upkeep/file_locks.rs`, the only `unsafe` code of the crate.

mod affinity;
mod clock;
mod connection;
mod gate;
mod observer;
mod open;
mod pool;
mod raw;
mod sqlite_mutex;
mod transaction;

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(feature = "metrics-server")]
use std::sync::Weak;
use std::time::Instant;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use parking_lot::{Mutex, RwLock};

pub(crate) use clock::{Tick, calibrate as calibrate_clock};
pub(crate) use observer::{
    CacheCounters, LeaseObserver, Observer, ObserverFactory, PoolObserver, Service,
};
pub use pool::PooledConnection;
pub(crate) use pool::SqlitePool;
pub(crate) use raw::memory_used;

/// Prepares SQLite for litedal before anything else in the process uses it, and returns
/// whether litedal's mutexes are in use.
///
/// SQLite's mutex implementation is process-wide and can only be chosen before SQLite
/// initializes. litedal chooses parking_lot's mutexes, which spin briefly before they sleep:
/// with SQLite's own pthread mutexes, point reads on 2 threads ran slower than on one (see
/// PERFORMANCE.md). [`Database::open`] chooses them by itself only when its thread is the only
/// thread of the process (a program that opens its database before starting threads); a
/// program that starts threads first (an async runtime, a thread pool) calls `init_sqlite`
/// first thing in `main` (with `#[tokio::main]` the runtime's threads already run in `main`'s
/// body: call it in a plain `main` that then builds the runtime). When SQLite was initialized already, it keeps its own mutexes,
/// litedal works the same, this returns `false`, and the first `Database::open` logs it once
/// at INFO. Only the first call decides; later calls return its answer.
///
/// # Safety
///
/// SQLite's `sqlite3_config`, which this calls, is not thread-safe: while it runs, no other
/// thread may call into SQLite in any way (a diesel `SqliteConnection`, another library
/// linking SQLite, litedal's functions that open a file without a [`Database`]). Other calls
/// of `init_sqlite` and [`Database::open`] on other threads are fine: they wait for this one.
/// Calling it first thing in `main`, before any other thread starts, meets the contract.
///
/// ```standalone_crate
/// // SAFETY: first thing in `main`: no other thread exists yet.
/// let fast = unsafe { litedal::init_sqlite() };
/// assert!(fast);
/// ```
pub unsafe fn init_sqlite() -> bool {
    // SAFETY: the caller's contract.
    unsafe { sqlite_mutex::install() }
}
pub(crate) use transaction::{
    WritingGuard, aborted, is_polling_write_lock, trying_write_lock, write_on,
};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::pragmas::Role;
use crate::url::DatabaseLocation;
use gate::WriteContext;
use pool::MemoryHolder;

/// The database: the read and write pools of one SQLite file.
///
/// `Clone + Send + Sync` and cheap to clone (an `Arc`); the pools close when the last clone
/// is dropped.
///
/// ```
/// use diesel::prelude::*;
/// use litedal::{Config, Database};
///
/// let dir = tempfile::tempdir()?;
/// let url = format!("sqlite://{}/app.db", dir.path().display());
/// let config = Config::builder()
///     .database_url(url)
///     .migrations(&litedal::example::MIGRATIONS) // the application's own, in a real one
///     .build()?;
/// let db = Database::open(config)?;
/// let count: i64 = db.read(|conn| {
///     Ok(litedal::example::schema::users::table.count().get_result(conn)?)
/// })?;
/// assert_eq!(count, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Database {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: Config,
    /// Where the database is, resolved once at open (absolute, symlinks resolved).
    location: DatabaseLocation,
    /// The URI every connection opens (computed once: an in-memory database's name is unique).
    uri: String,
    write_pool: SqlitePool,
    /// The write pool itself when one pool serves both roles.
    read_pool: SqlitePool,
    /// What the connections share for writes: the gate, the busy timeout, the observer.
    writes: Arc<WriteContext>,
    /// Which thread holds an in-memory database's only connection.
    memory_holder: Option<Arc<MemoryHolder>>,
    /// The read pool's thread-affine connections (separate pools of a file database only).
    affinity: Option<affinity::Affinity>,
    journal_mode: String,
    /// State that the layers above the core attach at open (statistics counters, checkpoint
    /// state), found again by type.
    extensions: RwLock<Vec<Arc<dyn Any + Send + Sync>>>,
    /// Background services started beside the core, stopped newest first when the last
    /// clone is dropped, before the pools close.
    services: Mutex<Vec<Box<dyn Service>>>,
    /// Keeps an in-memory database alive while the pool recycles its connection.
    _memory_anchor: Option<std::sync::Mutex<SqliteConnection>>,
}

/// A [`Database`] that does not keep it open (for the metrics endpoint's thread).
#[cfg(feature = "metrics-server")]
#[derive(Clone)]
pub(crate) struct WeakDatabase(Weak<Inner>);

#[cfg(feature = "metrics-server")]
impl WeakDatabase {
    /// The database, unless its last clone was dropped.
    pub(crate) fn upgrade(&self) -> Option<Database> {
        self.0.upgrade().map(|inner| Database { inner })
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("location", &self.inner.location)
            .field("journal_mode", &self.inner.journal_mode)
            .field("read_pool_size", &self.inner.config.read_pool_size())
            .field("write_pool_size", &self.inner.config.write_pool_size())
            .finish()
    }
}

impl Database {
    /// The core of [`Database::open`]: the file, the journal mode, migrations and the pools,
    /// with `observer` watching them. What runs beside the core (statistics, the checkpointer,
    /// the metrics endpoint) is added by the caller.
    pub(crate) fn open_core(config: Config, observer: Arc<dyn Observer>) -> Result<Database> {
        let started = Instant::now();
        raw::register_open_hook().map_err(|message| {
            Error::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::Unknown,
                Box::new(message),
            ))
        })?;
        if let Some(path) = config.location().path() {
            open::prepare_file(
                path,
                config.database_url(),
                config.location().creates_missing_file(),
            )?;
        }
        let location = open::resolve(config.location())?;
        open::check_writable(&location, config.enable_wal())?;
        let uri = location.sqlite_uri();
        let path = location.path().map(Path::to_path_buf);
        let opened = open::open_first_connection(&config, &uri);
        let (mut first, journal_mode) = match opened {
            Ok(v) => v,
            Err(e) => return Err(e.with_path(path.as_deref().unwrap_or(Path::new(":memory:")))),
        };

        let writes = Arc::new(WriteContext::new(
            config.write_gate(),
            config.busy_timeout(),
            Arc::clone(&observer),
        ));
        let memory_holder = location
            .is_memory()
            .then(|| Arc::new(MemoryHolder::default()));
        let build = |role: Role, size: u32, observer: Option<PoolObserver>| {
            pool::build_pool(
                &config,
                role,
                size,
                &uri,
                &writes,
                memory_holder.clone(),
                observer,
            )
        };
        let write_pool = build(
            Role::Write,
            config.write_pool_size(),
            observer.pool(Role::Write),
        )?;
        // Thread-affine reads need a pool of their own (a shared pool's connections also
        // write) and more than one connection (an in-memory database has one).
        let affine = config.separate_read_write() && !location.is_memory();
        let (read_pool, affinity) = if config.separate_read_write() {
            let mut read_observer = observer.pool(Role::Read);
            let leases = read_observer.as_mut().and_then(|o| o.leases.take());
            let pool = build(Role::Read, config.read_pool_size(), read_observer)?;
            let affinity = affine.then(|| affinity::Affinity::new(config.read_pool_size(), leases));
            (pool, affinity)
        } else {
            (write_pool.clone(), None)
        };
        let memory_anchor = if location.is_memory() {
            // Writable connection that never runs a statement again: it only keeps the
            // shared in-memory database alive.
            first.batch_execute("PRAGMA query_only = OFF")?;
            Some(std::sync::Mutex::new(first))
        } else {
            drop(first);
            None
        };
        tracing::info!(
            location = %location.to_url(),
            journal_mode = %journal_mode,
            read_pool = config.read_pool_size(),
            write_pool = config.write_pool_size(),
            separate_read_write = config.separate_read_write(),
            synchronous = %config.pragmas(Role::Write).synchronous,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "Database opened"
        );
        Ok(Database {
            inner: Arc::new(Inner {
                config,
                location,
                uri,
                write_pool,
                read_pool,
                writes,
                memory_holder,
                affinity,
                journal_mode,
                extensions: RwLock::new(Vec::new()),
                services: Mutex::new(Vec::new()),
                _memory_anchor: memory_anchor,
            }),
        })
    }

    /// Attaches state of a layer above the core, found again with [`Database::extension`].
    pub(crate) fn add_extension<T: Any + Send + Sync>(&self, extension: Arc<T>) {
        self.inner.extensions.write().push(extension);
    }

    /// The extension of type `T`, if one was attached.
    pub(crate) fn extension<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.inner
            .extensions
            .read()
            .iter()
            .find_map(|e| Arc::clone(e).downcast::<T>().ok())
    }

    /// Hands a background service to the database, which stops it when its last clone is
    /// dropped (newest service first), before the pools close.
    pub(crate) fn add_service(&self, service: Box<dyn Service>) {
        self.inner.services.lock().push(service);
    }

    /// The write gate, shared with blocking checkpoints.
    pub(crate) fn write_gate(&self) -> Option<&Arc<Mutex<()>>> {
        self.inner.writes.gate()
    }

    /// Writes that got [`Error::Busy`] waiting on the write gate (the statistics count them
    /// as busy errors of the write pool).
    pub(crate) fn write_gate_timeouts(&self) -> u64 {
        self.inner.writes.gate_timeouts()
    }

    /// The `-wal` file beside the database file, or `None` in memory.
    pub(crate) fn wal_path(&self) -> Option<PathBuf> {
        self.path().map(|path| {
            let mut name = path.as_os_str().to_owned();
            name.push("-wal");
            PathBuf::from(name)
        })
    }

    /// A handle that does not keep the database open.
    #[cfg(feature = "metrics-server")]
    pub(crate) fn downgrade(&self) -> WeakDatabase {
        WeakDatabase(Arc::downgrade(&self.inner))
    }

    /// The pool that serves `role`.
    pub(crate) fn pool(&self, role: Role) -> &SqlitePool {
        match role {
            Role::Read => &self.inner.read_pool,
            Role::Write => &self.inner.write_pool,
        }
    }

    /// An identity of this database (shared by its clones) for the per-thread
    /// nested-transaction check.
    pub(crate) fn id(&self) -> usize {
        self.inner.writes.id
    }

    /// The URI every connection of this database opens (the resolved path; an in-memory
    /// database's unique name).
    pub(crate) fn uri(&self) -> &str {
        &self.inner.uri
    }

    /// Adds the database's path to an error that names none.
    pub(crate) fn locate(&self, error: Error) -> Error {
        match self.path() {
            Some(path) => error.with_path(path),
            None => error,
        }
    }

    /// The configuration the database was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The database file, or `None` for an in-memory database: absolute, with symlinks
    /// resolved, as it was when the database was opened. Every connection opened later (and
    /// every backup, statistic and check) uses this path, even if the application changes its
    /// working directory afterwards.
    pub fn path(&self) -> Option<&Path> {
        self.inner.location.path()
    }

    /// Where the database is, resolved at open (see [`Database::path`]);
    /// [`Config::location`] is the location as configured.
    pub fn location(&self) -> &DatabaseLocation {
        &self.inner.location
    }

    /// The journal mode in force (`"wal"` unless WAL was disabled or the database is in memory).
    pub fn journal_mode(&self) -> &str {
        &self.inner.journal_mode
    }

    /// A connection from the read pool (`query_only` when the pools are separate).
    ///
    /// # Errors
    ///
    /// [`Error::PoolTimeout`] when no connection became free within `DB_POOL_TIMEOUT`.
    pub fn read_connection(&self) -> Result<PooledConnection> {
        match &self.inner.affinity {
            None => self.checkout(Role::Read),
            Some(affinity) => match self.pool(Role::Read).try_get() {
                Some(conn) => {
                    affinity.count_checkout();
                    Ok(conn)
                }
                None => affinity.wait(|| self.checkout(Role::Read)),
            },
        }
    }

    /// Runs `f` on a read connection: the one this thread used last when it is parked (see
    /// `affinity.rs`), else any idle one, else one r2d2 hands over within the pool timeout.
    pub(crate) fn with_read_connection<T>(
        &self,
        f: impl FnOnce(&mut PooledConnection) -> Result<T>,
    ) -> Result<T> {
        let Some(affinity) = &self.inner.affinity else {
            return f(&mut self.checkout(Role::Read)?);
        };
        let conn = match affinity.try_take(self.pool(Role::Read)) {
            Some(conn) => conn,
            None => affinity.wait(|| self.checkout(Role::Read))?,
        };
        affinity.run(conn, f)
    }

    /// Read connections parked with their threads now (0 for the write role).
    pub(crate) fn parked_connections(&self, role: Role) -> u32 {
        match (&self.inner.affinity, role) {
            (Some(affinity), Role::Read) => affinity.parked(),
            _ => 0,
        }
    }

    /// A connection from the write pool, outside any transaction.
    ///
    /// Prefer [`Database::transaction`]. Repository writes on this connection take the lock
    /// exactly as a transaction does (the write gate, then lock polling). A statement run here
    /// directly in autocommit mode waits for the write lock with `busy_timeout`, but a
    /// multi-statement transaction started with a deferred `BEGIN` can fail with
    /// [`Error::Busy`] at once when it upgrades to a write.
    ///
    /// # Errors
    ///
    /// [`Error::PoolTimeout`] when no connection became free within `DB_POOL_TIMEOUT`.
    pub fn write_connection(&self) -> Result<PooledConnection> {
        self.checkout(Role::Write)
    }

    pub(crate) fn checkout(&self, role: Role) -> Result<PooledConnection> {
        pool::checkout(self.pool(role), role, self.inner.memory_holder.as_deref())
    }

    /// Runs `f` in an immediate write transaction: commits when it returns `Ok`, rolls back
    /// when it returns `Err` or panics (the panic then continues).
    ///
    /// The write lock is taken at `BEGIN IMMEDIATE`, where litedal waits for other writers up
    /// to the busy timeout; a deferred `BEGIN` that reads and then writes would instead fail
    /// at once with "database is locked" when another writer committed in between. `f` runs
    /// exactly once: only taking the lock waits, never a retry of `f`. The connection is
    /// checked out before the writer queues for the lock, so an exhausted write pool is
    /// [`Error::PoolTimeout`] and a held lock is [`Error::Busy`].
    ///
    /// Repository writes inside `f` (and nested `conn.transaction(..)` calls) are savepoints:
    /// when one fails with a constraint error, SQLite undoes that statement, the savepoint
    /// undoes the rest of that operation, and `f` may go on. When a statement fails with an
    /// I/O error, a full disk while the page cache spills, out of memory or an interrupt,
    /// SQLite rolls back the *whole* transaction: every later repository operation in `f`
    /// then fails with [`Error::TransactionAborted`], nothing run on the connection can commit,
    /// and `transaction` returns that first error (e.g. [`Error::DiskFull`]) even if `f`
    /// swallowed it and returned `Ok`. Calling `Database::transaction` again on the same thread
    /// returns [`Error::NestedTransaction`] instead of waiting for itself.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] when the lock stayed taken past the busy timeout, [`Error::PoolTimeout`],
    /// the original error when SQLite rolled the transaction back, or whatever `f` returned
    /// (after rollback).
    pub fn transaction<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T>,
    {
        // Every statement of the transaction (the slow-query and busy events among them)
        // is logged inside this span.
        let _span = tracing::debug_span!("db.transaction", role = "write").entered();
        let _writing = WritingGuard::enter(self.id())?;
        let mut conn = self.checkout(Role::Write)?;
        transaction::write_transaction(&mut conn, &self.inner.writes, f).map_err(|e| self.locate(e))
    }

    /// Runs migrations `f` as [`Database::transaction`] runs a closure, but with foreign keys
    /// off on the connection around the transaction and `PRAGMA foreign_key_check` before it
    /// commits (see `transaction::with_foreign_keys_off`): a migration that rebuilds a parent
    /// table keeps its child rows, and one that leaves a row pointing nowhere is refused.
    ///
    /// # Errors
    ///
    /// As [`Database::transaction`]; [`Error::Migration`] naming the first dangling row.
    pub(crate) fn migration_transaction<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T>,
    {
        let _span = tracing::debug_span!("db.migrations", role = "write").entered();
        let _writing = WritingGuard::enter(self.id())?;
        let mut conn = self.checkout(Role::Write)?;
        transaction::with_foreign_keys_off(&mut conn, |conn| {
            transaction::write_transaction(conn, &self.inner.writes, |conn| {
                let value = f(conn)?;
                transaction::check_foreign_keys(conn)?;
                Ok(value)
            })
        })
        .map_err(|e| self.locate(e))
    }

    /// Runs `f` on a read connection inside one read transaction, so every statement in it
    /// sees the same snapshot of the database.
    ///
    /// # Errors
    ///
    /// [`Error::PoolTimeout`], or whatever `f` returned.
    pub fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T>,
    {
        let _span = tracing::debug_span!("db.read", role = "read").entered();
        self.read_inner(f).map_err(|e| self.locate(e))
    }

    fn read_inner<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T>,
    {
        self.with_read_connection(|pooled| self.read_on(pooled, f))
    }

    fn read_on<T, F>(&self, pooled: &mut PooledConnection, f: F) -> Result<T>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T>,
    {
        let conn: &mut SqliteConnection = pooled;
        let mut began = false;
        let result = catch_unwind(AssertUnwindSafe(|| {
            conn.transaction(|conn| {
                began = true;
                f(conn)
            })
        }));
        match result {
            Ok(result) => {
                if began {
                    self.inner
                        .writes
                        .observer
                        .transaction_ended(Role::Read, result.is_ok());
                }
                result
            }
            Err(panic) => {
                let _ = AnsiTransactionManager::rollback_transaction(conn);
                self.inner
                    .writes
                    .observer
                    .transaction_ended(Role::Read, false);
                resume_unwind(panic)
            }
        }
    }
}

impl Drop for Inner {
    /// Runs when the last `Database` clone is dropped: the background services are stopped
    /// (and their threads joined), newest first; the pools close after this returns.
    fn drop(&mut self) {
        let services = std::mem::take(self.services.get_mut());
        for mut service in services.into_iter().rev() {
            service.stop();
        }
    }
}
