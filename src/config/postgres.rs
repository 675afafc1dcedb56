//! PostgreSQL's settings (feature `postgres`): [`PgConfig`], and [`AnyConfig`], the
//! configuration of a database whose engine `DATABASE_URL` picks at run time.

use std::net::SocketAddr;
use std::time::Duration;

use super::builder::ConfigBuilder;
use super::migrations::Migrations;
use super::pg_tls::{LibpqEnv, PgTls, TlsNote, secure_url};
use super::settings::{Config, MetricsToken};
use super::thresholds::HealthThresholds;
use crate::error::{Error, Result};
use crate::url::{is_postgres_url, redact_password};

/// The environment variables that only SQLite uses: reported once at INFO, and ignored, when
/// `DATABASE_URL` is a PostgreSQL URL.
const SQLITE_ONLY: &[&str] = &[
    "DB_ENABLE_WAL",
    "DB_BUSY_TIMEOUT_MS",
    "DB_CACHE_SIZE_KIB",
    "DB_READ_CACHE_SIZE_KIB",
    "DB_WRITE_CACHE_SIZE_KIB",
    "DB_MMAP_SIZE",
    "DB_READ_MMAP_SIZE",
    "DB_WRITE_MMAP_SIZE",
    "DB_TEMP_STORE",
    "DB_SYNCHRONOUS",
    "DB_WAL_AUTOCHECKPOINT",
    "DB_WAL_CHECKPOINT_MODE",
    "DB_CHECKPOINT_INTERVAL_SECS",
    "DB_WAL_SIZE_LIMIT",
    "DB_FOREIGN_KEYS",
    "DB_STABLE_QUERY_PLANS",
    "DB_HEALTH_WAL_SIZE_BYTES",
    "DB_HEALTH_CHECKPOINT_AGE_SECS",
];

/// The configuration of a PostgreSQL database: built by [`ConfigBuilder::build_any`] from a
/// `postgres://` or `postgresql://` `DATABASE_URL`.
#[derive(Clone)]
pub struct PgConfig {
    url: String,
    read_url: Option<String>,
    read_pool_size: u32,
    write_pool_size: u32,
    pool_timeout: Duration,
    statement_timeout: Duration,
    lock_timeout: Duration,
    max_replica_lag: Duration,
    replica_retry: Duration,
    application_name: String,
    run_migrations: bool,
    migrations: Option<Migrations>,
    health: HealthThresholds,
    slow_query: Option<Duration>,
    metrics_addr: Option<SocketAddr>,
    metrics_token: Option<MetricsToken>,
    instrumentation: bool,
    /// What was decided about each URL's TLS, logged at open.
    tls_notes: Vec<TlsNote>,
}

/// Never prints a password.
impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &redact_password(&self.url))
            .field("read_url", &self.read_url.as_deref().map(redact_password))
            .field("read_pool_size", &self.read_pool_size)
            .field("write_pool_size", &self.write_pool_size)
            .field("pool_timeout", &self.pool_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("max_replica_lag", &self.max_replica_lag)
            .field("replica_retry", &self.replica_retry)
            .field("application_name", &self.application_name)
            .field("run_migrations", &self.run_migrations)
            .field("slow_query", &self.slow_query)
            .field("metrics_addr", &self.metrics_addr)
            .field("metrics_token", &self.metrics_token.is_some())
            .field("instrumentation", &self.instrumentation)
            .finish()
    }
}

impl PgConfig {
    /// The primary's URL (`DATABASE_URL`) as libpq gets it: writes, migrations, and reads
    /// unless a read URL is set. `sslmode=require` (or `DB_PG_TLS`) is added when its host is
    /// not loopback and it sets no `sslmode` (see [`ConfigBuilder::pg_tls`]). Contains the
    /// password if the URL has one; print [`PgConfig::display_url`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL with its password replaced by `***`.
    pub fn display_url(&self) -> String {
        redact_password(&self.url)
    }

    /// `DATABASE_READ_URL`: the server the read pool connects to (a hot standby), with
    /// `sslmode` added as for [`PgConfig::url`].
    pub fn read_url(&self) -> Option<&str> {
        self.read_url.as_deref()
    }

    /// Connections of the read pool.
    pub fn read_pool_size(&self) -> u32 {
        self.read_pool_size
    }

    /// Connections of the write pool.
    pub fn write_pool_size(&self) -> u32 {
        self.write_pool_size
    }

    /// `DB_POOL_TIMEOUT`.
    pub fn pool_timeout(&self) -> Duration {
        self.pool_timeout
    }

    /// `DB_STATEMENT_TIMEOUT_MS` (zero: none).
    pub fn statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    /// `DB_LOCK_TIMEOUT_MS` (zero, only with `DB_ALLOW_UNSAFE_SETTINGS`: wait for ever).
    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    /// `DB_MAX_REPLICA_LAG_MS`: a standby further behind than this serves no reads until it
    /// has caught up (reads go to the primary meanwhile).
    pub fn max_replica_lag(&self) -> Duration {
        self.max_replica_lag
    }

    /// `DB_REPLICA_RETRY_SECS`: how long reads stay on the primary after the standby was
    /// down or too far behind, before it is tried again.
    pub fn replica_retry(&self) -> Duration {
        self.replica_retry
    }

    /// `DB_APPLICATION_NAME`, shown in `pg_stat_activity`.
    pub fn application_name(&self) -> &str {
        &self.application_name
    }

    /// Whether pending migrations run at open (`DB_RUN_MIGRATIONS`).
    pub fn run_migrations(&self) -> bool {
        self.run_migrations
    }

    /// The thresholds of [`PgDatabase::health`](crate::postgres::PgDatabase::health) (the
    /// WAL and checkpoint ones do not apply).
    pub fn health_thresholds(&self) -> &HealthThresholds {
        &self.health
    }

    /// The PostgreSQL migrations given with [`ConfigBuilder::postgres_migrations`].
    pub fn migrations(&self) -> Option<Migrations> {
        self.migrations
    }

    /// `DB_SLOW_QUERY_MS`: statements slower than this are logged at WARN and counted;
    /// `None` = off.
    pub fn slow_query(&self) -> Option<Duration> {
        self.slow_query
    }

    /// `DB_METRICS_ADDR`: where [`PgDatabase::open`](crate::postgres::PgDatabase::open)
    /// serves `/metrics` and `/health`, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The bearer token the endpoint requires (`DB_METRICS_TOKEN`, `DB_METRICS_TOKEN_FILE`).
    #[cfg_attr(not(feature = "metrics-server"), allow(dead_code))]
    pub(crate) fn metrics_token(&self) -> Option<&MetricsToken> {
        self.metrics_token.as_ref()
    }

    /// This configuration without the endpoint of `DB_METRICS_ADDR` (the CLI serves its own).
    #[cfg(feature = "cli")]
    pub(crate) fn without_metrics_addr(mut self) -> PgConfig {
        self.metrics_addr = None;
        self
    }

    /// True when checkouts and statements are counted and timed (the default; see
    /// [`ConfigBuilder::instrumentation`]).
    pub fn instrumentation(&self) -> bool {
        self.instrumentation
    }

    /// Logs what was decided about the URLs' TLS (at open): INFO where `sslmode` was added,
    /// WARN where an explicit mode may send data in clear to a remote host.
    pub(crate) fn log_tls(&self) {
        for note in &self.tls_notes {
            note.log();
        }
    }
}

/// A configuration for either engine, picked by the scheme of `DATABASE_URL`.
// Built once per database; boxing the larger variant would only make matching on it clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum AnyConfig {
    /// A SQLite file or `:memory:`.
    Sqlite(Config),
    /// A PostgreSQL server.
    Postgres(PgConfig),
}

impl AnyConfig {
    /// Reads the environment (see [`ENV_VARS`](super::ENV_VARS)) and builds the configuration
    /// of the engine `DATABASE_URL` names.
    ///
    /// # Errors
    ///
    /// As [`ConfigBuilder::build_any`].
    pub fn from_env() -> Result<AnyConfig> {
        ConfigBuilder::from_env()?.build_any()
    }

    /// As [`AnyConfig::from_env`], from the given name/value pairs.
    ///
    /// # Errors
    ///
    /// As [`ConfigBuilder::build_any`].
    pub fn from_vars<I, K, V>(vars: I) -> Result<AnyConfig>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        ConfigBuilder::from_vars(vars)?.build_any()
    }
}

impl ConfigBuilder {
    /// `DATABASE_READ_URL`: a PostgreSQL server (a hot standby) for the read pool; writes and
    /// migrations stay on `DATABASE_URL`. An error with a SQLite `DATABASE_URL`.
    pub fn database_read_url(mut self, url: impl Into<String>) -> Self {
        self.postgres.read_url = Some(url.into());
        self
    }

    /// `DB_STATEMENT_TIMEOUT_MS` on PostgreSQL: statements running longer are cancelled
    /// ([`Error::Busy`]); zero (the default) for none.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.postgres.statement_timeout = timeout;
        self
    }

    /// `DB_LOCK_TIMEOUT_MS` on PostgreSQL: how long a statement waits for a lock before it
    /// fails with [`Error::Busy`]; default 5 s (SQLite's busy timeout); zero waits for ever
    /// and is refused unless [`ConfigBuilder::allow_unsafe_settings`].
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.postgres.lock_timeout = timeout;
        self
    }

    /// `DB_MAX_REPLICA_LAG_MS`: the replay lag past which reads leave the standby for the
    /// primary; default 10 s.
    pub fn max_replica_lag(mut self, lag: Duration) -> Self {
        self.postgres.max_replica_lag = lag;
        self
    }

    /// `DB_REPLICA_RETRY_SECS`: how long reads stay on the primary before the standby is tried
    /// again; default 5 s.
    pub fn replica_retry(mut self, after: Duration) -> Self {
        self.postgres.replica_retry = after;
        self
    }

    /// `DB_PG_TLS`: the `sslmode` added to a PostgreSQL URL (`DATABASE_URL`,
    /// `DATABASE_READ_URL`) whose hosts are not all loopback or Unix sockets and that sets no
    /// `sslmode` itself (nor through libpq's `PGSSLMODE`); default [`PgTls::Require`]. A host
    /// is loopback by name only (`localhost`, `127.0.0.0/8`, `::1`, a socket directory; no DNS).
    /// An explicit `sslmode=disable`, `allow` or `prefer` to such a host is kept and logged at
    /// WARN at open.
    pub fn pg_tls(mut self, tls: PgTls) -> Self {
        self.postgres.tls = tls;
        self
    }

    /// `DB_APPLICATION_NAME` on PostgreSQL; default `litedal`.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.postgres.application_name = name.into();
        self
    }

    /// The application's PostgreSQL migrations (`embed_migrations!("migrations_postgres")`),
    /// run at open on a PostgreSQL `DATABASE_URL` as [`ConfigBuilder::migrations`] are on SQLite.
    pub fn postgres_migrations(
        mut self,
        migrations: &'static diesel_migrations::EmbeddedMigrations,
    ) -> Self {
        self.postgres.migrations = Some(Migrations(migrations));
        self
    }

    /// Validates the settings for the engine `DATABASE_URL` names: [`ConfigBuilder::build`] for
    /// SQLite, the PostgreSQL settings for a `postgres://` or `postgresql://` URL. SQLite-only
    /// variables set with a PostgreSQL URL are reported once at INFO and ignored.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first bad setting (a `DATABASE_READ_URL` with a SQLite
    /// `DATABASE_URL` among them), or [`Error::UnsupportedUrl`].
    pub fn build_any(self) -> Result<AnyConfig> {
        if !is_postgres_url(&self.database_url) {
            if let Some(read_url) = &self.postgres.read_url {
                return Err(Error::config(
                    "DATABASE_READ_URL",
                    redact_password(read_url),
                    "only applies with a PostgreSQL DATABASE_URL (a read pool on a hot standby); \
                     unset it for SQLite",
                ));
            }
            return self.build().map(AnyConfig::Sqlite);
        }
        if let Some(read_url) = &self.postgres.read_url {
            if !is_postgres_url(read_url) {
                return Err(Error::config(
                    "DATABASE_READ_URL",
                    redact_password(read_url),
                    "accepted: a postgres:// or postgresql:// URL of a server replicating DATABASE_URL",
                ));
            }
        }
        let ignored: Vec<&str> = self
            .vars_set
            .iter()
            .copied()
            .filter(|var| SQLITE_ONLY.contains(var))
            .collect();
        if !ignored.is_empty() {
            tracing::info!(
                variables = %ignored.join(", "),
                "Database config: SQLite-only variables ignored with a PostgreSQL DATABASE_URL"
            );
        }
        let (read_pool_size, write_pool_size) = self.pool_sizes()?;
        let (read_pool_size, write_pool_size) = if self.separate_read_write {
            (read_pool_size, write_pool_size)
        } else {
            (write_pool_size, write_pool_size)
        };
        if self.pool_timeout.is_zero() || self.pool_timeout > Duration::from_secs(3600) {
            return Err(Error::config(
                "DB_POOL_TIMEOUT",
                format!("{:?}", self.pool_timeout),
                "accepted: 1 to 3600 seconds",
            ));
        }
        for (var, value) in [
            ("DB_STATEMENT_TIMEOUT_MS", self.postgres.statement_timeout),
            ("DB_LOCK_TIMEOUT_MS", self.postgres.lock_timeout),
        ] {
            if value > Duration::from_secs(86_400) {
                return Err(Error::config(
                    var,
                    value.as_millis().to_string(),
                    "accepted: 0 (none) to 86400000 milliseconds",
                ));
            }
        }
        if self.postgres.lock_timeout.is_zero() {
            use super::unsafe_settings::{UnsafeSetting, check};
            check(
                vec![UnsafeSetting {
                    var: "DB_LOCK_TIMEOUT_MS",
                    value: "0".to_owned(),
                    cost: "a write waits for a lock for ever instead of failing with Error::Busy",
                }],
                self.allow_unsafe_settings,
            )?;
        }
        if self.postgres.max_replica_lag.is_zero()
            || self.postgres.max_replica_lag > Duration::from_secs(86_400)
        {
            return Err(Error::config(
                "DB_MAX_REPLICA_LAG_MS",
                self.postgres.max_replica_lag.as_millis().to_string(),
                "accepted: 1 to 86400000 milliseconds",
            ));
        }
        if self.postgres.replica_retry.is_zero()
            || self.postgres.replica_retry > Duration::from_secs(3600)
        {
            return Err(Error::config(
                "DB_REPLICA_RETRY_SECS",
                self.postgres.replica_retry.as_secs().to_string(),
                "accepted: 1 to 3600 seconds",
            ));
        }
        let name = &self.postgres.application_name;
        if name.len() > 63 || !name.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
            return Err(Error::config(
                "DB_APPLICATION_NAME",
                name.clone(),
                "accepted: up to 63 printable ASCII characters",
            ));
        }
        let health = self.resolve_health()?;
        let libpq_env = LibpqEnv::from_process();
        let mut tls_notes = Vec::new();
        let (url, note) = secure_url(
            "DATABASE_URL",
            &self.database_url,
            self.postgres.tls,
            &libpq_env,
        )?;
        tls_notes.extend(note);
        let read_url = match &self.postgres.read_url {
            Some(read_url) => {
                let (read_url, note) =
                    secure_url("DATABASE_READ_URL", read_url, self.postgres.tls, &libpq_env)?;
                tls_notes.extend(note);
                Some(read_url)
            }
            None => None,
        };
        Ok(AnyConfig::Postgres(PgConfig {
            url,
            read_url,
            read_pool_size,
            write_pool_size,
            pool_timeout: self.pool_timeout,
            statement_timeout: self.postgres.statement_timeout,
            lock_timeout: self.postgres.lock_timeout,
            max_replica_lag: self.postgres.max_replica_lag,
            replica_retry: self.postgres.replica_retry,
            application_name: self.postgres.application_name,
            run_migrations: self.run_migrations,
            migrations: self.postgres.migrations,
            health,
            slow_query: (!self.slow_query.is_zero()).then_some(self.slow_query),
            metrics_addr: self.metrics_addr,
            metrics_token: self.metrics_token,
            instrumentation: self.instrumentation,
            tls_notes,
        }))
    }
}
