//! Prometheus metrics of a [`Database`] (and, with the `postgres` feature, of a
//! `PgDatabase`), and the `/metrics` + `/health` HTTP endpoint.
//!
//! The figures of [`Database::connection_stats`] are exported under stable `litedal_` names,
//! rendered by the [`prometheus`] crate in the text exposition format (0.0.4). Pool and
//! statement metrics carry a `pool` label (`read`, `write`, or `shared` when one pool serves
//! both roles); there is no `total` series, since Prometheus adds pools up itself
//! (`sum without (pool) (...)`). `*_max_seconds` gauges are high-water marks since the
//! database was opened.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `litedal_pool_max_connections` | gauge | pool |
//! | `litedal_pool_open_connections` | gauge | pool |
//! | `litedal_pool_idle_connections` | gauge | pool |
//! | `litedal_pool_active_connections` | gauge | pool |
//! | `litedal_pool_utilization_percent` | gauge | pool |
//! | `litedal_pool_checkouts_total` | counter | pool |
//! | `litedal_pool_checkout_wait_seconds_total` | counter | pool |
//! | `litedal_pool_checkout_wait_max_seconds` | gauge | pool |
//! | `litedal_pool_checkout_timeouts_total` | counter | pool |
//! | `litedal_pool_connections_opened_total` | counter | pool |
//! | `litedal_pool_connections_closed_total` | counter | pool |
//! | `litedal_pool_connection_held_seconds_total` | counter | pool |
//! | `litedal_pool_connection_held_max_seconds` | gauge | pool |
//! | `litedal_queries_total` | counter | pool |
//! | `litedal_query_errors_total` | counter | pool |
//! | `litedal_query_busy_errors_total` | counter | pool |
//! | `litedal_slow_queries_total` | counter | pool |
//! | `litedal_query_duration_seconds_total` | counter | pool |
//! | `litedal_query_duration_max_seconds` | gauge | pool |
//! | `litedal_query_duration_seconds` | histogram (25 us to 10 s) | pool |
//! | `litedal_cache_hits_total`, `litedal_cache_misses_total` | counter | pool |
//! | `litedal_cache_writes_total`, `litedal_cache_spills_total` | counter | pool |
//! | `litedal_cache_used_bytes` | gauge | pool |
//! | `litedal_cache_hit_ratio` | gauge (0 to 1; absent before any lookup) | pool |
//! | `litedal_sqlite_memory_used_bytes`, `litedal_sqlite_memory_high_water_bytes` | gauge | |
//! | `litedal_checkpoints_total` | counter | mode, outcome (`complete`, `partial`, `busy`, `failed`) |
//! | `litedal_checkpoint_frames_total` | counter | |
//! | `litedal_checkpoint_last_duration_seconds` | gauge (after the first checkpoint) | |
//! | `litedal_checkpoint_last_success_age_seconds` | gauge (after the first success) | |
//! | `litedal_health_status` | gauge: 0 healthy, 1 degraded, 2 unhealthy, from the last [`Database::health`] (absent before the first) | check |
//! | `litedal_transactions_total` | counter | role (`read`, `write`), outcome (`committed`, `rolled_back`, `left_open`) |
//! | `litedal_database_size_bytes` | gauge | |
//! | `litedal_wal_size_bytes` | gauge | |
//! | `litedal_page_size_bytes` | gauge | |
//! | `litedal_database_pages` | gauge | |
//! | `litedal_freelist_pages` | gauge | |
//! | `litedal_instrumentation_enabled` | gauge | |
//! | `litedal_replica_lag_seconds` | gauge (PostgreSQL with `DATABASE_READ_URL`; NaN before the first measurement) | |
//! | `litedal_replica_reads_on_primary` | gauge: 1 while reads use the primary because the standby is down or lags | |
//! | `litedal_info` | gauge (always 1) | engine (`sqlite`, `postgres`), journal_mode (empty on PostgreSQL), version |
//!
//! On PostgreSQL the pool, statement, transaction, health and info families mean the same;
//! SQLite's page-cache, memory, checkpoint and file families are absent (not zeros), and
//! `busy_errors` counts lock and statement timeouts. File metrics are left out for an
//! in-memory database. The page-cache figures are sampled by
//! each connection every few dozen statements, so they lag slightly; see
//! [`CacheStats`](crate::CacheStats) for what they mean with `mmap_size` above 0.

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Histogram, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    CounterVec, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

pub use prometheus;

use std::time::Duration;

use super::health::HealthReport;
use super::stats::{ConnectionStats, DURATION_BUCKETS, PoolStats, TransactionCounts};
use crate::database::Database;
use crate::error::{Error, Result};
use crate::upkeep::CheckpointStats;

/// The `Content-Type` of [`Database::render_metrics`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn metrics_error(error: prometheus::Error) -> Error {
    Error::Metrics(error.to_string())
}

fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The metric families, freshly made for one collection (values are set from one snapshot,
/// so two concurrent scrapes never mix their values).
struct Families {
    pool_max: IntGaugeVec,
    pool_open: IntGaugeVec,
    pool_idle: IntGaugeVec,
    pool_active: IntGaugeVec,
    pool_utilization: GaugeVec,
    checkouts: IntCounterVec,
    checkout_wait: CounterVec,
    checkout_wait_max: GaugeVec,
    checkout_timeouts: IntCounterVec,
    opened: IntCounterVec,
    closed: IntCounterVec,
    held: CounterVec,
    held_max: GaugeVec,
    queries: IntCounterVec,
    query_errors: IntCounterVec,
    busy_errors: IntCounterVec,
    slow_queries: IntCounterVec,
    query_duration: CounterVec,
    query_duration_max: GaugeVec,
    transactions: IntCounterVec,
    database_size: IntGauge,
    wal_size: IntGauge,
    page_size: IntGauge,
    page_count: IntGauge,
    freelist_count: IntGauge,
    instrumented: IntGauge,
    info: IntGaugeVec,
    cache_hits: IntCounterVec,
    cache_misses: IntCounterVec,
    cache_writes: IntCounterVec,
    cache_spills: IntCounterVec,
    cache_used: IntGaugeVec,
    cache_hit_ratio: GaugeVec,
    memory_used: IntGauge,
    memory_high_water: IntGauge,
    checkpoints: IntCounterVec,
    checkpoint_frames: IntCounter,
    checkpoint_last_duration: Gauge,
    checkpoint_success_age: Gauge,
    health_status: IntGaugeVec,
    replica_lag: Gauge,
    replica_reads_on_primary: IntGauge,
}

/// What the families of one engine's database are filled from, beside its
/// [`ConnectionStats`].
pub(crate) struct EngineFacts {
    /// `sqlite` or `postgres`: the `engine` label of `litedal_info`.
    pub(crate) engine: &'static str,
    /// SQLite's journal mode (empty on PostgreSQL).
    pub(crate) journal_mode: String,
    /// SQLite's checkpoints (none on PostgreSQL).
    pub(crate) checkpoints: Option<CheckpointStats>,
    /// The last health report, if a health check ran.
    pub(crate) last_health: Option<HealthReport>,
    /// With `DATABASE_READ_URL`: the standby's lag as last measured (`None` before the first
    /// measurement), and whether reads use the primary now.
    pub(crate) replica: Option<(Option<Duration>, bool)>,
}

const POOL: &[&str] = &["pool"];

impl Families {
    fn new() -> prometheus::Result<Families> {
        let opts = |name: &str, help: &str| Opts::new(name, help);
        let int_gauge = |name: &str, help: &str| IntGaugeVec::new(opts(name, help), POOL);
        let gauge = |name: &str, help: &str| GaugeVec::new(opts(name, help), POOL);
        let int_counter = |name: &str, help: &str| IntCounterVec::new(opts(name, help), POOL);
        let counter = |name: &str, help: &str| CounterVec::new(opts(name, help), POOL);
        Ok(Families {
            pool_max: int_gauge(
                "litedal_pool_max_connections",
                "Size of the connection pool: the most connections it opens.",
            )?,
            pool_open: int_gauge(
                "litedal_pool_open_connections",
                "Connections the pool has open now.",
            )?,
            pool_idle: int_gauge(
                "litedal_pool_idle_connections",
                "Open connections waiting in the pool.",
            )?,
            pool_active: int_gauge(
                "litedal_pool_active_connections",
                "Connections checked out of the pool now.",
            )?,
            pool_utilization: gauge(
                "litedal_pool_utilization_percent",
                "Active connections as a percentage of the pool size.",
            )?,
            checkouts: int_counter(
                "litedal_pool_checkouts_total",
                "Successful connection checkouts.",
            )?,
            checkout_wait: counter(
                "litedal_pool_checkout_wait_seconds_total",
                "Time successful checkouts waited for a free connection.",
            )?,
            checkout_wait_max: gauge(
                "litedal_pool_checkout_wait_max_seconds",
                "Longest wait of a successful checkout since the database was opened.",
            )?,
            checkout_timeouts: int_counter(
                "litedal_pool_checkout_timeouts_total",
                "Checkouts that gave up after DB_POOL_TIMEOUT.",
            )?,
            opened: int_counter(
                "litedal_pool_connections_opened_total",
                "Connections the pool opened.",
            )?,
            closed: int_counter(
                "litedal_pool_connections_closed_total",
                "Connections the pool closed.",
            )?,
            held: counter(
                "litedal_pool_connection_held_seconds_total",
                "Time connections spent checked out, counted when they were returned.",
            )?,
            held_max: gauge(
                "litedal_pool_connection_held_max_seconds",
                "Longest a connection stayed checked out since the database was opened.",
            )?,
            queries: int_counter(
                "litedal_queries_total",
                "SQL statements run on the pool's connections, BEGIN and COMMIT included.",
            )?,
            query_errors: int_counter("litedal_query_errors_total", "SQL statements that failed.")?,
            busy_errors: int_counter(
                "litedal_query_busy_errors_total",
                "SQL statements that failed with SQLITE_BUSY (database is locked).",
            )?,
            slow_queries: int_counter(
                "litedal_slow_queries_total",
                "SQL statements slower than DB_SLOW_QUERY_MS (each logged at WARN).",
            )?,
            query_duration: counter(
                "litedal_query_duration_seconds_total",
                "Time spent in SQL statements, from prepare to the last row read.",
            )?,
            query_duration_max: gauge(
                "litedal_query_duration_max_seconds",
                "Slowest SQL statement since the database was opened.",
            )?,
            transactions: IntCounterVec::new(
                opts(
                    "litedal_transactions_total",
                    "Transactions that began, by role and by how they ended.",
                ),
                &["role", "outcome"],
            )?,
            database_size: IntGauge::new(
                "litedal_database_size_bytes",
                "Size of the database file.",
            )?,
            wal_size: IntGauge::new(
                "litedal_wal_size_bytes",
                "Size of the -wal file (0 when there is none).",
            )?,
            page_size: IntGauge::new("litedal_page_size_bytes", "PRAGMA page_size.")?,
            page_count: IntGauge::new(
                "litedal_database_pages",
                "PRAGMA page_count: pages in the database, including those only in the WAL.",
            )?,
            freelist_count: IntGauge::new(
                "litedal_freelist_pages",
                "PRAGMA freelist_count: unused pages that VACUUM would release.",
            )?,
            instrumented: IntGauge::new(
                "litedal_instrumentation_enabled",
                "1 when checkouts and statements are counted; 0 leaves those counters at zero.",
            )?,
            info: IntGaugeVec::new(
                opts(
                    "litedal_info",
                    "Always 1; the labels tell the engine, SQLite's journal mode and the litedal version.",
                ),
                &["engine", "journal_mode", "version"],
            )?,
            cache_hits: int_counter(
                "litedal_cache_hits_total",
                "Pages found in the page cache (pages read through mmap are not counted).",
            )?,
            cache_misses: int_counter(
                "litedal_cache_misses_total",
                "Pages read from the file because they were not in the page cache.",
            )?,
            cache_writes: int_counter(
                "litedal_cache_writes_total",
                "Pages written to the database or WAL file.",
            )?,
            cache_spills: int_counter(
                "litedal_cache_spills_total",
                "Dirty pages written before the commit because a transaction outgrew the cache.",
            )?,
            cache_used: int_gauge(
                "litedal_cache_used_bytes",
                "Memory the pool's page caches use now.",
            )?,
            cache_hit_ratio: gauge(
                "litedal_cache_hit_ratio",
                "Page-cache hits over hits and misses since the database opened (0 to 1).",
            )?,
            memory_used: IntGauge::new(
                "litedal_sqlite_memory_used_bytes",
                "Memory SQLite has allocated in this process now.",
            )?,
            memory_high_water: IntGauge::new(
                "litedal_sqlite_memory_high_water_bytes",
                "The most memory SQLite had allocated at once in this process.",
            )?,
            checkpoints: IntCounterVec::new(
                opts(
                    "litedal_checkpoints_total",
                    "WAL checkpoints (on demand and in the background), by mode and outcome.",
                ),
                &["mode", "outcome"],
            )?,
            checkpoint_frames: IntCounter::new(
                "litedal_checkpoint_frames_total",
                "WAL frames copied into the database file, as SQLite reported them.",
            )?,
            checkpoint_last_duration: Gauge::new(
                "litedal_checkpoint_last_duration_seconds",
                "How long the last checkpoint took.",
            )?,
            checkpoint_success_age: Gauge::new(
                "litedal_checkpoint_last_success_age_seconds",
                "Time since the last checkpoint that was not blocked by readers or writers.",
            )?,
            health_status: IntGaugeVec::new(
                opts(
                    "litedal_health_status",
                    "Each health check's status at the last health check: 0 healthy, 1 degraded, 2 unhealthy.",
                ),
                &["check"],
            )?,
            replica_lag: Gauge::new(
                "litedal_replica_lag_seconds",
                "Replay lag of the standby (DATABASE_READ_URL) as last measured.",
            )?,
            replica_reads_on_primary: IntGauge::new(
                "litedal_replica_reads_on_primary",
                "1 while reads use the primary because the standby is down or lags.",
            )?,
        })
    }

    fn pool_collectors(&self) -> [&dyn Collector; 19] {
        [
            &self.pool_max,
            &self.pool_open,
            &self.pool_idle,
            &self.pool_active,
            &self.pool_utilization,
            &self.checkouts,
            &self.checkout_wait,
            &self.checkout_wait_max,
            &self.checkout_timeouts,
            &self.opened,
            &self.closed,
            &self.held,
            &self.held_max,
            &self.queries,
            &self.query_errors,
            &self.busy_errors,
            &self.slow_queries,
            &self.query_duration,
            &self.query_duration_max,
        ]
    }

    fn other_collectors(&self) -> [&dyn Collector; 3] {
        [&self.transactions, &self.instrumented, &self.info]
    }

    /// SQLite's page caches (the hit ratio is optional, below).
    fn cache_collectors(&self) -> [&dyn Collector; 5] {
        [
            &self.cache_hits,
            &self.cache_misses,
            &self.cache_writes,
            &self.cache_spills,
            &self.cache_used,
        ]
    }

    /// SQLite's memory and checkpoints.
    fn sqlite_collectors(&self) -> [&dyn Collector; 3] {
        [
            &self.memory_used,
            &self.memory_high_water,
            &self.checkpoints,
        ]
    }

    /// Families present only when there is something to report.
    fn optional_collectors(&self) -> [&dyn Collector; 7] {
        [
            &self.cache_hit_ratio,
            &self.checkpoint_frames,
            &self.checkpoint_last_duration,
            &self.checkpoint_success_age,
            &self.health_status,
            &self.replica_lag,
            &self.replica_reads_on_primary,
        ]
    }

    fn file_collectors(&self) -> [&dyn Collector; 5] {
        [
            &self.database_size,
            &self.wal_size,
            &self.page_size,
            &self.page_count,
            &self.freelist_count,
        ]
    }

    fn descs(&self) -> Vec<&Desc> {
        self.pool_collectors()
            .into_iter()
            .chain(self.other_collectors())
            .chain(self.cache_collectors())
            .chain(self.sqlite_collectors())
            .chain(self.optional_collectors())
            .chain(self.file_collectors())
            .flat_map(Collector::desc)
            .collect()
    }

    fn set_pool(&self, p: &PoolStats) {
        let l = &[p.pool.as_str()];
        self.pool_max
            .with_label_values(l)
            .set(i64::from(p.max_size));
        self.pool_open.with_label_values(l).set(i64::from(p.open));
        self.pool_idle.with_label_values(l).set(i64::from(p.idle));
        self.pool_active
            .with_label_values(l)
            .set(i64::from(p.active));
        self.pool_utilization
            .with_label_values(l)
            .set(p.pool_utilization);
        self.checkouts.with_label_values(l).inc_by(p.checkouts);
        self.checkout_wait
            .with_label_values(l)
            .inc_by(p.checkout_wait_total.as_secs_f64());
        self.checkout_wait_max
            .with_label_values(l)
            .set(p.checkout_wait_max.as_secs_f64());
        self.checkout_timeouts
            .with_label_values(l)
            .inc_by(p.checkout_timeouts);
        self.opened
            .with_label_values(l)
            .inc_by(p.connections_opened);
        self.closed
            .with_label_values(l)
            .inc_by(p.connections_closed);
        self.held
            .with_label_values(l)
            .inc_by(p.held_total.as_secs_f64());
        self.held_max
            .with_label_values(l)
            .set(p.held_max.as_secs_f64());
        let q = &p.queries;
        self.queries.with_label_values(l).inc_by(q.queries);
        self.query_errors.with_label_values(l).inc_by(q.errors);
        self.busy_errors.with_label_values(l).inc_by(q.busy_errors);
        self.slow_queries
            .with_label_values(l)
            .inc_by(q.slow_queries);
        self.query_duration
            .with_label_values(l)
            .inc_by(q.duration_total.as_secs_f64());
        self.query_duration_max
            .with_label_values(l)
            .set(q.duration_max.as_secs_f64());
        if let Some(c) = &p.cache {
            self.cache_hits.with_label_values(l).inc_by(c.hits);
            self.cache_misses.with_label_values(l).inc_by(c.misses);
            self.cache_writes.with_label_values(l).inc_by(c.writes);
            self.cache_spills.with_label_values(l).inc_by(c.spills);
            self.cache_used
                .with_label_values(l)
                .set(clamp_i64(c.used_bytes));
            if let Some(ratio) = c.hit_ratio {
                self.cache_hit_ratio.with_label_values(l).set(ratio);
            }
        }
    }

    fn set_transactions(&self, role: &str, counts: TransactionCounts) {
        self.transactions
            .with_label_values(&[role, "committed"])
            .inc_by(counts.committed);
        self.transactions
            .with_label_values(&[role, "rolled_back"])
            .inc_by(counts.rolled_back);
        self.transactions
            .with_label_values(&[role, "left_open"])
            .inc_by(counts.left_open);
    }

    /// Sets every value from `stats` and `facts` and returns the families: SQLite's page
    /// cache, memory, checkpoint and file families only where the engine has them (no file
    /// metrics for an in-memory database, no page figures that could not be read), the
    /// replica families only with a standby.
    fn collect(&self, stats: &ConnectionStats, facts: &EngineFacts) -> Vec<MetricFamily> {
        for pool in &stats.pools {
            self.set_pool(pool);
        }
        let mut collectors: Vec<&dyn Collector> = self
            .pool_collectors()
            .into_iter()
            .chain(self.other_collectors())
            .collect();
        if let Some(memory) = &stats.memory {
            self.memory_used.set(clamp_i64(memory.used_bytes));
            self.memory_high_water
                .set(clamp_i64(memory.high_water_bytes));
            collectors.extend([&self.memory_used as &dyn Collector, &self.memory_high_water]);
        }
        if stats.pools.iter().any(|p| p.cache.is_some()) {
            collectors.extend(self.cache_collectors());
        }
        if stats
            .pools
            .iter()
            .any(|p| p.cache.is_some_and(|c| c.hit_ratio.is_some()))
        {
            collectors.push(&self.cache_hit_ratio);
        }
        if let Some(checkpoints) = &facts.checkpoints {
            for (mode, outcome, n) in &checkpoints.runs {
                self.checkpoints
                    .with_label_values(&[mode.as_sql(), outcome.as_str()])
                    .inc_by(*n);
            }
            collectors.push(&self.checkpoints);
            if let Some(last) = checkpoints.last_duration {
                self.checkpoint_frames
                    .inc_by(checkpoints.frames_checkpointed);
                self.checkpoint_last_duration.set(last.as_secs_f64());
                collectors.extend([
                    &self.checkpoint_frames as &dyn Collector,
                    &self.checkpoint_last_duration,
                ]);
            }
            if let Some(age) = checkpoints.since_last_success {
                self.checkpoint_success_age.set(age.as_secs_f64());
                collectors.push(&self.checkpoint_success_age);
            }
        }
        if let Some(report) = &facts.last_health {
            for check in &report.checks {
                self.health_status
                    .with_label_values(&[check.name])
                    .set(i64::from(check.status.exit_code()));
            }
            collectors.push(&self.health_status);
        }
        if let Some((lag, reads_on_primary)) = facts.replica {
            // NaN until the first measurement: "unknown", not "no lag".
            self.replica_lag
                .set(lag.map_or(f64::NAN, |lag| lag.as_secs_f64()));
            self.replica_reads_on_primary
                .set(i64::from(reads_on_primary));
            collectors.extend([
                &self.replica_lag as &dyn Collector,
                &self.replica_reads_on_primary,
            ]);
        }
        self.set_transactions("read", stats.transactions.read);
        self.set_transactions("write", stats.transactions.write);
        self.instrumented.set(i64::from(stats.instrumented));
        self.info
            .with_label_values(&[facts.engine, &facts.journal_mode, env!("CARGO_PKG_VERSION")])
            .set(1);
        if let Some(files) = &stats.files {
            self.database_size.set(clamp_i64(files.database_bytes));
            self.wal_size.set(clamp_i64(files.wal_bytes));
            collectors.extend([&self.database_size as &dyn Collector, &self.wal_size]);
            for (value, gauge) in [
                (files.page_size, &self.page_size),
                (files.page_count, &self.page_count),
                (files.freelist_count, &self.freelist_count),
            ] {
                if let Some(value) = value {
                    gauge.set(clamp_i64(value));
                    collectors.push(gauge);
                }
            }
        }
        let mut families: Vec<MetricFamily> = collectors
            .into_iter()
            .flat_map(Collector::collect)
            .collect();
        families.push(duration_histogram(&stats.pools));
        families
    }
}

/// The families of one database, from its statistics and the engine's facts, in the
/// Prometheus text format: what both engines' `render_metrics` return.
pub(crate) fn render(stats: &ConnectionStats, facts: &EngineFacts) -> Result<String> {
    let mut families = Families::new()
        .map_err(metrics_error)?
        .collect(stats, facts);
    // As `Registry::gather` does: a family with no series yet (no checkpoint ran) is left
    // out, and the families come sorted by name.
    families.retain(|family| !family.get_metric().is_empty());
    families.sort_by(|a, b| a.name().cmp(b.name()));
    prometheus::TextEncoder::new()
        .encode_to_string(&families)
        .map_err(metrics_error)
}

/// `litedal_query_duration_seconds`, built from the counted buckets (the prometheus crate's
/// own histograms only count values observed through them).
fn duration_histogram(pools: &[PoolStats]) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name("litedal_query_duration_seconds".to_owned());
    family.set_help(
        "How long SQL statements took, from prepare to the last row read, BEGIN and COMMIT included."
            .to_owned(),
    );
    family.set_field_type(MetricType::HISTOGRAM);
    let metrics = pools
        .iter()
        .map(|p| {
            let mut label = LabelPair::default();
            label.set_name("pool".to_owned());
            label.set_value(p.pool.as_str().to_owned());
            let buckets = DURATION_BUCKETS
                .iter()
                .zip(&p.queries.duration_buckets)
                .map(|(&bound, &count)| {
                    let mut bucket = Bucket::default();
                    bucket.set_upper_bound(bound);
                    bucket.set_cumulative_count(count);
                    bucket
                })
                .collect();
            let mut histogram = Histogram::default();
            histogram.set_bucket(buckets);
            histogram.set_sample_count(p.queries.queries);
            histogram.set_sample_sum(p.queries.duration_total.as_secs_f64());
            let mut metric = Metric::default();
            metric.set_label(vec![label]);
            metric.set_histogram(histogram);
            metric
        })
        .collect();
    family.set_metric(metrics);
    family
}

/// A Prometheus [`Collector`] of one database's statistics, for applications that already
/// export a [`prometheus::Registry`]: register it there and the `litedal_` metrics appear
/// in the application's own `/metrics`.
///
/// ```
/// use litedal::metrics::{DatabaseCollector, prometheus};
///
/// let test_db = litedal::example::test_db()?;
/// let registry = prometheus::Registry::new();
/// registry
///     .register(Box::new(DatabaseCollector::new(test_db.db().clone())?))
///     .expect("litedal's metric names are unique");
/// let families = registry.gather();
/// assert!(families.iter().any(|f| f.name() == "litedal_pool_checkouts_total"));
/// # Ok::<(), litedal::Error>(())
/// ```
pub struct DatabaseCollector {
    db: Database,
    /// Only for `desc()`: the descriptions of every family this collector can return.
    template: Families,
}

impl std::fmt::Debug for DatabaseCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseCollector")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl DatabaseCollector {
    /// A collector of `db`'s statistics (it keeps this clone of the database open).
    ///
    /// # Errors
    ///
    /// [`Error::Metrics`] if the metric descriptions are rejected by the prometheus crate
    /// (not expected: the names are fixed).
    pub fn new(db: Database) -> Result<DatabaseCollector> {
        Ok(DatabaseCollector {
            db,
            template: Families::new().map_err(metrics_error)?,
        })
    }
}

impl Collector for DatabaseCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.template.descs()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        match Families::new() {
            Ok(families) => families.collect(&self.db.connection_stats(), &self.db.engine_facts()),
            Err(error) => {
                tracing::error!(%error, "Database metrics could not be collected");
                Vec::new()
            }
        }
    }
}

impl Database {
    /// The database's metrics in the Prometheus text exposition format (0.0.4; serve it with
    /// [`CONTENT_TYPE`]). The metric names are listed in the [module documentation](crate::metrics).
    ///
    /// # Errors
    ///
    /// [`Error::Metrics`] when the prometheus crate refuses to encode them (not expected).
    ///
    /// ```
    /// let test_db = litedal::example::test_db()?;
    /// let text = test_db.db().render_metrics()?;
    /// assert!(text.contains("# TYPE litedal_queries_total counter"));
    /// # Ok::<(), litedal::Error>(())
    /// ```
    pub fn render_metrics(&self) -> Result<String> {
        render(&self.connection_stats(), &self.engine_facts())
    }

    /// What the metrics of a SQLite database carry beside its statistics.
    fn engine_facts(&self) -> EngineFacts {
        EngineFacts {
            engine: "sqlite",
            journal_mode: self.journal_mode().to_owned(),
            checkpoints: Some(self.checkpoint_stats()),
            last_health: self.last_health(),
            replica: None,
        }
    }
}
