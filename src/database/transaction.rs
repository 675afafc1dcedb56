//! Write transactions: the write gate, taking SQLite's write lock by polling, savepoints, and
//! what happens when SQLite rolls a transaction back on its own.
//!
//! Every write path (a [`Database::transaction`](crate::Database::transaction), a repository
//! write on `&Database`, and a repository write on a connection the caller holds outside any
//! transaction) goes through [`write_transaction`]: queue on the database's write gate, take the
//! lock with `BEGIN IMMEDIATE` polled every 50 us to 1 ms, run the closure once, commit or roll
//! back. A repository write inside a transaction is a savepoint ([`write_on`]).
//!
//! When a statement fails, SQLite normally undoes only that statement (constraint errors,
//! `SQLITE_BUSY` on a statement, ...), and the savepoint around a repository write undoes the
//! rest of that operation. But for an I/O error, out-of-memory, an interrupt, and a full disk
//! while the page cache spills, SQLite rolls back the *whole* transaction. litedal notices
//! that (SQLite's rollback hook), and from then on until the closure returns: every repository
//! operation on the connection fails with [`Error::TransactionAborted`], no statement run
//! directly on the connection can commit (SQLite's commit hook turns such a commit into a
//! rollback), and the transaction returns the original error, whatever the closure returned.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::{
    AnsiTransactionManager, SimpleConnection, TransactionManager, TransactionManagerStatus,
    ValidTransactionManagerStatus,
};
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use super::connection::ConnectionState;
use super::gate::WriteContext;
use super::observer::Observer;
use crate::error::{Error, Result};
use crate::pragmas::Role;

thread_local! {
    /// The databases (by id) whose write transaction this thread is inside.
    static WRITING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };

    /// Set while `begin_immediate` polls for the write lock: its attempts that find the lock
    /// taken are waiting, not failed statements, and are neither counted nor logged by the
    /// statistics. The last attempt, at the deadline, is counted like any statement.
    static POLLING_WRITE_LOCK: Cell<bool> = const { Cell::new(false) };

    /// Per-thread state of the jitter of `begin_immediate`.
    static JITTER_SEED: Cell<u64> = Cell::new(
        0x9E37_79B9_7F4A_7C15
            ^ u64::from(std::process::id())
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as u64)
                .unwrap_or(1)
                | 1),
    );
}

/// True while this thread polls for the write lock (see [`POLLING_WRITE_LOCK`]).
pub(crate) fn is_polling_write_lock() -> bool {
    POLLING_WRITE_LOCK.with(Cell::get)
}

/// Runs `f`, an attempt that may find the write lock taken and give up at once (not a busy
/// error worth counting or logging), with this thread marked as polling for the lock.
pub(crate) fn trying_write_lock<T>(f: impl FnOnce() -> T) -> T {
    POLLING_WRITE_LOCK.with(|flag| flag.set(true));
    let out = f();
    POLLING_WRITE_LOCK.with(|flag| flag.set(false));
    out
}

/// Marks this thread as inside a write transaction of one database, for as long as it lives.
pub(crate) struct WritingGuard(usize);

impl WritingGuard {
    /// # Errors
    ///
    /// [`Error::NestedTransaction`] when this thread is already inside one of database `id`:
    /// it would wait for itself on the write gate.
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

/// Runs `f` in an immediate write transaction on `conn`, which is outside any transaction:
/// queues on the write gate, takes the write lock, runs `f` once, commits when it returns `Ok`
/// and rolls back when it returns `Err` or panics (the panic then continues).
///
/// # Errors
///
/// [`Error::Busy`] when the gate or the lock stayed taken past the busy timeout; the original
/// error when SQLite rolled the transaction back on its own; whatever `f` returned.
pub(crate) fn write_transaction<T>(
    conn: &mut SqliteConnection,
    writes: &WriteContext,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T>,
) -> Result<T> {
    let result =
        writes.queue(|| run_immediate(conn, writes.busy_timeout, Some(&*writes.observer), f));
    if let Err(Error::Busy) = &result {
        tracing::warn!("Database busy: write lock not acquired within the busy timeout");
    }
    result
}

/// Runs `f` as a write on a connection the caller holds: a savepoint inside the caller's
/// transaction (a statement-level failure undoes only `f`; see the module docs for failures
/// that end the whole transaction), otherwise its own immediate transaction, taken exactly as
/// [`Database::transaction`](crate::Database::transaction) takes it.
pub(crate) fn write_on<T>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T>,
) -> Result<T> {
    let depth = AnsiTransactionManager::transaction_manager_status_mut(conn).transaction_depth()?;
    if depth.is_some() {
        return savepoint(conn, f);
    }
    match ConnectionState::of(conn).map(|state| Arc::clone(state.writes())) {
        Some(writes) => {
            let _writing = WritingGuard::enter(writes.id)?;
            write_transaction(conn, &writes, f)
        }
        // A connection litedal did not open: no gate to queue on, and its own busy timeout.
        None => {
            let busy_timeout = busy_timeout_of(conn)?;
            run_immediate(conn, busy_timeout, None, f)
        }
    }
}

/// `f` in an immediate transaction on a connection outside the pools (the one that runs the
/// migrations at open): the lock is taken by polling, as every write takes it.
pub(crate) fn immediate<T>(
    conn: &mut SqliteConnection,
    busy_timeout: Duration,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T>,
) -> Result<T> {
    run_immediate(conn, busy_timeout, None, f)
}

#[derive(QueryableByName)]
struct ForeignKeys {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    foreign_keys: i32,
}

/// Runs `f` (which opens and ends its own transaction) with foreign keys off on `conn`, and
/// turns them back on afterwards if they were on.
///
/// Migrations need this: SQLite's documented way to change a table (create the new one, copy,
/// drop the old one, rename) drops a parent table, and with foreign keys on that deletes every
/// child row through `ON DELETE CASCADE` (or fails). `PRAGMA foreign_keys = OFF` is a no-op
/// inside a transaction, so a migration cannot turn them off itself: it must happen here,
/// before `BEGIN`. Pair with [`check_foreign_keys`] before the commit.
///
/// # Errors
///
/// `f`'s error; a failure to read or switch the pragma. When foreign keys cannot be turned
/// back on, the connection is marked broken (r2d2 then closes it instead of handing out a
/// connection without them) and the error returned.
pub(crate) fn with_foreign_keys_off<T>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T>,
) -> Result<T> {
    let on = diesel::sql_query("PRAGMA foreign_keys")
        .get_result::<ForeignKeys>(conn)?
        .foreign_keys
        != 0;
    if on {
        conn.batch_execute("PRAGMA foreign_keys = OFF")?;
    }
    let result = f(conn);
    if on {
        if let Err(error) = conn.batch_execute("PRAGMA foreign_keys = ON") {
            tracing::error!(%error, "Database could not turn foreign keys back on after the migrations; the connection will be discarded");
            AnsiTransactionManager::transaction_manager_status_mut(conn).set_in_error();
            return result.and(Err(error.into()));
        }
    }
    result
}

#[derive(QueryableByName)]
struct Violation {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    rowid: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    parent: String,
}

/// `PRAGMA foreign_key_check` inside the migrations' transaction, before it commits: what ran
/// with foreign keys off must not leave a row pointing nowhere.
///
/// # Errors
///
/// [`Error::Migration`] naming the first such row (its table, rowid and the table it points
/// to) and how many there are; the caller's transaction then rolls back.
pub(crate) fn check_foreign_keys(conn: &mut SqliteConnection) -> Result<()> {
    let violations = diesel::sql_query("PRAGMA foreign_key_check").load::<Violation>(conn)?;
    let Some(first) = violations.first() else {
        return Ok(());
    };
    let row = first.rowid.map_or_else(
        || "a row".to_owned(),
        |rowid| format!("the row with rowid {rowid}"),
    );
    Err(Error::Migration {
        doing: "checking the foreign keys before committing the migrations",
        source: format!(
            "{row} of table {} points to a row of {} that does not exist ({} such row(s) in all; \
             PRAGMA foreign_key_check lists them); nothing of the migrations was applied",
            first.table,
            first.parent,
            violations.len()
        )
        .into(),
    })
}

/// The error every operation gets once SQLite rolled back the connection's write
/// transaction, or `None` while it is intact.
pub(crate) fn aborted(conn: &mut SqliteConnection) -> Option<Error> {
    let state = ConnectionState::of(conn)?;
    state.lost().then(|| Error::TransactionAborted {
        cause: state.abort().map(|cause| Box::new(cause.error())),
    })
}

/// `f` inside a savepoint of the transaction open on `conn`.
fn savepoint<T>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T>,
) -> Result<T> {
    if let Some(error) = aborted(conn) {
        return Err(error);
    }
    AnsiTransactionManager::begin_transaction(conn)?;
    let result = f(conn);
    if let (Some(state), Err(error)) = (ConnectionState::of(conn), &result) {
        state.note_loss(error);
    }
    if ConnectionState::of(conn).is_some_and(|state| state.lost()) {
        // SQLite rolled back the whole transaction while `f` ran; the savepoint is gone with
        // it. The caller gets the failed statement's own error.
        let cause = ConnectionState::of(conn).and_then(|state| state.abort().map(|c| c.error()));
        return Err(match (result, cause) {
            (_, Some(cause)) => cause,
            (Err(error), None) => error,
            (Ok(_), None) => Error::TransactionAborted { cause: None },
        });
    }
    match result {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => {
            if let Err(rollback) = AnsiTransactionManager::rollback_transaction(conn) {
                // On a connection litedal did not open, this is how a transaction lost to
                // SQLite shows: make further transaction use fail instead of autocommitting.
                tracing::error!(error = %rollback, cause = %error, "Database savepoint rollback failed");
                AnsiTransactionManager::transaction_manager_status_mut(conn).set_in_error();
            }
            Err(error)
        }
    }
}

/// `BEGIN IMMEDIATE` (waiting for the lock up to `busy_timeout`), `f`, then `COMMIT`, or
/// `ROLLBACK` on error or panic. Reports the transaction to `observer` once it began (a `BEGIN`
/// that stayed busy is not a transaction).
fn run_immediate<T, F>(
    conn: &mut SqliteConnection,
    busy_timeout: Duration,
    observer: Option<&dyn Observer>,
    f: F,
) -> Result<T>
where
    F: FnOnce(&mut SqliteConnection) -> Result<T>,
{
    begin_immediate(conn, busy_timeout)?;
    if let Some(state) = ConnectionState::of(conn) {
        state.begin_write();
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut *conn)));
    let record = |committed: bool| {
        if let Some(observer) = observer {
            observer.transaction_ended(Role::Write, committed);
        }
    };

    if let (Some(state), Ok(Err(error))) = (ConnectionState::of(conn), &outcome) {
        state.note_loss(error);
    }
    if let Some(state) = ConnectionState::of(conn).filter(|state| state.lost()) {
        let cause = state.abort().map(|cause| cause.error());
        let refused = state.refused_commits();
        state.end_write();
        // Whatever the closure opened after the loss (a savepoint starts a new transaction
        // in SQLite) is rolled back too.
        rollback_all(conn);
        record(false);
        tracing::error!(
            cause = cause.as_ref().map(ToString::to_string),
            refused_commits = refused,
            "Database transaction rolled back by SQLite before it could commit; nothing of it was committed"
        );
        return match outcome {
            Err(panic) => resume_unwind(panic),
            Ok(_) => Err(cause.unwrap_or(Error::TransactionAborted { cause: None })),
        };
    }
    match outcome {
        Ok(Ok(value)) => {
            let committed = commit(conn);
            record(committed.is_ok());
            committed.map(|()| value)
        }
        Ok(Err(error)) => {
            rollback_all(conn);
            record(false);
            Err(error)
        }
        Err(panic) => {
            // diesel does not roll back when the closure panics; do it here so the
            // connection goes back to the pool clean (r2d2 also discards connections
            // released while panicking, which closes them and rolls back).
            rollback_all(conn);
            record(false);
            resume_unwind(panic)
        }
    }
}

/// `COMMIT`, let through the commit hook. A failed commit is rolled back.
fn commit(conn: &mut SqliteConnection) -> Result<()> {
    if let Some(state) = ConnectionState::of(conn) {
        // The one commit the hook lets through while the transaction is armed.
        state.allow_commit();
    }
    match conn.batch_execute("COMMIT") {
        Ok(()) => {
            if let Some(state) = ConnectionState::of(conn) {
                state.end_write();
            }
            reset_transaction_status(conn);
            Ok(())
        }
        Err(error) => {
            let error = Error::from(error);
            rollback_all(conn);
            Err(error)
        }
    }
}

/// Rolls back everything open on `conn` (nested savepoints included) and tells diesel that
/// no transaction is open. If SQLite still holds a transaction after that, diesel's
/// transaction manager is marked broken, so that r2d2 discards the connection.
fn rollback_all(conn: &mut SqliteConnection) {
    if let Some(state) = ConnectionState::of(conn) {
        // litedal's own rollback is not a lost transaction.
        state.end_write();
    }
    let rolled_back = conn.batch_execute("ROLLBACK");
    let still_open = match ConnectionState::of(conn) {
        Some(state) => !state.is_autocommit(),
        // "cannot rollback - no transaction is active" is success here.
        None => rolled_back
            .as_ref()
            .is_err_and(|e| !e.to_string().contains("no transaction is active")),
    };
    if still_open {
        if let Err(error) = &rolled_back {
            tracing::error!(%error, "Database rollback failed; the connection will be discarded");
        }
        AnsiTransactionManager::transaction_manager_status_mut(conn).set_in_error();
    } else {
        reset_transaction_status(conn);
    }
}

/// Tells diesel that no transaction is open on `conn` (after litedal ended it by hand).
fn reset_transaction_status(conn: &mut SqliteConnection) {
    *AnsiTransactionManager::transaction_manager_status_mut(conn) =
        TransactionManagerStatus::Valid(ValidTransactionManagerStatus::default());
}

#[derive(QueryableByName)]
struct BusyTimeout {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    timeout: i64,
}

/// The busy timeout set on a connection litedal did not open.
fn busy_timeout_of(conn: &mut SqliteConnection) -> Result<Duration> {
    let row = diesel::sql_query("PRAGMA busy_timeout").get_result::<BusyTimeout>(conn)?;
    Ok(Duration::from_millis(
        u64::try_from(row.timeout).unwrap_or(0),
    ))
}

/// Takes SQLite's write lock with `BEGIN IMMEDIATE`, retrying until `busy_timeout` passes.
///
/// SQLite's own busy handler sleeps 1, 2, 5, ... up to 100 ms between attempts. Against a
/// writer in another process that commits back to back, the lock is free only for the
/// microseconds between two of its transactions, so a waiter that wakes every 100 ms can
/// starve for seconds (measured: waits of 3 s among 3 processes). Here the busy handler is
/// off while the lock is taken and the attempts come every 50 us to 1 ms (jittered), which
/// catches those gaps; the busy timeout is restored as soon as the lock is held.
pub(crate) fn begin_immediate(conn: &mut SqliteConnection, busy_timeout: Duration) -> Result<()> {
    conn.batch_execute("PRAGMA busy_timeout = 0")?;
    let deadline = Instant::now() + busy_timeout;
    let mut pause = Duration::from_micros(50);
    let mut jitter = JITTER_SEED.with(Cell::get);
    let begun = loop {
        let last = Instant::now() >= deadline;
        let mut attempt = || {
            AnsiTransactionManager::begin_transaction_sql(&mut *conn, "BEGIN IMMEDIATE")
                .map_err(Error::from)
        };
        let result = if last {
            attempt()
        } else {
            trying_write_lock(attempt)
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
