//! What litedal keeps with every pooled connection, and the r2d2 customizer that sets it up.
//!
//! [`ConnectionState`] is installed as the connection's diesel instrumentation, the one slot
//! diesel offers for per-connection data: it sees every statement, holds the connection's
//! [`RawHandle`], knows the database's shared write settings ([`WriteContext`]) so that a
//! write on a connection the caller holds takes the write lock exactly as
//! [`Database::transaction`](crate::Database::transaction) does, and forwards statement events
//! to the statistics collector when there is one.

use std::sync::Arc;

use diesel::connection::{Connection, Instrumentation, InstrumentationEvent, SimpleConnection};
use diesel::r2d2::CustomizeConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use parking_lot::Mutex;

use super::gate::WriteContext;
use super::observer::{CACHE_SAMPLE_EVERY, CacheCounters, ObserverFactory};
use super::raw::{CacheSample, RawHandle};
use crate::config::ConnectionHook;
use crate::error::Error;
use crate::pragmas::{PragmaCustomizer, Pragmas, Role, SqliteLimits};

/// Why SQLite rolled back a write transaction on its own: the failed statement's error, kept
/// so that it can be returned again (to later operations and to the caller).
#[derive(Debug, Clone)]
pub(crate) struct AbortCause {
    kind: DatabaseErrorKind,
    message: String,
}

impl AbortCause {
    fn of(error: &DieselError) -> AbortCause {
        match error {
            DieselError::DatabaseError(kind, info) => AbortCause {
                kind: *kind,
                message: info.message().to_owned(),
            },
            other => AbortCause {
                kind: DatabaseErrorKind::Unknown,
                message: other.to_string(),
            },
        }
    }

    /// The cause as an error litedal already mapped (the round trip through
    /// [`AbortCause::error`] gives the same variant for the errors that make SQLite roll back
    /// a transaction: I/O errors, a full disk, out of memory, an interrupt, corruption).
    fn of_mapped(error: &Error) -> AbortCause {
        let unknown = |message: &str| AbortCause {
            kind: DatabaseErrorKind::Unknown,
            message: message.to_owned(),
        };
        match error {
            Error::Database(diesel) => AbortCause::of(diesel),
            Error::DiskFull { message }
            | Error::Corrupt { message, .. }
            | Error::NotADatabase { message, .. }
            | Error::ReadOnly { message }
            | Error::Locked { message } => unknown(message),
            Error::Busy => unknown("database is locked"),
            other => unknown(&other.to_string()),
        }
    }

    /// The original error, as litedal maps it (`Error::DiskFull`, an I/O error, ...).
    pub(crate) fn error(&self) -> Error {
        Error::from(DieselError::DatabaseError(
            self.kind,
            Box::new(self.message.clone()),
        ))
    }
}

/// litedal's per-connection state, installed as the connection's instrumentation.
pub(crate) struct ConnectionState {
    raw: RawHandle,
    /// The pool's page-cache counters, when the pool is observed.
    cache: Option<Arc<CacheCounters>>,
    /// The page-cache figures the counters last saw from this connection.
    cache_seen: CacheSample,
    /// Statements run, to sample the page cache every `CACHE_SAMPLE_EVERY` of them.
    statements: u32,
    writes: Arc<WriteContext>,
    observer: Option<Box<dyn Instrumentation>>,
    /// A litedal write transaction is open on this connection.
    in_write: bool,
    /// Set when SQLite rolled back that transaction on its own.
    abort: Option<AbortCause>,
}

impl ConnectionState {
    /// litedal's state of `conn`, or `None` for a connection litedal did not open (or whose
    /// instrumentation the application replaced).
    pub(crate) fn of(conn: &mut SqliteConnection) -> Option<&mut ConnectionState> {
        conn.instrumentation().downcast_mut::<ConnectionState>()
    }

    /// The write settings shared by the database's connections.
    pub(crate) fn writes(&self) -> &Arc<WriteContext> {
        &self.writes
    }

    /// True when SQLite has no transaction open.
    pub(crate) fn is_autocommit(&self) -> bool {
        self.raw.is_autocommit()
    }

    /// True when the open write transaction was rolled back by SQLite (or by a `ROLLBACK`
    /// the application ran itself) instead of by litedal.
    pub(crate) fn lost(&self) -> bool {
        self.in_write && (self.abort.is_some() || self.raw.lost())
    }

    /// A litedal write transaction began: from now on only its own COMMIT may commit.
    pub(crate) fn begin_write(&mut self) {
        self.in_write = true;
        self.abort = None;
        self.raw.arm();
    }

    /// The write transaction ended (committed) or is about to end (litedal's own ROLLBACK,
    /// or it was lost). A transaction writes its pages at the commit: the page-cache counters
    /// are sampled here too, not only every few dozen statements.
    pub(crate) fn end_write(&mut self) {
        self.in_write = false;
        self.abort = None;
        self.raw.disarm();
        self.sample_cache();
    }

    /// Lets litedal's COMMIT, which comes next, through the commit hook.
    pub(crate) fn allow_commit(&self) {
        self.raw.allow_commit();
    }

    /// Why SQLite rolled back the open write transaction, if it did.
    pub(crate) fn abort(&self) -> Option<&AbortCause> {
        self.abort.as_ref()
    }

    /// When the open write transaction was lost and no cause is known yet, takes `error`
    /// (what the operation that ran last returned) as the cause.
    pub(crate) fn note_loss(&mut self, error: &Error) {
        if self.in_write && self.abort.is_none() && self.raw.lost() {
            self.abort = Some(AbortCause::of_mapped(error));
        }
    }

    /// Commits the commit hook refused on this connection.
    pub(crate) fn refused_commits(&self) -> u64 {
        self.raw.flags().refused()
    }
}

impl ConnectionState {
    /// Adds the page-cache counters' changes since the last sample to the pool's.
    fn sample_cache(&mut self) {
        if let Some(cache) = &self.cache {
            self.cache_seen = cache.advance(self.cache_seen, self.raw.cache_sample());
        }
    }
}

impl Drop for ConnectionState {
    fn drop(&mut self) {
        // The connection's page cache is gone (the handle is already closed: nothing here
        // touches it).
        if let Some(cache) = &self.cache {
            cache.forget_used(self.cache_seen.used_bytes);
        }
    }
}

impl Instrumentation for ConnectionState {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { .. } = &event {
            self.statements = self.statements.wrapping_add(1);
            if self.statements % CACHE_SAMPLE_EVERY == 0 {
                self.sample_cache();
            }
        }
        match &event {
            // The first failed statement during which SQLite rolled back litedal's open write
            // transaction is the cause: its error is what the caller must see. (diesel reports
            // errors of statements that return rows only to the caller, so for those the
            // cause is taken from what the operation returned: see `note_loss`.)
            InstrumentationEvent::FinishQuery {
                error: Some(error), ..
            } if self.in_write && self.abort.is_none() && self.raw.lost() => {
                self.abort = Some(AbortCause::of(error));
            }
            _ => {}
        }
        if let Some(observer) = &mut self.observer {
            observer.on_connection_event(event);
        }
    }
}

/// The r2d2 customizer of litedal's pools: finds the connection's SQLite handle, sets the
/// query planner stability guarantee as configured, hardens the connection
/// ([`RawHandle::harden`]: defensive mode, `trusted_schema` off, no extension loading, the
/// limits), applies the role's PRAGMAs, then installs [`ConnectionState`] (after the PRAGMAs,
/// so that statistics count only the application's statements).
pub(crate) struct ConnectionCustomizer {
    pub(crate) pragmas: PragmaCustomizer,
    /// `DB_STABLE_QUERY_PLANS`.
    pub(crate) stable_query_plans: bool,
    /// The `DB_SQLITE_MAX_*` limits.
    pub(crate) limits: SqliteLimits,
    /// [`ConfigBuilder::load_extensions`](crate::ConfigBuilder::load_extensions): loading
    /// extensions is on while the hook runs.
    pub(crate) load_extensions: bool,
    /// The application's own setup, run after the PRAGMAs.
    pub(crate) hook: Option<ConnectionHook>,
    /// The first error of `hook`, kept so that a pool that cannot be filled reports it
    /// instead of a bare timeout.
    pub(crate) hook_error: Arc<Mutex<Option<Error>>>,
    pub(crate) writes: Arc<WriteContext>,
    pub(crate) observer: Option<ObserverFactory>,
    pub(crate) cache: Option<Arc<CacheCounters>>,
}

impl std::fmt::Debug for ConnectionCustomizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionCustomizer")
            .field("role", &self.pragmas.role)
            .field("stable_query_plans", &self.stable_query_plans)
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for ConnectionCustomizer {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        let role = self.pragmas.role;
        let raw = RawHandle::capture(conn)
            .and_then(|raw| {
                raw.set_stable_query_plans(self.stable_query_plans)?;
                raw.harden(&self.limits).map_err(|e| e.to_string())?;
                Ok(raw)
            })
            .map_err(|message| {
                tracing::error!(role = %role, %message, "Database could not set up a new connection");
                diesel::r2d2::Error::QueryError(DieselError::DatabaseError(
                    DatabaseErrorKind::Unknown,
                    Box::new(message),
                ))
            })?;
        match &self.hook {
            None => self.pragmas.on_acquire(conn)?,
            Some(hook) => {
                let setup = setup_with_hook(
                    conn,
                    &raw,
                    &self.pragmas.pragmas,
                    role,
                    hook,
                    self.load_extensions,
                );
                if let Err(error) = setup {
                    tracing::error!(role = %role, error = %error.report(), "Database connection setup failed");
                    let message = error.report().to_string();
                    self.hook_error.lock().get_or_insert(error);
                    return Err(diesel::r2d2::Error::QueryError(DieselError::DatabaseError(
                        DatabaseErrorKind::Unknown,
                        Box::new(message),
                    )));
                }
            }
        }
        let mut state = ConnectionState {
            raw,
            cache: self.cache.clone(),
            cache_seen: CacheSample::default(),
            statements: 0,
            writes: Arc::clone(&self.writes),
            observer: self.observer.as_ref().map(|make| make()),
            in_write: false,
            abort: None,
        };
        // Counted from here: what litedal's own setup read is not the application's.
        state.sample_cache();
        conn.set_instrumentation(state);
        Ok(())
    }
}

/// litedal's PRAGMAs, then the application's hook, then `query_only` for a reader: the hook
/// may set up what needs a write (a temporary table or view), and a reader is still read-only
/// for the application.
///
/// With `load_extensions`, loading SQLite extensions is on while the hook runs (so that it can
/// `SELECT load_extension('...')`) and off again after it, whatever the hook returned: SQL
/// run later, a crafted view or trigger among it, cannot load a library.
///
/// # Errors
///
/// A PRAGMA's error, [`Error::ConnectionHook`] with what the hook returned, or the error of
/// turning extension loading on or off.
pub(crate) fn setup_with_hook(
    conn: &mut SqliteConnection,
    raw: &RawHandle,
    pragmas: &Pragmas,
    role: Role,
    hook: &ConnectionHook,
    load_extensions: bool,
) -> Result<(), Error> {
    Pragmas {
        query_only: false,
        ..pragmas.clone()
    }
    .apply(conn)?;
    if load_extensions {
        raw.set_load_extension(true).map_err(setup_error)?;
    }
    let ran = hook.run(conn, role);
    if load_extensions {
        raw.set_load_extension(false).map_err(setup_error)?;
    }
    ran.map_err(|source| Error::ConnectionHook {
        role,
        source: Box::new(source),
    })?;
    if pragmas.query_only {
        conn.batch_execute("PRAGMA query_only = ON")?;
    }
    Ok(())
}

/// A failure of litedal's own setup of a connection through its raw handle.
pub(crate) fn setup_error(message: String) -> Error {
    Error::Database(DieselError::DatabaseError(
        DatabaseErrorKind::Unknown,
        Box::new(message),
    ))
}
