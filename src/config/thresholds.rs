//! Health thresholds: the types configuration parses (`DB_HEALTH_*`) and
//! [`Database::health`](crate::Database::health) grades against.

use std::time::Duration;

use serde::Serialize;

/// Two thresholds on a measured value: at or above `degraded_at` the check is degraded, at
/// or above `unhealthy_at` unhealthy. `None` turns that level off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limits<T> {
    /// The value at which the check becomes [`HealthStatus::Degraded`](crate::HealthStatus::Degraded).
    pub degraded_at: Option<T>,
    /// The value at which the check becomes [`HealthStatus::Unhealthy`](crate::HealthStatus::Unhealthy).
    pub unhealthy_at: Option<T>,
}

impl<T> Limits<T> {
    /// Both thresholds.
    pub fn new(degraded_at: T, unhealthy_at: T) -> Self {
        Limits {
            degraded_at: Some(degraded_at),
            unhealthy_at: Some(unhealthy_at),
        }
    }

    /// Only a degraded threshold; the check never makes the database unhealthy.
    pub fn degraded_only(degraded_at: T) -> Self {
        Limits {
            degraded_at: Some(degraded_at),
            unhealthy_at: None,
        }
    }

    /// No thresholds: the value is reported, the check is always healthy.
    pub fn off() -> Self {
        Limits {
            degraded_at: None,
            unhealthy_at: None,
        }
    }

    pub(crate) fn map<U>(&self, f: impl Fn(&T) -> U) -> Limits<U> {
        Limits {
            degraded_at: self.degraded_at.as_ref().map(&f),
            unhealthy_at: self.unhealthy_at.as_ref().map(&f),
        }
    }
}

/// The thresholds [`Database::health`](crate::Database::health) grades against; set them with
/// [`ConfigBuilder::health_thresholds`](crate::ConfigBuilder::health_thresholds) or the
/// `DB_HEALTH_*` variables. The defaults are in the module documentation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HealthThresholds {
    /// Read round trip (`DB_HEALTH_READ_LATENCY_MS`); default 100 ms / 1 s.
    pub read_latency: Limits<Duration>,
    /// Write round trip (`DB_HEALTH_WRITE_LATENCY_MS`); default 500 ms / 5 s.
    pub write_latency: Limits<Duration>,
    /// Busiest pool's utilization in percent (`DB_HEALTH_POOL_UTILIZATION`); default 90 / off.
    pub pool_utilization: Limits<f64>,
    /// WAL file size in bytes (`DB_HEALTH_WAL_SIZE_BYTES`); default `DB_WAL_SIZE_LIMIT` and 4
    /// times that.
    pub wal_size: Limits<u64>,
    /// Time since the last successful checkpoint (`DB_HEALTH_CHECKPOINT_AGE_SECS`), checked
    /// only while the background checkpointer runs; default 4 x the checkpoint interval /
    /// off. A checkpointer that keeps being blocked by readers shows here before the WAL
    /// grows past its limit.
    pub checkpoint_age: Limits<Duration>,
}

impl HealthThresholds {
    /// The defaults, with the WAL thresholds derived from `wal_size_limit`
    /// (`DB_WAL_SIZE_LIMIT`): past it the checkpointer should already have truncated the WAL;
    /// and the checkpoint age from `checkpoint_interval` (`DB_CHECKPOINT_INTERVAL_SECS`).
    pub fn defaults(wal_size_limit: u64, checkpoint_interval: Duration) -> HealthThresholds {
        HealthThresholds {
            read_latency: Limits::new(Duration::from_millis(100), Duration::from_secs(1)),
            write_latency: Limits::new(Duration::from_millis(500), Duration::from_secs(5)),
            pool_utilization: Limits::degraded_only(90.0),
            wal_size: Limits::new(wal_size_limit, wal_size_limit.saturating_mul(4)),
            checkpoint_age: if checkpoint_interval.is_zero() {
                Limits::off()
            } else {
                Limits::degraded_only(checkpoint_interval.saturating_mul(4))
            },
        }
    }
}
