//! [`Database::open`]: the core, then what runs beside it. The one place that knows every
//! layer: the core ([`crate::database`]) is opened with the statistics as its observer, then
//! upkeep (checkpoint state, the background checkpointer, `PRAGMA optimize` at close) and the
//! metrics endpoint are started and handed to the database, which stops them when its last
//! clone is dropped.

use std::sync::Arc;

use crate::config::Config;
use crate::database::Database;
use crate::error::Result;
use crate::observe::{LastHealth, Metrics, Monitor};

impl Database {
    /// Opens (creating if needed) the database that `config` describes, and starts what runs
    /// beside it: the background checkpointer (`DB_CHECKPOINT_INTERVAL_SECS`) and, when
    /// `DB_METRICS_ADDR` is set, the `/metrics` + `/health` endpoint.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when the data directory or file cannot be created (or
    /// the path is a directory), [`Error::NotADatabase`](crate::Error::NotADatabase) for a
    /// file that is not SQLite and [`Error::Corrupt`](crate::Error::Corrupt) for a damaged one
    /// (both left untouched), [`Error::ReadOnly`](crate::Error::ReadOnly),
    /// [`Error::Busy`](crate::Error::Busy) when another process holds the database locked past
    /// the busy timeout, [`Error::Migration`](crate::Error::Migration),
    /// [`Error::PoolTimeout`](crate::Error::PoolTimeout) when the pools cannot be filled, or
    /// [`Error::Metrics`](crate::Error::Metrics) when the endpoint cannot listen.
    pub fn open(config: Config) -> Result<Database> {
        #[cfg(not(feature = "metrics-server"))]
        if let Some(addr) = config.metrics_addr() {
            return Err(crate::Error::config(
                "DB_METRICS_ADDR",
                addr.to_string(),
                "litedal was built without its `metrics-server` feature; unset the variable \
                 or enable the feature",
            ));
        }
        let metrics = Arc::new(Metrics::new(
            config.separate_read_write(),
            config.instrumentation(),
            config.slow_query(),
        ));
        let db = Database::open_core(config, Arc::clone(&metrics) as _)?;
        db.add_extension(metrics);
        db.add_extension(Arc::new(Monitor::default()));
        db.add_extension(Arc::new(LastHealth::default()));
        crate::upkeep::start(&db)?;
        #[cfg(feature = "metrics-server")]
        if let Some(addr) = db.config().metrics_addr() {
            crate::observe::start_server(&db, addr)?;
        }
        Ok(db)
    }

    /// Opens the database configured by the environment ([`Config::from_env`]).
    ///
    /// # Errors
    ///
    /// A configuration error, or any error of [`Database::open`].
    pub fn from_env() -> Result<Database> {
        Database::open(Config::from_env()?)
    }
}
