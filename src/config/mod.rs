//! Configuration: [`Config::from_env`] reads the `DB_*` variables, [`ConfigBuilder`] is the
//! same thing for code. Every value is validated in [`ConfigBuilder::build`]; a bad one is an
//! [`Error::Config`](crate::Error::Config) naming the variable, the value and what is
//! accepted, and nothing is opened.
//!
//! - `env.rs`: [`ENV_VARS`], the one table of variables (parsing, the README's table and the
//!   CLI's help all follow it), and reading them into a [`ConfigBuilder`].
//! - `builder.rs`: [`ConfigBuilder`], its setters and [`ConfigBuilder::build`], which validates.
//! - `settings.rs`: [`Config`], the validated result, and the PRAGMAs it gives each role.
//! - `pg_tls.rs`: the `sslmode` a PostgreSQL URL gets off loopback (`DB_PG_TLS`).
//! - `secret_file.rs`: `DATABASE_URL_FILE` and `DATABASE_READ_URL_FILE`, the URLs read from
//!   secret files.
//! - `unsafe_settings.rs`: settings refused unless acknowledged (`DB_ALLOW_UNSAFE_SETTINGS`).
//! - `thresholds.rs`: the health thresholds configuration parses ([`HealthThresholds`]).
//! - `migrations.rs`: the migrations run at open; `hook.rs`: the application's own setup of
//!   each new connection.

mod builder;
mod env;
mod hook;
mod migrations;
#[cfg(feature = "postgres")]
mod pg_tls;
#[cfg(feature = "postgres")]
mod postgres;
mod secret_file;
mod settings;
mod thresholds;
mod unsafe_settings;

pub use builder::ConfigBuilder;
pub use env::ENV_VARS;
pub use hook::{ConnectHook, ConnectionHook};
pub use migrations::Migrations;
#[cfg(feature = "postgres")]
pub use pg_tls::PgTls;
#[cfg(all(feature = "cli", feature = "postgres"))]
pub(crate) use pg_tls::secure_copy_url;
#[cfg(feature = "postgres")]
pub use postgres::{AnyConfig, PgConfig};
#[cfg(all(feature = "cli", feature = "postgres"))]
pub(crate) use secret_file::read_secret_file;
pub use settings::Config;
#[cfg(feature = "metrics-server")]
pub(crate) use settings::MetricsToken;
pub use thresholds::{HealthThresholds, Limits};
