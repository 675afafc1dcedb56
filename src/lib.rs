#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod config;
pub mod database;
pub mod error;
pub mod maintenance;
pub mod pragmas;
#[allow(missing_docs)]
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;
pub mod url;

pub use config::{Config, ConfigBuilder, MIGRATIONS, Migrations};
pub use database::{Database, PooledConnection};
pub use error::{Error, Result};
pub use maintenance::{
    BackupProgress, BackupReport, CheckDepth, CheckpointReport, Overwrite, RestoreReport,
};
pub use pragmas::{CheckpointMode, Pragmas, Role, Synchronous, TempStore};
pub use url::DatabaseLocation;
