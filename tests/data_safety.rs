//! Data safety under failures SQLite answers by rolling back the whole transaction (a full
//! disk or an I/O error while the page cache spills): nothing of the transaction may commit,
//! later statements in the same closure must fail, and the caller gets the original cause.

use std::process::{Command, Stdio};

use diesel::prelude::*;
use litedal::models::NewUser;
use litedal::repo::Users;
use litedal::schema::users;
use litedal::testing::TestDb;
use litedal::{CheckDepth, Config, Database, Error};

/// Rows of about 4 KiB, so that a few hundred of them overflow a small page cache and SQLite
/// must spill dirty pages to the WAL in the middle of the transaction.
const NAME_BYTES: usize = 4000;

/// How a child writes inside its one transaction.
#[derive(Clone, Copy, Debug)]
enum Writes {
    /// `Users::insert` (a savepoint each), logging and continuing on error.
    Repository,
    /// Plain diesel `insert_into(..).execute(conn)`, logging and continuing on error.
    RawDiesel,
    /// `Users::insert_many` (a batch insert, a savepoint each) of 10 rows at a time.
    Batch,
}

/// Child: caps its file size with RLIMIT_FSIZE, then runs one transaction that inserts users
/// in a loop and logs and continues on every error. Prints what happened, one line each.
fn run_child(path: &str, limit: u64, writes: Writes) {
    // SAFETY: plain libc calls with valid arguments; ignoring SIGXFSZ makes an oversized
    // write fail with EFBIG instead of killing the process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let rlimit = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit), 0);
    }
    let config = Config::builder()
        .database_url(path)
        .cache_size_kib(256)
        .checkpoint_interval(std::time::Duration::ZERO)
        .build()
        .unwrap();
    let db = Database::open(config).unwrap();
    let name = "n".repeat(NAME_BYTES);
    let result = db.transaction(|conn| {
        let mut failed = false;
        for i in 0..2000 {
            let email = format!("loop{i}@x.example");
            let inserted = match writes {
                Writes::Repository => Users::insert(&mut *conn, &NewUser::new(&name, &email))
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}")),
                Writes::RawDiesel => diesel::insert_into(users::table)
                    .values(&NewUser::new(&name, &email))
                    .execute(conn)
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}")),
                Writes::Batch => {
                    let emails: Vec<String> =
                        (0..10).map(|j| format!("batch{i}-{j}@x.example")).collect();
                    let rows: Vec<NewUser> =
                        emails.iter().map(|e| NewUser::new(&name, e)).collect();
                    Users::insert_many(&mut *conn, &rows)
                        .map(|_| ())
                        .map_err(|e| format!("{e:?}"))
                }
            };
            match inserted {
                Ok(()) if failed => println!("OK-AFTER-FAILURE {email}"),
                Ok(()) => {}
                Err(e) if !failed => {
                    failed = true;
                    println!("FIRST-FAILURE {i} {e}");
                }
                Err(e) => println!("LATER-FAILURE {e}"),
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => println!("RESULT Ok"),
        Err(e) => println!("RESULT {e:?}"),
    }
}

/// Runs the child for `writes` against a fresh database of 200 committed users and returns
/// its output and the database path.
fn child_run(test: &str, writes: Writes) -> (String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("safety.db");
    {
        let db = Database::open(
            Config::builder()
                .database_url(path.display().to_string())
                .build()
                .unwrap(),
        )
        .unwrap();
        let emails: Vec<String> = (0..200).map(|i| format!("base{i}@x.example")).collect();
        let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("base", e)).collect();
        Users::insert_many(&db, &rows).unwrap();
        db.checkpoint(litedal::CheckpointMode::Truncate).unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("LITEDAL_CHILD_SAFETY_DB", &path)
        .env("LITEDAL_CHILD_WRITES", format!("{writes:?}"))
        // Room for the database and about 1 MiB of WAL: the transaction's spill fails first.
        .env("LITEDAL_CHILD_FSIZE", (size + 1024 * 1024).to_string())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "child failed: {stdout}");
    (stdout, path, dir)
}

fn child_entry() -> bool {
    let Ok(path) = std::env::var("LITEDAL_CHILD_SAFETY_DB") else {
        return false;
    };
    let limit = std::env::var("LITEDAL_CHILD_FSIZE")
        .unwrap()
        .parse()
        .unwrap();
    let writes = match std::env::var("LITEDAL_CHILD_WRITES").unwrap().as_str() {
        "Repository" => Writes::Repository,
        "Batch" => Writes::Batch,
        _ => Writes::RawDiesel,
    };
    run_child(&path, limit, writes);
    true
}

/// The rest of `line` after `marker` (the test harness may print its own text before it).
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|at| &line[at + marker.len()..])
}

/// Checks what the child printed and what the file holds afterwards.
fn assert_all_or_nothing(stdout: &str, path: &std::path::Path, writes: Writes) {
    let first = stdout
        .lines()
        .find_map(|l| after(l, "FIRST-FAILURE "))
        .unwrap_or_else(|| panic!("the child never hit the file-size limit: {stdout}"));
    // The first failure is the cause itself: an I/O error writing the WAL (EFBIG), not a
    // follow-up error such as "no such savepoint".
    assert!(
        first.contains("disk I/O error") || first.contains("DiskFull"),
        "the first failure is not the cause: {first}"
    );
    let committed_after: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("OK-AFTER-FAILURE"))
        .collect();
    assert!(
        committed_after.is_empty(),
        "{} statements succeeded after SQLite rolled the transaction back, e.g. {:?}",
        committed_after.len(),
        committed_after.first()
    );
    if let Writes::Repository | Writes::Batch = writes {
        // Every later repository write says the transaction is gone, naming the cause.
        let later: Vec<&str> = stdout
            .lines()
            .filter_map(|l| after(l, "LATER-FAILURE "))
            .collect();
        assert!(!later.is_empty(), "{stdout}");
        for line in &later {
            assert!(line.starts_with("TransactionAborted"), "unclear: {line}");
            assert!(line.contains("disk I/O error"), "no cause: {line}");
        }
    }
    let result = stdout
        .lines()
        .find_map(|l| after(l, "RESULT "))
        .unwrap_or_else(|| panic!("no result line: {stdout}"));
    // The caller gets the original cause, although the closure swallowed it and returned Ok.
    assert!(
        result.contains("disk I/O error") && !result.contains("savepoint"),
        "the caller did not get the cause: {result}"
    );

    // Nothing of the transaction is in the file: only the 200 users committed before it.
    let db = Database::open(
        Config::builder()
            .database_url(path.display().to_string())
            .build()
            .unwrap(),
    )
    .unwrap();
    assert!(db.integrity_check(CheckDepth::Full).unwrap().is_empty());
    assert_eq!(Users::count(&db).unwrap(), 200, "{stdout}");
}

#[test]
fn a_failed_spill_aborts_the_whole_transaction_and_nothing_after_it_commits() {
    if child_entry() {
        return;
    }
    let test = "a_failed_spill_aborts_the_whole_transaction_and_nothing_after_it_commits";
    let (stdout, path, _dir) = child_run(test, Writes::Repository);
    assert_all_or_nothing(&stdout, &path, Writes::Repository);
}

#[test]
fn raw_diesel_statements_after_an_abort_commit_nothing_either() {
    if child_entry() {
        return;
    }
    let test = "raw_diesel_statements_after_an_abort_commit_nothing_either";
    let (stdout, path, _dir) = child_run(test, Writes::RawDiesel);
    assert_all_or_nothing(&stdout, &path, Writes::RawDiesel);
}

#[test]
fn a_batch_insert_inside_a_transaction_lost_to_sqlite_commits_nothing() {
    if child_entry() {
        return;
    }
    let test = "a_batch_insert_inside_a_transaction_lost_to_sqlite_commits_nothing";
    let (stdout, path, _dir) = child_run(test, Writes::Batch);
    assert_all_or_nothing(&stdout, &path, Writes::Batch);
}

/// A constraint error inside a transaction is a statement-level failure: SQLite undoes only
/// that statement, the savepoint undoes only that operation, and the rest commits.
#[test]
fn a_constraint_error_undoes_only_its_own_operation() {
    let db = TestDb::new().unwrap();
    let outcome = db.transaction(|conn| {
        Users::insert(&mut *conn, &NewUser::new("a", "a@x.example"))?;
        let duplicate = Users::insert(&mut *conn, &NewUser::new("again", "a@x.example"));
        assert!(
            matches!(duplicate, Err(Error::Conflict { .. })),
            "{duplicate:?}"
        );
        Users::insert(&mut *conn, &NewUser::new("b", "b@x.example"))?;
        Ok(())
    });
    outcome.unwrap();
    assert_eq!(Users::count(db.db()).unwrap(), 2);
}
