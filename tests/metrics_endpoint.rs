//! The `/metrics` and `/health` endpoint over real HTTP on loopback, during a concurrent
//! workload; the body is parsed as Prometheus text exposition and checked against
//! `connection_stats()`.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use diesel::prelude::*;
use litedal::example::schema::users;
use litedal::{ConnectionStats, Limits, PoolStats};
use prometheus_parse::{Scrape, Value};

use common::{http_get, parse_metrics};

const HOUR: Duration = Duration::from_secs(3600);

fn loopback() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// The value of `name` with the given labels; panics when there is not exactly one, or when
/// its type is not what the name promises (`_total` counters, everything else gauges).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    match (&found[0].value, name.ends_with("_total")) {
        (Value::Counter(v), true) | (Value::Gauge(v), false) => *v,
        (other, _) => panic!("{name}: unexpected type {other:?}"),
    }
}

/// Every pool figure of `p` as the metric that exports it.
fn pool_expectations(p: &PoolStats) -> Vec<(&'static str, f64)> {
    let q = &p.queries;
    vec![
        ("litedal_pool_max_connections", f64::from(p.max_size)),
        ("litedal_pool_open_connections", f64::from(p.open)),
        ("litedal_pool_idle_connections", f64::from(p.idle)),
        ("litedal_pool_active_connections", f64::from(p.active)),
        ("litedal_pool_utilization_percent", p.pool_utilization),
        ("litedal_pool_checkouts_total", p.checkouts as f64),
        (
            "litedal_pool_checkout_wait_seconds_total",
            p.checkout_wait_total.as_secs_f64(),
        ),
        (
            "litedal_pool_checkout_wait_max_seconds",
            p.checkout_wait_max.as_secs_f64(),
        ),
        (
            "litedal_pool_checkout_timeouts_total",
            p.checkout_timeouts as f64,
        ),
        (
            "litedal_pool_connections_opened_total",
            p.connections_opened as f64,
        ),
        (
            "litedal_pool_connections_closed_total",
            p.connections_closed as f64,
        ),
        (
            "litedal_pool_connection_held_seconds_total",
            p.held_total.as_secs_f64(),
        ),
        (
            "litedal_pool_connection_held_max_seconds",
            p.held_max.as_secs_f64(),
        ),
        ("litedal_queries_total", q.queries as f64),
        ("litedal_query_errors_total", q.errors as f64),
        ("litedal_query_busy_errors_total", q.busy_errors as f64),
        ("litedal_slow_queries_total", q.slow_queries as f64),
        (
            "litedal_query_duration_seconds_total",
            q.duration_total.as_secs_f64(),
        ),
        (
            "litedal_query_duration_max_seconds",
            q.duration_max.as_secs_f64(),
        ),
    ]
}

fn assert_matches(scrape: &Scrape, stats: &ConnectionStats) {
    for pool in &stats.pools {
        for (name, expected) in pool_expectations(pool) {
            let got = value(scrape, name, &[("pool", pool.pool.as_str())]);
            assert_eq!(got, expected, "{name}{{pool={}}}", pool.pool);
        }
    }
    for (role, counts) in [
        ("read", stats.transactions.read),
        ("write", stats.transactions.write),
    ] {
        for (outcome, n) in [
            ("committed", counts.committed),
            ("rolled_back", counts.rolled_back),
        ] {
            let got = value(
                scrape,
                "litedal_transactions_total",
                &[("role", role), ("outcome", outcome)],
            );
            assert_eq!(got, n as f64, "transactions {role} {outcome}");
        }
    }
    let files = stats.files.as_ref().expect("a file database");
    assert_eq!(
        value(scrape, "litedal_database_size_bytes", &[]),
        files.database_bytes as f64
    );
    assert_eq!(
        value(scrape, "litedal_wal_size_bytes", &[]),
        files.wal_bytes as f64
    );
    for (name, figure) in [
        ("litedal_page_size_bytes", files.page_size),
        ("litedal_database_pages", files.page_count),
        ("litedal_freelist_pages", files.freelist_count),
    ] {
        assert_eq!(
            Some(value(scrape, name, &[])),
            figure.map(|n| n as f64),
            "{name}"
        );
    }
    assert_eq!(value(scrape, "litedal_instrumentation_enabled", &[]), 1.0);
    assert_eq!(
        value(scrape, "litedal_info", &[("journal_mode", "wal")]),
        1.0
    );
    // Every litedal metric has help text (a histogram's under its family's name).
    for sample in &scrape.samples {
        let family = ["_sum", "_count", "_bucket"]
            .iter()
            .find_map(|suffix| sample.metric.strip_suffix(suffix))
            .filter(|family| scrape.docs.contains_key(*family))
            .unwrap_or(&sample.metric);
        assert!(
            scrape.docs.contains_key(family),
            "{} has no HELP",
            sample.metric
        );
    }
}

#[test]
fn metrics_are_scraped_over_http_during_a_workload_and_match_the_stats() {
    let db = litedal::example::test_db_with(|b| {
        b.metrics_addr(loopback())
            .pool_size(2)
            .health_read_latency(Limits::new(HOUR, HOUR))
            .health_write_latency(Limits::new(HOUR, HOUR))
            .health_pool_utilization(Limits::off())
    })
    .unwrap();
    let addr = db.metrics_addr().expect("the endpoint runs");
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");

    // Readers and a writer run until the scrapes are done (and at most 20 000 rounds).
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let db = db.db().clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut rounds = 0u32;
                while !stop.load(Ordering::Relaxed) && rounds < 20_000 {
                    if i == 0 {
                        db.transaction(|conn| {
                            diesel::insert_into(users::table)
                                .values((
                                    users::name.eq("w"),
                                    users::email.eq(format!("w{rounds}@example.com")),
                                ))
                                .execute(conn)?;
                            Ok(())
                        })
                        .unwrap();
                    } else {
                        let _: i64 = db
                            .read(|conn| Ok(users::table.count().get_result(conn)?))
                            .unwrap();
                    }
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();

    let mut last_checkouts = 0.0;
    for _ in 0..8 {
        let (status, body) = http_get(addr, "/metrics");
        assert_eq!(status, 200, "{body}");
        let scrape = parse_metrics(&body);
        let checkouts = value(&scrape, "litedal_pool_checkouts_total", &[("pool", "read")]);
        assert!(checkouts >= last_checkouts, "counters never go back");
        last_checkouts = checkouts;
        assert_eq!(
            value(&scrape, "litedal_pool_max_connections", &[("pool", "read")]),
            4.0
        );
    }
    stop.store(true, Ordering::Relaxed);
    let rounds: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(rounds > 0);

    // Quiet now: a scrape and the stats taken after it agree on every figure (taking
    // statistics does not move the counters they report).
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    let stats = db.connection_stats();
    assert_matches(&parse_metrics(&body), &stats);
    assert!(stats.pool_for(litedal::Role::Read).checkouts as f64 >= last_checkouts);
    assert!(stats.transactions.write.committed > 0);

    let (status, body) = http_get(addr, "/health");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "healthy", "{body}");

    let (status, _) = http_get(addr, "/nope");
    assert_eq!(status, 404);

    assert!(db.shutdown_metrics_server());
    assert_eq!(db.metrics_addr(), None);
    assert!(!db.shutdown_metrics_server());
}

#[test]
fn health_answers_503_when_a_check_fails() {
    let db = litedal::example::test_db_with(|b| {
        b.metrics_addr(loopback())
            .health_read_latency(Limits::new(Duration::ZERO, Duration::from_nanos(1)))
    })
    .unwrap();
    let addr = db.metrics_addr().unwrap();
    let (status, body) = http_get(addr, "/health");
    assert_eq!(status, 503, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "unhealthy");
    let read = health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "read_latency")
        .unwrap();
    assert_eq!(read["status"], "unhealthy");
    assert_eq!(read["unit"], "seconds");
    assert!(read["value"].as_f64().unwrap() > 0.0);
    assert_eq!(read["threshold"]["unhealthy_at"], 1e-9);
}

#[test]
fn the_endpoint_stops_when_the_last_database_clone_is_dropped() {
    let db = litedal::example::test_db_with(|b| b.metrics_addr(loopback())).unwrap();
    let addr = db.metrics_addr().unwrap();
    let clone = db.db().clone();
    assert_eq!(http_get(addr, "/metrics").0, 200);
    drop(db);
    // A clone still holds the database: still serving.
    assert_eq!(http_get(addr, "/metrics").0, 200);
    drop(clone);
    // The accepting thread was joined and its listener closed.
    let mut freed = false;
    for _ in 0..100 {
        if TcpListener::bind(addr).is_ok() {
            freed = true;
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        freed,
        "{addr} is still taken after the database was dropped"
    );
}

#[test]
fn a_taken_address_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    match litedal::example::test_db_with(|b| b.metrics_addr(Some(addr))) {
        Err(litedal::Error::Metrics(message)) => {
            assert!(message.contains(&addr.to_string()), "{message}");
            assert!(message.contains("DB_METRICS_ADDR"), "{message}");
        }
        other => panic!("expected Error::Metrics, got {other:?}"),
    }
}

/// D1: writes that time out queued on the write gate (no statement ran for them) are busy
/// errors of the write pool, in `connection_stats()` and in the `/metrics` text.
#[test]
fn write_gate_timeouts_count_as_busy_errors() {
    const TIMEOUTS: u64 = 5;
    let test_db =
        litedal::example::test_db_with(|b| b.busy_timeout(Duration::from_millis(40))).unwrap();
    let db = test_db.db().clone();
    let before = db.connection_stats();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let db = db.clone();
        thread::spawn(move || {
            db.transaction(|_conn| {
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok(())
            })
        })
    };
    held_rx.recv().unwrap();
    for _ in 0..TIMEOUTS {
        let result = db.transaction(|_conn| Ok(()));
        assert!(matches!(result, Err(litedal::Error::Busy)), "{result:?}");
    }
    release_tx.send(()).unwrap();
    holder.join().unwrap().unwrap();

    let busy = |stats: &ConnectionStats| {
        let write = stats
            .pools
            .iter()
            .find(|p| p.pool == litedal::PoolName::Write)
            .unwrap();
        (write.queries.busy_errors, stats.total.queries.busy_errors)
    };
    let (write_before, total_before) = busy(&before);
    let after = db.connection_stats();
    assert_eq!(
        busy(&after),
        (write_before + TIMEOUTS, total_before + TIMEOUTS)
    );
    let scrape = parse_metrics(&db.render_metrics().unwrap());
    assert_eq!(
        value(
            &scrape,
            "litedal_query_busy_errors_total",
            &[("pool", "write")]
        ),
        (write_before + TIMEOUTS) as f64
    );
}

/// One `GET` with extra header lines; returns the status code.
fn get_with(addr: SocketAddr, path: &str, headers: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    raw.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// This process's thread count.
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// R7: 200 clients that send half a request and then nothing neither stop a normal scrape
/// nor get a thread each (tiny_http started one per connection, without bound or timeout).
#[test]
fn slow_clients_neither_block_a_scrape_nor_grow_threads_without_bound() {
    use std::io::Write;
    let db = litedal::example::test_db_with(|b| b.metrics_addr(loopback())).unwrap();
    let addr = db.metrics_addr().unwrap();
    assert_eq!(http_get(addr, "/metrics").0, 200);
    let before = threads();
    let slow: Vec<std::net::TcpStream> = (0..200)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metr").unwrap();
            s
        })
        .collect();
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("litedal_queries_total"));
    let during = threads();
    assert!(
        during < before + 100,
        "{during} threads with 200 slow clients (from {before}): one per connection"
    );
    drop(slow);
}

/// R7: concurrent `/health` requests share one write probe (counted as write transactions).
#[test]
fn concurrent_health_requests_run_one_probe() {
    use diesel::connection::SimpleConnection;
    const REQUESTS: usize = 12;
    let test_db = litedal::example::test_db_with(|b| {
        b.metrics_addr(loopback())
            .busy_timeout(Duration::from_secs(60))
    })
    .unwrap();
    let db = test_db.db().clone();
    let addr = db.metrics_addr().unwrap();
    let committed = || db.connection_stats().transactions.write.committed;
    let before = committed();
    // Another connection holds the write lock: the first probe waits for it.
    let mut locker = diesel::SqliteConnection::establish(test_db.path().to_str().unwrap()).unwrap();
    locker
        .batch_execute("PRAGMA busy_timeout = 60000; BEGIN IMMEDIATE")
        .unwrap();
    let first = thread::spawn(move || http_get(addr, "/health").0);
    while db.connection_stats().pool_for(litedal::Role::Write).active == 0 {
        thread::sleep(Duration::from_millis(2));
    }
    let others: Vec<_> = (1..REQUESTS)
        .map(|_| thread::spawn(move || http_get(addr, "/health").0))
        .collect();
    thread::sleep(Duration::from_millis(200));
    locker.batch_execute("ROLLBACK").unwrap();
    assert_eq!(first.join().unwrap(), 200);
    for other in others {
        assert_eq!(other.join().unwrap(), 200);
    }
    assert_eq!(committed() - before, 1, "{REQUESTS} requests, one probe");
}

/// R7: with a token set, every request needs it as a bearer token.
#[test]
fn the_token_is_required_when_set() {
    let token = "0123456789abcdef-metrics";
    let db = litedal::example::test_db_with(|b| {
        b.metrics_addr(loopback())
            .metrics_token(Some(token.to_owned()))
    })
    .unwrap();
    let addr = db.metrics_addr().unwrap();
    assert_eq!(get_with(addr, "/metrics", ""), 401);
    assert_eq!(get_with(addr, "/health", ""), 401);
    assert_eq!(
        get_with(
            addr,
            "/metrics",
            "Authorization: Bearer 0123456789abcdef-metricX\r\n"
        ),
        401
    );
    assert_eq!(
        get_with(
            addr,
            "/metrics",
            "Authorization: Basic 0123456789abcdef-metrics\r\n"
        ),
        401
    );
    let good = format!("Authorization: Bearer {token}\r\n");
    assert_eq!(get_with(addr, "/metrics", &good), 200);
    assert_eq!(get_with(addr, "/health", &good), 200);
    // A short token is refused at build, without showing it.
    match litedal::example::test_db_with(|b| b.metrics_token(Some("short".into()))) {
        Err(litedal::Error::Config { var, value, .. }) => {
            assert_eq!(var, "DB_METRICS_TOKEN");
            assert!(!value.contains("short"));
        }
        other => panic!("{other:?}"),
    }
}
