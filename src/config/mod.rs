//! Configuration: [`Config::from_env`] reads the `DB_*` variables, [`ConfigBuilder`] is the
//! same thing for code. Every value is validated in [`ConfigBuilder::build`]; a bad one is an
//! [`Error::Config`](crate::Error::Config) naming the variable, the value and what is
//! accepted, and nothing is opened.
//!
//! - `env.rs`: [`ENV_VARS`], the one table of variables (parsing, the README's table and the
//!   CLI's help all follow it), and reading them into a [`ConfigBuilder`].
//! - `builder.rs`: [`ConfigBuilder`], its setters and [`ConfigBuilder::build`], which validates.
//! - `settings.rs`: [`Config`], the validated result, and the PRAGMAs it gives each role.
//! - `thresholds.rs`: the health thresholds configuration parses ([`HealthThresholds`]).
//! - `migrations.rs`: the migrations run at open; `hook.rs`: the application's own setup of
//!   each new connection.

mod builder;
mod env;
mod hook;
mod migrations;
#[cfg(feature = "postgres")]
mod postgres;
mod settings;
mod thresholds;

pub use builder::ConfigBuilder;
pub use env::ENV_VARS;
pub use hook::{ConnectHook, ConnectionHook};
pub use migrations::Migrations;
#[cfg(feature = "postgres")]
pub use postgres::{AnyConfig, PgConfig};
pub use settings::Config;
pub(crate) use settings::MetricsToken;
pub use thresholds::{HealthThresholds, Limits};
