//! How the layers above the core watch it and run beside it, without the core knowing their
//! types: an [`Observer`] sees pool events, statements and transaction ends (the statistics
//! implement it), and a [`Service`] is a background task the core stops when it closes (the
//! checkpointer, the metrics endpoint).

use diesel::connection::Instrumentation;

use crate::pragmas::Role;

/// Makes the statistics collector of one pool for a new connection (`None`: no statistics).
pub(crate) type ObserverFactory = Box<dyn Fn() -> Box<dyn Instrumentation> + Send + Sync>;

/// What observes a pool from above the core: its r2d2 events and its statements.
pub(crate) struct PoolObserver {
    pub(crate) events: Box<dyn r2d2::HandleEvent>,
    pub(crate) statements: ObserverFactory,
}

/// What watches a database's pools, statements and transactions.
pub(crate) trait Observer: Send + Sync + 'static {
    /// The collectors of the pool that serves `role` (its r2d2 events and a statement
    /// observer per connection), or `None` to leave the pool unobserved.
    fn pool(&self, role: Role) -> Option<PoolObserver>;

    /// A transaction of `role` that began has ended; `committed` is false when it was
    /// rolled back. (A transaction that never began, because the pool timed out or the lock
    /// stayed busy, is not reported.)
    fn transaction_ended(&self, role: Role, committed: bool);
}

/// A background service started beside a database.
pub(crate) trait Service: Send {
    /// Stops the service and waits for its thread. Called once, when the last clone of the
    /// database is dropped, newest service first, before the pools close.
    fn stop(&mut self);
}
