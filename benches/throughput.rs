//! litedal against the raw SQLite floor and against what users would otherwise write, measured
//! side by side in one process on fresh temp-file databases.
//!
//! ```text
//! cargo bench --bench throughput             # the full table (a few minutes)
//! cargo bench --bench throughput -- --quick  # proves every case runs (CI)
//! ```
//!
//! Every case runs at least 3 times; the table shows the median, the min-max and the ratio to
//! the case's floor (the first row of the case). Absolute numbers drift on shared machines;
//! the ratios are what to compare.

use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::sql_types::BigInt;
use diesel_migrations::MigrationHarness;
use litedal::Limit;
use litedal::example::models::{NewUser, UserId};
use litedal::example::repo::Users;
use litedal::example::schema::users;
use litedal::{Database, Error};

#[path = "support/raw_sqlite.rs"]
mod raw_sqlite;

type BoxResult<T> = Result<T, Box<dyn StdError>>;

struct Settings {
    quick: bool,
    runs: usize,
    bulk_rows: usize,
    naive_rows: usize,
    table_rows: usize,
    reads_per_thread: usize,
    list_queries: usize,
    mixed: Duration,
    writers: Duration,
}

impl Settings {
    fn new(quick: bool) -> Settings {
        if quick {
            Settings {
                quick,
                runs: 3,
                bulk_rows: 20_000,
                naive_rows: 100,
                table_rows: 20_000,
                reads_per_thread: 20_000,
                list_queries: 500,
                mixed: Duration::from_millis(500),
                writers: Duration::from_millis(500),
            }
        } else {
            Settings {
                quick,
                runs: 3,
                bulk_rows: 1_000_000,
                naive_rows: 2_000,
                table_rows: 100_000,
                reads_per_thread: 300_000,
                list_queries: 5_000,
                mixed: Duration::from_secs(3),
                writers: Duration::from_secs(2),
            }
        }
    }
}

/// One row of the table: a variant of a case and its samples.
struct Measurement {
    case: &'static str,
    variant: String,
    unit: &'static str,
    samples: Vec<f64>,
    /// Lower is better (latencies, costs).
    lower_is_better: bool,
}

impl Measurement {
    fn median(&self) -> f64 {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    }

    fn min(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn max(&self) -> f64 {
        self.samples
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

struct Table {
    rows: Vec<Measurement>,
}

impl Table {
    fn add(
        &mut self,
        case: &'static str,
        variant: impl Into<String>,
        unit: &'static str,
        samples: Vec<f64>,
    ) {
        self.rows.push(Measurement {
            case,
            variant: variant.into(),
            unit,
            samples,
            lower_is_better: matches!(unit, "us" | "ms" | "ns/op"),
        });
    }

    fn print(&self) {
        println!();
        println!(
            "| case | variant | median | min-max | unit | ratio to floor |\n|---|---|---:|---:|---|---:|"
        );
        let mut floor: Option<(&str, f64, bool)> = None;
        for row in &self.rows {
            if floor.is_none_or(|(case, _, _)| case != row.case) {
                floor = Some((row.case, row.median(), row.lower_is_better));
            }
            let ratio = match floor {
                Some((_, f, lower)) if f > 0.0 && row.median() > 0.0 => {
                    // Always "how much of the floor's performance": for costs, floor / value.
                    if lower {
                        f / row.median()
                    } else {
                        row.median() / f
                    }
                }
                _ => f64::NAN,
            };
            println!(
                "| {} | {} | {} | {}-{} | {} | {:.2} |",
                row.case,
                row.variant,
                fmt(row.median()),
                fmt(row.min()),
                fmt(row.max()),
                row.unit,
                ratio
            );
        }
    }
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn emails(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}{i}@bench.example"))
        .collect()
}

fn open_litedal(
    path: &std::path::Path,
    configure: impl FnOnce(litedal::ConfigBuilder) -> litedal::ConfigBuilder,
) -> litedal::Result<Database> {
    Database::open(
        configure(litedal::example::config().database_url(format!("sqlite://{}", path.display())))
            .build()?,
    )
}

fn per_second(n: usize, started: Instant) -> f64 {
    n as f64 / started.elapsed().as_secs_f64()
}

/// Bulk insert of users: raw single-row floor, raw multi-row, litedal, naive diesel.
fn bulk_insert(s: &Settings, dir: &std::path::Path, table: &mut Table) -> BoxResult<()> {
    let emails = emails("bulk", s.bulk_rows);
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("user", e)).collect();
    let (mut raw, mut multi, mut lite, mut naive) = (vec![], vec![], vec![], vec![]);
    for run in 0..s.runs {
        let db = raw_sqlite::open_like_litedal(&dir.join(format!("bulk-raw-{run}.db")), "FULL")?;
        let started = Instant::now();
        raw.push(per_second(
            raw_sqlite::insert_users_single_row(&db, &emails)?,
            started,
        ));

        let db = raw_sqlite::open_like_litedal(&dir.join(format!("bulk-multi-{run}.db")), "FULL")?;
        let started = Instant::now();
        multi.push(per_second(
            raw_sqlite::insert_users_multi_row(&db, &emails, 32766 / 3)?,
            started,
        ));

        let db = open_litedal(&dir.join(format!("bulk-litedal-{run}.db")), |b| b)?;
        let started = Instant::now();
        lite.push(per_second(db.batch_insert(users::table, &rows)?, started));
        drop(db);

        // What users write without litedal: diesel's defaults (rollback journal, default
        // Insertable), one autocommit INSERT per row.
        let mut conn = SqliteConnection::establish(
            &dir.join(format!("bulk-naive-{run}.db"))
                .display()
                .to_string(),
        )?;
        conn.run_pending_migrations(litedal::Migrations(&litedal::example::MIGRATIONS))
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        for email in emails.iter().take(s.naive_rows) {
            diesel::insert_into(users::table)
                .values(&NaiveUser {
                    name: "user",
                    email,
                    active: true,
                })
                .execute(&mut conn)?;
        }
        naive.push(per_second(s.naive_rows, started));
    }
    let case = "bulk insert";
    table.add(
        case,
        format!(
            "raw SQLite, single-row statement, {} rows (floor)",
            s.bulk_rows
        ),
        "rows/s",
        raw,
    );
    table.add(case, "raw SQLite, multi-row statements", "rows/s", multi);
    table.add(case, "litedal batch_insert", "rows/s", lite);
    table.add(
        case,
        format!("naive diesel, autocommit per row, {} rows", s.naive_rows),
        "rows/s",
        naive,
    );
    Ok(())
}

/// The insert model a user writes without reading litedal's docs: diesel's default
/// `treat_none_as_default_value`.
#[derive(Insertable)]
#[diesel(table_name = users)]
struct NaiveUser<'a> {
    name: &'a str,
    email: &'a str,
    active: bool,
}

/// A database of `n` users for the read cases.
fn populated(s: &Settings, path: &std::path::Path) -> BoxResult<Database> {
    let db = open_litedal(path, |b| b)?;
    let emails = emails("r", s.table_rows);
    let rows: Vec<NewUser> = emails
        .iter()
        .enumerate()
        .map(|(i, e)| NewUser {
            name: "reader",
            email: e,
            active: i % 10 != 0,
        })
        .collect();
    db.batch_insert(users::table, &rows)?;
    Ok(db)
}

fn next_id(state: &mut u64, n: usize) -> i64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state % n as u64) as i64 + 1
}

/// Runs `threads` threads of `f(thread) -> ops` after a common start; returns ops/s.
fn parallel(
    threads: usize,
    f: impl Fn(usize) -> BoxResult<usize> + Send + Sync + 'static,
) -> BoxResult<f64> {
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (f, barrier) = (f.clone(), barrier.clone());
            thread::spawn(move || -> Result<usize, String> {
                barrier.wait();
                f(t).map_err(|e| e.to_string())
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut ops = 0;
    for h in handles {
        ops += h.join().map_err(|_| "thread panicked")??;
    }
    Ok(per_second(ops, started))
}

fn point_reads(s: &Settings, dir: &std::path::Path, table: &mut Table) -> BoxResult<()> {
    let path = dir.join("reads.db");
    let db = populated(s, &path)?;
    let n = s.table_rows;
    let per_thread = s.reads_per_thread;
    for threads in [1usize, 2] {
        let (mut raw, mut lite) = (vec![], vec![]);
        for _ in 0..s.runs {
            let p = path.clone();
            raw.push(parallel(threads, move |t| {
                let conn = raw_sqlite::open_reader_like_litedal(&p)?;
                let mut stmt = conn.prepare(&format!(
                    "SELECT {} FROM users WHERE id = ?",
                    raw_sqlite::USER_COLUMNS
                ))?;
                let mut state = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
                let mut found = 0;
                for _ in 0..per_thread {
                    stmt.bind_int(1, next_id(&mut state, n))?;
                    if let Some(row) = stmt.step()? {
                        let user = row.user()?;
                        found += usize::from(user.id > 0 && !user.name.is_empty());
                    }
                    stmt.reset()?;
                }
                assert_eq!(found, per_thread);
                Ok(per_thread)
            })?);
            let d = db.clone();
            lite.push(parallel(threads, move |t| {
                let mut state = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
                let mut found = 0;
                for _ in 0..per_thread {
                    let id = UserId(next_id(&mut state, n));
                    found += usize::from(Users::find(&d, id)?.is_some());
                }
                assert_eq!(found, per_thread);
                Ok(per_thread)
            })?);
        }
        let case = if threads == 1 {
            "point read, 1 thread"
        } else {
            "point read, 2 threads"
        };
        table.add(
            case,
            "raw SQLite, prepared statement per thread (floor)",
            "reads/s",
            raw,
        );
        table.add(
            case,
            "litedal Users::find, pool checkout per read",
            "reads/s",
            lite,
        );
    }

    // A filtered, limited list through the typed builder and the same SQL raw.
    let (mut raw, mut lite) = (vec![], vec![]);
    let queries = s.list_queries;
    for _ in 0..s.runs {
        let conn = raw_sqlite::open_reader_like_litedal(&path)?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {} FROM users WHERE active = ? AND email LIKE ? ESCAPE '\\' ORDER BY id ASC LIMIT ?",
            raw_sqlite::USER_COLUMNS
        ))?;
        let started = Instant::now();
        for _ in 0..queries {
            stmt.bind_int(1, 1)?;
            stmt.bind_text(2, "%@bench.example")?;
            stmt.bind_int(3, 100)?;
            let mut rows = 0;
            while let Some(row) = stmt.step()? {
                let _user = row.user()?;
                rows += 1;
            }
            stmt.reset()?;
            assert_eq!(rows, 100);
        }
        raw.push(per_second(queries, started));
        let started = Instant::now();
        for _ in 0..queries {
            let users = Users::query()
                .active(true)
                .email_domain("bench.example")
                .limit(Limit::new(100)?)
                .load(&db)?;
            assert_eq!(users.len(), 100);
        }
        lite.push(per_second(queries, started));
    }
    let case = "list: active + email domain, limit 100";
    table.add(case, "raw SQLite, same SQL (floor)", "queries/s", raw);
    table.add(case, "litedal UserQuery", "queries/s", lite);

    // Pool checkout alone: litedal's read pool on 1 and 2 threads, and a plain r2d2 pool with
    // r2d2's default `test_on_check_out` (a `SELECT 1` on every checkout).
    let ops = per_thread;
    for threads in [1usize, 2] {
        let mut checkout = vec![];
        for _ in 0..s.runs {
            let d = db.clone();
            let per_s = parallel(threads, move |_| {
                for _ in 0..ops {
                    drop(d.read_connection()?);
                }
                Ok(ops)
            })?;
            checkout.push(1e9 / per_s * threads as f64);
        }
        let variant = format!("litedal read pool, {threads} thread(s), no ping");
        table.add("pool checkout + return", variant, "ns/op", checkout);
    }
    let mut pinged = vec![];
    let pool = Pool::builder()
        .max_size(4)
        .test_on_check_out(true)
        .build(ConnectionManager::<SqliteConnection>::new(
            path.display().to_string(),
        ))?;
    for _ in 0..s.runs {
        let started = Instant::now();
        for _ in 0..ops {
            drop(pool.get()?);
        }
        pinged.push(started.elapsed().as_nanos() as f64 / ops as f64);
    }
    table.add(
        "pool checkout + return",
        "r2d2 default: SELECT 1 on checkout, 1 thread",
        "ns/op",
        pinged,
    );
    Ok(())
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = BigInt)]
    value: i64,
}

fn rmw(conn: &mut SqliteConnection) -> QueryResult<()> {
    let v =
        diesel::sql_query("SELECT value FROM counters WHERE id = 1").get_result::<Value>(conn)?;
    diesel::sql_query("UPDATE counters SET value = ? WHERE id = 1")
        .bind::<BigInt, _>(v.value + 1)
        .execute(conn)?;
    Ok(())
}

struct MixedResult {
    reads_per_s: f64,
    commits_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    write_p99_us: f64,
    write_max_us: f64,
    busy: u64,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// `readers` readers and `writers` writers for `duration`; `read` and `write` return Ok(true)
/// on success, Ok(false) on a busy error.
fn mixed_load(
    readers: usize,
    writers: usize,
    duration: Duration,
    read: impl Fn(usize, &mut u64) -> BoxResult<bool> + Send + Sync + 'static,
    write: impl Fn() -> BoxResult<bool> + Send + Sync + 'static,
) -> BoxResult<MixedResult> {
    let read = Arc::new(read);
    let write = Arc::new(write);
    let stop = Arc::new(AtomicBool::new(false));
    let busy = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(readers + writers + 1));
    let mut read_handles = vec![];
    for r in 0..readers {
        let (read, stop, busy, barrier) =
            (read.clone(), stop.clone(), busy.clone(), barrier.clone());
        read_handles.push(thread::spawn(move || -> Result<Vec<u64>, String> {
            let mut state = 0x9E37_79B9_7F4A_7C15 ^ (r as u64 + 1);
            let mut latencies = Vec::with_capacity(1 << 20);
            barrier.wait();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match read(r, &mut state) {
                    Ok(true) => latencies.push(started.elapsed().as_nanos() as u64),
                    Ok(false) => {
                        busy.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(latencies)
        }));
    }
    let mut write_handles = vec![];
    for _ in 0..writers {
        let (write, stop, busy, barrier) =
            (write.clone(), stop.clone(), busy.clone(), barrier.clone());
        write_handles.push(thread::spawn(move || -> Result<Vec<u64>, String> {
            let mut latencies = Vec::new();
            barrier.wait();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match write() {
                    Ok(true) => latencies.push(started.elapsed().as_nanos() as u64),
                    Ok(false) => {
                        busy.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(latencies)
        }));
    }
    barrier.wait();
    let started = Instant::now();
    thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut reads = vec![];
    for h in read_handles {
        reads.extend(h.join().map_err(|_| "reader panicked")??);
    }
    let mut writes = vec![];
    for h in write_handles {
        writes.extend(h.join().map_err(|_| "writer panicked")??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    reads.sort_unstable();
    writes.sort_unstable();
    Ok(MixedResult {
        reads_per_s: reads.len() as f64 / elapsed,
        commits_per_s: writes.len() as f64 / elapsed,
        p50_us: percentile(&reads, 0.5),
        p99_us: percentile(&reads, 0.99),
        max_us: reads.last().map_or(f64::NAN, |v| *v as f64 / 1000.0),
        write_p99_us: percentile(&writes, 0.99),
        write_max_us: writes.last().map_or(f64::NAN, |v| *v as f64 / 1000.0),
        busy: busy.load(Ordering::Relaxed),
    })
}

fn create_counters(conn: &mut SqliteConnection) -> QueryResult<()> {
    conn.batch_execute(
        "CREATE TABLE IF NOT EXISTS counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL);
         INSERT OR IGNORE INTO counters VALUES (1, 0);",
    )
}

fn litedal_mixed(
    db: &Database,
    readers: usize,
    writers: usize,
    duration: Duration,
    n: usize,
) -> BoxResult<MixedResult> {
    let (rd, wd) = (db.clone(), db.clone());
    mixed_load(
        readers,
        writers,
        duration,
        move |_, state| match Users::find(&rd, UserId(next_id(state, n))) {
            Ok(_) => Ok(true),
            Err(Error::Busy) => Ok(false),
            Err(e) => Err(e.into()),
        },
        move || match wd.transaction(|conn| Ok(rmw(conn)?)) {
            Ok(()) => Ok(true),
            Err(Error::Busy) => Ok(false),
            Err(e) => Err(e.into()),
        },
    )
}

fn is_busy(e: &diesel::result::Error) -> bool {
    e.to_string().contains("locked")
}

fn mixed(s: &Settings, dir: &std::path::Path, table: &mut Table) -> BoxResult<()> {
    let n = s.table_rows;
    let mut rows: Vec<(&'static str, Vec<MixedResult>)> = vec![
        ("litedal (defaults)", vec![]),
        ("diesel defaults: deferred BEGIN, rollback journal", vec![]),
    ];
    for run in 0..s.runs {
        let db = populated(s, &dir.join(format!("mixed-litedal-{run}.db")))?;
        db.transaction(|conn| Ok(create_counters(conn)?))?;
        rows[0].1.push(litedal_mixed(&db, 2, 2, s.mixed, n)?);
        drop(db);

        // The same data and workload on what diesel gives by default: an r2d2 pool of plain
        // connections, rollback journal, no busy timeout, deferred transactions.
        let path = dir.join(format!("mixed-diesel-{run}.db"));
        {
            let db = populated(s, &path)?;
            db.transaction(|conn| Ok(create_counters(conn)?))?;
        }
        {
            let mut conn = SqliteConnection::establish(&path.display().to_string())?;
            conn.batch_execute("PRAGMA journal_mode = DELETE")?;
        }
        let pool =
            Pool::builder()
                .max_size(4)
                .build(ConnectionManager::<SqliteConnection>::new(
                    path.display().to_string(),
                ))?;
        let (rp, wp) = (pool.clone(), pool.clone());
        rows[1].1.push(mixed_load(
            2,
            2,
            s.mixed,
            move |_, state| {
                let mut conn = rp.get()?;
                match users::table
                    .find(next_id(state, n))
                    .select(litedal::example::models::User::as_select())
                    .first(&mut conn)
                    .optional()
                {
                    Ok(_) => Ok(true),
                    Err(e) if is_busy(&e) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            },
            move || {
                let mut conn = wp.get()?;
                let conn: &mut SqliteConnection = &mut conn;
                match conn.transaction(rmw) {
                    Ok(()) => Ok(true),
                    Err(e) if is_busy(&e) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            },
        )?);
    }
    for (variant, results) in rows {
        let v = |f: fn(&MixedResult) -> f64| results.iter().map(f).collect::<Vec<_>>();
        table.add(
            "mixed 2R+2W: reads",
            variant,
            "reads/s",
            v(|r| r.reads_per_s),
        );
        table.add(
            "mixed 2R+2W: commits",
            variant,
            "commits/s",
            v(|r| r.commits_per_s),
        );
        table.add("mixed 2R+2W: read p50", variant, "us", v(|r| r.p50_us));
        table.add("mixed 2R+2W: read p99", variant, "us", v(|r| r.p99_us));
        table.add("mixed 2R+2W: read max", variant, "us", v(|r| r.max_us));
        table.add(
            "mixed 2R+2W: busy errors",
            variant,
            "errors",
            v(|r| r.busy as f64),
        );
    }
    // Group rows of one case together (the floor of each mixed case is litedal's row).
    table.rows.sort_by_key(|r| r.case);
    Ok(())
}

/// Writers of one process: the in-process gate against SQLite's busy handler alone.
fn write_gate(s: &Settings, dir: &std::path::Path, table: &mut Table) -> BoxResult<()> {
    let mut results: Vec<(String, Vec<MixedResult>)> = vec![
        ("4 writers, in-process write gate (default)".into(), vec![]),
        ("4 writers, no gate (lock polling only)".into(), vec![]),
        (
            "4 writers, SQLite's busy handler (BEGIN IMMEDIATE, busy_timeout)".into(),
            vec![],
        ),
    ];
    for run in 0..s.runs {
        for (i, gate) in [true, false].into_iter().enumerate() {
            let db = open_litedal(&dir.join(format!("gate-{gate}-{run}.db")), |b| {
                b.write_gate(gate)
            })?;
            db.transaction(|conn| Ok(create_counters(conn)?))?;
            results[i].1.push(litedal_mixed(&db, 0, 4, s.writers, 1)?);
        }
        // The same writers on litedal's write pool, but taking the lock with diesel's
        // immediate_transaction: SQLite's busy handler (1-100 ms sleeps) decides who waits.
        let db = open_litedal(&dir.join(format!("gate-busy-handler-{run}.db")), |b| {
            b.write_gate(false)
        })?;
        db.transaction(|conn| Ok(create_counters(conn)?))?;
        let wd = db.clone();
        results[2].1.push(mixed_load(
            0,
            4,
            s.writers,
            |_, _| Ok(true),
            move || {
                let mut conn = wd.write_connection()?;
                match conn.immediate_transaction(rmw) {
                    Ok(()) => Ok(true),
                    Err(e) if is_busy(&e) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            },
        )?);
    }
    for (variant, r) in results {
        table.add(
            "writers: commits",
            variant.clone(),
            "commits/s",
            r.iter().map(|r| r.commits_per_s).collect(),
        );
        table.add(
            "writers: commit max",
            variant.clone(),
            "us",
            r.iter().map(|r| r.write_max_us).collect(),
        );
        table.add(
            "writers: commit p99",
            variant.clone(),
            "us",
            r.iter().map(|r| r.write_p99_us).collect(),
        );
        table.add(
            "writers: busy errors",
            variant,
            "errors",
            r.iter().map(|r| r.busy as f64).collect(),
        );
    }
    Ok(())
}

fn open_cost(s: &Settings, dir: &std::path::Path, table: &mut Table) -> BoxResult<()> {
    let mut open = vec![];
    for run in 0..s.runs.max(5) {
        let path = dir.join(format!("open-{run}.db"));
        let started = Instant::now();
        let db = open_litedal(&path, |b| b)?;
        open.push(started.elapsed().as_secs_f64() * 1e3);
        drop(db);
    }
    table.add(
        "open + migrate a new database",
        "litedal defaults (25 connections)",
        "ms",
        open,
    );
    Ok(())
}

/// `Rss` and `Anonymous` of this process in KiB, from /proc/self/smaps_rollup.
fn memory_kib() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Anonymous:"))
}

/// Memory of the default pools, measured in a fresh child process (so no allocator state of
/// the other cases hides or inflates it).
fn memory(s: &Settings, dir: &std::path::Path) -> BoxResult<()> {
    let path = dir.join("memory.db");
    drop(populated(s, &path)?);
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("--memory-child")
        .arg(&path)
        .output()?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned().into());
    }
    Ok(())
}

fn memory_child(path: &std::path::Path) -> BoxResult<()> {
    let (rss0, anon0) = memory_kib();
    let db = open_litedal(path, |b| b.checkpoint_interval(Duration::ZERO))?;
    let (rss1, anon1) = memory_kib();
    // Fill every read connection's page cache with a full scan.
    let conns: Vec<_> = (0..db.config().read_pool_size())
        .map(|_| db.read_connection())
        .collect::<Result<_, _>>()?;
    for mut conn in conns {
        let _: i64 = users::table
            .filter(users::name.ne(""))
            .count()
            .get_result(&mut conn)?;
    }
    let (rss2, anon2) = memory_kib();
    println!(
        "memory of the default pools (read {} + write {} connections, {} users): after open +{} KiB anonymous (+{} KiB RSS); \
         after a full scan on every read connection +{} KiB anonymous (+{} KiB RSS, which counts the mmap'ed file once per connection)",
        db.config().read_pool_size(),
        db.config().write_pool_size(),
        users::table
            .count()
            .get_result::<i64>(&mut db.read_connection()?)?,
        anon1.saturating_sub(anon0),
        rss1.saturating_sub(rss0),
        anon2.saturating_sub(anon0),
        rss2.saturating_sub(rss0),
    );
    Ok(())
}

fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--memory-child") {
        let path = args.get(i + 1).ok_or("--memory-child needs a path")?;
        return memory_child(std::path::Path::new(path));
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let s = Settings::new(quick);
    if s.quick {
        raw_sqlite::self_check()?;
        eprintln!("raw_sqlite self-check passed");
    }
    let dir = tempfile::tempdir()?;
    let mut table = Table { rows: vec![] };
    let started = Instant::now();
    println!(
        "litedal throughput benchmark ({}; {} runs per case; cores: {})",
        if s.quick { "--quick" } else { "full" },
        s.runs,
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    bulk_insert(&s, dir.path(), &mut table)?;
    eprintln!(
        "bulk insert done ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
    point_reads(&s, dir.path(), &mut table)?;
    eprintln!("reads done ({:.0} s)", started.elapsed().as_secs_f64());
    let mut mixed_table = Table { rows: vec![] };
    mixed(&s, dir.path(), &mut mixed_table)?;
    eprintln!("mixed done ({:.0} s)", started.elapsed().as_secs_f64());
    write_gate(&s, dir.path(), &mut table)?;
    open_cost(&s, dir.path(), &mut table)?;
    table.rows.extend(mixed_table.rows);
    table.print();
    memory(&s, dir.path())?;
    println!("total time: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
