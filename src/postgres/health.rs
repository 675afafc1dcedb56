//! Health checks on PostgreSQL: the checks SQLite has that mean something here, plus the
//! standby's replay lag. The WAL-size, journal-mode and checkpoint checks are SQLite's and are
//! absent, not reported as healthy zeros.
//!
//! | check | measured | degraded at (default) | unhealthy at (default) |
//! |---|---|---|---|
//! | `read_latency` | a read transaction on the read pool (the standby with `DATABASE_READ_URL`), checkout included | 100 ms | 1 s, or any error |
//! | `write_latency` | an empty write transaction, litedal's write lock included | 500 ms | 5 s, or any error |
//! | `pool_utilization` | the busiest pool's connections in use, in percent, before the probes | 90 % | off |
//! | `replica_lag` | the standby's replay lag (only with `DATABASE_READ_URL`) | `DB_MAX_REPLICA_LAG_MS`, or the standby cannot be asked | - |

use std::time::Instant;

use diesel::connection::SimpleConnection;

use super::database::PgDatabase;
use crate::config::Limits;
use crate::observe::health::{
    HealthCheck, HealthReport, HealthStatus, READ_PROBE, Threshold, latency_check,
    pool_utilization_check, seconds_limits,
};

impl PgDatabase {
    /// Runs the health checks (table above) and grades them against the configured
    /// thresholds. A probe that fails makes its check unhealthy; this never fails.
    pub fn health(&self) -> HealthReport {
        let thresholds = self.config().health_thresholds().clone();
        let pools = pool_utilization_check(&self.connection_stats(), thresholds.pool_utilization);
        // The standby first: one that does not answer then sends the read probe (and every
        // read) to the primary at once, instead of after a wait.
        let lag_limits = Limits::degraded_only(self.config().max_replica_lag().as_secs_f64());
        let replica = match self.measure_replica_lag() {
            Ok(None) => None,
            Ok(Some(lag)) => Some(HealthCheck::against_limits(
                "replica_lag",
                lag.as_secs_f64(),
                "seconds",
                lag_limits,
                "replay lag of the standby (DATABASE_READ_URL); past the limit reads use the primary",
            )),
            Err(error) => {
                let mut check = HealthCheck::failed(
                    "replica_lag",
                    "seconds",
                    Threshold::Limits(lag_limits),
                    &error,
                );
                // Reads are still served, by the primary.
                check.status = HealthStatus::Degraded;
                check.detail =
                    format!("the standby cannot be asked ({error}); reads use the primary");
                Some(check)
            }
        };

        let started = Instant::now();
        let outcome = self.read(|conn| Ok(conn.batch_execute("SELECT 1")?));
        let read = latency_check(
            "read_latency",
            seconds_limits(&thresholds.read_latency),
            READ_PROBE,
            started.elapsed(),
            &outcome,
        );
        let started = Instant::now();
        let outcome = self.transaction(|_| Ok(()));
        let write = latency_check(
            "write_latency",
            seconds_limits(&thresholds.write_latency),
            "empty write transaction on the write pool, litedal's write lock included",
            started.elapsed(),
            &outcome,
        );
        let mut checks = vec![read, write, pools];
        checks.extend(replica);
        let report = HealthReport::from_checks(checks);
        self.remember_health(&report);
        report
    }
}
