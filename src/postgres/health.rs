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

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;

use super::database::PgDatabase;
use crate::config::Limits;
use crate::observe::health::{HealthCheck, HealthReport, HealthStatus, Threshold};
use crate::pragmas::Role;

impl PgDatabase {
    /// Runs the health checks (table above) and grades them against the configured
    /// thresholds. A probe that fails makes its check unhealthy; this never fails.
    pub fn health(&self) -> HealthReport {
        let thresholds = self.config().health_thresholds().clone();
        let seconds = |limits: &Limits<Duration>| limits.map(Duration::as_secs_f64);
        let pools = self.pool_check(thresholds.pool_utilization);
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
        let read = self.read(|conn| Ok(conn.batch_execute("SELECT 1")?));
        let read = match read {
            Ok(()) => HealthCheck::against_limits(
                "read_latency",
                started.elapsed().as_secs_f64(),
                "seconds",
                seconds(&thresholds.read_latency),
                "read transaction on the read pool, checkout included",
            ),
            Err(error) => HealthCheck::failed(
                "read_latency",
                "seconds",
                Threshold::Limits(seconds(&thresholds.read_latency)),
                &error,
            ),
        };
        let started = Instant::now();
        let write = match self.transaction(|_| Ok(())) {
            Ok(()) => HealthCheck::against_limits(
                "write_latency",
                started.elapsed().as_secs_f64(),
                "seconds",
                seconds(&thresholds.write_latency),
                "empty write transaction on the write pool, litedal's write lock included",
            ),
            Err(error) => HealthCheck::failed(
                "write_latency",
                "seconds",
                Threshold::Limits(seconds(&thresholds.write_latency)),
                &error,
            ),
        };
        let mut checks = vec![read, write, pools];
        checks.extend(replica);
        let report = HealthReport::from_checks(checks);
        self.remember_health(&report);
        report
    }

    /// The busiest pool's connections in use, in percent.
    fn pool_check(&self, limits: Limits<f64>) -> HealthCheck {
        let mut busiest = 0.0f64;
        let mut detail = Vec::new();
        for role in [Role::Read, Role::Write] {
            let (in_use, max_size) = self.pool_usage(role);
            busiest = busiest.max(f64::from(in_use) * 100.0 / f64::from(max_size.max(1)));
            detail.push(format!("{role} {in_use}/{max_size} in use"));
        }
        HealthCheck::against_limits(
            "pool_utilization",
            busiest,
            "percent",
            limits,
            detail.join(", "),
        )
    }
}
