//! The role pools: how they are built, and checking a connection out of one.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, ManageConnection};
use diesel::sqlite::SqliteConnection;
use parking_lot::Mutex;
use r2d2::event::{AcquireEvent, CheckinEvent, CheckoutEvent, ReleaseEvent, TimeoutEvent};

use super::connection::{ConnectionCustomizer, ConnectionState};
use super::gate::WriteContext;
use super::observer::{Observer, PoolObserver};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pragmas::{PragmaCustomizer, Role};

pub(crate) type SqlitePool = diesel::r2d2::Pool<SqliteManager>;

/// A connection checked out of one of the pools; returns to its pool when dropped.
pub type PooledConnection = diesel::r2d2::PooledConnection<SqliteManager>;

/// The r2d2 manager of litedal's SQLite pools: diesel's `ConnectionManager`, with a check-in
/// that ends a transaction the application left open.
///
/// diesel's own check-in test looks only at diesel's transaction depth, which a raw `BEGIN`
/// (`conn.batch_execute("BEGIN")`) does not change: such a connection went back to the pool
/// inside its transaction, and a writer's then held the write lock for good (every other
/// writer, in every process, got `Busy`), a reader's kept its snapshot and pinned the WAL.
/// r2d2 asks [`ManageConnection::has_broken`] on every check-in; here SQLite itself is asked
/// (`sqlite3_get_autocommit`, one call) and an open transaction is rolled back and counted
/// ([`TransactionCounts::left_open`](crate::TransactionCounts::left_open)); a connection
/// whose rollback fails is closed instead.
pub struct SqliteManager {
    manager: ConnectionManager<SqliteConnection>,
    role: Role,
    observer: Arc<dyn Observer>,
}

impl std::fmt::Debug for SqliteManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteManager")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl ManageConnection for SqliteManager {
    type Connection = SqliteConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> std::result::Result<SqliteConnection, Self::Error> {
        self.manager.connect()
    }

    fn is_valid(&self, conn: &mut SqliteConnection) -> std::result::Result<(), Self::Error> {
        self.manager.is_valid(conn)
    }

    fn has_broken(&self, conn: &mut SqliteConnection) -> bool {
        if self.manager.has_broken(conn) {
            return true;
        }
        match ConnectionState::of(conn) {
            Some(state) if !state.is_autocommit() => {}
            _ => return false,
        }
        self.observer.transaction_left_open(self.role);
        let rolled_back = conn.batch_execute("ROLLBACK");
        let still_open = ConnectionState::of(conn).is_none_or(|state| !state.is_autocommit());
        match rolled_back {
            Ok(()) if !still_open => {
                tracing::warn!(
                    role = %self.role,
                    "Database connection returned to the pool inside a transaction the \
                     application began itself (a raw BEGIN never committed): rolled back"
                );
                false
            }
            outcome => {
                tracing::error!(
                    role = %self.role,
                    error = outcome.err().map(|e| e.to_string()),
                    "Database connection returned to the pool inside a transaction that could \
                     not be rolled back: the connection is closed"
                );
                true
            }
        }
    }
}

/// Which thread holds the only connection of an in-memory database (0: none), so that a
/// second checkout on that thread fails at once instead of waiting for itself.
#[derive(Debug, Default)]
pub(crate) struct MemoryHolder(AtomicU64);

/// This thread's token for [`MemoryHolder`] (never 0).
fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TOKEN: u64 = NEXT.fetch_add(1, Relaxed);
    }
    TOKEN.with(|token| *token)
}

/// r2d2's event handler of a litedal pool: releases the in-memory connection's holder on
/// check-in and forwards every event to the statistics, if any.
#[derive(Debug)]
struct PoolEvents {
    holder: Option<Arc<MemoryHolder>>,
    observer: Option<Box<dyn r2d2::HandleEvent>>,
}

impl r2d2::HandleEvent for PoolEvents {
    fn handle_acquire(&self, event: AcquireEvent) {
        if let Some(o) = &self.observer {
            o.handle_acquire(event);
        }
    }

    fn handle_release(&self, event: ReleaseEvent) {
        if let Some(o) = &self.observer {
            o.handle_release(event);
        }
    }

    fn handle_checkout(&self, event: CheckoutEvent) {
        if let Some(o) = &self.observer {
            o.handle_checkout(event);
        }
    }

    fn handle_timeout(&self, event: TimeoutEvent) {
        if let Some(o) = &self.observer {
            o.handle_timeout(event);
        }
    }

    fn handle_checkin(&self, event: CheckinEvent) {
        if let Some(holder) = &self.holder {
            holder.0.store(0, Relaxed);
        }
        // A thread-affine connection going back to r2d2: its holds were counted per read.
        if returning_uncounted() {
            return;
        }
        if let Some(o) = &self.observer {
            o.handle_checkin(event);
        }
    }
}

thread_local! {
    /// Set while this thread hands a thread-affine read connection back to r2d2, so that
    /// [`PoolEvents`] skips its check-in (its holds were counted read by read, and r2d2's
    /// duration would include the time it sat parked).
    static RETURNING_UNCOUNTED: Cell<bool> = const { Cell::new(false) };
}

fn returning_uncounted() -> bool {
    RETURNING_UNCOUNTED.try_with(Cell::get).unwrap_or(false)
}

/// Gives `conn` back to r2d2 without counting its check-in (see [`RETURNING_UNCOUNTED`]).
pub(crate) fn return_uncounted(conn: PooledConnection) {
    let _ = RETURNING_UNCOUNTED.try_with(|flag| flag.set(true));
    drop(conn);
    let _ = RETURNING_UNCOUNTED.try_with(|flag| flag.set(false));
}

/// r2d2 reports connection errors here; they go to `tracing` instead of the `log` crate.
#[derive(Debug)]
struct TracingErrorHandler {
    role: Role,
}

impl r2d2::HandleError<diesel::r2d2::Error> for TracingErrorHandler {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        tracing::error!(role = %self.role, %error, "Database connection error in pool");
    }
}

/// Builds the pool of `role`, opening all its connections.
pub(crate) fn build_pool(
    config: &Config,
    role: Role,
    size: u32,
    uri: &str,
    writes: &Arc<WriteContext>,
    holder: Option<Arc<MemoryHolder>>,
    observer: Option<PoolObserver>,
) -> Result<SqlitePool> {
    let manager = SqliteManager {
        manager: ConnectionManager::new(uri),
        role,
        observer: Arc::clone(&writes.observer),
    };
    let (events, statements, cache) = match observer {
        Some(o) => (Some(o.events), Some(o.statements), Some(o.cache)),
        None => (None, None, None),
    };
    let instrumented = statements.is_some();
    let hook_error = Arc::new(Mutex::new(None));
    let pool = diesel::r2d2::Pool::builder()
        .event_handler(Box::new(PoolEvents {
            holder,
            observer: events,
        }))
        .connection_customizer(Box::new(ConnectionCustomizer {
            pragmas: PragmaCustomizer {
                role,
                pragmas: config.pragmas(role),
            },
            stable_query_plans: config.stable_query_plans(),
            limits: config.sqlite_limits(),
            load_extensions: config.load_extensions(),
            hook: config.on_connect().cloned(),
            hook_error: Arc::clone(&hook_error),
            writes: Arc::clone(writes),
            observer: statements,
            cache,
        }))
        .max_size(size)
        // All connections are opened up front so a checkout never waits for an open.
        .min_idle(Some(size))
        // SQLite connections do not go stale like network ones: no recycling, no per-checkout
        // `SELECT 1` (it costs a round trip on every checkout and protects nothing).
        .idle_timeout(None)
        .max_lifetime(None)
        .test_on_check_out(false)
        .connection_timeout(config.pool_timeout())
        .error_handler(Box::new(TracingErrorHandler { role }))
        .build(manager)
        .map_err(|error| {
            if let Some(error) = hook_error.lock().take() {
                return error;
            }
            tracing::error!(role = %role, %error, "Database pool could not be filled");
            Error::PoolTimeout {
                role,
                waited: config.pool_timeout(),
                source: Some(error),
            }
        })?;
    tracing::info!(
        role = %role,
        size,
        instrumented,
        slow_query_ms = config.slow_query().map(|d| d.as_millis() as u64),
        "Database pool created"
    );
    Ok(pool)
}

/// A connection of `pool`, waiting at most the pool's timeout.
///
/// # Errors
///
/// [`Error::ConnectionHeld`] at once when this thread holds the in-memory database's only
/// connection already, [`Error::PoolTimeout`] when none became free in time.
pub(crate) fn checkout(
    pool: &SqlitePool,
    role: Role,
    holder: Option<&MemoryHolder>,
) -> Result<PooledConnection> {
    let token = holder.map(|holder| {
        let me = thread_token();
        (holder, me, holder.0.load(Relaxed) == me)
    });
    if let Some((_, _, true)) = token {
        return Err(Error::ConnectionHeld);
    }
    // A span per checkout, so that a slow wait for a connection shows where it happened.
    let span = tracing::debug_span!(
        "db.checkout",
        role = role.as_str(),
        wait_us = tracing::field::Empty
    );
    let _entered = span.enter();
    // The wait is timed only for the span: the statistics take it from r2d2's checkout
    // event, and a timeout waited the pool's timeout. (Two clock reads per checkout are a
    // measurable part of a point read.)
    let started = (!span.is_disabled()).then(Instant::now);
    let conn = pool.get().map_err(|error| {
        let waited = started.map_or(pool.connection_timeout(), |started| started.elapsed());
        tracing::warn!(role = %role, waited_ms = waited.as_millis() as u64, %error, "Database pool checkout timed out");
        Error::PoolTimeout {
            role,
            waited,
            source: Some(error),
        }
    })?;
    if let Some(started) = started {
        span.record("wait_us", started.elapsed().as_micros() as u64);
    }
    if let Some((holder, me, _)) = token {
        holder.0.store(me, Relaxed);
    }
    Ok(conn)
}
