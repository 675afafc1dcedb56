//! Configuration: [`Config::from_env`] reads the `DB_*` variables, [`ConfigBuilder`] is the
//! same thing for code. Every value is validated in [`ConfigBuilder::build`]; a bad one is an
//! [`Error::Config`] naming the variable, the value and what is accepted, and nothing is opened.

use std::ffi::OsStr;
#[cfg(test)]
use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use diesel_migrations::EmbeddedMigrations;

use crate::error::{Error, Result};
use crate::health::{HealthThresholds, Limits};
use crate::pragmas::{CheckpointMode, Pragmas, Role, Synchronous, TempStore};
use crate::url::{DatabaseLocation, parse_database_url};

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

/// Every environment variable litedal reads, with its default and meaning (shown by the CLI).
pub const ENV_VARS: &[(&str, &str, &str)] = &[
    (
        "DATABASE_URL",
        "sqlite://data/main.db",
        "database file: sqlite://rel, sqlite:///abs, sqlite:path, a plain path, a file: URI or :memory:",
    ),
    ("DB_POOL_SIZE", "10", "base pool size (1..=1024)"),
    (
        "DB_SEPARATE_READ_WRITE",
        "true",
        "two pools: read = 2 x base, write = max(1, base / 2); false: one pool serves both",
    ),
    (
        "DB_READ_POOL_SIZE",
        "derived",
        "explicit read pool size (1..=1024)",
    ),
    (
        "DB_WRITE_POOL_SIZE",
        "derived",
        "explicit write pool size (1..=1024)",
    ),
    (
        "DB_ENABLE_WAL",
        "true",
        "journal_mode=WAL, set once at open and verified",
    ),
    (
        "DB_POOL_TIMEOUT",
        "30",
        "seconds a checkout may wait for a free connection (1..=3600)",
    ),
    (
        "DB_BUSY_TIMEOUT_MS",
        "5000",
        "PRAGMA busy_timeout in ms (0..=3600000)",
    ),
    (
        "DB_CACHE_SIZE_KIB",
        "2000",
        "page cache per connection in KiB (0..=16777216)",
    ),
    (
        "DB_READ_CACHE_SIZE_KIB",
        "DB_CACHE_SIZE_KIB",
        "page cache of read connections",
    ),
    (
        "DB_WRITE_CACHE_SIZE_KIB",
        "DB_CACHE_SIZE_KIB",
        "page cache of write connections",
    ),
    (
        "DB_MMAP_SIZE",
        "268435456",
        "PRAGMA mmap_size in bytes (0..=2147418112)",
    ),
    (
        "DB_READ_MMAP_SIZE",
        "DB_MMAP_SIZE",
        "mmap_size of read connections",
    ),
    (
        "DB_WRITE_MMAP_SIZE",
        "DB_MMAP_SIZE",
        "mmap_size of write connections",
    ),
    (
        "DB_TEMP_STORE",
        "memory",
        "PRAGMA temp_store: default, file or memory",
    ),
    (
        "DB_SYNCHRONOUS",
        "full",
        "PRAGMA synchronous: off, normal, full or extra",
    ),
    (
        "DB_WAL_AUTOCHECKPOINT",
        "1000",
        "pages; 0 = no checkpoint on commit (with DB_CHECKPOINT_INTERVAL_SECS=0 as well, checkpoints are left to an external tool such as Litestream)",
    ),
    (
        "DB_WAL_CHECKPOINT_MODE",
        "passive",
        "mode of the background checkpointer: passive, full, restart or truncate",
    ),
    (
        "DB_CHECKPOINT_INTERVAL_SECS",
        "30",
        "background checkpointer period in seconds; 0 = off",
    ),
    (
        "DB_WAL_SIZE_LIMIT",
        "67108864",
        "WAL bytes above which the checkpointer escalates to TRUNCATE",
    ),
    (
        "DB_SLOW_QUERY_MS",
        "100",
        "queries slower than this are logged at WARN; 0 = off",
    ),
    (
        "DB_METRICS_ADDR",
        "unset (off)",
        "address of the /metrics and /health endpoint, e.g. 127.0.0.1:8081",
    ),
    (
        "DB_RUN_MIGRATIONS",
        "true",
        "run the embedded migrations at open",
    ),
    (
        "DB_HEALTH_READ_LATENCY_MS",
        "100,1000",
        "health: read round trip (ms) at which the database is degraded[,unhealthy]; off = no such level",
    ),
    (
        "DB_HEALTH_WRITE_LATENCY_MS",
        "500,5000",
        "health: write round trip (ms) at which the database is degraded[,unhealthy]; off = no such level",
    ),
    (
        "DB_HEALTH_POOL_UTILIZATION",
        "90,off",
        "health: busiest pool's utilization (percent, 0..=100) at which it is degraded[,unhealthy]",
    ),
    (
        "DB_HEALTH_WAL_SIZE_BYTES",
        "DB_WAL_SIZE_LIMIT,4 x DB_WAL_SIZE_LIMIT",
        "health: WAL file size (bytes) at which the database is degraded[,unhealthy]",
    ),
    (
        "DB_HEALTH_CHECKPOINT_AGE_SECS",
        "4 x DB_CHECKPOINT_INTERVAL_SECS,off",
        "health: seconds since the last successful checkpoint at which the database is degraded[,unhealthy] (while the checkpointer runs)",
    ),
];

const MAX_POOL_SIZE: u64 = 1024;
/// SQLite's compile-time ceiling for mmap_size (SQLITE_MAX_MMAP_SIZE); larger values would be
/// silently lowered by SQLite, so they are refused instead.
const MAX_MMAP_SIZE: u64 = 0x7fff_0000;

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

/// Parses one environment value; the error names the variable and says what is accepted.
struct Value<'a> {
    var: &'static str,
    raw: &'a OsStr,
}

impl Value<'_> {
    fn text(&self) -> Result<&str> {
        let text = self.raw.to_str().ok_or_else(|| {
            Error::config(self.var, self.raw.to_string_lossy(), "is not valid UTF-8")
        })?;
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(Error::config(
                self.var,
                text,
                "is empty; unset the variable to use its default",
            ));
        }
        Ok(trimmed)
    }

    fn number(&self, min: u64, max: u64, unit: &str) -> Result<u64> {
        let text = self.text()?;
        let reason = || format!("accepted: a whole number of {unit} from {min} to {max}");
        let n: u64 = text
            .parse()
            .map_err(|_| Error::config(self.var, text, reason()))?;
        if n < min || n > max {
            return Err(Error::config(self.var, text, reason()));
        }
        Ok(n)
    }

    fn boolean(&self) -> Result<bool> {
        let text = self.text()?;
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(Error::config(
                self.var,
                text,
                "accepted: true/false, 1/0, yes/no, on/off (any case)",
            )),
        }
    }

    /// `DEGRADED[,UNHEALTHY]`, each a whole number from `min` to `max` or `off`; one number
    /// leaves the unhealthy level off.
    fn limits(&self, min: u64, max: u64, unit: &str) -> Result<Limits<u64>> {
        let text = self.text()?;
        let reason = || {
            format!(
                "accepted: DEGRADED[,UNHEALTHY], each a whole number of {unit} from {min} to {max} \
                 or `off`, the first not above the second, e.g. `{min},{max}`"
            )
        };
        let parse = |part: &str| -> Result<Option<u64>> {
            let part = part.trim();
            if part.eq_ignore_ascii_case("off") {
                return Ok(None);
            }
            match part.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(Error::config(self.var, text, reason())),
            }
        };
        let mut parts = text.split(',');
        let degraded_at = parse(parts.next().unwrap_or_default())?;
        let unhealthy_at = match parts.next() {
            Some(part) => parse(part)?,
            None => None,
        };
        if parts.next().is_some() {
            return Err(Error::config(self.var, text, reason()));
        }
        if let (Some(d), Some(u)) = (degraded_at, unhealthy_at) {
            if d > u {
                return Err(Error::config(self.var, text, reason()));
            }
        }
        Ok(Limits {
            degraded_at,
            unhealthy_at,
        })
    }

    fn keyword<T>(&self, parse: fn(&str) -> Option<T>, accepted: &[&str]) -> Result<T> {
        let text = self.text()?;
        parse(text).ok_or_else(|| {
            Error::config(
                self.var,
                text,
                format!("accepted (any case): {}", accepted.join(", ")),
            )
        })
    }
}

impl ConfigBuilder {
    /// A builder holding the defaults overridden by the process environment, for code that
    /// reads the environment and then changes a setting (as the `litedal` CLI does).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for the first bad value (URLs are checked in [`build`](Self::build)).
    pub fn from_env() -> Result<ConfigBuilder> {
        ConfigBuilder::from_vars(std::env::vars_os())
    }

    /// Like [`ConfigBuilder::from_env`], from the given name/value pairs.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for the first bad value.
    pub fn from_vars<I, K, V>(vars: I) -> Result<ConfigBuilder>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut builder = ConfigBuilder::default();
        for (name, value) in vars {
            let Some(name) = name.as_ref().to_str() else {
                continue;
            };
            let known = ENV_VARS.iter().find(|(var, _, _)| *var == name);
            match known {
                Some((var, _, _)) => builder.set_var(var, value.as_ref())?,
                None if name.starts_with("DB_") => {
                    tracing::warn!(variable = name, "Database config: unknown variable ignored");
                }
                None => {}
            }
        }
        Ok(builder)
    }

    /// Applies one environment variable by name.
    fn set_var(&mut self, var: &'static str, raw: &OsStr) -> Result<()> {
        let v = Value { var, raw };
        match var {
            // Trimmed like every other value: "sqlite://x.db " must not open "x.db ".
            "DATABASE_URL" => self.database_url = v.text()?.to_owned(),
            "DB_POOL_SIZE" => self.pool_size = v.number(1, MAX_POOL_SIZE, "connections")?,
            "DB_SEPARATE_READ_WRITE" => self.separate_read_write = v.boolean()?,
            "DB_READ_POOL_SIZE" => {
                self.read_pool_size = Some(v.number(1, MAX_POOL_SIZE, "connections")?)
            }
            "DB_WRITE_POOL_SIZE" => {
                self.write_pool_size = Some(v.number(1, MAX_POOL_SIZE, "connections")?)
            }
            "DB_ENABLE_WAL" => self.enable_wal = v.boolean()?,
            "DB_POOL_TIMEOUT" => {
                self.pool_timeout = Duration::from_secs(v.number(1, 3600, "seconds")?)
            }
            "DB_BUSY_TIMEOUT_MS" => {
                self.busy_timeout = Duration::from_millis(v.number(0, 3_600_000, "milliseconds")?)
            }
            "DB_CACHE_SIZE_KIB" => self.cache_size_kib = v.number(0, 16 << 20, "KiB")?,
            "DB_READ_CACHE_SIZE_KIB" => {
                self.read_cache_size_kib = Some(v.number(0, 16 << 20, "KiB")?)
            }
            "DB_WRITE_CACHE_SIZE_KIB" => {
                self.write_cache_size_kib = Some(v.number(0, 16 << 20, "KiB")?)
            }
            "DB_MMAP_SIZE" => self.mmap_size = v.number(0, MAX_MMAP_SIZE, "bytes")?,
            "DB_READ_MMAP_SIZE" => {
                self.read_mmap_size = Some(v.number(0, MAX_MMAP_SIZE, "bytes")?)
            }
            "DB_WRITE_MMAP_SIZE" => {
                self.write_mmap_size = Some(v.number(0, MAX_MMAP_SIZE, "bytes")?)
            }
            "DB_TEMP_STORE" => {
                self.temp_store = v.keyword(TempStore::parse, TempStore::KEYWORDS)?
            }
            "DB_SYNCHRONOUS" => {
                self.synchronous = v.keyword(Synchronous::parse, Synchronous::KEYWORDS)?
            }
            "DB_WAL_AUTOCHECKPOINT" => {
                self.wal_autocheckpoint = v.number(0, 1_000_000_000, "pages")?
            }
            "DB_WAL_CHECKPOINT_MODE" => {
                self.wal_checkpoint_mode =
                    v.keyword(CheckpointMode::parse, CheckpointMode::KEYWORDS)?
            }
            "DB_CHECKPOINT_INTERVAL_SECS" => {
                self.checkpoint_interval = Duration::from_secs(v.number(0, 86_400, "seconds")?)
            }
            "DB_WAL_SIZE_LIMIT" => self.wal_size_limit = v.number(1, 1 << 40, "bytes")?,
            "DB_SLOW_QUERY_MS" => {
                self.slow_query = Duration::from_millis(v.number(0, 3_600_000, "milliseconds")?)
            }
            "DB_METRICS_ADDR" => {
                let text = v.text()?;
                self.metrics_addr = Some(text.parse().map_err(|_| {
                    Error::config(
                        var,
                        text,
                        "accepted: an IP address and port, e.g. 127.0.0.1:8081 or [::1]:8081",
                    )
                })?)
            }
            "DB_RUN_MIGRATIONS" => self.run_migrations = v.boolean()?,
            "DB_HEALTH_READ_LATENCY_MS" => {
                self.health_read_latency = Some(
                    v.limits(0, 3_600_000, "milliseconds")?
                        .map(|&ms| Duration::from_millis(ms)),
                )
            }
            "DB_HEALTH_WRITE_LATENCY_MS" => {
                self.health_write_latency = Some(
                    v.limits(0, 3_600_000, "milliseconds")?
                        .map(|&ms| Duration::from_millis(ms)),
                )
            }
            "DB_HEALTH_POOL_UTILIZATION" => {
                #[allow(clippy::cast_precision_loss)]
                let limits = v.limits(0, 100, "percent")?.map(|&p| p as f64);
                self.health_pool_utilization = Some(limits)
            }
            "DB_HEALTH_WAL_SIZE_BYTES" => {
                self.health_wal_size = Some(v.limits(1, 1 << 42, "bytes")?)
            }
            "DB_HEALTH_CHECKPOINT_AGE_SECS" => {
                let limits = v.limits(1, 604_800, "seconds")?;
                self.health_checkpoint_age = Some(limits.map(|&s| Duration::from_secs(s)));
            }
            _ => {}
        }
        Ok(())
    }

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

    /// `DB_METRICS_ADDR`; default off.
    pub fn metrics_addr(mut self, addr: Option<SocketAddr>) -> Self {
        self.metrics_addr = addr;
        self
    }

    /// `DB_RUN_MIGRATIONS`; default true.
    pub fn run_migrations(mut self, run: bool) -> Self {
        self.run_migrations = run;
        self
    }

    /// The migrations to run at open; default litedal's own [`MIGRATIONS`]. Applications pass
    /// their own `embed_migrations!` here.
    pub fn migrations(mut self, migrations: &'static EmbeddedMigrations) -> Self {
        self.migrations = Migrations(migrations);
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
    fn resolve_health(&self) -> Result<HealthThresholds> {
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

    /// Validates every value and derives the pool sizes.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first bad setting, or [`Error::UnsupportedUrl`].
    pub fn build(self) -> Result<Config> {
        let location = parse_database_url(&self.database_url)?;
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
        let (mut read, mut write) = if self.separate_read_write {
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
            run_migrations: self.run_migrations,
            migrations: self.migrations,
            write_gate: self.write_gate,
            instrumentation: self.instrumentation,
            health_thresholds,
        })
    }
}

#[cfg(test)]
mod tests {
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
