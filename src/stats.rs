//! Connection statistics: [`Database::connection_stats`] and the collectors behind it.
//!
//! Three sources, none of which takes a lock on the hot path:
//!
//! - `r2d2::Pool::state()` for open and idle connections (read only when statistics are asked
//!   for);
//! - an r2d2 [`HandleEvent`](r2d2::HandleEvent) handler per pool that counts checkouts, checkout
//!   waits, timeouts, opened and closed connections and how long connections were held, in
//!   relaxed atomics;
//! - a diesel [`Instrumentation`] installed on every pooled connection when r2d2 opens it, which
//!   times each statement and counts errors, busy errors and slow statements (logged at WARN
//!   with their SQL, never their bind values).
//!
//! Transactions are counted by [`Database::transaction`] and [`Database::read`]; file sizes and
//! page counts are read when statistics are asked for.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use diesel::connection::{DebugQuery, Instrumentation, InstrumentationEvent};
use r2d2::event::{AcquireEvent, CheckinEvent, CheckoutEvent, ReleaseEvent, TimeoutEvent};
use serde::{Serialize, Serializer};

use crate::database::{Database, PoolObserver, is_polling_write_lock};
use crate::error::is_busy_error;
use crate::pragmas::Role;

/// Which pool a set of statistics describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolName {
    /// The read pool (`query_only` connections).
    Read,
    /// The write pool.
    Write,
    /// The one pool that serves both roles when `DB_SEPARATE_READ_WRITE=false` (and for
    /// in-memory databases).
    Shared,
    /// All pools added up (only in [`ConnectionStats::total`]).
    Total,
}

impl PoolName {
    /// `"read"`, `"write"`, `"shared"` or `"total"`: the `pool` label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolName::Read => "read",
            PoolName::Write => "write",
            PoolName::Shared => "shared",
            PoolName::Total => "total",
        }
    }

    /// True when this pool hands out connections for `role`.
    pub fn serves(self, role: Role) -> bool {
        matches!(
            (self, role),
            (PoolName::Shared, _) | (PoolName::Read, Role::Read) | (PoolName::Write, Role::Write)
        )
    }
}

impl fmt::Display for PoolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of the pools, statements, transactions and files of one [`Database`].
///
/// Counters (`checkouts`, `queries`, ...) count since the database was opened in this process;
/// `open`, `idle`, `active` and the file figures are as of the call. Serializes to JSON with
/// durations in seconds (field names ending in `_seconds`).
///
/// ```
/// let test_db = litedal::testing::TestDb::new()?;
/// let db = test_db.db();
/// let conn = db.read_connection()?;
/// let stats = db.connection_stats();
/// assert_eq!(stats.pool_for(litedal::Role::Read).active, 1);
/// # drop(conn);
/// # Ok::<(), litedal::Error>(())
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// False when the configuration turned the checkout and statement counters off
    /// ([`ConfigBuilder::instrumentation`](crate::ConfigBuilder::instrumentation)); they then
    /// stay zero, while pool sizes, transactions and files are still reported.
    pub instrumented: bool,
    /// One entry per pool: `read` and `write`, or one `shared` pool.
    pub pools: Vec<PoolStats>,
    /// All pools added up; `pool_utilization` is active over max of all pools and the
    /// `*_max` figures are the largest of any pool.
    pub total: PoolStats,
    /// Transactions run by [`Database::transaction`] (write) and [`Database::read`] (read).
    pub transactions: TransactionStats,
    /// Database and WAL files; `None` for an in-memory database.
    pub files: Option<FileStats>,
}

impl ConnectionStats {
    /// The pool that serves `role` (the shared pool when there is only one).
    pub fn pool_for(&self, role: Role) -> &PoolStats {
        self.pools
            .iter()
            .find(|p| p.pool.serves(role))
            .unwrap_or(&self.total)
    }
}

/// Statistics of one pool (or of all pools, in [`ConnectionStats::total`]).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PoolStats {
    /// Which pool.
    pub pool: PoolName,
    /// The pool's size: the most connections it opens.
    pub max_size: u32,
    /// Connections open now (litedal opens them all at start and never recycles them).
    pub open: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// Connections checked out right now (`open - idle`).
    pub active: u32,
    /// `active / max_size` in percent (0 to 100).
    pub pool_utilization: f64,
    /// Successful checkouts.
    pub checkouts: u64,
    /// Time successful checkouts waited for a free connection, added up.
    #[serde(rename = "checkout_wait_total_seconds", serialize_with = "seconds")]
    pub checkout_wait_total: Duration,
    /// The longest a successful checkout waited.
    #[serde(rename = "checkout_wait_max_seconds", serialize_with = "seconds")]
    pub checkout_wait_max: Duration,
    /// Checkouts that gave up after `DB_POOL_TIMEOUT` ([`Error::PoolTimeout`](crate::Error::PoolTimeout)).
    pub checkout_timeouts: u64,
    /// Connections the pool opened.
    pub connections_opened: u64,
    /// Connections the pool closed (a connection released while its holder panicked is
    /// closed and replaced).
    pub connections_closed: u64,
    /// Time connections spent checked out, added up (counted when they come back).
    #[serde(rename = "held_total_seconds", serialize_with = "seconds")]
    pub held_total: Duration,
    /// The longest a connection stayed checked out.
    #[serde(rename = "held_max_seconds", serialize_with = "seconds")]
    pub held_max: Duration,
    /// Statements run on this pool's connections.
    pub queries: QueryStats,
}

/// Statements run on the connections of one pool, as diesel's instrumentation reports them.
///
/// Every statement counts, including the `BEGIN`/`COMMIT` around a transaction.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct QueryStats {
    /// Statements finished (successfully or not).
    pub queries: u64,
    /// Statements that failed (any error, busy errors included).
    pub errors: u64,
    /// Statements that failed with SQLITE_BUSY ("database is locked").
    pub busy_errors: u64,
    /// Statements slower than `DB_SLOW_QUERY_MS` (each was logged at WARN).
    pub slow_queries: u64,
    /// Time spent in statements, from prepare to the last row read, added up.
    #[serde(rename = "duration_total_seconds", serialize_with = "seconds")]
    pub duration_total: Duration,
    /// The slowest statement.
    #[serde(rename = "duration_max_seconds", serialize_with = "seconds")]
    pub duration_max: Duration,
}

/// Transactions by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TransactionStats {
    /// Read transactions ([`Database::read`]).
    pub read: TransactionCounts,
    /// Write transactions ([`Database::transaction`]).
    pub write: TransactionCounts,
}

/// How transactions that started ended. A transaction that never began (the pool timed out,
/// the write lock stayed busy) is in neither count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TransactionCounts {
    /// The closure returned `Ok` and the transaction committed.
    pub committed: u64,
    /// The closure returned `Err` or panicked, or the commit failed: rolled back.
    pub rolled_back: u64,
}

/// Sizes of the database files, read when the statistics are taken.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FileStats {
    /// Size of the database file.
    pub database_bytes: u64,
    /// Size of the `-wal` file (0 when there is none). After a checkpoint the WAL is reused
    /// from its start, so its size is the most it held since it was last truncated.
    pub wal_bytes: u64,
    /// `PRAGMA page_size`; `None` when it could not be read (the error is logged).
    pub page_size: Option<u64>,
    /// `PRAGMA page_count`: pages in the database, including those still only in the WAL.
    pub page_count: Option<u64>,
    /// `PRAGMA freelist_count`: unused pages that `VACUUM` would release.
    pub freelist_count: Option<u64>,
}

fn seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

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
}

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

    /// The counters, with the pool's state: `open` connections of which `idle` are idle.
    fn snapshot(&self, max_size: u32, open: u32, idle: u32) -> PoolStats {
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
            },
        }
    }
}

fn percent(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) * 100.0 / f64::from(whole)
    }
}

#[derive(Debug, Default)]
struct TransactionCounters {
    committed: AtomicU64,
    rolled_back: AtomicU64,
}

impl TransactionCounters {
    fn snapshot(&self) -> TransactionCounts {
        TransactionCounts {
            committed: self.committed.load(Relaxed),
            rolled_back: self.rolled_back.load(Relaxed),
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
    read_transactions: TransactionCounters,
    write_transactions: TransactionCounters,
}

impl Metrics {
    pub(crate) fn new(separate: bool, enabled: bool) -> Metrics {
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
            read_transactions: TransactionCounters::default(),
            write_transactions: TransactionCounters::default(),
        }
    }

    /// The counters of the pool that serves `role`.
    pub(crate) fn pool(&self, role: Role) -> &Arc<PoolMetrics> {
        match role {
            Role::Read => &self.read,
            Role::Write => &self.write,
        }
    }

    /// The collectors of the pool that serves `role` (its r2d2 events and, for each new
    /// connection, a statement timer), or `None` when the counters are off.
    pub(crate) fn observer(
        &self,
        role: Role,
        slow_query: Option<Duration>,
    ) -> Option<PoolObserver> {
        if !self.enabled {
            return None;
        }
        let pool = Arc::clone(self.pool(role));
        Some(PoolObserver {
            events: Box::new(PoolEventHandler(Arc::clone(&pool))),
            statements: Box::new(move || {
                Box::new(QueryInstrumentation {
                    metrics: Arc::clone(&pool),
                    slow_query,
                    started: None,
                })
            }),
        })
    }

    /// Counts a transaction that began; `committed` is false when it was rolled back.
    pub(crate) fn record_transaction(&self, role: Role, committed: bool) {
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

/// Times each statement of one connection. diesel calls it on the thread that runs the
/// statement, between `StartQuery` and `FinishQuery` (the latter once the last row was read).
struct QueryInstrumentation {
    metrics: Arc<PoolMetrics>,
    slow_query: Option<Duration>,
    started: Option<Instant>,
}

impl Instrumentation for QueryInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => self.started = Some(Instant::now()),
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                let elapsed = self
                    .started
                    .take()
                    .map_or(Duration::ZERO, |started| started.elapsed());
                if error.is_some_and(is_busy_error) && is_polling_write_lock() {
                    return;
                }
                let busy = self.metrics.record_query(elapsed, error);
                if busy {
                    tracing::warn!(
                        pool = %self.metrics.name,
                        sql = %sql_without_binds(query),
                        "Database busy: statement failed with \"database is locked\""
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

/// The longest SQL text logged; longer statements are cut (at a character boundary) and end
/// with "...".
const MAX_LOGGED_SQL: usize = 2048;

/// What diesel's `Display` of a query writes between the SQL and the bind values.
const BINDS_MARKER: &str = " -- binds: ";

/// Renders a query's SQL without its bind values.
///
/// diesel's `Display` writes `<sql> -- binds: [<values>]`; this writer keeps what comes before
/// the marker and then fails the formatting, so the values are never formatted at all. SQL
/// passed as text (`batch_execute`) has no binds and is kept whole.
pub(crate) fn sql_without_binds(query: &dyn DebugQuery) -> String {
    let mut writer = UntilBinds {
        out: String::new(),
        done: false,
    };
    // An `Err` here is the writer stopping at the marker (or at the length limit).
    let _ = fmt::write(&mut writer, format_args!("{query}"));
    writer.out
}

struct UntilBinds {
    out: String,
    done: bool,
}

impl fmt::Write for UntilBinds {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.done {
            return Err(fmt::Error);
        }
        // The marker may span two writes: search from where it could start.
        let from = self.out.len().saturating_sub(BINDS_MARKER.len());
        self.out.push_str(s);
        let found = self.out.as_bytes()[from..]
            .windows(BINDS_MARKER.len())
            .position(|w| w == BINDS_MARKER.as_bytes());
        if let Some(at) = found {
            // The marker starts with an ASCII space, so `from + at` is a character boundary.
            self.out.truncate(from + at);
            self.done = true;
            return Err(fmt::Error);
        }
        if self.out.len() > MAX_LOGGED_SQL {
            let mut cut = MAX_LOGGED_SQL;
            while !self.out.is_char_boundary(cut) {
                cut -= 1;
            }
            self.out.truncate(cut);
            self.out.push_str("...");
            self.done = true;
            return Err(fmt::Error);
        }
        Ok(())
    }
}

impl Database {
    /// Statistics of the pools, statements, transactions and files of this database.
    ///
    /// Cheap enough to call on every scrape: it reads atomics, each pool's state, two file
    /// sizes and three PRAGMAs on a private monitoring connection that is not part of any
    /// pool (so taking statistics does not change them).
    pub fn connection_stats(&self) -> ConnectionStats {
        let metrics = self.metrics();
        let mut pools = Vec::with_capacity(2);
        let roles: &[Role] = if metrics.separate {
            &[Role::Read, Role::Write]
        } else {
            &[Role::Write]
        };
        for &role in roles {
            let pool = self.pool(role);
            let state = pool.state();
            pools.push(metrics.pool(role).snapshot(
                pool.max_size(),
                state.connections,
                state.idle_connections,
            ));
        }
        let total = total(&pools);
        ConnectionStats {
            instrumented: metrics.enabled,
            pools,
            total,
            transactions: TransactionStats {
                read: metrics.read_transactions.snapshot(),
                write: metrics.write_transactions.snapshot(),
            },
            files: self.file_stats(),
        }
    }
}

fn total(pools: &[PoolStats]) -> PoolStats {
    let sum_u32 = |f: fn(&PoolStats) -> u32| pools.iter().map(f).sum::<u32>();
    let sum_u64 = |f: fn(&PoolStats) -> u64| pools.iter().map(f).sum::<u64>();
    let sum_d = |f: fn(&PoolStats) -> Duration| pools.iter().map(f).sum::<Duration>();
    let max_d = |f: fn(&PoolStats) -> Duration| pools.iter().map(f).max().unwrap_or_default();
    let (max_size, active) = (sum_u32(|p| p.max_size), sum_u32(|p| p.active));
    PoolStats {
        pool: PoolName::Total,
        max_size,
        open: sum_u32(|p| p.open),
        idle: sum_u32(|p| p.idle),
        active,
        pool_utilization: percent(active, max_size),
        checkouts: sum_u64(|p| p.checkouts),
        checkout_wait_total: sum_d(|p| p.checkout_wait_total),
        checkout_wait_max: max_d(|p| p.checkout_wait_max),
        checkout_timeouts: sum_u64(|p| p.checkout_timeouts),
        connections_opened: sum_u64(|p| p.connections_opened),
        connections_closed: sum_u64(|p| p.connections_closed),
        held_total: sum_d(|p| p.held_total),
        held_max: max_d(|p| p.held_max),
        queries: QueryStats {
            queries: sum_u64(|p| p.queries.queries),
            errors: sum_u64(|p| p.queries.errors),
            busy_errors: sum_u64(|p| p.queries.busy_errors),
            slow_queries: sum_u64(|p| p.queries.slow_queries),
            duration_total: sum_d(|p| p.queries.duration_total),
            duration_max: max_d(|p| p.queries.duration_max),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query whose `Display` is diesel's format: SQL, marker, binds.
    struct Fake(&'static str, &'static str);

    impl fmt::Display for Fake {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let sql = self.0.to_owned();
            write!(f, "{sql}{BINDS_MARKER}{:?}", [self.1])
        }
    }

    impl fmt::Debug for Fake {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Display::fmt(self, f)
        }
    }

    impl DebugQuery for Fake {}

    #[test]
    fn bind_values_are_cut_off() {
        let q = Fake("SELECT * FROM users WHERE email = ?", "secret@example.com");
        assert_eq!(sql_without_binds(&q), "SELECT * FROM users WHERE email = ?");
    }

    #[test]
    fn long_sql_is_cut_at_a_character_boundary() {
        let long: &'static str = Box::leak("é".repeat(MAX_LOGGED_SQL).into_boxed_str());
        let out = sql_without_binds(&Fake(long, "secret"));
        assert!(out.ends_with("..."), "{out}");
        assert!(out.len() <= MAX_LOGGED_SQL + 3);
        assert!(!out.contains("secret"));
    }

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
        let pools = [a.snapshot(4, 4, 1), b.snapshot(2, 2, 2)];
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
    }
}
