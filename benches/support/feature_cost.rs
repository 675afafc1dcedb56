//! The SQLite work that the `feature` case of the throughput benchmark times in two builds of
//! litedal, without and with the `postgres` feature: `benches/sqlite-only` built twice, each
//! build running this file in a child process, so what differs between them is only the
//! feature. (The benchmark binary can run it too, with `--feature-cost-child`.)
//!
//! A child is called as `<binary> --feature-cost-child <work> <database> <count>` and prints
//! one line, `<work> <operations per second>`. `examples/profile_list.rs` includes it for
//! `list` alone.

#![allow(dead_code)]

use std::path::Path;
use std::time::Instant;

use litedal::example::models::{NewUser, UserId};
use litedal::example::repo::Users;
use litedal::{Database, Limit};

type ChildResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The flag a child is started with.
pub const CHILD_FLAG: &str = "--feature-cost-child";

/// The kinds of work, in the order the benchmark runs them.
pub const WORK: [&str; 3] = ["reads", "list", "bulk"];

fn open(path: &Path) -> ChildResult<Database> {
    Ok(Database::open(
        litedal::example::config()
            .database_url(format!("sqlite://{}", path.display()))
            .build()?,
    )?)
}

/// The filtered list of the `list` case, through litedal (the benchmark's own `list` case
/// times the same call): 100 active users at `bench.example`.
pub fn list(db: &Database) -> ChildResult<()> {
    let users = Users::query()
        .active(true)
        .email_domain("bench.example")
        .limit(Limit::new(100)?)
        .load(db)?;
    if users.len() != 100 {
        return Err(format!("litedal list: {} rows", users.len()).into());
    }
    Ok(())
}

/// Runs the work the arguments after [`CHILD_FLAG`] name and prints its rate.
pub fn child(args: &[String]) -> ChildResult<()> {
    let [work, path, count] = args else {
        return Err(
            format!("{CHILD_FLAG} <reads|list|bulk> <database> <count>, got {args:?}").into(),
        );
    };
    let path = Path::new(path);
    let count: usize = count.parse()?;
    // SAFETY: this child process runs no other thread yet.
    if !unsafe { litedal::init_sqlite() } {
        return Err("litedal::init_sqlite() could not install litedal's mutexes".into());
    }
    let rate = match work.as_str() {
        // Point reads of a populated database: Users::find, a checkout per read.
        "reads" => {
            let db = open(path)?;
            let rows = Users::count(&db)?;
            if rows < 1 {
                return Err(format!("{}: no users to read", path.display()).into());
            }
            let mut id: i64 = 1;
            let started = Instant::now();
            for _ in 0..count {
                // A fixed walk through the ids (a multiplicative step, coprime in practice).
                id = (id * 48_271) % rows + 1;
                if Users::find(&db, UserId(id))?.is_none() {
                    return Err(format!("user {id} missing").into());
                }
            }
            count as f64 / started.elapsed().as_secs_f64()
        }
        "list" => {
            let db = open(path)?;
            let started = Instant::now();
            for _ in 0..count {
                list(&db)?;
            }
            count as f64 / started.elapsed().as_secs_f64()
        }
        // batch_insert of `count` users into a new database file.
        "bulk" => {
            let db = open(path)?;
            let emails: Vec<String> = (0..count).map(|i| format!("f{i}@bench.example")).collect();
            let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("bulk", e)).collect();
            let started = Instant::now();
            let inserted = db.batch_insert(litedal::example::schema::users::table, &rows)?;
            let seconds = started.elapsed().as_secs_f64();
            if inserted != count {
                return Err(format!("bulk: {inserted} of {count} rows").into());
            }
            count as f64 / seconds
        }
        other => return Err(format!("{CHILD_FLAG}: no work {other:?}; expected {WORK:?}").into()),
    };
    println!("{work} {rate}");
    Ok(())
}
