//! Database files litedal did not create, crafted at test time, given to every path that
//! opens one: `integrity_check_file` (and the CLI's `check`), `restore` (its source) and
//! `copy` (its SQLite source). A trigger and a view that call an application function, a
//! corrupted b-tree page, a huge page count in the header, another database's WAL beside the
//! file, a truncated file, a file that is not a database. For each: nothing crashes, the
//! application function is never called, and the answer is a typed error (or, for a check,
//! the problems) naming the file.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Integer;
use litedal::copy::CopyOptions;
use litedal::example::models::NewUser;
use litedal::example::repo::Users;
use litedal::maintenance::{CheckDepth, integrity_check_file, restore};
use litedal::{Database, Error};

diesel::define_sql_function!(fn app_marker(x: Integer) -> Integer);

/// Registers `app_marker`, which appends a line to `marker` each time it is called: what an
/// application function with side effects looks like to a hostile schema.
fn register_marker(conn: &mut SqliteConnection, marker: &Path) -> QueryResult<()> {
    let marker = marker.to_path_buf();
    app_marker_utils::register_impl(conn, move |x: i32| {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&marker)
            .unwrap();
        writeln!(file, "app_marker({x}) ran").unwrap();
        x
    })
}

/// An application database at `path` (the example schema, `n` users) whose every connection
/// has `app_marker` registered by the application's hook.
fn app_database(path: &Path, marker: &Path, n: usize) -> Database {
    let marker = marker.to_path_buf();
    let db = Database::open(
        litedal::example::config()
            .database_url(path.display().to_string())
            .checkpoint_interval(std::time::Duration::ZERO)
            .on_connect(move |conn, _role| Ok(register_marker(conn, &marker)?))
            .build()
            .unwrap(),
    )
    .unwrap();
    let emails: Vec<String> = (0..n).map(|i| format!("u{i}@untrusted.example")).collect();
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("u", e)).collect();
    if n > 0 {
        Users::batch_insert(&db, &rows).unwrap();
    }
    db
}

/// A valid database file with the example schema and `n` users, nobody holding it.
fn valid_file(path: &Path, n: usize) {
    let marker = path.with_extension("unused-marker");
    drop(app_database(path, &marker, n));
    assert!(
        !sibling(path, "-wal").exists(),
        "the last close folds the WAL in"
    );
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn int(conn: &mut SqliteConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Value {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        value: i64,
    }
    diesel::sql_query(sql)
        .get_result::<Value>(conn)
        .unwrap()
        .value
}

/// A migrated, empty SQLite destination for a copy.
fn copy_destination(dir: &Path) -> String {
    let path = dir.join(format!(
        "destination-{}.db",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    drop(app_database(&path, &dir.join("destination-marker"), 0));
    format!("sqlite://{}", path.display())
}

/// The path a typed error names, or a panic when it is not one of the file errors.
fn named_path(err: &Error) -> &Path {
    match err {
        Error::NotADatabase { path, .. } => path,
        Error::Corrupt {
            path: Some(path), ..
        } => path,
        Error::Io { path, .. } => path,
        other => panic!("expected an error naming a file, got {other:?}"),
    }
}

fn assert_names(err: &Error, file: &Path, what: &str) {
    assert_eq!(named_path(err), file, "{what}: {err}");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{what}: {err}"
    );
}

/// Runs check, restore and copy on `file`; `check` returns what the check said. Asserts that
/// restore and copy refused with a typed error naming `refused_as` (the file, or its `-wal`)
/// and that nothing was restored.
fn every_path_refuses(dir: &Path, file: &Path, refused_as: &Path, what: &str) -> Error {
    let target = dir.join(format!("restored-{what}.db"));
    let restored = restore(file, &target).map(|r| r.to_string());
    let err = restored.expect_err(what);
    assert_names(&err, refused_as, &format!("{what}: restore"));
    assert!(!target.exists(), "{what}: nothing was restored");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".litedal") || n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{what}: {leftovers:?}");

    let copied = litedal::copy::copy(
        &format!("sqlite://{}", file.display()),
        &copy_destination(dir),
        &CopyOptions::default(),
        &mut |_| {},
    );
    let copy_err = copied.map(|r| r.copied).expect_err(what);
    assert_names(&copy_err, refused_as, &format!("{what}: copy"));
    println!(
        "{what}:\n  restore: {}\n  copy: {}",
        err.report(),
        copy_err.report()
    );
    err
}

#[test]
fn a_trigger_or_view_calling_an_application_function_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let hostile = dir.path().join("hostile.db");
    valid_file(&hostile, 50);
    let mut maker = SqliteConnection::establish(hostile.to_str().unwrap()).unwrap();
    maker
        .batch_execute(
            "CREATE TRIGGER users_marker AFTER INSERT ON users BEGIN SELECT app_marker(NEW.id); END;
             CREATE TRIGGER users_read_marker AFTER UPDATE ON users BEGIN SELECT app_marker(OLD.id); END;
             CREATE VIEW user_markers AS SELECT app_marker(id) AS m FROM users;",
        )
        .unwrap();
    drop(maker);

    // The crafted file is hostile: a connection with the function and SQLite's defaults runs
    // it from the view.
    {
        let probe_marker = dir.path().join("probe-marker");
        let mut probe = SqliteConnection::establish(hostile.to_str().unwrap()).unwrap();
        register_marker(&mut probe, &probe_marker).unwrap();
        assert_eq!(
            int(&mut probe, "SELECT count(m) AS value FROM user_markers"),
            50
        );
        assert!(
            probe_marker.exists(),
            "the probe's view called the function"
        );
    }

    // The application runs in this process with the function registered on its connections.
    let app = app_database(&dir.path().join("app.db"), &marker, 3);
    Users::insert(&app, &NewUser::new("app", "app@untrusted.example")).unwrap();
    assert!(
        !marker.exists(),
        "the application's own schema has no such trigger"
    );

    assert!(
        integrity_check_file(&hostile, CheckDepth::Full)
            .unwrap()
            .is_empty()
    );
    let target = dir.path().join("restored.db");
    let report = restore(&hostile, &target).unwrap();
    assert!(report.pages > 0, "{report:?}");
    let destination = copy_destination(dir.path());
    let copied = litedal::copy::copy(
        &format!("sqlite://{}", hostile.display()),
        &destination,
        &CopyOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert!(
        copied.copied.iter().any(|(t, n)| t == "users" && *n == 50),
        "{:?}",
        copied.copied
    );
    let out = Command::new(env!("CARGO_BIN_EXE_litedal"))
        .args(["check", "--full"])
        .env("DATABASE_URL", &hostile)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "integrity_check: ok"
    );

    assert!(
        !marker.exists(),
        "check, restore, copy and the CLI never called the application function: {:?}",
        std::fs::read_to_string(&marker)
    );
    // The source was not changed (no trigger fired, nothing written).
    let mut after = SqliteConnection::establish(hostile.to_str().unwrap()).unwrap();
    assert_eq!(int(&mut after, "SELECT count(*) AS value FROM users"), 50);
    drop(app);
}

#[test]
fn a_corrupted_page_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corrupt.db");
    valid_file(&file, 3000);
    let (root, page_size) = {
        let mut conn = SqliteConnection::establish(file.to_str().unwrap()).unwrap();
        (
            int(
                &mut conn,
                "SELECT rootpage AS value FROM sqlite_master WHERE name = 'users_created_at_id_idx'",
            ),
            int(&mut conn, "SELECT page_size AS value FROM pragma_page_size"),
        )
    };
    let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.seek(SeekFrom::Start(((root - 1) * page_size) as u64))
        .unwrap();
    f.write_all(&[0xA5; 64]).unwrap();
    drop(f);

    let problems = integrity_check_file(&file, CheckDepth::Quick).unwrap();
    assert!(!problems.is_empty());
    let err = every_path_refuses(dir.path(), &file, &file, "corrupted page");
    assert!(
        matches!(&err, Error::Corrupt { message, .. } if message.contains("quick_check found")),
        "{err}"
    );
    assert!(
        err.to_string().contains(&problems[0]),
        "{err} / {problems:?}"
    );
}

#[test]
fn a_huge_page_count_in_the_header_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("huge.db");
    valid_file(&file, 10);
    // Offset 28: the database size in pages, trusted when the change counter (24) matches
    // the version-valid-for number (92), as it does in a file SQLite wrote.
    let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.seek(SeekFrom::Start(28)).unwrap();
    f.write_all(&0x7fff_fff0u32.to_be_bytes()).unwrap();
    drop(f);

    let checked = integrity_check_file(&file, CheckDepth::Quick);
    println!("huge page count, check: {checked:?}");
    match &checked {
        Ok(problems) => assert!(!problems.is_empty()),
        Err(err) => assert_names(err, &file, "check"),
    }
    let err = every_path_refuses(dir.path(), &file, &file, "huge page count");
    assert!(
        matches!(err, Error::Corrupt { .. } | Error::NotADatabase { .. }),
        "{err:?}"
    );
}

#[test]
fn a_wal_of_another_database_beside_the_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("victim.db");
    valid_file(&file, 5);
    // Another database with the same page size, whose committed rows are still in its WAL.
    let other = dir.path().join("other.db");
    let mut writer = SqliteConnection::establish(other.to_str().unwrap()).unwrap();
    writer
        .batch_execute(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO users (name) VALUES ('from another database');
             CREATE TABLE planted (x);",
        )
        .unwrap();
    let foreign_wal = std::fs::read(sibling(&other, "-wal")).unwrap();
    assert!(!foreign_wal.is_empty());
    drop(writer);
    let wal = sibling(&file, "-wal");
    std::fs::write(&wal, &foreign_wal).unwrap();
    let before = std::fs::read(&file).unwrap();

    let check = integrity_check_file(&file, CheckDepth::Quick).unwrap_err();
    assert_names(&check, &wal, "check");
    assert!(
        matches!(&check, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidData),
        "{check:?}"
    );
    let report = check.report().to_string();
    assert!(report.contains("move the -wal aside"), "{report}");
    every_path_refuses(dir.path(), &file, &wal, "foreign WAL");
    let out = Command::new(env!("CARGO_BIN_EXE_litedal"))
        .arg("check")
        .env("DATABASE_URL", &file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&wal.display().to_string()), "{stderr}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the file was not touched"
    );
    assert_eq!(std::fs::read(&wal).unwrap(), foreign_wal, "nor the WAL");

    // Why: opened the usual way, SQLite replays that WAL onto the file.
    let mut plain =
        SqliteConnection::establish(&format!("file:{}?mode=ro", file.display())).unwrap();
    assert_eq!(
        int(
            &mut plain,
            "SELECT count(*) AS value FROM sqlite_master WHERE name = 'planted'"
        ),
        1
    );
}

#[test]
fn a_live_databases_own_wal_is_read_while_it_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("live.db");
    let db = app_database(&file, &dir.path().join("marker"), 20);
    assert!(std::fs::metadata(sibling(&file, "-wal")).unwrap().len() > 0);
    // The rows are in the WAL; a check and a copy see them.
    assert!(
        integrity_check_file(&file, CheckDepth::Quick)
            .unwrap()
            .is_empty()
    );
    let copied = litedal::copy::copy(
        &format!("sqlite://{}", file.display()),
        &copy_destination(dir.path()),
        &CopyOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert!(
        copied.copied.iter().any(|(t, n)| t == "users" && *n == 20),
        "{:?}",
        copied.copied
    );
    // The database goes on working, and restore still sees it held (its locks survived).
    Users::insert(&db, &NewUser::new("after", "after@untrusted.example")).unwrap();
    assert_eq!(Users::count(&db).unwrap(), 21);
    let backup = dir.path().join("backup.db");
    db.backup(&backup, litedal::Overwrite::Refuse).unwrap();
    let refused = restore(&backup, &file).unwrap_err();
    assert!(
        matches!(&refused, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::ResourceBusy),
        "{refused:?}"
    );
}

#[test]
fn a_truncated_file_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("truncated.db");
    valid_file(&file, 2000);
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    match integrity_check_file(&file, CheckDepth::Quick) {
        Ok(problems) => assert!(!problems.is_empty()),
        Err(err) => assert_names(&err, &file, "check"),
    }
    every_path_refuses(dir.path(), &file, &file, "truncated");

    let stub = dir.path().join("stub.db");
    std::fs::write(&stub, &std::fs::read(&file).unwrap()[..10]).unwrap();
    let err = integrity_check_file(&stub, CheckDepth::Quick).unwrap_err();
    assert!(matches!(err, Error::NotADatabase { .. }), "{err:?}");
    assert_names(&err, &stub, "check");
    let err = every_path_refuses(dir.path(), &stub, &stub, "ten bytes");
    assert!(matches!(err, Error::NotADatabase { .. }), "{err:?}");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.db");
    std::fs::write(
        &file,
        "not a database, only some text that is long enough ".repeat(200),
    )
    .unwrap();
    let err = integrity_check_file(&file, CheckDepth::Quick).unwrap_err();
    assert!(matches!(err, Error::NotADatabase { .. }), "{err:?}");
    assert_names(&err, &file, "check");
    let err = every_path_refuses(dir.path(), &file, &file, "not a database");
    assert!(matches!(err, Error::NotADatabase { .. }), "{err:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_litedal"))
        .arg("check")
        .env("DATABASE_URL", &file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&file.display().to_string()),
        "{out:?}"
    );
}
