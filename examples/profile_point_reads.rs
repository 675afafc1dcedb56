//! Profiling aid: point reads through the repository in a loop, for `perf record -g`
//! (see PERFORMANCE.md).
//!
//! ```text
//! cargo run --release --example profile_point_reads -- [READS] [THREADS] [READ_POOL_SIZE] [on|off] [litedal|peer]
//! ```
//!
//! Defaults: 200,000 reads per thread, 1 thread, a read pool of 20, statistics on, litedal.
//! `off` turns the statistics instrumentation off; `peer` reads through plain diesel + r2d2
//! with the same PRAGMAs instead (what an application writes without litedal).

#[path = "../benches/support/peer.rs"]
mod peer;

use diesel::prelude::*;
use litedal::example::models::{NewUser, User, UserId};
use litedal::example::repo::Users;
use litedal::example::schema::users;

fn arg<T: std::str::FromStr>(index: usize, default: T) -> Result<T, String> {
    match std::env::args().nth(index) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("argument {index}: {text:?} is not valid here")),
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = arg(1, 200_000)?;
    let threads: u64 = arg(2, 1)?;
    let pool_size: u32 = arg(3, 20)?;
    let statistics = match arg(4, "on".to_owned())?.as_str() {
        "on" => true,
        "off" => false,
        other => return Err(format!("statistics {other:?}: expected on or off").into()),
    };
    let use_peer = match arg(5, "litedal".to_owned())?.as_str() {
        "litedal" => false,
        "peer" => true,
        other => return Err(format!("reader {other:?}: expected litedal or peer").into()),
    };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("p.db");
    let db = litedal::Database::open(
        litedal::example::config()
            .database_url(format!("sqlite://{}", path.display()))
            .read_pool_size(pool_size)
            .instrumentation(statistics)
            .build()?,
    )?;
    let emails: Vec<String> = (0..20_000).map(|i| format!("u{i}@x.example")).collect();
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("u", e)).collect();
    db.batch_insert(users::table, &rows)?;
    let pool = peer::pool(&path, pool_size, false)?;
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (db, pool) = (db.clone(), pool.clone());
            std::thread::spawn(move || -> Result<(), String> {
                let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ (t + 1);
                for _ in 0..n {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let id = (x % 20_000) as i64 + 1;
                    let found = if use_peer {
                        let mut conn = pool.get().map_err(|e| e.to_string())?;
                        users::table
                            .find(id)
                            .select(User::as_select())
                            .get_result(&mut conn)
                            .optional()
                            .map_err(|e| e.to_string())?
                            .is_some()
                    } else {
                        Users::find(&db, UserId(id))
                            .map_err(|e| e.to_string())?
                            .is_some()
                    };
                    if !found {
                        return Err(format!("id {id} not found"));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "reader thread panicked")??;
    }
    println!(
        "{:.0} reads/s",
        (n * threads) as f64 / started.elapsed().as_secs_f64()
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
                "profile_point_reads: error: {}",
                litedal::error::report(&*error)
            );
            std::process::ExitCode::FAILURE
        }
    }
}
