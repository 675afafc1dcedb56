//! Thread-affine read connections: a thread keeps the read connection it used last, parked
//! in its slot, instead of returning it to r2d2 after every read.
//!
//! Why: a point read costs about 4 microseconds, and a round trip through r2d2 (its mutex,
//! four clock reads, the event handler, a condition variable) is a measurable part of it; on
//! several threads the pool's one mutex and its cache lines move between cores on every
//! read. With a slot per thread, a read takes the connection its thread parked (an
//! uncontended lock of the thread's own slot) and parks it again afterwards; its page cache
//! and prepared statements stay warm on that core. Measured: PERFORMANCE.md.
//!
//! r2d2 stays the pool: it owns every connection, a parked connection is one r2d2 counts as
//! checked out, and nothing else changes hands. Parking never starves anyone:
//!
//! - at most half of the read pool can be parked (one connection per slot; one slot for a
//!   pool of one to three);
//! - a thread that finds neither its slot filled nor an idle connection in r2d2 announces
//!   itself as a waiter, hands every parked connection back to r2d2, then waits in r2d2
//!   as before; while anyone waits, returned connections go back to r2d2 instead of a slot
//!   (the waiter count is read after parking, with a SeqCst fence on both sides, so either
//!   the returning thread sees the waiter or the waiter sees the parked connection);
//! - a transaction the read left open (a `BEGIN` of its own) is rolled back before the
//!   connection is parked, so the next read never sees its old snapshot; a connection a
//!   read panicked on is not parked: it goes back to r2d2, as before.
//!
//! Statistics stay truthful: reads served from a slot count as checkouts without a wait,
//! their held time is measured from the slot checkout to the return, and when a leased
//! connection finally goes back to r2d2 its r2d2 check-in (whose duration would include the
//! parked time) is not counted again. Parked connections count as idle.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering, fence};

use diesel::connection::SimpleConnection;
use parking_lot::Mutex;

use super::clock::Tick;
use super::connection::ConnectionState;
use super::observer::LeaseObserver;
use super::pool::{PooledConnection, SqlitePool, return_uncounted as release};

/// This thread's number (sequential, from 0), to pick its slot.
fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.try_with(|index| *index).unwrap_or(0)
}

/// One slot, on cache lines of its own.
#[repr(align(128))]
#[derive(Default)]
struct Slot {
    parked: Mutex<Option<PooledConnection>>,
}

/// The slots of one read pool.
pub(crate) struct Affinity {
    slots: Box<[Slot]>,
    /// Threads waiting for a connection in r2d2.
    waiters: AtomicUsize,
    observer: Option<Box<dyn LeaseObserver>>,
}

impl std::fmt::Debug for Affinity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Affinity")
            .field("slots", &self.slots.len())
            .field("parked", &self.parked())
            .finish()
    }
}

impl Affinity {
    /// Slots for a read pool of `pool_size` connections: half of them (at least one) can be
    /// parked.
    pub(crate) fn new(pool_size: u32, observer: Option<Box<dyn LeaseObserver>>) -> Affinity {
        let slots = (pool_size / 2).max(1) as usize;
        Affinity {
            slots: (0..slots).map(|_| Slot::default()).collect(),
            waiters: AtomicUsize::new(0),
            observer,
        }
    }

    /// Connections parked now (counted by looking, for the statistics: a shared counter
    /// would be written by every read).
    pub(crate) fn parked(&self) -> u32 {
        let parked = self
            .slots
            .iter()
            .filter(|slot| slot.parked.lock().is_some())
            .count();
        u32::try_from(parked).unwrap_or(u32::MAX)
    }

    fn my_slot(&self) -> &Slot {
        &self.slots[thread_index() % self.slots.len()]
    }

    /// This thread's parked connection, or an idle one of `pool` (without waiting); `None`
    /// when there is neither, and the caller then waits in r2d2 through [`Affinity::wait`].
    pub(crate) fn try_take(&self, pool: &SqlitePool) -> Option<PooledConnection> {
        let conn = self
            .my_slot()
            .parked
            .try_lock()
            .and_then(|mut slot| slot.take())
            .or_else(|| pool.try_get())?;
        self.count_checkout();
        Some(conn)
    }

    /// Counts a checkout taken from r2d2 without waiting (and so without its event).
    pub(crate) fn count_checkout(&self) {
        if let Some(observer) = &self.observer {
            observer.checked_out();
        }
    }

    /// Runs `get` (a blocking checkout from r2d2) as a waiter: every parked connection goes
    /// back to r2d2 first, and none is parked until `get` returns.
    pub(crate) fn wait<T>(&self, get: impl FnOnce() -> T) -> T {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        for slot in &*self.slots {
            if let Some(conn) = slot.parked.lock().take() {
                release(conn);
            }
        }
        let result = get();
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Runs `f` on `conn` (from [`Affinity::try_take`] or a checkout through
    /// [`Affinity::wait`]), then parks the connection in this thread's slot. Its held time
    /// is measured here; its eventual r2d2 check-in is not counted again.
    pub(crate) fn run<T>(
        &self,
        mut conn: PooledConnection,
        f: impl FnOnce(&mut PooledConnection) -> T,
    ) -> T {
        let started = self.observer.as_ref().map(|_| Tick::now());
        let result = catch_unwind(AssertUnwindSafe(|| f(&mut conn)));
        if let (Some(observer), Some(started)) = (&self.observer, started) {
            observer.returned(started.elapsed());
        }
        match result {
            Ok(value) => {
                self.give_back(conn);
                value
            }
            Err(panic) => {
                // Not parked: r2d2 decides (it discards a connection left in a transaction).
                release(conn);
                resume_unwind(panic)
            }
        }
    }

    /// Parks `conn` in this thread's slot, or returns it to r2d2 when it is not clean, the
    /// slot is taken, or someone waits.
    fn give_back(&self, mut conn: PooledConnection) {
        let clean = |conn: &mut PooledConnection| {
            ConnectionState::of(conn).is_some_and(|state| state.is_autocommit())
        };
        if !clean(&mut conn) {
            // A transaction the read left open (a `BEGIN` of its own): its snapshot must not
            // serve the next read. diesel's own transactions are closed already.
            if let Err(error) = conn.batch_execute("ROLLBACK") {
                tracing::warn!(%error, "Database read connection left in a transaction could not roll back");
            }
            if !clean(&mut conn) {
                return release(conn);
            }
        }
        if self.waiters.load(Ordering::SeqCst) > 0 {
            return release(conn);
        }
        let slot = self.my_slot();
        {
            let Some(mut parked) = slot.parked.try_lock() else {
                return release(conn);
            };
            if parked.is_some() {
                drop(parked);
                return release(conn);
            }
            *parked = Some(conn);
        }
        // A waiter that announced itself before this park may have scanned the slots
        // already: look again, and hand the connection to r2d2 where it waits.
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            if let Some(conn) = slot.parked.lock().take() {
                release(conn);
            }
        }
    }
}

impl Drop for Affinity {
    fn drop(&mut self) {
        for slot in &*self.slots {
            if let Some(conn) = slot.parked.lock().take() {
                release(conn);
            }
        }
    }
}
