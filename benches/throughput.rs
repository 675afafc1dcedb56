//! litedal against the raw SQLite floor and against the plain diesel + r2d2 code users would
//! otherwise write, measured side by side in one run on fresh temp-file databases.
//!
//! ```text
//! cargo bench --bench throughput                      # the full table (about 6 minutes)
//! cargo bench --bench throughput -- --quick           # proves every case runs (CI)
//! cargo bench --bench throughput -- --only reads,list # some cases (names below)
//! ```
//!
//! Every case runs 5 times (3 with --quick); the table shows the median, the min-max and two ratios: to the
//! case's floor (its first row, raw SQLite) and to its peer (plain diesel + r2d2 with the same
//! PRAGMAs). Absolute numbers drift on shared machines; the ratios are what to compare.
//!
//! litedal replaces SQLite's mutexes process-wide (see `litedal::init_sqlite`); this process
//! installs them first, so the floor and the peer run with them too. The rows marked
//! "SQLite's own pthread mutexes" run in child processes that initialize SQLite first, as
//! an application that never opened litedal would.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::sql_types::BigInt;
use diesel_migrations::MigrationHarness;
use litedal::example::models::{NewUser, UserId};
use litedal::example::repo::Users;
use litedal::example::schema::users;
use litedal::{Database, Error};

#[path = "support/feature_cost.rs"]
mod feature_cost;
#[path = "support/list_query.rs"]
mod list_query;
#[path = "support/own_table.rs"]
mod own_table;
#[path = "support/peer.rs"]
mod peer;
#[path = "support/raw_sqlite.rs"]
mod raw_sqlite;
#[path = "support/report.rs"]
mod report;

#[path = "cases/feature.rs"]
mod feature;
#[path = "cases/footprint.rs"]
mod footprint;
#[path = "cases/inserts.rs"]
mod inserts;
#[path = "cases/mixed.rs"]
mod mixed;
#[path = "cases/postgres.rs"]
mod postgres;
#[path = "cases/reads.rs"]
mod reads;

use report::{
    BoxResult, Table, next_id, ops_per_second, parallel, per_second, percentile_us, seed,
};

struct Settings {
    quick: bool,
    runs: usize,
    bulk_rows: usize,
    naive_rows: usize,
    table_rows: usize,
    reads_per_thread: usize,
    /// Point reads per run of the scaling case, split over its threads.
    scaling_reads: usize,
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
                scaling_reads: 16_000,
                list_queries: 500,
                mixed: Duration::from_millis(300),
                writers: Duration::from_millis(500),
            }
        } else {
            Settings {
                quick,
                // Five runs: on a shared machine single runs of the same code differ by 10 %
                // and more; the median of five is what the ratios compare.
                runs: 5,
                bulk_rows: 1_000_000,
                naive_rows: 2_000,
                table_rows: 100_000,
                reads_per_thread: 300_000,
                scaling_reads: 400_000,
                list_queries: 5_000,
                mixed: Duration::from_secs(2),
                writers: Duration::from_secs(2),
            }
        }
    }
}

fn emails(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}{i}@bench.example"))
        .collect()
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// litedal with the example domain's migrations, as configured by `configure`.
fn open_litedal(
    path: &Path,
    configure: impl FnOnce(litedal::ConfigBuilder) -> litedal::ConfigBuilder,
) -> litedal::Result<Database> {
    Database::open(configure(litedal::example::config().database_url(sqlite_url(path))).build()?)
}

/// A database of `s.table_rows` users for the read cases.
fn populated(s: &Settings, path: &Path) -> BoxResult<Database> {
    let db = open_litedal(path, |b| b)?;
    list_query::insert_readers(&db, "r", s.table_rows)?;
    Ok(db)
}

/// The cases, in the order they run; `--only` takes a comma-separated list of these names.
const CASES: &[&str] = &[
    "bulk", "own-bulk", "reads", "list", "checkout", "scaling", "mixed", "writers", "open",
    "memory", "postgres", "feature",
];

fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--memory-child") {
        let path = args.get(i + 1).ok_or("--memory-child needs a path")?;
        return footprint::memory_child(Path::new(path));
    }
    if let Some(i) = args.iter().position(|a| a == feature_cost::CHILD_FLAG) {
        return feature_cost::child(&args[i + 1..]);
    }
    if let Some(i) = args.iter().position(|a| a == "--child-reads") {
        return reads::child_reads(&args[i + 1..]);
    }
    // Before anything touches SQLite: the mutexes litedal uses, for every row in this process.
    // SAFETY: first thing in main, before any thread starts.
    if !unsafe { litedal::init_sqlite() } {
        return Err("litedal::init_sqlite() could not install litedal's mutexes".into());
    }
    let quick = args.iter().any(|a| a == "--quick");
    let only: Vec<String> = match args.iter().position(|a| a == "--only") {
        Some(i) => args
            .get(i + 1)
            .ok_or("--only needs a comma-separated list of cases")?
            .split(',')
            .map(str::to_owned)
            .collect(),
        None => CASES.iter().map(|c| (*c).to_owned()).collect(),
    };
    if let Some(unknown) = only.iter().find(|c| !CASES.contains(&c.as_str())) {
        return Err(format!("--only: no case {unknown:?}; the cases are {CASES:?}").into());
    }
    let wanted = |case: &str| only.iter().any(|c| c == case);
    let s = Settings::new(quick);
    if s.quick {
        raw_sqlite::self_check()?;
        eprintln!("raw_sqlite self-check passed");
    }
    let dir = tempfile::tempdir()?;
    let mut table = Table::default();
    let started = Instant::now();
    println!(
        "litedal throughput benchmark ({}; {} runs per case; cores: {})",
        if s.quick { "--quick" } else { "full" },
        s.runs,
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    let reads_db = dir.path().join("reads.db");
    if ["reads", "list", "checkout", "scaling", "feature"]
        .iter()
        .any(|c| wanted(c))
    {
        drop(populated(&s, &reads_db)?);
    }
    for case in CASES.iter().copied().filter(|c| wanted(c)) {
        match case {
            "bulk" => inserts::users(&s, dir.path(), &mut table)?,
            "own-bulk" => inserts::own_table(&s, dir.path(), &mut table)?,
            "reads" => reads::point(&s, &reads_db, &mut table)?,
            "list" => reads::list(&s, &reads_db, &mut table)?,
            "checkout" => reads::checkout(&s, &reads_db, &mut table)?,
            "scaling" => {
                reads::scaling(&s, &reads_db, &mut table)?;
                mixed::scaling(&s, dir.path(), &mut table)?;
            }
            "mixed" => mixed::two_and_two(&s, dir.path(), &mut table)?,
            "writers" => mixed::writers(&s, dir.path(), &mut table)?,
            "open" => footprint::open_cost(&s, dir.path(), &mut table)?,
            "memory" => footprint::memory(&s, dir.path())?,
            "feature" => feature::cost(&s, &reads_db, dir.path(), &mut table)?,
            "postgres" => {
                if let Some(cluster) = postgres::cluster()? {
                    postgres::bulk(&s, &cluster, &mut table)?;
                    postgres::reads(&s, &cluster, &mut table)?;
                }
            }
            _ => unreachable!("CASES and this match list the same names"),
        }
        eprintln!("{case} done ({:.0} s)", started.elapsed().as_secs_f64());
    }
    table.print();
    println!("total time: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
