//! Connection statistics, statement counters, the slow-query log, transaction counts and
//! health checks, against real temp-file databases.

mod common;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use litedal::{Error, HealthStatus, Limits, PoolName, PoolStats, Role};

use common::Captured;

/// Generous latency thresholds, so that a loaded machine never changes a test's outcome.
const HOUR: Duration = Duration::from_secs(3600);

fn read_pool(db: &litedal::Database) -> PoolStats {
    db.connection_stats().pool_for(Role::Read).clone()
}

fn write_pool(db: &litedal::Database) -> PoolStats {
    db.connection_stats().pool_for(Role::Write).clone()
}

#[test]
fn pool_stats_follow_checkouts_and_timeouts() {
    let db = litedal::example::test_db_with(|b| {
        b.read_pool_size(4)
            .write_pool_size(1)
            .pool_timeout(Duration::from_secs(1))
    })
    .unwrap();
    let stats = db.connection_stats();
    assert!(stats.instrumented);
    assert_eq!(
        stats.pools.iter().map(|p| p.pool).collect::<Vec<_>>(),
        [PoolName::Read, PoolName::Write]
    );
    let r = stats.pool_for(Role::Read);
    assert_eq!((r.max_size, r.open, r.idle, r.active), (4, 4, 4, 0));
    assert_eq!(r.connections_opened, 4);
    assert_eq!(r.pool_utilization, 0.0);
    let checkouts_before = r.checkouts;

    let held: Vec<_> = (0..3).map(|_| db.read_connection().unwrap()).collect();
    let stats = db.connection_stats();
    let r = stats.pool_for(Role::Read);
    assert_eq!((r.open, r.idle, r.active), (4, 1, 3));
    assert_eq!(r.pool_utilization, 75.0);
    assert_eq!(r.checkouts, checkouts_before + 3);
    assert_eq!(stats.pool_for(Role::Write).active, 0);
    assert_eq!((stats.total.max_size, stats.total.active), (5, 3));
    assert_eq!(stats.total.pool_utilization, 60.0);

    // The fourth connection empties the pool; the fifth checkout times out.
    let fourth = db.read_connection().unwrap();
    match db.read_connection() {
        Err(Error::PoolTimeout { role, waited, .. }) => {
            assert_eq!(role, Role::Read);
            assert!(waited >= Duration::from_secs(1), "{waited:?}");
        }
        Err(other) => panic!("expected PoolTimeout, got {other:?}"),
        Ok(_) => panic!("a fifth read connection out of four"),
    }
    let r = read_pool(&db);
    assert_eq!(r.checkout_timeouts, 1);
    assert_eq!((r.active, r.pool_utilization), (4, 100.0));
    assert_eq!(r.checkouts, checkouts_before + 4);
    assert_eq!(write_pool(&db).checkout_timeouts, 0);

    drop(held);
    drop(fourth);
    let r = read_pool(&db);
    assert_eq!((r.idle, r.active), (4, 0));
    // They were held across the one-second timeout, so the longest hold is at least that.
    assert!(r.held_max >= Duration::from_secs(1), "{:?}", r.held_max);
    assert!(r.held_total >= r.held_max * 3);
    assert_eq!(r.connections_closed, 0);
}

#[test]
fn a_shared_pool_is_one_entry_serving_both_roles() {
    let db = litedal::example::test_db_with(|b| b.pool_size(3).separate_read_write(false)).unwrap();
    let _r = db.read_connection().unwrap();
    let _w = db.write_connection().unwrap();
    let stats = db.connection_stats();
    assert_eq!(stats.pools.len(), 1);
    let shared = &stats.pools[0];
    assert_eq!(shared.pool, PoolName::Shared);
    assert_eq!((shared.max_size, shared.active), (3, 2));
    assert_eq!(stats.pool_for(Role::Read).pool, PoolName::Shared);
    assert_eq!(stats.pool_for(Role::Write).pool, PoolName::Shared);
    assert_eq!(stats.total.active, 2);
}

#[test]
fn statements_errors_and_busy_errors_are_counted_per_pool() {
    let db = litedal::example::test_db_with(|b| {
        b.write_pool_size(2).busy_timeout(Duration::from_millis(50))
    })
    .unwrap();
    let (read0, write0) = (read_pool(&db).queries, write_pool(&db).queries);

    let mut conn = db.read_connection().unwrap();
    for _ in 0..5 {
        diesel::sql_query("SELECT 1").execute(&mut conn).unwrap();
    }
    let missing = diesel::sql_query("SELECT * FROM no_such_table").execute(&mut conn);
    assert!(missing.is_err());
    drop(conn);
    let read = read_pool(&db).queries;
    assert_eq!(read.queries - read0.queries, 6);
    assert_eq!(read.errors - read0.errors, 1);
    assert_eq!(read.busy_errors - read0.busy_errors, 0);
    assert!(read.duration_total > read0.duration_total);
    assert!(read.duration_max <= read.duration_total);
    assert_eq!(
        write_pool(&db).queries,
        write0,
        "reads do not count on the write pool"
    );

    // One writer holds the lock; the other's BEGIN IMMEDIATE fails after the busy timeout.
    let mut holder = db.write_connection().unwrap();
    holder.batch_execute("BEGIN IMMEDIATE").unwrap();
    let mut other = db.write_connection().unwrap();
    let busy = other.batch_execute("BEGIN IMMEDIATE").unwrap_err();
    assert!(Error::from(busy).is_busy());
    holder.batch_execute("ROLLBACK").unwrap();
    drop((holder, other));
    let write = write_pool(&db).queries;
    assert_eq!(write.queries - write0.queries, 3);
    assert_eq!(write.errors - write0.errors, 1);
    assert_eq!(write.busy_errors - write0.busy_errors, 1);
}

#[test]
fn transactions_are_counted_by_outcome() {
    let db = litedal::example::test_db_with(|b| {
        b.write_pool_size(2).busy_timeout(Duration::from_millis(50))
    })
    .unwrap();
    let t0 = db.connection_stats().transactions;

    db.transaction(|conn| {
        conn.batch_execute("CREATE TABLE t (x INTEGER)")?;
        Ok(())
    })
    .unwrap();
    let failed: litedal::Result<()> = db.transaction(|conn| {
        conn.batch_execute("INSERT INTO t VALUES (1)")?;
        Err(Error::NotFound)
    });
    assert!(failed.is_err());
    db.read(|conn| Ok(diesel::sql_query("SELECT 1").execute(conn)?))
        .unwrap();
    let failed: litedal::Result<()> = db.read(|_| Err(Error::NotFound));
    assert!(failed.is_err());
    let db2 = db.db().clone();
    let panicked =
        std::thread::spawn(move || db2.transaction(|_| -> litedal::Result<()> { panic!("boom") }))
            .join();
    assert!(panicked.is_err());

    // A transaction that never began (the lock stayed busy) is in neither count.
    let mut holder = db.write_connection().unwrap();
    holder.batch_execute("BEGIN IMMEDIATE").unwrap();
    let busy = db.transaction(|_| Ok(()));
    assert!(matches!(busy, Err(Error::Busy)), "{busy:?}");
    holder.batch_execute("ROLLBACK").unwrap();
    drop(holder);

    let t = db.connection_stats().transactions;
    assert_eq!(t.write.committed - t0.write.committed, 1);
    assert_eq!(t.write.rolled_back - t0.write.rolled_back, 2);
    assert_eq!(t.read.committed - t0.read.committed, 1);
    assert_eq!(t.read.rolled_back - t0.read.rolled_back, 1);
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A statement made slow on purpose: it counts to `limit` with a recursive CTE. The second
/// bind value is a marker that must never reach the log.
fn slow_count(conn: &mut SqliteConnection, limit: i64, marker: &str) -> i64 {
    diesel::sql_query(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) \
         SELECT count(*) AS n FROM c WHERE ? <> ''",
    )
    .bind::<BigInt, _>(limit)
    .bind::<Text, _>(marker)
    .get_result::<Count>(conn)
    .unwrap()
    .n
}

const MARKER: &str = "s3cr3t-bind-value";

#[test]
fn slow_queries_are_logged_with_sql_but_without_bind_values() {
    let db = litedal::example::test_db_with(|b| b.slow_query(Duration::from_millis(1))).unwrap();
    let captured = Captured::default();
    let before = read_pool(&db).queries;
    // diesel's instrumentation runs on the thread that runs the statement: this one.
    let n = tracing::subscriber::with_default(captured.subscriber(), || {
        let mut conn = db.read_connection().unwrap();
        slow_count(&mut conn, 1_000_000, MARKER)
    });
    assert_eq!(n, 1_000_000);
    let after = read_pool(&db).queries;
    assert_eq!(after.queries - before.queries, 1);
    assert_eq!(after.slow_queries - before.slow_queries, 1);
    assert!(after.duration_max > Duration::from_millis(1));

    let log = captured.text();
    let line = log
        .lines()
        .find(|l| l.contains("Database slow query"))
        .unwrap_or_else(|| panic!("no slow-query line in:\n{log}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("WITH RECURSIVE c(x)"), "{line}");
    assert!(line.contains("duration_ms="), "{line}");
    assert!(line.contains("pool=read"), "{line}");
    assert!(
        !log.contains(MARKER),
        "a bind value leaked into the log:\n{log}"
    );
    assert!(!log.contains("binds"), "{log}");
}

#[test]
fn the_slow_query_log_can_be_turned_off() {
    let db = litedal::example::test_db_with(|b| b.slow_query(Duration::ZERO)).unwrap();
    let captured = Captured::default();
    tracing::subscriber::with_default(captured.subscriber(), || {
        let mut conn = db.read_connection().unwrap();
        slow_count(&mut conn, 300_000, MARKER);
    });
    assert_eq!(read_pool(&db).queries.slow_queries, 0);
    assert!(
        !captured.text().contains("slow query"),
        "{}",
        captured.text()
    );
}

#[test]
fn without_instrumentation_the_counters_stay_zero() {
    let db = litedal::example::test_db_with(|b| b.instrumentation(false)).unwrap();
    let conn = db.read_connection().unwrap();
    db.read(|conn| Ok(diesel::sql_query("SELECT 1").execute(conn)?))
        .unwrap();
    let stats = db.connection_stats();
    assert!(!stats.instrumented);
    let r = stats.pool_for(Role::Read);
    assert_eq!(r.active, 1, "pool state is still reported");
    assert_eq!((r.checkouts, r.queries.queries), (0, 0));
    assert_eq!(stats.transactions.read.committed, 1);
    drop(conn);
}

#[test]
fn file_stats_report_sizes_and_pages() {
    let db = litedal::example::test_db().unwrap();
    db.transaction(|conn| {
        conn.batch_execute(
            "CREATE TABLE blobs (b BLOB); \
             WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100) \
             INSERT INTO blobs SELECT randomblob(1000) FROM s;",
        )?;
        Ok(())
    })
    .unwrap();
    let files = db.connection_stats().files.expect("a file database");
    let wal_len = std::fs::metadata(format!("{}-wal", db.path().display()))
        .unwrap()
        .len();
    assert_eq!(files.wal_bytes, wal_len);
    assert!(files.wal_bytes > 100_000, "{files:?}");
    assert_eq!(
        files.database_bytes,
        std::fs::metadata(db.path()).unwrap().len()
    );
    assert_eq!(files.page_size, Some(4096));
    // 100 rows of 1000 bytes need at least 25 pages of 4 KiB, even while still in the WAL.
    assert!(files.page_count.unwrap() >= 25, "{files:?}");
    assert_eq!(files.freelist_count, Some(0));
}

#[test]
fn health_is_healthy_within_thresholds() {
    let db = litedal::example::test_db_with(|b| {
        b.health_read_latency(Limits::new(HOUR, HOUR))
            .health_write_latency(Limits::new(HOUR, HOUR))
    })
    .unwrap();
    let report = db.health();
    assert_eq!(report.status, HealthStatus::Healthy, "{report:#?}");
    let names: Vec<_> = report.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "read_latency",
            "write_latency",
            "pool_utilization",
            "wal_size",
            "journal_mode",
            "checkpoint_age"
        ]
    );
    let journal = report.check("journal_mode").unwrap();
    assert_eq!(
        journal.value,
        Some(litedal::Measured::Text("wal".to_owned()))
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["status"], "healthy");
    assert_eq!(json["checks"][0]["threshold"]["unhealthy_at"], 3600.0);
    // The probes are real transactions and show up as such.
    let t = db.connection_stats().transactions;
    assert_eq!((t.read.committed, t.write.committed), (1, 1));
}

#[test]
fn health_degrades_and_fails_at_its_thresholds() {
    // Two of four read connections out = 50 % utilization: degraded, not unhealthy.
    let db = litedal::example::test_db_with(|b| {
        b.read_pool_size(4)
            .health_read_latency(Limits::new(HOUR, HOUR))
            .health_write_latency(Limits::new(HOUR, HOUR))
            .health_pool_utilization(Limits::degraded_only(50.0))
    })
    .unwrap();
    let held = (db.read_connection().unwrap(), db.read_connection().unwrap());
    let report = db.health();
    assert_eq!(report.status, HealthStatus::Degraded, "{report:#?}");
    let pool = report.check("pool_utilization").unwrap();
    assert_eq!(pool.status, HealthStatus::Degraded);
    assert_eq!(pool.value, Some(litedal::Measured::Number(50.0)));
    drop(held);
    assert_eq!(db.health().status, HealthStatus::Healthy);

    // A WAL of any size over a 1-byte threshold: degraded.
    let db = litedal::example::test_db_with(|b| {
        b.health_read_latency(Limits::new(HOUR, HOUR))
            .health_write_latency(Limits::new(HOUR, HOUR))
            .health_wal_size(Limits::degraded_only(1))
    })
    .unwrap();
    db.transaction(|conn| {
        conn.batch_execute("CREATE TABLE t (x); INSERT INTO t VALUES (1);")?;
        Ok(())
    })
    .unwrap();
    let report = db.health();
    assert_eq!(
        report.check("wal_size").unwrap().status,
        HealthStatus::Degraded
    );
    assert_eq!(report.status, HealthStatus::Degraded);

    // Any read takes longer than a nanosecond: unhealthy.
    let db = litedal::example::test_db_with(|b| {
        b.health_read_latency(Limits::new(Duration::ZERO, Duration::from_nanos(1)))
            .health_write_latency(Limits::new(HOUR, HOUR))
    })
    .unwrap();
    let report = db.health();
    assert_eq!(report.status, HealthStatus::Unhealthy);
    assert_eq!(
        report.check("read_latency").unwrap().status,
        HealthStatus::Unhealthy
    );
    assert_eq!(report.status.exit_code(), 2);
}

#[test]
fn a_failing_probe_is_unhealthy_not_an_error() {
    let db = litedal::example::test_db_with(|b| {
        b.write_pool_size(2)
            .busy_timeout(Duration::from_millis(50))
            .health_read_latency(Limits::new(HOUR, HOUR))
    })
    .unwrap();
    let mut holder = db.write_connection().unwrap();
    holder.batch_execute("BEGIN IMMEDIATE").unwrap();
    let report = db.health();
    holder.batch_execute("ROLLBACK").unwrap();
    let write = report.check("write_latency").unwrap();
    assert_eq!(write.status, HealthStatus::Unhealthy);
    assert_eq!(write.value, None);
    assert!(
        write.detail.contains("write lock is held"),
        "{}",
        write.detail
    );
    assert_eq!(report.status, HealthStatus::Unhealthy);
}

#[test]
fn health_thresholds_from_the_environment_are_validated() {
    let c = litedal::Config::from_vars([
        ("DB_HEALTH_READ_LATENCY_MS", "20,200"),
        ("DB_HEALTH_WRITE_LATENCY_MS", "off,9000"),
        ("DB_HEALTH_POOL_UTILIZATION", "75"),
        ("DB_WAL_SIZE_LIMIT", "1000"),
    ])
    .unwrap();
    let t = c.health_thresholds();
    assert_eq!(
        t.read_latency,
        Limits::new(Duration::from_millis(20), Duration::from_millis(200))
    );
    assert_eq!(t.write_latency.degraded_at, None);
    assert_eq!(t.write_latency.unhealthy_at, Some(Duration::from_secs(9)));
    assert_eq!(t.pool_utilization, Limits::degraded_only(75.0));
    assert_eq!(
        t.wal_size,
        Limits::new(1000, 4000),
        "derived from DB_WAL_SIZE_LIMIT"
    );

    for (var, value) in [
        ("DB_HEALTH_READ_LATENCY_MS", "200,20"),
        ("DB_HEALTH_READ_LATENCY_MS", "fast"),
        ("DB_HEALTH_WRITE_LATENCY_MS", "1,2,3"),
        ("DB_HEALTH_POOL_UTILIZATION", "101"),
        ("DB_HEALTH_WAL_SIZE_BYTES", "0"),
        ("DB_HEALTH_WAL_SIZE_BYTES", ""),
    ] {
        match litedal::Config::from_vars([(var, value)]) {
            Err(Error::Config {
                var: got, reason, ..
            }) => {
                assert_eq!(got, var);
                assert!(
                    reason.contains("accepted") || reason.contains("empty"),
                    "{reason}"
                );
            }
            other => panic!("{var}={value:?}: expected Error::Config, got {other:?}"),
        }
    }
    assert!(matches!(
        litedal::example::config()
            .health_pool_utilization(Limits::degraded_only(f64::NAN))
            .build(),
        Err(Error::Config {
            var: "DB_HEALTH_POOL_UTILIZATION",
            ..
        })
    ));
}

#[test]
fn migrations_can_be_run_and_listed_after_open() {
    let db = litedal::example::test_db_with(|b| b.run_migrations(false)).unwrap();
    let applied = db.run_pending_migrations().unwrap();
    assert_eq!(
        applied,
        [
            "2026-11-29-000001_create_users",
            "2026-11-29-000002_create_posts",
            "2026-11-29-000003_users_active_id_index",
            "2026-12-04-000001_users_email_case_insensitive"
        ]
    );
    assert_eq!(db.applied_migrations().unwrap(), applied);
    assert!(db.run_pending_migrations().unwrap().is_empty());
}

#[test]
fn checkpoint_age_is_checked_while_the_checkpointer_runs() {
    use litedal::{CheckpointMode, HealthStatus, Limits};
    use std::time::Duration;

    // No checkpointer, no check.
    let off = litedal::example::test_db_with(|b| b.checkpoint_interval(Duration::ZERO)).unwrap();
    assert!(off.health().check("checkpoint_age").is_none());

    // Running, with a threshold far away: healthy, measured since open, then since the
    // last checkpoint.
    let db = litedal::example::test_db_with(|b| {
        b.checkpoint_interval(Duration::from_secs(3600))
            .health_checkpoint_age(Limits::degraded_only(Duration::from_secs(3600)))
    })
    .unwrap();
    let check = db.health().check("checkpoint_age").cloned().unwrap();
    assert_eq!(check.status, HealthStatus::Healthy);
    assert!(
        check.detail.contains("no checkpoint yet"),
        "{}",
        check.detail
    );
    db.checkpoint(CheckpointMode::Passive).unwrap();
    let check = db.health().check("checkpoint_age").cloned().unwrap();
    assert!(check.detail.contains("last checkpoint"), "{}", check.detail);

    // A tiny threshold: the age is past it, the report is degraded.
    let db = litedal::example::test_db_with(|b| {
        b.checkpoint_interval(Duration::from_secs(3600))
            .health_checkpoint_age(Limits::degraded_only(Duration::from_millis(1)))
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let report = db.health();
    assert_eq!(
        report.check("checkpoint_age").map(|c| c.status),
        Some(HealthStatus::Degraded)
    );
    assert_eq!(report.status, HealthStatus::Degraded);
}

/// Point reads of `n` users by id on the read pool (one statement each).
fn point_reads(db: &litedal::Database, n: i64) {
    use litedal::example::models::UserId;
    use litedal::example::repo::Users;
    for i in 0..n {
        Users::find(db, UserId(1 + i % 500)).unwrap();
    }
}

fn populate(db: &litedal::Database, n: usize) {
    use litedal::example::models::NewUser;
    use litedal::example::repo::Users;
    let emails: Vec<String> = (0..n).map(|i| format!("p{i}@x.example")).collect();
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("p", e)).collect();
    Users::batch_insert(db, &rows).unwrap();
}

#[test]
fn page_cache_counters_and_sqlite_memory_are_reported() {
    // Without mmap every page read goes through the page cache: a warm cache hits.
    // Pages are read from the database file (not the WAL, which is never memory-mapped):
    // a TRUNCATE checkpoint after the inserts moves them there.
    let db = litedal::example::test_db_with(|b| b.mmap_size(0).read_pool_size(2)).unwrap();
    populate(db.db(), 2000);
    db.checkpoint(litedal::CheckpointMode::Truncate).unwrap();
    point_reads(db.db(), 4000);
    let stats = db.connection_stats();
    let read = &stats
        .pool_for(Role::Read)
        .cache
        .expect("SQLite has page caches");
    eprintln!("mmap off: {read:?}");
    assert!(read.hits > read.misses, "{read:?}");
    assert!(read.hit_ratio.unwrap() > 0.5, "{read:?}");
    assert!(read.used_bytes > 0, "{read:?}");
    let write = &stats.pool_for(Role::Write).cache.unwrap();
    assert!(write.writes > 0, "the batch wrote pages: {write:?}");
    assert_eq!(stats.total.cache.unwrap().hits, read.hits + write.hits);
    let memory = stats.memory.expect("SQLite reports its memory");
    assert!(memory.used_bytes > 0);
    assert!(memory.high_water_bytes >= memory.used_bytes);

    // With mmap, pages read through the map bypass the page cache.
    let mapped =
        litedal::example::test_db_with(|b| b.mmap_size(1 << 26).read_pool_size(2)).unwrap();
    populate(mapped.db(), 2000);
    mapped
        .checkpoint(litedal::CheckpointMode::Truncate)
        .unwrap();
    point_reads(mapped.db(), 4000);
    let read_mapped = mapped
        .connection_stats()
        .pool_for(Role::Read)
        .cache
        .unwrap();
    eprintln!("mmap 64 MiB: {read_mapped:?}");
    assert!(
        read_mapped.hits < read.hits,
        "mapped pages are not cache hits: {read_mapped:?} against {read:?}"
    );
}

#[test]
fn statement_durations_form_a_cumulative_histogram() {
    let db = litedal::example::test_db().unwrap();
    populate(db.db(), 100);
    point_reads(db.db(), 300);
    let stats = db.connection_stats();
    let q = &stats.pool_for(Role::Read).queries;
    assert_eq!(
        q.duration_buckets.len(),
        litedal::stats::DURATION_BUCKETS.len()
    );
    assert!(q.duration_buckets.windows(2).all(|w| w[0] <= w[1]), "{q:?}");
    assert!(*q.duration_buckets.last().unwrap() <= q.queries, "{q:?}");
    assert!(q.queries >= 300, "{q:?}");
}

/// promtool on PATH, or why not; CI installs it, so there a missing one is a failure.
fn promtool() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not installed (apt-get install prometheus); CI must run this check"
        );
        eprintln!("SKIPPED: promtool is not installed (apt-get install prometheus)");
    }
    found
}

#[test]
fn a_scrape_with_every_metric_passes_promtool() {
    use litedal::CheckpointMode;
    let db = litedal::example::test_db().unwrap();
    populate(db.db(), 200);
    point_reads(db.db(), 200);
    db.checkpoint(CheckpointMode::Passive).unwrap();
    db.checkpoint(CheckpointMode::Truncate).unwrap();
    db.health();
    let text = db.render_metrics().unwrap();
    for name in [
        "litedal_query_duration_seconds_bucket{pool=\"read\",le=\"0.000025\"}",
        "litedal_query_duration_seconds_count{pool=\"read\"}",
        "litedal_cache_hits_total{pool=\"read\"}",
        "litedal_cache_hit_ratio{pool=\"read\"}",
        "litedal_sqlite_memory_used_bytes",
        "litedal_checkpoints_total{mode=\"PASSIVE\",outcome=\"complete\"} 1",
        "litedal_checkpoints_total{mode=\"TRUNCATE\",outcome=\"complete\"} 1",
        "litedal_checkpoint_last_duration_seconds",
        "litedal_checkpoint_last_success_age_seconds",
        "litedal_health_status{check=\"read_latency\"} 0",
    ] {
        assert!(text.contains(name), "no {name} in:\n{text}");
    }
    let Some(promtool) = promtool() else {
        return;
    };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics:\n{report}\n{text}"
    );
    assert!(report.trim().is_empty(), "promtool warnings:\n{report}");
}
