//! Write transactions on PostgreSQL with SQLite's semantics: one writer at a time.
//!
//! Every litedal write transaction takes the transaction-scoped advisory lock
//! [`WRITE_LOCK_KEY`] right after `BEGIN` (READ COMMITTED), so litedal's writers run one after
//! another as they do on SQLite: a read-modify-write in the closure never loses an update and
//! never fails with a serialization error for the caller to retry, and the closure runs
//! exactly once (it stays `FnOnce`). Readers are never blocked (MVCC). The price is
//! PostgreSQL's write concurrency; writers outside litedal are not serialized by the lock.
//!
//! A closure that returns `Ok` after one of its statements failed does not commit: PostgreSQL
//! aborted the transaction at the failure and would turn `COMMIT` into `ROLLBACK`. The
//! transaction (or savepoint) is rolled back and returns the failed statement's error, as
//! SQLite's does when SQLite rolled a transaction back (see [`abort`](super::abort)).

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;

use super::abort;
use crate::error::{Error, Result};

/// The advisory lock key litedal's write transactions take (`pg_advisory_xact_lock`): the
/// bytes of "litedal\0" read as a big-endian `i64`. Other code that must not interleave with
/// litedal's writers can take the same lock.
pub const WRITE_LOCK_KEY: i64 = i64::from_be_bytes(*b"litedal\0");

/// Runs `f` as a write on `conn`: a savepoint inside an open transaction, else its own
/// transaction holding [`WRITE_LOCK_KEY`]. Commits on `Ok`, rolls back on `Err` and panic,
/// and on `Ok` after a failed statement (returning that statement's error).
pub(crate) fn write_on_pg<T>(
    conn: &mut PgConnection,
    f: impl FnOnce(&mut PgConnection) -> Result<T>,
) -> Result<T> {
    let depth = AnsiTransactionManager::transaction_manager_status_mut(conn).transaction_depth()?;
    AnsiTransactionManager::begin_transaction(conn)?;
    let result = catch_unwind(AssertUnwindSafe(|| {
        if depth.is_none() {
            conn.batch_execute(&format!("SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})"))?;
        }
        f(conn)
    }));
    match result {
        Ok(Ok(value)) => {
            if let Some(cause) = abort::aborted(conn) {
                if let Err(rollback) = AnsiTransactionManager::rollback_transaction(conn) {
                    tracing::warn!(error = %rollback, "Database rollback failed");
                }
                tracing::error!(
                    cause = %cause,
                    savepoint = depth.is_some(),
                    "Database transaction rolled back: a statement in it failed and PostgreSQL \
                     aborted it; nothing of it was committed"
                );
                return Err(cause);
            }
            AnsiTransactionManager::commit_transaction(conn).map_err(Error::from)?;
            Ok(value)
        }
        Ok(Err(error)) => {
            if let Err(rollback) = AnsiTransactionManager::rollback_transaction(conn) {
                tracing::warn!(error = %rollback, "Database rollback failed");
            }
            Err(error)
        }
        Err(panic) => {
            let _ = AnsiTransactionManager::rollback_transaction(conn);
            resume_unwind(panic)
        }
    }
}
