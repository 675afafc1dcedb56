#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod batch;
pub mod config;
pub mod database;
pub mod error;
pub mod models;
pub mod pragmas;
pub mod repo;
#[allow(missing_docs)]
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;
pub mod url;

pub use batch::BatchRows;
pub use config::{Config, ConfigBuilder, MIGRATIONS, Migrations};
pub use database::{Database, PooledConnection};
pub use error::{BatchChunk, Error, Result};
pub use pragmas::{CheckpointMode, Pragmas, Role, Synchronous, TempStore};
pub use repo::{Limit, Page};
pub use url::DatabaseLocation;
