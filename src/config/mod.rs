//! Configuration: [`Config::from_env`] reads the `DB_*` variables, [`ConfigBuilder`] is the
//! same thing for code. Every value is validated in [`ConfigBuilder::build`]; a bad one is an
//! [`Error::Config`] naming the variable, the value and what is accepted, and nothing is opened.
//!
//! - `env.rs`: [`ENV_VARS`], the one table of variables (parsing, the README's table and the
//!   CLI's help all follow it), and reading them into a [`ConfigBuilder`].
//! - `builder.rs`: the builder's setters and [`ConfigBuilder::build`], which validates.
//! - `thresholds.rs`: the health thresholds configuration parses ([`HealthThresholds`]).

mod builder;
mod env;
mod thresholds;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::time::Duration;

use diesel_migrations::EmbeddedMigrations;

pub use env::ENV_VARS;
pub use thresholds::{HealthThresholds, Limits};

#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::pragmas::{CheckpointMode, Pragmas, Role, Synchronous, TempStore};
use crate::url::DatabaseLocation;

/// The migrations shipped with litedal (the `users` and `posts` tables), embedded at build time.
pub const MIGRATIONS: EmbeddedMigrations = diesel_migrations::embed_migrations!("migrations");

/// A set of embedded migrations (litedal's [`MIGRATIONS`] or an application's own), usable
/// wherever diesel takes a `MigrationSource`.
#[derive(Clone, Copy)]
pub struct Migrations(pub &'static EmbeddedMigrations);

impl std::fmt::Debug for Migrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedMigrations")
    }
}

impl diesel::migration::MigrationSource<diesel::sqlite::Sqlite> for Migrations {
    fn migrations(
        &self,
    ) -> diesel::migration::Result<Vec<Box<dyn diesel::migration::Migration<diesel::sqlite::Sqlite>>>>
    {
        diesel::migration::MigrationSource::<diesel::sqlite::Sqlite>::migrations(self.0)
    }
}

/// Validated configuration of a [`Database`](crate::Database).
#[derive(Debug, Clone)]
pub struct Config {
    database_url: String,
    location: DatabaseLocation,
    separate_read_write: bool,
    read_pool_size: u32,
    write_pool_size: u32,
    enable_wal: bool,
    pool_timeout: Duration,
    busy_timeout: Duration,
    read_cache_size_kib: u32,
    write_cache_size_kib: u32,
    read_mmap_size: u64,
    write_mmap_size: u64,
    temp_store: TempStore,
    synchronous: Synchronous,
    wal_autocheckpoint: u32,
    wal_checkpoint_mode: CheckpointMode,
    checkpoint_interval: Duration,
    wal_size_limit: u64,
    slow_query: Option<Duration>,
    metrics_addr: Option<SocketAddr>,
    run_migrations: bool,
    migrations: Migrations,
    write_gate: bool,
    instrumentation: bool,
    health_thresholds: HealthThresholds,
}

impl Config {
    /// A builder with every default of the configuration table.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// Reads the configuration from the process environment (see [`ENV_VARS`]).
    ///
    /// Unknown `DB_*` variables are logged at WARN, so a misspelt name does not go unnoticed.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] or [`Error::UnsupportedUrl`] for the first bad value.
    pub fn from_env() -> Result<Config> {
        Config::from_vars(std::env::vars_os())
    }

    /// Like [`Config::from_env`], but from the given name/value pairs instead of the process
    /// environment (for tests, and for applications that read their own config files).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] or [`Error::UnsupportedUrl`] for the first bad value.
    ///
    /// ```
    /// let config = litedal::Config::from_vars([("DB_POOL_SIZE", "4"), ("DATABASE_URL", ":memory:")])?;
    /// assert_eq!(config.read_pool_size(), 1); // in-memory: one shared connection
    /// let config = litedal::Config::from_vars([("DB_POOL_SIZE", "4")])?;
    /// assert_eq!((config.read_pool_size(), config.write_pool_size()), (8, 2));
    /// # Ok::<(), litedal::Error>(())
    /// ```
    pub fn from_vars<I, K, V>(vars: I) -> Result<Config>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        ConfigBuilder::from_vars(vars)?.build()
    }

    /// `DATABASE_URL` as given.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Where the database lives.
    pub fn location(&self) -> &DatabaseLocation {
        &self.location
    }

    /// True when readers and writers have separate pools.
    pub fn separate_read_write(&self) -> bool {
        self.separate_read_write
    }

    /// Size of the read pool (equal to the write pool size when one pool serves both roles).
    pub fn read_pool_size(&self) -> u32 {
        self.read_pool_size
    }

    /// Size of the write pool.
    pub fn write_pool_size(&self) -> u32 {
        self.write_pool_size
    }

    /// True when the database is put in WAL mode at open.
    pub fn enable_wal(&self) -> bool {
        self.enable_wal
    }

    /// How long a checkout may wait for a free pooled connection.
    pub fn pool_timeout(&self) -> Duration {
        self.pool_timeout
    }

    /// `PRAGMA busy_timeout`.
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// Mode of the background checkpointer.
    pub fn wal_checkpoint_mode(&self) -> CheckpointMode {
        self.wal_checkpoint_mode
    }

    /// Period of the background checkpointer; zero means off.
    pub fn checkpoint_interval(&self) -> Duration {
        self.checkpoint_interval
    }

    /// WAL size in bytes above which the checkpointer escalates to TRUNCATE.
    pub fn wal_size_limit(&self) -> u64 {
        self.wal_size_limit
    }

    /// Queries slower than this are logged at WARN; `None` = off.
    pub fn slow_query(&self) -> Option<Duration> {
        self.slow_query
    }

    /// Address of the `/metrics` and `/health` endpoint, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// True when the embedded migrations run at open.
    pub fn run_migrations(&self) -> bool {
        self.run_migrations
    }

    /// The migrations run at open.
    pub fn migrations(&self) -> Migrations {
        self.migrations
    }

    /// True when writers of this process queue on an in-process gate before `BEGIN IMMEDIATE`.
    pub fn write_gate(&self) -> bool {
        self.write_gate
    }

    /// True when checkouts and statements are counted and timed (the default).
    pub fn instrumentation(&self) -> bool {
        self.instrumentation
    }

    /// The thresholds [`Database::health`](crate::Database::health) grades against.
    pub fn health_thresholds(&self) -> &HealthThresholds {
        &self.health_thresholds
    }

    /// The PRAGMAs applied to every connection of `role`.
    pub fn pragmas(&self, role: Role) -> Pragmas {
        let (cache_size_kib, mmap_size) = match role {
            Role::Read => (self.read_cache_size_kib, self.read_mmap_size),
            Role::Write => (self.write_cache_size_kib, self.write_mmap_size),
        };
        Pragmas {
            busy_timeout: self.busy_timeout,
            foreign_keys: true,
            synchronous: self.synchronous,
            cache_size_kib,
            temp_store: self.temp_store,
            mmap_size,
            wal_autocheckpoint: self.wal_autocheckpoint,
            // Keep at most the WAL size limit on disk after a checkpoint resets the WAL.
            journal_size_limit: self.wal_size_limit,
            // With one shared pool a connection serves both roles and must be able to write.
            query_only: role == Role::Read && self.separate_read_write,
        }
    }
}

/// Builder for [`Config`]. Each setter documents its default; [`build`](Self::build) validates.
///
/// ```
/// use std::time::Duration;
/// let config = litedal::Config::builder()
///     .database_url("sqlite://data/app.db")
///     .pool_size(4)
///     .busy_timeout(Duration::from_secs(2))
///     .build()?;
/// assert_eq!(config.write_pool_size(), 2);
/// # Ok::<(), litedal::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    database_url: String,
    pool_size: u64,
    separate_read_write: bool,
    read_pool_size: Option<u64>,
    write_pool_size: Option<u64>,
    enable_wal: bool,
    pool_timeout: Duration,
    busy_timeout: Duration,
    cache_size_kib: u64,
    read_cache_size_kib: Option<u64>,
    write_cache_size_kib: Option<u64>,
    mmap_size: u64,
    read_mmap_size: Option<u64>,
    write_mmap_size: Option<u64>,
    temp_store: TempStore,
    synchronous: Synchronous,
    wal_autocheckpoint: u64,
    wal_checkpoint_mode: CheckpointMode,
    checkpoint_interval: Duration,
    wal_size_limit: u64,
    slow_query: Duration,
    metrics_addr: Option<SocketAddr>,
    run_migrations: bool,
    migrations: Migrations,
    write_gate: bool,
    instrumentation: bool,
    health_read_latency: Option<Limits<Duration>>,
    health_write_latency: Option<Limits<Duration>>,
    health_pool_utilization: Option<Limits<f64>>,
    health_wal_size: Option<Limits<u64>>,
    health_checkpoint_age: Option<Limits<Duration>>,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        ConfigBuilder {
            database_url: "sqlite://data/main.db".to_owned(),
            pool_size: 10,
            separate_read_write: true,
            read_pool_size: None,
            write_pool_size: None,
            enable_wal: true,
            pool_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_millis(5000),
            cache_size_kib: 2000,
            read_cache_size_kib: None,
            write_cache_size_kib: None,
            mmap_size: 268_435_456,
            read_mmap_size: None,
            write_mmap_size: None,
            temp_store: TempStore::Memory,
            synchronous: Synchronous::Full,
            wal_autocheckpoint: 1000,
            wal_checkpoint_mode: CheckpointMode::Passive,
            checkpoint_interval: Duration::from_secs(30),
            wal_size_limit: 64 * 1024 * 1024,
            slow_query: Duration::from_millis(100),
            metrics_addr: None,
            run_migrations: true,
            migrations: Migrations(&MIGRATIONS),
            write_gate: true,
            instrumentation: true,
            health_read_latency: None,
            health_write_latency: None,
            health_pool_utilization: None,
            health_wal_size: None,
            health_checkpoint_age: None,
        }
    }
}
