#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod batch;
pub mod config;
pub mod database;
pub mod error;
mod file_locks;
pub mod health;
pub mod maintenance;
pub mod metrics;
pub mod migrate;
pub mod models;
pub mod pragmas;
pub mod repo;
#[allow(missing_docs)]
pub mod schema;
pub mod stats;
#[cfg(feature = "testing")]
pub mod testing;
pub mod url;

pub use batch::BatchRows;
pub use config::{Config, ConfigBuilder, MIGRATIONS, Migrations};
pub use database::{Database, PooledConnection};
pub use error::{BatchChunk, Error, Result};
pub use health::{
    HealthCheck, HealthReport, HealthStatus, HealthThresholds, Limits, Measured, Threshold,
};
pub use maintenance::{
    BackupProgress, BackupReport, CheckDepth, CheckpointReport, Overwrite, RestoreReport,
};
#[cfg(feature = "metrics-server")]
pub use metrics::MetricsServer;
pub use pragmas::{CheckpointMode, Pragmas, Role, Synchronous, TempStore};
pub use repo::{Limit, Page};
pub use stats::{
    ConnectionStats, FileStats, PoolName, PoolStats, QueryStats, TransactionCounts,
    TransactionStats,
};
pub use url::DatabaseLocation;
