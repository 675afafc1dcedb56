//! Data safety under failures SQLite answers by rolling back the whole transaction (a full
//! disk or an I/O error while the page cache spills): nothing of the transaction may commit,
//! later statements in the same closure must fail, and the caller gets the original cause.

mod common;

use std::process::{Command, Stdio};

use diesel::prelude::*;
use litedal::example::models::NewUser;
use litedal::example::repo::Users;
use litedal::example::schema::users;
use litedal::{CheckDepth, Database, Error};

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
    /// `Users::batch_insert` (a batch insert, a savepoint each) of 10 rows at a time.
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
    let config = litedal::example::config()
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
                    Users::batch_insert(&mut *conn, &rows)
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
        let db = common::open_example(&path);
        let emails: Vec<String> = (0..200).map(|i| format!("base{i}@x.example")).collect();
        let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("base", e)).collect();
        Users::batch_insert(&db, &rows).unwrap();
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

    let later = stdout
        .lines()
        .filter(|l| l.contains("LATER-FAILURE"))
        .count();
    eprintln!(
        "{writes:?}: first failure at operation {}, {later} later operations failed, 0 succeeded; \
         the transaction returned {result}",
        first.split_whitespace().next().unwrap_or("?")
    );
    // Nothing of the transaction is in the file: only the 200 users committed before it.
    let db = common::open_example(path);
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
    let db = litedal::example::test_db().unwrap();
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

// ---------------------------------------------------------------------------------------------
// A relative DATABASE_URL is resolved once, at open
// ---------------------------------------------------------------------------------------------

/// Child: opens `data/rel.db` relative to its working directory, writes, changes directory,
/// and then makes litedal open new connections (a replacement after a panic, the monitoring
/// connection, a backup). Prints what it saw.
fn run_relative_child(backup: &str) {
    let db = Database::open(
        litedal::example::config()
            .database_url("sqlite://data/rel.db")
            .write_pool_size(1)
            .read_pool_size(1)
            .checkpoint_interval(std::time::Duration::ZERO)
            .build()
            .unwrap(),
    )
    .unwrap();
    let emails: Vec<String> = (0..50).map(|i| format!("rel{i}@x.example")).collect();
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("rel", e)).collect();
    Users::batch_insert(&db, &rows).unwrap();
    let elsewhere = std::env::var("LITEDAL_CHILD_ELSEWHERE").unwrap();
    std::env::set_current_dir(&elsewhere).unwrap();

    // A write connection released while its holder panics is closed, and r2d2 opens a new
    // one: before the fix it opened `data/rel.db` in the new working directory.
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        db.transaction(|_conn| -> litedal::Result<()> { panic!("on purpose") })
    }));
    assert!(panicked.is_err());
    Users::insert(&db, &NewUser::new("after", "after@x.example")).unwrap();
    println!("COUNT {}", Users::count(&db).unwrap());
    let stats = db.connection_stats();
    let files = stats.files.unwrap();
    println!("PAGES {}", files.page_count.unwrap_or(0));
    println!("DBBYTES {}", files.database_bytes);
    println!("PATH {}", db.path().unwrap().display());
    let report = db.backup(backup, litedal::Overwrite::Refuse).unwrap();
    println!("BACKUP {}", report.path.display());
}

#[test]
fn a_relative_url_keeps_naming_the_same_file_after_a_change_of_directory() {
    if let Ok(backup) = std::env::var("LITEDAL_CHILD_RELATIVE_BACKUP") {
        run_relative_child(&backup);
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let backup = home.path().join("backup.db");
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_relative_url_keeps_naming_the_same_file_after_a_change_of_directory",
            "--nocapture",
            "--test-threads=1",
        ])
        .current_dir(home.path())
        .env("LITEDAL_CHILD_RELATIVE_BACKUP", &backup)
        .env("LITEDAL_CHILD_ELSEWHERE", elsewhere.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value = |key: &str| -> String {
        stdout
            .lines()
            .find_map(|l| after(l, &format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
            .trim()
            .to_owned()
    };
    // Every row, including the one written on the replacement connection, is in the one file.
    assert_eq!(value("COUNT"), "51");
    let real = home.path().join("data/rel.db").canonicalize().unwrap();
    assert_eq!(value("PATH"), real.display().to_string());
    assert!(value("PAGES").parse::<u64>().unwrap() > 1, "{stdout}");
    assert!(value("DBBYTES").parse::<u64>().unwrap() > 0, "{stdout}");
    // Nothing was created in the directory the child moved to.
    assert!(
        std::fs::read_dir(elsewhere.path())
            .unwrap()
            .next()
            .is_none(),
        "files appeared in the new working directory"
    );
    let db = common::open_example(&real);
    assert_eq!(Users::count(&db).unwrap(), 51);
    drop(db);
    // The backup is of the real database, not of an empty new one.
    let copy = Database::open(
        litedal::example::config()
            .database_url(backup.display().to_string())
            .run_migrations(false)
            .build()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(Users::count(&copy).unwrap(), 51);
}

// ---------------------------------------------------------------------------------------------
// The write gate is never held while waiting for a pool connection
// ---------------------------------------------------------------------------------------------

#[test]
fn an_exhausted_write_pool_is_pool_timeout_for_every_writer_never_busy() {
    use std::time::{Duration, Instant};
    let db = litedal::example::test_db_with(|b| {
        b.write_pool_size(1)
            .pool_timeout(Duration::from_secs(1))
            .busy_timeout(Duration::from_millis(200))
            .checkpoint_interval(Duration::ZERO)
    })
    .unwrap();
    let held = db.write_connection().unwrap();
    let started = Instant::now();
    let results: Vec<litedal::Result<()>> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..3)
            .map(|i| {
                let db = db.db();
                s.spawn(move || {
                    Users::insert(db, &NewUser::new("w", &format!("w{i}@x.example"))).map(|_| ())
                })
            })
            .collect();
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for result in &results {
        assert!(
            matches!(result, Err(Error::PoolTimeout { .. })),
            "a writer waiting for the pool must get PoolTimeout, not Busy: {result:?}"
        );
    }
    assert!(started.elapsed() >= Duration::from_secs(1));
    drop(held);
    Users::insert(db.db(), &NewUser::new("w", "ok@x.example")).unwrap();
}

#[test]
fn a_writer_queued_behind_a_blocking_checkpoint_waiting_for_the_pool_gets_through() {
    use std::time::Duration;
    let db = litedal::example::test_db_with(|b| {
        b.write_pool_size(1)
            .pool_timeout(Duration::from_secs(10))
            .busy_timeout(Duration::from_millis(300))
            .checkpoint_interval(Duration::ZERO)
    })
    .unwrap();
    let held = db.write_connection().unwrap();
    std::thread::scope(|s| {
        let checkpoint = s.spawn(|| db.checkpoint(litedal::CheckpointMode::Truncate));
        // Let the checkpoint start waiting for the pool first.
        std::thread::sleep(Duration::from_millis(100));
        let writer = s.spawn(|| Users::insert(db.db(), &NewUser::new("c", "c@x.example")));
        // Longer than the busy timeout: a checkpoint that held the write gate while waiting
        // for the pool made this writer fail with Busy.
        std::thread::sleep(Duration::from_millis(600));
        drop(held);
        checkpoint.join().unwrap().unwrap();
        writer.join().unwrap().unwrap();
    });
    assert_eq!(Users::count(db.db()).unwrap(), 1);
}

// ---------------------------------------------------------------------------------------------
// Writes on a connection the caller holds take the lock like every other write
// ---------------------------------------------------------------------------------------------

#[test]
fn writes_on_a_held_connection_queue_fairly_among_gated_writers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let db = litedal::example::test_db_with(|b| {
        b.write_pool_size(4)
            .busy_timeout(Duration::from_secs(1))
            .checkpoint_interval(Duration::ZERO)
    })
    .unwrap();
    /// Stops the gated writers also when the measuring thread panics.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = AtomicBool::new(false);
    let (held_writes, slowest) = std::thread::scope(|s| {
        for t in 0..3 {
            let (db, stop) = (db.db(), &stop);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    // Each transaction holds the lock for a few milliseconds; the gate hands
                    // it to the next writer within microseconds.
                    db.transaction(|conn| {
                        Users::insert(
                            &mut *conn,
                            &NewUser::new("g", &format!("g{t}-{i}@x.example")),
                        )?;
                        std::thread::sleep(Duration::from_millis(3));
                        Ok(())
                    })
                    .unwrap();
                    i += 1;
                }
            });
        }
        let _stop = StopOnDrop(&stop);
        let mut conn = db.write_connection().unwrap();
        let mut slowest = Duration::ZERO;
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut n = 0;
        while Instant::now() < deadline {
            let started = Instant::now();
            Users::insert(&mut conn, &NewUser::new("h", &format!("h{n}@x.example")))
                .expect("a write on a held connection must not starve");
            slowest = slowest.max(started.elapsed());
            n += 1;
        }
        (n, slowest)
    });
    assert!(held_writes > 10, "only {held_writes} writes in 3 s");
    assert!(slowest < Duration::from_secs(1), "slowest {slowest:?}");
    eprintln!("held-connection writes: {held_writes} in 3 s, slowest {slowest:?}");
}

#[test]
fn a_write_on_a_held_connection_waits_for_a_foreign_lock_then_gets_busy_then_recovers() {
    use diesel::connection::SimpleConnection;
    use std::time::{Duration, Instant};
    let db =
        litedal::example::test_db_with(|b| b.busy_timeout(Duration::from_millis(300))).unwrap();
    let mut holder = SqliteConnection::establish(&db.path().display().to_string()).unwrap();
    holder.batch_execute("BEGIN IMMEDIATE").unwrap();
    let mut conn = db.write_connection().unwrap();
    let started = Instant::now();
    let result = Users::insert(&mut conn, &NewUser::new("x", "x@x.example"));
    assert!(matches!(result, Err(Error::Busy)), "{result:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    holder.batch_execute("ROLLBACK").unwrap();
    Users::insert(&mut conn, &NewUser::new("x", "x@x.example")).unwrap();
    // Inside a transaction on the same thread, a held connection of the same database would
    // wait for itself on the gate: refused at once instead.
    let nested = db.transaction(|_| Users::insert(&mut conn, &NewUser::new("y", "y@x.example")));
    assert!(
        matches!(nested, Err(Error::NestedTransaction)),
        "{nested:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// :memory: has one connection: asking for a second on the same thread fails at once
// ---------------------------------------------------------------------------------------------

#[test]
fn memory_database_refuses_a_second_checkout_on_the_same_thread_at_once() {
    use std::time::{Duration, Instant};
    let db = Database::open(
        litedal::example::config()
            .database_url(":memory:")
            .pool_timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    )
    .unwrap();
    let user = Users::insert(&db, &NewUser::new("m", "m@x.example")).unwrap();
    let started = Instant::now();
    let inside = db.transaction(|conn| {
        let find = Users::find(&db, user.id);
        assert!(matches!(find, Err(Error::ConnectionHeld)), "{find:?}");
        let read = db.read(|_| Ok(()));
        assert!(matches!(read, Err(Error::ConnectionHeld)), "{read:?}");
        let dir = tempfile::tempdir().unwrap();
        let backup = db.backup(dir.path().join("b.db"), litedal::Overwrite::Refuse);
        assert!(matches!(backup, Err(Error::ConnectionHeld)), "{backup:?}");
        // The connection in hand works.
        Ok(Users::find(&mut *conn, user.id)?.is_some())
    });
    assert!(inside.unwrap());
    let nested_read = db.read(|_| Ok(db.transaction(|_| Ok(()))));
    assert!(
        matches!(nested_read, Ok(Err(Error::ConnectionHeld))),
        "{nested_read:?}"
    );
    let held = db.read_connection().unwrap();
    assert!(matches!(db.write_connection(), Err(Error::ConnectionHeld)));
    drop(held);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited for the pool"
    );
    // Another thread simply waits its turn.
    let held = db.write_connection().unwrap();
    std::thread::scope(|s| {
        let other = s.spawn(|| Users::count(&db));
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        assert_eq!(other.join().unwrap().unwrap(), 1);
    });
}

// ---------------------------------------------------------------------------------------------
// Error mapping: SQLITE_LOCKED, NOT NULL, corruption found at run time
// ---------------------------------------------------------------------------------------------

#[test]
fn sqlite_locked_is_its_own_error_and_is_not_retried() {
    use diesel::connection::SimpleConnection;
    use std::time::{Duration, Instant};
    // Two connections sharing one cache: a table lock is SQLITE_LOCKED, not SQLITE_BUSY.
    let uri = "file:litedal-locked-test?mode=memory&cache=shared";
    let mut a = SqliteConnection::establish(uri).unwrap();
    let mut b = SqliteConnection::establish(uri).unwrap();
    a.batch_execute("CREATE TABLE t (x INTEGER); BEGIN; INSERT INTO t VALUES (1);")
        .unwrap();
    let started = Instant::now();
    let error = Error::from(b.batch_execute("SELECT * FROM t").unwrap_err());
    assert!(matches!(error, Error::Locked { .. }), "{error:?}");
    assert!(!error.is_busy());
    assert!(started.elapsed() < Duration::from_secs(1));
    a.batch_execute("COMMIT").unwrap();
}

#[test]
fn not_null_violations_name_the_column() {
    let db = litedal::example::test_db().unwrap();
    let result = db.transaction(|conn| {
        Ok(
            diesel::sql_query("INSERT INTO users (name, email) VALUES (NULL, 'n@x.example')")
                .execute(conn)?,
        )
    });
    match result {
        Err(Error::NotNull { column, chunk }) => {
            assert_eq!(column, "users.name");
            assert_eq!(chunk, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn corruption_found_while_running_is_reported_with_the_path() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.db");
    let open = || {
        Database::open(
            litedal::example::config()
                .database_url(path.display().to_string())
                .checkpoint_interval(std::time::Duration::ZERO)
                .build()
                .unwrap(),
        )
        .unwrap()
    };
    let db = open();
    let emails: Vec<String> = (0..3000).map(|i| format!("c{i}@x.example")).collect();
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("c", e)).collect();
    Users::batch_insert(&db, &rows).unwrap();
    #[derive(QueryableByName)]
    struct Root {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        rootpage: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        page_size: i64,
    }
    let root = db
        .read(|c| {
            Ok(diesel::sql_query(
                "SELECT rootpage, (SELECT page_size FROM pragma_page_size) AS page_size \
                 FROM sqlite_master WHERE name = 'users_email_key' OR (type = 'index' AND tbl_name = 'users' AND sql IS NULL) LIMIT 1",
            )
            .get_result::<Root>(c)?)
        })
        .unwrap();
    drop(db);
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(
        ((root.rootpage - 1) * root.page_size) as u64,
    ))
    .unwrap();
    file.write_all(&[0xA5; 64]).unwrap();
    file.sync_all().unwrap();
    drop(file);
    let db = open();
    // The unique index on email is what this lookup reads.
    let error = Users::find_by_email(&db, "c1500@x.example").unwrap_err();
    match &error {
        Error::Corrupt { path: Some(p), .. } => {
            assert_eq!(p, &path.canonicalize().unwrap(), "{error}");
            assert!(error.to_string().contains("corrupt.db"), "{error}");
        }
        other => panic!("expected Corrupt with the path, got {other:?}"),
    }
}
