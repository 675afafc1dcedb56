//! Upkeep and durability: WAL checkpoints (on demand and in the background), online backups,
//! integrity checks, `PRAGMA optimize`, and restore.
//!
//! Why each exists:
//!
//! - **Checkpoints** copy committed pages from the `-wal` file back into the database file.
//!   SQLite does this on commit once the WAL passes `wal_autocheckpoint` pages, but only in
//!   PASSIVE mode, which never waits: under a constant stream of readers the WAL can grow
//!   without bound. The background checkpointer runs one every `DB_CHECKPOINT_INTERVAL_SECS`
//!   and escalates to TRUNCATE when the WAL passes `DB_WAL_SIZE_LIMIT`.
//! - **Backups** are `VACUUM INTO` a temporary file beside the destination: a consistent
//!   snapshot taken inside one read transaction, so readers and writers keep running.
//! - **Restore** replaces the database file atomically, and only while no other connection
//!   has it open.
//!
//! The operator CLI's `checkpoint`, `backup`, `restore` and `check` subcommands are thin
//! wrappers over [`Database::checkpoint`], [`Database::backup_with_progress`], [`restore`]
//! and [`Database::integrity_check`]; every report implements `Display` for that purpose.

use std::fmt;
use std::fs::{DirBuilder, File};
use std::io::ErrorKind;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::config::Config;
use crate::database::{Database, PooledConnection, SqlitePool, WritingGuard};
use crate::error::{Error, Result};
use crate::pragmas::{CheckpointMode, Role};
use crate::url::file_uri;

/// Name of the background checkpointer thread (at most 15 bytes, so `ps`/`top` show it whole).
pub const CHECKPOINTER_THREAD_NAME: &str = "litedal-ckpt";

/// How long [`restore`] waits for other connections to let go of the target before refusing.
pub const RESTORE_LOCK_WAIT: Duration = Duration::from_secs(1);

/// `PRAGMA optimize` mask used by [`Database::optimize`] and at close: `0x02` runs ANALYZE
/// where statistics are missing or stale, `0x10` caps each ANALYZE with SQLite's analysis
/// limit (so it stays in the milliseconds on large tables), and `0x10000` looks at every
/// table, not only those queried on the connection that runs it: in a pool, the connection
/// that runs the pragma is rarely the one that ran the reads.
const OPTIMIZE: &str = "PRAGMA optimize = 0x10012";

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

/// What one `PRAGMA wal_checkpoint(MODE)` did.
///
/// `wal_frames` and `checkpointed_frames` are SQLite's `log` and `checkpointed` columns:
/// frames in the WAL, and how many of them are now copied into the database file. After a
/// successful RESTART or TRUNCATE both are 0 (the WAL was reset); compare the WAL sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointReport {
    /// The mode that ran.
    pub mode: CheckpointMode,
    /// SQLite's `busy` flag: the checkpoint could not finish, because a FULL, RESTART or
    /// TRUNCATE checkpoint waited the whole (bounded) timeout for readers or writers, or
    /// because another connection was checkpointing at the same moment.
    pub busy: bool,
    /// Frames in the WAL, or `None` when SQLite reports -1 (not in WAL mode, or the
    /// checkpoint could not start).
    pub wal_frames: Option<u64>,
    /// Frames copied into the database file, or `None` as for `wal_frames`.
    pub checkpointed_frames: Option<u64>,
    /// Size of the `-wal` file before the checkpoint, in bytes (0 when there is none).
    pub wal_bytes_before: u64,
    /// Size of the `-wal` file after the checkpoint, in bytes.
    pub wal_bytes_after: u64,
    /// How long it took, including the wait for the write gate and a connection.
    pub duration: Duration,
    /// When it finished (wall clock).
    pub finished_at: SystemTime,
}

impl CheckpointReport {
    /// True when the checkpoint was not blocked and every frame of the WAL is in the
    /// database file (a PASSIVE checkpoint held back by a reader is not complete).
    pub fn is_complete(&self) -> bool {
        !self.busy && self.wal_frames == self.checkpointed_frames
    }

    /// Time since the checkpoint finished (zero if the wall clock went backwards).
    pub fn age(&self) -> Duration {
        self.finished_at.elapsed().unwrap_or_default()
    }
}

impl fmt::Display for CheckpointReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frames = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
        write!(
            f,
            "checkpoint {}: {}, {} of {} WAL frames checkpointed, WAL {} -> {} bytes, {:.1} ms",
            self.mode,
            if self.busy {
                "busy (not finished)"
            } else if self.is_complete() {
                "complete"
            } else {
                "partial (readers hold older snapshots)"
            },
            frames(self.checkpointed_frames),
            frames(self.wal_frames),
            self.wal_bytes_before,
            self.wal_bytes_after,
            self.duration.as_secs_f64() * 1e3
        )
    }
}

#[derive(QueryableByName)]
struct CheckpointRow {
    #[diesel(sql_type = BigInt)]
    busy: i64,
    #[diesel(sql_type = BigInt)]
    log: i64,
    #[diesel(sql_type = BigInt)]
    checkpointed: i64,
}

/// What [`Database`] shares with its checkpointer thread: the write pool and gate, the WAL's
/// path and the last successful checkpoint. The thread holds an `Arc<Upkeep>`, never the
/// database itself, so dropping the last `Database` clone is what stops it.
pub(crate) struct Upkeep {
    pool: SqlitePool,
    gate: Option<Arc<Mutex<()>>>,
    wal_path: Option<PathBuf>,
    busy_timeout: Duration,
    last: Mutex<Option<CheckpointReport>>,
}

impl Upkeep {
    pub(crate) fn new(
        pool: SqlitePool,
        gate: Option<Arc<Mutex<()>>>,
        db_path: Option<&Path>,
        busy_timeout: Duration,
    ) -> Upkeep {
        // Resolved once, at open: a relative DATABASE_URL must keep naming the same file if
        // the application changes its working directory later (SQLite resolves it at open
        // too, symlinks included).
        let wal_path = db_path.map(|p| {
            let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            sibling(&p, "-wal")
        });
        Upkeep {
            pool,
            gate,
            wal_path,
            busy_timeout,
            last: Mutex::new(None),
        }
    }

    /// The `-wal` file, resolved at open; `None` in memory.
    pub(crate) fn wal_path(&self) -> Option<&Path> {
        self.wal_path.as_deref()
    }

    /// Size of the `-wal` file (0 if it does not exist or the database is in memory).
    pub(crate) fn wal_bytes(&self) -> u64 {
        self.wal_path
            .as_deref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    }

    /// Runs one checkpoint; records it as the last successful one unless SQLite was busy.
    fn checkpoint(
        &self,
        mode: CheckpointMode,
        checkout_timeout: Duration,
    ) -> Result<CheckpointReport> {
        let started = Instant::now();
        let wal_bytes_before = self.wal_bytes();
        // The connection first, then the gate: a writer holding the gate never waits for the
        // pool, so an exhausted pool is a PoolTimeout here and never a Busy for other writers.
        let mut conn = self.pool.get_timeout(checkout_timeout).map_err(|error| {
            let waited = started.elapsed();
            tracing::warn!(mode = %mode, %error, "Database checkpoint: no write connection");
            Error::PoolTimeout {
                role: Role::Write,
                waited,
            }
        })?;
        // FULL, RESTART and TRUNCATE take SQLite's write lock. They queue on the write gate
        // like a transaction, so this process's writers line up behind them fairly instead
        // of starving them in SQLite's 1-100 ms busy-handler sleeps. PASSIVE takes no write
        // lock and never waits, so it does not queue: writers keep going while it copies.
        let gate = match (&self.gate, mode) {
            (_, CheckpointMode::Passive) | (None, _) => None,
            (Some(gate), _) => Some(gate.try_lock_for(self.busy_timeout).ok_or_else(|| {
                tracing::warn!(mode = %mode, "Database checkpoint: write gate not acquired within the busy timeout");
                Error::Busy
            })?),
        };
        let row = self.run_pragma(&mut conn, mode);
        if let Some(gate) = gate {
            MutexGuard::unlock_fair(gate);
        }
        drop(conn);
        let row = row?;
        let frames = |n: i64| u64::try_from(n).ok();
        let report = CheckpointReport {
            mode,
            busy: row.busy != 0,
            wal_frames: frames(row.log),
            checkpointed_frames: frames(row.checkpointed),
            wal_bytes_before,
            wal_bytes_after: self.wal_bytes(),
            duration: started.elapsed(),
            finished_at: SystemTime::now(),
        };
        if !report.busy {
            *self.last.lock() = Some(report.clone());
        }
        Ok(report)
    }

    fn run_pragma(
        &self,
        conn: &mut SqliteConnection,
        mode: CheckpointMode,
    ) -> Result<CheckpointRow> {
        // `mode` is one of four keywords of our own enum, never caller text.
        let pragma = format!("PRAGMA wal_checkpoint({})", mode.as_sql());
        if mode == CheckpointMode::Passive {
            return Ok(diesel::sql_query(pragma).get_result(conn)?);
        }
        // FULL, RESTART and TRUNCATE hold the write lock while SQLite's busy handler waits for
        // readers to finish (and RESTART/TRUNCATE for every reader to leave the WAL). That
        // wait is capped at half the busy timeout: a writer that queued behind the checkpoint
        // then still gets the lock within its own busy timeout instead of failing with Busy,
        // and a reader that never ends cannot hang the application: the checkpoint returns
        // `busy` and the next one tries again.
        let wait = self.busy_timeout / 2;
        conn.batch_execute(&format!("PRAGMA busy_timeout = {}", wait.as_millis()))?;
        let row = diesel::sql_query(pragma).get_result::<CheckpointRow>(conn);
        let restored = conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}",
            self.busy_timeout.as_millis()
        ));
        if let Err(error) = &restored {
            tracing::error!(%error, "Database checkpoint: could not restore busy_timeout");
        }
        let row = row?;
        restored?;
        Ok(row)
    }

    fn last(&self) -> Option<CheckpointReport> {
        self.last.lock().clone()
    }
}

/// The background checkpointer: a thread that checkpoints every `DB_CHECKPOINT_INTERVAL_SECS`.
pub(crate) struct Checkpointer {
    signal: Arc<StopSignal>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Checkpointer {
    /// Starts the checkpointer, or returns `None` (and logs why) when it has nothing to do.
    pub(crate) fn start(
        upkeep: &Arc<Upkeep>,
        config: &Config,
        journal_mode: &str,
    ) -> Result<Option<Checkpointer>> {
        let interval = config.checkpoint_interval();
        if interval.is_zero() {
            tracing::info!(
                wal_autocheckpoint = config.pragmas(Role::Write).wal_autocheckpoint,
                "Database checkpointer off (DB_CHECKPOINT_INTERVAL_SECS=0)"
            );
            return Ok(None);
        }
        if upkeep.wal_path.is_none() || !journal_mode.eq_ignore_ascii_case("wal") {
            tracing::info!(
                journal_mode,
                "Database checkpointer off: the database has no WAL to checkpoint"
            );
            return Ok(None);
        }
        let signal = Arc::new(StopSignal::default());
        let task = CheckpointTask {
            upkeep: Arc::clone(upkeep),
            signal: Arc::clone(&signal),
            interval,
            mode: config.wal_checkpoint_mode(),
            limit: config.wal_size_limit(),
        };
        let thread = std::thread::Builder::new()
            .name(CHECKPOINTER_THREAD_NAME.to_owned())
            .spawn(move || task.run())
            .map_err(|e| {
                Error::io(
                    "starting the checkpointer thread for",
                    config.location().path().unwrap_or(Path::new(":memory:")),
                    e,
                )
            })?;
        tracing::info!(
            interval_ms = interval.as_millis() as u64,
            mode = %config.wal_checkpoint_mode(),
            wal_size_limit = config.wal_size_limit(),
            "Database checkpointer started"
        );
        Ok(Some(Checkpointer {
            signal,
            thread: Some(thread),
        }))
    }

    /// Wakes the thread, tells it to stop, and joins it. A checkpoint in progress finishes
    /// first: a blocking one can take the write gate's wait (up to the busy timeout), a
    /// checkout of a write connection (up to the pool timeout) and its wait for readers (half
    /// the busy timeout).
    pub(crate) fn stop(&mut self) {
        *self.signal.stopped.lock() = true;
        self.signal.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("Database checkpointer thread panicked");
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct CheckpointTask {
    upkeep: Arc<Upkeep>,
    signal: Arc<StopSignal>,
    interval: Duration,
    mode: CheckpointMode,
    limit: u64,
}

impl CheckpointTask {
    fn run(self) {
        loop {
            // A condvar wait, not a sleep: dropping the database wakes the thread at once.
            let deadline = Instant::now() + self.interval;
            {
                let mut stopped = self.signal.stopped.lock();
                while !*stopped {
                    if self
                        .signal
                        .wake
                        .wait_until(&mut stopped, deadline)
                        .timed_out()
                    {
                        break;
                    }
                }
                if *stopped {
                    break;
                }
            }
            self.tick();
        }
        tracing::debug!("Database checkpointer stopped");
    }

    fn tick(&self) {
        let wal = self.upkeep.wal_bytes();
        // Above the limit, only a TRUNCATE gives the disk space back: PASSIVE and FULL leave
        // the file as large as it is (journal_size_limit then trims it when the WAL restarts).
        let escalated = wal > self.limit && self.mode != CheckpointMode::Truncate;
        let mode = if wal > self.limit {
            CheckpointMode::Truncate
        } else {
            self.mode
        };
        // A checkout waits at most the busy timeout: a pool exhausted by writers skips this
        // tick rather than delaying the next one (or a drop) by DB_POOL_TIMEOUT.
        match self.upkeep.checkpoint(mode, self.upkeep.busy_timeout) {
            Ok(report) if report.busy && escalated => tracing::warn!(
                wal_bytes = report.wal_bytes_before,
                limit = self.limit,
                "Database WAL above DB_WAL_SIZE_LIMIT and the TRUNCATE checkpoint was blocked by \
                 readers or a writer within the busy timeout; retrying next interval"
            ),
            Ok(report) if escalated => tracing::info!(
                wal_bytes_before = report.wal_bytes_before,
                wal_bytes_after = report.wal_bytes_after,
                limit = self.limit,
                elapsed_ms = report.duration.as_secs_f64() * 1e3,
                "Database checkpoint escalated to TRUNCATE: WAL above DB_WAL_SIZE_LIMIT"
            ),
            Ok(report) => tracing::debug!(
                mode = %report.mode,
                busy = report.busy,
                wal_frames = report.wal_frames,
                checkpointed_frames = report.checkpointed_frames,
                wal_bytes_before = report.wal_bytes_before,
                wal_bytes_after = report.wal_bytes_after,
                "Database checkpoint"
            ),
            Err(error) => tracing::warn!(mode = %mode, %error, "Database checkpoint failed"),
        }
    }
}

/// Runs `PRAGMA optimize` on an idle write connection when the database closes. Never waits
/// for a busy pool (a connection still checked out by the application is skipped) and never
/// fails the drop: problems are logged.
pub(crate) fn optimize_on_close(pool: &SqlitePool) {
    let Some(mut conn) = pool.try_get() else {
        tracing::debug!("Database optimize at close skipped: no idle write connection");
        return;
    };
    match conn.batch_execute(OPTIMIZE).map_err(Error::from) {
        Ok(()) => tracing::debug!("Database optimized at close"),
        Err(error @ Error::ReadOnly { .. }) => {
            tracing::debug!(%error, "Database optimize at close skipped")
        }
        Err(error) => tracing::warn!(%error, "Database optimize at close failed"),
    }
}

// ---------------------------------------------------------------------------------------------
// Integrity checks
// ---------------------------------------------------------------------------------------------

/// How thoroughly [`Database::integrity_check`] looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckDepth {
    /// `PRAGMA quick_check`: page structure, free lists, record formats, UNIQUE and NOT NULL.
    /// Linear in the database size; what backups and restores run.
    Quick,
    /// `PRAGMA integrity_check`: also verifies that every index matches its table. Slower
    /// (index lookups for every row).
    Full,
}

impl CheckDepth {
    fn pragma(self) -> &'static str {
        match self {
            CheckDepth::Quick => "PRAGMA quick_check",
            CheckDepth::Full => "PRAGMA integrity_check",
        }
    }
}

#[derive(QueryableByName)]
struct QuickCheckRow {
    #[diesel(sql_type = Text)]
    quick_check: String,
}

#[derive(QueryableByName)]
struct IntegrityCheckRow {
    #[diesel(sql_type = Text)]
    integrity_check: String,
}

/// Runs the check on `conn`: the problems found, empty when SQLite answers `ok`.
fn run_check(conn: &mut SqliteConnection, depth: CheckDepth) -> Result<Vec<String>> {
    let rows: std::result::Result<Vec<String>, _> = match depth {
        CheckDepth::Quick => diesel::sql_query(depth.pragma())
            .load::<QuickCheckRow>(conn)
            .map(|rows| rows.into_iter().map(|r| r.quick_check).collect()),
        CheckDepth::Full => diesel::sql_query(depth.pragma())
            .load::<IntegrityCheckRow>(conn)
            .map(|rows| rows.into_iter().map(|r| r.integrity_check).collect()),
    };
    match rows.map_err(Error::from) {
        Ok(rows) if matches!(rows.as_slice(), [only] if only == "ok") => Ok(Vec::new()),
        // One row may hold several problems, one a line, under a "*** in database main ***"
        // heading: return one problem each.
        Ok(rows) => Ok(rows
            .iter()
            .flat_map(|row| row.lines())
            .filter(|line| !line.trim().is_empty() && !line.starts_with("*** in database"))
            .map(str::to_owned)
            .collect()),
        // The check could not even read a page: that is the problem it found.
        Err(Error::NotADatabase { message, .. } | Error::Corrupt { message, .. }) => {
            Ok(vec![message])
        }
        Err(e) => Err(e),
    }
}

/// Opens `path` (which must exist and start with SQLite's header) for a check or a page count.
fn open_existing(path: &Path) -> Result<SqliteConnection> {
    require_sqlite_header(path)?;
    // mode=rw: never create a file that is not there.
    SqliteConnection::establish(&file_uri(path, Some("mode=rw")))
        .map_err(|e| Error::from(e).with_path(path))
}

/// Runs `PRAGMA quick_check` or `PRAGMA integrity_check` on a database file that no
/// `Database` has open, such as a backup: the problems found, empty when it is sound.
///
/// ```
/// use litedal::maintenance::{CheckDepth, integrity_check_file};
/// use litedal::Overwrite;
///
/// let db = litedal::testing::TestDb::new()?;
/// let dir = tempfile::tempdir()?;
/// let copy = dir.path().join("copy.db");
/// db.backup(&copy, Overwrite::Refuse)?;
/// assert!(integrity_check_file(&copy, CheckDepth::Full)?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be read, [`Error::NotADatabase`] when it does not start
/// with SQLite's header, or the error SQLite reported.
pub fn integrity_check_file(path: impl AsRef<Path>, depth: CheckDepth) -> Result<Vec<String>> {
    let path = path.as_ref();
    let mut conn = open_existing(path)?;
    run_check(&mut conn, depth)
}

/// Checks that `path` is a regular file starting with SQLite's 16-byte header.
fn require_sqlite_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io("reading the metadata of", path, e))?;
    if !meta.is_file() {
        return Err(Error::io(
            "expected an SQLite database file, not a directory or device:",
            path,
            std::io::Error::new(ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let mut header = [0u8; 16];
    let read = File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map(|()| header == *SQLITE_MAGIC);
    match read {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NotADatabase {
            path: path.to_path_buf(),
            message: "the file does not start with the SQLite header".to_owned(),
        }),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Err(Error::NotADatabase {
            path: path.to_path_buf(),
            message: format!("the file is only {} bytes long", meta.len()),
        }),
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Backups
// ---------------------------------------------------------------------------------------------

/// Whether a backup may replace an existing file at its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Overwrite {
    /// Fail with an [`Error::Io`] of kind `AlreadyExists` naming the path (the default
    /// choice: a typo must not destroy an older backup).
    Refuse,
    /// Replace the existing file atomically (the CLI's `--overwrite`).
    Replace,
}

/// Progress of a running backup, reported about four times a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupProgress {
    /// Bytes written to the backup so far.
    pub bytes_written: u64,
    /// Size of the source database (page count x page size) when the backup started; the
    /// copy ends up at most this large (free pages are not copied).
    pub bytes_expected: u64,
}

/// What [`Database::backup`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The backup file (absolute).
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its page count.
    pub pages: u64,
    /// Its page size in bytes.
    pub page_size: u64,
    /// True when an existing file was replaced ([`Overwrite::Replace`]).
    pub replaced: bool,
    /// How long it took, the integrity check of the copy included.
    pub duration: Duration,
}

impl fmt::Display for BackupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "backup {}{}: {} bytes, {} pages of {} bytes, quick_check ok, {:.1} ms",
            self.path.display(),
            if self.replaced { " (replaced)" } else { "" },
            self.bytes,
            self.pages,
            self.page_size,
            self.duration.as_secs_f64() * 1e3
        )
    }
}

/// A connection for a long maintenance statement: a dedicated one for a file (so a backup
/// never occupies a pooled connection the application needs), the pooled one for an
/// in-memory database (a new connection would open a different, empty database).
enum MaintenanceConnection {
    Own(SqliteConnection),
    Pooled(PooledConnection),
}

impl Deref for MaintenanceConnection {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        match self {
            MaintenanceConnection::Own(c) => c,
            MaintenanceConnection::Pooled(c) => c,
        }
    }
}

impl DerefMut for MaintenanceConnection {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            MaintenanceConnection::Own(c) => c,
            MaintenanceConnection::Pooled(c) => c,
        }
    }
}

#[derive(QueryableByName)]
struct PageCount {
    #[diesel(sql_type = BigInt)]
    page_count: i64,
}

#[derive(QueryableByName)]
struct PageSize {
    #[diesel(sql_type = BigInt)]
    page_size: i64,
}

fn pages(conn: &mut SqliteConnection) -> Result<(u64, u64)> {
    let count = diesel::sql_query("PRAGMA page_count").get_result::<PageCount>(conn)?;
    let size = diesel::sql_query("PRAGMA page_size").get_result::<PageSize>(conn)?;
    Ok((
        u64::try_from(count.page_count).unwrap_or(0),
        u64::try_from(size.page_size).unwrap_or(0),
    ))
}

impl Database {
    /// Runs `PRAGMA wal_checkpoint(MODE)` now and reports what it did.
    ///
    /// PASSIVE copies what it can without waiting for anyone. FULL, RESTART and TRUNCATE
    /// queue on the write gate like a transaction, then wait for readers for at most half
    /// the busy timeout (so writers queued behind them still get through within theirs): a
    /// reader that never finishes makes them return with `busy` set, never hang. A
    /// successful TRUNCATE leaves a 0-byte `-wal` file.
    ///
    /// ```
    /// use litedal::CheckpointMode;
    ///
    /// let db = litedal::testing::TestDb::new()?;
    /// let report = db.checkpoint(CheckpointMode::Truncate)?;
    /// assert!(report.is_complete());
    /// assert_eq!(report.wal_bytes_after, 0);
    /// # Ok::<(), litedal::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NestedTransaction`] inside [`Database::transaction`] on the same thread,
    /// [`Error::Busy`] when the write gate stayed taken past the busy timeout,
    /// [`Error::PoolTimeout`], or the error SQLite reported.
    pub fn checkpoint(&self, mode: CheckpointMode) -> Result<CheckpointReport> {
        let _writing = WritingGuard::enter(self.id())?;
        let report = self
            .inner
            .upkeep
            .checkpoint(mode, self.config().pool_timeout())?;
        tracing::info!(
            mode = %mode,
            busy = report.busy,
            wal_frames = report.wal_frames,
            checkpointed_frames = report.checkpointed_frames,
            wal_bytes_before = report.wal_bytes_before,
            wal_bytes_after = report.wal_bytes_after,
            elapsed_ms = report.duration.as_secs_f64() * 1e3,
            "Database checkpoint"
        );
        Ok(report)
    }

    /// The last checkpoint that ran without being blocked (`busy` false), by
    /// [`Database::checkpoint`] or the background checkpointer; `None` before the first.
    /// Health checks report its [`age`](CheckpointReport::age). SQLite's own automatic
    /// checkpoints on commit (`wal_autocheckpoint`) are not seen here.
    pub fn last_checkpoint(&self) -> Option<CheckpointReport> {
        self.inner.upkeep.last()
    }

    /// Checks the database with `PRAGMA quick_check` or `PRAGMA integrity_check` on a read
    /// connection (readers and writers keep running): the problems found, empty when sound.
    ///
    /// ```
    /// use litedal::CheckDepth;
    ///
    /// let db = litedal::testing::TestDb::new()?;
    /// assert!(db.integrity_check(CheckDepth::Quick)?.is_empty());
    /// # Ok::<(), litedal::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::PoolTimeout`], or an error SQLite reported other than corruption (corruption
    /// is returned as a problem).
    pub fn integrity_check(&self, depth: CheckDepth) -> Result<Vec<String>> {
        let mut conn = self.read_connection()?;
        let problems = run_check(&mut conn, depth)?;
        match problems.first() {
            None => tracing::info!(?depth, "Database integrity check passed"),
            Some(first) => tracing::error!(
                ?depth,
                problems = problems.len(),
                %first,
                "Database integrity check found problems"
            ),
        }
        Ok(problems)
    }

    /// Runs `PRAGMA optimize` (ANALYZE where statistics are missing or stale, capped by
    /// SQLite's analysis limit) in a write transaction. It also runs when the last clone of
    /// the database is dropped; call it after large batch inserts, so the query planner
    /// knows about the new rows before the next restart.
    ///
    /// # Errors
    ///
    /// As [`Database::transaction`].
    pub fn optimize(&self) -> Result<()> {
        let started = Instant::now();
        self.transaction(|conn| Ok(conn.batch_execute(OPTIMIZE)?))?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "Database optimized"
        );
        Ok(())
    }

    /// Writes a consistent snapshot of the database to `dest` while readers and writers keep
    /// running. See [`Database::backup_with_progress`].
    ///
    /// ```
    /// use litedal::Overwrite;
    ///
    /// let db = litedal::testing::TestDb::new()?;
    /// let dir = tempfile::tempdir()?;
    /// let report = db.backup(dir.path().join("backups/main.db"), Overwrite::Refuse)?;
    /// assert!(report.pages > 0);
    /// // The same path again is refused unless Overwrite::Replace is given.
    /// assert!(db.backup(&report.path, Overwrite::Refuse).is_err());
    /// db.backup(&report.path, Overwrite::Replace)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Database::backup_with_progress`].
    pub fn backup(&self, dest: impl AsRef<Path>, overwrite: Overwrite) -> Result<BackupReport> {
        self.backup_inner(dest.as_ref(), overwrite, None)
    }

    /// Writes a consistent snapshot of the database to `dest`, calling `progress` about four
    /// times a second and once at the end.
    ///
    /// The snapshot is `VACUUM INTO` (one read transaction, so writers are never blocked and
    /// the copy is never torn) with the path as a bound parameter, written to a temporary
    /// file created 0600 *beside* `dest`: `rename(2)` is atomic only within one file system,
    /// so a temporary file elsewhere (say on a tmpfs `/tmp`) could not be renamed into place.
    /// The copy is fsynced, checked with `PRAGMA quick_check` before it takes `dest`'s name
    /// (a failed copy never replaces a good older backup), renamed, and the directory is
    /// fsynced so the rename itself survives power loss. Missing parent directories are
    /// created 0700.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path: of kind `AlreadyExists` when `dest` exists and
    /// `overwrite` is [`Overwrite::Refuse`] (nothing is written), `InvalidInput` when `dest`
    /// is the database's own file, its `-wal`/`-shm`, a directory or not valid UTF-8, or the
    /// file-system error; [`Error::NotADatabase`] when the copy fails its check; or the error
    /// SQLite reported.
    pub fn backup_with_progress<F>(
        &self,
        dest: impl AsRef<Path>,
        overwrite: Overwrite,
        mut progress: F,
    ) -> Result<BackupReport>
    where
        F: FnMut(BackupProgress) + Send,
    {
        self.backup_inner(dest.as_ref(), overwrite, Some(&mut progress))
    }

    fn backup_inner(
        &self,
        dest: &Path,
        overwrite: Overwrite,
        progress: Option<&mut (dyn FnMut(BackupProgress) + Send)>,
    ) -> Result<BackupReport> {
        let started = Instant::now();
        let dest = std::path::absolute(dest)
            .map_err(|e| Error::io("resolving the backup path", dest, e))?;
        let (dir, name) = split_file_path(&dest, "the backup path names no file:")?;
        if let Some(db_path) = self.path() {
            refuse_live_files(&dest, &dir, &name, db_path)?;
        }
        let replaced = match std::fs::symlink_metadata(&dest) {
            Ok(meta) if meta.is_dir() => {
                return Err(Error::io(
                    "the backup destination is a directory:",
                    &dest,
                    std::io::Error::new(ErrorKind::InvalidInput, "give a file path"),
                ));
            }
            Ok(_) if overwrite == Overwrite::Refuse => return Err(exists_error(&dest)),
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io("reading the metadata of", &dest, e)),
        };
        create_private_dir(&dir)?;
        let temp = private_temp_file(&dir, &name)?;
        // The path is bound as a parameter, never formatted into the SQL; it is absolute, so
        // SQLite cannot read it as a `file:` URI.
        let temp_str = temp.to_str().ok_or_else(|| {
            Error::io(
                "the backup path is not valid UTF-8 (SQLite needs UTF-8):",
                &dest,
                std::io::Error::new(ErrorKind::InvalidInput, "rename the directory or file"),
            )
        })?;

        let mut conn = self.maintenance_connection()?;
        let (page_count, page_size) = pages(&mut conn)?;
        let expected = page_count.saturating_mul(page_size);
        let vacuum = with_progress(&temp, expected, progress, || {
            diesel::sql_query("VACUUM INTO ?")
                .bind::<Text, _>(temp_str)
                .execute(&mut *conn)
        });
        drop(conn);
        vacuum?;

        sync_file(&temp)?;
        let mut check = open_existing(&temp)?;
        let problems = run_check(&mut check, CheckDepth::Quick)?;
        let (pages, page_size) = pages(&mut check)?;
        drop(check);
        if !problems.is_empty() {
            return Err(Error::NotADatabase {
                path: dest,
                message: format!(
                    "the backup copy failed quick_check: {}",
                    problems.join("; ")
                ),
            });
        }
        let persisted = match overwrite {
            Overwrite::Refuse => temp.persist_noclobber(&dest),
            Overwrite::Replace => temp.persist(&dest),
        };
        if let Err(e) = persisted {
            return Err(if e.error.kind() == ErrorKind::AlreadyExists {
                exists_error(&dest)
            } else {
                Error::io("renaming the backup into place at", &dest, e.error)
            });
        }
        sync_dir(&dir)?;
        let bytes = std::fs::metadata(&dest)
            .map_err(|e| Error::io("reading the metadata of", &dest, e))?
            .len();
        let report = BackupReport {
            path: dest,
            bytes,
            pages,
            page_size,
            replaced,
            duration: started.elapsed(),
        };
        tracing::info!(
            path = %report.path.display(),
            bytes = report.bytes,
            pages = report.pages,
            replaced = report.replaced,
            elapsed_ms = report.duration.as_secs_f64() * 1e3,
            "Database backup written"
        );
        Ok(report)
    }

    fn maintenance_connection(&self) -> Result<MaintenanceConnection> {
        if self.location().is_memory() {
            return Ok(MaintenanceConnection::Pooled(self.write_connection()?));
        }
        let mut conn = SqliteConnection::establish(self.uri())?;
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}",
            self.config().busy_timeout().as_millis()
        ))?;
        Ok(MaintenanceConnection::Own(conn))
    }
}

/// Runs `work` while a helper thread reports the size of `file` to `progress`; reports the
/// final size once more at the end.
fn with_progress<T>(
    file: &Path,
    expected: u64,
    progress: Option<&mut (dyn FnMut(BackupProgress) + Send)>,
    work: impl FnOnce() -> T,
) -> T {
    let Some(progress) = progress else {
        return work();
    };
    let progress = Mutex::new(progress);
    let report = || {
        let mut callback = progress.lock();
        (*callback)(BackupProgress {
            bytes_written: std::fs::metadata(file).map_or(0, |m| m.len()),
            bytes_expected: expected,
        });
    };
    let done = StopSignal::default();
    let out = std::thread::scope(|scope| {
        let watcher = std::thread::Builder::new()
            .name("litedal-backup".to_owned())
            .spawn_scoped(scope, || {
                let mut stopped = done.stopped.lock();
                while !*stopped {
                    if done
                        .wake
                        .wait_for(&mut stopped, Duration::from_millis(250))
                        .timed_out()
                    {
                        report();
                    }
                }
            });
        if let Err(error) = &watcher {
            // Progress is a convenience: the backup goes on without it.
            tracing::warn!(%error, "Database backup: progress thread not started");
        }
        let out = work();
        *done.stopped.lock() = true;
        done.wake.notify_all();
        out
    });
    report();
    out
}

fn exists_error(path: &Path) -> Error {
    Error::io(
        "refusing to overwrite the existing file",
        path,
        std::io::Error::new(
            ErrorKind::AlreadyExists,
            "it already exists; pass Overwrite::Replace (--overwrite) to replace it",
        ),
    )
}

/// `dir/name + suffix`, e.g. `main.db` -> `main.db-wal`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Splits an absolute file path into its directory and file name; `op` says whose path it
/// is in the error.
fn split_file_path(path: &Path, op: &'static str) -> Result<(PathBuf, std::ffi::OsString)> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => Ok((dir.to_path_buf(), name.to_owned())),
        _ => Err(Error::io(
            op,
            path,
            std::io::Error::new(ErrorKind::InvalidInput, "give a file path"),
        )),
    }
}

/// Refuses a backup destination that is the live database or one of its companion files:
/// renaming a snapshot over them while the database is open would corrupt it.
fn refuse_live_files(
    dest: &Path,
    dir: &Path,
    name: &std::ffi::OsStr,
    db_path: &Path,
) -> Result<()> {
    let Ok(db) = std::fs::canonicalize(db_path) else {
        return Ok(());
    };
    let resolved = match std::fs::canonicalize(dest) {
        Ok(p) => p,
        Err(_) => match std::fs::canonicalize(dir) {
            Ok(d) => d.join(name),
            Err(_) => return Ok(()), // the directory does not exist: cannot be the database's
        },
    };
    let live = ["", "-wal", "-shm", "-journal"]
        .iter()
        .any(|suffix| resolved == sibling(&db, suffix));
    if live {
        return Err(Error::io(
            "refusing to write a backup over the live database's own files:",
            dest,
            std::io::Error::new(
                ErrorKind::InvalidInput,
                "choose a path outside the database's own files",
            ),
        ));
    }
    Ok(())
}

/// Creates `dir` and its missing parents with mode 0700.
fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("creating the directory", dir, e))
}

/// An empty file named `.NAME.XXXXXX.tmp` in `dir`, mode 0600 whatever the umask, deleted
/// again if it is dropped before being renamed into place.
fn private_temp_file(dir: &Path, name: &std::ffi::OsStr) -> Result<tempfile::TempPath> {
    let prefix = format!(".{}.", name.to_string_lossy());
    let file = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a temporary file in", dir, e))?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("setting the mode of", file.path(), e))?;
    Ok(file.into_temp_path())
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("syncing", path, e))
}

/// Makes a rename in `dir` durable: the new directory entry is on disk after this.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("syncing the directory", dir, e))
}

// ---------------------------------------------------------------------------------------------
// Restore
// ---------------------------------------------------------------------------------------------

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The database file that was replaced or created (absolute).
    pub target: PathBuf,
    /// The backup it was restored from (absolute).
    pub backup: PathBuf,
    /// Size of the restored database in bytes.
    pub bytes: u64,
    /// Its page count.
    pub pages: u64,
    /// True when an existing database was replaced.
    pub replaced: bool,
    /// Stale `-wal`, `-shm` and `-journal` files that were removed.
    pub removed: Vec<PathBuf>,
    /// How long it took.
    pub duration: Duration,
}

impl fmt::Display for RestoreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "restored {} from {}: {} bytes, {} pages, quick_check ok, {} stale file(s) removed, {:.1} ms",
            self.target.display(),
            self.backup.display(),
            self.bytes,
            self.pages,
            self.removed.len(),
            self.duration.as_secs_f64() * 1e3
        )
    }
}

/// Replaces the database file `target` with the backup at `backup`, atomically, while no
/// other connection has `target` open.
///
/// Steps: the backup must be an SQLite file. A symlinked `target` is followed to the file it
/// points at (SQLite opens that file and names its `-wal` and `-shm` after it), which is the
/// file replaced; the link stays. Nobody may have the database open: in WAL mode every open
/// connection, idle or not, in any process, holds a lock on the database file and on its
/// `-shm` file for as long as it is open, so the kernel's lock table is asked about the
/// database and its `-wal`, `-shm` and `-journal` files (this works whatever the files hold:
/// a damaged header, or leftovers of a deleted database), and for a file SQLite can open, a
/// connection in `locking_mode=EXCLUSIVE` also takes SQLite's exclusive lock, waiting at most
/// [`RESTORE_LOCK_WAIT`], and holds it while the copy is made. The backup is copied to a
/// temporary file beside `target`, fsynced and checked with `PRAGMA quick_check`; it gets the
/// replaced file's owner, group and mode (a new file: 0600, the caller's owner), so a restore
/// run as root leaves a file the service can still open. Then the lock is released, stale
/// `-wal`, `-shm` and `-journal` files are removed (a stale WAL would otherwise be replayed
/// into the restored file), the copy is renamed over `target` and the directory is fsynced.
/// The backup file itself is never modified.
///
/// Stop the application first: the refusal catches one that is still running, but a process
/// that opens the database between the release of the lock and the rename (microseconds)
/// would keep writing to the replaced file. In rollback-journal mode (`DB_ENABLE_WAL=false`)
/// idle connections hold no lock and cannot be detected.
///
/// ```
/// use litedal::{Config, Database, Overwrite};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("main.db");
/// let db = Database::open(Config::builder().database_url(path.display().to_string()).build()?)?;
/// let backup = db.backup(dir.path().join("backup.db"), Overwrite::Refuse)?;
/// drop(db); // restore refuses while the database is open
/// let report = litedal::maintenance::restore(&backup.path, &path)?;
/// assert!(report.replaced);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`Error::Io`] of kind `ResourceBusy` naming the file when another connection or process
/// has the database or one of its files open (or when that cannot be determined for a target
/// SQLite cannot open); [`Error::NotADatabase`] naming the file when the backup is not an
/// SQLite database or the copy fails its check; [`Error::Io`] naming the path for file-system
/// errors (including an owner that cannot be kept: run the restore as that user or as root),
/// or when `backup` and `target` are the same file.
pub fn restore(backup: impl AsRef<Path>, target: impl AsRef<Path>) -> Result<RestoreReport> {
    let started = Instant::now();
    let (backup, target) = (backup.as_ref(), target.as_ref());
    let backup = std::path::absolute(backup)
        .map_err(|e| Error::io("resolving the backup path", backup, e))?;
    let target = std::path::absolute(target)
        .map_err(|e| Error::io("resolving the restore target", target, e))?;
    require_sqlite_header(&backup)?;
    let target = follow_symlinks(&target)?;
    let (dir, name) = split_file_path(&target, "the restore target names no file:")?;
    if let (Ok(a), Ok(b)) = (
        std::fs::canonicalize(&backup),
        std::fs::canonicalize(&target),
    ) {
        if a == b {
            return Err(Error::io(
                "the backup and the restore target are the same file:",
                &target,
                std::io::Error::new(ErrorKind::InvalidInput, "give the backup's own path"),
            ));
        }
    }
    // Note: the target is never opened with a plain file descriptor while this process might
    // hold SQLite connections to it: closing any descriptor of a file drops all of the
    // process's POSIX locks on it, SQLite's included. `file_locks` asks the kernel's lock
    // table first for that reason.
    let existing = match std::fs::symlink_metadata(&target) {
        Ok(meta) if meta.is_dir() => {
            return Err(Error::io(
                "the restore target is a directory:",
                &target,
                std::io::Error::new(ErrorKind::InvalidInput, "give the database file's path"),
            ));
        }
        Ok(meta) if !meta.is_file() => {
            return Err(Error::io(
                "the restore target is not a regular file:",
                &target,
                std::io::Error::new(ErrorKind::InvalidInput, "give the database file's path"),
            ));
        }
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("reading the metadata of", &target, e)),
    };
    let replaced = existing.is_some();
    let healthy = replaced && require_sqlite_header(&target).is_ok();
    let companions: Vec<PathBuf> = ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| sibling(&target, suffix))
        .collect();
    match crate::file_locks::first_locked(&companions) {
        Ok(None) => {}
        Ok(Some(holder)) => return Err(in_use(&target, Some(&holder))),
        // SQLite's own lock below still decides for a database it can open.
        Err(error) if healthy => {
            tracing::warn!(%error, "Database restore: the kernel's lock table could not be read")
        }
        Err(error) => {
            tracing::error!(%error, "Database restore: the kernel's lock table could not be read");
            return Err(Error::io(
                "refusing to restore: cannot tell whether a process has the database open \
                 (the kernel's lock table is unreadable and SQLite cannot open the file):",
                &target,
                std::io::Error::new(
                    ErrorKind::ResourceBusy,
                    "stop every process that uses it, then move the file and its -wal/-shm aside",
                ),
            ));
        }
    }
    let lock = if healthy {
        match ExclusiveLock::take(&target) {
            Ok(lock) => Some(lock),
            // A header that looks right over a damaged file: nobody can use it, and the lock
            // table said nobody has it open.
            Err(Error::NotADatabase { .. } | Error::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };

    create_private_dir(&dir)?;
    let temp = private_temp_file(&dir, &name)?;
    copy_file(&backup, &temp)?;
    if let Some(meta) = &existing {
        keep_owner_and_mode(&temp, meta, &target)?;
    }
    sync_file(&temp)?;
    let mut check = open_existing(&temp)?;
    let problems = run_check(&mut check, CheckDepth::Quick)?;
    let (pages, _) = pages(&mut check)?;
    drop(check);
    if !problems.is_empty() {
        return Err(Error::NotADatabase {
            path: backup,
            message: format!("the backup failed quick_check: {}", problems.join("; ")),
        });
    }

    drop(lock);
    let mut removed = Vec::new();
    for stale in &companions[1..] {
        match std::fs::remove_file(stale) {
            Ok(()) => removed.push(stale.clone()),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing the stale file", stale, e)),
        }
    }
    // A target that did not exist is not clobbered if something created it meanwhile.
    let persisted = if replaced {
        temp.persist(&target)
    } else {
        temp.persist_noclobber(&target)
    };
    persisted
        .map_err(|e| Error::io("renaming the restored copy into place at", &target, e.error))?;
    sync_dir(&dir)?;
    let bytes = std::fs::metadata(&target)
        .map_err(|e| Error::io("reading the metadata of", &target, e))?
        .len();
    let report = RestoreReport {
        target,
        backup,
        bytes,
        pages,
        replaced,
        removed,
        duration: started.elapsed(),
    };
    tracing::info!(
        target = %report.target.display(),
        backup = %report.backup.display(),
        bytes = report.bytes,
        pages = report.pages,
        removed = report.removed.len(),
        elapsed_ms = report.duration.as_secs_f64() * 1e3,
        "Database restored"
    );
    Ok(report)
}

/// The refusal when a process has the database `target` open (`holder`: who holds a lock on
/// which of its files, when the kernel said).
fn in_use(target: &Path, holder: Option<&crate::file_locks::Holder>) -> Error {
    let detail = match holder {
        Some(holder) => {
            let who = match holder.pid {
                Some(pid) if u32::try_from(pid).is_ok_and(|p| p == std::process::id()) => {
                    "this process".to_owned()
                }
                Some(pid) => format!("process {pid}"),
                None => "another process".to_owned(),
            };
            format!("{who} holds a lock on {}; ", holder.path.display())
        }
        None => String::new(),
    };
    Error::io(
        "refusing to restore: another connection or process has the database open:",
        target,
        std::io::Error::new(
            ErrorKind::ResourceBusy,
            format!(
                "{detail}stop the application (and any other SQLite client of this file) first"
            ),
        ),
    )
}

/// `path` with every symlink in its last component followed (also a dangling one: the file it
/// names is where the restored database goes), in a directory with its own symlinks resolved.
fn follow_symlinks(path: &Path) -> Result<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&path)
                    .map_err(|e| Error::io("reading the symlink", &path, e))?;
                path = match path.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::NotFound => break,
            Err(e) => return Err(Error::io("reading the metadata of", &path, e)),
        }
    }
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::io(
            "the restore target is a chain of more than 40 symlinks:",
            &path,
            std::io::Error::new(ErrorKind::InvalidInput, "give the database file's path"),
        ));
    }
    let (dir, name) = split_file_path(&path, "the restore target names no file:")?;
    Ok(match std::fs::canonicalize(&dir) {
        Ok(dir) => dir.join(name),
        Err(_) => path,
    })
}

/// Gives the restored copy the owner, group and mode of the file it replaces.
fn keep_owner_and_mode(copy: &Path, was: &std::fs::Metadata, target: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let now = std::fs::metadata(copy).map_err(|e| Error::io("reading the metadata of", copy, e))?;
    if (now.uid(), now.gid()) != (was.uid(), was.gid()) {
        std::os::unix::fs::chown(copy, Some(was.uid()), Some(was.gid())).map_err(|e| {
            Error::io(
                "keeping the owner and group of the restore target (run the restore as its owner or as root):",
                target,
                e,
            )
        })?;
    }
    std::fs::set_permissions(copy, std::fs::Permissions::from_mode(was.mode() & 0o7777))
        .map_err(|e| Error::io("keeping the mode of the restore target on", copy, e))
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    let mut reader = File::open(from).map_err(|e| Error::io("opening the backup", from, e))?;
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(to)
        .map_err(|e| Error::io("opening the temporary copy", to, e))?;
    std::io::copy(&mut reader, &mut writer)
        .map_err(|e| Error::io("copying the backup to", to, e))?;
    Ok(())
}

/// An SQLite connection holding an exclusive lock on a database file.
struct ExclusiveLock {
    _conn: SqliteConnection,
}

impl ExclusiveLock {
    fn take(target: &Path) -> Result<ExclusiveLock> {
        let in_use = || in_use(target, None);
        let mut conn = SqliteConnection::establish(&file_uri(target, Some("mode=rw")))
            .map_err(|e| Error::from(e).with_path(target))?;
        // In EXCLUSIVE locking mode the first transaction takes an exclusive lock on the
        // database file and keeps it until the connection closes. A WAL database is then
        // opened without shared memory, and the exclusive lock is refused while any other
        // connection (idle ones included, in this process or another) has the file open.
        let locked = conn
            .batch_execute(&format!(
                "PRAGMA busy_timeout = {}; PRAGMA locking_mode = EXCLUSIVE;",
                RESTORE_LOCK_WAIT.as_millis()
            ))
            .and_then(|()| conn.batch_execute("BEGIN EXCLUSIVE; COMMIT;"))
            .map_err(|e| Error::from(e).with_path(target));
        match locked {
            Ok(()) => Ok(ExclusiveLock { _conn: conn }),
            Err(Error::Busy) => Err(in_use()),
            Err(e) => Err(e),
        }
    }
}
