//! The collectors behind [`Database::connection_stats`]: counters the pools and connections
//! write to on the hot path, and the snapshot taken from them.
//!
//! - an r2d2 [`HandleEvent`](r2d2::HandleEvent) handler per pool counts checkouts, checkout
//!   waits, timeouts, opened and closed connections and how long connections were held, in
//!   relaxed atomics split into per-thread slices;
//! - a diesel [`Instrumentation`] per pooled connection times each statement and counts
//!   errors, busy errors and slow statements (logged at WARN with their SQL, never their bind
//!   values);
//! - [`Metrics`] is the database's [`Observer`]: it hands the core those collectors and counts
//!   transactions.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::sqlite::SqliteConnection;
use parking_lot::Mutex;
use r2d2::event::{AcquireEvent, CheckinEvent, CheckoutEvent, ReleaseEvent, TimeoutEvent};

use super::sql_text::sql_without_binds;
use super::stats::{
    CacheStats, ConnectionStats, DURATION_BUCKETS, FileStats, MemoryStats, PoolName, PoolStats,
    QueryStats, TransactionCounts, TransactionStats, percent, total,
};
use crate::database::{
    CacheCounters, Database, LeaseObserver, Observer, ObserverFactory, PoolObserver, Tick,
    calibrate_clock, is_polling_write_lock, memory_used,
};
use crate::error::{Result, is_busy_error};
use crate::pragmas::Role;

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// `fetch_max`, skipped when the value is not a new maximum (the common case), so that the
/// cache line is only written when something changes.
fn record_max(max: &AtomicU64, value: u64) {
    if value > max.load(Relaxed) {
        max.fetch_max(value, Relaxed);
    }
}

/// How many slices the hot counters of a pool are split into. Each thread writes to one
/// slice (chosen once per thread), so threads on different cores do not fight over one cache
/// line on every checkout and statement; a snapshot adds the slices up.
const SHARDS: usize = 16;

/// The counters written on every checkout, check-in and statement, for the threads of one
/// slice. Aligned to 128 bytes (two cache lines, for adjacent-line prefetching) so slices
/// never share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    checkouts: AtomicU64,
    checkout_wait_ns: AtomicU64,
    checkout_wait_max_ns: AtomicU64,
    held_ns: AtomicU64,
    held_max_ns: AtomicU64,
    queries: AtomicU64,
    errors: AtomicU64,
    busy_errors: AtomicU64,
    slow: AtomicU64,
    duration_ns: AtomicU64,
    duration_max_ns: AtomicU64,
    /// Statements per duration bucket (not cumulative; the snapshot adds them up).
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len()],
}

/// [`DURATION_BUCKETS`] in nanoseconds, for the hot path.
const BUCKET_NS: [u64; DURATION_BUCKETS.len()] = [
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// This thread's slice, assigned round-robin when the thread first counts something.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed) % SHARDS;
    }
    INDEX.with(|index| *index)
}

/// Everything counted for one pool.
#[derive(Debug)]
pub(crate) struct PoolMetrics {
    name: PoolName,
    shards: Box<[Shard; SHARDS]>,
    /// The page caches of the pool's connections (the connections add to them).
    cache: Arc<CacheCounters>,
    // Rare events, not worth a slice each.
    checkout_timeouts: AtomicU64,
    opened: AtomicU64,
    closed: AtomicU64,
}

impl PoolMetrics {
    fn new(name: PoolName) -> PoolMetrics {
        PoolMetrics {
            name,
            shards: Box::default(),
            cache: Arc::new(CacheCounters::default()),
            checkout_timeouts: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            closed: AtomicU64::new(0),
        }
    }

    /// The slice this thread writes to.
    fn shard(&self) -> &Shard {
        // The modulo lets the compiler drop the bounds check: the index is always in range.
        &self.shards[shard_index() % SHARDS]
    }

    /// Counts one finished statement; returns true when it failed with SQLITE_BUSY.
    fn record_query(&self, elapsed: Duration, error: Option<&diesel::result::Error>) -> bool {
        let q = self.shard();
        let ns = nanos(elapsed);
        q.queries.fetch_add(1, Relaxed);
        q.duration_ns.fetch_add(ns, Relaxed);
        record_max(&q.duration_max_ns, ns);
        // Beyond the last bound, only the total count (the +Inf bucket) has it.
        if let Some(bucket) = BUCKET_NS.iter().position(|&bound| ns <= bound) {
            q.duration_buckets[bucket].fetch_add(1, Relaxed);
        }
        match error {
            None => false,
            Some(error) => {
                q.errors.fetch_add(1, Relaxed);
                let busy = is_busy_error(error);
                if busy {
                    q.busy_errors.fetch_add(1, Relaxed);
                }
                busy
            }
        }
    }

    fn record_slow_query(&self) {
        self.shard().slow.fetch_add(1, Relaxed);
    }

    /// The counters, with the pool's state: `open` connections of which `idle` are idle;
    /// the page-cache figures only when `cache` (SQLite).
    fn snapshot(&self, state: PoolState, cache: bool) -> PoolStats {
        let PoolState {
            max_size,
            open,
            idle,
        } = state;
        let sum = |f: fn(&Shard) -> &AtomicU64| -> u64 {
            self.shards
                .iter()
                .map(|s| f(s).load(Relaxed))
                .fold(0, u64::wrapping_add)
        };
        let max = |f: fn(&Shard) -> &AtomicU64| -> u64 {
            self.shards
                .iter()
                .map(|s| f(s).load(Relaxed))
                .max()
                .unwrap_or(0)
        };
        let active = open.saturating_sub(idle);
        PoolStats {
            pool: self.name,
            max_size,
            open,
            idle,
            active,
            pool_utilization: percent(active, max_size),
            checkouts: sum(|s| &s.checkouts),
            checkout_wait_total: Duration::from_nanos(sum(|s| &s.checkout_wait_ns)),
            checkout_wait_max: Duration::from_nanos(max(|s| &s.checkout_wait_max_ns)),
            checkout_timeouts: self.checkout_timeouts.load(Relaxed),
            connections_opened: self.opened.load(Relaxed),
            connections_closed: self.closed.load(Relaxed),
            held_total: Duration::from_nanos(sum(|s| &s.held_ns)),
            held_max: Duration::from_nanos(max(|s| &s.held_max_ns)),
            queries: QueryStats {
                queries: sum(|s| &s.queries),
                errors: sum(|s| &s.errors),
                busy_errors: sum(|s| &s.busy_errors),
                slow_queries: sum(|s| &s.slow),
                duration_total: Duration::from_nanos(sum(|s| &s.duration_ns)),
                duration_max: Duration::from_nanos(max(|s| &s.duration_max_ns)),
                duration_buckets: self.cumulative_buckets(),
            },
            cache: cache.then(|| {
                CacheStats::new(
                    self.cache.hits.load(Relaxed),
                    self.cache.misses.load(Relaxed),
                    self.cache.writes.load(Relaxed),
                    self.cache.spills.load(Relaxed),
                    self.cache.used_bytes.load(Relaxed),
                )
            }),
        }
    }

    /// The duration histogram, cumulative over the buckets, all slices added up.
    fn cumulative_buckets(&self) -> Vec<u64> {
        let mut running = 0u64;
        (0..DURATION_BUCKETS.len())
            .map(|i| {
                running += self
                    .shards
                    .iter()
                    .map(|s| s.duration_buckets[i].load(Relaxed))
                    .fold(0, u64::wrapping_add);
                running
            })
            .collect()
    }
}

#[derive(Debug, Default)]
struct TransactionCounters {
    committed: AtomicU64,
    rolled_back: AtomicU64,
    left_open: AtomicU64,
}

impl TransactionCounters {
    fn snapshot(&self) -> TransactionCounts {
        TransactionCounts {
            committed: self.committed.load(Relaxed),
            rolled_back: self.rolled_back.load(Relaxed),
            left_open: self.left_open.load(Relaxed),
        }
    }
}

/// All counters of one [`Database`].
#[derive(Debug)]
pub(crate) struct Metrics {
    read: Arc<PoolMetrics>,
    /// The same `Arc` as `read` when one pool serves both roles.
    write: Arc<PoolMetrics>,
    separate: bool,
    enabled: bool,
    /// Statements slower than this are logged at WARN and counted.
    slow_query: Option<Duration>,
    read_transactions: TransactionCounters,
    write_transactions: TransactionCounters,
}

impl Metrics {
    /// Counters for a database with one pool or two (`separate`); with `enabled` false only
    /// transactions are counted.
    pub(crate) fn new(separate: bool, enabled: bool, slow_query: Option<Duration>) -> Metrics {
        let (read, write) = if separate {
            (
                Arc::new(PoolMetrics::new(PoolName::Read)),
                Arc::new(PoolMetrics::new(PoolName::Write)),
            )
        } else {
            let shared = Arc::new(PoolMetrics::new(PoolName::Shared));
            (shared.clone(), shared)
        };
        Metrics {
            read,
            write,
            separate,
            enabled,
            slow_query,
            read_transactions: TransactionCounters::default(),
            write_transactions: TransactionCounters::default(),
        }
    }

    /// The counters of the pool that serves `role`.
    pub(crate) fn pool_metrics(&self, role: Role) -> &Arc<PoolMetrics> {
        match role {
            Role::Read => &self.read,
            Role::Write => &self.write,
        }
    }

    /// The r2d2 event handler of `role`'s pool, or `None` when the counters are off.
    pub(crate) fn pool_events(&self, role: Role) -> Option<PoolEventHandler> {
        self.enabled
            .then(|| PoolEventHandler(Arc::clone(self.pool_metrics(role))))
    }

    /// Makes the statement timer of each new connection of `role`'s pool, or `None` when the
    /// counters are off.
    pub(crate) fn statement_timers(&self, role: Role) -> Option<StatementTimers> {
        if !self.enabled {
            return None;
        }
        let pool = Arc::clone(self.pool_metrics(role));
        let slow_query = self.slow_query;
        calibrate_clock();
        Some(Box::new(move || {
            Box::new(QueryInstrumentation {
                metrics: Arc::clone(&pool),
                slow_query,
                started: None,
            })
        }))
    }

    /// A snapshot of every counter, with each pool's state as `state` reports it, and the
    /// engine's file and memory figures.
    pub(crate) fn connection_stats(
        &self,
        state: impl Fn(Role) -> PoolState,
        engine: EngineFigures,
    ) -> ConnectionStats {
        let roles: &[Role] = if self.separate {
            &[Role::Read, Role::Write]
        } else {
            &[Role::Write]
        };
        let pools: Vec<PoolStats> = roles
            .iter()
            .map(|&role| {
                self.pool_metrics(role)
                    .snapshot(state(role), engine.page_cache)
            })
            .collect();
        let total = total(&pools);
        ConnectionStats {
            instrumented: self.enabled,
            pools,
            total,
            transactions: TransactionStats {
                read: self.read_transactions.snapshot(),
                write: self.write_transactions.snapshot(),
            },
            files: engine.files,
            memory: engine.memory,
        }
    }
}

/// A pool's size, open connections and idle connections, as of now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolState {
    pub(crate) max_size: u32,
    pub(crate) open: u32,
    pub(crate) idle: u32,
}

/// What only one engine reports: SQLite's files, memory and page caches.
pub(crate) struct EngineFigures {
    pub(crate) files: Option<FileStats>,
    pub(crate) memory: Option<MemoryStats>,
    /// Whether the pools' page-cache counters mean anything (SQLite).
    pub(crate) page_cache: bool,
}

/// Makes the statement timer of a new connection: the core's observer factory, which the
/// PostgreSQL pools use as well.
pub(crate) type StatementTimers = ObserverFactory;

impl Observer for Metrics {
    /// The collectors of the pool that serves `role` (its r2d2 events and, for each new
    /// connection, a statement timer), or `None` when the counters are off.
    fn pool(&self, role: Role) -> Option<PoolObserver> {
        Some(PoolObserver {
            cache: Arc::clone(&self.pool_metrics(role).cache),
            leases: Some(Box::new(self.pool_events(role)?)),
            events: Box::new(self.pool_events(role)?),
            statements: self.statement_timers(role)?,
        })
    }

    fn transaction_ended(&self, role: Role, committed: bool) {
        self.count_transaction(role, committed);
    }

    fn transaction_left_open(&self, role: Role) {
        let counters = match role {
            Role::Read => &self.read_transactions,
            Role::Write => &self.write_transactions,
        };
        counters.left_open.fetch_add(1, Relaxed);
    }
}

impl Metrics {
    /// Counts a transaction of `role` that ended, committed or rolled back.
    pub(crate) fn count_transaction(&self, role: Role, committed: bool) {
        let counters = match role {
            Role::Read => &self.read_transactions,
            Role::Write => &self.write_transactions,
        };
        let counter = if committed {
            &counters.committed
        } else {
            &counters.rolled_back
        };
        counter.fetch_add(1, Relaxed);
    }
}

/// The r2d2 event handler of one pool: counts checkouts, waits, timeouts, opened and closed
/// connections and held time. r2d2 calls it synchronously, so it only touches atomics.
#[derive(Debug)]
pub(crate) struct PoolEventHandler(pub(crate) Arc<PoolMetrics>);

impl r2d2::HandleEvent for PoolEventHandler {
    fn handle_acquire(&self, _event: AcquireEvent) {
        self.0.opened.fetch_add(1, Relaxed);
    }

    fn handle_release(&self, _event: ReleaseEvent) {
        self.0.closed.fetch_add(1, Relaxed);
    }

    fn handle_checkout(&self, event: CheckoutEvent) {
        let p = self.0.shard();
        let ns = nanos(event.duration());
        p.checkouts.fetch_add(1, Relaxed);
        p.checkout_wait_ns.fetch_add(ns, Relaxed);
        record_max(&p.checkout_wait_max_ns, ns);
    }

    fn handle_timeout(&self, _event: TimeoutEvent) {
        self.0.checkout_timeouts.fetch_add(1, Relaxed);
    }

    fn handle_checkin(&self, event: CheckinEvent) {
        let p = self.0.shard();
        let ns = nanos(event.duration());
        p.held_ns.fetch_add(ns, Relaxed);
        record_max(&p.held_max_ns, ns);
    }
}

impl LeaseObserver for PoolEventHandler {
    fn checked_out(&self) {
        // No wait: the connection was parked or idle.
        self.0.shard().checkouts.fetch_add(1, Relaxed);
    }

    fn returned(&self, held: Duration) {
        let p = self.0.shard();
        let ns = nanos(held);
        p.held_ns.fetch_add(ns, Relaxed);
        record_max(&p.held_max_ns, ns);
    }
}

/// Times each statement of one connection. diesel calls it on the thread that runs the
/// statement, between `StartQuery` and `FinishQuery` (the latter once the last row was read).
struct QueryInstrumentation {
    metrics: Arc<PoolMetrics>,
    slow_query: Option<Duration>,
    started: Option<Tick>,
}

impl Instrumentation for QueryInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => self.started = Some(Tick::now()),
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                let elapsed = self
                    .started
                    .take()
                    .map_or(Duration::ZERO, |started| started.elapsed());
                if error.is_some_and(is_busy_error) && is_polling_write_lock() {
                    return;
                }
                let busy = self.metrics.record_query(elapsed, error);
                if let (true, Some(error)) = (busy, error) {
                    tracing::warn!(
                        pool = %self.metrics.name,
                        sql = %sql_without_binds(query),
                        %error,
                        "Database busy: statement failed waiting for a lock"
                    );
                }
                if self.slow_query.is_some_and(|limit| elapsed > limit) {
                    self.metrics.record_slow_query();
                    tracing::warn!(
                        pool = %self.metrics.name,
                        duration_ms = elapsed.as_secs_f64() * 1e3,
                        failed = error.is_some(),
                        sql = %sql_without_binds(query),
                        "Database slow query"
                    );
                }
            }
            _ => {}
        }
    }
}

/// A connection outside the pools for the PRAGMAs of `connection_stats()`, opened on first
/// use, so that taking statistics does not move the pools' counters.
#[derive(Default)]
pub(crate) struct Monitor(Mutex<Option<SqliteConnection>>);

#[derive(QueryableByName)]
struct PageCounts {
    #[diesel(sql_type = BigInt)]
    page_size: i64,
    #[diesel(sql_type = BigInt)]
    page_count: i64,
    #[diesel(sql_type = BigInt)]
    freelist_count: i64,
}

impl Database {
    /// The counters behind `connection_stats()`, attached at open (empty ones for a database
    /// opened without them).
    pub(crate) fn metrics(&self) -> Arc<Metrics> {
        self.extension::<Metrics>().unwrap_or_else(|| {
            Arc::new(Metrics::new(
                self.config().separate_read_write(),
                false,
                None,
            ))
        })
    }

    /// File sizes and page counts, or `None` in memory. Failures are logged and leave the
    /// figure out rather than failing the statistics.
    pub(crate) fn file_stats(&self) -> Option<FileStats> {
        let path = self.path()?;
        let size = |path: &Path| match std::fs::metadata(path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "Database statistics: file size unreadable");
                0
            }
        };
        let mut files = FileStats {
            database_bytes: size(path),
            wal_bytes: self.wal_path().map_or(0, |wal| size(&wal)),
            ..FileStats::default()
        };
        match self.page_counts() {
            Ok(counts) => {
                let positive = |n: i64| u64::try_from(n).ok();
                files.page_size = positive(counts.page_size);
                files.page_count = positive(counts.page_count);
                files.freelist_count = positive(counts.freelist_count);
            }
            Err(error) => {
                tracing::warn!(%error, "Database statistics: page counts unreadable");
            }
        }
        Some(files)
    }

    /// `page_size`, `page_count` and `freelist_count`, read on the monitoring connection.
    fn page_counts(&self) -> Result<PageCounts> {
        let monitor = self
            .extension::<Monitor>()
            .unwrap_or_else(|| Arc::new(Monitor::default()));
        let mut monitor = monitor.0.lock();
        let conn = match &mut *monitor {
            Some(conn) => conn,
            slot => {
                let mut conn = SqliteConnection::establish(self.uri())?;
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA query_only = ON",
                    self.config().busy_timeout().as_millis()
                ))?;
                slot.insert(conn)
            }
        };
        let result = diesel::sql_query(
            "SELECT p.page_size, c.page_count, f.freelist_count \
             FROM pragma_page_size() AS p, pragma_page_count() AS c, pragma_freelist_count() AS f",
        )
        .get_result::<PageCounts>(conn);
        if result.is_err() {
            // Reopen next time rather than keep a connection in an unknown state.
            *monitor = None;
        }
        Ok(result?)
    }
}

impl Database {
    /// Statistics of the pools, statements, transactions and files of this database.
    ///
    /// Cheap enough to call on every scrape: it reads atomics, each pool's state, two file
    /// sizes and three PRAGMAs on a private monitoring connection that is not part of any
    /// pool (so taking statistics does not change them).
    pub fn connection_stats(&self) -> ConnectionStats {
        let (used_bytes, high_water_bytes) = memory_used();
        let mut stats = self.metrics().connection_stats(
            |role| {
                let pool = self.pool(role);
                let state = pool.state();
                PoolState {
                    max_size: pool.max_size(),
                    open: state.connections,
                    // A parked thread-affine connection is idle: no read is using it.
                    idle: state
                        .idle_connections
                        .saturating_add(self.parked_connections(role)),
                }
            },
            EngineFigures {
                files: self.file_stats(),
                memory: Some(MemoryStats {
                    used_bytes,
                    high_water_bytes,
                }),
                page_cache: true,
            },
        );
        add_write_busy_errors(&mut stats, self.write_gate_timeouts());
        stats
    }
}

/// Adds `n` busy errors that ran no statement (writes that timed out on the write gate) to
/// the pool that serves writes and to the total. Left out when the counters are off, as
/// every other count is.
fn add_write_busy_errors(stats: &mut ConnectionStats, n: u64) {
    if !stats.instrumented || n == 0 {
        return;
    }
    if let Some(pool) = stats
        .pools
        .iter_mut()
        .find(|p| matches!(p.pool, PoolName::Write | PoolName::Shared))
    {
        pool.queries.busy_errors += n;
        stats.total.queries.busy_errors += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_pools_up() {
        let a = PoolMetrics::new(PoolName::Read);
        let b = PoolMetrics::new(PoolName::Write);
        a.record_query(Duration::from_millis(3), None);
        b.record_query(Duration::from_millis(5), None);
        let busy = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("database is locked".to_owned()),
        );
        assert!(b.record_query(Duration::from_millis(1), Some(&busy)));
        let state = |max_size, open, idle| PoolState {
            max_size,
            open,
            idle,
        };
        let pools = [
            a.snapshot(state(4, 4, 1), true),
            b.snapshot(state(2, 2, 2), true),
        ];
        assert_eq!(pools[0].active, 3);
        assert_eq!(pools[0].pool_utilization, 75.0);
        let t = total(&pools);
        assert_eq!((t.max_size, t.open, t.idle, t.active), (6, 6, 3, 3));
        assert_eq!(t.pool_utilization, 50.0);
        assert_eq!(t.queries.queries, 3);
        assert_eq!(t.queries.errors, 1);
        assert_eq!(t.queries.busy_errors, 1);
        assert_eq!(t.queries.duration_total, Duration::from_millis(9));
        assert_eq!(t.queries.duration_max, Duration::from_millis(5));
        assert!(t.cache.is_some());
    }

    #[test]
    fn postgres_pools_have_no_page_cache_and_count_timeouts_as_busy() {
        let pool = PoolMetrics::new(PoolName::Write);
        let timeout = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("canceling statement due to lock timeout".to_owned()),
        );
        assert!(pool.record_query(Duration::from_millis(1), Some(&timeout)));
        let state = PoolState {
            max_size: 5,
            open: 1,
            idle: 1,
        };
        let stats = pool.snapshot(state, false);
        assert_eq!(stats.queries.busy_errors, 1);
        assert_eq!(stats.cache, None);
        assert_eq!(
            total(&[stats]).cache,
            None,
            "no zeros standing in for SQLite's figures"
        );
    }
}
