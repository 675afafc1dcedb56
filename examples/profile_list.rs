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
#[path = "../benches/support/peer.rs"]
mod peer;
#[path = "../benches/support/raw_sqlite.rs"]
mod raw_sqlite;

use args::arg;

use diesel::prelude::*;
use litedal::Limit;
use litedal::example::models::{NewUser, User};
use litedal::example::repo::Users;
use litedal::example::schema::users;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

fn run() -> BoxResult<()> {
    let queries: usize = arg(1, 20_000)?;
    let mode = arg(2, "ab".to_owned())?;
    let modes: &[&str] = match mode.as_str() {
        "raw" => &["raw"],
        "replanned" => &["replanned"],
        "peer" => &["peer"],
        "litedal" => &["litedal"],
        "ab" => &["raw", "replanned", "peer", "litedal"],
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
    let emails: Vec<String> = (0..100_000)
        .map(|i| format!("r{i}@bench.example"))
        .collect();
    let rows: Vec<NewUser> = emails
        .iter()
        .enumerate()
        .map(|(i, e)| NewUser {
            name: "reader",
            email: e,
            active: i % 10 != 0,
        })
        .collect();
    db.batch_insert(users::table, &rows)?;
    let pool = peer::pool(&path, 4, false)?;
    let sql = format!(
        "SELECT {} FROM users WHERE active = ? AND email LIKE ? ESCAPE '\\' ORDER BY id ASC LIMIT ?",
        raw_sqlite::USER_COLUMNS
    );
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
                let rows = match *mode {
                    "raw" => raw_list(&mut stmt)?,
                    "replanned" => raw_list(&mut replanned)?,
                    "peer" => {
                        let mut conn = pool.get()?;
                        let users: Vec<User> = users::table
                            .filter(users::active.eq(true))
                            .filter(users::email.like("%@bench.example"))
                            .order(users::id.asc())
                            .limit(100)
                            .select(User::as_select())
                            .load(&mut conn)?;
                        users.len()
                    }
                    _ => Users::query()
                        .active(true)
                        .email_domain("bench.example")
                        .limit(Limit::new(100)?)
                        .load(&db)?
                        .len(),
                };
                if rows != 100 {
                    return Err(format!("{mode}: {rows} rows, expected 100").into());
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
            "{mode:>8}: {rate:>9.0} queries/s, {ratio:.3} of {}",
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

/// One run of the list query on a raw statement; the number of rows.
fn raw_list(stmt: &mut raw_sqlite::RawStmt<'_>) -> Result<usize, String> {
    stmt.bind_int(1, 1)?;
    stmt.bind_text(2, "%@bench.example")?;
    stmt.bind_int(3, 100)?;
    let mut rows = 0;
    while let Some(row) = stmt.step()? {
        let _user = row.user()?;
        rows += 1;
    }
    stmt.reset()?;
    Ok(rows)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("profile_list: {e}");
        std::process::exit(1);
    }
}
