//! Connection statistics: what [`Database::connection_stats`] returns.
//!
//! The figures come from three sources, none of which takes a lock on the hot path (see
//! `collectors.rs`): `r2d2::Pool::state()` for open and idle connections; an r2d2 event
//! handler per pool for checkouts, waits, timeouts, opened and closed connections and held
//! time; a diesel instrumentation per connection that times each statement and counts errors,
//! busy errors and slow statements. Transactions are counted by [`Database::transaction`] and
//! [`Database::read`]; file sizes and page counts are read when statistics are asked for.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};

#[cfg(doc)]
use crate::database::Database;
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
/// let test_db = litedal::example::test_db()?;
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
    /// Database and WAL files; `None` for an in-memory database and on PostgreSQL.
    pub files: Option<FileStats>,
    /// SQLite's memory in this process; `None` on PostgreSQL (the server's memory is the
    /// server's to report).
    pub memory: Option<MemoryStats>,
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
    /// The page caches of this pool's connections; `None` on PostgreSQL (its buffer cache
    /// is the server's, in `pg_stat_database`).
    pub cache: Option<CacheStats>,
}

/// Statements run on the connections of one pool, as diesel's instrumentation reports them.
///
/// Every statement counts, including the `BEGIN`/`COMMIT` around a transaction (and, on
/// PostgreSQL, the pool's liveness test of a connection idle for a second or more, and the
/// standby's lag check).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct QueryStats {
    /// Statements finished (successfully or not).
    pub queries: u64,
    /// Statements that failed (any error, busy errors included).
    pub errors: u64,
    /// Statements that failed with SQLITE_BUSY ("database is locked"), or on PostgreSQL
    /// with a lock or statement timeout ([`Error::Busy`](crate::Error::Busy) in both cases);
    /// on SQLite's write pool also writes that timed out queued on the write gate, before
    /// any statement (so this can exceed `errors`).
    pub busy_errors: u64,
    /// Statements slower than `DB_SLOW_QUERY_MS` (each was logged at WARN).
    pub slow_queries: u64,
    /// Time spent in statements, from prepare to the last row read, added up.
    #[serde(rename = "duration_total_seconds", serialize_with = "seconds")]
    pub duration_total: Duration,
    /// The slowest statement.
    #[serde(rename = "duration_max_seconds", serialize_with = "seconds")]
    pub duration_max: Duration,
    /// How long statements took: for each bound of [`DURATION_BUCKETS`] (in seconds), the
    /// statements that took at most that long (cumulative, as Prometheus histograms count).
    pub duration_buckets: Vec<u64>,
}

/// The upper bounds, in seconds, of the statement-duration histogram: from 25 us (a point
/// read from the page cache) to 10 s.
pub const DURATION_BUCKETS: [f64; 18] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The page caches of one pool's connections, added up (`sqlite3_db_status`).
///
/// A page read through the memory map (`mmap_size` above 0, litedal's default 256 MiB) does not
/// go through the page cache: it is neither a hit nor a miss. With mmap on, `misses` counts
/// the pages read with `read(2)` (beyond the map, or written pages read back), and a low hit
/// count with few misses is the healthy picture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Pages found in the page cache.
    pub hits: u64,
    /// Pages that were not in the cache and were read from the file.
    pub misses: u64,
    /// Pages written to the file.
    pub writes: u64,
    /// Dirty pages written before the commit because a transaction outgrew the cache.
    pub spills: u64,
    /// Bytes the page caches use now.
    pub used_bytes: u64,
    /// `hits / (hits + misses)`, or `None` before any page was looked up.
    pub hit_ratio: Option<f64>,
}

impl CacheStats {
    pub(crate) fn new(hits: u64, misses: u64, writes: u64, spills: u64, used_bytes: u64) -> Self {
        let lookups = hits.saturating_add(misses);
        #[allow(clippy::cast_precision_loss)]
        let hit_ratio = (lookups > 0).then(|| hits as f64 / lookups as f64);
        CacheStats {
            hits,
            misses,
            writes,
            spills,
            used_bytes,
            hit_ratio,
        }
    }
}

/// SQLite's memory in this process (all databases and connections): what "memory usage with
/// more connections" looks like from inside.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Bytes SQLite has allocated now.
    pub used_bytes: u64,
    /// The most it had allocated at once since the process started.
    pub high_water_bytes: u64,
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
    /// Transactions the application began itself on a checked-out connection (a raw
    /// `BEGIN`) and left open when the connection went back to the pool: litedal rolled them
    /// back at check-in (or closed the connection), so that they hold no lock and pin no WAL.
    /// Not in `committed` or `rolled_back`. Any count here is a bug of the application.
    pub left_open: u64,
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

pub(crate) fn seconds<S: Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

pub(crate) fn percent(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) * 100.0 / f64::from(whole)
    }
}

/// All pools added up: `pool_utilization` is active over max of all pools, the `*_max`
/// figures the largest of any pool.
pub(crate) fn total(pools: &[PoolStats]) -> PoolStats {
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
        cache: pools.iter().any(|p| p.cache.is_some()).then(|| {
            let sum_cache = |f: fn(&CacheStats) -> u64| {
                pools.iter().filter_map(|p| p.cache.as_ref()).map(f).sum()
            };
            CacheStats::new(
                sum_cache(|c| c.hits),
                sum_cache(|c| c.misses),
                sum_cache(|c| c.writes),
                sum_cache(|c| c.spills),
                sum_cache(|c| c.used_bytes),
            )
        }),
        queries: QueryStats {
            duration_buckets: (0..DURATION_BUCKETS.len())
                .map(|i| {
                    pools
                        .iter()
                        .map(|p| p.queries.duration_buckets.get(i).copied().unwrap_or(0))
                        .sum()
                })
                .collect(),
            queries: sum_u64(|p| p.queries.queries),
            errors: sum_u64(|p| p.queries.errors),
            busy_errors: sum_u64(|p| p.queries.busy_errors),
            slow_queries: sum_u64(|p| p.queries.slow_queries),
            duration_total: sum_d(|p| p.queries.duration_total),
            duration_max: max_d(|p| p.queries.duration_max),
        },
    }
}
