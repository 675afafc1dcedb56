//! Statistics and Prometheus metrics of a PostgreSQL database: SQLite's pool, statement and
//! transaction families under the same names, the standby's replay lag, and the last health
//! report; and the `/metrics` + `/health` endpoint of `DB_METRICS_ADDR`.

use super::database::PgDatabase;
use crate::error::Result;
use crate::observe::metrics::{EngineFacts, render};

impl PgDatabase {
    /// The database's metrics in the Prometheus text format (0.0.4), with the names and
    /// labels of SQLite's ([`metrics`](crate::metrics) lists them): the pool, statement,
    /// transaction and health families, `litedal_info{engine="postgres"}`, and with
    /// `DATABASE_READ_URL` `litedal_replica_lag_seconds` (as last measured; NaN before the
    /// first measurement) and `litedal_replica_reads_on_primary`. SQLite's page-cache,
    /// memory, checkpoint and file families are absent.
    ///
    /// # Errors
    ///
    /// [`Error::Metrics`](crate::Error::Metrics) when the prometheus crate refuses a metric
    /// (not expected).
    pub fn render_metrics(&self) -> Result<String> {
        render(&self.connection_stats(), &self.engine_facts())
    }

    fn engine_facts(&self) -> EngineFacts {
        EngineFacts {
            engine: "postgres",
            journal_mode: String::new(),
            checkpoints: None,
            last_health: self.last_health(),
            replica: self
                .config()
                .read_url()
                .map(|_| (self.replica_lag(), self.reads_on_primary())),
        }
    }
}

#[cfg(feature = "metrics-server")]
mod endpoint {
    use std::net::SocketAddr;

    use super::PgDatabase;
    use crate::error::Result;
    use crate::observe::health::HealthReport;
    use crate::observe::{MetricsServer, Scrape};

    impl Scrape for PgDatabase {
        fn render_metrics(&self) -> Result<String> {
            PgDatabase::render_metrics(self)
        }

        fn health(&self) -> HealthReport {
            PgDatabase::health(self)
        }
    }

    impl PgDatabase {
        /// Serves this database's `GET /metrics` and `GET /health` on `addr` from a thread
        /// of its own, as [`MetricsServer::start`] does for SQLite (port 0 picks a free
        /// port). The endpoint does not keep the database open; it runs until the handle is
        /// dropped or shut down. [`PgDatabase::open`] starts one by itself when
        /// `DB_METRICS_ADDR` is set.
        ///
        /// # Errors
        ///
        /// [`Error::Metrics`](crate::Error::Metrics) when the address cannot be bound.
        pub fn serve_metrics(&self, addr: SocketAddr) -> Result<MetricsServer> {
            let token = self.config().metrics_token().cloned();
            let db = self.downgrade();
            MetricsServer::start_with(
                addr,
                Box::new(move || db.upgrade().map(|db| Box::new(db) as Box<dyn Scrape>)),
                token,
            )
        }

        /// The address of the endpoint [`PgDatabase::open`] started for `DB_METRICS_ADDR`,
        /// while it runs (with port 0 in the setting, the port picked).
        pub fn metrics_addr(&self) -> Option<SocketAddr> {
            self.metrics_server()
                .lock()
                .as_ref()
                .map(MetricsServer::local_addr)
        }

        /// Stops the endpoint [`PgDatabase::open`] started and waits for its thread; false
        /// when none was running. Dropping the last clone of the database does the same.
        pub fn shutdown_metrics_server(&self) -> bool {
            let server = self.metrics_server().lock().take();
            server.map(MetricsServer::shutdown).is_some()
        }
    }
}
