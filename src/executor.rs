//! [`Executor`]: where a repository operation runs, on a [`Database`] or on a connection the
//! caller holds, so that operations compose inside one transaction.

use diesel::sqlite::SqliteConnection;

use crate::batch::{BatchRows, insert_chunks};
use crate::database::{Database, PooledConnection, aborted, write_on};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;

/// Where a repository operation runs: on a [`Database`] or on a connection the caller holds.
pub trait Executor: Sized {
    /// Runs a read. On `&Database`: a read-pool connection (every repository read is one
    /// statement, so it needs no transaction of its own).
    ///
    /// # Errors
    ///
    /// [`Error::PoolTimeout`], or whatever `f` returned.
    fn read<T>(self, f: impl FnOnce(&mut SqliteConnection) -> Result<T>) -> Result<T>;

    /// Runs a write. On `&Database`: its own immediate transaction. On a connection outside
    /// any transaction: an immediate transaction taken the same way (the write gate, then the
    /// lock). On a connection inside a transaction: a savepoint, so a statement-level failure
    /// (a constraint, say) undoes only this operation and the transaction goes on; a failure
    /// after which SQLite rolled back the whole transaction (I/O error, full disk, out of
    /// memory, interrupt) is returned as is, and every later operation in that transaction
    /// fails with [`Error::TransactionAborted`] (see [`Database::transaction`]).
    ///
    /// # Errors
    ///
    /// [`Error::Busy`], [`Error::PoolTimeout`], or whatever `f` returned.
    fn write<T>(self, f: impl FnOnce(&mut SqliteConnection) -> Result<T>) -> Result<T>;

    /// Bulk-inserts `rows` into `table` as one write (see [`batch_insert`](crate::batch::batch_insert)). On `&Database`
    /// this is [`Database::batch_insert`], which also refreshes the planner's statistics
    /// after a large batch.
    ///
    /// # Errors
    ///
    /// As [`batch_insert`](crate::batch::batch_insert).
    fn batch_insert<'a, Tab, R>(self, table: Tab, rows: &'a [R]) -> Result<usize>
    where
        Tab: Copy,
        R: BatchRows<'a, Tab>,
    {
        self.write(|conn| insert_chunks(conn, table, rows))
    }
}

impl Executor for &Database {
    fn read<T>(self, f: impl FnOnce(&mut SqliteConnection) -> Result<T>) -> Result<T> {
        let _span = tracing::debug_span!("db.read", role = "read").entered();
        self.with_read_connection(|conn| f(conn))
            .map_err(|e| self.locate(e))
    }

    fn write<T>(self, f: impl FnOnce(&mut SqliteConnection) -> Result<T>) -> Result<T> {
        self.transaction(f)
    }

    fn batch_insert<'a, Tab, R>(self, table: Tab, rows: &'a [R]) -> Result<usize>
    where
        Tab: Copy,
        R: BatchRows<'a, Tab>,
    {
        self.batch_insert(table, rows)
    }
}

impl Executor for &mut SqliteConnection {
    fn read<T>(self, f: impl FnOnce(&mut SqliteConnection) -> Result<T>) -> Result<T> {
        // Inside a transaction SQLite rolled back, a read would see the database without the
        // transaction's own writes: refuse it like a write.
        if let Some(error) = aborted(self) {
            return Err(error);
        }
        f(self)
    }

    fn write<T>(self, f: impl FnOnce(&mut SqliteConnection) -> Result<T>) -> Result<T> {
        write_on(self, f)
    }
}

impl Executor for &mut PooledConnection {
    fn read<T>(self, f: impl FnOnce(&mut SqliteConnection) -> Result<T>) -> Result<T> {
        (&mut **self).read(f)
    }

    fn write<T>(self, f: impl FnOnce(&mut SqliteConnection) -> Result<T>) -> Result<T> {
        (&mut **self).write(f)
    }
}
