//! [`PgDatabase`]: the read and write pools of a PostgreSQL database.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::MigrationHarness;

use super::transaction::{WRITE_LOCK_KEY, write_on_pg};
use crate::config::PgConfig;
use crate::error::{Error, Result};
use crate::pragmas::Role;

type PgPool = Pool<ConnectionManager<PgConnection>>;

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
#[derive(Debug)]
struct Session {
    role: Role,
    statements: String,
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for Session {
    fn on_acquire(&self, conn: &mut PgConnection) -> std::result::Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&self.statements).map_err(|e| {
            tracing::warn!(role = ?self.role, error = %e, "Database connection setup failed");
            diesel::r2d2::Error::QueryError(e)
        })
    }
}

fn session(config: &PgConfig, role: Role) -> Session {
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
    Session { role, statements }
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

impl PgDatabase {
    /// Connects to the server, runs the pending PostgreSQL migrations (holding litedal's write
    /// lock, so processes opening at once do not race), and builds the pools.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a server cannot be reached (the URL shown without its password),
    /// [`Error::Migration`] for a failing migration.
    pub fn open(config: PgConfig) -> Result<PgDatabase> {
        let started = std::time::Instant::now();
        if config.run_migrations() {
            if let Some(migrations) = config.migrations() {
                let mut conn = <PgConnection as diesel::Connection>::establish(config.url())
                    .map_err(|e| connection_error(&config, config.url(), e))?;
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
        let build = |role: Role, url: &str, size: u32| -> Result<PgPool> {
            Pool::builder()
                .max_size(size)
                .min_idle(Some(0))
                .connection_timeout(config.pool_timeout())
                // PostgreSQL connections can drop (a restarted server, a network cut): a
                // checkout that finds one dead opens a new one instead of failing the caller.
                .test_on_check_out(true)
                .connection_customizer(Box::new(session(&config, role)))
                .build(ConnectionManager::<PgConnection>::new(url))
                .map_err(|e| connection_error(&config, url, e))
        };
        let write_pool = build(Role::Write, config.url(), config.write_pool_size())?;
        // One connection now, so a wrong URL fails here and not at the first query.
        drop(
            write_pool
                .get()
                .map_err(|e| connection_error(&config, config.url(), e))?,
        );
        let read_url = config.read_url().unwrap_or(config.url()).to_owned();
        let read_pool = build(Role::Read, &read_url, config.read_pool_size())?;
        tracing::info!(
            url = %config.display_url(),
            read_url = config.read_url().map(crate::url::redact_password),
            read_pool = config.read_pool_size(),
            write_pool = config.write_pool_size(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "Database opened"
        );
        Ok(PgDatabase {
            inner: Arc::new(Inner {
                config,
                write_pool,
                read_pool,
            }),
        })
    }

    /// The configuration the database was opened with.
    pub fn config(&self) -> &PgConfig {
        &self.inner.config
    }

    fn checkout(&self, role: Role) -> Result<PooledConnection<ConnectionManager<PgConnection>>> {
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
        write_on_pg(&mut conn, f)
    }

    /// Runs `f` on a read connection inside one read-only `REPEATABLE READ` transaction, so
    /// every statement in it sees the same snapshot (as a read transaction does on SQLite).
    ///
    /// # Errors
    ///
    /// [`Error::PoolTimeout`], or what `f` returned.
    pub fn read<T>(&self, f: impl FnOnce(&mut PgConnection) -> Result<T>) -> Result<T> {
        let _span = tracing::debug_span!("db.read", role = "read").entered();
        let mut pooled = self.checkout(Role::Read)?;
        let conn: &mut PgConnection = &mut pooled;
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

    /// The write pool's connection with no transaction open, for code that manages its own.
    ///
    /// # Errors
    ///
    /// [`Error::PoolTimeout`].
    pub fn write_connection(&self) -> Result<PooledConnection<ConnectionManager<PgConnection>>> {
        let conn = self.checkout(Role::Write)?;
        Ok(conn)
    }
}
