//! [`Config`]: the validated configuration, and the PRAGMAs it gives each role.

use std::net::SocketAddr;
use std::time::Duration;

use diesel_migrations::EmbeddedMigrations;

use super::hook::ConnectionHook;
use super::migrations::Migrations;
use super::thresholds::HealthThresholds;
use crate::pragmas::{CheckpointMode, Pragmas, Role, SqliteLimits, Synchronous, TempStore};
use crate::url::DatabaseLocation;

/// The bearer token of the metrics endpoint: a secret, so `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct MetricsToken(pub(crate) String);

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(<redacted>)")
    }
}

/// Validated configuration of a [`Database`](crate::Database).
#[derive(Clone)]
pub struct Config {
    pub(super) database_url: String,
    pub(super) location: DatabaseLocation,
    pub(super) separate_read_write: bool,
    pub(super) read_pool_size: u32,
    pub(super) write_pool_size: u32,
    pub(super) enable_wal: bool,
    pub(super) pool_timeout: Duration,
    pub(super) busy_timeout: Duration,
    pub(super) read_cache_size_kib: u32,
    pub(super) write_cache_size_kib: u32,
    pub(super) read_mmap_size: u64,
    pub(super) write_mmap_size: u64,
    pub(super) temp_store: TempStore,
    pub(super) synchronous: Synchronous,
    pub(super) wal_autocheckpoint: u32,
    pub(super) wal_checkpoint_mode: CheckpointMode,
    pub(super) checkpoint_interval: Duration,
    pub(super) wal_size_limit: u64,
    pub(super) slow_query: Option<Duration>,
    pub(super) metrics_addr: Option<SocketAddr>,
    pub(super) metrics_token: Option<MetricsToken>,
    pub(super) run_migrations: bool,
    pub(super) migrations: Option<Migrations>,
    pub(super) write_gate: bool,
    pub(super) instrumentation: bool,
    pub(super) foreign_keys: bool,
    pub(super) stable_query_plans: bool,
    pub(super) sqlite_limits: SqliteLimits,
    pub(super) load_extensions: bool,
    pub(super) on_connect: Option<ConnectionHook>,
    pub(super) health_thresholds: HealthThresholds,
}

/// Never prints a password: the URLs are shown redacted.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("Config");
        out.field(
            "database_url",
            &crate::url::redact_password(&self.database_url),
        )
        .field("location", &self.location)
        .field("separate_read_write", &self.separate_read_write)
        .field("read_pool_size", &self.read_pool_size)
        .field("write_pool_size", &self.write_pool_size)
        .field("enable_wal", &self.enable_wal)
        .field("pool_timeout", &self.pool_timeout)
        .field("busy_timeout", &self.busy_timeout)
        .field("read_cache_size_kib", &self.read_cache_size_kib)
        .field("write_cache_size_kib", &self.write_cache_size_kib)
        .field("read_mmap_size", &self.read_mmap_size)
        .field("write_mmap_size", &self.write_mmap_size)
        .field("temp_store", &self.temp_store)
        .field("synchronous", &self.synchronous)
        .field("wal_autocheckpoint", &self.wal_autocheckpoint)
        .field("wal_checkpoint_mode", &self.wal_checkpoint_mode)
        .field("checkpoint_interval", &self.checkpoint_interval)
        .field("wal_size_limit", &self.wal_size_limit)
        .field("slow_query", &self.slow_query)
        .field("metrics_addr", &self.metrics_addr)
        .field("run_migrations", &self.run_migrations)
        .field("migrations", &self.migrations)
        .field("write_gate", &self.write_gate)
        .field("instrumentation", &self.instrumentation)
        .field("foreign_keys", &self.foreign_keys)
        .field("stable_query_plans", &self.stable_query_plans)
        .field("on_connect", &self.on_connect)
        .field("health_thresholds", &self.health_thresholds);
        out.finish()
    }
}

impl Config {
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

    /// The bearer token the endpoint requires (`DB_METRICS_TOKEN`, `DB_METRICS_TOKEN_FILE`).
    #[cfg_attr(not(feature = "metrics-server"), allow(dead_code))]
    pub(crate) fn metrics_token(&self) -> Option<&MetricsToken> {
        self.metrics_token.as_ref()
    }

    /// True when the application's migrations run at open (`DB_RUN_MIGRATIONS`).
    pub fn run_migrations(&self) -> bool {
        self.run_migrations
    }

    /// The application's migrations, or `None` when it gave none.
    pub fn migrations(&self) -> Option<Migrations> {
        self.migrations
    }

    /// This configuration with the application's migrations, for a configuration read from
    /// the environment: `Database::open(Config::from_env()?.with_migrations(&MIGRATIONS))`.
    pub fn with_migrations(mut self, migrations: &'static EmbeddedMigrations) -> Config {
        self.migrations = Some(Migrations(migrations));
        self
    }

    /// True when writers of this process queue on an in-process gate before `BEGIN IMMEDIATE`.
    pub fn write_gate(&self) -> bool {
        self.write_gate
    }

    /// The application's connection hook, if it set one.
    pub fn on_connect(&self) -> Option<&ConnectionHook> {
        self.on_connect.as_ref()
    }

    /// True when every connection has SQLite's query planner stability guarantee
    /// (`DB_STABLE_QUERY_PLANS`, the default; see
    /// [`ConfigBuilder::stable_query_plans`](crate::ConfigBuilder::stable_query_plans)).
    pub fn stable_query_plans(&self) -> bool {
        self.stable_query_plans
    }

    /// SQLite's limits on every connection (`DB_SQLITE_MAX_*`; see [`SqliteLimits`]).
    pub fn sqlite_limits(&self) -> SqliteLimits {
        self.sqlite_limits
    }

    /// True when the connection hook may load SQLite extensions (see
    /// [`ConfigBuilder::load_extensions`](crate::ConfigBuilder::load_extensions)).
    pub fn load_extensions(&self) -> bool {
        self.load_extensions
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
            foreign_keys: self.foreign_keys,
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
