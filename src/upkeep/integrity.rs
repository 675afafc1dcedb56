//! Integrity checks and `PRAGMA optimize`.

use std::path::Path;
use std::time::Instant;

use diesel::connection::SimpleConnection;

pub use super::check::CheckDepth;
use super::check::run_check;
use super::untrusted::{self, Source};
use crate::database::{Database, SqlitePool, trying_write_lock};
use crate::error::{Error, Result};

/// `PRAGMA optimize` mask used by [`Database::optimize`] and at close: `0x02` runs ANALYZE
/// where statistics are missing or stale, `0x10` caps each ANALYZE with SQLite's analysis
/// limit (so it stays in the milliseconds on large tables), and `0x10000` looks at every
/// table, not only those queried on the connection that runs it: in a pool, the connection
/// that runs the pragma is rarely the one that ran the reads.
pub(crate) const OPTIMIZE: &str = "PRAGMA optimize = 0x10012";

/// Runs `PRAGMA quick_check` or `PRAGMA integrity_check` on a database file that no
/// `Database` has open, such as a backup: the problems found, empty when it is sound.
///
/// The file is treated as untrusted (it may be damaged or crafted): opened read-only with
/// `query_only`, `trusted_schema=OFF`, `cell_size_check=ON` and no memory map, without any
/// application hook. A non-empty `-wal` beside it is read only while some process has the
/// database open (then it is the live WAL); beside a file nobody has open it is refused,
/// because SQLite would replay a WAL of any database onto the file.
///
/// ```
/// use litedal::maintenance::{CheckDepth, integrity_check_file};
/// use litedal::Overwrite;
///
/// let db = litedal::example::test_db()?;
/// let dir = tempfile::tempdir()?;
/// let copy = dir.path().join("copy.db");
/// db.backup(&copy, Overwrite::Refuse)?;
/// assert!(integrity_check_file(&copy, CheckDepth::Full)?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`Error::Io`] naming the file when it cannot be read or is not a regular file, or naming
/// the `-wal` beside it when that is refused; [`Error::NotADatabase`] naming the file when it
/// is not an SQLite database; or the error SQLite reported.
pub fn integrity_check_file(path: impl AsRef<Path>, depth: CheckDepth) -> Result<Vec<String>> {
    let path = path.as_ref();
    let mut conn = untrusted::open(path, Source::MaybeLive)?;
    run_check(&mut conn, depth).map_err(|e| e.with_path(path))
}

/// Runs `PRAGMA optimize` on an idle write connection when the database closes. Never waits
/// for a busy pool (a connection still checked out by the application is skipped) and never
/// fails the drop: problems are logged.
pub(crate) fn optimize_on_close(pool: &SqlitePool) {
    let Some(mut conn) = pool.try_get() else {
        tracing::debug!("Database optimize at close skipped: no idle write connection");
        return;
    };
    // Never wait for the write lock at close: another process holding it would delay every
    // exit (a CLI command's, say) by the busy timeout. The connection is closing anyway.
    let optimized = trying_write_lock(|| {
        conn.batch_execute("PRAGMA busy_timeout = 0")
            .and_then(|()| conn.batch_execute(OPTIMIZE))
    })
    .map_err(Error::from);
    match optimized {
        Ok(()) => tracing::debug!("Database optimized at close"),
        Err(error @ (Error::ReadOnly { .. } | Error::Busy)) => {
            tracing::debug!(%error, "Database optimize at close skipped")
        }
        Err(error) => tracing::warn!(%error, "Database optimize at close failed"),
    }
}

impl Database {
    /// Checks the database with `PRAGMA quick_check` or `PRAGMA integrity_check` on a read
    /// connection (readers and writers keep running): the problems found, empty when sound.
    ///
    /// ```
    /// use litedal::CheckDepth;
    ///
    /// let db = litedal::example::test_db()?;
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
}
