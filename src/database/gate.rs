//! The write settings every connection of one database shares ([`WriteContext`]), among them
//! the write gate: the fair in-process queue writers line up on before `BEGIN IMMEDIATE`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use super::observer::Observer;
use crate::error::{Error, Result};

/// What every connection of one database shares for writes: its identity, the write gate,
/// the busy timeout and the observer that counts transactions.
pub(crate) struct WriteContext {
    /// Identity of the database, for the per-thread nested-transaction check.
    pub(crate) id: usize,
    /// Writers of this process queue here (fairly) before `BEGIN IMMEDIATE`; `None` when the
    /// gate is disabled and lock polling arbitrates alone. Blocking checkpoints queue here too.
    gate: Option<Arc<Mutex<()>>>,
    pub(crate) busy_timeout: Duration,
    pub(crate) observer: Arc<dyn Observer>,
    /// Writes that got [`Error::Busy`] because the gate stayed taken past the busy timeout.
    /// No statement ran for them, so the statement counters never see them; the statistics
    /// add this to the write pool's busy errors.
    gate_timeouts: AtomicU64,
}

impl std::fmt::Debug for WriteContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteContext")
            .field("id", &self.id)
            .field("gate", &self.gate.is_some())
            .field("busy_timeout", &self.busy_timeout)
            .finish()
    }
}

impl WriteContext {
    pub(crate) fn new(
        gate: bool,
        busy_timeout: Duration,
        observer: Arc<dyn Observer>,
    ) -> WriteContext {
        static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
        WriteContext {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            gate: gate.then(|| Arc::new(Mutex::new(()))),
            busy_timeout,
            observer,
            gate_timeouts: AtomicU64::new(0),
        }
    }

    /// The write gate, shared with the checkpointer.
    pub(crate) fn gate(&self) -> Option<&Arc<Mutex<()>>> {
        self.gate.as_ref()
    }

    /// Runs `f` holding the write gate, queued fairly for at most the busy timeout.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] when the gate stayed taken past the busy timeout, or `f`'s error.
    pub(crate) fn queue<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let guard = match &self.gate {
            Some(gate) => Some(gate.try_lock_for(self.busy_timeout).ok_or_else(|| {
                self.gate_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("Database busy: write gate not acquired within the busy timeout");
                Error::Busy
            })?),
            None => None,
        };
        let out = f();
        if let Some(guard) = guard {
            // Hand the gate to the longest waiter instead of letting this thread barge back in.
            MutexGuard::unlock_fair(guard);
        }
        out
    }

    /// Writes that timed out on the gate so far.
    pub(crate) fn gate_timeouts(&self) -> u64 {
        self.gate_timeouts.load(Ordering::Relaxed)
    }
}
