//! The async API (cargo feature `tokio`): [`Database::transaction_async`] and
//! [`Database::read_async`], and with the `postgres` feature the same on `AnyDatabase`.
//!
//! SQLite calls block: a write waits for the write lock up to the busy timeout, a checkout
//! waits up to the pool timeout. Run on a runtime worker, that wait would stall every other
//! task of that worker. These functions run the closure, through the synchronous
//! [`Database::transaction`] and [`Database::read`], on tokio's blocking pool
//! (`spawn_blocking`), and never on a runtime worker.
//!
//! - Cancellation: dropping the returned future before the closure has started (the task is
//!   still queued for a blocking thread, or waiting for a connection or for the write lock)
//!   means the closure never runs: the task checks a flag set by the dropped future before
//!   it checks out a connection, and again inside the transaction just before it calls the
//!   closure (the transaction, which has written nothing, is rolled back). Once the closure
//!   has started, it runs to completion and its transaction commits or rolls back as usual;
//!   nobody waits for the result. Either way the connection goes back to the pool when the
//!   synchronous call returns, so a dropped future never leaves a transaction open or a
//!   connection checked out.
//! - Panics: a panic in the closure rolls the transaction back and is returned as
//!   [`Error::Panicked`]; it is not resumed in the caller.
//! - Tracing: the caller's current span (and subscriber) are entered on the blocking thread
//!   around the whole call, so events of the closure and of litedal belong to the request
//!   that caused them.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use diesel::sqlite::SqliteConnection;

use crate::database::Database;
use crate::error::{Error, Result};

/// Sets the shared flag when the future that owns it is dropped (finished or not).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The panic's message, when its payload is a `&str` or a `String` (as `panic!` makes it).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic payload that is not a string".to_owned()
    }
}

fn panicked(payload: &(dyn Any + Send)) -> Error {
    let message = panic_message(payload);
    tracing::error!(%message, "Database closure panicked; its transaction was rolled back");
    Error::Panicked { message }
}

/// Runs `work` on tokio's blocking pool inside the caller's span and subscriber; `work` gets
/// the flag that tells whether the caller's future was dropped.
async fn run_blocking<T, W>(work: W) -> Result<T>
where
    W: FnOnce(&AtomicBool) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let cancelled = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(Arc::clone(&cancelled));
    let task = tokio::task::spawn_blocking(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            let _entered = span.enter();
            if cancelled.load(Ordering::Acquire) {
                return Err(Error::Cancelled);
            }
            catch_unwind(AssertUnwindSafe(|| work(&cancelled)))
                .unwrap_or_else(|payload| Err(panicked(&*payload)))
        })
    });
    match task.await {
        Ok(result) => result,
        Err(error) if error.is_cancelled() => Err(Error::Cancelled),
        // Not expected: the task catches the closure's panics itself.
        Err(error) => Err(panicked(&*error.into_panic())),
    }
}

/// Calls `f` unless the caller's future was dropped meanwhile.
fn unless_cancelled<C: ?Sized, T>(
    cancelled: &AtomicBool,
    conn: &mut C,
    f: impl FnOnce(&mut C) -> Result<T>,
) -> Result<T> {
    if cancelled.load(Ordering::Acquire) {
        return Err(Error::Cancelled);
    }
    f(conn)
}

impl Database {
    /// [`Database::transaction`] for async callers (cargo feature `tokio`): runs `f` in an
    /// immediate write transaction on tokio's blocking pool, never on a runtime worker, so
    /// waiting for the write lock or for a connection stalls no other task.
    ///
    /// Commits when `f` returns `Ok`, rolls back when it returns `Err` or panics. Repository
    /// operations compose inside `f` exactly as in [`Database::transaction`] (pass
    /// `&mut *conn`).
    ///
    /// Cancellation: when the returned future is dropped before `f` has started (while the
    /// task waits for a blocking thread, a connection or the write lock), `f` never runs and
    /// nothing is written. Once `f` has started it runs to completion, and its transaction
    /// commits or rolls back as if the future had been awaited. The connection always goes
    /// back to the pool.
    ///
    /// The caller's current [`tracing::Span`] is entered on the blocking thread while `f`
    /// runs.
    ///
    /// # Errors
    ///
    /// As [`Database::transaction`], and [`Error::Panicked`] (with the panic's message) when
    /// `f` panicked (the transaction was rolled back), [`Error::Cancelled`] when the runtime
    /// shut down before the task ran.
    ///
    /// # Panics
    ///
    /// When polled outside a tokio runtime.
    ///
    /// ```
    /// use litedal::example::models::{NewPost, NewUser};
    /// use litedal::example::repo::{Posts, Users};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let test_db = litedal::example::test_db()?;
    /// let db = test_db.db().clone();
    /// let runtime = tokio::runtime::Runtime::new()?;
    /// runtime.block_on(async {
    ///     // A user and their first post, atomically, without blocking the runtime.
    ///     let user = db
    ///         .transaction_async(|conn| {
    ///             let user = Users::insert(&mut *conn, &NewUser::new("Ada", "ada@example.com"))?;
    ///             Posts::insert(
    ///                 &mut *conn,
    ///                 &NewPost { user_id: user.id, title: "Hello", body: "First", published: true },
    ///             )?;
    ///             Ok(user)
    ///         })
    ///         .await?;
    ///     assert_eq!(user.name, "Ada");
    ///
    ///     // A panic rolls back and comes back as an error.
    ///     let panicked = db
    ///         .transaction_async(|conn| -> litedal::Result<()> {
    ///             Users::insert(&mut *conn, &NewUser::new("Bob", "bob@example.com"))?;
    ///             panic!("bug in the handler")
    ///         })
    ///         .await;
    ///     assert!(matches!(panicked, Err(litedal::Error::Panicked { message }) if message == "bug in the handler"));
    ///     assert_eq!(db.read_async(|conn| Users::count(conn)).await?, 1);
    ///     Ok::<_, litedal::Error>(())
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn transaction_async<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.clone();
        run_blocking(move |cancelled| db.transaction(|conn| unless_cancelled(cancelled, conn, f)))
            .await
    }

    /// [`Database::read`] for async callers (cargo feature `tokio`): runs `f` in one read
    /// transaction (one consistent snapshot) on a read connection, on tokio's blocking pool,
    /// never on a runtime worker.
    ///
    /// Cancellation, panics and tracing spans behave as in [`Database::transaction_async`]:
    /// dropped before it started, `f` never runs.
    ///
    /// # Errors
    ///
    /// As [`Database::read`], and [`Error::Panicked`] when `f` panicked,
    /// [`Error::Cancelled`] when the runtime shut down before the task ran.
    ///
    /// # Panics
    ///
    /// When polled outside a tokio runtime.
    ///
    /// ```
    /// use litedal::example::models::NewUser;
    /// use litedal::example::repo::Users;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let test_db = litedal::example::test_db()?;
    /// let db = test_db.db().clone();
    /// let id = Users::insert(&db, &NewUser::new("Ada", "ada@example.com"))?.id;
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// let user = runtime.block_on(db.read_async(move |conn| Users::find(conn, id)))?;
    /// assert_eq!(user.map(|u| u.name).as_deref(), Some("Ada"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read_async<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.clone();
        run_blocking(move |cancelled| db.read(|conn| unless_cancelled(cancelled, conn, f))).await
    }
}

#[cfg(feature = "postgres")]
mod any_engine {
    use super::{Result, run_blocking, unless_cancelled};
    use crate::any_database::AnyDatabase;
    use crate::engine::EngineRef;

    impl AnyDatabase {
        /// [`AnyDatabase::transaction`] for async callers (features `tokio` and `postgres`):
        /// the closure runs on tokio's blocking pool, never on a runtime worker, on either
        /// engine. Cancellation, panics and tracing spans as in
        /// [`Database::transaction_async`](crate::Database::transaction_async).
        ///
        /// # Errors
        ///
        /// As [`AnyDatabase::transaction`], and [`Error::Panicked`](crate::Error::Panicked),
        /// [`Error::Cancelled`](crate::Error::Cancelled).
        ///
        /// # Panics
        ///
        /// When polled outside a tokio runtime.
        ///
        /// ```
        /// use litedal::example::models::NewUser;
        /// use litedal::example::repo::Users;
        /// use litedal::testing::{AnyTestDb, TestEngine};
        ///
        /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
        /// let test_db = AnyTestDb::open(TestEngine::Sqlite, |b| {
        ///     b.migrations(&litedal::example::MIGRATIONS)
        ///         .postgres_migrations(&litedal::example::MIGRATIONS_POSTGRES)
        /// })?;
        /// let db = test_db.db().clone();
        /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        /// let user = runtime.block_on(db.transaction_async(|conn| {
        ///     Users::insert(&mut *conn, &NewUser::new("Ada", "ada@example.com"))
        /// }))?;
        /// let count = runtime.block_on(db.read_async(|conn| Users::count(&mut *conn)))?;
        /// assert_eq!((user.name.as_str(), count), ("Ada", 1));
        /// # Ok(())
        /// # }
        /// ```
        pub async fn transaction_async<T, F>(&self, f: F) -> Result<T>
        where
            F: for<'c> FnOnce(&mut EngineRef<'c>) -> Result<T> + Send + 'static,
            T: Send + 'static,
        {
            let db = self.clone();
            run_blocking(move |cancelled| {
                db.transaction(|conn| unless_cancelled(cancelled, conn, f))
            })
            .await
        }

        /// [`AnyDatabase::read`] for async callers, on tokio's blocking pool (see
        /// [`AnyDatabase::transaction_async`]).
        ///
        /// # Errors
        ///
        /// As [`AnyDatabase::read`], and [`Error::Panicked`](crate::Error::Panicked),
        /// [`Error::Cancelled`](crate::Error::Cancelled).
        ///
        /// # Panics
        ///
        /// When polled outside a tokio runtime.
        pub async fn read_async<T, F>(&self, f: F) -> Result<T>
        where
            F: for<'c> FnOnce(&mut EngineRef<'c>) -> Result<T> + Send + 'static,
            T: Send + 'static,
        {
            let db = self.clone();
            run_blocking(move |cancelled| db.read(|conn| unless_cancelled(cancelled, conn, f)))
                .await
        }

        /// [`AnyDatabase::read_primary`] for async callers: a read that must see the
        /// caller's own write, on tokio's blocking pool.
        ///
        /// # Errors
        ///
        /// As [`AnyDatabase::read_primary`], and [`Error::Panicked`](crate::Error::Panicked),
        /// [`Error::Cancelled`](crate::Error::Cancelled).
        ///
        /// # Panics
        ///
        /// When polled outside a tokio runtime.
        pub async fn read_primary_async<T, F>(&self, f: F) -> Result<T>
        where
            F: for<'c> FnOnce(&mut EngineRef<'c>) -> Result<T> + Send + 'static,
            T: Send + 'static,
        {
            let db = self.clone();
            run_blocking(move |cancelled| {
                db.read_primary(|conn| unless_cancelled(cancelled, conn, f))
            })
            .await
        }
    }
}
