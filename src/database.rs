//! [`Database`]: opens the file, owns the read and write pools, runs transactions.
//!
//! Open sequence: data directory (0700) -> database file created 0600 before SQLite sees it
//! (SQLite gives `-wal`/`-shm` the mode of the database file) -> one connection sets
//! `busy_timeout`, then `journal_mode=WAL` once and verifies it -> embedded migrations inside
//! `BEGIN IMMEDIATE` (so concurrent processes opening one file do not race) -> the write pool,
//! then the read pool, each connection tuned by [`PragmaCustomizer`].

use std::cell::RefCell;
use std::fs::{DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::Path;
use std::sync::Arc;
#[cfg(feature = "metrics-server")]
use std::sync::Weak;
use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::ConnectionManager;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::MigrationHarness;
use parking_lot::Mutex;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::maintenance::{Checkpointer, Upkeep};
use crate::pragmas::{PragmaCustomizer, Role};
use crate::stats::{FileStats, InstrumentingCustomizer, Metrics, PoolEventHandler};

/// A connection checked out of one of the pools; returns to its pool when dropped.
pub type PooledConnection = diesel::r2d2::PooledConnection<ConnectionManager<SqliteConnection>>;

pub(crate) type SqlitePool = diesel::r2d2::Pool<ConnectionManager<SqliteConnection>>;

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
/// let db = Database::open(Config::builder().database_url(url).build()?)?;
/// let count: i64 = db.read(|conn| {
///     Ok(litedal::schema::users::table.count().get_result(conn)?)
/// })?;
/// assert_eq!(count, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Database {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Dropped first, so the endpoint stops (and its thread is joined) before the pools close.
    #[cfg(feature = "metrics-server")]
    metrics_server: Mutex<Option<crate::metrics::MetricsServer>>,
    config: Config,
    write_pool: SqlitePool,
    /// The write pool itself when one pool serves both roles.
    read_pool: SqlitePool,
    /// Writers of this process queue here (fairly) before `BEGIN IMMEDIATE`; `None` when the
    /// gate is disabled and `begin_immediate`'s lock polling arbitrates alone. Shared with
    /// the checkpointer, whose blocking checkpoints queue here too.
    write_gate: Option<Arc<Mutex<()>>>,
    journal_mode: String,
    /// Counters behind `connection_stats()`, shared with the pools' handlers.
    metrics: Arc<Metrics>,
    /// A connection outside the pools for the PRAGMAs of `connection_stats()`, opened on first
    /// use, so that taking statistics does not move the pools' counters.
    monitor: Mutex<Option<SqliteConnection>>,
    /// Checkpoint state shared with the background checkpointer thread (which never holds
    /// this `Inner`, so dropping the last `Database` clone really drops it).
    pub(crate) upkeep: Arc<Upkeep>,
    /// The background checkpointer; stopped and joined when the last clone drops.
    checkpointer: Option<Checkpointer>,
    /// Keeps an in-memory database alive while the pool recycles its connection.
    _memory_anchor: Option<std::sync::Mutex<SqliteConnection>>,
    /// When the database was opened (the checkpoint age before the first checkpoint).
    opened_at: Instant,
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
            .field("location", self.inner.config.location())
            .field("journal_mode", &self.inner.journal_mode)
            .field("read_pool_size", &self.inner.config.read_pool_size())
            .field("write_pool_size", &self.inner.config.write_pool_size())
            .finish()
    }
}

thread_local! {
    /// The databases (by `Inner` address) whose write transaction this thread is inside.
    static WRITING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks this thread as inside a write transaction of one database, for as long as it lives.
pub(crate) struct WritingGuard(usize);

impl WritingGuard {
    pub(crate) fn enter(id: usize) -> Result<WritingGuard> {
        WRITING.with(|w| {
            let mut w = w.borrow_mut();
            if w.contains(&id) {
                return Err(Error::NestedTransaction);
            }
            w.push(id);
            Ok(WritingGuard(id))
        })
    }
}

impl Drop for WritingGuard {
    fn drop(&mut self) {
        WRITING.with(|w| w.borrow_mut().retain(|id| *id != self.0));
    }
}

/// r2d2 reports connection errors here; they go to `tracing` instead of the `log` crate.
#[derive(Debug)]
struct TracingErrorHandler {
    role: Role,
}

impl r2d2::HandleError<diesel::r2d2::Error> for TracingErrorHandler {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        tracing::error!(role = %self.role, %error, "Database connection error in pool");
    }
}

#[derive(QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = Text)]
    journal_mode: String,
}

#[derive(QueryableByName)]
struct ReadProbe {
    #[diesel(sql_type = Text)]
    journal_mode: String,
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    objects: i64,
}

/// The health check's read probe: reads the schema (so the file is really read, under a
/// read lock) and returns the journal mode in force.
pub(crate) fn read_probe(conn: &mut SqliteConnection) -> QueryResult<String> {
    diesel::sql_query(
        "SELECT (SELECT journal_mode FROM pragma_journal_mode()) AS journal_mode, \
         (SELECT count(*) FROM sqlite_schema) AS objects",
    )
    .get_result::<ReadProbe>(conn)
    .map(|probe| probe.journal_mode)
}

#[derive(QueryableByName)]
struct PageCounts {
    #[diesel(sql_type = BigInt)]
    page_size: i64,
    #[diesel(sql_type = BigInt)]
    page_count: i64,
    #[diesel(sql_type = BigInt)]
    freelist_count: i64,
}

impl Database {
    /// Opens (creating if needed) the database that `config` describes.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the data directory or file cannot be created (or the path is a
    /// directory), [`Error::NotADatabase`] for a file that is not SQLite (left untouched),
    /// [`Error::ReadOnly`], [`Error::Busy`] when another process holds the database locked
    /// past the busy timeout, [`Error::Migration`], or [`Error::PoolTimeout`] when the pools
    /// cannot be filled.
    pub fn open(config: Config) -> Result<Database> {
        #[cfg(not(feature = "metrics-server"))]
        if let Some(addr) = config.metrics_addr() {
            return Err(Error::config(
                "DB_METRICS_ADDR",
                addr.to_string(),
                "litedal was built without its `metrics-server` feature; unset the variable \
                 or enable the feature",
            ));
        }
        let started = Instant::now();
        let path = config.location().path().map(Path::to_path_buf);
        if let Some(path) = &path {
            prepare_file(
                path,
                config.database_url(),
                config.location().creates_missing_file(),
            )?;
        }
        let uri = config.location().sqlite_uri();
        let opened = open_first_connection(&config, &uri);
        let (mut first, journal_mode) = match opened {
            Ok(v) => v,
            Err(e) => return Err(e.with_path(path.as_deref().unwrap_or(Path::new(":memory:")))),
        };

        let metrics = Arc::new(Metrics::new(
            config.separate_read_write(),
            config.instrumentation(),
        ));
        let write_pool = build_pool(
            &config,
            Role::Write,
            config.write_pool_size(),
            &uri,
            &metrics,
        )?;
        let read_pool = if config.separate_read_write() {
            build_pool(&config, Role::Read, config.read_pool_size(), &uri, &metrics)?
        } else {
            write_pool.clone()
        };
        let memory_anchor = if config.location().is_memory() {
            // Writable connection that never runs a statement again: it only keeps the
            // shared in-memory database alive.
            first.batch_execute("PRAGMA query_only = OFF")?;
            Some(std::sync::Mutex::new(first))
        } else {
            drop(first);
            None
        };
        tracing::info!(
            location = %config.location().to_url(),
            journal_mode = %journal_mode,
            read_pool = config.read_pool_size(),
            write_pool = config.write_pool_size(),
            separate_read_write = config.separate_read_write(),
            synchronous = %config.pragmas(Role::Write).synchronous,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "Database opened"
        );
        let metrics_addr = config.metrics_addr();
        let write_gate = config.write_gate().then(|| Arc::new(Mutex::new(())));
        let upkeep = Arc::new(Upkeep::new(
            write_pool.clone(),
            write_gate.clone(),
            path.as_deref(),
            config.busy_timeout(),
        ));
        let checkpointer = Checkpointer::start(&upkeep, &config, &journal_mode)?;
        let db = Database {
            inner: Arc::new(Inner {
                #[cfg(feature = "metrics-server")]
                metrics_server: Mutex::new(None),
                write_gate,
                config,
                write_pool,
                read_pool,
                journal_mode,
                metrics,
                monitor: Mutex::new(None),
                upkeep,
                checkpointer,
                _memory_anchor: memory_anchor,
                opened_at: started,
            }),
        };
        #[cfg(feature = "metrics-server")]
        if let Some(addr) = metrics_addr {
            let server = crate::metrics::MetricsServer::start(&db, addr)?;
            *db.inner.metrics_server.lock() = Some(server);
        }
        #[cfg(not(feature = "metrics-server"))]
        let _ = metrics_addr;
        Ok(db)
    }

    /// The address the `/metrics` + `/health` endpoint listens on, when `DB_METRICS_ADDR` is
    /// set and the endpoint is running (with port 0 in the setting, the port picked).
    #[cfg(feature = "metrics-server")]
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner
            .metrics_server
            .lock()
            .as_ref()
            .map(crate::metrics::MetricsServer::local_addr)
    }

    /// Stops the `/metrics` + `/health` endpoint started by [`Database::open`] and waits for
    /// its thread to end; returns false when none was running. Dropping the last clone of the
    /// `Database` does the same.
    #[cfg(feature = "metrics-server")]
    pub fn shutdown_metrics_server(&self) -> bool {
        let server = self.inner.metrics_server.lock().take();
        match server {
            Some(server) => {
                server.shutdown();
                true
            }
            None => false,
        }
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

    /// The counters behind `connection_stats()`.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// File sizes and page counts, or `None` in memory. Failures are logged and leave the
    /// figure out rather than failing the statistics.
    pub(crate) fn file_stats(&self) -> Option<FileStats> {
        let path = self.path()?;
        let size = |path: &Path| match std::fs::metadata(path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "Database statistics: file size unreadable");
                0
            }
        };
        let mut files = FileStats {
            database_bytes: size(path),
            wal_bytes: self.inner.upkeep.wal_path().map_or(0, size),
            ..FileStats::default()
        };
        match self.page_counts() {
            Ok(counts) => {
                let positive = |n: i64| u64::try_from(n).ok();
                files.page_size = positive(counts.page_size);
                files.page_count = positive(counts.page_count);
                files.freelist_count = positive(counts.freelist_count);
            }
            Err(error) => {
                tracing::warn!(%error, "Database statistics: page counts unreadable");
            }
        }
        Some(files)
    }

    /// `page_size`, `page_count` and `freelist_count`, read on the monitoring connection.
    fn page_counts(&self) -> Result<PageCounts> {
        let mut monitor = self.inner.monitor.lock();
        let conn = match &mut *monitor {
            Some(conn) => conn,
            slot => {
                let mut conn =
                    SqliteConnection::establish(&self.inner.config.location().sqlite_uri())?;
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA query_only = ON",
                    self.inner.config.busy_timeout().as_millis()
                ))?;
                slot.insert(conn)
            }
        };
        let result = diesel::sql_query(
            "SELECT p.page_size, c.page_count, f.freelist_count \
             FROM pragma_page_size() AS p, pragma_page_count() AS c, pragma_freelist_count() AS f",
        )
        .get_result::<PageCounts>(conn);
        if result.is_err() {
            // Reopen next time rather than keep a connection in an unknown state.
            *monitor = None;
        }
        Ok(result?)
    }

    /// While the background checkpointer runs: the time since the database was opened.
    pub(crate) fn checkpointer_running(&self) -> Option<Duration> {
        self.inner
            .checkpointer
            .as_ref()
            .map(|_| self.inner.opened_at.elapsed())
    }

    /// An identity of this database (shared by its clones) for the per-thread
    /// nested-transaction check.
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Opens the database configured by the environment ([`Config::from_env`]).
    ///
    /// # Errors
    ///
    /// A configuration error, or any error of [`Database::open`].
    pub fn from_env() -> Result<Database> {
        Database::open(Config::from_env()?)
    }

    /// The configuration the database was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The database file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.inner.config.location().path()
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
        self.checkout(Role::Read)
    }

    /// A connection from the write pool, outside any transaction.
    ///
    /// Prefer [`Database::transaction`]: a statement run here in autocommit mode still waits
    /// for the write lock with `busy_timeout`, but a multi-statement transaction started with
    /// a deferred `BEGIN` can fail with [`Error::Busy`] at once when it upgrades to a write.
    ///
    /// # Errors
    ///
    /// [`Error::PoolTimeout`] when no connection became free within `DB_POOL_TIMEOUT`.
    pub fn write_connection(&self) -> Result<PooledConnection> {
        self.checkout(Role::Write)
    }

    fn checkout(&self, role: Role) -> Result<PooledConnection> {
        let pool = match role {
            Role::Read => &self.inner.read_pool,
            Role::Write => &self.inner.write_pool,
        };
        let started = Instant::now();
        pool.get().map_err(|error| {
            let waited = started.elapsed();
            tracing::warn!(role = %role, waited_ms = waited.as_millis() as u64, %error, "Database pool checkout timed out");
            Error::PoolTimeout { role, waited }
        })
    }

    /// Runs `f` in an immediate write transaction: commits when it returns `Ok`, rolls back
    /// when it returns `Err` or panics (the panic then continues).
    ///
    /// The write lock is taken at `BEGIN IMMEDIATE`, where `busy_timeout` waits for other
    /// writers; a deferred `BEGIN` that reads and then writes would instead fail at once with
    /// "database is locked" when another writer committed in between. `f` runs exactly once:
    /// only taking the lock waits, never a retry of `f`. Nested `conn.transaction(..)` calls
    /// inside `f` become savepoints; calling `Database::transaction` again on the same thread
    /// returns [`Error::NestedTransaction`] instead of waiting for itself.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] when the lock stayed taken past the busy timeout, [`Error::PoolTimeout`],
    /// or whatever `f` returned (after rollback).
    pub fn transaction<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T>,
    {
        let _writing = WritingGuard::enter(self.id())?;
        let _gate = match &self.inner.write_gate {
            Some(gate) => Some(
                gate.try_lock_for(self.inner.config.busy_timeout())
                    .ok_or_else(|| {
                        tracing::warn!(
                            "Database busy: write gate not acquired within the busy timeout"
                        );
                        Error::Busy
                    })?,
            ),
            None => None,
        };
        let mut conn = self.checkout(Role::Write)?;
        let result = run_immediate(
            &mut conn,
            self.inner.config.busy_timeout(),
            f,
            &self.inner.metrics,
        );
        if let Err(Error::Busy) = &result {
            tracing::warn!("Database busy: write lock not acquired within the busy timeout");
        }
        if let Some(gate) = _gate {
            // Hand the gate to the longest waiter instead of letting this thread barge back in.
            parking_lot::MutexGuard::unlock_fair(gate);
        }
        result
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
        let mut pooled = self.checkout(Role::Read)?;
        let conn: &mut SqliteConnection = &mut pooled;
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
                        .metrics
                        .record_transaction(Role::Read, result.is_ok());
                }
                result
            }
            Err(panic) => {
                let _ = AnsiTransactionManager::rollback_transaction(conn);
                self.inner.metrics.record_transaction(Role::Read, false);
                resume_unwind(panic)
            }
        }
    }
}

impl Drop for Inner {
    /// Runs when the last `Database` clone is dropped: the checkpointer thread is stopped and
    /// joined first (so nothing else touches the pools), then `PRAGMA optimize`; the pools
    /// close after this returns.
    fn drop(&mut self) {
        if let Some(mut checkpointer) = self.checkpointer.take() {
            checkpointer.stop();
        }
        if !self.config.location().is_memory() {
            crate::maintenance::optimize_on_close(&self.write_pool);
        }
    }
}

/// Runs `f` as a write on a connection the caller holds: a savepoint inside the caller's
/// transaction (a failure undoes only `f`), otherwise its own immediate transaction.
pub(crate) fn write_on<T>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T>,
) -> Result<T> {
    let depth = AnsiTransactionManager::transaction_manager_status_mut(conn).transaction_depth()?;
    if depth.is_some() {
        conn.transaction(f)
    } else {
        conn.immediate_transaction(f)
    }
}

/// `BEGIN IMMEDIATE` (waiting for the lock up to `busy_timeout`), `f`, then `COMMIT`, or
/// `ROLLBACK` on error or panic. Counts the transaction in `metrics` once it began (a
/// `BEGIN` that stayed busy is not a transaction).
fn run_immediate<T, F>(
    conn: &mut SqliteConnection,
    busy_timeout: Duration,
    f: F,
    metrics: &Metrics,
) -> Result<T>
where
    F: FnOnce(&mut SqliteConnection) -> Result<T>,
{
    begin_immediate(conn, busy_timeout)?;
    match catch_unwind(AssertUnwindSafe(|| f(conn))) {
        Ok(Ok(value)) => {
            let committed = AnsiTransactionManager::commit_transaction(conn);
            metrics.record_transaction(Role::Write, committed.is_ok());
            committed?;
            Ok(value)
        }
        Ok(Err(error)) => {
            metrics.record_transaction(Role::Write, false);
            // The caller's error is the one that matters; a failed rollback is logged (and
            // the connection, left in a transaction, is discarded by the pool as broken).
            if let Err(rollback) = AnsiTransactionManager::rollback_transaction(conn) {
                tracing::error!(error = %rollback, "Database rollback failed");
            }
            Err(error)
        }
        Err(panic) => {
            metrics.record_transaction(Role::Write, false);
            // diesel does not roll back when the closure panics; do it here so the
            // connection goes back to the pool clean (r2d2 also discards connections
            // released while panicking, which closes them and rolls back).
            if let Err(error) = AnsiTransactionManager::rollback_transaction(conn) {
                tracing::error!(%error, "Database rollback after panic failed");
            }
            resume_unwind(panic)
        }
    }
}

/// Takes SQLite's write lock with `BEGIN IMMEDIATE`, retrying until `busy_timeout` passes.
///
/// SQLite's own busy handler sleeps 1, 2, 5, ... up to 100 ms between attempts. Against a
/// writer in another process that commits back to back, the lock is free only for the
/// microseconds between two of its transactions, so a waiter that wakes every 100 ms can
/// starve for seconds (measured: waits of 3 s among 3 processes). Here the busy handler is
/// off while the lock is taken and the attempts come every 50 us to 1 ms (jittered), which
/// catches those gaps; the busy timeout is restored as soon as the lock is held.
fn begin_immediate(conn: &mut SqliteConnection, busy_timeout: Duration) -> Result<()> {
    conn.batch_execute("PRAGMA busy_timeout = 0")?;
    let deadline = Instant::now() + busy_timeout;
    let mut pause = Duration::from_micros(50);
    let mut jitter = JITTER_SEED.with(|seed| seed.get());
    let begun = loop {
        let last = Instant::now() >= deadline;
        let mut attempt = || {
            AnsiTransactionManager::begin_transaction_sql(&mut *conn, "BEGIN IMMEDIATE")
                .map_err(Error::from)
        };
        let result = if last {
            attempt()
        } else {
            crate::stats::polling_write_lock(attempt)
        };
        match result {
            Err(Error::Busy) if !last => {
                // xorshift: a pause between 0.5 and 1.5 times the current step, so waiters
                // in different processes do not poll in lockstep.
                jitter ^= jitter << 13;
                jitter ^= jitter >> 7;
                jitter ^= jitter << 17;
                let factor = 0.5 + (jitter % 1000) as f64 / 1000.0;
                std::thread::sleep(pause.mul_f64(factor));
                pause = (pause * 2).min(Duration::from_millis(1));
            }
            other => break other,
        }
    };
    JITTER_SEED.with(|seed| seed.set(jitter));
    let restored = conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {}",
        busy_timeout.as_millis()
    ));
    match (begun, restored) {
        (Ok(()), Ok(())) => Ok(()),
        (Ok(()), Err(error)) => {
            AnsiTransactionManager::rollback_transaction(conn)?;
            Err(error.into())
        }
        (Err(error), _) => Err(error),
    }
}

thread_local! {
    /// Per-thread state of the jitter of `begin_immediate`.
    static JITTER_SEED: std::cell::Cell<u64> = std::cell::Cell::new(
        0x9E37_79B9_7F4A_7C15
            ^ u64::from(std::process::id())
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as u64)
                .unwrap_or(1)
                | 1),
    );
}

/// Creates the data directory (0700) and the database file (0600) if they do not exist.
/// With `create` false (a `file:` URI with `mode=rw` or `mode=ro`), a missing file is an
/// error, as SQLite itself would report it, instead of a new empty database.
fn prepare_file(path: &Path, url: &str, create: bool) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(Error::io(
                "opening the database: DATABASE_URL names a directory, not a file:",
                path,
                std::io::Error::new(ErrorKind::IsADirectory, format!("DATABASE_URL={url}")),
            ));
        }
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound && !create => {
            return Err(Error::io(
                "opening the database (the URI's mode= does not create it):",
                path,
                e,
            ));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("reading the metadata of", path, e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io("creating the data directory", dir, e))?;
        }
    }
    // Created here with 0600 (whatever the umask says) because SQLite gives the -wal and -shm
    // files the permissions of the database file. An empty file is a valid empty database.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io("setting the mode of", path, e))?;
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("creating the database file", path, e)),
    }
}

/// Opens the first connection: busy_timeout, journal mode (set and verified), migrations,
/// and a dry run of both roles' PRAGMAs so a bad one fails here instead of inside r2d2.
fn open_first_connection(config: &Config, uri: &str) -> Result<(SqliteConnection, String)> {
    let mut conn = SqliteConnection::establish(uri)?;
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {}",
        config.busy_timeout().as_millis()
    ))?;
    // Switching the journal mode needs an exclusive lock that busy_timeout does not wait for,
    // so it is done once here, never per pooled connection.
    let wanted = if config.enable_wal() { "WAL" } else { "DELETE" };
    let mode = set_journal_mode(&mut conn, wanted, config.busy_timeout())?;
    let memory = config.location().is_memory();
    if !memory && !mode.eq_ignore_ascii_case(wanted) {
        return Err(Error::Database(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new(format!(
                "PRAGMA journal_mode={wanted} was not applied: SQLite answered {mode:?}"
            )),
        )));
    }
    if config.run_migrations() {
        let migrations = config.migrations();
        let applied = conn.immediate_transaction(|conn| {
            conn.run_pending_migrations(migrations)
                .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
                .map_err(|e| Error::Migration(e.to_string()))
        })?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "Database migrations applied");
        }
    }
    check_writable(&mut conn)?;
    // Dry run of the role PRAGMAs; the writer's last so the connection stays writable.
    config.pragmas(Role::Read).apply(&mut conn)?;
    config.pragmas(Role::Write).apply(&mut conn)?;
    Ok((conn, mode))
}

#[derive(QueryableByName)]
struct UserVersion {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    user_version: i32,
}

/// Fails with [`Error::ReadOnly`] when SQLite could open the database only for reading (an
/// immutable or read-only file, `mode=ro`): better at open than at the first write.
/// `BEGIN IMMEDIATE` alone succeeds on such a file in WAL mode, so this rewrites the header's
/// `user_version` with its own value inside a transaction that is rolled back: nothing is
/// written.
fn check_writable(conn: &mut SqliteConnection) -> Result<()> {
    let version = diesel::sql_query("PRAGMA user_version")
        .get_result::<UserVersion>(conn)?
        .user_version;
    conn.batch_execute("BEGIN IMMEDIATE")?;
    let probe = conn.batch_execute(&format!("PRAGMA user_version = {version}"));
    let rollback = conn.batch_execute("ROLLBACK");
    probe?;
    rollback?;
    Ok(())
}

/// Sets the journal mode. Retries while another connection holds the lock it needs, for up to
/// `busy_timeout` (SQLite's busy handler does not cover this case).
fn set_journal_mode(
    conn: &mut SqliteConnection,
    mode: &str,
    busy_timeout: Duration,
) -> Result<String> {
    let deadline = Instant::now() + busy_timeout;
    loop {
        let result: std::result::Result<Vec<JournalMode>, _> =
            diesel::sql_query(format!("PRAGMA journal_mode = {mode}")).load(conn);
        match result.map_err(Error::from) {
            Ok(rows) => {
                return Ok(rows
                    .into_iter()
                    .next()
                    .map(|r| r.journal_mode)
                    .unwrap_or_default());
            }
            Err(Error::Busy) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}

fn build_pool(
    config: &Config,
    role: Role,
    size: u32,
    uri: &str,
    metrics: &Metrics,
) -> Result<SqlitePool> {
    let manager = ConnectionManager::<SqliteConnection>::new(uri);
    let pragmas = PragmaCustomizer {
        role,
        pragmas: config.pragmas(role),
    };
    let builder = diesel::r2d2::Pool::builder();
    let builder = if metrics.enabled() {
        let pool_metrics = metrics.pool(role);
        builder
            .event_handler(Box::new(PoolEventHandler(pool_metrics.clone())))
            .connection_customizer(Box::new(InstrumentingCustomizer {
                pragmas,
                metrics: pool_metrics.clone(),
                slow_query: config.slow_query(),
            }))
    } else {
        builder.connection_customizer(Box::new(pragmas))
    };
    let pool = builder
        .max_size(size)
        // All connections are opened up front so a checkout never waits for an open.
        .min_idle(Some(size))
        // SQLite connections do not go stale like network ones: no recycling, no per-checkout
        // `SELECT 1` (it costs a round trip on every checkout and protects nothing).
        .idle_timeout(None)
        .max_lifetime(None)
        .test_on_check_out(false)
        .connection_timeout(config.pool_timeout())
        .error_handler(Box::new(TracingErrorHandler { role }))
        .build(manager)
        .map_err(|error| {
            tracing::error!(role = %role, %error, "Database pool could not be filled");
            Error::PoolTimeout {
                role,
                waited: config.pool_timeout(),
            }
        })?;
    tracing::info!(
        role = %role,
        size,
        instrumented = metrics.enabled(),
        slow_query_ms = config.slow_query().map(|d| d.as_millis() as u64),
        "Database pool created"
    );
    Ok(pool)
}
