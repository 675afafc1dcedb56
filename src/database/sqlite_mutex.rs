//! SQLite's mutexes on parking_lot: they spin briefly before they sleep.
//!
//! Every read transaction in WAL mode takes a shared lock on a read-mark of the `-shm` file.
//! SQLite counts those locks per process under one mutex of the shared-memory node, and
//! calls `fcntl` under that mutex whenever the count of a read-mark goes from 0 to 1 or back.
//! With two threads reading, one often finds the mutex held for the length of that system
//! call (about a microsecond). SQLite's own mutex is a plain pthread mutex, which then puts
//! the thread to sleep on a futex, and waking it costs two context switches: measured on
//! 2 cores, point reads on 2 threads ran *slower* than on 1 (0.9 x), with 30 % of the time in
//! futex wait and wake under `unixShmLock`. parking_lot's mutex spins with backoff for a short
//! while first and only then parks, so the waiter usually gets the mutex without sleeping
//! (2 threads: 2.0 x one thread; see PERFORMANCE.md).
//!
//! The mutex implementation is process-wide and can only be chosen before SQLite initializes
//! (`sqlite3_config(SQLITE_CONFIG_MUTEX)`), and `sqlite3_config` is not thread-safe: while it
//! runs, no other thread may call into SQLite at all (SQLite's documented contract; another
//! thread opening a connection at that moment is a data race inside SQLite). So it runs at
//! most once per process (a `OnceLock`, which every litedal caller goes through before its
//! first call into SQLite), and only where no other thread can be in SQLite:
//!
//! - [`install`], behind the `unsafe` [`crate::init_sqlite`], whose caller promises it
//!   (first thing in `main`);
//! - [`install_if_alone`], on `Database::open`'s way, which configures SQLite only when the
//!   calling thread is the only thread of the process (no other thread exists that could be in
//!   SQLite, and none can start while this one is busy here). Otherwise SQLite keeps its own
//!   mutexes, and litedal works as before, only with the slower reads on several threads.
//!
//! Every mutex is reentrant (SQLite allows a "fast" mutex to be recursive). The safety
//! argument for the callbacks below: SQLite hands back only pointers that [`alloc`] returned,
//! frees each allocated (non-static) one once and never while held, and leaves a mutex only
//! on the thread that entered it; the static mutexes live for the whole process.

use std::ffi::c_int;
use std::sync::OnceLock;

use libsqlite3_sys as ffi;
use parking_lot::lock_api::RawReentrantMutex;

type Mutex = RawReentrantMutex<parking_lot::RawMutex, parking_lot::RawThreadId>;

/// SQLite's static mutexes, `SQLITE_MUTEX_STATIC_MAIN` (2) to `SQLITE_MUTEX_STATIC_VFS3` (13).
static STATIC_MUTEXES: [Mutex; 12] = [const { Mutex::INIT }; 12];

const FIRST_STATIC: c_int = ffi::SQLITE_MUTEX_STATIC_MAIN as c_int;

fn is_static(mutex: *mut ffi::sqlite3_mutex) -> bool {
    let start = STATIC_MUTEXES.as_ptr() as usize;
    let end = start + std::mem::size_of_val(&STATIC_MUTEXES);
    (start..end).contains(&(mutex as usize))
}

/// # Safety
///
/// `mutex` is a pointer [`alloc`] returned and SQLite has not freed yet.
unsafe fn mutex<'a>(mutex: *mut ffi::sqlite3_mutex) -> &'a Mutex {
    // SAFETY: the caller's contract: a live `Mutex`, boxed by `alloc` or static.
    unsafe { &*mutex.cast::<Mutex>() }
}

extern "C" fn init() -> c_int {
    ffi::SQLITE_OK
}

extern "C" fn end() -> c_int {
    ffi::SQLITE_OK
}

extern "C" fn alloc(kind: c_int) -> *mut ffi::sqlite3_mutex {
    match kind {
        ffi::SQLITE_MUTEX_FAST | ffi::SQLITE_MUTEX_RECURSIVE => {
            Box::into_raw(Box::new(Mutex::INIT)).cast()
        }
        _ => match usize::try_from(kind - FIRST_STATIC)
            .ok()
            .and_then(|index| STATIC_MUTEXES.get(index))
        {
            Some(mutex) => std::ptr::from_ref(mutex).cast_mut().cast(),
            // An unknown kind: SQLite treats a null mutex as out of memory.
            None => std::ptr::null_mut(),
        },
    }
}

extern "C" fn free(mutex: *mut ffi::sqlite3_mutex) {
    if !mutex.is_null() && !is_static(mutex) {
        // SAFETY: a mutex `alloc` boxed, freed once, not held (SQLite's contract).
        drop(unsafe { Box::from_raw(mutex.cast::<Mutex>()) });
    }
}

extern "C" fn enter(m: *mut ffi::sqlite3_mutex) {
    // SAFETY: a live mutex from `alloc`.
    unsafe { mutex(m) }.lock();
}

extern "C" fn try_enter(m: *mut ffi::sqlite3_mutex) -> c_int {
    // SAFETY: a live mutex from `alloc`.
    if unsafe { mutex(m) }.try_lock() {
        ffi::SQLITE_OK
    } else {
        ffi::SQLITE_BUSY
    }
}

extern "C" fn leave(m: *mut ffi::sqlite3_mutex) {
    // SAFETY: a live mutex from `alloc`, held by this thread (SQLite leaves only what it
    // entered, on the same thread).
    unsafe { mutex(m).unlock() };
}

extern "C" fn held(m: *mut ffi::sqlite3_mutex) -> c_int {
    // SAFETY: a live mutex from `alloc` (null means "no mutex": trivially held).
    c_int::from(m.is_null() || unsafe { mutex(m) }.is_owned_by_current_thread())
}

extern "C" fn not_held(m: *mut ffi::sqlite3_mutex) -> c_int {
    // SAFETY: as in `held`.
    c_int::from(m.is_null() || !unsafe { mutex(m) }.is_owned_by_current_thread())
}

static METHODS: ffi::sqlite3_mutex_methods = ffi::sqlite3_mutex_methods {
    xMutexInit: Some(init),
    xMutexEnd: Some(end),
    xMutexAlloc: Some(alloc),
    xMutexFree: Some(free),
    xMutexEnter: Some(enter),
    xMutexTry: Some(try_enter),
    xMutexLeave: Some(leave),
    xMutexHeld: Some(held),
    xMutexNotheld: Some(not_held),
};

/// Whether litedal's mutexes are in use, decided once per process.
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// `sqlite3_config(SQLITE_CONFIG_MUTEX)` with litedal's mutexes; true when SQLite took them.
///
/// # Safety
///
/// No other thread calls into SQLite while this runs.
unsafe fn configure() -> bool {
    // SAFETY: SQLITE_CONFIG_MUTEX takes one `sqlite3_mutex_methods*`, which SQLite copies;
    // every callback has the signature SQLite expects and never unwinds. SQLite refuses
    // (SQLITE_MISUSE) when it is already initialized, and then keeps its own mutexes. No
    // other thread is in SQLite (the caller's contract).
    let rc = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MUTEX, std::ptr::from_ref(&METHODS)) };
    let installed = rc == ffi::SQLITE_OK;
    if installed {
        tracing::debug!("SQLite mutexes: parking_lot (spin, then park)");
    } else {
        tracing::info!(
            code = rc,
            "SQLite was initialized before litedal: it keeps its own mutexes, and reads on \
             several threads may wait longer for each other (call litedal::init_sqlite() \
             first thing in main to avoid this)"
        );
    }
    installed
}

/// Makes SQLite use parking_lot mutexes, if SQLite has not initialized yet in this process.
/// Returns whether they are in use; only the first call (of this or [`install_if_alone`])
/// decides, later ones wait for it and return its answer.
///
/// # Safety
///
/// No other thread calls into SQLite while this runs, except through litedal's
/// `Database::open` and this function (which wait for it).
pub(crate) unsafe fn install() -> bool {
    // SAFETY: the caller's contract; litedal's other callers wait on the `OnceLock`.
    *INSTALLED.get_or_init(|| unsafe { configure() })
}

/// [`install`] when the calling thread is the only thread of the process, which makes the
/// call race-free; otherwise leaves SQLite's own mutexes (and says so at INFO). Returns
/// whether litedal's mutexes are in use.
pub(crate) fn install_if_alone() -> bool {
    *INSTALLED.get_or_init(|| {
        if only_thread() {
            // SAFETY: no other thread exists, so none is in SQLite, and none can start
            // before this returns (only this thread could start one).
            unsafe { configure() }
        } else {
            tracing::info!(
                "Database: SQLite keeps its own mutexes (other threads were running when \
                 litedal first used SQLite, and choosing them then could race with those \
                 threads); reads on several threads may wait longer for each other. Call \
                 `unsafe {{ litedal::init_sqlite() }}` first thing in main to use litedal's"
            );
            false
        }
    })
}

/// True when the calling thread is the only thread of this process (Linux: the entries of
/// `/proc/self/task`; false when they cannot be read).
fn only_thread() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.take(2).count() == 1)
}
