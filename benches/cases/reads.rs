//! Reads: point reads and a filtered list, each against the raw floor and the plain
//! diesel + r2d2 peer; pool checkout; and point reads at 1, 2, 4 and 8 threads.

use super::*;

use std::path::PathBuf;

use litedal::example::models::User;

/// Who answers a point read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// The C API, one prepared statement per thread.
    Raw,
    /// Plain diesel + r2d2, a checkout per read.
    Peer,
    /// `Users::find`, a checkout per read.
    Litedal,
}

impl Reader {
    pub fn parse(name: &str) -> BoxResult<Reader> {
        match name {
            "raw" => Ok(Reader::Raw),
            "peer" => Ok(Reader::Peer),
            "litedal" => Ok(Reader::Litedal),
            other => Err(format!("reader {other:?}: expected raw, peer or litedal").into()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Reader::Raw => "raw",
            Reader::Peer => "peer",
            Reader::Litedal => "litedal",
        }
    }
}

/// What a run of point reads measured.
pub struct ReadRun {
    pub per_second: f64,
    /// Per-read latencies in ns, sorted (empty unless timed).
    pub latencies: Vec<u64>,
}

/// `threads` threads each doing `per_thread` point reads of random ids in `1..=n` on the
/// database at `path`; every read is checked to find its row. With `timed`, every read's
/// latency is kept.
pub fn point_read_run(
    reader: Reader,
    path: &Path,
    n: usize,
    threads: usize,
    per_thread: usize,
    timed: bool,
) -> BoxResult<ReadRun> {
    /// What the threads of one variant share (a raw connection is not `Send`: each thread
    /// opens its own).
    enum Shared {
        Raw(PathBuf),
        Peer(peer::PeerPool),
        Litedal(Database),
    }
    let shared = Arc::new(match reader {
        Reader::Raw => Shared::Raw(path.to_owned()),
        Reader::Peer => Shared::Peer(peer::pool(path, 20, false)?),
        Reader::Litedal => Shared::Litedal(open_litedal(path, |b| b)?),
    });
    let (results, seconds) = parallel(threads, move |t| {
        let lookups =
            |read: &mut dyn FnMut(i64) -> BoxResult<bool>| read_loop(t, n, per_thread, timed, read);
        match &*shared {
            Shared::Raw(path) => {
                let conn = raw_sqlite::open_reader_like_litedal(path)?;
                let mut stmt = conn.prepare(&format!(
                    "SELECT {} FROM users WHERE id = ?",
                    raw_sqlite::USER_COLUMNS
                ))?;
                lookups(&mut |id| {
                    stmt.bind_int(1, id)?;
                    let found = match stmt.step()? {
                        Some(row) => {
                            let user = row.user()?;
                            user.id == id && !user.name.is_empty()
                        }
                        None => false,
                    };
                    stmt.reset()?;
                    Ok(found)
                })
            }
            Shared::Peer(pool) => lookups(&mut |id| {
                let mut conn = pool.get()?;
                let user = users::table
                    .find(id)
                    .select(User::as_select())
                    .get_result(&mut conn)
                    .optional()?;
                Ok(user.is_some_and(|u| u.id.0 == id))
            }),
            Shared::Litedal(db) => {
                lookups(&mut |id| Ok(Users::find(db, UserId(id))?.is_some_and(|u| u.id.0 == id)))
            }
        }
    })?;
    let mut latencies: Vec<u64> = results.into_iter().flatten().collect();
    latencies.sort_unstable();
    Ok(ReadRun {
        per_second: (threads * per_thread) as f64 / seconds,
        latencies,
    })
}

/// Thread `t`'s `per_thread` lookups of random ids in `1..=n` through `read`, each checked to
/// find its row; with `timed`, each lookup's latency in ns.
fn read_loop(
    t: usize,
    n: usize,
    per_thread: usize,
    timed: bool,
    read: &mut dyn FnMut(i64) -> BoxResult<bool>,
) -> BoxResult<Vec<u64>> {
    let mut state = seed(t);
    let mut latencies = Vec::with_capacity(if timed { per_thread } else { 0 });
    for _ in 0..per_thread {
        let id = next_id(&mut state, n);
        let found = if timed {
            let started = Instant::now();
            let found = read(id)?;
            latencies.push(started.elapsed().as_nanos() as u64);
            found
        } else {
            read(id)?
        };
        if !found {
            return Err(format!("id {id} not found").into());
        }
    }
    Ok(latencies)
}

/// The reads of a child process whose SQLite keeps its own (pthread) mutexes: what an
/// application gets when something else initialized SQLite before litedal did.
pub fn default_mutex_child(
    reader: Reader,
    path: &Path,
    n: usize,
    threads: usize,
    per_thread: usize,
) -> BoxResult<f64> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["--child-reads", reader.name()])
        .arg(path)
        .args([n.to_string(), threads.to_string(), per_thread.to_string()])
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "child reads ({}): {}",
            reader.name(),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().parse()?)
}

/// The child side of [`default_mutex_child`]: SQLite initialized first, then the reads.
pub fn child_reads(args: &[String]) -> BoxResult<()> {
    let [reader, path, n, threads, per_thread] = args else {
        return Err("--child-reads READER PATH N THREADS PER_THREAD".into());
    };
    // SAFETY: sqlite3_initialize takes no arguments and may be called at any time.
    let rc = unsafe { libsqlite3_sys::sqlite3_initialize() };
    if rc != 0 {
        return Err(format!("sqlite3_initialize: {rc}").into());
    }
    // SAFETY: this child process runs no other thread yet.
    if unsafe { litedal::init_sqlite() } {
        return Err("litedal's mutexes were installed after sqlite3_initialize".into());
    }
    let run = point_read_run(
        Reader::parse(reader)?,
        Path::new(path),
        n.parse()?,
        threads.parse()?,
        per_thread.parse()?,
        false,
    )?;
    println!("{}", run.per_second);
    Ok(())
}

/// Point reads on 1 and 2 threads: raw, peer, litedal (all with litedal's mutexes, in this
/// process), and peer and litedal in child processes with SQLite's own mutexes.
pub fn point(s: &Settings, path: &Path, table: &mut Table) -> BoxResult<()> {
    let n = s.table_rows;
    for threads in [1usize, 2] {
        let mut samples: Vec<(Reader, Vec<f64>)> = vec![
            (Reader::Raw, vec![]),
            (Reader::Peer, vec![]),
            (Reader::Litedal, vec![]),
        ];
        let mut pthread: Vec<(Reader, Vec<f64>)> =
            vec![(Reader::Peer, vec![]), (Reader::Litedal, vec![])];
        for _ in 0..s.runs {
            for (reader, runs) in &mut samples {
                let run = point_read_run(*reader, path, n, threads, s.reads_per_thread, false)?;
                runs.push(run.per_second);
            }
            for (reader, runs) in &mut pthread {
                runs.push(default_mutex_child(
                    *reader,
                    path,
                    n,
                    threads,
                    s.reads_per_thread,
                )?);
            }
        }
        let case = format!("point read, {threads} thread(s), checkout per read");
        for (reader, runs) in samples {
            match reader {
                Reader::Raw => table.add(
                    &case,
                    "raw SQLite, prepared statement per thread",
                    "reads/s",
                    runs,
                ),
                Reader::Peer => table.add_peer(
                    &case,
                    "plain diesel + r2d2, same PRAGMAs, no ping",
                    "reads/s",
                    runs,
                ),
                Reader::Litedal => table.add(&case, "litedal Users::find", "reads/s", runs),
            }
        }
        for (reader, runs) in pthread {
            let who = match reader {
                Reader::Peer => "plain diesel + r2d2",
                _ => "litedal Users::find",
            };
            table.add(
                &case,
                format!("{who}, SQLite's own pthread mutexes (child process)"),
                "reads/s",
                runs,
            );
        }
    }
    Ok(())
}

/// Rounds per run of the list case: the three variants take turns in short rounds, so that
/// the machine's drift during a run falls on all three alike.
const LIST_ROUNDS: usize = 10;

/// A filtered, limited list: raw SQL (with litedal's stable query plans, the floor, and with
/// SQLite's default planning, which re-prepares the statement at every run because its
/// `LIMIT` and `LIKE` pattern are bound), the peer's diesel query, litedal's `UserQuery`.
pub fn list(s: &Settings, path: &Path, table: &mut Table) -> BoxResult<()> {
    let db = open_litedal(path, |b| b)?;
    let pool = peer::pool(path, 4, false)?;
    let per_round = (s.list_queries / LIST_ROUNDS).max(1);
    let sql = list_query::sql();
    let stable = raw_sqlite::open_reader_like_litedal(path)?;
    let mut stable_stmt = stable.prepare(&sql)?;
    let replanning = raw_sqlite::open_reader_like_litedal(path)?;
    replanning.set_stable_query_plans(false)?;
    let mut replanning_stmt = replanning.prepare(&sql)?;
    // Queries per second of raw, raw re-prepared, peer and litedal, one entry per run.
    let mut rates: [Vec<f64>; 4] = Default::default();
    for _ in 0..s.runs {
        // Seconds spent by each variant in this run.
        let mut seconds = [0.0f64; 4];
        for _ in 0..LIST_ROUNDS {
            let started = Instant::now();
            for _ in 0..per_round {
                list_query::raw(&mut stable_stmt)?;
            }
            seconds[0] += started.elapsed().as_secs_f64();

            let started = Instant::now();
            for _ in 0..per_round {
                list_query::raw(&mut replanning_stmt)?;
            }
            seconds[1] += started.elapsed().as_secs_f64();

            let started = Instant::now();
            for _ in 0..per_round {
                list_query::peer(&pool)?;
            }
            seconds[2] += started.elapsed().as_secs_f64();

            let started = Instant::now();
            for _ in 0..per_round {
                feature_cost::list(&db)?;
            }
            seconds[3] += started.elapsed().as_secs_f64();
        }
        let queries = (per_round * LIST_ROUNDS) as f64;
        for (rate, spent) in rates.iter_mut().zip(seconds) {
            rate.push(queries / spent);
        }
    }
    if stable_stmt.reprepares() != 0 {
        return Err(format!(
            "raw list with stable plans was re-prepared {} times",
            stable_stmt.reprepares()
        )
        .into());
    }
    let [raw, replanned, peer_runs, lite] = rates;
    let case = "list: active + email domain, limit 100";
    table.add(
        case,
        "raw SQLite, same SQL, stable query plans",
        "queries/s",
        raw,
    );
    table.add(
        case,
        "raw SQLite, same SQL, SQLite's default planning (re-prepared at every run)",
        "queries/s",
        replanned,
    );
    table.add_peer(
        case,
        "plain diesel + r2d2, same query",
        "queries/s",
        peer_runs,
    );
    table.add(case, "litedal UserQuery", "queries/s", lite);
    Ok(())
}

/// Pool checkout alone: litedal's read pool on 1 and 2 threads, and a plain r2d2 pool with
/// r2d2's default `test_on_check_out` (a `SELECT 1` on every checkout).
pub fn checkout(s: &Settings, path: &Path, table: &mut Table) -> BoxResult<()> {
    let db = open_litedal(path, |b| b)?;
    let ops = s.reads_per_thread;
    let case = "pool checkout + return";
    for threads in [1usize, 2] {
        let mut samples = vec![];
        for _ in 0..s.runs {
            let d = db.clone();
            let per_s = ops_per_second(threads, move |_| {
                for _ in 0..ops {
                    drop(d.read_connection()?);
                }
                Ok(ops)
            })?;
            samples.push(1e9 / per_s * threads as f64);
        }
        table.add(
            case,
            format!("litedal read pool, {threads} thread(s), no ping"),
            "ns/op",
            samples,
        );
    }
    let pool = Pool::builder()
        .max_size(4)
        .test_on_check_out(true)
        .build(ConnectionManager::<SqliteConnection>::new(
            path.display().to_string(),
        ))?;
    let mut pinged = vec![];
    for _ in 0..s.runs {
        let started = Instant::now();
        for _ in 0..ops {
            drop(pool.get()?);
        }
        pinged.push(started.elapsed().as_nanos() as f64 / ops as f64);
    }
    table.add(
        case,
        "r2d2 default: SELECT 1 on checkout, 1 thread",
        "ns/op",
        pinged,
    );
    Ok(())
}

/// Point reads at 1, 2, 4 and 8 threads (on 2 cores the upper rows oversubscribe): the
/// same total number of reads split over the threads, every read timed.
pub fn scaling(s: &Settings, path: &Path, table: &mut Table) -> BoxResult<()> {
    let n = s.table_rows;
    for threads in [1usize, 2, 4, 8] {
        let per_thread = s.scaling_reads / threads;
        let mut runs: Vec<(Reader, Vec<ReadRun>)> = vec![
            (Reader::Raw, vec![]),
            (Reader::Peer, vec![]),
            (Reader::Litedal, vec![]),
        ];
        for _ in 0..s.runs {
            for (reader, samples) in &mut runs {
                samples.push(point_read_run(*reader, path, n, threads, per_thread, true)?);
            }
        }
        let case = format!("scaling: point reads, {threads} thread(s)");
        let p99_case = format!("scaling: point read p99, {threads} thread(s)");
        for (reader, samples) in &runs {
            let rate: Vec<f64> = samples.iter().map(|r| r.per_second).collect();
            let p99: Vec<f64> = samples
                .iter()
                .map(|r| percentile_us(&r.latencies, 0.99))
                .collect();
            match reader {
                Reader::Raw => {
                    table.add(&case, "raw SQLite", "reads/s", rate);
                    table.add(&p99_case, "raw SQLite", "us", p99);
                }
                Reader::Peer => {
                    table.add_peer(&case, "plain diesel + r2d2", "reads/s", rate);
                    table.add_peer(&p99_case, "plain diesel + r2d2", "us", p99);
                }
                Reader::Litedal => {
                    table.add(&case, "litedal Users::find", "reads/s", rate);
                    table.add(&p99_case, "litedal Users::find", "us", p99);
                }
            }
        }
    }
    Ok(())
}
