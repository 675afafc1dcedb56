//! The main job: a small blog on litedal.
//!
//! Opens the database from the environment (default `sqlite://data/main.db`, created if
//! absent; a `postgres://` URL runs the same code on PostgreSQL), clears the rows of earlier runs that are no longer running, bulk-inserts 10,000
//! users and 50,000 posts, runs typed queries, then runs 4 reader and 2 writer threads for a
//! few seconds and prints a report. Each run marks its rows with its own email domain
//! (`r<pid>-<start>.blog.example`) and touches no other run's rows, so runs can follow each
//! other, or run at the same time, on one file. Logs go to stderr (`RUST_LOG`,
//! `DB_LOG_FORMAT=json`); an error is printed with its causes and exits with code 1.
//!
//! ```text
//! cargo run --release --example blog
//! BLOG_SECONDS=10 BLOG_USERS=50000 cargo run --release --example blog
//! cargo run --release --example blog -- --compare-floor   # bulk insert vs the raw SQLite floor
//! DATABASE_URL=postgres://app@localhost/app cargo run --release --example blog
//! ```

use std::error::Error as StdError;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use litedal::Limit;
use litedal::engine::EngineRef;
use litedal::example::models::{NewPost, NewUser, UserChanges, UserId};
use litedal::example::repo::{Posts, UserCursor, Users};
use litedal::example::schema::users;
use litedal::{AnyDatabase, ConfigBuilder, Database, Error};

#[path = "../benches/support/raw_sqlite.rs"]
mod raw_sqlite;

const POSTS_PER_USER: usize = 5;
/// Every run's rows have an email at `<run>.blog.example`.
const DOMAIN: &str = "blog.example";

type BoxResult<T> = Result<T, Box<dyn StdError>>;

fn main() -> ExitCode {
    match litedal::cli::init_logging("warn")
        .map_err(Into::into)
        .and_then(|()| run())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("blog: error: {}", litedal::error::report(&*error));
            ExitCode::FAILURE
        }
    }
}

/// A positive whole number from the environment variable `var`, or `default`.
fn env_number(var: &str, default: u64, max: u64) -> BoxResult<u64> {
    match std::env::var(var) {
        Ok(v) => Ok(v
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| format!("{var}={v:?}: accepted: 1 to {max}"))?),
        Err(_) => Ok(default),
    }
}

/// This run's mark: `r<pid>-<start in ms>`, part of every email it inserts.
fn run_mark() -> String {
    format!(
        "r{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    )
}

/// Whether the run that marked rows with `mark` may still be running (its process exists).
/// Rows without a run mark (earlier versions of this example) belong to no running process.
fn may_be_running(mark: &str) -> bool {
    mark.strip_prefix('r')
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
        .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}

#[derive(QueryableByName)]
struct Domain {
    #[diesel(sql_type = diesel::sql_types::Text)]
    domain: String,
}

/// Deletes the users (and, by `ON DELETE CASCADE`, the posts) of earlier runs whose process
/// is gone; returns how many users and how many runs.
fn clear_finished_runs(db: &AnyDatabase) -> BoxResult<(usize, usize)> {
    let domains: Vec<String> = db
        .read(|conn| {
            // The one engine-specific statement of the example: SQLite's instr is
            // PostgreSQL's strpos.
            let find = match conn {
                EngineRef::Sqlite(_) => "instr",
                EngineRef::Postgres(_) => "strpos",
            };
            let sql = format!(
                "SELECT DISTINCT substr(email, {find}(email, '@') + 1) AS domain FROM users \
                 WHERE email LIKE '%blog.example'"
            );
            Ok(litedal::on_engine!(conn, |c| diesel::sql_query(&sql).load::<Domain>(c))?)
        })?
        .into_iter()
        .map(|d| d.domain)
        .collect();
    let finished: Vec<String> = domains
        .into_iter()
        .filter(|domain| match domain.strip_suffix(&format!(".{DOMAIN}")) {
            Some(mark) => !may_be_running(mark),
            None => domain == DOMAIN,
        })
        .collect();
    let mut removed = 0;
    for domain in &finished {
        removed += db.transaction(|conn| {
            let pattern = format!("%@{domain}");
            Ok(litedal::on_engine!(conn, |c| diesel::delete(
                users::table.filter(users::email.like(&pattern))
            )
            .execute(c))?)
        })?;
    }
    Ok((removed, finished.len()))
}

/// One run of the blog (`main` and `tests/blog.rs` call it).
pub fn run() -> BoxResult<()> {
    let seconds = env_number("BLOG_SECONDS", 3, 3600)?;
    let users = usize::try_from(env_number("BLOG_USERS", 10_000, 1_000_000)?)?;
    let domain = format!("{}.{DOMAIN}", run_mark());

    let db = AnyDatabase::open(
        ConfigBuilder::from_env()?
            .migrations(&litedal::example::MIGRATIONS)
            .postgres_migrations(&litedal::example::MIGRATIONS_POSTGRES)
            .build_any()?,
    )?;
    match &db {
        AnyDatabase::Sqlite(db) => println!(
            "database: {} (journal_mode={}, read pool {}, write pool {})",
            db.config().location().to_url(),
            db.journal_mode(),
            db.config().read_pool_size(),
            db.config().write_pool_size()
        ),
        AnyDatabase::Postgres(db) => println!(
            "database: {} (PostgreSQL, read pool {}{}, write pool {})",
            db.config().display_url(),
            db.config().read_pool_size(),
            db.config()
                .read_url()
                .map(|_| " on the standby")
                .unwrap_or_default(),
            db.config().write_pool_size()
        ),
    }

    // Rows of earlier runs that have finished go first; a run still going keeps its rows.
    let (removed, runs) = clear_finished_runs(&db)?;
    if removed > 0 {
        println!("cleared {removed} users (and their posts) of {runs} finished earlier run(s)");
    }

    // Bulk inserts.
    let emails: Vec<String> = (0..users).map(|i| format!("user{i}@{domain}")).collect();
    let names: Vec<String> = (0..users).map(|i| format!("User {i}")).collect();
    let new_users: Vec<NewUser> = names
        .iter()
        .zip(&emails)
        .enumerate()
        .map(|(i, (name, email))| NewUser {
            name,
            email,
            active: i % 10 != 0,
        })
        .collect();
    let started = Instant::now();
    let inserted = Users::batch_insert(&db, &new_users)?;
    let user_rate = inserted as f64 / started.elapsed().as_secs_f64();

    // A keyset-paged walk over this run's users, 1000 per page.
    let mut ids = Vec::with_capacity(users);
    let mut pages = 0;
    let mut cursor: Option<UserCursor> = None;
    loop {
        let mut query = Users::query()
            .email_domain(domain.as_str())
            .limit(Limit::new(1000)?);
        if let Some(c) = cursor {
            query = query.after(c);
        }
        let page = query.page(&db)?;
        pages += 1;
        ids.extend(page.items.iter().map(|u| u.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }

    let titles: Vec<String> = (0..POSTS_PER_USER)
        .map(|j| format!("Post number {j}"))
        .collect();
    let body = "SQLite holds up in production when the data layer gets the details right.";
    let new_posts: Vec<NewPost> = ids
        .iter()
        .flat_map(|&user_id| {
            titles.iter().enumerate().map(move |(j, title)| NewPost {
                user_id,
                title,
                body,
                published: j != POSTS_PER_USER - 1,
            })
        })
        .collect();
    let started = Instant::now();
    let inserted_posts = Posts::batch_insert(&db, &new_posts)?;
    let post_rate = inserted_posts as f64 / started.elapsed().as_secs_f64();
    println!(
        "bulk insert: {inserted} users at {:.0} rows/s, {inserted_posts} posts at {:.0} rows/s",
        user_rate, post_rate
    );

    // Typed queries.
    let active = Users::query()
        .active(true)
        .email_domain(domain.as_str())
        .limit(Limit::new(100)?)
        .load(&db)?;
    let first = ids.first().copied().ok_or("no users were inserted")?;
    let recent = Posts::by_user(&db, first, Limit::new(3)?)?;
    let with_authors = Posts::recent_with_authors(&db, Limit::new(3)?)?;
    println!(
        "queries: {} active users (limit 100); user {first} has recent posts {:?}; newest published: {}",
        active.len(),
        recent.iter().map(|p| p.title.as_str()).collect::<Vec<_>>(),
        with_authors
            .iter()
            .map(|p| format!("{:?} by {}", p.post.title, p.author.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "keyset walk: {} users in {pages} pages of up to 1000",
        ids.len()
    );

    if ids.len() != users || inserted_posts != users * POSTS_PER_USER {
        return Err(format!(
            "this run's counts are off: {} users walked of {users}, {inserted_posts} posts",
            ids.len()
        )
        .into());
    }

    let report = concurrent_phase(&db, &ids, Duration::from_secs(seconds))?;
    println!(
        "concurrent ({seconds} s, 4 readers + 2 writers): {:.0} reads/s, {:.0} commits/s, busy errors: {}, other errors: {}",
        report.reads as f64 / report.elapsed,
        report.commits as f64 / report.elapsed,
        report.busy,
        report.other_errors
    );
    if report.busy != 0 || report.other_errors != 0 {
        return Err(format!(
            "{} busy errors and {} other errors in the concurrent phase",
            report.busy, report.other_errors
        )
        .into());
    }

    if std::env::args().any(|a| a == "--compare-floor") {
        match db {
            AnyDatabase::Sqlite(_) => compare_floor()?,
            AnyDatabase::Postgres(_) => {
                println!("compare-floor: measures SQLite's raw floor; skipped on PostgreSQL")
            }
        }
    }
    Ok(())
}

struct PhaseReport {
    reads: u64,
    commits: u64,
    busy: u64,
    other_errors: u64,
    elapsed: f64,
}

/// A cheap deterministic pseudo-random sequence (xorshift), one per thread.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn concurrent_phase(
    db: &AnyDatabase,
    ids: &[UserId],
    duration: Duration,
) -> BoxResult<PhaseReport> {
    let ids: Arc<Vec<UserId>> = Arc::new(ids.to_vec());
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let commits = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let count_error = |error: &Error, busy: &AtomicU64, other: &AtomicU64| {
        if error.is_busy() {
            busy.fetch_add(1, Ordering::Relaxed);
        } else {
            eprintln!("blog: error: {}", error.report());
            other.fetch_add(1, Ordering::Relaxed);
        }
    };
    let started = Instant::now();
    let mut handles = Vec::new();
    for reader in 0..4u64 {
        let (db, ids, stop) = (db.clone(), ids.clone(), stop.clone());
        let (reads, busy, other) = (reads.clone(), busy.clone(), other.clone());
        handles.push(thread::spawn(move || {
            let mut state = 0x9E37_79B9_7F4A_7C15 ^ (reader + 1);
            let limit = Limit::default();
            while !stop.load(Ordering::Relaxed) {
                let id = ids[(next_random(&mut state) % ids.len() as u64) as usize];
                let result = if state % 4 == 0 {
                    Posts::by_user(&db, id, limit).map(|_| ())
                } else {
                    Users::find(&db, id).map(|_| ())
                };
                match result {
                    Ok(()) => {
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => count_error(&e, &busy, &other),
                }
            }
        }));
    }
    for writer in 0..2u64 {
        let (db, ids, stop) = (db.clone(), ids.clone(), stop.clone());
        let (commits, busy, other) = (commits.clone(), busy.clone(), other.clone());
        handles.push(thread::spawn(move || {
            let mut state = 0x2545_F491_4F6C_DD1D ^ (writer + 1);
            while !stop.load(Ordering::Relaxed) {
                let id = ids[(next_random(&mut state) % ids.len() as u64) as usize];
                // Read-modify-write: read the user, add a post, rename the user, atomically.
                let result = db.transaction(|conn| {
                    let user = Users::find(&mut *conn, id)?.ok_or(Error::NotFound)?;
                    let title = format!("Reply from {}", user.name);
                    Posts::insert(
                        &mut *conn,
                        &NewPost {
                            user_id: id,
                            title: &title,
                            body: "written in the concurrent phase",
                            published: true,
                        },
                    )?;
                    Users::update(
                        &mut *conn,
                        id,
                        &UserChanges {
                            name: Some(format!("User {} (edited)", id.get())),
                            ..UserChanges::default()
                        },
                    )?;
                    Ok(())
                });
                match result {
                    Ok(()) => {
                        commits.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => count_error(&e, &busy, &other),
                }
            }
        }));
    }
    thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.join().map_err(|_| "a worker thread panicked")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(PhaseReport {
        reads: reads.load(Ordering::Relaxed),
        commits: commits.load(Ordering::Relaxed),
        busy: busy.load(Ordering::Relaxed),
        other_errors: other.load(Ordering::Relaxed),
        elapsed,
    })
}

/// Bulk insert of 1,000,000 users: litedal against the raw SQLite floor, in this process,
/// each on a fresh temp-file database, 3 runs each, median.
fn compare_floor() -> BoxResult<()> {
    const ROWS: usize = 1_000_000;
    let emails: Vec<String> = (0..ROWS)
        .map(|i| format!("user{i}@floor.example"))
        .collect();
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("user", e)).collect();
    let dir = tempfile::tempdir()?;
    let mut litedal_rates = Vec::new();
    let mut raw_rates = Vec::new();
    let mut multi_rates = Vec::new();
    for run in 0..3 {
        let path = dir.path().join(format!("litedal-{run}.db"));
        let db = Database::open(
            litedal::example::config()
                .database_url(format!("sqlite://{}", path.display()))
                .checkpoint_interval(Duration::ZERO)
                .build()?,
        )?;
        let started = Instant::now();
        let n = db.batch_insert(users::table, &rows)?;
        litedal_rates.push(n as f64 / started.elapsed().as_secs_f64());
        drop(db);

        let raw = raw_sqlite::open_like_litedal(&dir.path().join(format!("raw-{run}.db")), "FULL")?;
        let started = Instant::now();
        let n = raw_sqlite::insert_users_single_row(&raw, &emails)?;
        raw_rates.push(n as f64 / started.elapsed().as_secs_f64());

        let raw =
            raw_sqlite::open_like_litedal(&dir.path().join(format!("multi-{run}.db")), "FULL")?;
        let started = Instant::now();
        let n = raw_sqlite::insert_users_multi_row(&raw, &emails, 32766 / 3)?;
        multi_rates.push(n as f64 / started.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (l, r, m) = (
        median(&mut litedal_rates),
        median(&mut raw_rates),
        median(&mut multi_rates),
    );
    println!("bulk insert of {ROWS} users (median of 3, same pragmas, synchronous=FULL):");
    println!("  raw SQLite, one cached single-row statement: {r:>10.0} rows/s (floor)");
    println!(
        "  raw SQLite, multi-row statements:            {m:>10.0} rows/s ({:.2} of floor)",
        m / r
    );
    println!(
        "  litedal batch_insert:                         {l:>10.0} rows/s ({:.2} of floor)",
        l / r
    );
    Ok(())
}
