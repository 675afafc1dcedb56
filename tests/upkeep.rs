//! Upkeep and durability against real temp-file databases, real threads and real child
//! processes: checkpoints past a long reader, the Litestream recipe, online backups under
//! concurrent writers, integrity checks, optimize, SIGKILL crash safety, and restore.

mod common;

use common::dir_entries;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, SystemTime};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use litedal::example::schema::users;
use litedal::maintenance::{integrity_check_file, restore};
use litedal::{CheckDepth, CheckpointMode, Database, Error, Overwrite, Synchronous};

#[derive(QueryableByName, Debug)]
struct IntValue {
    #[diesel(sql_type = BigInt)]
    value: i64,
}

fn int(conn: &mut SqliteConnection, sql: &str) -> litedal::Result<i64> {
    Ok(diesel::sql_query(sql).get_result::<IntValue>(conn)?.value)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Size of the `-wal` file. Only metadata: opening and closing a descriptor of a file that
/// SQLite has open in this process would drop SQLite's POSIX locks on it.
fn wal_size(db: &Path) -> u64 {
    std::fs::metadata(sibling(db, "-wal")).map_or(0, |m| m.len())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Inserts users `ids` with one multi-row INSERT.
fn insert_users(conn: &mut SqliteConnection, ids: std::ops::Range<i64>) -> QueryResult<usize> {
    let rows: Vec<_> = ids
        .map(|i| {
            (
                users::id.eq(i),
                users::name.eq(format!("user {i}")),
                users::email.eq(format!("user{i}@example.com")),
            )
        })
        .collect();
    diesel::insert_into(users::table).values(rows).execute(conn)
}

fn user_count(conn: &mut SqliteConnection) -> litedal::Result<i64> {
    Ok(users::table.count().get_result(conn)?)
}

fn open(
    path: &Path,
    configure: impl FnOnce(litedal::ConfigBuilder) -> litedal::ConfigBuilder,
) -> Database {
    let config = configure(litedal::example::config().database_url(path.display().to_string()))
        .build()
        .unwrap();
    Database::open(config).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A small xorshift generator: the kill moments are random, and the seed is printed so a
/// failing run can be repeated with LITEDAL_TEST_SEED.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Rng {
        let seed = std::env::var("LITEDAL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    ^ u64::from(std::process::id())
            });
        eprintln!("LITEDAL_TEST_SEED={seed}");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Re-runs this test binary as a child process running only `test`, with `env` set.
fn spawn_child(test: &str, env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().unwrap()
}

#[test]
fn passive_checkpoints_progress_past_a_long_reader_and_truncate_empties_the_wal() {
    // The background checkpointer is off so that only the checkpoints of this test run.
    let db = litedal::example::test_db_with(|b| {
        b.checkpoint_interval(Duration::ZERO)
            .busy_timeout(Duration::from_millis(400))
    })
    .unwrap();
    db.transaction(|c| Ok(insert_users(c, 1..101)?)).unwrap();

    // A reader holds one read transaction (one snapshot) until told to finish.
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let reader_db = db.db().clone();
    let reader = thread::spawn(move || {
        reader_db
            .read(|conn| {
                let before = user_count(conn)?;
                started_tx.send(before).unwrap();
                release_rx.recv().unwrap();
                Ok((before, user_count(conn)?))
            })
            .unwrap()
    });
    assert_eq!(started_rx.recv().unwrap(), 100);

    // Meanwhile a writer commits 3000 rows in 300 transactions, with a PASSIVE checkpoint
    // after every 50 transactions.
    let mut passive = Vec::new();
    for t in 0..300 {
        let first = 101 + t * 10;
        db.transaction(|c| Ok(insert_users(c, first..first + 10)?))
            .unwrap();
        if t % 50 == 49 {
            passive.push(db.checkpoint(CheckpointMode::Passive).unwrap());
        }
    }
    for report in &passive {
        println!("{report}");
        // It returned while the reader is still inside its transaction: PASSIVE never waits.
        assert!(!report.busy, "{report:?}");
        let (log, done) = (
            report.wal_frames.unwrap(),
            report.checkpointed_frames.unwrap(),
        );
        assert!(done < log, "partial progress expected: {report:?}");
        assert!(!report.is_complete());
    }
    // The WAL cannot restart under the reader's snapshot, so it only grows.
    for pair in passive.windows(2) {
        assert!(pair[1].wal_frames > pair[0].wal_frames);
        assert!(pair[1].wal_bytes_before > pair[0].wal_bytes_before);
    }
    assert!(db.last_checkpoint().is_some());

    // TRUNCATE must wait for the reader: bounded by the busy timeout, it comes back busy.
    let blocked = db.checkpoint(CheckpointMode::Truncate).unwrap();
    println!("{blocked}");
    assert!(blocked.busy, "{blocked:?}");
    assert!(wal_size(db.path()) > 0);
    // A busy checkpoint is not recorded as the last successful one.
    assert_eq!(db.last_checkpoint().unwrap().mode, CheckpointMode::Passive);

    release_tx.send(()).unwrap();
    let (before, after) = reader.join().unwrap();
    assert_eq!(
        (before, after),
        (100, 100),
        "one snapshot for the whole read"
    );

    let truncated = db.checkpoint(CheckpointMode::Truncate).unwrap();
    println!("{truncated}");
    assert!(!truncated.busy && truncated.is_complete(), "{truncated:?}");
    assert!(truncated.wal_bytes_before > 1 << 20, "{truncated:?}");
    assert_eq!(truncated.wal_bytes_after, 0);
    assert_eq!(wal_size(db.path()), 0);
    assert_eq!(db.last_checkpoint(), Some(truncated));
    assert_eq!(db.read(user_count).unwrap(), 3100);
    assert!(db.integrity_check(CheckDepth::Full).unwrap().is_empty());
}

#[test]
fn every_checkpoint_mode_runs_and_none_runs_inside_a_transaction() {
    let db = litedal::example::test_db_with(|b| b.checkpoint_interval(Duration::ZERO)).unwrap();
    for (i, mode) in [
        CheckpointMode::Passive,
        CheckpointMode::Full,
        CheckpointMode::Restart,
        CheckpointMode::Truncate,
    ]
    .into_iter()
    .enumerate()
    {
        let first = 1 + i as i64 * 100;
        db.transaction(|c| Ok(insert_users(c, first..first + 100)?))
            .unwrap();
        let report = db.checkpoint(mode).unwrap();
        println!("{report}");
        assert_eq!(report.mode, mode);
        assert!(report.is_complete(), "{report:?}");
        assert!(report.wal_bytes_before > 0, "{report:?}");
        if mode == CheckpointMode::Truncate {
            assert_eq!(report.wal_bytes_after, 0);
        } else {
            assert!(report.wal_frames.unwrap() > 0, "{report:?}");
        }
    }
    let err = db
        .transaction(|_| db.checkpoint(CheckpointMode::Truncate).map(|_| ()))
        .unwrap_err();
    assert!(matches!(err, Error::NestedTransaction), "{err:?}");
}

#[test]
fn litestream_recipe_litedal_never_checkpoints() {
    // DB_WAL_AUTOCHECKPOINT=0 and DB_CHECKPOINT_INTERVAL_SECS=0: checkpointing belongs to
    // the external tool. The WAL only grows and the database file is never written.
    let db = litedal::example::test_db_with(|b| {
        b.wal_autocheckpoint(0).checkpoint_interval(Duration::ZERO)
    })
    .unwrap();
    let main = std::fs::metadata(db.path()).unwrap();
    let mut sizes = vec![wal_size(db.path())];
    for t in 0..100 {
        let first = 1 + t * 20;
        db.transaction(|c| Ok(insert_users(c, first..first + 20)?))
            .unwrap();
        sizes.push(wal_size(db.path()));
    }
    println!(
        "Litestream recipe: WAL grew from {} to {} bytes over 100 commits",
        sizes[0],
        sizes[sizes.len() - 1]
    );
    assert!(sizes.windows(2).all(|w| w[1] >= w[0]), "{sizes:?}");
    assert!(sizes[sizes.len() - 1] > sizes[0] + (1 << 20), "{sizes:?}");
    let after = std::fs::metadata(db.path()).unwrap();
    assert_eq!(after.len(), main.len(), "no checkpoint copied pages back");
    assert_eq!(after.modified().unwrap(), main.modified().unwrap());
    assert_eq!(db.last_checkpoint(), None);
    #[derive(QueryableByName)]
    struct Autocheckpoint {
        #[diesel(sql_type = BigInt)]
        wal_autocheckpoint: i64,
    }
    let mut conn = db.write_connection().unwrap();
    let pages = diesel::sql_query("PRAGMA wal_autocheckpoint")
        .get_result::<Autocheckpoint>(&mut conn)
        .unwrap()
        .wal_autocheckpoint;
    assert_eq!(pages, 0);
}

#[test]
fn backup_taken_during_concurrent_writes_is_a_consistent_private_snapshot() {
    const ROWS_PER_TX: i64 = 5;
    let db = litedal::example::test_db().unwrap();
    db.transaction(|c| {
        Ok(c.batch_execute(
            "CREATE TABLE ledger (id INTEGER PRIMARY KEY CHECK (id = 1), total INTEGER NOT NULL);
             INSERT INTO ledger VALUES (1, 0);",
        )?)
    })
    .unwrap();
    // 50,000 rows first, so that the copy takes long enough for the writers to commit
    // while it runs.
    db.transaction(|c| {
        for chunk in 0..10 {
            let first = 1_000_000 + chunk * 5000;
            insert_users(c, first..first + 5000)?;
        }
        Ok(())
    })
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Every total any writer committed: a consistent snapshot holds one of them.
    let committed = Arc::new(Mutex::new(BTreeSet::from([0i64])));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (db, stop, committed) = (db.db().clone(), stop.clone(), committed.clone());
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    // The users and the ledger change in one transaction: a torn copy would
                    // show a user count that differs from the ledger's total.
                    let total = db
                        .transaction(|c| {
                            let total = int(c, "SELECT total AS value FROM ledger")?;
                            let rows: Vec<_> = (0..ROWS_PER_TX)
                                .map(|k| {
                                    (
                                        users::name.eq(format!("writer {w}")),
                                        users::email.eq(format!("w{w}-{n}-{k}@example.com")),
                                    )
                                })
                                .collect();
                            diesel::insert_into(users::table).values(rows).execute(c)?;
                            c.batch_execute(&format!(
                                "UPDATE ledger SET total = total + {ROWS_PER_TX}"
                            ))?;
                            Ok(total + ROWS_PER_TX)
                        })
                        .unwrap();
                    committed.lock().unwrap().insert(total);
                    n += 1;
                }
                n
            })
        })
        .collect();
    while committed.lock().unwrap().len() < 50 {
        thread::sleep(Duration::from_millis(5));
    }

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("backups").join("main.db");
    let before = db
        .read(|c| int(c, "SELECT total AS value FROM ledger"))
        .unwrap();
    let commits_before = committed.lock().unwrap().len();
    let mut progress = Vec::new();
    let report = db
        .backup_with_progress(&dest, Overwrite::Refuse, |p| progress.push(p))
        .unwrap();
    let after_backup = committed.lock().unwrap().len();
    println!(
        "{} transactions committed while the backup ran",
        after_backup - commits_before
    );
    // Let the writers go on for a moment after the backup too.
    while committed.lock().unwrap().len() < after_backup + 20 {
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let transactions: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    println!("{report}; {transactions} transactions by 2 writers");

    assert_eq!(report.path, dest);
    assert!(!report.replaced);
    assert_eq!(mode(&dest), 0o600);
    assert_eq!(mode(dest.parent().unwrap()), 0o700);
    assert_eq!(
        dir_entries(dest.parent().unwrap()),
        vec!["main.db"],
        "no temp file left"
    );
    assert_eq!(report.bytes, std::fs::metadata(&dest).unwrap().len());
    assert_eq!(report.bytes, report.pages * report.page_size);
    let last = progress.last().copied().unwrap();
    assert_eq!(last.bytes_written, report.bytes);
    assert!(last.bytes_expected >= report.bytes / 2, "{last:?}");
    assert!(
        integrity_check_file(&dest, CheckDepth::Full)
            .unwrap()
            .is_empty()
    );

    // A second backup to the same path without Overwrite::Replace fails cleanly and leaves
    // the first intact.
    let first_bytes = std::fs::read(&dest).unwrap();
    let err = db.backup(&dest, Overwrite::Refuse).unwrap_err();
    match &err {
        Error::Io { path, source, .. } => {
            assert_eq!(path, &dest);
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().contains(&dest.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("overwrite"), "{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), first_bytes);
    assert_eq!(dir_entries(dest.parent().unwrap()), vec!["main.db"]);

    // The copy is a valid database holding exactly one committed state, never a torn one.
    let copy = open(&dest, |b| b.checkpoint_interval(Duration::ZERO));
    let (total, count) = copy
        .read(|c| Ok((int(c, "SELECT total AS value FROM ledger")?, user_count(c)?)))
        .unwrap();
    let newest = *committed.lock().unwrap().last().unwrap();
    println!(
        "backup holds ledger total {total} ({count} users); {before} was committed when it \
         began, {newest} by the end"
    );
    assert_eq!(
        count - 50_000,
        total,
        "users and ledger from one transaction boundary"
    );
    assert!(total >= before, "{total} < {before}");
    assert!(
        committed.lock().unwrap().contains(&total),
        "{total} was never committed"
    );
    assert!(copy.integrity_check(CheckDepth::Full).unwrap().is_empty());
    drop(copy);

    let replaced = db.backup(&dest, Overwrite::Replace).unwrap();
    assert!(replaced.replaced);
    assert_eq!(mode(&dest), 0o600);
}

#[test]
fn backup_refuses_the_live_database_files_and_bad_destinations() {
    let db = litedal::example::test_db().unwrap();
    db.transaction(|c| Ok(insert_users(c, 1..11)?)).unwrap();
    for target in [
        db.path().to_path_buf(),
        sibling(db.path(), "-wal"),
        sibling(db.path(), "-shm"),
    ] {
        let err = db.backup(&target, Overwrite::Replace).unwrap_err();
        match &err {
            Error::Io { path, source, .. } => {
                assert_eq!(path, &target);
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput);
            }
            other => panic!("{}: {other:?}", target.display()),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let err = db.backup(dir.path(), Overwrite::Replace).unwrap_err();
    assert!(err.to_string().contains("directory"), "{err}");
    assert_eq!(db.read(user_count).unwrap(), 10);
    assert!(db.integrity_check(CheckDepth::Quick).unwrap().is_empty());

    // An in-memory database backs up through its one pooled connection.
    let memory = Database::open(
        litedal::example::config()
            .database_url(":memory:")
            .build()
            .unwrap(),
    )
    .unwrap();
    memory.transaction(|c| Ok(insert_users(c, 1..6)?)).unwrap();
    let dest = dir.path().join("memory.db");
    memory.backup(&dest, Overwrite::Refuse).unwrap();
    let copy = open(&dest, |b| b);
    assert_eq!(copy.read(user_count).unwrap(), 5);
}

#[test]
fn integrity_check_reports_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.db");
    let db = open(&path, |b| b.checkpoint_interval(Duration::ZERO));
    db.transaction(|c| Ok(insert_users(c, 1..3001)?)).unwrap();
    assert!(db.integrity_check(CheckDepth::Quick).unwrap().is_empty());
    assert!(db.integrity_check(CheckDepth::Full).unwrap().is_empty());
    let (root, page_size) = db
        .read(|c| {
            Ok((
                int(
                    c,
                    "SELECT rootpage AS value FROM sqlite_master WHERE name = 'users_created_at_id_idx'",
                )?,
                int(c, "SELECT page_size AS value FROM pragma_page_size")?,
            ))
        })
        .unwrap();
    drop(db); // the last connection checkpoints the WAL into the file

    // Overwrite the b-tree header of the index's root page with garbage.
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(((root - 1) * page_size) as u64))
        .unwrap();
    file.write_all(&[0xA5; 64]).unwrap();
    file.sync_all().unwrap();
    drop(file);

    let db = open(&path, |b| b.checkpoint_interval(Duration::ZERO));
    let quick = db.integrity_check(CheckDepth::Quick).unwrap();
    let full = db.integrity_check(CheckDepth::Full).unwrap();
    println!("quick_check: {quick:?}\nintegrity_check: {full:?}");
    assert!(!quick.is_empty());
    assert!(!full.is_empty());
    drop(db);
    assert!(
        !integrity_check_file(&path, CheckDepth::Quick)
            .unwrap()
            .is_empty()
    );

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database, just text that is long enough").unwrap();
    assert!(matches!(
        integrity_check_file(&text, CheckDepth::Quick),
        Err(Error::NotADatabase { path, .. }) if path == text
    ));
}

#[test]
fn optimize_analyzes_on_demand_and_when_the_database_closes() {
    let stat_rows = |db: &Database| {
        db.read(|c| {
            int(
                c,
                "SELECT count(*) AS value FROM sqlite_master m, sqlite_stat1 s
                 WHERE m.name = 'sqlite_stat1' AND s.tbl = 'users'",
            )
        })
    };
    let db = litedal::example::test_db().unwrap();
    db.transaction(|c| Ok(insert_users(c, 1..2001)?)).unwrap();
    assert!(stat_rows(&db).is_err(), "no sqlite_stat1 before ANALYZE");
    db.optimize().unwrap();
    assert!(stat_rows(&db).unwrap() > 0);

    // Without an explicit call, dropping the last clone runs it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("close.db");
    let db = open(&path, |b| b);
    let clone = db.clone();
    db.transaction(|c| Ok(insert_users(c, 1..2001)?)).unwrap();
    drop(db);
    assert!(stat_rows(&clone).is_err(), "a clone is still alive");
    drop(clone);
    let db = open(&path, |b| b);
    assert!(stat_rows(&db).unwrap() > 0);
}

const CRASH_CHILD_DB: &str = "LITEDAL_CRASH_CHILD_DB";
const CRASH_CHILD_SYNC: &str = "LITEDAL_CRASH_CHILD_SYNC";
const CRASH_TEST: &str = "sigkill_at_random_moments_never_loses_a_committed_row";

/// The child: commits numbered rows one transaction each and prints each id once its commit
/// returned. Runs until killed (bounded, in case the parent died).
fn crash_child(path: &str, sync: &str) {
    let sync = Synchronous::parse(sync).unwrap();
    // Frequent checkpoints (SQLite's and litedal's) so that kills also land inside them.
    let db = open(Path::new(path), |b| {
        b.synchronous(sync)
            .wal_autocheckpoint(50)
            .checkpoint_interval(Duration::from_millis(10))
    });
    let first = db
        .read(|c| int(c, "SELECT coalesce(max(id), 0) + 1 AS value FROM users"))
        .unwrap();
    let stdout = std::io::stdout();
    for id in first..first + 200_000 {
        db.transaction(|c| Ok(insert_users(c, id..id + 1)?))
            .unwrap();
        let mut out = stdout.lock();
        writeln!(out, "committed {id}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_at_random_moments_never_loses_a_committed_row() {
    if let (Ok(path), Ok(sync)) = (
        std::env::var(CRASH_CHILD_DB),
        std::env::var(CRASH_CHILD_SYNC),
    ) {
        crash_child(&path, &sync);
        return;
    }
    let mut rng = Rng::from_env_or_clock();
    for sync in ["full", "normal"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crash.db");
        let path_str = path.display().to_string();
        let mut printed_total = 0;
        for kill in 1..=20 {
            let mut child = spawn_child(
                CRASH_TEST,
                &[(CRASH_CHILD_DB, &path_str), (CRASH_CHILD_SYNC, sync)],
            );
            let stdout = child.stdout.take().unwrap();
            let (first_tx, first_rx) = mpsc::channel();
            let reader = thread::spawn(move || {
                let mut ids = Vec::new();
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                // Only complete lines count: a line cut by the kill was never fully printed.
                // (The first one follows the harness's "test NAME ... " on the same line.)
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    if let Some(id) = line
                        .strip_suffix('\n')
                        .and_then(|l| l.split_once("committed "))
                        .map(|(_, id)| id)
                    {
                        ids.push(id.parse::<i64>().unwrap());
                        if ids.len() == 1 {
                            let _ = first_tx.send(());
                        }
                    }
                    line.clear();
                }
                ids
            });
            // Kill at a random moment of the commit loop: 0 to 30 ms after its first commit.
            first_rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the child never committed");
            thread::sleep(Duration::from_micros(rng.below(30_000)));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            let printed = reader.join().unwrap();
            assert!(!printed.is_empty());
            let last = *printed.last().unwrap();

            let db = open(&path, |b| b.checkpoint_interval(Duration::ZERO));
            let problems = db.integrity_check(CheckDepth::Full).unwrap();
            assert!(problems.is_empty(), "{sync}, kill {kill}: {problems:?}");
            let (count, max) = db
                .read(|c| {
                    Ok((
                        user_count(c)?,
                        int(c, "SELECT coalesce(max(id), 0) AS value FROM users")?,
                    ))
                })
                .unwrap();
            let present = db
                .read(|c| {
                    Ok(users::table
                        .filter(users::id.eq_any(&printed))
                        .count()
                        .get_result::<i64>(c)?)
                })
                .unwrap();
            assert_eq!(
                present,
                printed.len() as i64,
                "{sync}, kill {kill}: a printed id is missing"
            );
            // Ids are committed in order with no gaps; at most one commit finished without
            // its id being printed before the kill.
            assert_eq!(count, max, "{sync}, kill {kill}: gap in ids");
            assert!(
                max == last || max == last + 1,
                "{sync}, kill {kill}: max {max}, last printed {last}"
            );
            printed_total += printed.len();
            drop(db);
        }
        println!("synchronous={sync}: 20 SIGKILLs, {printed_total} printed ids all present");
    }
}

const HOLD_CHILD_DB: &str = "LITEDAL_HOLD_CHILD_DB";
const RESTORE_TEST: &str = "restore_round_trip_and_refusal_while_the_database_is_open";

/// The child: opens the database, commits rows that are not in the backup (left in the WAL:
/// no checkpoints), says "ready", and keeps the database open until killed or stdin closes.
fn hold_child(path: &str) {
    let db = open(Path::new(path), |b| {
        b.wal_autocheckpoint(0).checkpoint_interval(Duration::ZERO)
    });
    db.transaction(|c| Ok(insert_users(c, 10_001..10_026)?))
        .unwrap();
    // Straight to the descriptor: the test harness captures `println!`.
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    drop(out);
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}

#[test]
fn restore_round_trip_and_refusal_while_the_database_is_open() {
    if let Ok(path) = std::env::var(HOLD_CHILD_DB) {
        hold_child(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("main.db");
    let backup_path = dir.path().join("backups").join("main.db");
    let db = open(&path, |b| b);
    db.transaction(|c| Ok(insert_users(c, 1..101)?)).unwrap();
    db.backup(&backup_path, Overwrite::Refuse).unwrap();
    let backup_bytes = std::fs::read(&backup_path).unwrap();

    // Change the data after the backup.
    db.transaction(|c| {
        insert_users(c, 101..151)?;
        diesel::delete(users::table.find(1)).execute(c)?;
        Ok(())
    })
    .unwrap();

    let refused = |err: Error| match &err {
        Error::Io {
            path: p, source, ..
        } => {
            assert_eq!(p, &path);
            assert_eq!(source.kind(), std::io::ErrorKind::ResourceBusy, "{err}");
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{err}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    };
    // Refused while this process has it open...
    refused(restore(&backup_path, &path).unwrap_err());
    assert_eq!(db.read(user_count).unwrap(), 149);
    drop(db);

    // ...and while another process has it open, idle.
    let mut child = spawn_child(
        RESTORE_TEST,
        &[(HOLD_CHILD_DB, &path.display().to_string())],
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The harness prints "test NAME ... " before the test's own output, on the same line.
    assert!(
        lines.any(|l| l.unwrap().ends_with("ready")),
        "the child did not start"
    );
    refused(restore(&backup_path, &path).unwrap_err());

    // The child dies holding it: its uncheckpointed rows stay in a stale -wal and -shm.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(wal_size(&path) > 0, "the killed child left a WAL behind");

    let report = restore(&backup_path, &path).unwrap();
    println!("{report}");
    assert!(report.replaced);
    assert_eq!(report.target, path);
    assert!(
        report.removed.contains(&sibling(&path, "-shm")),
        "{report:?}"
    );
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        std::fs::read(&backup_path).unwrap(),
        backup_bytes,
        "the backup is untouched"
    );
    assert!(
        dir_entries(path.parent().unwrap())
            .iter()
            .all(|e| !e.ends_with(".tmp"))
    );

    // The data is as at backup time: 100 users, user 1 back, none of the later rows, and
    // none of the killed child's (its stale WAL was not replayed into the restored file).
    let db = open(&path, |b| b);
    let ids: Vec<i64> = db
        .read(|c| Ok(users::table.select(users::id).order(users::id).load(c)?))
        .unwrap();
    assert_eq!(ids, (1..101).collect::<Vec<_>>());
    assert!(db.integrity_check(CheckDepth::Full).unwrap().is_empty());
    drop(db);

    // A file that is not a database is refused and the target is left alone.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "this is a text file, not an SQLite backup").unwrap();
    match restore(&text, &path) {
        Err(Error::NotADatabase { path: p, .. }) => assert_eq!(p, text),
        other => panic!("{other:?}"),
    }
    let db = open(&path, |b| b);
    assert_eq!(db.read(user_count).unwrap(), 100);
    drop(db);

    // Restoring to a path with no database yet creates it.
    let fresh = dir.path().join("fresh").join("main.db");
    let report = restore(&backup_path, &fresh).unwrap();
    assert!(!report.replaced);
    let db = open(&fresh, |b| b);
    assert_eq!(db.read(user_count).unwrap(), 100);
}
