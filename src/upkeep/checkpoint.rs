//! WAL checkpoints: on demand ([`Database::checkpoint`]) and in the background.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::sqlite::SqliteConnection;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::database::{Database, SqlitePool, WritingGuard};
use crate::error::{Error, Result};
use crate::pragmas::{CheckpointMode, Role};

/// Name of the background checkpointer thread (at most 15 bytes, so `ps`/`top` show it whole).
pub const CHECKPOINTER_THREAD_NAME: &str = "litedal-ckpt";

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

/// How a checkpoint ended, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckpointOutcome {
    /// Every frame of the WAL is in the database file.
    Complete,
    /// Readers held older snapshots: some frames are still only in the WAL.
    Partial,
    /// It waited the whole (bounded) timeout for readers or writers and gave up, or another
    /// connection was checkpointing.
    Busy,
    /// It failed with an error (no connection, the gate, an I/O error).
    Failed,
}

impl CheckpointOutcome {
    /// `"complete"`, `"partial"`, `"busy"` or `"failed"`: the `outcome` label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointOutcome::Complete => "complete",
            CheckpointOutcome::Partial => "partial",
            CheckpointOutcome::Busy => "busy",
            CheckpointOutcome::Failed => "failed",
        }
    }
}

/// Every checkpoint of a database since it opened, on demand and in the background
/// ([`Database::checkpoint_stats`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct CheckpointStats {
    /// How many checkpoints ran, by mode and outcome (only the pairs that happened).
    pub runs: Vec<(CheckpointMode, CheckpointOutcome, u64)>,
    /// WAL frames copied into the database file, as SQLite reported them. A RESTART or
    /// TRUNCATE that reset the WAL reports no frame count, so its frames are not in here.
    pub frames_checkpointed: u64,
    /// How long the last checkpoint took.
    #[serde(serialize_with = "optional_seconds")]
    pub last_duration: Option<Duration>,
    /// Time since the last checkpoint that was not busy; `None` before the first.
    #[serde(serialize_with = "optional_seconds")]
    pub since_last_success: Option<Duration>,
}

fn optional_seconds<S: serde::Serializer>(
    value: &Option<Duration>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match value {
        Some(d) => serializer.serialize_some(&d.as_secs_f64()),
        None => serializer.serialize_none(),
    }
}

/// The counters behind [`CheckpointStats`].
#[derive(Debug, Default)]
struct CheckpointCounts {
    runs: std::collections::BTreeMap<(CheckpointMode, CheckpointOutcome), u64>,
    frames: u64,
    last_duration: Option<Duration>,
}

impl CheckpointCounts {
    fn record(&mut self, mode: CheckpointMode, result: &Result<CheckpointReport>) {
        let outcome = match result {
            Ok(report) if report.busy => CheckpointOutcome::Busy,
            Ok(report) if report.is_complete() => CheckpointOutcome::Complete,
            Ok(_) => CheckpointOutcome::Partial,
            Err(_) => CheckpointOutcome::Failed,
        };
        *self.runs.entry((mode, outcome)).or_default() += 1;
        if let Ok(report) = result {
            self.frames += report.checkpointed_frames.unwrap_or(0);
            self.last_duration = Some(report.duration);
        }
    }
}

/// What every checkpoint of one database shares with the checkpointer thread: the write pool
/// and gate, the WAL's path and the last successful checkpoint. The thread holds an
/// `Arc<Upkeep>`, never the database itself, so dropping the last `Database` clone is what
/// stops it.
pub(crate) struct Upkeep {
    pool: SqlitePool,
    gate: Option<Arc<Mutex<()>>>,
    wal_path: Option<PathBuf>,
    busy_timeout: Duration,
    last: Mutex<Option<CheckpointReport>>,
    /// Every checkpoint's outcome, for the metrics.
    counts: Mutex<CheckpointCounts>,
    /// When the background checkpointer started, if it runs.
    checkpointer_started: OnceLock<Instant>,
}

impl Upkeep {
    pub(crate) fn new(db: &Database) -> Upkeep {
        Upkeep {
            pool: db.pool(Role::Write).clone(),
            gate: db.write_gate().cloned(),
            // The database path was resolved once, at open.
            wal_path: db.wal_path(),
            busy_timeout: db.config().busy_timeout(),
            last: Mutex::new(None),
            counts: Mutex::new(CheckpointCounts::default()),
            checkpointer_started: OnceLock::new(),
        }
    }

    /// Size of the `-wal` file (0 if it does not exist or the database is in memory).
    pub(crate) fn wal_bytes(&self) -> u64 {
        self.wal_path
            .as_deref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    }

    /// Runs one checkpoint and counts it in the statistics.
    fn checkpoint(
        &self,
        mode: CheckpointMode,
        checkout_timeout: Duration,
    ) -> Result<CheckpointReport> {
        let result = self.checkpoint_once(mode, checkout_timeout);
        self.counts.lock().record(mode, &result);
        result
    }

    /// Runs one checkpoint; records it as the last successful one unless SQLite was busy.
    fn checkpoint_once(
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
                source: Some(error),
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

/// A flag and a condition variable: how a background thread is told to stop at once.
#[derive(Default)]
pub(super) struct StopSignal {
    pub(super) stopped: Mutex<bool>,
    pub(super) wake: Condvar,
}

/// The background checkpointer: a thread that checkpoints every `DB_CHECKPOINT_INTERVAL_SECS`.
pub(crate) struct Checkpointer {
    signal: Arc<StopSignal>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the checkpointer, or returns `None` (and logs why) when it has nothing to do.
    pub(crate) fn start(upkeep: &Arc<Upkeep>, db: &Database) -> Result<Option<Checkpointer>> {
        let (config, journal_mode) = (db.config(), db.journal_mode());
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
                    db.path().unwrap_or(Path::new(":memory:")),
                    e,
                )
            })?;
        let _ = upkeep.checkpointer_started.set(Instant::now());
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
    /// let db = litedal::example::test_db()?;
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
            .upkeep()
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
        self.upkeep().last()
    }

    /// Every checkpoint since the database opened (on demand and by the background
    /// checkpointer), for the metrics: counts by mode and outcome, frames checkpointed, the
    /// last one's duration, and the time since the last one that was not busy.
    ///
    /// ```
    /// use litedal::{CheckpointMode, upkeep::CheckpointOutcome};
    ///
    /// let db = litedal::example::test_db()?;
    /// db.checkpoint(CheckpointMode::Passive)?;
    /// let stats = db.checkpoint_stats();
    /// assert!(stats.runs.contains(&(CheckpointMode::Passive, CheckpointOutcome::Complete, 1)));
    /// assert!(stats.since_last_success.is_some());
    /// # Ok::<(), litedal::Error>(())
    /// ```
    pub fn checkpoint_stats(&self) -> CheckpointStats {
        let upkeep = self.upkeep();
        let counts = upkeep.counts.lock();
        CheckpointStats {
            runs: counts
                .runs
                .iter()
                .map(|(&(mode, outcome), &n)| (mode, outcome, n))
                .collect(),
            frames_checkpointed: counts.frames,
            last_duration: counts.last_duration,
            since_last_success: upkeep.last().map(|report| report.age()),
        }
    }

    /// While the background checkpointer runs: the time since it started.
    pub(crate) fn checkpointer_running(&self) -> Option<Duration> {
        self.upkeep()
            .checkpointer_started
            .get()
            .map(Instant::elapsed)
    }

    /// The checkpoint state [`start`](super::start) attached at open (or a fresh one, with no
    /// history, for a database opened without it).
    fn upkeep(&self) -> Arc<Upkeep> {
        self.extension::<Upkeep>()
            .unwrap_or_else(|| Arc::new(Upkeep::new(self)))
    }
}
