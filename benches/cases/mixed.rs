//! Reads and writes at once: 2 readers + 2 writers against diesel's defaults, writers
//! through the write gate or not, and a 90 % read / 10 % write load at 1, 2, 4 and 8
//! threads.

use super::*;

use std::sync::Barrier;

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
            let mut state = seed(r);
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
        p50_us: percentile_us(&reads, 0.5),
        p99_us: percentile_us(&reads, 0.99),
        max_us: reads.last().map_or(f64::NAN, |v| *v as f64 / 1000.0),
        write_p99_us: percentile_us(&writes, 0.99),
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

pub fn two_and_two(s: &Settings, dir: &Path, table: &mut Table) -> BoxResult<()> {
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
    Ok(())
}

/// Writers of one process: the in-process gate against SQLite's busy handler alone.
pub fn writers(s: &Settings, dir: &Path, table: &mut Table) -> BoxResult<()> {
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

/// What one thread of the scaling load measured.
struct ScalingThread {
    reads: Vec<u64>,
    writes: Vec<u64>,
}

/// `threads` threads for `s.mixed`, each doing 9 point reads then 1 write transaction
/// (a read-modify-write of one counter), every operation timed.
pub fn scaling(s: &Settings, dir: &Path, table: &mut Table) -> BoxResult<()> {
    let n = s.table_rows;
    for threads in [1usize, 2, 4, 8] {
        let (mut ops, mut read_p99, mut write_p99, mut commits) = (vec![], vec![], vec![], vec![]);
        for run in 0..s.runs {
            let db = populated(s, &dir.join(format!("scaling-mixed-{threads}-{run}.db")))?;
            db.transaction(|conn| Ok(create_counters(conn)?))?;
            let stop = Arc::new(AtomicBool::new(false));
            let (d, stop_flag) = (db.clone(), stop.clone());
            let duration = s.mixed;
            let stopper = thread::spawn(move || {
                thread::sleep(duration);
                stop_flag.store(true, Ordering::Relaxed);
            });
            let (results, seconds) = parallel(threads, move |t| {
                let mut state = seed(t);
                let mut me = ScalingThread {
                    reads: Vec::with_capacity(1 << 18),
                    writes: Vec::with_capacity(1 << 15),
                };
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    if i % 10 == 9 {
                        d.transaction(|conn| Ok(rmw(conn)?))?;
                        me.writes.push(started.elapsed().as_nanos() as u64);
                    } else {
                        let id = next_id(&mut state, n);
                        if Users::find(&d, UserId(id))?.is_none() {
                            return Err(format!("id {id} not found").into());
                        }
                        me.reads.push(started.elapsed().as_nanos() as u64);
                    }
                    i += 1;
                }
                Ok(me)
            })?;
            stopper.join().map_err(|_| "stopper panicked")?;
            let mut reads: Vec<u64> = results
                .iter()
                .flat_map(|r| r.reads.iter().copied())
                .collect();
            let mut writes: Vec<u64> = results
                .iter()
                .flat_map(|r| r.writes.iter().copied())
                .collect();
            reads.sort_unstable();
            writes.sort_unstable();
            let counter: i64 = db.read(|conn| {
                Ok(diesel::sql_query("SELECT value FROM counters WHERE id = 1")
                    .get_result::<Value>(conn)?
                    .value)
            })?;
            if counter != writes.len() as i64 {
                return Err(
                    format!("counter {counter}, {} committed increments", writes.len()).into(),
                );
            }
            ops.push((reads.len() + writes.len()) as f64 / seconds);
            commits.push(writes.len() as f64 / seconds);
            read_p99.push(percentile_us(&reads, 0.99));
            write_p99.push(percentile_us(&writes, 0.99));
        }
        let variant = "litedal: 9 Users::find + 1 write transaction, repeated";
        table.add(
            format!("scaling: mixed 90/10, {threads} thread(s): operations"),
            variant,
            "ops/s",
            ops,
        );
        table.add(
            format!("scaling: mixed 90/10, {threads} thread(s): commits"),
            variant,
            "commits/s",
            commits,
        );
        table.add(
            format!("scaling: mixed 90/10, {threads} thread(s): read p99"),
            variant,
            "us",
            read_p99,
        );
        table.add(
            format!("scaling: mixed 90/10, {threads} thread(s): write p99"),
            variant,
            "us",
            write_p99,
        );
    }
    Ok(())
}
