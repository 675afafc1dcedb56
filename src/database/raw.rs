//! The `sqlite3*` handle of a pooled connection, and what litedal does with it. With
//! `sqlite_mutex.rs` and `upkeep/file_locks.rs`, the only modules of the crate with `unsafe`
//! code.
//!
//! diesel 2.3 gives no access to the handle, and litedal needs it for what diesel has no API
//! for: turning on the query planner stability guarantee (`sqlite3_db_config`, see
//! [`RawHandle::set_stable_query_plans`]), SQLite's hardening of every connection (defensive
//! mode, `trusted_schema` off, extension loading off, `sqlite3_limit`: [`RawHandle::harden`]),
//! asking whether SQLite still has a transaction open (`sqlite3_get_autocommit`, after a
//! statement failed with an I/O error or a full disk SQLite may have rolled the whole
//! transaction back, and when a connection goes back to the pool), noticing every such rollback
//! (`sqlite3_rollback_hook`), and refusing any commit but litedal's own while a write
//! transaction is open (`sqlite3_commit_hook`), so that statements run after such a rollback
//! cannot commit half of the transaction one row at a time.
//!
//! How the handle is found: SQLite calls every function registered with
//! `sqlite3_auto_extension` at the end of each successful `sqlite3_open_v2`, synchronously, on
//! the opening thread, with the new handle. litedal's function only stores it in a
//! thread-local. The pool's connection customizer, which r2d2 runs on the same thread right
//! after `SqliteConnection::establish` returned, takes it ([`RawHandle::capture`]) and
//! checks that it belongs to that connection: a `BEGIN` run through diesel must clear the
//! handle's autocommit flag and the `ROLLBACK` after it must set it again.
//!
//! Safety argument, for every `unsafe` block below:
//!
//! - A [`RawHandle`] lives in the connection's instrumentation, inside the `SqliteConnection`
//!   that owns the handle, and is only used through a `&mut SqliteConnection` (so never after
//!   the connection closed, and never from two threads at once). diesel drops the
//!   instrumentation after closing the connection; nothing here touches the handle on drop.
//! - The hooks' argument is a [`HookFlags`] kept alive by SQLite itself, as the connection's
//!   client data: its destructor runs first thing inside `sqlite3_close` (before the rollback
//!   of a transaction left open), unregisters both hooks, then releases the flags.
//! - The callbacks never unwind (no panicking code in them) and touch only atomics and a
//!   thread-local `Cell`.

use std::cell::Cell;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr::{NonNull, null_mut};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use libsqlite3_sys as ffi;

use crate::pragmas::SqliteLimits;

thread_local! {
    /// The handle of the connection this thread opened last (set by [`remember_opened`]).
    static OPENED: Cell<*mut ffi::sqlite3> = const { Cell::new(null_mut()) };
}

/// Called by SQLite at the end of every successful open in this process.
unsafe extern "C" fn remember_opened(
    db: *mut ffi::sqlite3,
    _error: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    // `try_with`: a connection opened while this thread's locals are being destroyed is
    // simply not remembered (and then fails `capture`'s check instead of panicking here).
    let _ = OPENED.try_with(|opened| opened.set(db));
    ffi::SQLITE_OK
}

/// Registers [`remember_opened`] once per process.
///
/// # Errors
///
/// SQLite's result code when registration failed.
pub(crate) fn register_open_hook() -> Result<(), String> {
    static REGISTERED: OnceLock<c_int> = OnceLock::new();
    // Registering initializes SQLite: the mutexes are chosen first (when that is race-free).
    super::sqlite_mutex::install_if_alone();
    // SAFETY: `remember_opened` has the signature SQLite expects of an auto-extension entry
    // point and is a `'static` function; registering it twice is a no-op for SQLite.
    let rc =
        *REGISTERED.get_or_init(|| unsafe { ffi::sqlite3_auto_extension(Some(remember_opened)) });
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(format!("sqlite3_auto_extension failed with code {rc}"))
    }
}

/// The hooks' view of one connection. Shared between SQLite (which owns one
/// reference as client data) and the connection's instrumentation.
#[derive(Debug)]
pub(crate) struct HookFlags {
    db: *mut ffi::sqlite3,
    /// A litedal write transaction is open: only its own COMMIT may commit.
    armed: AtomicBool,
    /// litedal's COMMIT is running.
    committing: AtomicBool,
    /// SQLite rolled back the armed transaction (on its own, after a failed statement, or
    /// because a statement of the application said ROLLBACK).
    lost: AtomicBool,
    /// Commits the hook turned into rollbacks.
    refused: AtomicU64,
}

// SAFETY: `db` is only read inside `destroy_flags` (called by SQLite while it closes that very
// handle); every other field is atomic.
unsafe impl Send for HookFlags {}
// SAFETY: as above.
unsafe impl Sync for HookFlags {}

impl HookFlags {
    /// Commits refused since the connection opened.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }
}

/// SQLite's commit hook: a non-zero answer turns the commit into a rollback.
unsafe extern "C" fn refuse_foreign_commits(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `HookFlags` registered with this hook; SQLite keeps it alive as
    // client data until `destroy_flags` unregisters the hook (see the module docs).
    let flags = unsafe { &*(arg as *const HookFlags) };
    let allowed =
        !flags.armed.load(Relaxed) || (flags.committing.load(Relaxed) && !flags.lost.load(Relaxed));
    if allowed {
        0
    } else {
        flags.refused.fetch_add(1, Relaxed);
        1
    }
}

/// SQLite's rollback hook: runs whenever a whole transaction is rolled back (not for
/// `ROLLBACK TO` a savepoint, nor for a statement undone alone).
unsafe extern "C" fn notice_rollback(arg: *mut c_void) {
    // SAFETY: as for `refuse_foreign_commits`.
    let flags = unsafe { &*(arg as *const HookFlags) };
    if flags.armed.load(Relaxed) {
        flags.lost.store(true, Relaxed);
    }
}

/// Client-data destructor: unregisters the hook, then drops SQLite's reference to the flags.
unsafe extern "C" fn destroy_flags(arg: *mut c_void) {
    // SAFETY: `arg` came from `Arc::into_raw` in `install_commit_hook` and SQLite calls this
    // destructor exactly once. The handle is still open (SQLite runs client-data destructors
    // at the start of `sqlite3_close`, holding its recursive connection mutex).
    unsafe {
        let flags = Arc::from_raw(arg as *const HookFlags);
        ffi::sqlite3_commit_hook(flags.db, None, null_mut());
        ffi::sqlite3_rollback_hook(flags.db, None, null_mut());
        drop(flags);
    }
}

/// One connection's page-cache figures, as `sqlite3_db_status` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CacheSample {
    /// Pages found in the page cache (cumulative).
    pub(crate) hits: u64,
    /// Pages read from the file because they were not in the cache (cumulative).
    pub(crate) misses: u64,
    /// Pages written to the file (cumulative).
    pub(crate) writes: u64,
    /// Dirty pages written in the middle of a transaction because the cache was full
    /// (cumulative).
    pub(crate) spills: u64,
    /// Bytes the page cache uses now.
    pub(crate) used_bytes: u64,
}

/// SQLite's memory in use in this process, and its high-water mark, in bytes
/// (`sqlite3_status64(SQLITE_STATUS_MEMORY_USED)`).
pub(crate) fn memory_used() -> (u64, u64) {
    let (mut current, mut high) = (0i64, 0i64);
    // SAFETY: plain out pointers to locals; resetFlag 0 changes nothing.
    let rc = unsafe {
        ffi::sqlite3_status64(ffi::SQLITE_STATUS_MEMORY_USED, &mut current, &mut high, 0)
    };
    if rc != ffi::SQLITE_OK {
        return (0, 0);
    }
    (
        u64::try_from(current).unwrap_or(0),
        u64::try_from(high).unwrap_or(0),
    )
}

/// Why [`RawHandle::harden`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hardening {
    /// A `sqlite3_db_config` switch was refused or did not take.
    Switch(String),
    /// SQLite applied a lower limit than asked: this build's ceiling.
    Limit {
        /// The limit's variable, e.g. `DB_SQLITE_MAX_VARIABLES`.
        var: &'static str,
        asked: u32,
        applied: i64,
    },
}

impl std::fmt::Display for Hardening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hardening::Switch(message) => f.write_str(message),
            Hardening::Limit {
                var,
                asked,
                applied,
            } => write!(
                f,
                "{var}={asked} is above this SQLite build's ceiling: SQLite applied {applied}"
            ),
        }
    }
}

/// Name of litedal's client data on each connection.
const CLIENT_DATA: &CStr = c"litedal.commit_hook";

/// The `sqlite3*` of one pooled connection (see the module docs for how it is found and why
/// using it is sound).
#[derive(Debug)]
pub(crate) struct RawHandle {
    db: NonNull<ffi::sqlite3>,
    flags: Arc<HookFlags>,
}

// SAFETY: the bundled SQLite is built thread-safe (checked in `capture`), and the handle moves
// between threads only together with the `SqliteConnection` that owns it, which diesel
// declares `Send` on the same grounds.
unsafe impl Send for RawHandle {}

impl RawHandle {
    /// Takes the handle this thread opened last, checks it is `conn`'s, and installs the
    /// commit hook. Call right after `SqliteConnection::establish` on the same thread.
    ///
    /// # Errors
    ///
    /// A description of what did not match; the connection should then not be used.
    pub(crate) fn capture(conn: &mut SqliteConnection) -> Result<RawHandle, String> {
        // SAFETY: a plain query of a compile-time setting.
        if unsafe { ffi::sqlite3_threadsafe() } == 0 {
            return Err("the SQLite library was built without thread safety".to_owned());
        }
        let db = OPENED
            .try_with(|opened| opened.replace(null_mut()))
            .ok()
            .and_then(NonNull::new)
            .ok_or("no SQLite handle was recorded when the connection opened")?;
        // SAFETY: `db` was handed to `remember_opened` by a successful open on this thread,
        // and the last open on this thread was `conn`'s (r2d2 calls the customizer right
        // after `establish`); the check below confirms it before anything else uses it.
        let autocommit =
            |db: NonNull<ffi::sqlite3>| unsafe { ffi::sqlite3_get_autocommit(db.as_ptr()) != 0 };
        let outside = autocommit(db);
        conn.batch_execute("BEGIN").map_err(|e| e.to_string())?;
        let inside = autocommit(db);
        conn.batch_execute("ROLLBACK").map_err(|e| e.to_string())?;
        if !(outside && !inside && autocommit(db)) {
            return Err("the SQLite handle recorded at open is not this connection's".to_owned());
        }
        let flags = Arc::new(HookFlags {
            db: db.as_ptr(),
            armed: AtomicBool::new(false),
            committing: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            refused: AtomicU64::new(0),
        });
        let owned = Arc::into_raw(Arc::clone(&flags)) as *mut c_void;
        // SAFETY: `db` is `conn`'s open handle (checked above). SQLite owns `owned` from here
        // on and releases it through `destroy_flags`, which also unregisters the hook.
        let rc = unsafe {
            ffi::sqlite3_set_clientdata(
                db.as_ptr(),
                CLIENT_DATA.as_ptr(),
                owned,
                Some(destroy_flags),
            )
        };
        if rc != ffi::SQLITE_OK {
            // SAFETY: SQLite did not take `owned` (and calls no destructor on failure).
            drop(unsafe { Arc::from_raw(owned as *const HookFlags) });
            return Err(format!("sqlite3_set_clientdata failed with code {rc}"));
        }
        // SAFETY: `owned` stays valid until `destroy_flags` runs, which unregisters both hooks.
        unsafe {
            ffi::sqlite3_commit_hook(db.as_ptr(), Some(refuse_foreign_commits), owned);
            ffi::sqlite3_rollback_hook(db.as_ptr(), Some(notice_rollback), owned);
        }
        Ok(RawHandle { db, flags })
    }

    /// Turns SQLite's query planner stability guarantee on or off (`DB_STABLE_QUERY_PLANS`)
    /// and checks that the connection reports the new state.
    ///
    /// With it off, SQLite plans some statements for the values bound to them (a bound
    /// `LIMIT ?`, the pattern of `LIKE ?`) and re-prepares such a statement every time a new
    /// value is bound; diesel binds every value on every execution, so these statements
    /// would be parsed and planned again on every run despite diesel's statement cache.
    ///
    /// # Errors
    ///
    /// SQLite's result code, or the state it reports when that is not the one asked for.
    pub(crate) fn set_stable_query_plans(&self, on: bool) -> Result<(), String> {
        self.set_switch(
            ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
            "the query planner stability guarantee (SQLITE_DBCONFIG_ENABLE_QPSG)",
            on,
        )
    }

    /// One `sqlite3_db_config` switch that takes an `int` and an `int*`: sets it to `on`
    /// and checks that the connection reports the new state.
    fn set_switch(&self, op: c_int, name: &str, on: bool) -> Result<(), String> {
        let mut now: c_int = -1;
        // SAFETY: the handle is open while `self` is reachable (module docs); every `op`
        // passed here is one of SQLite's boolean switches, which take an `int` and an `int*`
        // that receives the state after the call (a valid local).
        let rc = unsafe {
            ffi::sqlite3_db_config(
                self.db.as_ptr(),
                op,
                c_int::from(on),
                &mut now as *mut c_int,
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(format!("sqlite3_db_config({name}) failed with code {rc}"));
        }
        if now != c_int::from(on) {
            return Err(format!(
                "SQLite reports {name} as {now} after setting it to {}",
                c_int::from(on)
            ));
        }
        Ok(())
    }

    /// SQLite's hardening of the connection, each switch read back: defensive mode on (no
    /// `writable_schema`, no `journal_mode=OFF`, no writes to `sqlite_dbpage` or shadow
    /// tables: ordinary SQL cannot corrupt the file), `trusted_schema` off (views, triggers,
    /// CHECK constraints, defaults and indexes of the file may call only the functions SQLite
    /// marks innocuous: not the application's own), loading extensions off (the C API and the
    /// `load_extension()` SQL function), then `limits`.
    ///
    /// # Errors
    ///
    /// What SQLite refused or reported differently; [`Hardening::Limit`] for a limit above
    /// this SQLite build's ceiling.
    pub(crate) fn harden(&self, limits: &SqliteLimits) -> Result<(), Hardening> {
        self.set_switch(
            ffi::SQLITE_DBCONFIG_DEFENSIVE,
            "SQLITE_DBCONFIG_DEFENSIVE",
            true,
        )
        .and_then(|()| {
            self.set_switch(
                ffi::SQLITE_DBCONFIG_TRUSTED_SCHEMA,
                "SQLITE_DBCONFIG_TRUSTED_SCHEMA",
                false,
            )
        })
        .and_then(|()| self.set_load_extension(false))
        .map_err(Hardening::Switch)?;
        for setting in limits.settings() {
            let asked = c_int::try_from(setting.value).unwrap_or(c_int::MAX);
            // SAFETY: the handle is open (module docs); `id` is one of SQLite's
            // SQLITE_LIMIT_* categories and a non-negative value sets it (SQLite lowers a
            // value above the build's ceiling to the ceiling, which the read-back shows).
            let now = unsafe {
                ffi::sqlite3_limit(self.db.as_ptr(), setting.id, asked);
                ffi::sqlite3_limit(self.db.as_ptr(), setting.id, -1)
            };
            if now != asked {
                return Err(Hardening::Limit {
                    var: setting.var,
                    asked: setting.value,
                    applied: i64::from(now),
                });
            }
        }
        Ok(())
    }

    /// Lets the connection load SQLite extensions, or no longer (both the C API, through
    /// `SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION`, and the `load_extension()` SQL function,
    /// through `sqlite3_enable_load_extension`), read back.
    ///
    /// # Errors
    ///
    /// SQLite's result code, or the state it reports when that is not the one asked for.
    pub(crate) fn set_load_extension(&self, on: bool) -> Result<(), String> {
        // SAFETY: the handle is open while `self` is reachable (module docs).
        let rc = unsafe { ffi::sqlite3_enable_load_extension(self.db.as_ptr(), c_int::from(on)) };
        if rc != ffi::SQLITE_OK {
            return Err(format!(
                "sqlite3_enable_load_extension({}) failed with code {rc}",
                c_int::from(on)
            ));
        }
        self.set_switch(
            ffi::SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION,
            "SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION",
            on,
        )
    }

    /// True when SQLite has no transaction open on the connection.
    pub(crate) fn is_autocommit(&self) -> bool {
        // SAFETY: the handle is open while `self` is reachable (module docs).
        unsafe { ffi::sqlite3_get_autocommit(self.db.as_ptr()) != 0 }
    }

    /// A write transaction began: from now on only a commit allowed by
    /// [`RawHandle::allow_commit`] may commit, and a rollback of the transaction is noticed.
    pub(crate) fn arm(&self) {
        self.flags.committing.store(false, Relaxed);
        self.flags.lost.store(false, Relaxed);
        self.flags.armed.store(true, Relaxed);
    }

    /// Commits are no longer refused, rollbacks no longer noticed (call before litedal's own
    /// ROLLBACK, and after its COMMIT).
    pub(crate) fn disarm(&self) {
        self.flags.armed.store(false, Relaxed);
        self.flags.committing.store(false, Relaxed);
        self.flags.lost.store(false, Relaxed);
    }

    /// The connection's page-cache counters (cumulative since it opened) and the memory its
    /// page cache uses now.
    pub(crate) fn cache_sample(&self) -> CacheSample {
        let status = |op: c_int| -> u64 {
            let (mut current, mut high) = (0, 0);
            // SAFETY: the handle is open while `self` is reachable (module docs); the out
            // pointers are valid locals; resetFlag 0 changes nothing.
            let rc =
                unsafe { ffi::sqlite3_db_status(self.db.as_ptr(), op, &mut current, &mut high, 0) };
            if rc == ffi::SQLITE_OK {
                u64::try_from(current).unwrap_or(0)
            } else {
                0
            }
        };
        CacheSample {
            hits: status(ffi::SQLITE_DBSTATUS_CACHE_HIT),
            misses: status(ffi::SQLITE_DBSTATUS_CACHE_MISS),
            writes: status(ffi::SQLITE_DBSTATUS_CACHE_WRITE),
            spills: status(ffi::SQLITE_DBSTATUS_CACHE_SPILL),
            used_bytes: status(ffi::SQLITE_DBSTATUS_CACHE_USED),
        }
    }

    /// True when SQLite rolled back the armed transaction.
    pub(crate) fn lost(&self) -> bool {
        self.flags.lost.load(Relaxed)
    }

    /// Lets the next commit through the hook (litedal's own COMMIT), unless the armed
    /// transaction was lost; [`RawHandle::disarm`] ends the permission.
    pub(crate) fn allow_commit(&self) {
        self.flags.committing.store(true, Relaxed);
    }

    /// The flags the commit hook reads.
    pub(crate) fn flags(&self) -> &HookFlags {
        &self.flags
    }
}
