//! Prometheus metrics of a PostgreSQL database: the pool gauges SQLite's have, the standby's
//! replay lag, and the last health report. Query counters and durations are not collected
//! on PostgreSQL yet (see docs/postgres.md).

use prometheus::{Gauge, GaugeVec, IntGaugeVec, Opts, Registry, TextEncoder};

use super::database::PgDatabase;
use crate::error::{Error, Result};
use crate::observe::health::HealthStatus;
use crate::pragmas::Role;

fn metrics_error(error: prometheus::Error) -> Error {
    Error::Metrics(error.to_string())
}

impl PgDatabase {
    /// The database's metrics in the Prometheus text format (0.0.4), with the names of
    /// SQLite's where they mean the same: `litedal_info{engine="postgres"}`,
    /// `litedal_pool_{max,open,idle,active}_connections{pool}`,
    /// `litedal_pool_utilization_percent{pool}`, `litedal_replica_lag_seconds` and
    /// `litedal_replica_reads_on_primary` (with `DATABASE_READ_URL`), and
    /// `litedal_health_status{check}` from the last [`PgDatabase::health`] (0 healthy,
    /// 1 degraded, 2 unhealthy).
    ///
    /// # Errors
    ///
    /// [`Error::Metrics`] when the prometheus crate refuses a metric (not expected).
    pub fn render_metrics(&self) -> Result<String> {
        let registry = Registry::new();
        let info = IntGaugeVec::new(
            Opts::new("litedal_info", "litedal and the engine it runs on"),
            &["engine", "version"],
        )
        .map_err(metrics_error)?;
        info.with_label_values(&["postgres", env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(info)).map_err(metrics_error)?;

        let pool_gauge = |name: &str, help: &str| -> Result<IntGaugeVec> {
            let gauge =
                IntGaugeVec::new(Opts::new(name, help), &["pool"]).map_err(metrics_error)?;
            registry
                .register(Box::new(gauge.clone()))
                .map_err(metrics_error)?;
            Ok(gauge)
        };
        let max = pool_gauge("litedal_pool_max_connections", "Pool size")?;
        let open = pool_gauge("litedal_pool_open_connections", "Connections open")?;
        let idle = pool_gauge("litedal_pool_idle_connections", "Connections idle")?;
        let active = pool_gauge("litedal_pool_active_connections", "Connections in use")?;
        let utilization = GaugeVec::new(
            Opts::new(
                "litedal_pool_utilization_percent",
                "Connections in use as a percentage of the pool size",
            ),
            &["pool"],
        )
        .map_err(metrics_error)?;
        registry
            .register(Box::new(utilization.clone()))
            .map_err(metrics_error)?;
        for role in [Role::Read, Role::Write] {
            let (open_now, idle_now, max_size) = self.pool_state(role);
            let label = [role.to_string()];
            let label = [label[0].as_str()];
            max.with_label_values(&label).set(i64::from(max_size));
            open.with_label_values(&label).set(i64::from(open_now));
            idle.with_label_values(&label).set(i64::from(idle_now));
            let in_use = open_now.saturating_sub(idle_now);
            active.with_label_values(&label).set(i64::from(in_use));
            utilization
                .with_label_values(&label)
                .set(f64::from(in_use) * 100.0 / f64::from(max_size.max(1)));
        }

        if self.config().read_url().is_some() {
            let lag = Gauge::new(
                "litedal_replica_lag_seconds",
                "Replay lag of the standby (DATABASE_READ_URL) as last measured",
            )
            .map_err(metrics_error)?;
            lag.set(self.replica_lag().map_or(f64::NAN, |d| d.as_secs_f64()));
            registry.register(Box::new(lag)).map_err(metrics_error)?;
            let on_primary = Gauge::new(
                "litedal_replica_reads_on_primary",
                "1 while reads use the primary because the standby is down or lags",
            )
            .map_err(metrics_error)?;
            on_primary.set(if self.reads_on_primary() { 1.0 } else { 0.0 });
            registry
                .register(Box::new(on_primary))
                .map_err(metrics_error)?;
        }

        if let Some(report) = self.last_health() {
            let status = IntGaugeVec::new(
                Opts::new(
                    "litedal_health_status",
                    "Last health check: 0 healthy, 1 degraded, 2 unhealthy",
                ),
                &["check"],
            )
            .map_err(metrics_error)?;
            for check in &report.checks {
                status
                    .with_label_values(&[check.name])
                    .set(match check.status {
                        HealthStatus::Healthy => 0,
                        HealthStatus::Degraded => 1,
                        HealthStatus::Unhealthy => 2,
                    });
            }
            registry.register(Box::new(status)).map_err(metrics_error)?;
        }
        TextEncoder::new()
            .encode_to_string(&registry.gather())
            .map_err(metrics_error)
    }
}
