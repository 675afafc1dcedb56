//! [`PgDatabase`]: the read and write pools of a PostgreSQL database.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use diesel::RunQueryDsl;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::{CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::MigrationHarness;

use super::transaction::{WRITE_LOCK_KEY, write_on_pg};
use crate::config::PgConfig;
use crate::error::{Error, Result};
use crate::observe::stats::ConnectionStats;
use crate::observe::{EngineFigures, Metrics, PoolState, StatementTimers};
use crate::pragmas::Role;

use super::pool::{ALIVE_BYPASS, PgManager, PgSession};

type PgPool = Pool<PgManager>;
type Pooled = PooledConnection<PgManager>;

/// The pools of one PostgreSQL database: writes (and migrations) on `DATABASE_URL`, reads on
/// `DATABASE_READ_URL` when it is set. `Clone + Send + Sync`; cheap to clone.
#[derive(Clone)]
pub struct PgDatabase {
    inner: Arc<Inner>,
}

struct Inner {
    config: PgConfig,
    write_pool: PgPool,
    read_pool: PgPool,
    /// The standby's state when `DATABASE_READ_URL` is set.
    replica: Option<Replica>,
    /// The last health report, for the metrics.
    last_health: Mutex<Option<crate::observe::health::HealthReport>>,
    /// The counters behind `connection_stats()`.
    metrics: Arc<Metrics>,
    /// The `/metrics` + `/health` endpoint of `DB_METRICS_ADDR`, stopped when the last clone
    /// of the database is dropped.
    #[cfg(feature = "metrics-server")]
    metrics_server: Mutex<Option<crate::observe::MetricsServer>>,
}

/// A [`PgDatabase`] that does not keep it open (for the metrics endpoint).
#[cfg(feature = "metrics-server")]
#[derive(Clone)]
pub(crate) struct WeakPgDatabase(std::sync::Weak<Inner>);

#[cfg(feature = "metrics-server")]
impl WeakPgDatabase {
    /// The database, unless its last clone was dropped.
    pub(crate) fn upgrade(&self) -> Option<PgDatabase> {
        self.0.upgrade().map(|inner| PgDatabase { inner })
    }
}

/// Whether reads may go to the standby: they leave it for the primary when it is down or
/// lags past `DB_MAX_REPLICA_LAG_MS`, and come back after `DB_REPLICA_RETRY_SECS`.
struct Replica {
    state: Mutex<ReplicaState>,
}

struct ReplicaState {
    /// Reads use the primary until then.
    avoid_until: Option<Instant>,
    /// When the lag was last measured, and what it was.
    checked: Option<(Instant, Duration)>,
}

/// How often a read measures the standby's lag (one small query on the standby).
const LAG_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The longest a read waits for a standby connection before it reads on the primary.
const STANDBY_CHECKOUT_WAIT: Duration = Duration::from_secs(1);

/// Replay lag in milliseconds: zero when everything received has been replayed (an idle
/// primary sends nothing new), else the age of the last replayed transaction.
const LAG_SQL: &str = "SELECT CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM \
     pg_last_wal_replay_lsn() THEN 0 ELSE coalesce((EXTRACT(EPOCH FROM now() - \
     pg_last_xact_replay_timestamp()) * 1000)::bigint, 0) END AS lag_ms";

#[derive(diesel::QueryableByName)]
struct LagMs {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    lag_ms: i64,
}

impl std::fmt::Debug for PgDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDatabase")
            .field("config", &self.inner.config)
            .finish()
    }
}

/// Sets each new connection up for its role: timeouts and the application name; read
/// connections are read-only (`default_transaction_read_only`), as SQLite's are `query_only`.
/// With instrumentation on, each connection gets a statement timer (the statistics).
struct Session {
    role: Role,
    statements: String,
    timers: Option<StatementTimers>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("statements", &self.statements)
            .field("timed", &self.timers.is_some())
            .finish()
    }
}

impl CustomizeConnection<PgSession, diesel::r2d2::Error> for Session {
    fn on_acquire(&self, conn: &mut PgSession) -> std::result::Result<(), diesel::r2d2::Error> {
        // Always set: the recorder is how a transaction that PostgreSQL aborted returns the
        // failed statement's error (`abort.rs`); it forwards to the timers when they are on.
        diesel::Connection::set_instrumentation(
            &mut **conn,
            super::abort::FailureRecorder::new(self.timers.as_ref().map(|timers| timers())),
        );
        conn.batch_execute(&self.statements).map_err(|e| {
            tracing::warn!(role = ?self.role, error = %e, "Database connection setup failed");
            diesel::r2d2::Error::QueryError(e)
        })
    }
}

fn session(config: &PgConfig, role: Role, timers: Option<StatementTimers>) -> Session {
    let mut statements = format!(
        "SET statement_timeout = {}; SET lock_timeout = {}; SET application_name = '{}';",
        config.statement_timeout().as_millis(),
        config.lock_timeout().as_millis(),
        // Validated: printable ASCII; a quote is doubled.
        config.application_name().replace('\'', "''"),
    );
    if role == Role::Read {
        statements.push_str(" SET default_transaction_read_only = on;");
    }
    Session {
        role,
        statements,
        timers,
    }
}

/// A connection error with the URL's password left out (libpq's messages do not repeat it).
fn connection_error(config: &PgConfig, url: &str, error: impl std::fmt::Display) -> Error {
    Error::config(
        "DATABASE_URL",
        crate::url::redact_password(url),
        format!(
            "could not connect to PostgreSQL ({error}); check the host, port, user, password \
             and sslmode of the URL (primary {})",
            config.display_url()
        ),
    )
}

/// The statement that makes the server report a statement timeout (SQLSTATE 57014) at once.
const TIMEOUT_PROBE: &str = "BEGIN; SET LOCAL statement_timeout = 1; SELECT pg_sleep(0.05)";

/// Checks once at open that this server's lock and statement timeouts map to
/// [`Error::Busy`]. diesel 2.3 does not expose the SQLSTATE (55P03, 57014), so they are
/// recognised by PostgreSQL's English messages; a server whose `lc_messages` translates them
/// would turn them into [`Error::Database`]. The probe (a 1 ms statement timeout) finds that
/// out and logs it at WARN with the fix.
fn check_busy_messages(conn: &mut PgConnection) {
    let probe = conn.batch_execute(TIMEOUT_PROBE);
    if let Err(error) = conn.batch_execute("ROLLBACK") {
        tracing::warn!(error = %error, "Database rollback after the timeout probe failed");
    }
    if let Err(error) = probe {
        if !crate::error::is_busy_error(&error) {
            tracing::warn!(
                message = %error,
                "Database server's timeout messages are not recognised (its lc_messages is not \
                 English): lock and statement timeouts will be Error::Database, not Error::Busy; \
                 set lc_messages = 'C' for litedal's role (ALTER ROLE ... SET lc_messages = 'C')"
            );
        }
    }
}

impl PgDatabase {
    /// Connects to the server, runs the pending PostgreSQL migrations (holding litedal's write
    /// lock, so processes opening at once do not race), and builds the pools.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a server cannot be reached (the URL shown without its password),
    /// [`Error::Migration`] for a failing migration.
    pub fn open(config: PgConfig) -> Result<PgDatabase> {
        #[cfg(not(feature = "metrics-server"))]
        if let Some(addr) = config.metrics_addr() {
            return Err(Error::config(
                "DB_METRICS_ADDR",
                addr.to_string(),
                "litedal was built without its `metrics-server` feature; unset the variable \
                 or enable the feature",
            ));
        }
        let started = std::time::Instant::now();
        config.log_tls();
        // One connection first, so a wrong URL, login or certificate fails here, at once and
        // with libpq's reason, not at the first query after the pool timeout.
        let mut conn = <PgConnection as diesel::Connection>::establish(config.url())
            .map_err(|e| connection_error(&config, config.url(), e))?;
        check_busy_messages(&mut conn);
        if config.run_migrations() {
            if let Some(migrations) = config.migrations() {
                conn.batch_execute(&format!("SELECT pg_advisory_lock({WRITE_LOCK_KEY})"))?;
                let applied = conn.run_pending_migrations(migrations).map(|v| v.len());
                conn.batch_execute(&format!("SELECT pg_advisory_unlock({WRITE_LOCK_KEY})"))?;
                let applied = applied.map_err(|source| Error::Migration {
                    doing: "running the configured PostgreSQL migrations at open",
                    source,
                })?;
                if applied > 0 {
                    tracing::info!(applied, "Database migrations applied");
                }
            }
        }
        // Always two pools (read and write), even when they reach the same server.
        let metrics = Arc::new(Metrics::new(
            true,
            config.instrumentation(),
            config.slow_query(),
        ));
        let build = |role: Role, url: &str, size: u32, bypass: Duration| -> Result<PgPool> {
            let mut builder = Pool::builder();
            if let Some(events) = metrics.pool_events(role) {
                builder = builder.event_handler(Box::new(events));
            }
            builder
                .max_size(size)
                .min_idle(Some(0))
                .connection_timeout(config.pool_timeout())
                // PostgreSQL connections can drop (a restarted server, a network cut): a
                // checkout that finds one dead opens a new one instead of failing the caller.
                // The test skips connections used within the last second (`pool.rs`).
                .test_on_check_out(true)
                .connection_customizer(Box::new(session(
                    &config,
                    role,
                    metrics.statement_timers(role),
                )))
                .build(PgManager::new(url, bypass))
                .map_err(|e| connection_error(&config, url, e))
        };
        let write_pool = build(
            Role::Write,
            config.url(),
            config.write_pool_size(),
            ALIVE_BYPASS,
        )?;
        drop(conn);
        let read_url = config.read_url().unwrap_or(config.url()).to_owned();
        // A standby's connections are tested at every checkout: one that went down must send
        // reads to the primary, not fail them.
        let read_bypass = if config.read_url().is_some() {
            Duration::ZERO
        } else {
            ALIVE_BYPASS
        };
        let read_pool = build(Role::Read, &read_url, config.read_pool_size(), read_bypass)?;
        tracing::info!(
            url = %config.display_url(),
            read_url = config.read_url().map(crate::url::redact_password),
            read_pool = config.read_pool_size(),
            write_pool = config.write_pool_size(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "Database opened"
        );
        let replica = config.read_url().map(|_| Replica {
            state: Mutex::new(ReplicaState {
                avoid_until: None,
                checked: None,
            }),
        });
        let db = PgDatabase {
            inner: Arc::new(Inner {
                config,
                write_pool,
                read_pool,
                replica,
                last_health: Mutex::new(None),
                metrics,
                #[cfg(feature = "metrics-server")]
                metrics_server: Mutex::new(None),
            }),
        };
        #[cfg(feature = "metrics-server")]
        if let Some(addr) = db.config().metrics_addr() {
            let server = db.serve_metrics(addr)?;
            *db.inner.metrics_server.lock() = Some(server);
        }
        Ok(db)
    }

    /// The configuration the database was opened with.
    pub fn config(&self) -> &PgConfig {
        &self.inner.config
    }

    fn checkout(&self, role: Role) -> Result<Pooled> {
        let pool = match role {
            Role::Read => &self.inner.read_pool,
            Role::Write => &self.inner.write_pool,
        };
        pool.get().map_err(|e| Error::PoolTimeout {
            role,
            waited: self.inner.config.pool_timeout(),
            source: Some(e),
        })
    }

    /// Runs `f` in a write transaction holding litedal's advisory write lock
    /// ([`WRITE_LOCK_KEY`]), so litedal's writers run one at a time as on SQLite and `f` runs
    /// exactly once; commits on `Ok`, rolls back on `Err` and panic.
    ///
    /// # Errors
    ///
    /// [`Error::PoolTimeout`], [`Error::Busy`] past `DB_LOCK_TIMEOUT_MS`, or what `f` returned.
    pub fn transaction<T>(&self, f: impl FnOnce(&mut PgConnection) -> Result<T>) -> Result<T> {
        let _span = tracing::debug_span!("db.transaction", role = "write").entered();
        let mut conn = self.checkout(Role::Write)?;
        self.counted(Role::Write, || write_on_pg(&mut conn, f))
    }

    /// Runs `f` on a read connection inside one read-only `REPEATABLE READ` transaction, so
    /// every statement in it sees the same snapshot (as a read transaction does on SQLite).
    ///
    /// # Errors
    ///
    /// [`Error::PoolTimeout`], or what `f` returned.
    pub fn read<T>(&self, f: impl FnOnce(&mut PgConnection) -> Result<T>) -> Result<T> {
        let _span = tracing::debug_span!("db.read", role = "read").entered();
        let mut pooled = match self.standby_connection() {
            Some(conn) => conn,
            None => self.checkout(self.primary_read_role())?,
        };
        self.counted(Role::Read, || read_on(&mut pooled, f))
    }

    /// Runs `f`, one statement, on a read connection without a transaction of its own (one
    /// round trip instead of three): the standby's or the read pool's, whose sessions are
    /// read-only. When reads fall back to the primary, `f` runs in a read-only transaction
    /// there, so it can never write. What `Executor::read` on an `AnyDatabase` does.
    ///
    /// # Errors
    ///
    /// [`Error::PoolTimeout`], or what `f` returned.
    pub fn read_statement<T>(&self, f: impl FnOnce(&mut PgConnection) -> Result<T>) -> Result<T> {
        let _span = tracing::debug_span!("db.read", role = "read").entered();
        match self.standby_connection() {
            Some(mut conn) => f(&mut conn),
            None if self.inner.replica.is_none() => f(&mut *self.checkout(Role::Read)?),
            None => read_on(&mut self.checkout(Role::Write)?, f),
        }
    }

    /// Runs `f` as [`PgDatabase::read`] does, but always on the primary: for a read that must
    /// see what the caller has just written (a standby may not have replayed it yet).
    ///
    /// # Errors
    ///
    /// [`Error::PoolTimeout`], or what `f` returned.
    pub fn read_primary<T>(&self, f: impl FnOnce(&mut PgConnection) -> Result<T>) -> Result<T> {
        let _span = tracing::debug_span!("db.read", role = "read", primary = true).entered();
        let mut pooled = self.checkout(self.primary_read_role())?;
        self.counted(Role::Read, || read_on(&mut pooled, f))
    }

    /// Runs the transaction `run` and counts how it ended (a panic counts as rolled back).
    fn counted<T>(&self, role: Role, run: impl FnOnce() -> Result<T>) -> Result<T> {
        let result = catch_unwind(AssertUnwindSafe(run));
        let committed = matches!(result, Ok(Ok(_)));
        self.inner.metrics.count_transaction(role, committed);
        result.unwrap_or_else(|panic| resume_unwind(panic))
    }

    /// Statistics of the pools, statements and transactions of this database: the same
    /// figures as SQLite's [`Database::connection_stats`](crate::Database::connection_stats),
    /// without SQLite's files, memory and page caches (`None`). Always two pools, `read`
    /// (on the standby with `DATABASE_READ_URL`) and `write`. Reads only atomics and the
    /// pools' state: no query.
    pub fn connection_stats(&self) -> ConnectionStats {
        self.inner.metrics.connection_stats(
            |role| {
                let (open, idle, max_size) = self.pool_state(role);
                PoolState {
                    max_size,
                    open,
                    idle,
                }
            },
            EngineFigures {
                files: None,
                memory: None,
                page_cache: false,
            },
        )
    }

    /// Where the endpoint of `DB_METRICS_ADDR` is kept.
    #[cfg(feature = "metrics-server")]
    pub(crate) fn metrics_server(&self) -> &Mutex<Option<crate::observe::MetricsServer>> {
        &self.inner.metrics_server
    }

    /// A handle that does not keep the database open (for the metrics endpoint).
    #[cfg(feature = "metrics-server")]
    pub(crate) fn downgrade(&self) -> WeakPgDatabase {
        WeakPgDatabase(Arc::downgrade(&self.inner))
    }

    /// The pool that serves reads on the primary: the read pool without a standby, else the
    /// write pool (its connections reach the primary; the read transaction is read-only).
    fn primary_read_role(&self) -> Role {
        if self.inner.replica.is_some() {
            Role::Write
        } else {
            Role::Read
        }
    }

    /// A standby connection for a read, or `None` when reads should use the primary: no
    /// standby configured, one found down or lagging within the last retry interval, or one
    /// that lags now. Each change of mind is logged once.
    fn standby_connection(&self) -> Option<Pooled> {
        let replica = self.inner.replica.as_ref()?;
        let config = &self.inner.config;
        let now = Instant::now();
        {
            let mut state = replica.state.lock();
            if let Some(until) = state.avoid_until {
                if now < until {
                    return None;
                }
                state.avoid_until = None;
                state.checked = None;
                tracing::info!("Database standby tried again for reads");
            }
        }
        let avoid = |why: String| {
            let mut state = replica.state.lock();
            if state.avoid_until.is_none() {
                tracing::warn!(
                    reason = %why,
                    retry_after_secs = config.replica_retry().as_secs(),
                    "Database reads moved to the primary"
                );
            }
            state.avoid_until = Some(Instant::now() + config.replica_retry());
        };
        let mut conn = match self
            .inner
            .read_pool
            .get_timeout(STANDBY_CHECKOUT_WAIT.min(config.pool_timeout()))
        {
            Ok(conn) => conn,
            Err(e) => {
                avoid(format!("no standby connection: {e}"));
                return None;
            }
        };
        let due = replica
            .state
            .lock()
            .checked
            .is_none_or(|(at, _)| now.duration_since(at) >= LAG_CHECK_INTERVAL);
        if due {
            match diesel::sql_query(LAG_SQL).get_result::<LagMs>(&mut **conn) {
                Ok(lag) => {
                    let lag = Duration::from_millis(lag.lag_ms.max(0).unsigned_abs());
                    replica.state.lock().checked = Some((now, lag));
                    if lag > config.max_replica_lag() {
                        avoid(format!(
                            "replay lag {lag:?} is over DB_MAX_REPLICA_LAG_MS ({:?})",
                            config.max_replica_lag()
                        ));
                        return None;
                    }
                }
                Err(e) => {
                    avoid(format!("measuring the standby's lag failed: {e}"));
                    return None;
                }
            }
        }
        Some(conn)
    }

    /// The standby's replay lag as last measured by a read (at most a second old while
    /// reads run), or `None` without a standby or before the first measurement.
    pub fn replica_lag(&self) -> Option<Duration> {
        let replica = self.inner.replica.as_ref()?;
        replica.state.lock().checked.map(|(_, lag)| lag)
    }

    /// Measures the standby's replay lag now (for health checks and metrics). A standby that
    /// cannot be asked within a second also sends reads to the primary, as a read would.
    ///
    /// # Errors
    ///
    /// `Ok(None)` without a standby; [`Error::PoolTimeout`] or a database error when the
    /// standby cannot be asked.
    pub fn measure_replica_lag(&self) -> Result<Option<Duration>> {
        let Some(replica) = &self.inner.replica else {
            return Ok(None);
        };
        let config = &self.inner.config;
        let measured = self
            .inner
            .read_pool
            .get_timeout(STANDBY_CHECKOUT_WAIT.min(config.pool_timeout()))
            .map_err(|e| Error::PoolTimeout {
                role: Role::Read,
                waited: STANDBY_CHECKOUT_WAIT,
                source: Some(e),
            })
            .and_then(|mut conn| Ok(diesel::sql_query(LAG_SQL).get_result::<LagMs>(&mut **conn)?));
        let mut state = replica.state.lock();
        match measured {
            Ok(lag) => {
                let lag = Duration::from_millis(lag.lag_ms.max(0).unsigned_abs());
                state.checked = Some((Instant::now(), lag));
                Ok(Some(lag))
            }
            Err(error) => {
                // Reads would find the same: send them to the primary at once.
                if state.avoid_until.is_none() {
                    tracing::warn!(reason = %error, "Database reads moved to the primary");
                }
                state.avoid_until = Some(Instant::now() + config.replica_retry());
                Err(error)
            }
        }
    }

    /// Connections of `role`'s pool open and idle, and its size.
    pub(crate) fn pool_state(&self, role: Role) -> (u32, u32, u32) {
        let pool = match role {
            Role::Read => &self.inner.read_pool,
            Role::Write => &self.inner.write_pool,
        };
        let state = pool.state();
        (state.connections, state.idle_connections, pool.max_size())
    }

    /// Whether reads use the primary now because the standby is down or lags.
    pub(crate) fn reads_on_primary(&self) -> bool {
        self.inner.replica.as_ref().is_some_and(|replica| {
            replica
                .state
                .lock()
                .avoid_until
                .is_some_and(|until| Instant::now() < until)
        })
    }

    /// The report of the last [`PgDatabase::health`] call, if there was one.
    pub fn last_health(&self) -> Option<crate::observe::health::HealthReport> {
        self.inner.last_health.lock().clone()
    }

    pub(crate) fn remember_health(&self, report: &crate::observe::health::HealthReport) {
        *self.inner.last_health.lock() = Some(report.clone());
    }
}

/// `f` inside one read-only `REPEATABLE READ` transaction on `conn`.
fn read_on<T>(pooled: &mut Pooled, f: impl FnOnce(&mut PgConnection) -> Result<T>) -> Result<T> {
    let conn: &mut PgConnection = pooled;
    AnsiTransactionManager::begin_transaction_sql(
        conn,
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    )?;
    match catch_unwind(AssertUnwindSafe(|| f(conn))) {
        Ok(Ok(value)) => {
            AnsiTransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Ok(Err(error)) => {
            let _ = AnsiTransactionManager::rollback_transaction(conn);
            Err(error)
        }
        Err(panic) => {
            let _ = AnsiTransactionManager::rollback_transaction(conn);
            resume_unwind(panic)
        }
    }
}
