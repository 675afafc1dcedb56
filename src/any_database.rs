//! [`AnyDatabase`]: a database whose engine `DATABASE_URL` picks at run time (feature
//! `postgres`), for application code written once for SQLite and PostgreSQL.

use crate::batch::{EngineRows, OPTIMIZE_AFTER_ROWS};
use crate::config::AnyConfig;
use crate::database::Database;
use crate::engine::{AnyEngine, EngineRef};
use crate::error::Result;
use crate::executor::Executor;
use crate::postgres::PgDatabase;

/// SQLite's [`Database`] or a [`PgDatabase`], chosen by the scheme of `DATABASE_URL`.
///
/// Repositories written for every engine (`impl Executor<E>` with `E: EngineKind`, queries
/// inside [`on_engine!`](crate::on_engine)) take `&AnyDatabase` as their executor; closures of
/// [`AnyDatabase::transaction`] and [`AnyDatabase::read`] get an [`EngineRef`].
///
/// ```no_run
/// use litedal::{AnyConfig, AnyDatabase};
/// use litedal::example::repo::Users;
///
/// // DATABASE_URL=sqlite://data/main.db or postgres://app@db.internal/app
/// let config = litedal::ConfigBuilder::from_env()?
///     .migrations(&litedal::example::MIGRATIONS)
///     .postgres_migrations(&litedal::example::MIGRATIONS_POSTGRES)
///     .build_any()?;
/// let db = AnyDatabase::open(config)?;
/// println!("{} users on {}", Users::count(&db)?, db.engine());
/// # Ok::<(), litedal::Error>(())
/// ```
#[derive(Debug, Clone)]
pub enum AnyDatabase {
    /// An SQLite file (or `:memory:`).
    Sqlite(Database),
    /// A PostgreSQL server.
    Postgres(PgDatabase),
}

impl AnyDatabase {
    /// Opens the database `config` describes (see [`Database::open`] and
    /// [`PgDatabase::open`]).
    ///
    /// # Errors
    ///
    /// Those of the engine's `open`.
    pub fn open(config: AnyConfig) -> Result<AnyDatabase> {
        match config {
            AnyConfig::Sqlite(config) => Database::open(config).map(AnyDatabase::Sqlite),
            AnyConfig::Postgres(config) => PgDatabase::open(config).map(AnyDatabase::Postgres),
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn engine(&self) -> &'static str {
        match self {
            AnyDatabase::Sqlite(_) => "sqlite",
            AnyDatabase::Postgres(_) => "postgres",
        }
    }

    /// Runs `f` in a write transaction: commits on `Ok`, rolls back on `Err` or panic. SQLite:
    /// [`Database::transaction`]; PostgreSQL: [`PgDatabase::transaction`]. On both, litedal's
    /// writers run one at a time and `f` runs exactly once.
    ///
    /// # Errors
    ///
    /// As the engine's `transaction`.
    pub fn transaction<T>(
        &self,
        f: impl for<'c> FnOnce(&mut EngineRef<'c>) -> Result<T>,
    ) -> Result<T> {
        match self {
            AnyDatabase::Sqlite(db) => db.transaction(|conn| f(&mut EngineRef::Sqlite(conn))),
            AnyDatabase::Postgres(db) => db.transaction(|conn| f(&mut EngineRef::Postgres(conn))),
        }
    }

    /// Runs `f` on a read connection inside one read transaction (one snapshot).
    ///
    /// # Errors
    ///
    /// As the engine's `read`.
    pub fn read<T>(&self, f: impl for<'c> FnOnce(&mut EngineRef<'c>) -> Result<T>) -> Result<T> {
        match self {
            AnyDatabase::Sqlite(db) => db.read(|conn| f(&mut EngineRef::Sqlite(conn))),
            AnyDatabase::Postgres(db) => db.read(|conn| f(&mut EngineRef::Postgres(conn))),
        }
    }

    /// As [`AnyDatabase::read`], but on the primary even when reads go to a standby
    /// (`DATABASE_READ_URL`): for a read that must see the caller's own write. On SQLite every
    /// read sees every committed write, so this is `read`.
    ///
    /// # Errors
    ///
    /// As the engine's `read`.
    pub fn read_primary<T>(
        &self,
        f: impl for<'c> FnOnce(&mut EngineRef<'c>) -> Result<T>,
    ) -> Result<T> {
        match self {
            AnyDatabase::Sqlite(db) => db.read(|conn| f(&mut EngineRef::Sqlite(conn))),
            AnyDatabase::Postgres(db) => db.read_primary(|conn| f(&mut EngineRef::Postgres(conn))),
        }
    }

    /// The standby's replay lag as last measured (see [`PgDatabase::replica_lag`]); `None` on
    /// SQLite and without `DATABASE_READ_URL`.
    pub fn replica_lag(&self) -> Option<std::time::Duration> {
        match self {
            AnyDatabase::Sqlite(_) => None,
            AnyDatabase::Postgres(db) => db.replica_lag(),
        }
    }

    /// The engine's health checks: [`Database::health`] or [`PgDatabase::health`] (which has
    /// `replica_lag` and no SQLite-only checks).
    pub fn health(&self) -> crate::observe::health::HealthReport {
        match self {
            AnyDatabase::Sqlite(db) => db.health(),
            AnyDatabase::Postgres(db) => db.health(),
        }
    }

    /// The engine's statistics: [`Database::connection_stats`] or
    /// [`PgDatabase::connection_stats`] (no files, memory or page caches on PostgreSQL).
    pub fn connection_stats(&self) -> crate::observe::stats::ConnectionStats {
        match self {
            AnyDatabase::Sqlite(db) => db.connection_stats(),
            AnyDatabase::Postgres(db) => db.connection_stats(),
        }
    }

    /// The address of the `/metrics` + `/health` endpoint that opening started for
    /// `DB_METRICS_ADDR`, while it runs.
    #[cfg(feature = "metrics-server")]
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            AnyDatabase::Sqlite(db) => db.metrics_addr(),
            AnyDatabase::Postgres(db) => db.metrics_addr(),
        }
    }

    /// The engine's metrics in the Prometheus text format: [`Database::render_metrics`] or
    /// [`PgDatabase::render_metrics`].
    ///
    /// # Errors
    ///
    /// [`Error::Metrics`](crate::Error::Metrics) when encoding fails (not expected).
    pub fn render_metrics(&self) -> Result<String> {
        match self {
            AnyDatabase::Sqlite(db) => db.render_metrics(),
            AnyDatabase::Postgres(db) => db.render_metrics(),
        }
    }

    /// Inserts `rows` into `table` in one write transaction, all or none (SQLite: multi-row
    /// statements of up to 32,766 values; PostgreSQL: up to 65,535), and returns the count.
    ///
    /// # Errors
    ///
    /// The first failing statement's error, naming its chunk.
    pub fn batch_insert<'a, T, R>(&self, table: T, rows: &'a [R]) -> Result<usize>
    where
        T: Copy,
        R: EngineRows<'a, T, AnyEngine>,
    {
        let inserted = self.transaction(|conn| R::insert_rows(conn, table, rows))?;
        if let AnyDatabase::Sqlite(db) = self {
            if inserted >= OPTIMIZE_AFTER_ROWS {
                // As Database::batch_insert: planner statistics for the new rows.
                if let Err(error) = db.optimize() {
                    tracing::warn!(%error, "Database optimize after a batch insert failed");
                }
            }
        }
        Ok(inserted)
    }
}

/// As on `&Database`, a repository read is one statement and needs no transaction of its
/// own; on PostgreSQL that saves two round trips per read.
impl Executor<AnyEngine> for &AnyDatabase {
    fn read<T>(self, f: impl for<'c> FnOnce(&mut EngineRef<'c>) -> Result<T>) -> Result<T> {
        match self {
            AnyDatabase::Sqlite(db) => Executor::read(db, |conn| f(&mut EngineRef::Sqlite(conn))),
            AnyDatabase::Postgres(db) => {
                db.read_statement(|conn| f(&mut EngineRef::Postgres(conn)))
            }
        }
    }

    fn write<T>(self, f: impl for<'c> FnOnce(&mut EngineRef<'c>) -> Result<T>) -> Result<T> {
        AnyDatabase::transaction(self, f)
    }

    fn batch_insert<'a, Tab, R>(self, table: Tab, rows: &'a [R]) -> Result<usize>
    where
        Tab: Copy,
        R: EngineRows<'a, Tab, AnyEngine>,
    {
        AnyDatabase::batch_insert(self, table, rows)
    }
}
