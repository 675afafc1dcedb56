//! Profiling aid: point reads through the repository in a loop, for `perf record -g`
//! (see PERFORMANCE.md).
//!
//! ```text
//! cargo run --release --example profile_point_reads -- [READS] [THREADS] [READ_POOL_SIZE] [off]
//! ```
//!
//! Defaults: 200,000 reads per thread, 1 thread, a read pool of 20; `off` turns the
//! statistics instrumentation off.

use litedal::example::models::{NewUser, UserId};
use litedal::example::repo::Users;
use litedal::example::schema::users;

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = litedal::Database::open(
        litedal::example::config()
            .database_url(format!("sqlite://{}/p.db", dir.path().display()))
            .read_pool_size(
                std::env::args()
                    .nth(3)
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(20),
            )
            .instrumentation(std::env::args().nth(4).is_none_or(|a| a != "off"))
            .build()?,
    )?;
    let emails: Vec<String> = (0..20_000).map(|i| format!("u{i}@x.example")).collect();
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("u", e)).collect();
    db.batch_insert(users::table, &rows)?;
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let threads: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ (t + 1);
                for _ in 0..n {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let id = (x % 20_000) as i64 + 1;
                    assert!(Users::find(&db, UserId(id)).unwrap().is_some());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
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
