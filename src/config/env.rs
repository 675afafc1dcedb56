//! The environment variables: [`ENV_VARS`] and reading them into a [`ConfigBuilder`].

use std::ffi::OsStr;
use std::time::Duration;

use super::builder::{ConfigBuilder, MAX_MMAP_SIZE, MAX_POOL_SIZE};
use super::secret_file::{file_form_of, read_secret_file};
use super::settings::Config;
use super::thresholds::Limits;
use crate::error::{Error, Result};
use crate::pragmas::{CheckpointMode, SqliteLimits, Synchronous, TempStore};

/// Every environment variable litedal reads, with its default and meaning (shown by the CLI).
pub const ENV_VARS: &[(&str, &str, &str)] = &[
    (
        "DATABASE_URL",
        "sqlite://data/main.db",
        "sqlite://rel, sqlite:///abs, sqlite:path, a plain path, a file: URI or :memory:; with the postgres feature also postgres:// or postgresql:// (any libpq parameters)",
    ),
    (
        "DATABASE_URL_FILE",
        "unset",
        "a file holding DATABASE_URL (a container or Kubernetes secret), read once, trimmed, never logged; warned about when group or others can read it; setting both is an error",
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
        "PRAGMA busy_timeout in ms (0..=3600000); 0 needs DB_ALLOW_UNSAFE_SETTINGS",
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
        "PRAGMA synchronous: normal, full or extra; off needs DB_ALLOW_UNSAFE_SETTINGS",
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
        "DB_LOG_FORMAT",
        "text",
        "log format of litedal's CLI and examples on stderr: text or json (lines for log shippers); applications set up their own subscriber",
    ),
    (
        "DB_METRICS_ADDR",
        "unset (off)",
        "address of the /metrics and /health endpoint, e.g. 127.0.0.1:8081",
    ),
    (
        "DB_METRICS_TOKEN",
        "unset (no token)",
        "bearer token the metrics endpoint requires (Authorization: Bearer TOKEN, else 401); 16 to 4096 printable ASCII characters",
    ),
    (
        "DB_METRICS_TOKEN_FILE",
        "unset",
        "file holding DB_METRICS_TOKEN (read once, trimmed); set one of the two",
    ),
    (
        "DB_FOREIGN_KEYS",
        "true",
        "PRAGMA foreign_keys on every connection",
    ),
    (
        "DB_STABLE_QUERY_PLANS",
        "true",
        "SQLite's query planner stability guarantee on every connection: statements with a bound LIMIT or LIKE pattern are prepared once, not at every run",
    ),
    (
        "DB_ALLOW_UNSAFE_SETTINGS",
        "false",
        "accept settings that can lose or corrupt data or hang writers (nolock=1 in the URI, DB_SYNCHRONOUS=off, DB_BUSY_TIMEOUT_MS=0, DB_LOCK_TIMEOUT_MS=0), each logged at WARN; refused with an error otherwise",
    ),
    (
        "DB_SQLITE_MAX_LENGTH",
        "100000000",
        "SQLite: most bytes in one string, blob or row (1000000..=1000000000)",
    ),
    (
        "DB_SQLITE_MAX_SQL_LENGTH",
        "1000000",
        "SQLite: most bytes in one SQL statement (1000000..=1000000000)",
    ),
    (
        "DB_SQLITE_MAX_COLUMNS",
        "1000",
        "SQLite: most columns in a table, index, result row, ORDER BY or GROUP BY (16..=2000)",
    ),
    (
        "DB_SQLITE_MAX_EXPR_DEPTH",
        "200",
        "SQLite: deepest nesting of one expression (16..=1000)",
    ),
    (
        "DB_SQLITE_MAX_VARIABLES",
        "32766",
        "SQLite: highest bind parameter number; never below the bulk insert's 32766 (32766..=250000)",
    ),
    (
        "DB_RUN_MIGRATIONS",
        "true",
        "run the application's embedded migrations at open (when it gave some)",
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
    #[cfg(feature = "postgres")]
    (
        "DATABASE_READ_URL",
        "unset",
        "PostgreSQL only: the read pool's server (a hot standby); writes and migrations stay on DATABASE_URL",
    ),
    #[cfg(feature = "postgres")]
    (
        "DATABASE_READ_URL_FILE",
        "unset",
        "PostgreSQL only: a file holding DATABASE_READ_URL, as DATABASE_URL_FILE",
    ),
    #[cfg(feature = "postgres")]
    (
        "DB_PG_TLS",
        "require",
        "PostgreSQL only: the sslmode litedal adds to a URL whose host is not loopback or a Unix socket and that sets none (nor PGSSLMODE): require or verify-full",
    ),
    #[cfg(feature = "postgres")]
    (
        "DB_STATEMENT_TIMEOUT_MS",
        "0",
        "PostgreSQL only: statement_timeout in ms, 0 for none (0..=86400000)",
    ),
    #[cfg(feature = "postgres")]
    (
        "DB_LOCK_TIMEOUT_MS",
        "5000",
        "PostgreSQL only: lock_timeout in ms (0..=86400000); 0 waits for ever and needs DB_ALLOW_UNSAFE_SETTINGS",
    ),
    #[cfg(feature = "postgres")]
    (
        "DB_MAX_REPLICA_LAG_MS",
        "10000",
        "PostgreSQL only: replay lag past which reads leave the standby for the primary (1..=86400000)",
    ),
    #[cfg(feature = "postgres")]
    (
        "DB_REPLICA_RETRY_SECS",
        "5",
        "PostgreSQL only: seconds reads stay on the primary before a lagging or down standby is tried again (1..=3600)",
    ),
    #[cfg(feature = "postgres")]
    (
        "DB_APPLICATION_NAME",
        "litedal",
        "PostgreSQL only: application_name shown in pg_stat_activity (printable ASCII, 63 at most)",
    ),
];

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

impl Config {
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
            if let Some((var, target)) =
                known.and_then(|(var, _, _)| Some((*var, file_form_of(var)?)))
            {
                let path = std::path::PathBuf::from(value.as_ref());
                let url = read_secret_file(var, &path)?;
                builder.vars_set.push(var);
                match target {
                    #[cfg(feature = "postgres")]
                    "DATABASE_READ_URL" => builder.postgres.read_url = Some(url),
                    _ => builder.database_url = url,
                }
                continue;
            }
            match known {
                Some((var, _, _)) => builder.set_var(var, value.as_ref())?,
                None if name.starts_with("DB_") => {
                    tracing::warn!(variable = name, "Database config: unknown variable ignored");
                }
                None => {}
            }
        }
        for (var, file) in [
            ("DATABASE_URL", "DATABASE_URL_FILE"),
            ("DATABASE_READ_URL", "DATABASE_READ_URL_FILE"),
        ] {
            if builder.vars_set.contains(&var) && builder.vars_set.contains(&file) {
                return Err(Error::config(
                    file,
                    "(set)",
                    format!("{var} is set as well; set one of {var} and {file}, not both"),
                ));
            }
        }
        Ok(builder)
    }

    /// Applies one environment variable by name.
    fn set_var(&mut self, var: &'static str, raw: &OsStr) -> Result<()> {
        let v = Value { var, raw };
        self.vars_set.push(var);
        match var {
            #[cfg(feature = "postgres")]
            "DATABASE_READ_URL" => self.postgres.read_url = Some(v.text()?.to_owned()),
            #[cfg(feature = "postgres")]
            "DB_STATEMENT_TIMEOUT_MS" => {
                self.postgres.statement_timeout =
                    Duration::from_millis(v.number(0, 86_400_000, "milliseconds")?)
            }
            #[cfg(feature = "postgres")]
            "DB_LOCK_TIMEOUT_MS" => {
                self.postgres.lock_timeout =
                    Duration::from_millis(v.number(0, 86_400_000, "milliseconds")?)
            }
            #[cfg(feature = "postgres")]
            "DB_MAX_REPLICA_LAG_MS" => {
                self.postgres.max_replica_lag =
                    Duration::from_millis(v.number(1, 86_400_000, "milliseconds")?)
            }
            #[cfg(feature = "postgres")]
            "DB_REPLICA_RETRY_SECS" => {
                self.postgres.replica_retry = Duration::from_secs(v.number(1, 3600, "seconds")?)
            }
            #[cfg(feature = "postgres")]
            "DB_PG_TLS" => {
                self.postgres.tls =
                    v.keyword(super::pg_tls::PgTls::parse, super::pg_tls::PgTls::KEYWORDS)?
            }
            #[cfg(feature = "postgres")]
            "DB_APPLICATION_NAME" => self.postgres.application_name = v.text()?.to_owned(),
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
            "DB_METRICS_TOKEN" | "DB_METRICS_TOKEN_FILE" => {
                if self.metrics_token.is_some() {
                    return Err(Error::config(
                        var,
                        "<redacted>",
                        "set only one of DB_METRICS_TOKEN and DB_METRICS_TOKEN_FILE",
                    ));
                }
                let token = if var == "DB_METRICS_TOKEN" {
                    v.text()?.to_owned()
                } else {
                    read_secret_file("DB_METRICS_TOKEN_FILE", std::path::Path::new(v.text()?))?
                };
                self.metrics_token = Some(super::settings::MetricsToken(token));
            }
            "DB_RUN_MIGRATIONS" => self.run_migrations = v.boolean()?,
            "DB_ALLOW_UNSAFE_SETTINGS" => self.allow_unsafe_settings = v.boolean()?,
            "DB_FOREIGN_KEYS" => self.foreign_keys = v.boolean()?,
            "DB_STABLE_QUERY_PLANS" => self.stable_query_plans = v.boolean()?,
            "DB_SQLITE_MAX_LENGTH"
            | "DB_SQLITE_MAX_SQL_LENGTH"
            | "DB_SQLITE_MAX_COLUMNS"
            | "DB_SQLITE_MAX_EXPR_DEPTH"
            | "DB_SQLITE_MAX_VARIABLES" => {
                let (min, max) = SqliteLimits::range(var).unwrap_or((0, u32::MAX));
                let unit = match var {
                    "DB_SQLITE_MAX_COLUMNS" => "columns",
                    "DB_SQLITE_MAX_EXPR_DEPTH" => "levels",
                    "DB_SQLITE_MAX_VARIABLES" => "bind parameters",
                    _ => "bytes",
                };
                let n = u32::try_from(v.number(u64::from(min), u64::from(max), unit)?)
                    .unwrap_or(u32::MAX);
                let limits = &mut self.sqlite_limits;
                match var {
                    "DB_SQLITE_MAX_LENGTH" => limits.length = n,
                    "DB_SQLITE_MAX_SQL_LENGTH" => limits.sql_length = n,
                    "DB_SQLITE_MAX_COLUMNS" => limits.columns = n,
                    "DB_SQLITE_MAX_EXPR_DEPTH" => limits.expr_depth = n,
                    _ => limits.variables = n,
                }
            }
            // Read by `cli::init_logging`; validated here too, so a typo is reported with the
            // other variables.
            "DB_LOG_FORMAT" => {
                v.keyword(
                    |w| {
                        ["text", "json"]
                            .contains(&w.to_ascii_lowercase().as_str())
                            .then_some(())
                    },
                    &["text", "json"],
                )?;
            }
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
}
