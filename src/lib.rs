#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

// The layers, from the bottom up (see the README's code map): `error`, `url`, `pragmas` and
// `config`; the core `database`; `upkeep` and `observe` beside it; `open`, which composes them;
// the building blocks `engine`, `executor`, `paging`, `batch`, `migrate`; the reference domain `example`
// (feature `example-domain`).

#[cfg(feature = "postgres")]
mod any_database;
#[cfg(feature = "tokio")]
mod asynchronous;
pub mod batch;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
#[cfg(feature = "postgres")]
pub mod copy;
pub mod database;
pub mod engine;
pub mod error;
#[cfg(feature = "example-domain")]
pub mod example;
pub mod executor;
pub mod migrate;
pub mod observe;
mod open;
pub mod paging;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod pragmas;
mod repeated_insert;
#[cfg(feature = "testing")]
pub mod testing;
mod timestamp;
mod typed_id;
pub mod upkeep;
pub mod url;

pub use observe::{health, stats};

/// What litedal's exported macros use; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
}

/// Upkeep's former name: `litedal::maintenance::restore` and the other paths of earlier
/// versions keep working.
pub use upkeep as maintenance;

/// Prometheus text exposition and, with the `metrics-server` feature, the HTTP endpoint (the
/// path of earlier versions; the code lives in [`observe`]).
pub mod metrics {
    #[cfg(feature = "metrics-server")]
    pub use crate::observe::MetricsServer;
    pub use crate::observe::metrics::*;
}

#[cfg(feature = "postgres")]
pub use any_database::AnyDatabase;
pub use batch::BatchRows;
#[cfg(feature = "postgres")]
pub use config::{AnyConfig, PgConfig};
pub use config::{Config, ConfigBuilder, HealthThresholds, Limits, Migrations};
pub use database::{Database, PooledConnection, init_sqlite};
pub use error::{BatchChunk, Error, Report, Result};
pub use executor::Executor;
#[cfg(feature = "metrics-server")]
pub use observe::MetricsServer;
pub use observe::health::{HealthCheck, HealthReport, HealthStatus, Measured, Threshold};
pub use observe::stats::{
    CacheStats, ConnectionStats, FileStats, MemoryStats, PoolName, PoolStats, QueryStats,
    TransactionCounts, TransactionStats,
};
pub use paging::{Limit, Page};
pub use pragmas::{CheckpointMode, Pragmas, Role, SqliteLimits, Synchronous, TempStore};
pub use timestamp::{DbTimestamp, StoredTimestamp};
pub use upkeep::{
    BackupProgress, BackupReport, CheckDepth, CheckpointReport, Overwrite, RestoreReport,
};
pub use url::DatabaseLocation;
