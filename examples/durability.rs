//! Measures what durability costs and how long upkeep takes, in one run:
//!
//! 1. commits/s (and p50/p99 commit latency) of single-row write transactions with
//!    `DB_SYNCHRONOUS=full` and with `normal`, interleaved over several rounds;
//! 2. the time to back up, check and restore a database of 1M users.
//!
//! ```text
//! cargo run --release --example durability            # in a temporary directory under .
//! cargo run --release --example durability -- DIR     # in DIR (use the disk you deploy on)
//! ```
//!
//! The default directory is under the current one rather than in `/tmp`, which may be a
//! tmpfs where fsync costs nothing and FULL would look as fast as NORMAL.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use litedal::example::schema::users;
use litedal::maintenance::{CheckDepth, integrity_check_file, restore};
use litedal::{CheckpointMode, Database, Overwrite, Synchronous};

const ROUNDS: usize = 3;
const ROUND: Duration = Duration::from_secs(2);
const USERS: i64 = 1_000_000;

fn open(path: &Path, synchronous: Synchronous) -> Result<Database, litedal::Error> {
    Database::open(
        litedal::example::config()
            .database_url(path.display().to_string())
            .synchronous(synchronous)
            .build()?,
    )
}

/// Single-row write transactions for `ROUND`: (commits, sorted latencies).
fn commit_round(db: &Database, next_id: &mut i64) -> Result<Vec<Duration>, litedal::Error> {
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < ROUND {
        let id = *next_id;
        let t = Instant::now();
        db.transaction(|conn| {
            Ok(diesel::insert_into(users::table)
                .values((
                    users::id.eq(id),
                    users::name.eq("durable"),
                    users::email.eq(format!("durable{id}@example.com")),
                ))
                .execute(conn)?)
        })?;
        latencies.push(t.elapsed());
        *next_id += 1;
    }
    latencies.sort();
    Ok(latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (_guard, dir): (Option<tempfile::TempDir>, PathBuf) = match std::env::args_os().nth(1) {
        Some(dir) => (None, PathBuf::from(dir)),
        None => {
            let temp = tempfile::Builder::new()
                .prefix(".litedal-durability-")
                .tempdir_in(".")?;
            let path = temp.path().to_path_buf();
            (Some(temp), path)
        }
    };
    std::fs::create_dir_all(&dir)?;
    println!("directory: {}", dir.display());

    // 1. FULL against NORMAL, interleaved so that both see the same machine conditions.
    let modes = [Synchronous::Full, Synchronous::Normal];
    let dbs = modes
        .iter()
        .map(|&mode| open(&dir.join(format!("commits-{mode}.db")), mode))
        .collect::<Result<Vec<_>, _>>()?;
    let mut next_ids = [1i64, 1];
    let mut all: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=ROUNDS {
        for (i, db) in dbs.iter().enumerate() {
            let latencies = commit_round(db, &mut next_ids[i])?;
            println!(
                "round {round} synchronous={:<6} {:>7.0} commits/s",
                modes[i].as_sql(),
                latencies.len() as f64 / ROUND.as_secs_f64()
            );
            all[i].extend(latencies);
        }
    }
    println!("\n| synchronous | commits/s | p50 commit | p99 commit |");
    println!("|---|---|---|---|");
    for (i, latencies) in all.iter_mut().enumerate() {
        latencies.sort();
        println!(
            "| {} | {:.0} | {:.3} ms | {:.3} ms |",
            modes[i].as_sql(),
            latencies.len() as f64 / (ROUND.as_secs_f64() * ROUNDS as f64),
            percentile(latencies, 0.50).as_secs_f64() * 1e3,
            percentile(latencies, 0.99).as_secs_f64() * 1e3,
        );
    }
    drop(dbs);

    // 2. Backup, check and restore of 1M users.
    let path = dir.join("users.db");
    let db = open(&path, Synchronous::Normal)?;
    let started = Instant::now();
    // Multi-row INSERTs of 10,922 rows (3 bound values each, SQLite's 32,766 limit), in
    // one transaction.
    let chunk = 32_766 / 3;
    db.transaction(|conn| {
        let mut first = 1;
        while first <= USERS {
            let last = (first + chunk - 1).min(USERS);
            let rows: Vec<_> = (first..=last)
                .map(|i| {
                    (
                        users::name.eq(format!("user {i}")),
                        users::email.eq(format!("user{i}@example.com")),
                        users::active.eq(i % 3 != 0),
                    )
                })
                .collect();
            diesel::insert_into(users::table)
                .values(rows)
                .execute(conn)?;
            first = last + 1;
        }
        Ok(())
    })?;
    let inserted = started.elapsed();
    db.checkpoint(CheckpointMode::Truncate)?;
    let source_bytes = std::fs::metadata(&path)?.len();
    println!(
        "\ninserted {USERS} users in {:.2} s ({:.0} rows/s); database {:.1} MiB",
        inserted.as_secs_f64(),
        USERS as f64 / inserted.as_secs_f64(),
        source_bytes as f64 / (1 << 20) as f64
    );

    let backup_path = dir.join("backups").join("users.db");
    let mut last_shown = Instant::now();
    let report = db.backup_with_progress(&backup_path, Overwrite::Replace, |p| {
        if last_shown.elapsed() >= Duration::from_millis(500) {
            println!(
                "  backup: {:.1} of {:.1} MiB",
                p.bytes_written as f64 / (1 << 20) as f64,
                p.bytes_expected as f64 / (1 << 20) as f64
            );
            last_shown = Instant::now();
        }
    })?;
    println!("{report}");
    let started = Instant::now();
    let problems = integrity_check_file(&report.path, CheckDepth::Quick)?;
    let quick_check = started.elapsed();
    assert!(problems.is_empty(), "{problems:?}");
    drop(db);
    let restored = restore(&report.path, &path)?;
    println!("{restored}");

    println!("\n| 1M users | time |");
    println!("|---|---|");
    println!(
        "| backup (VACUUM INTO + fsync + quick_check + rename), {:.1} MiB | {:.2} s |",
        report.bytes as f64 / (1 << 20) as f64,
        report.duration.as_secs_f64()
    );
    println!(
        "| quick_check of the copy alone (run again) | {:.2} s |",
        quick_check.as_secs_f64()
    );
    println!(
        "| restore (lock + copy + fsync + quick_check + rename) | {:.2} s |",
        restored.duration.as_secs_f64()
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
            eprintln!("durability: error: {}", litedal::error::report(&*error));
            std::process::ExitCode::FAILURE
        }
    }
}
