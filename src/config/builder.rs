//! [`ConfigBuilder`]'s setters and [`ConfigBuilder::build`], which validates every value.

use std::net::SocketAddr;
use std::time::Duration;

use diesel_migrations::EmbeddedMigrations;

use super::hook::ConnectionHook;
use super::migrations::Migrations;
use super::settings::Config;
use super::thresholds::{HealthThresholds, Limits};
use crate::error::{Error, Result};
use crate::pragmas::{CheckpointMode, Role, SqliteLimits, Synchronous, TempStore};
use crate::url::{parse_database_url, redact_password};

/// The largest pool size accepted.
pub(super) const MAX_POOL_SIZE: u64 = 1024;
/// SQLite's compile-time ceiling for mmap_size (SQLITE_MAX_MMAP_SIZE); larger values would be
/// silently lowered by SQLite, so they are refused instead.
pub(super) const MAX_MMAP_SIZE: u64 = 0x7fff_0000;

impl Config {
    /// A builder with every default of the configuration table.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
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
#[derive(Clone)]
pub struct ConfigBuilder {
    pub(super) database_url: String,
    pub(super) pool_size: u64,
    pub(super) separate_read_write: bool,
    pub(super) read_pool_size: Option<u64>,
    pub(super) write_pool_size: Option<u64>,
    pub(super) enable_wal: bool,
    pub(super) pool_timeout: Duration,
    pub(super) busy_timeout: Duration,
    pub(super) cache_size_kib: u64,
    pub(super) read_cache_size_kib: Option<u64>,
    pub(super) write_cache_size_kib: Option<u64>,
    pub(super) mmap_size: u64,
    pub(super) read_mmap_size: Option<u64>,
    pub(super) write_mmap_size: Option<u64>,
    pub(super) temp_store: TempStore,
    pub(super) synchronous: Synchronous,
    pub(super) wal_autocheckpoint: u64,
    pub(super) wal_checkpoint_mode: CheckpointMode,
    pub(super) checkpoint_interval: Duration,
    pub(super) wal_size_limit: u64,
    pub(super) slow_query: Duration,
    pub(super) metrics_addr: Option<SocketAddr>,
    pub(super) metrics_token: Option<super::settings::MetricsToken>,
    pub(super) run_migrations: bool,
    pub(super) migrations: Option<Migrations>,
    pub(super) write_gate: bool,
    pub(super) instrumentation: bool,
    pub(super) foreign_keys: bool,
    pub(super) stable_query_plans: bool,
    pub(super) sqlite_limits: SqliteLimits,
    pub(super) load_extensions: bool,
    pub(super) on_connect: Option<ConnectionHook>,
    pub(super) health_read_latency: Option<Limits<Duration>>,
    pub(super) health_write_latency: Option<Limits<Duration>>,
    pub(super) health_pool_utilization: Option<Limits<f64>>,
    pub(super) health_wal_size: Option<Limits<u64>>,
    pub(super) health_checkpoint_age: Option<Limits<Duration>>,
    pub(super) allow_unsafe_settings: bool,
    /// The variables read from the environment, so that those that do not apply to the
    /// engine the URL picks can be reported.
    pub(super) vars_set: Vec<&'static str>,
    #[cfg(feature = "postgres")]
    pub(super) postgres: PgSettings,
}

#[cfg(feature = "postgres")]
/// What the builder holds for PostgreSQL.
#[derive(Clone)]
pub(super) struct PgSettings {
    pub(super) read_url: Option<String>,
    pub(super) statement_timeout: Duration,
    pub(super) lock_timeout: Duration,
    pub(super) max_replica_lag: Duration,
    pub(super) replica_retry: Duration,
    pub(super) application_name: String,
    pub(super) migrations: Option<super::migrations::Migrations>,
    pub(super) tls: super::pg_tls::PgTls,
}

#[cfg(feature = "postgres")]
impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            read_url: None,
            statement_timeout: Duration::ZERO,
            // As SQLite's busy timeout: a write that waits longer for a lock is `Busy`.
            lock_timeout: Duration::from_millis(5000),
            max_replica_lag: Duration::from_secs(10),
            replica_retry: Duration::from_secs(5),
            application_name: "litedal".to_owned(),
            migrations: None,
            tls: super::pg_tls::PgTls::Require,
        }
    }
}

/// Never prints a password: the URLs are shown redacted.
impl std::fmt::Debug for ConfigBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("ConfigBuilder");
        out.field("database_url", &redact_password(&self.database_url))
            .field("pool_size", &self.pool_size)
            .field("separate_read_write", &self.separate_read_write)
            .field("read_pool_size", &self.read_pool_size)
            .field("write_pool_size", &self.write_pool_size)
            .field("enable_wal", &self.enable_wal)
            .field("pool_timeout", &self.pool_timeout)
            .field("busy_timeout", &self.busy_timeout)
            .field("cache_size_kib", &self.cache_size_kib)
            .field("read_cache_size_kib", &self.read_cache_size_kib)
            .field("write_cache_size_kib", &self.write_cache_size_kib)
            .field("mmap_size", &self.mmap_size)
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
            .field("health_read_latency", &self.health_read_latency)
            .field("health_write_latency", &self.health_write_latency)
            .field("health_pool_utilization", &self.health_pool_utilization)
            .field("health_wal_size", &self.health_wal_size)
            .field("health_checkpoint_age", &self.health_checkpoint_age)
            .field("allow_unsafe_settings", &self.allow_unsafe_settings)
            .field("vars_set", &self.vars_set);
        #[cfg(feature = "postgres")]
        out.field("postgres", &self.postgres);
        out.finish()
    }
}

#[cfg(feature = "postgres")]
/// Never prints a password: the URLs are shown redacted.
impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("PgSettings");
        out.field("read_url", &self.read_url.as_deref().map(redact_password))
            .field("statement_timeout", &self.statement_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("max_replica_lag", &self.max_replica_lag)
            .field("replica_retry", &self.replica_retry)
            .field("application_name", &self.application_name)
            .field("migrations", &self.migrations);
        out.finish()
    }
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
            metrics_token: None,
            run_migrations: true,
            migrations: None,
            write_gate: true,
            instrumentation: true,
            foreign_keys: true,
            stable_query_plans: true,
            sqlite_limits: SqliteLimits::default(),
            load_extensions: false,
            on_connect: None,
            health_read_latency: None,
            health_write_latency: None,
            health_pool_utilization: None,
            health_wal_size: None,
            health_checkpoint_age: None,
            allow_unsafe_settings: false,
            vars_set: Vec::new(),
            #[cfg(feature = "postgres")]
            postgres: PgSettings::default(),
        }
    }
}

impl ConfigBuilder {
    /// `DATABASE_URL`; default `sqlite://data/main.db`.
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = url.into();
        self
    }

    /// `DB_POOL_SIZE`, the base pool size; default 10.
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = u64::from(size);
        self
    }

    /// `DB_SEPARATE_READ_WRITE`; default true (two pools).
    pub fn separate_read_write(mut self, separate: bool) -> Self {
        self.separate_read_write = separate;
        self
    }

    /// `DB_READ_POOL_SIZE`; default 2 x base.
    pub fn read_pool_size(mut self, size: u32) -> Self {
        self.read_pool_size = Some(u64::from(size));
        self
    }

    /// `DB_WRITE_POOL_SIZE`; default max(1, base / 2).
    pub fn write_pool_size(mut self, size: u32) -> Self {
        self.write_pool_size = Some(u64::from(size));
        self
    }

    /// `DB_ENABLE_WAL`; default true.
    pub fn enable_wal(mut self, enable: bool) -> Self {
        self.enable_wal = enable;
        self
    }

    /// `DB_POOL_TIMEOUT`; default 30 s.
    pub fn pool_timeout(mut self, timeout: Duration) -> Self {
        self.pool_timeout = timeout;
        self
    }

    /// `DB_BUSY_TIMEOUT_MS`; default 5 s.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// `DB_CACHE_SIZE_KIB` for both roles; default 2000 KiB.
    pub fn cache_size_kib(mut self, kib: u32) -> Self {
        self.cache_size_kib = u64::from(kib);
        self
    }

    /// Per-role override of the cache size (`DB_READ_CACHE_SIZE_KIB`, `DB_WRITE_CACHE_SIZE_KIB`).
    pub fn role_cache_size_kib(mut self, role: Role, kib: u32) -> Self {
        match role {
            Role::Read => self.read_cache_size_kib = Some(u64::from(kib)),
            Role::Write => self.write_cache_size_kib = Some(u64::from(kib)),
        }
        self
    }

    /// `DB_MMAP_SIZE` for both roles; default 256 MiB.
    pub fn mmap_size(mut self, bytes: u64) -> Self {
        self.mmap_size = bytes;
        self
    }

    /// Per-role override of mmap_size (`DB_READ_MMAP_SIZE`, `DB_WRITE_MMAP_SIZE`).
    pub fn role_mmap_size(mut self, role: Role, bytes: u64) -> Self {
        match role {
            Role::Read => self.read_mmap_size = Some(bytes),
            Role::Write => self.write_mmap_size = Some(bytes),
        }
        self
    }

    /// `DB_TEMP_STORE`; default memory.
    pub fn temp_store(mut self, temp_store: TempStore) -> Self {
        self.temp_store = temp_store;
        self
    }

    /// `DB_SYNCHRONOUS`; default FULL (a commit survives power loss).
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// `DB_WAL_AUTOCHECKPOINT` in pages; default 1000; 0 leaves checkpoints to other tools.
    pub fn wal_autocheckpoint(mut self, pages: u32) -> Self {
        self.wal_autocheckpoint = u64::from(pages);
        self
    }

    /// `DB_WAL_CHECKPOINT_MODE`; default PASSIVE.
    pub fn wal_checkpoint_mode(mut self, mode: CheckpointMode) -> Self {
        self.wal_checkpoint_mode = mode;
        self
    }

    /// `DB_CHECKPOINT_INTERVAL_SECS`; default 30 s; zero turns the checkpointer off.
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// `DB_WAL_SIZE_LIMIT` in bytes; default 64 MiB.
    pub fn wal_size_limit(mut self, bytes: u64) -> Self {
        self.wal_size_limit = bytes;
        self
    }

    /// `DB_SLOW_QUERY_MS`; default 100 ms; zero turns the slow-query log off.
    pub fn slow_query(mut self, threshold: Duration) -> Self {
        self.slow_query = threshold;
        self
    }

    /// `DB_ALLOW_UNSAFE_SETTINGS`; default false: settings that can lose or corrupt data or
    /// hang writers (`nolock=1` in the URI, `DB_SYNCHRONOUS=off`, `DB_BUSY_TIMEOUT_MS=0`,
    /// PostgreSQL's `DB_LOCK_TIMEOUT_MS=0`) are refused with [`Error::Config`]. True accepts
    /// them, each logged at WARN when the configuration is built.
    pub fn allow_unsafe_settings(mut self, allow: bool) -> Self {
        self.allow_unsafe_settings = allow;
        self
    }

    /// `DB_METRICS_ADDR`; default off.
    pub fn metrics_addr(mut self, addr: Option<SocketAddr>) -> Self {
        self.metrics_addr = addr;
        self
    }

    /// `DB_METRICS_TOKEN`: the bearer token the metrics endpoint requires
    /// (`Authorization: Bearer TOKEN`, else 401); default none (open to whoever reaches
    /// the address). Checked by [`build`](Self::build): 16 to 4096 printable ASCII
    /// characters.
    pub fn metrics_token(mut self, token: Option<String>) -> Self {
        self.metrics_token = token.map(super::settings::MetricsToken);
        self
    }

    /// `DB_FOREIGN_KEYS`: `PRAGMA foreign_keys` on every connection; default true (SQLite's
    /// own default is off, which silently accepts rows that point nowhere).
    pub fn foreign_keys(mut self, enabled: bool) -> Self {
        self.foreign_keys = enabled;
        self
    }

    /// `DB_STABLE_QUERY_PLANS`: SQLite's query planner stability guarantee on every
    /// connection; default true. With it, a statement keeps the plan it was prepared with
    /// whatever values are bound to it, so diesel's cached statements with a bound `LIMIT`
    /// or `LIKE` pattern are not parsed and planned again on every run (which made the
    /// benchmark's list query 1.2 x slower). The price: SQLite no longer fits a plan to the
    /// bound values (a `LIKE ?` prefix on a `NOCASE` index, a partial index whose condition a
    /// bound value would meet, a row estimate from the bound `LIMIT`). Turn it off when such
    /// a plan matters more than preparing once.
    pub fn stable_query_plans(mut self, enabled: bool) -> Self {
        self.stable_query_plans = enabled;
        self
    }

    /// SQLite's limits on every connection (`DB_SQLITE_MAX_LENGTH`,
    /// `DB_SQLITE_MAX_SQL_LENGTH`, `DB_SQLITE_MAX_COLUMNS`, `DB_SQLITE_MAX_EXPR_DEPTH`,
    /// `DB_SQLITE_MAX_VARIABLES`); default [`SqliteLimits::default`]. Each is checked against
    /// [`SqliteLimits::RANGES`] in [`build`](Self::build).
    pub fn sqlite_limits(mut self, limits: SqliteLimits) -> Self {
        self.sqlite_limits = limits;
        self
    }

    /// Lets the [connection hook](Self::on_connect) load SQLite extensions; default false.
    /// Every connection has extension loading off (SQLite's C API and the
    /// `load_extension()` SQL function); with this set, it is on while the hook runs, so the
    /// hook can `SELECT load_extension('/path/to/ext')`, and off again before any other SQL
    /// (a view or trigger of the file among it) runs. There is no environment variable:
    /// which libraries a process loads is the application's code, not its deployment.
    /// [`build`](Self::build) refuses it without a hook.
    pub fn load_extensions(mut self, enabled: bool) -> Self {
        self.load_extensions = enabled;
        self
    }

    /// The application's own setup of every new connection (SQL functions, collations,
    /// extra PRAGMAs), run after litedal's PRAGMAs with the role the connection serves, and
    /// on the connection that runs the migrations at open (as a writer) before them. A
    /// reader's `query_only` is set after the hook, so the hook may still create temporary
    /// tables or views.
    ///
    /// A hook that fails makes the open fail with [`Error::ConnectionHook`] naming the role;
    /// statements a hook runs are not counted in the statistics.
    ///
    /// ```
    /// use diesel::connection::SimpleConnection;
    /// use litedal::Role;
    ///
    /// let test_db = litedal::testing::TestDb::with_config(|config| {
    ///     config.on_connect(|conn, role| {
    ///         // Readers may use more memory; every connection gets a collation.
    ///         if role == Role::Read {
    ///             conn.batch_execute("PRAGMA cache_size = -8000")?;
    ///         }
    ///         conn.register_collation("nocase_unicode", |a, b| {
    ///             a.to_lowercase().cmp(&b.to_lowercase())
    ///         })?;
    ///         Ok(())
    ///     })
    /// })?;
    /// let same: bool = test_db.db().read(|conn| {
    ///     use diesel::prelude::*;
    ///     #[derive(QueryableByName)]
    ///     struct Row {
    ///         #[diesel(sql_type = diesel::sql_types::Bool)]
    ///         same: bool,
    ///     }
    ///     let row = diesel::sql_query("SELECT 'ÉTÉ' = 'été' COLLATE nocase_unicode AS same")
    ///         .get_result::<Row>(conn)?;
    ///     Ok(row.same)
    /// })?;
    /// assert!(same);
    /// # Ok::<(), litedal::Error>(())
    /// ```
    pub fn on_connect<F>(mut self, hook: F) -> Self
    where
        F: Fn(&mut diesel::sqlite::SqliteConnection, Role) -> Result<()> + Send + Sync + 'static,
    {
        self.on_connect = Some(ConnectionHook(std::sync::Arc::new(hook)));
        self
    }

    /// `DB_RUN_MIGRATIONS`; default true: the migrations given to
    /// [`migrations`](Self::migrations) run at open (none run when none were given).
    pub fn run_migrations(mut self, run: bool) -> Self {
        self.run_migrations = run;
        self
    }

    /// The application's migrations, run at open (in one immediate transaction) unless
    /// `DB_RUN_MIGRATIONS=false`; default none: litedal creates no table of its own.
    ///
    /// ```
    /// use diesel_migrations::{EmbeddedMigrations, embed_migrations};
    ///
    /// // In an application: its own `migrations/` directory, embedded at build time.
    /// const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");
    ///
    /// let dir = tempfile::tempdir()?;
    /// let config = litedal::Config::builder()
    ///     .database_url(dir.path().join("app.db").display().to_string())
    ///     .migrations(&MIGRATIONS)
    ///     .build()?;
    /// let db = litedal::Database::open(config)?;
    /// assert!(!db.applied_migrations()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn migrations(mut self, migrations: &'static EmbeddedMigrations) -> Self {
        self.migrations = Some(Migrations(migrations));
        self
    }

    /// Whether writers of this process queue on an in-process fair gate before taking
    /// SQLite's write lock; default true. The gate hands the lock over in microseconds and in
    /// arrival order; without it, writers of one process poll for the lock like writers of
    /// other processes, and one that just missed it can wait far longer than the others
    /// (4 writers: longest commit 168 ms without the gate, 6 ms with it). Writers in other
    /// processes are covered by the lock polling up to the busy timeout either way. See
    /// PERFORMANCE.md for the measurement.
    pub fn write_gate(mut self, enabled: bool) -> Self {
        self.write_gate = enabled;
        self
    }

    /// Whether checkouts and statements are counted and timed for
    /// [`Database::connection_stats`](crate::Database::connection_stats) and `/metrics`;
    /// default true. Off, the pools get no event handler and connections no diesel
    /// instrumentation: the counters stay zero and no slow query is logged
    /// (`DB_SLOW_QUERY_MS` has no effect). Exists to measure what instrumentation costs
    /// (`examples/instrumentation_overhead.rs`); there is no environment variable for it.
    pub fn instrumentation(mut self, enabled: bool) -> Self {
        self.instrumentation = enabled;
        self
    }

    /// `DB_HEALTH_READ_LATENCY_MS`: read round trip at which health is degraded / unhealthy;
    /// default 100 ms / 1 s.
    pub fn health_read_latency(mut self, limits: Limits<Duration>) -> Self {
        self.health_read_latency = Some(limits);
        self
    }

    /// `DB_HEALTH_WRITE_LATENCY_MS`: write round trip at which health is degraded / unhealthy;
    /// default 500 ms / 5 s.
    pub fn health_write_latency(mut self, limits: Limits<Duration>) -> Self {
        self.health_write_latency = Some(limits);
        self
    }

    /// `DB_HEALTH_POOL_UTILIZATION`: busiest pool's utilization in percent (0 to 100) at which
    /// health is degraded / unhealthy; default 90 / off.
    pub fn health_pool_utilization(mut self, limits: Limits<f64>) -> Self {
        self.health_pool_utilization = Some(limits);
        self
    }

    /// `DB_HEALTH_WAL_SIZE_BYTES`: WAL file size at which health is degraded / unhealthy;
    /// default `DB_WAL_SIZE_LIMIT` / 4 x `DB_WAL_SIZE_LIMIT`.
    pub fn health_wal_size(mut self, limits: Limits<u64>) -> Self {
        self.health_wal_size = Some(limits);
        self
    }

    /// `DB_HEALTH_CHECKPOINT_AGE_SECS`: time since the last successful checkpoint at which
    /// health is degraded / unhealthy, checked while the background checkpointer runs;
    /// default 4 x `DB_CHECKPOINT_INTERVAL_SECS` / off.
    pub fn health_checkpoint_age(mut self, limits: Limits<Duration>) -> Self {
        self.health_checkpoint_age = Some(limits);
        self
    }

    /// All health thresholds at once (see the setters above for each).
    pub fn health_thresholds(self, thresholds: HealthThresholds) -> Self {
        self.health_read_latency(thresholds.read_latency)
            .health_write_latency(thresholds.write_latency)
            .health_pool_utilization(thresholds.pool_utilization)
            .health_wal_size(thresholds.wal_size)
            .health_checkpoint_age(thresholds.checkpoint_age)
    }

    /// The health thresholds: the ones set, the defaults for the rest, validated.
    pub(super) fn resolve_health(&self) -> Result<HealthThresholds> {
        let defaults = HealthThresholds::defaults(self.wal_size_limit, self.checkpoint_interval);
        let ordered = |var: &'static str, d: Option<f64>, u: Option<f64>, max: f64, unit: &str| {
            let show = |v: Option<f64>| v.map_or_else(|| "off".to_owned(), |v| v.to_string());
            let ok = |v: Option<f64>| v.is_none_or(|v| (0.0..=max).contains(&v));
            if ok(d) && ok(u) && !matches!((d, u), (Some(d), Some(u)) if d > u) {
                Ok(())
            } else {
                Err(Error::config(
                    var,
                    format!("{},{}", show(d), show(u)),
                    format!(
                        "accepted: thresholds from 0 to {max} {unit}, the degraded one not above \
                         the unhealthy one"
                    ),
                ))
            }
        };
        let secs = |l: &Limits<Duration>| {
            (
                l.degraded_at.map(|d| d.as_secs_f64()),
                l.unhealthy_at.map(|d| d.as_secs_f64()),
            )
        };
        let t = HealthThresholds {
            read_latency: self.health_read_latency.unwrap_or(defaults.read_latency),
            write_latency: self.health_write_latency.unwrap_or(defaults.write_latency),
            pool_utilization: self
                .health_pool_utilization
                .unwrap_or(defaults.pool_utilization),
            wal_size: self.health_wal_size.unwrap_or(defaults.wal_size),
            checkpoint_age: self
                .health_checkpoint_age
                .unwrap_or(defaults.checkpoint_age),
        };
        let (d, u) = secs(&t.checkpoint_age);
        ordered("DB_HEALTH_CHECKPOINT_AGE_SECS", d, u, 604_800.0, "seconds")?;
        let millis = |l: &Limits<Duration>| {
            (
                l.degraded_at.map(|d| d.as_secs_f64() * 1e3),
                l.unhealthy_at.map(|d| d.as_secs_f64() * 1e3),
            )
        };
        let (d, u) = millis(&t.read_latency);
        ordered(
            "DB_HEALTH_READ_LATENCY_MS",
            d,
            u,
            3_600_000.0,
            "milliseconds",
        )?;
        let (d, u) = millis(&t.write_latency);
        ordered(
            "DB_HEALTH_WRITE_LATENCY_MS",
            d,
            u,
            3_600_000.0,
            "milliseconds",
        )?;
        let p = &t.pool_utilization;
        ordered(
            "DB_HEALTH_POOL_UTILIZATION",
            p.degraded_at,
            p.unhealthy_at,
            100.0,
            "percent",
        )?;
        #[allow(clippy::cast_precision_loss)]
        let (d, u) = (
            t.wal_size.degraded_at.map(|b| b as f64),
            t.wal_size.unhealthy_at.map(|b| b as f64),
        );
        ordered(
            "DB_HEALTH_WAL_SIZE_BYTES",
            d,
            u,
            // 4 x the largest DB_WAL_SIZE_LIMIT, the largest default.
            (1u64 << 42) as f64,
            "bytes",
        )?;
        Ok(t)
    }

    /// The read and write pool sizes the settings ask for (both engines use them).
    pub(super) fn pool_sizes(&self) -> Result<(u32, u32)> {
        let check_size = |var: &'static str, n: u64| -> Result<u32> {
            if (1..=MAX_POOL_SIZE).contains(&n) {
                Ok(n as u32)
            } else {
                Err(Error::config(
                    var,
                    n.to_string(),
                    format!("accepted: a whole number of connections from 1 to {MAX_POOL_SIZE}"),
                ))
            }
        };
        let base = check_size("DB_POOL_SIZE", self.pool_size)?;
        let (read, write) = if self.separate_read_write {
            (
                match self.read_pool_size {
                    Some(n) => check_size("DB_READ_POOL_SIZE", n)?,
                    None => base.saturating_mul(2).min(MAX_POOL_SIZE as u32),
                },
                match self.write_pool_size {
                    Some(n) => check_size("DB_WRITE_POOL_SIZE", n)?,
                    None => (base / 2).max(1),
                },
            )
        } else {
            for (var, value) in [
                ("DB_READ_POOL_SIZE", self.read_pool_size),
                ("DB_WRITE_POOL_SIZE", self.write_pool_size),
            ] {
                if let Some(n) = value {
                    return Err(Error::config(
                        var,
                        n.to_string(),
                        "only applies with DB_SEPARATE_READ_WRITE=true; with one shared pool set DB_POOL_SIZE",
                    ));
                }
            }
            (base, base)
        };
        Ok((read, write))
    }

    /// Refuses the SQLite settings that trade safety away, unless acknowledged
    /// (`unsafe_settings.rs`). An in-memory database has no file to lose or lock.
    fn check_unsafe_sqlite(&self, location: &crate::url::DatabaseLocation) -> Result<()> {
        use super::unsafe_settings::{UnsafeSetting, check, uri_disables_locking};
        let crate::url::DatabaseLocation::File { params, .. } = location else {
            return Ok(());
        };
        let mut found = Vec::new();
        if uri_disables_locking(params.as_deref()) {
            found.push(UnsafeSetting {
                var: "DATABASE_URL",
                value: redact_password(&self.database_url),
                cost: "nolock=1 turns SQLite's file locking off, so two writers corrupt the file",
            });
        }
        if self.synchronous == Synchronous::Off {
            found.push(UnsafeSetting {
                var: "DB_SYNCHRONOUS",
                value: "off".to_owned(),
                cost: "a power loss or OS crash can lose commits or corrupt the file",
            });
        }
        if self.busy_timeout.is_zero() {
            found.push(UnsafeSetting {
                var: "DB_BUSY_TIMEOUT_MS",
                value: "0".to_owned(),
                cost: "a write that meets another process's lock fails at once with Error::Busy",
            });
        }
        check(found, self.allow_unsafe_settings)
    }

    /// Each of the SQLite limits within its range of [`SqliteLimits::RANGES`].
    fn check_sqlite_limits(&self) -> Result<()> {
        for setting in self.sqlite_limits.settings() {
            let (min, max) = SqliteLimits::range(setting.var).unwrap_or((0, u32::MAX));
            if !(min..=max).contains(&setting.value) {
                return Err(Error::config(
                    setting.var,
                    setting.value.to_string(),
                    format!("accepted: a whole number from {min} to {max}"),
                ));
            }
        }
        Ok(())
    }

    /// Validates every value and derives the pool sizes.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first bad setting, or [`Error::UnsupportedUrl`].
    pub fn build(self) -> Result<Config> {
        let location = parse_database_url(&self.database_url)?;
        let (mut read, mut write) = self.pool_sizes()?;
        let mut separate = self.separate_read_write;
        if location.is_memory() {
            // An in-memory database lives in one connection: both roles share it, so
            // readers see every write.
            (read, write, separate) = (1, 1, false);
        }
        if self.pool_timeout.is_zero() || self.pool_timeout > Duration::from_secs(3600) {
            return Err(Error::config(
                "DB_POOL_TIMEOUT",
                format!("{:?}", self.pool_timeout),
                "accepted: 1 to 3600 seconds",
            ));
        }
        if self.busy_timeout > Duration::from_secs(3600) {
            return Err(Error::config(
                "DB_BUSY_TIMEOUT_MS",
                self.busy_timeout.as_millis().to_string(),
                "accepted: 0 to 3600000 milliseconds",
            ));
        }
        let kib = |var: &'static str, n: u64| -> Result<u32> {
            if n <= 16 << 20 {
                Ok(n as u32)
            } else {
                Err(Error::config(
                    var,
                    n.to_string(),
                    "accepted: 0 to 16777216 KiB",
                ))
            }
        };
        let mmap = |var: &'static str, n: u64| -> Result<u64> {
            if n <= MAX_MMAP_SIZE {
                Ok(n)
            } else {
                Err(Error::config(
                    var,
                    n.to_string(),
                    format!("accepted: 0 to {MAX_MMAP_SIZE} bytes (SQLite's mmap ceiling)"),
                ))
            }
        };
        let cache = kib("DB_CACHE_SIZE_KIB", self.cache_size_kib)?;
        let map = mmap("DB_MMAP_SIZE", self.mmap_size)?;
        if self.wal_size_limit == 0 || self.wal_size_limit > 1 << 40 {
            return Err(Error::config(
                "DB_WAL_SIZE_LIMIT",
                self.wal_size_limit.to_string(),
                "accepted: a whole number of bytes from 1 to 1099511627776",
            ));
        }
        if self.checkpoint_interval > Duration::from_secs(86_400) {
            return Err(Error::config(
                "DB_CHECKPOINT_INTERVAL_SECS",
                self.checkpoint_interval.as_secs().to_string(),
                "accepted: 0 (off) to 86400 seconds",
            ));
        }
        let health_thresholds = self.resolve_health()?;
        self.check_unsafe_sqlite(&location)?;
        self.check_sqlite_limits()?;
        if self.load_extensions && self.on_connect.is_none() {
            return Err(Error::config(
                "ConfigBuilder::load_extensions",
                "true",
                "only applies with a connection hook (ConfigBuilder::on_connect) that loads the \
                 extensions; extension loading is on only while the hook runs",
            ));
        }
        Ok(Config {
            location,
            database_url: self.database_url,
            separate_read_write: separate,
            read_pool_size: if separate { read } else { write },
            write_pool_size: write,
            enable_wal: self.enable_wal,
            pool_timeout: self.pool_timeout,
            busy_timeout: self.busy_timeout,
            read_cache_size_kib: match self.read_cache_size_kib {
                Some(n) => kib("DB_READ_CACHE_SIZE_KIB", n)?,
                None => cache,
            },
            write_cache_size_kib: match self.write_cache_size_kib {
                Some(n) => kib("DB_WRITE_CACHE_SIZE_KIB", n)?,
                None => cache,
            },
            read_mmap_size: match self.read_mmap_size {
                Some(n) => mmap("DB_READ_MMAP_SIZE", n)?,
                None => map,
            },
            write_mmap_size: match self.write_mmap_size {
                Some(n) => mmap("DB_WRITE_MMAP_SIZE", n)?,
                None => map,
            },
            temp_store: self.temp_store,
            synchronous: self.synchronous,
            wal_autocheckpoint: u32::try_from(self.wal_autocheckpoint).map_err(|_| {
                Error::config(
                    "DB_WAL_AUTOCHECKPOINT",
                    self.wal_autocheckpoint.to_string(),
                    "accepted: 0 to 1000000000 pages",
                )
            })?,
            wal_checkpoint_mode: self.wal_checkpoint_mode,
            checkpoint_interval: self.checkpoint_interval,
            wal_size_limit: self.wal_size_limit,
            slow_query: (!self.slow_query.is_zero()).then_some(self.slow_query),
            metrics_addr: self.metrics_addr,
            metrics_token: check_metrics_token(self.metrics_token)?,
            run_migrations: self.run_migrations,
            migrations: self.migrations,
            write_gate: self.write_gate,
            instrumentation: self.instrumentation,
            foreign_keys: self.foreign_keys,
            stable_query_plans: self.stable_query_plans,
            sqlite_limits: self.sqlite_limits,
            load_extensions: self.load_extensions,
            on_connect: self.on_connect,
            health_thresholds,
        })
    }
}

/// A metrics token is a secret worth the name: long enough not to be guessed, and what an
/// HTTP header can carry.
///
/// # Errors
///
/// [`Error::Config`] naming `DB_METRICS_TOKEN` (never showing the value) otherwise.
fn check_metrics_token(
    token: Option<super::settings::MetricsToken>,
) -> Result<Option<super::settings::MetricsToken>> {
    if let Some(t) = &token {
        let printable = t.0.bytes().all(|b| b.is_ascii_graphic());
        if !(16..=4096).contains(&t.0.len()) || !printable {
            return Err(Error::config(
                "DB_METRICS_TOKEN",
                "<redacted>",
                "accepted: 16 to 4096 printable ASCII characters without spaces",
            ));
        }
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    fn vars<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn defaults_match_the_configuration_table() {
        let c = Config::from_vars(Vec::<(OsString, OsString)>::new()).unwrap();
        assert_eq!(c.database_url(), "sqlite://data/main.db");
        assert_eq!((c.read_pool_size(), c.write_pool_size()), (20, 5));
        assert!(c.separate_read_write() && c.enable_wal() && c.run_migrations());
        assert_eq!(c.pool_timeout(), Duration::from_secs(30));
        assert_eq!(c.busy_timeout(), Duration::from_millis(5000));
        let w = c.pragmas(Role::Write);
        assert_eq!(w.cache_size_kib, 2000);
        assert_eq!(w.mmap_size, 268_435_456);
        assert_eq!(w.temp_store, TempStore::Memory);
        assert_eq!(w.synchronous, Synchronous::Full);
        assert_eq!(w.wal_autocheckpoint, 1000);
        assert!(!w.query_only && c.pragmas(Role::Read).query_only);
        assert_eq!(c.wal_checkpoint_mode(), CheckpointMode::Passive);
        assert_eq!(c.checkpoint_interval(), Duration::from_secs(30));
        assert_eq!(c.wal_size_limit(), 64 << 20);
        assert_eq!(c.slow_query(), Some(Duration::from_millis(100)));
        assert_eq!(c.metrics_addr(), None);
    }

    #[test]
    fn pool_sizes_follow_the_seed_formula() {
        for (base, read, write) in [(1, 2, 1), (5, 10, 2), (10, 20, 5), (50, 100, 25)] {
            let c = Config::from_vars(vars(&[("DB_POOL_SIZE", &base.to_string())])).unwrap();
            assert_eq!(
                (c.read_pool_size(), c.write_pool_size()),
                (read, write),
                "base {base}"
            );
        }
        let c = Config::from_vars(vars(&[
            ("DB_POOL_SIZE", "6"),
            ("DB_SEPARATE_READ_WRITE", "false"),
        ]))
        .unwrap();
        assert_eq!((c.read_pool_size(), c.write_pool_size()), (6, 6));
        assert!(!c.pragmas(Role::Read).query_only);
        let c = Config::from_vars(vars(&[
            ("DB_READ_POOL_SIZE", "3"),
            ("DB_WRITE_POOL_SIZE", "2"),
        ]))
        .unwrap();
        assert_eq!((c.read_pool_size(), c.write_pool_size()), (3, 2));
    }

    #[test]
    fn builder_values_are_validated() {
        assert!(matches!(
            Config::builder().pool_size(0).build(),
            Err(Error::Config {
                var: "DB_POOL_SIZE",
                ..
            })
        ));
        assert!(matches!(
            Config::builder().read_pool_size(0).build(),
            Err(Error::Config {
                var: "DB_READ_POOL_SIZE",
                ..
            })
        ));
        assert!(matches!(
            Config::builder().mmap_size(u64::MAX).build(),
            Err(Error::Config {
                var: "DB_MMAP_SIZE",
                ..
            })
        ));
        assert!(matches!(
            Config::builder().pool_timeout(Duration::ZERO).build(),
            Err(Error::Config {
                var: "DB_POOL_TIMEOUT",
                ..
            })
        ));
    }
}
