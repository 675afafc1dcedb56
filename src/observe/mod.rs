//! Observability: what an operator sees of a database while it runs.
//!
//! - `stats.rs`: the figures of [`Database::connection_stats`](crate::Database::connection_stats);
//!   `collectors.rs`: the counters behind them (the core's observer, pool events, statement
//!   timing, the slow-query log).
//! - `health.rs`: [`Database::health`](crate::Database::health), graded checks.
//! - `metrics.rs`: Prometheus text; `server.rs`: the `/metrics` + `/health` endpoint.
//!
//! It uses the core (`crate::database`) and reads upkeep's checkpoint state for the health
//! checks; neither of them knows these types.

mod collectors;
pub mod health;
pub mod metrics;
#[cfg(feature = "metrics-server")]
mod server;
mod sql_text;
pub mod stats;

#[cfg(feature = "postgres")]
pub(crate) use collectors::{EngineFigures, PoolState, StatementTimers};
pub(crate) use collectors::{Metrics, Monitor};
pub(crate) use health::LastHealth;
#[cfg(feature = "metrics-server")]
pub use server::MetricsServer;
#[cfg(all(feature = "metrics-server", feature = "postgres"))]
pub(crate) use server::Scrape;
#[cfg(feature = "metrics-server")]
pub(crate) use server::start as start_server;
