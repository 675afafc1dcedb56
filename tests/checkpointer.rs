//! The background checkpointer under a steady write load, in a test binary of its own: it
//! counts this process's checkpointer threads by name in /proc and captures the process's
//! log, so no other test may open a database with the checkpointer on at the same time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use litedal::example::schema::users;
use litedal::maintenance::CHECKPOINTER_THREAD_NAME;
use litedal::{CheckDepth, Database, Synchronous};

/// Threads of this process named like the checkpointer.
fn checkpointer_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == CHECKPOINTER_THREAD_NAME)
        .count()
}

/// Waits (at most 10 s) until `checkpointer_threads()` is `n`: a new thread names itself
/// only once it runs, and a joined thread's /proc entry can outlive the join by a moment.
fn await_checkpointer_threads(n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    while checkpointer_threads() != n && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    checkpointer_threads()
}

/// The log of this test process, as text.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    fn install() -> Log {
        let log = Log::default();
        tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_env_filter("litedal=debug")
            .with_ansi(false)
            .init();
        log
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;

    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}

/// Only metadata: never a descriptor on a file SQLite has open (closing it would drop
/// SQLite's POSIX locks).
fn wal_size(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len())
}

fn open(
    path: &Path,
    configure: impl FnOnce(litedal::ConfigBuilder) -> litedal::ConfigBuilder,
) -> Database {
    let config = configure(
        litedal::example::config()
            .database_url(path.display().to_string())
            // No fsync per commit: this test is about WAL size, not durability.
            .synchronous(Synchronous::Normal)
            // SQLite's own commit-time checkpoints off: only litedal's checkpointer bounds
            // the WAL here.
            .wal_autocheckpoint(0),
    )
    .build()
    .unwrap();
    Database::open(config).unwrap()
}

/// One write transaction: `rows` users starting at id `first`.
fn write(db: &Database, first: i64, rows: i64) {
    db.transaction(|c| {
        let batch: Vec<_> = (first..first + rows)
            .map(|i| {
                (
                    users::id.eq(i),
                    users::name.eq(format!("user {i}")),
                    users::email.eq(format!("user{i}@example.com")),
                )
            })
            .collect();
        Ok(diesel::insert_into(users::table).values(batch).execute(c)?)
    })
    .unwrap();
}

#[test]
fn background_checkpointer_bounds_the_wal_and_stops_when_the_database_is_dropped() {
    const ROWS_PER_TX: i64 = 4;
    const LIMIT: u64 = 512 * 1024;
    let log = Log::install();
    assert_eq!(checkpointer_threads(), 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bounded.db");
    let db = open(&path, |b| {
        b.checkpoint_interval(Duration::from_millis(100))
            .wal_size_limit(LIMIT)
    });
    assert_eq!(
        await_checkpointer_threads(1),
        1,
        "one checkpointer per database"
    );
    assert!(log.text().contains("Database checkpointer started"));

    // A steady load for 2 seconds: one writer (a transaction about every millisecond), two
    // readers with short read transactions, and a sampler of the WAL size.
    let stop = Arc::new(AtomicBool::new(false));
    let max_wal = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, max_wal, path) = (stop.clone(), max_wal.clone(), path.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                max_wal.fetch_max(wal_size(&path), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, db) = (stop.clone(), db.clone());
            thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    db.read(|c| Ok(users::table.count().get_result::<i64>(c)?))
                        .unwrap();
                    reads += 1;
                    thread::sleep(Duration::from_millis(1));
                }
                reads
            })
        })
        .collect();
    let started = Instant::now();
    let mut transactions = 0;
    while started.elapsed() < Duration::from_secs(2) {
        write(&db, 1 + transactions * ROWS_PER_TX, ROWS_PER_TX);
        transactions += 1;
        thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    let max_wal = max_wal.load(Ordering::Relaxed);

    let last = db.last_checkpoint().expect("the checkpointer ran");
    assert!(last.finished_at >= std::time::SystemTime::now() - started.elapsed());
    assert!(db.integrity_check(CheckDepth::Quick).unwrap().is_empty());
    let count = db
        .read(|c| Ok(users::table.count().get_result::<i64>(c)?))
        .unwrap();
    assert_eq!(count, transactions * ROWS_PER_TX);

    // Dropping the last clone stops and joins the thread before drop returns: the thread's
    // last words are in the log by then, and the thread leaves /proc.
    assert!(!log.text().contains("Database checkpointer stopped"));
    let dropping = Instant::now();
    drop(db);
    let drop_took = dropping.elapsed();
    let right_after_drop = checkpointer_threads();
    let text = log.text();
    assert!(text.contains("Database checkpointer stopped"), "{text}");
    assert_eq!(
        await_checkpointer_threads(0),
        0,
        "the checkpointer thread is gone"
    );
    let checkpoints = text.matches("Database checkpoint ").count();
    let escalations = text.matches("escalated to TRUNCATE").count();

    // The control: the same transactions with no checkpoint at all grow the WAL unbounded.
    let control_path = dir.path().join("unbounded.db");
    let control = open(&control_path, |b| b.checkpoint_interval(Duration::ZERO));
    assert_eq!(checkpointer_threads(), 0, "interval 0: no thread");
    for t in 0..transactions {
        write(&control, 1 + t * ROWS_PER_TX, ROWS_PER_TX);
    }
    let unbounded = wal_size(&control_path);
    println!(
        "{transactions} write transactions and {reads} reads in 2 s: WAL max {max_wal} bytes \
         with the checkpointer (limit {LIMIT}, every 100 ms), {unbounded} bytes without; \
         {checkpoints} background checkpoints ({escalations} escalated to TRUNCATE); last: \
         {last}; drop took {drop_took:?}, checkpointer threads right after: {right_after_drop}"
    );
    assert!(
        max_wal < unbounded,
        "checkpointed WAL peaked at {max_wal} bytes, unbounded reached {unbounded}"
    );
}
