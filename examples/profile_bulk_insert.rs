//! Profiling aid: bulk inserts into an application's own unindexed table, for `perf record -g`
//! (see PERFORMANCE.md).
//!
//! ```text
//! cargo run --release --example profile_bulk_insert -- [litedal|diesel|raw] [ROWS] [RUNS]
//! ```
//!
//! `litedal` is `Database::batch_insert`; `diesel` is what an application writes without
//! litedal (an r2d2 pool with the same PRAGMAs, one immediate transaction, 500-row
//! `insert_into(..).values(&chunk)` statements); `raw` is the floor, one prepared single-row
//! statement. Defaults: litedal, 1,000,000 rows, 3 runs. Each run uses a new database file.

#[path = "../benches/support/args.rs"]
mod args;
#[path = "../benches/support/own_table.rs"]
mod own_table;
#[path = "../benches/support/peer.rs"]
mod peer;
#[path = "../benches/support/raw_sqlite.rs"]
mod raw_sqlite;

use std::path::Path;
use std::time::Instant;

use args::arg;
use diesel::connection::SimpleConnection;
use own_table::{NewReading, readings};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Plain diesel + r2d2: 500-row statements in one immediate transaction.
pub fn plain_diesel(path: &Path, rows: &[NewReading<'_>]) -> BoxResult<usize> {
    let pool = peer::pool(path, 1, true)?;
    let mut conn = pool.get()?;
    conn.batch_execute(own_table::SCHEMA)?;
    let started = Instant::now();
    let n = own_table::insert_plain_diesel(&mut conn, rows)?;
    report("plain diesel + r2d2, 500-row statements", n, started);
    Ok(n)
}

fn report(what: &str, n: usize, started: Instant) {
    println!(
        "{what}: {n} rows, {:.0} rows/s",
        n as f64 / started.elapsed().as_secs_f64()
    );
}

fn run() -> BoxResult<()> {
    let mode: String = arg(1, "litedal".to_owned())?;
    let n: usize = arg(2, 1_000_000)?;
    let runs: usize = arg(3, 3)?;
    let sensors = own_table::sensors();
    let rows = own_table::rows(&sensors, n);
    let dir = tempfile::tempdir()?;
    for run in 0..runs {
        let path = dir.path().join(format!("{mode}-{run}.db"));
        let inserted = match mode.as_str() {
            "litedal" => {
                let db = litedal::Database::open(
                    litedal::Config::builder()
                        .database_url(format!("sqlite://{}", path.display()))
                        .build()?,
                )?;
                db.transaction(|conn| Ok(conn.batch_execute(own_table::SCHEMA)?))?;
                let started = Instant::now();
                let inserted = db.batch_insert(readings::table, &rows)?;
                report("litedal batch_insert", inserted, started);
                inserted
            }
            "diesel" => plain_diesel(&path, &rows)?,
            "raw" => {
                let db = raw_sqlite::open_writer_like_litedal(&path, "FULL")?;
                db.exec(own_table::SCHEMA)?;
                let started = Instant::now();
                let inserted = own_table::insert_raw(&db, &rows)?;
                report("raw SQLite, single-row statement", inserted, started);
                inserted
            }
            other => return Err(format!("mode {other:?}: expected litedal, diesel or raw").into()),
        };
        if inserted != n {
            return Err(format!("run {run}: inserted {inserted} rows, expected {n}").into());
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let result = litedal::cli::init_logging("warn")
        .map_err(Into::into)
        .and_then(|()| run());
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!(
                "profile_bulk_insert: error: {}",
                litedal::error::report(&*error)
            );
            std::process::ExitCode::FAILURE
        }
    }
}
