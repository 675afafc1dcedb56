//! Health checks: [`Database::health`] measures a few things an operator alerts on and grades
//! each against configurable thresholds.
//!
//! | check | measured | degraded at (default) | unhealthy at (default) |
//! |---|---|---|---|
//! | `read_latency` | a read transaction (`SELECT count(*) FROM sqlite_schema`) through the read pool, checkout included | 100 ms | 1 s, or any error |
//! | `write_latency` | an immediate write transaction that writes nothing (`BEGIN IMMEDIATE; COMMIT`) through the write gate and pool | 500 ms | 5 s, or any error |
//! | `pool_utilization` | the busiest pool's active connections in percent, before the probes | 90 % | off |
//! | `wal_size` | size of the `-wal` file | `DB_WAL_SIZE_LIMIT` | 4 x `DB_WAL_SIZE_LIMIT` |
//! | `journal_mode` | `PRAGMA journal_mode` on a read connection | differs from the configured mode | - |
//! | `checkpoint_age` | time since the last checkpoint that was not blocked (or since open), only while the background checkpointer runs | 4 x `DB_CHECKPOINT_INTERVAL_SECS` | off |
//!
//! A value at or above a threshold gets that status; the report's status is the worst of its
//! checks. Each check is one entry in [`HealthReport::checks`]: a new check is one more
//! [`HealthCheck`] pushed there (see [`HealthCheck::against_limits`]) and, if it has thresholds,
//! one more field in [`HealthThresholds`].

use std::fmt;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;
use serde::Serialize;

use super::stats::ConnectionStats;
pub use crate::config::{HealthThresholds, Limits};
use crate::database::Database;
use crate::error::Error;

/// Overall or per-check health, from best to worst (so `max` gives the worst).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Every check is within its thresholds.
    Healthy,
    /// Working, but something needs attention (slow, busy, a large WAL).
    Degraded,
    /// Not serving properly: a probe failed or is far too slow. `/health` answers 503.
    Unhealthy,
}

impl HealthStatus {
    /// `"healthy"`, `"degraded"` or `"unhealthy"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }

    /// The HTTP status a `/health` endpoint answers with: 200, or 503 when unhealthy (a
    /// degraded database still serves).
    pub fn http_status(self) -> u16 {
        match self {
            HealthStatus::Healthy | HealthStatus::Degraded => 200,
            HealthStatus::Unhealthy => 503,
        }
    }

    /// The exit code of `litedal health`: 0 healthy, 1 degraded, 2 unhealthy.
    pub fn exit_code(self) -> i32 {
        match self {
            HealthStatus::Healthy => 0,
            HealthStatus::Degraded => 1,
            HealthStatus::Unhealthy => 2,
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a check measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Measured {
    /// A number in the check's [`unit`](HealthCheck::unit).
    Number(f64),
    /// A text value (the journal mode).
    Text(String),
}

impl fmt::Display for Measured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Measured::Number(n) => write!(f, "{n}"),
            Measured::Text(t) => f.write_str(t),
        }
    }
}

/// What a check compares its value against.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Threshold {
    /// Upper limits, in the check's unit.
    Limits(Limits<f64>),
    /// The value expected; anything else is degraded.
    Expected {
        /// The expected value.
        expected: String,
    },
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Expected { expected } => write!(f, "= {expected}"),
            Threshold::Limits(limits) => {
                let show = |v: Option<f64>| v.map_or_else(|| "off".to_owned(), |v| v.to_string());
                write!(
                    f,
                    "degraded >= {}, unhealthy >= {}",
                    show(limits.degraded_at),
                    show(limits.unhealthy_at)
                )
            }
        }
    }
}

/// One graded measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HealthCheck {
    /// A stable name: `read_latency`, `write_latency`, `pool_utilization`, `wal_size`,
    /// `journal_mode`, `checkpoint_age`.
    pub name: &'static str,
    /// This check's grade.
    pub status: HealthStatus,
    /// What was measured; `None` when the probe failed (see `detail`).
    pub value: Option<Measured>,
    /// Unit of `value` and of the limits: `seconds`, `percent`, `bytes`, or empty for text.
    pub unit: &'static str,
    /// What `value` was graded against.
    pub threshold: Threshold,
    /// A human-readable explanation (the error, when the probe failed).
    pub detail: String,
}

impl HealthCheck {
    /// A check of a number against upper limits: degraded or unhealthy when `value` is at or
    /// above the limit.
    pub fn against_limits(
        name: &'static str,
        value: f64,
        unit: &'static str,
        limits: Limits<f64>,
        detail: impl Into<String>,
    ) -> HealthCheck {
        let reached = |limit: Option<f64>| limit.is_some_and(|limit| value >= limit);
        let status = if reached(limits.unhealthy_at) {
            HealthStatus::Unhealthy
        } else if reached(limits.degraded_at) {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        HealthCheck {
            name,
            status,
            value: Some(Measured::Number(value)),
            unit,
            threshold: Threshold::Limits(limits),
            detail: detail.into(),
        }
    }

    /// A check whose probe failed: unhealthy, with the error as the detail.
    pub fn failed(
        name: &'static str,
        unit: &'static str,
        threshold: Threshold,
        error: &Error,
    ) -> HealthCheck {
        HealthCheck {
            name,
            status: HealthStatus::Unhealthy,
            value: None,
            unit,
            threshold,
            detail: error.to_string(),
        }
    }
}

/// The result of [`Database::health`]: every check and the worst status among them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// The worst status of any check.
    pub status: HealthStatus,
    /// When the checks ran.
    pub checked_at: DateTime<Utc>,
    /// The checks, in a stable order.
    pub checks: Vec<HealthCheck>,
}

impl HealthReport {
    /// A report over `checks`, graded as the worst of them (healthy when there are none).
    pub fn from_checks(checks: Vec<HealthCheck>) -> HealthReport {
        HealthReport {
            status: checks
                .iter()
                .map(|c| c.status)
                .max()
                .unwrap_or(HealthStatus::Healthy),
            checked_at: Utc::now(),
            checks,
        }
    }

    /// The report for a database that could not be opened (missing, not a database,
    /// no permission, a bad configuration): the same checks a running database reports
    /// (reads, writes, pool, WAL and journal mode), each unhealthy, naming the problem. So a
    /// monitor that parses the report always gets one.
    pub fn unavailable(error: &Error, thresholds: &HealthThresholds) -> HealthReport {
        let detail = format!("the database could not be opened: {}", error.report());
        let limits = |name, unit, limits: Limits<f64>| HealthCheck {
            name,
            status: HealthStatus::Unhealthy,
            value: None,
            unit,
            threshold: Threshold::Limits(limits),
            detail: detail.clone(),
        };
        #[allow(clippy::cast_precision_loss)]
        let wal = thresholds.wal_size.map(|&bytes| bytes as f64);
        HealthReport::from_checks(vec![
            limits(
                "read_latency",
                "seconds",
                seconds_limits(&thresholds.read_latency),
            ),
            limits(
                "write_latency",
                "seconds",
                seconds_limits(&thresholds.write_latency),
            ),
            limits("pool_utilization", "percent", thresholds.pool_utilization),
            limits("wal_size", "bytes", wal),
            HealthCheck {
                name: "journal_mode",
                status: HealthStatus::Unhealthy,
                value: None,
                unit: "",
                threshold: Threshold::Expected {
                    expected: "wal".to_owned(),
                },
                detail: detail.clone(),
            },
        ])
    }

    /// The check called `name`, if the report has one.
    pub fn check(&self, name: &str) -> Option<&HealthCheck> {
        self.checks.iter().find(|c| c.name == name)
    }
}

#[derive(QueryableByName)]
struct ReadProbe {
    #[diesel(sql_type = Text)]
    journal_mode: String,
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    objects: i64,
}

/// The health check's read probe: reads the schema (so the file is really read, under a
/// read lock) and returns the journal mode in force.
fn read_probe(conn: &mut SqliteConnection) -> QueryResult<String> {
    diesel::sql_query(
        "SELECT (SELECT journal_mode FROM pragma_journal_mode()) AS journal_mode, \
         (SELECT count(*) FROM sqlite_schema) AS objects",
    )
    .get_result::<ReadProbe>(conn)
    .map(|probe| probe.journal_mode)
}

/// Duration thresholds as seconds, the unit of the latency checks (both engines).
pub(crate) fn seconds_limits(limits: &Limits<Duration>) -> Limits<f64> {
    limits.map(Duration::as_secs_f64)
}

/// The last health report of a database, kept for the metrics.
#[derive(Debug, Default)]
pub(crate) struct LastHealth(parking_lot::Mutex<Option<HealthReport>>);

/// A latency check from a timed probe: `elapsed` graded against `limits` when the probe
/// succeeded, unhealthy with its error when it failed. Both engines' read and write checks.
pub(crate) fn latency_check(
    name: &'static str,
    limits: Limits<f64>,
    what: &str,
    elapsed: Duration,
    outcome: &crate::error::Result<()>,
) -> HealthCheck {
    match outcome {
        Ok(()) => HealthCheck::against_limits(name, elapsed.as_secs_f64(), "seconds", limits, what),
        Err(error) => HealthCheck::failed(name, "seconds", Threshold::Limits(limits), error),
    }
}

/// The busiest pool's utilization, with every pool in the detail, from statistics taken
/// before any probe (so the probes' own checkouts are not counted). Both engines.
pub(crate) fn pool_utilization_check(stats: &ConnectionStats, limits: Limits<f64>) -> HealthCheck {
    let busiest = stats
        .pools
        .iter()
        .map(|p| p.pool_utilization)
        .fold(0.0, f64::max);
    let detail = stats
        .pools
        .iter()
        .map(|p| format!("{} {}/{} active", p.pool, p.active, p.max_size))
        .collect::<Vec<_>>()
        .join(", ");
    HealthCheck::against_limits("pool_utilization", busiest, "percent", limits, detail)
}

/// What the read probe measures, on either engine.
pub(crate) const READ_PROBE: &str = "read transaction on the read pool, checkout included";

impl Database {
    /// The read round trip and, from the same transaction, the journal mode.
    fn read_probe(&self, limits: &Limits<Duration>) -> (HealthCheck, HealthCheck) {
        let expected_mode = if self.path().is_none() {
            "memory"
        } else if self.config().enable_wal() {
            "wal"
        } else {
            "delete"
        };
        let journal_threshold = Threshold::Expected {
            expected: expected_mode.to_owned(),
        };
        let started = Instant::now();
        let probe = self.read(|conn| Ok(read_probe(conn)?));
        let elapsed = started.elapsed();
        match probe {
            Ok(journal_mode) => {
                let ok = journal_mode.eq_ignore_ascii_case(expected_mode);
                let journal = HealthCheck {
                    name: "journal_mode",
                    // Still serving, but readers and writers now block each other.
                    status: if ok {
                        HealthStatus::Healthy
                    } else {
                        HealthStatus::Degraded
                    },
                    detail: if ok {
                        "as configured".to_owned()
                    } else {
                        format!(
                            "journal_mode is {} but litedal configured {expected_mode}; \
                             another program changed it",
                            journal_mode
                        )
                    },
                    value: Some(Measured::Text(journal_mode)),
                    unit: "",
                    threshold: journal_threshold,
                };
                let read = latency_check(
                    "read_latency",
                    seconds_limits(limits),
                    READ_PROBE,
                    elapsed,
                    &Ok(()),
                );
                (read, journal)
            }
            Err(error) => {
                let journal = HealthCheck::failed("journal_mode", "", journal_threshold, &error);
                let read = latency_check(
                    "read_latency",
                    seconds_limits(limits),
                    READ_PROBE,
                    elapsed,
                    &Err(error),
                );
                (read, journal)
            }
        }
    }
}

impl Database {
    /// Runs the health checks (see the [module documentation](crate::health) for the list
    /// and their defaults) and grades them against the configured
    /// [`HealthThresholds`].
    ///
    /// The probes are real work: a read transaction and an empty immediate write transaction,
    /// which show up in [`connection_stats`](Database::connection_stats) like any other. A
    /// probe that fails makes its check unhealthy instead of returning an error, so this
    /// never fails; the write probe can wait up to the busy timeout when another writer holds
    /// the lock.
    ///
    /// ```
    /// let test_db = litedal::example::test_db()?;
    /// let report = test_db.db().health();
    /// assert!(report.check("read_latency").is_some());
    /// assert_eq!(report.check("journal_mode").map(|c| c.status), Some(litedal::HealthStatus::Healthy));
    /// # Ok::<(), litedal::Error>(())
    /// ```
    pub fn health(&self) -> HealthReport {
        let report = self.run_health_checks();
        if let Some(last) = self.extension::<LastHealth>() {
            *last.0.lock() = Some(report.clone());
        }
        report
    }

    /// The report of the last [`Database::health`] call, if there was one (the metrics show
    /// its checks as `litedal_health_status`).
    pub fn last_health(&self) -> Option<HealthReport> {
        self.extension::<LastHealth>()
            .and_then(|last| last.0.lock().clone())
    }

    fn run_health_checks(&self) -> HealthReport {
        let thresholds = self.config().health_thresholds();

        // Measured first, so that the probes' own checkouts are not counted.
        let stats = self.connection_stats();
        let pool_check = pool_utilization_check(&stats, thresholds.pool_utilization);

        let (read_check, journal_check) = self.read_probe(&thresholds.read_latency);

        let started = Instant::now();
        // BEGIN IMMEDIATE takes the write lock (after the in-process write gate) and COMMIT
        // releases it; nothing is written.
        let probe = self.transaction(|_| Ok(()));
        let elapsed = started.elapsed();
        let write_limits = seconds_limits(&thresholds.write_latency);
        let write_check = match probe {
            Err(Error::Busy) => HealthCheck {
                name: "write_latency",
                status: HealthStatus::Unhealthy,
                value: None,
                unit: "seconds",
                threshold: Threshold::Limits(write_limits),
                detail: format!(
                    "the write lock is held by another connection or process: not acquired \
                     within the busy timeout ({} ms); reads still work",
                    self.config().busy_timeout().as_millis()
                ),
            },
            outcome => latency_check(
                "write_latency",
                write_limits,
                "empty immediate transaction on the write pool, gate and checkout included",
                elapsed,
                &outcome,
            ),
        };

        let mut checks = vec![read_check, write_check, pool_check];
        if let Some(files) = &stats.files {
            #[allow(clippy::cast_precision_loss)]
            let limits = thresholds.wal_size.map(|&bytes| bytes as f64);
            #[allow(clippy::cast_precision_loss)]
            checks.push(HealthCheck::against_limits(
                "wal_size",
                files.wal_bytes as f64,
                "bytes",
                limits,
                format!("{} bytes in the -wal file", files.wal_bytes),
            ));
        }
        checks.push(journal_check);
        if let Some(since_open) = self.checkpointer_running() {
            let (age, detail) = match self.last_checkpoint() {
                Some(report) => (report.age(), format!("last checkpoint: {report}")),
                None => (since_open, "no checkpoint yet; time since open".to_owned()),
            };
            checks.push(HealthCheck::against_limits(
                "checkpoint_age",
                age.as_secs_f64(),
                "seconds",
                seconds_limits(&thresholds.checkpoint_age),
                detail,
            ));
        }
        HealthReport::from_checks(checks)
    }
}
