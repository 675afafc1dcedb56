//! [`Executor`]: where a repository operation runs, on a [`Database`] or on a connection the
//! caller holds, so that operations compose inside one transaction.

use diesel::sqlite::SqliteConnection;

use crate::batch::EngineRows;
use crate::database::{Database, PooledConnection, aborted, write_on};
use crate::engine::{EngineKind, SqliteEngine};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;

/// Where a repository operation runs: on a [`Database`] or on a connection the caller holds.
///
/// `E` is the engine the closures run on: [`SqliteEngine`] (the default, closures get
/// `&mut SqliteConnection`) or, with the `postgres` feature, `AnyEngine` (closures get
/// `&mut EngineRef` and run their queries through [`on_engine!`](crate::on_engine)). A
/// repository written for every engine takes `impl Executor<E>` for a generic `E:
/// EngineKind`.
pub trait Executor<E: EngineKind = SqliteEngine>: Sized {
    /// Runs a read. On `&Database`: a read-pool connection (every repository read is one
    /// statement, so it needs no transaction of its own).
    ///
    /// # Errors
    ///
    /// [`Error::PoolTimeout`], or whatever `f` returned.
    fn read<T>(self, f: impl for<'c> FnOnce(&mut E::Conn<'c>) -> Result<T>) -> Result<T>;

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
    fn write<T>(self, f: impl for<'c> FnOnce(&mut E::Conn<'c>) -> Result<T>) -> Result<T>;

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
        R: EngineRows<'a, Tab, E>,
    {
        self.write(|conn| R::insert_rows(conn, table, rows))
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
        R: EngineRows<'a, Tab, SqliteEngine>,
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

/// A connection of either engine that the caller holds: reads run on it as they are; a write
/// is a savepoint inside an open transaction, else its own transaction (SQLite: immediate, as
/// on `&mut SqliteConnection`; PostgreSQL: holding litedal's write lock, see
/// [`WRITE_LOCK_KEY`](crate::postgres::WRITE_LOCK_KEY)).
#[cfg(feature = "postgres")]
impl Executor<crate::engine::AnyEngine> for &mut crate::engine::EngineRef<'_> {
    fn read<T>(
        self,
        f: impl for<'c> FnOnce(&mut crate::engine::EngineRef<'c>) -> Result<T>,
    ) -> Result<T> {
        use crate::engine::EngineRef;
        match self {
            EngineRef::Sqlite(conn) => {
                if let Some(error) = aborted(conn) {
                    return Err(error);
                }
                f(&mut EngineRef::Sqlite(conn))
            }
            EngineRef::Postgres(conn) => f(&mut EngineRef::Postgres(conn)),
        }
    }

    fn write<T>(
        self,
        f: impl for<'c> FnOnce(&mut crate::engine::EngineRef<'c>) -> Result<T>,
    ) -> Result<T> {
        use crate::engine::EngineRef;
        match self {
            EngineRef::Sqlite(conn) => write_on(conn, |conn| f(&mut EngineRef::Sqlite(conn))),
            EngineRef::Postgres(conn) => {
                crate::postgres::write_on_pg(conn, |conn| f(&mut EngineRef::Postgres(conn)))
            }
        }
    }
}

/// As `&mut EngineRef`.
#[cfg(feature = "postgres")]
impl Executor<crate::engine::AnyEngine> for &mut crate::engine::AnyConnection {
    fn read<T>(
        self,
        f: impl for<'c> FnOnce(&mut crate::engine::EngineRef<'c>) -> Result<T>,
    ) -> Result<T> {
        (&mut crate::engine::Engine::as_engine(self)).read(f)
    }

    fn write<T>(
        self,
        f: impl for<'c> FnOnce(&mut crate::engine::EngineRef<'c>) -> Result<T>,
    ) -> Result<T> {
        (&mut crate::engine::Engine::as_engine(self)).write(f)
    }
}
