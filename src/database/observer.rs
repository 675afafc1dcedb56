//! How the layers above the core watch it and run beside it, without the core knowing their
//! types: an [`Observer`] sees pool events, statements and transaction ends (the statistics
//! implement it), and a [`Service`] is a background task the core stops when it closes (the
//! checkpointer, the metrics endpoint).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use diesel::connection::Instrumentation;

use super::raw::CacheSample;
use crate::pragmas::Role;

/// Makes the statistics collector of one pool for a new connection (`None`: no statistics).
pub(crate) type ObserverFactory = Box<dyn Fn() -> Box<dyn Instrumentation> + Send + Sync>;

/// What observes a pool from above the core: its r2d2 events and its statements.
pub(crate) struct PoolObserver {
    pub(crate) events: Box<dyn r2d2::HandleEvent>,
    pub(crate) statements: ObserverFactory,
    /// Where the pool's connections add their page-cache counters.
    pub(crate) cache: std::sync::Arc<CacheCounters>,
    /// Checkouts r2d2 does not see (a read pool's thread-affine connections).
    pub(crate) leases: Option<Box<dyn LeaseObserver>>,
}

/// Counts what a read pool's thread-affine connections (`affinity.rs`) do outside r2d2's
/// view: checkouts that took a parked or idle connection without waiting, and how long each
/// such connection was held.
pub(crate) trait LeaseObserver: Send + Sync {
    /// A connection was checked out without waiting and without an r2d2 checkout event.
    fn checked_out(&self);

    /// A connection taken for a read was returned after `held`.
    fn returned(&self, held: std::time::Duration);
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

    /// A connection of `role`'s pool went back to the pool with a transaction open that the
    /// application began itself; litedal rolled it back (or closed the connection).
    fn transaction_left_open(&self, role: Role);
}

/// The page-cache counters of one pool, added up over its connections. Each connection adds
/// what changed since it last looked, every [`CACHE_SAMPLE_EVERY`] statements, so the figures
/// lag by at most that many statements per connection.
#[derive(Debug, Default)]
pub(crate) struct CacheCounters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) spills: AtomicU64,
    /// Bytes the pool's page caches use, as last sampled.
    pub(crate) used_bytes: AtomicU64,
}

/// How often (in statements) a connection samples its page-cache counters: reading them
/// costs five `sqlite3_db_status` calls, a few percent of a point read if done every time.
pub(crate) const CACHE_SAMPLE_EVERY: u32 = 32;

impl CacheCounters {
    /// Adds what changed from `seen` to `now` and returns `now` as the new `seen`.
    pub(crate) fn advance(&self, seen: CacheSample, now: CacheSample) -> CacheSample {
        let add = |counter: &AtomicU64, before: u64, after: u64| {
            if after > before {
                counter.fetch_add(after - before, Relaxed);
            }
        };
        add(&self.hits, seen.hits, now.hits);
        add(&self.misses, seen.misses, now.misses);
        add(&self.writes, seen.writes, now.writes);
        add(&self.spills, seen.spills, now.spills);
        if now.used_bytes >= seen.used_bytes {
            self.used_bytes
                .fetch_add(now.used_bytes - seen.used_bytes, Relaxed);
        } else {
            self.forget_used(seen.used_bytes - now.used_bytes);
        }
        now
    }

    /// A connection's page cache, or part of it, is gone.
    pub(crate) fn forget_used(&self, bytes: u64) {
        let _ = self
            .used_bytes
            .fetch_update(Relaxed, Relaxed, |used| Some(used.saturating_sub(bytes)));
    }
}

/// A background service started beside a database.
pub(crate) trait Service: Send {
    /// Stops the service and waits for its thread. Called once, when the last clone of the
    /// database is dropped, newest service first, before the pools close.
    fn stop(&mut self);
}
