//! Profiling aid: point reads through the repository in a loop, for `perf record -g`
//! (see PERFORMANCE.md).
//!
//! ```text
//! cargo run --release --example profile_point_reads -- [READS] [THREADS] [READ_POOL_SIZE] [on|off] [litedal|peer]
//! ```
//!
//! Defaults: 200,000 reads per thread, 1 thread, a read pool of 20, statistics on, litedal.
//! `off` turns the statistics instrumentation off; `peer` reads through plain diesel + r2d2
//! with the same PRAGMAs instead (what an application writes without litedal); `ab`
//! alternates the two in 20 rounds on each thread and prints both rates and their ratio,
//! which cancels most of the drift of a shared machine.

#[path = "../benches/support/args.rs"]
mod args;
#[path = "../benches/support/peer.rs"]
mod peer;

use args::arg;

use diesel::prelude::*;
use litedal::example::models::{NewUser, User, UserId};
use litedal::example::repo::Users;
use litedal::example::schema::users;

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = arg(1, 200_000)?;
    let threads: u64 = arg(2, 1)?;
    let pool_size: u32 = arg(3, 20)?;
    let statistics = match arg(4, "on".to_owned())?.as_str() {
        "on" => true,
        "off" => false,
        other => return Err(format!("statistics {other:?}: expected on or off").into()),
    };
    let mode = arg(5, "litedal".to_owned())?;
    if !["litedal", "peer", "ab"].contains(&mode.as_str()) {
        return Err(format!("reader {mode:?}: expected litedal, peer or ab").into());
    }
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
    let rounds = if mode == "ab" { 20 } else { 1 };
    let per_round = n / rounds;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (db, pool, mode) = (db.clone(), pool.clone(), mode.clone());
            std::thread::spawn(move || -> Result<[f64; 2], String> {
                let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ (t + 1);
                // Seconds spent reading through litedal and through the peer.
                let mut seconds = [0.0f64; 2];
                for round in 0..rounds {
                    for (slot, peer) in [(0, false), (1, true)] {
                        let wanted = match mode.as_str() {
                            "ab" => true,
                            "peer" => peer,
                            _ => !peer,
                        };
                        if !wanted {
                            continue;
                        }
                        let started = std::time::Instant::now();
                        for _ in 0..per_round {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            let id = (x % 20_000) as i64 + 1;
                            let found = if peer {
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
                                return Err(format!("round {round}: id {id} not found"));
                            }
                        }
                        seconds[slot] += started.elapsed().as_secs_f64();
                    }
                }
                Ok(seconds)
            })
        })
        .collect();
    let mut seconds = [0.0f64; 2];
    for h in handles {
        let s = h.join().map_err(|_| "reader thread panicked")??;
        seconds[0] += s[0];
        seconds[1] += s[1];
    }
    // Per-thread rates added up: reads/s of all threads together.
    let rate = |s: f64| (per_round * rounds) as f64 * threads as f64 / (s / threads as f64);
    match mode.as_str() {
        "ab" => println!(
            "litedal {:.0} reads/s, peer {:.0} reads/s, litedal/peer {:.3}",
            rate(seconds[0]),
            rate(seconds[1]),
            seconds[1] / seconds[0]
        ),
        "peer" => println!("{:.0} reads/s", rate(seconds[1])),
        _ => println!("{:.0} reads/s", rate(seconds[0])),
    }
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
