//! What instrumentation costs point reads: the same file opened twice, once with the pool
//! event handler and diesel instrumentation (the default) and once without
//! (`ConfigBuilder::instrumentation(false)`), measured in alternating rounds in one run.
//!
//! A point read is what a web handler does: check a connection out of the read pool, load one
//! `users` row by primary key, return the connection.
//!
//! ```text
//! cargo run --release --example instrumentation_overhead
//! cargo run --release --example instrumentation_overhead -- THREADS ROUNDS READS_PER_ROUND
//! ```
//!
//! Defaults: 2 threads, 7 rounds of 200 000 reads per configuration. It prints each round and
//! the median throughput of both, and their ratio.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use diesel::prelude::*;
use litedal::example::schema::users;
use litedal::{Database, Synchronous};

const USERS: i64 = 10_000;

fn arg(n: usize, default: u64) -> Result<u64, Box<dyn std::error::Error>> {
    match std::env::args().nth(n) {
        Some(text) => Ok(text
            .parse()
            .map_err(|_| format!("argument {n}: {text:?} is not a whole number"))?),
        None => Ok(default),
    }
}

fn open(url: &str, threads: u32, instrumentation: bool) -> litedal::Result<Database> {
    Database::open(
        litedal::example::config()
            .database_url(url)
            .synchronous(Synchronous::Normal)
            .read_pool_size(threads)
            .write_pool_size(1)
            .instrumentation(instrumentation)
            .build()?,
    )
}

/// Point reads by `threads` threads, `reads` in total; returns reads per second.
fn point_reads(db: &Database, threads: u64, reads: u64) -> Result<f64, Box<dyn std::error::Error>> {
    let barrier = Arc::new(Barrier::new(threads as usize + 1));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let db = db.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || -> litedal::Result<u64> {
                // xorshift: a cheap, repeatable spread of ids.
                let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ (t + 1);
                let mut found = 0;
                barrier.wait();
                for _ in 0..reads / threads {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let id = (x % USERS as u64) as i64 + 1;
                    let mut conn = db.read_connection()?;
                    let name: String =
                        users::table.find(id).select(users::name).first(&mut conn)?;
                    found += name.len() as u64;
                }
                Ok(found)
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    for worker in workers {
        let found = worker.join().map_err(|_| "a reader panicked")??;
        assert!(found > 0);
    }
    Ok(reads as f64 / started.elapsed().as_secs_f64())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let threads = arg(1, 2)?.max(1);
    let rounds = arg(2, 7)?.max(1);
    let reads = arg(3, 200_000)?.max(threads);

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/overhead.db", dir.path().display());
    let pool = u32::try_from(threads)?;
    let on = open(&url, pool, true)?;
    let off = open(&url, pool, false)?;
    on.transaction(|conn| {
        for chunk in (1..=USERS).collect::<Vec<_>>().chunks(1000) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|i| {
                    (
                        users::name.eq(format!("user {i}")),
                        users::email.eq(format!("u{i}@example.com")),
                    )
                })
                .collect();
            diesel::insert_into(users::table)
                .values(&rows)
                .execute(conn)?;
        }
        Ok(())
    })?;
    // Warm both pools' page caches and mmap before measuring.
    point_reads(&on, threads, reads / 4)?;
    point_reads(&off, threads, reads / 4)?;

    println!("point reads: {threads} threads, {rounds} rounds of {reads} reads per configuration");
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which goes first, so drift on a shared machine hits both alike.
        let order: [(&Database, bool); 2] = if round % 2 == 0 {
            [(&on, true), (&off, false)]
        } else {
            [(&off, false), (&on, true)]
        };
        for (db, instrumented) in order {
            let rate = point_reads(db, threads, reads)?;
            if instrumented {
                with.push(rate);
            } else {
                without.push(rate);
            }
        }
        println!(
            "round {}: with {:>9.0} reads/s, without {:>9.0} reads/s",
            round + 1,
            with[with.len() - 1],
            without[without.len() - 1]
        );
    }
    let (with, without) = (median(&mut with), median(&mut without));
    let ratio = with / without;
    println!(
        "median: with instrumentation {with:.0} reads/s, without {without:.0} reads/s; \
         ratio {ratio:.3} ({:+.1}% throughput)",
        (ratio - 1.0) * 100.0
    );
    let stats = on.connection_stats();
    let read = stats.pool_for(litedal::Role::Read);
    println!(
        "the instrumented database counted {} checkouts and {} statements on its read pool",
        read.checkouts, read.queries.queries
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    // Logs on stderr (`RUST_LOG`, `DB_LOG_FORMAT=json`); an error with its causes, exit 1.
    let result = litedal::cli::init_logging("warn")
        .map_err(Into::into)
        .and_then(|()| run());
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!(
                "instrumentation_overhead: error: {}",
                litedal::error::report(&*error)
            );
            std::process::ExitCode::FAILURE
        }
    }
}
