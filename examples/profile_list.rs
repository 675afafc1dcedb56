//! Profiling aid: the benchmark's filtered list (100 active users of one email domain) in a
//! loop, for `perf record -g` (see PERFORMANCE.md).
//!
//! ```text
//! cargo run --release --example profile_list -- [QUERIES] [raw|replanned|peer|litedal|ab]
//! ```
//!
//! Defaults: 20,000 queries, `ab`. `raw` runs the SQL on a prepared libsqlite3-sys
//! statement set up as litedal sets up a reader (the floor); `replanned` the same with
//! SQLite's default planning, which re-prepares the statement at every run (its `LIMIT` and
//! `LIKE` pattern are bound); `peer` runs plain diesel + r2d2; `litedal` runs `UserQuery`;
//! `ab` alternates all four in 20 rounds and prints their rates and ratios. The raw
//! statements' re-prepare counts are printed at the end.

#[path = "../benches/support/args.rs"]
mod args;
#[path = "../benches/support/feature_cost.rs"]
mod feature_cost;
#[path = "../benches/support/list_query.rs"]
mod list_query;
#[path = "../benches/support/peer.rs"]
mod peer;
#[path = "../benches/support/raw_sqlite.rs"]
mod raw_sqlite;

use args::arg;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The variants, in the order `ab` runs them.
const MODES: [&str; 4] = ["raw", "replanned", "peer", "litedal"];

fn run() -> BoxResult<()> {
    let queries: usize = arg(1, 20_000)?;
    let mode = arg(2, "ab".to_owned())?;
    let modes: Vec<&str> = match mode.as_str() {
        "ab" => MODES.to_vec(),
        one if MODES.contains(&one) => vec![one],
        other => {
            return Err(
                format!("mode {other:?}: expected raw, replanned, peer, litedal or ab").into(),
            );
        }
    };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("l.db");
    let db = litedal::Database::open(
        litedal::example::config()
            .database_url(format!("sqlite://{}", path.display()))
            .build()?,
    )?;
    // As the benchmark's read cases: 100,000 users, every tenth inactive.
    list_query::insert_readers(&db, "r", 100_000)?;
    let pool = peer::pool(&path, 4, false)?;
    let sql = list_query::sql();
    let stable = raw_sqlite::open_reader_like_litedal(&path)?;
    let mut stmt = stable.prepare(&sql)?;
    let replanning = raw_sqlite::open_reader_like_litedal(&path)?;
    replanning.set_stable_query_plans(false)?;
    let mut replanned = replanning.prepare(&sql)?;
    let rounds = if modes.len() > 1 { 20 } else { 1 };
    let per_round = (queries / rounds).max(1);
    let mut seconds = vec![0.0f64; modes.len()];
    for _ in 0..rounds {
        for (slot, mode) in modes.iter().enumerate() {
            let started = std::time::Instant::now();
            for _ in 0..per_round {
                match *mode {
                    "raw" => list_query::raw(&mut stmt)?,
                    "replanned" => list_query::raw(&mut replanned)?,
                    "peer" => list_query::peer(&pool)?,
                    _ => feature_cost::list(&db)?,
                }
            }
            seconds[slot] += started.elapsed().as_secs_f64();
        }
    }
    let done = (per_round * rounds) as f64;
    for (slot, mode) in modes.iter().enumerate() {
        let rate = done / seconds[slot];
        let ratio = seconds[0] / seconds[slot];
        println!(
            "{mode:>9}: {rate:>9.0} queries/s, {ratio:.3} of {}",
            modes[0]
        );
    }
    println!(
        "re-prepared: raw {} times, replanned {} times",
        stmt.reprepares(),
        replanned.reprepares()
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("profile_list: {e}");
        std::process::exit(1);
    }
}
