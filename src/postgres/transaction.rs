//! Write transactions on PostgreSQL with SQLite's semantics: one writer at a time.
//!
//! Every litedal write transaction takes the transaction-scoped advisory lock
//! [`WRITE_LOCK_KEY`] right after `BEGIN` (READ COMMITTED), so litedal's writers run one after
//! another as they do on SQLite: a read-modify-write in the closure never loses an update and
//! never fails with a serialization error for the caller to retry, and the closure runs
//! exactly once (it stays `FnOnce`). Readers are never blocked (MVCC). The price is
//! PostgreSQL's write concurrency; writers outside litedal are not serialized by the lock.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;

use crate::error::{Error, Result};

/// The advisory lock key litedal's write transactions take (`pg_advisory_xact_lock`): the
/// bytes of "litedal\0" read as a big-endian `i64`. Other code that must not interleave with
/// litedal's writers can take the same lock.
pub const WRITE_LOCK_KEY: i64 = i64::from_be_bytes(*b"litedal\0");

/// Runs `f` as a write on `conn`: a savepoint inside an open transaction, else its own
/// transaction holding [`WRITE_LOCK_KEY`]. Commits on `Ok`, rolls back on `Err` and panic.
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
