//! Repositories: typed queries over the models, one file per table.
//!
//! Every repository function takes an [`Executor`]: either `&Database` (reads check out a
//! read connection, writes run in their own immediate transaction) or a connection the
//! caller already holds, so that several operations compose inside one
//! [`Database::transaction`]:
//!
//! ```
//! use litedal::models::{NewPost, NewUser};
//! use litedal::repo::{Posts, Users};
//!
//! # let test_db = litedal::testing::TestDb::new()?;
//! # let db = test_db.db();
//! // A user and their first post, atomically: both rows or neither.
//! let (user, post) = db.transaction(|conn| {
//!     let user = Users::insert(&mut *conn, &NewUser::new("Ada", "ada@example.com"))?;
//!     let post = Posts::insert(
//!         &mut *conn,
//!         &NewPost { user_id: user.id, title: "Hello", body: "First post", published: true },
//!     )?;
//!     Ok((user, post))
//! })?;
//! assert_eq!(Posts::find(db, post.id)?.map(|p| p.user_id), Some(user.id));
//! # Ok::<(), litedal::Error>(())
//! ```
//!
//! (`&mut *conn` reborrows the connection so it can be passed again.)
//!
//! Lookups by primary key or unique column use `get_result`, not `first`: `first` adds
//! `LIMIT ?`, and a bound LIMIT makes SQLite re-prepare the statement every time the value
//! is bound again (measured: 70k against 195k point reads/s on one thread).

mod posts;
mod users;

pub use posts::Posts;
pub use users::{UserCursor, UserOrder, UserQuery, Users};

use diesel::sqlite::SqliteConnection;
use serde::Serialize;

use crate::batch::{BatchRows, insert_chunks};
use crate::database::{Database, PooledConnection, aborted, write_on};
use crate::error::{Error, Result};

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

    /// Bulk-inserts `rows` into `table` as one write (see [`insert_batch`](crate::batch::insert_batch)). On `&Database`
    /// this is [`Database::batch_insert`], which also refreshes the planner's statistics
    /// after a large batch.
    ///
    /// # Errors
    ///
    /// As [`insert_batch`](crate::batch::insert_batch).
    fn insert_batch<'a, Tab, R>(self, table: Tab, rows: &'a [R]) -> Result<usize>
    where
        Tab: Copy,
        R: BatchRows<'a, Tab>,
    {
        self.write(|conn| insert_chunks(conn, table, rows))
    }
}

impl Executor for &Database {
    fn read<T>(self, f: impl FnOnce(&mut SqliteConnection) -> Result<T>) -> Result<T> {
        let mut conn = self.read_connection()?;
        f(&mut conn).map_err(|e| self.locate(e))
    }

    fn write<T>(self, f: impl FnOnce(&mut SqliteConnection) -> Result<T>) -> Result<T> {
        self.transaction(f)
    }

    fn insert_batch<'a, Tab, R>(self, table: Tab, rows: &'a [R]) -> Result<usize>
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

/// How many rows a list query may return: 1 to [`Limit::MAX`], default 100.
///
/// Out-of-range values are an error, never silently clamped: a caller asking for 5000 rows
/// should learn that it gets at most 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Limit(u16);

impl Limit {
    /// The largest limit.
    pub const MAX: u32 = 1000;
    /// The default limit, 100.
    pub const DEFAULT: Limit = Limit(100);

    /// A limit of `n` rows.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `n` is 0 or above [`Limit::MAX`].
    ///
    /// ```
    /// use litedal::repo::Limit;
    /// assert_eq!(Limit::new(1000)?.get(), 1000);
    /// assert!(Limit::new(0).is_err());
    /// assert!(Limit::new(1001).is_err());
    /// # Ok::<(), litedal::Error>(())
    /// ```
    pub fn new(n: u32) -> Result<Limit> {
        if (1..=Limit::MAX).contains(&n) {
            Ok(Limit(n as u16))
        } else {
            Err(Error::InvalidInput {
                what: "limit",
                value: n.to_string(),
                reason: format!("accepted: 1 to {}", Limit::MAX),
            })
        }
    }

    /// The number of rows.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

impl Default for Limit {
    fn default() -> Self {
        Limit::DEFAULT
    }
}

impl TryFrom<i64> for Limit {
    type Error = Error;

    fn try_from(n: i64) -> Result<Limit> {
        u32::try_from(n)
            .map_err(|_| Error::InvalidInput {
                what: "limit",
                value: n.to_string(),
                reason: format!("accepted: 1 to {}", Limit::MAX),
            })
            .and_then(Limit::new)
    }
}

/// One page of a keyset-paged list: the items and the cursor of the next page
/// (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T, C> {
    /// The rows of this page, at most the limit.
    pub items: Vec<T>,
    /// Pass to `after(..)` to get the next page; `None` when there is none.
    pub next: Option<C>,
}
