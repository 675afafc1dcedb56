//! The core engine against real temp-file databases: PRAGMAs per role, pools, transactions,
//! lost updates, configuration errors, URL forms and file modes.

mod common;

use common::dir_entries;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use litedal::{Config, Database, Error, Role, Synchronous, TempStore};

#[derive(QueryableByName, Debug)]
struct IntValue {
    #[diesel(sql_type = BigInt)]
    value: i64,
}

#[derive(QueryableByName, Debug)]
struct TextValue {
    #[diesel(sql_type = Text)]
    value: String,
}

/// Reads an integer PRAGMA with `PRAGMA name` (several have no table-valued form); each
/// answers in a column of its own name.
macro_rules! pragma_readers {
    ($($name:literal => $column:ident),+ $(,)?) => {
        fn pragma_int(conn: &mut SqliteConnection, name: &str) -> i64 {
            $(
                if name == $name {
                    #[derive(QueryableByName)]
                    #[allow(non_camel_case_types)]
                    struct $column {
                        #[diesel(sql_type = BigInt)]
                        $column: i64,
                    }
                    return diesel::sql_query(concat!("PRAGMA ", $name))
                        .get_result::<$column>(conn)
                        .unwrap_or_else(|e| panic!("PRAGMA {name}: {e}"))
                        .$column;
                }
            )+
            panic!("no reader for PRAGMA {name}")
        }
    };
}

pragma_readers! {
    "busy_timeout" => timeout,
    "synchronous" => synchronous,
    "cache_size" => cache_size,
    "mmap_size" => mmap_size,
    "temp_store" => temp_store,
    "foreign_keys" => foreign_keys,
    "wal_autocheckpoint" => wal_autocheckpoint,
    "journal_size_limit" => journal_size_limit,
    "query_only" => query_only,
}

fn journal_mode(conn: &mut SqliteConnection) -> String {
    diesel::sql_query("SELECT journal_mode AS value FROM pragma_journal_mode()")
        .get_result::<TextValue>(conn)
        .unwrap()
        .value
}

fn setup_counter(db: &Database) {
    db.transaction(|conn| {
        conn.batch_execute(
            "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT OR IGNORE INTO counters VALUES ('c', 0);",
        )?;
        Ok(())
    })
    .unwrap();
}

fn counter(conn: &mut SqliteConnection) -> litedal::Result<i64> {
    Ok(
        diesel::sql_query("SELECT value FROM counters WHERE name = 'c'")
            .get_result::<IntValue>(conn)?
            .value,
    )
}

fn user_count(db: &Database) -> i64 {
    db.read(|conn| {
        Ok(litedal::example::schema::users::table
            .count()
            .get_result(conn)?)
    })
    .unwrap()
}

fn insert_user(conn: &mut SqliteConnection, email: &str) -> QueryResult<usize> {
    use litedal::example::schema::users;
    diesel::insert_into(users::table)
        .values((users::name.eq("n"), users::email.eq(email)))
        .execute(conn)
}

#[test]
fn every_pragma_is_applied_per_role() {
    let db = litedal::example::test_db_with(|b| {
        b.busy_timeout(Duration::from_millis(1234))
            .synchronous(Synchronous::Normal)
            .role_cache_size_kib(Role::Read, 4000)
            .role_cache_size_kib(Role::Write, 3000)
            .role_mmap_size(Role::Read, 2 << 20)
            .role_mmap_size(Role::Write, 1 << 20)
            .temp_store(TempStore::File)
            .wal_autocheckpoint(500)
    })
    .unwrap();
    for (role, cache, mmap, query_only) in [
        (Role::Read, 4000, 2 << 20, 1),
        (Role::Write, 3000, 1 << 20, 0),
    ] {
        let mut conn = match role {
            Role::Read => db.read_connection().unwrap(),
            Role::Write => db.write_connection().unwrap(),
        };
        assert_eq!(journal_mode(&mut conn), "wal", "{role}");
        assert_eq!(pragma_int(&mut conn, "busy_timeout"), 1234, "{role}");
        assert_eq!(pragma_int(&mut conn, "synchronous"), 1, "{role}: NORMAL");
        assert_eq!(pragma_int(&mut conn, "cache_size"), -cache, "{role}");
        assert_eq!(pragma_int(&mut conn, "mmap_size"), mmap, "{role}");
        assert_eq!(pragma_int(&mut conn, "temp_store"), 1, "{role}: FILE");
        assert_eq!(pragma_int(&mut conn, "foreign_keys"), 1, "{role}");
        assert_eq!(pragma_int(&mut conn, "wal_autocheckpoint"), 500, "{role}");
        assert_eq!(
            pragma_int(&mut conn, "journal_size_limit"),
            64 << 20,
            "{role}"
        );
        assert_eq!(pragma_int(&mut conn, "query_only"), query_only, "{role}");
    }
}

#[test]
fn defaults_are_applied() {
    let db = litedal::example::test_db().unwrap();
    let mut w = db.write_connection().unwrap();
    assert_eq!(pragma_int(&mut w, "busy_timeout"), 5000);
    assert_eq!(pragma_int(&mut w, "synchronous"), 2, "FULL on writers");
    assert_eq!(pragma_int(&mut w, "cache_size"), -2000);
    assert_eq!(pragma_int(&mut w, "mmap_size"), 268_435_456);
    assert_eq!(pragma_int(&mut w, "temp_store"), 2, "MEMORY");
    assert_eq!(pragma_int(&mut w, "wal_autocheckpoint"), 1000);
    let mut r = db.read_connection().unwrap();
    assert_eq!(pragma_int(&mut r, "query_only"), 1);
    assert_eq!(db.journal_mode(), "wal");
}

#[test]
fn a_read_connection_cannot_write() {
    let db = litedal::example::test_db().unwrap();
    let mut conn = db.read_connection().unwrap();
    let err = Error::from(insert_user(&mut conn, "a@x.org").unwrap_err());
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    let err = db
        .read(|conn| {
            insert_user(conn, "b@x.org")?;
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    assert!(err.to_string().contains("read-only"), "{err}");
    drop(conn);
    assert_eq!(user_count(&db), 0);
}

/// Holds every connection of `role`; the next checkout must time out.
fn assert_pool_size(db: &Database, role: Role, size: usize) {
    let checkout = |db: &Database| match role {
        Role::Read => db.read_connection(),
        Role::Write => db.write_connection(),
    };
    let held: Vec<_> = (0..size).map(|_| checkout(db).unwrap()).collect();
    match checkout(db) {
        Err(Error::PoolTimeout {
            role: r, waited, ..
        }) => {
            assert_eq!(r, role);
            assert!(waited >= Duration::from_millis(900), "{waited:?}");
        }
        Err(other) => panic!("{role}: checkout {} should time out: {other:?}", size + 1),
        Ok(_) => panic!("{role}: checkout {} should time out", size + 1),
    }
    drop(held);
}

#[test]
fn pool_sizes_follow_the_seed_formula() {
    let handles: Vec<_> = [
        (1u32, 2usize, 1usize),
        (5, 10, 2),
        (10, 20, 5),
        (50, 100, 25),
    ]
    .into_iter()
    .map(|(base, read, write)| {
        thread::spawn(move || {
            let db = litedal::example::test_db_with(|b| {
                b.pool_size(base).pool_timeout(Duration::from_secs(1))
            })
            .unwrap();
            assert_eq!(db.config().read_pool_size() as usize, read);
            assert_eq!(db.config().write_pool_size() as usize, write);
            assert_pool_size(&db, Role::Read, read);
            assert_pool_size(&db, Role::Write, write);
        })
    })
    .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn shared_pool_mode_serves_both_roles() {
    let db = litedal::example::test_db_with(|b| {
        b.pool_size(3)
            .separate_read_write(false)
            .pool_timeout(Duration::from_secs(1))
    })
    .unwrap();
    db.transaction(|conn| Ok(insert_user(conn, "shared@x.org")?))
        .unwrap();
    assert_eq!(user_count(&db), 1);
    // Reads and writes draw from the same 3 connections.
    let r1 = db.read_connection().unwrap();
    let r2 = db.read_connection().unwrap();
    let w = db.write_connection().unwrap();
    assert!(matches!(
        db.read_connection(),
        Err(Error::PoolTimeout { .. })
    ));
    drop((r1, r2, w));
}

#[test]
fn transaction_commits_rolls_back_and_nests() {
    let db = litedal::example::test_db().unwrap();
    db.transaction(|conn| Ok(insert_user(conn, "ok@x.org")?))
        .unwrap();
    assert_eq!(user_count(&db), 1);

    let err = db
        .transaction(|conn| {
            insert_user(conn, "rolled-back@x.org")?;
            Err::<(), _>(Error::NotFound)
        })
        .unwrap_err();
    assert!(matches!(err, Error::NotFound));
    assert_eq!(user_count(&db), 1);

    let db2 = db.db().clone();
    let panicked = thread::spawn(move || {
        db2.transaction(|conn| {
            insert_user(conn, "panic@x.org")?;
            panic!("boom");
            #[allow(unreachable_code)]
            Ok(())
        })
    })
    .join();
    assert!(panicked.is_err());
    assert_eq!(user_count(&db), 1);
    // The connection that saw the panic went back clean: a new transaction works.
    db.transaction(|conn| Ok(insert_user(conn, "after-panic@x.org")?))
        .unwrap();
    assert_eq!(user_count(&db), 2);

    // Nested: an inner savepoint that fails is undone, the outer work commits.
    db.transaction(|conn| {
        insert_user(conn, "outer@x.org")?;
        let inner: litedal::Result<()> = conn.transaction(|conn| {
            insert_user(conn, "inner@x.org")?;
            Err(Error::NotFound)
        });
        assert!(inner.is_err());
        conn.transaction(|conn| Ok::<_, Error>(insert_user(conn, "inner2@x.org")?))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(user_count(&db), 4);

    // Database::transaction inside itself on one thread would wait for itself.
    let err = db.transaction(|_| db.transaction(|_| Ok(()))).unwrap_err();
    assert!(matches!(err, Error::NestedTransaction), "{err:?}");
}

#[test]
fn no_lost_updates_under_concurrent_read_modify_write() {
    let db = litedal::example::test_db().unwrap();
    setup_counter(&db);
    let threads = 4;
    let per_thread = 250;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let db = db.db().clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                let mut errors = 0;
                for _ in 0..per_thread {
                    let result = db.transaction(|conn| {
                        let value = counter(conn)?;
                        diesel::sql_query("UPDATE counters SET value = ? WHERE name = 'c'")
                            .bind::<BigInt, _>(value + 1)
                            .execute(conn)?;
                        Ok(())
                    });
                    if result.is_err() {
                        errors += 1;
                    }
                }
                errors
            })
        })
        .collect();
    let errors: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(errors, 0);
    assert_eq!(db.read(counter).unwrap(), (threads * per_thread) as i64);
}

#[test]
fn no_lost_updates_without_the_write_gate() {
    // SQLite's own busy handler arbitrates; BEGIN IMMEDIATE still prevents lost updates.
    let db = litedal::example::test_db_with(|b| b.write_gate(false)).unwrap();
    setup_counter(&db);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let db = db.db().clone();
            thread::spawn(move || {
                (0..100)
                    .filter(|_| {
                        db.transaction(|conn| {
                            let value = counter(conn)?;
                            diesel::sql_query("UPDATE counters SET value = ? WHERE name = 'c'")
                                .bind::<BigInt, _>(value + 1)
                                .execute(conn)?;
                            Ok(())
                        })
                        .is_err()
                    })
                    .count()
            })
        })
        .collect();
    let errors: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(errors, 0);
    assert_eq!(db.read(counter).unwrap(), 400);
}

#[test]
fn bad_environment_values_name_the_variable() {
    let cases: &[(&str, &str)] = &[
        ("DB_POOL_SIZE", "ten"),
        ("DB_POOL_SIZE", "0"),
        ("DB_POOL_SIZE", "-1"),
        ("DB_POOL_SIZE", ""),
        ("DB_POOL_SIZE", "99999999999999999999999"),
        ("DB_READ_POOL_SIZE", "0"),
        ("DB_WRITE_POOL_SIZE", "-3"),
        ("DB_SEPARATE_READ_WRITE", "maybe"),
        ("DB_ENABLE_WAL", "2"),
        ("DB_POOL_TIMEOUT", "0"),
        ("DB_POOL_TIMEOUT", "1.5"),
        ("DB_BUSY_TIMEOUT_MS", "-5"),
        ("DB_BUSY_TIMEOUT_MS", "5s"),
        ("DB_CACHE_SIZE_KIB", "lots"),
        ("DB_READ_CACHE_SIZE_KIB", "-1"),
        ("DB_WRITE_CACHE_SIZE_KIB", "99999999999"),
        ("DB_MMAP_SIZE", "99999999999"),
        ("DB_READ_MMAP_SIZE", "x"),
        ("DB_WRITE_MMAP_SIZE", "-1"),
        ("DB_TEMP_STORE", "disk"),
        ("DB_SYNCHRONOUS", "fast"),
        ("DB_WAL_AUTOCHECKPOINT", "-1"),
        ("DB_WAL_CHECKPOINT_MODE", "eager"),
        ("DB_CHECKPOINT_INTERVAL_SECS", "-30"),
        ("DB_WAL_SIZE_LIMIT", "0"),
        ("DB_WAL_SIZE_LIMIT", "64MB"),
        ("DB_SLOW_QUERY_MS", "slow"),
        ("DB_METRICS_ADDR", "localhost"),
        ("DB_RUN_MIGRATIONS", "sometimes"),
    ];
    for (var, value) in cases {
        match Config::from_vars([(*var, *value)]) {
            Err(Error::Config {
                var: got,
                value: v,
                reason,
            }) => {
                assert_eq!(got, *var, "{var}={value:?}");
                assert_eq!(v, value.trim(), "{var}={value:?}");
                assert!(
                    reason.contains("accepted") || reason.contains("empty"),
                    "{reason}"
                );
                let message = Error::Config {
                    var: got,
                    value: v,
                    reason,
                }
                .to_string();
                assert!(message.contains(var), "{message}");
            }
            other => panic!("{var}={value:?}: expected Error::Config, got {other:?}"),
        }
    }
    // Mixed case and surrounding spaces are accepted for keywords and booleans.
    let c = Config::from_vars([("DB_SYNCHRONOUS", "Normal"), ("DB_ENABLE_WAL", " TRUE ")]).unwrap();
    assert!(c.enable_wal());
}

#[test]
fn refused_urls_say_what_to_write_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "libsql://my-db.turso.io",
        "postgres://user:secret@localhost/app",
        "postgresql://localhost/app",
        "mysql://localhost/app",
        "http://example.com/db",
        "https://example.com/db",
    ] {
        match Config::from_vars([("DATABASE_URL", url)]) {
            Err(Error::UnsupportedUrl { url: shown, hint }) => {
                assert!(!shown.contains("secret"), "{shown}");
                // With the `postgres` feature a PostgreSQL URL is SQLite's `Config`'s to
                // refuse but AnyDatabase's to open, and the hint says so.
                let opens_elsewhere = url.starts_with("postgres") && hint.contains("AnyDatabase");
                assert!(
                    hint.contains("sqlite://") || opens_elsewhere,
                    "{url}: {hint}"
                );
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    for url in ["", "sqlite://", "sqlite:", "file:"] {
        assert!(
            matches!(
                Config::from_vars([("DATABASE_URL", url)]),
                Err(Error::Config {
                    var: "DATABASE_URL",
                    ..
                })
            ),
            "{url:?}"
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn every_url_form_opens_the_named_file() {
    let dir = tempfile::tempdir().unwrap();
    let abs = |name: &str| dir.path().join(name).display().to_string();
    let cases = [
        (format!("sqlite://{}", abs("a.db")), "a.db"),
        (format!("sqlite:{}", abs("b.db")), "b.db"),
        (abs("c.db"), "c.db"),
        (format!("file://{}?mode=rwc", abs("d.db")), "d.db"),
        (
            format!("sqlite://{}", abs("with space?.db")),
            "with space?.db",
        ),
    ];
    for (url, file) in &cases {
        let db = Database::open(
            litedal::example::config()
                .database_url(url.clone())
                .build()
                .unwrap(),
        )
        .unwrap_or_else(|e| panic!("{url}: {e}"));
        db.transaction(|conn| Ok(insert_user(conn, "x@y.z")?))
            .unwrap();
        assert_eq!(db.path().unwrap(), dir.path().join(file));
        drop(db);
        let entries = dir_entries(dir.path());
        assert!(entries.contains(&file.to_string()), "{url}: {entries:?}");
        for entry in &entries {
            assert!(
                cases.iter().any(|(_, f)| entry.starts_with(f)),
                "stray file {entry:?} after {url}"
            );
        }
    }
}

#[test]
fn memory_database_is_one_database_for_both_roles() {
    let db = Database::open(
        litedal::example::config()
            .database_url(":memory:")
            .build()
            .unwrap(),
    )
    .unwrap();
    assert!(db.path().is_none());
    db.transaction(|conn| Ok(insert_user(conn, "mem@x.org")?))
        .unwrap();
    assert_eq!(user_count(&db), 1);
    let other = Database::open(
        litedal::example::config()
            .database_url(":memory:")
            .build()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        user_count(&other),
        0,
        "two in-memory databases must not share data"
    );
}

#[test]
fn not_a_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let content = b"this is a text file, not a database\n".repeat(50);
    std::fs::write(&path, &content).unwrap();
    let err = Database::open(
        litedal::example::config()
            .database_url(path.display().to_string())
            .build()
            .unwrap(),
    )
    .unwrap_err();
    match &err {
        Error::NotADatabase { path: p, .. } => assert_eq!(p, &path),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), content);
    assert_eq!(dir_entries(dir.path()), vec!["notes.txt".to_string()]);
}

#[test]
fn a_directory_is_not_a_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Database::open(
        litedal::example::config()
            .database_url(format!("sqlite://{}", dir.path().display()))
            .build()
            .unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("directory"), "{err}");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn files_are_private_whatever_the_umask() {
    for umask in [0o022, 0o000] {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let path = data_dir.join("main.db");
        // The umask is process-wide; these files are created while it is set.
        let old = unsafe { libc::umask(umask) };
        let db = Database::open(
            litedal::example::config()
                .database_url(format!("sqlite://{}", path.display()))
                .build()
                .unwrap(),
        );
        unsafe { libc::umask(old) };
        let db = db.unwrap();
        db.transaction(|conn| Ok(insert_user(conn, "m@x.org")?))
            .unwrap();
        assert_eq!(mode(&data_dir), 0o700, "umask {umask:o}");
        assert_eq!(mode(&path), 0o600, "umask {umask:o}");
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let mut shm = path.clone().into_os_string();
        shm.push("-shm");
        assert_eq!(mode(Path::new(&wal)), 0o600, "umask {umask:o}");
        assert_eq!(mode(Path::new(&shm)), 0o600, "umask {umask:o}");
    }
}

#[test]
fn relative_url_forms_resolve_against_the_working_directory() {
    // Run the quickstart-style open in a child process whose cwd is a temp dir, so the
    // relative forms (and the default sqlite://data/main.db) are checked for real.
    if let Ok(url) = std::env::var("LITEDAL_CHILD_OPEN_URL") {
        let db = Database::open(
            litedal::example::config()
                .database_url(url)
                .build()
                .unwrap(),
        )
        .unwrap();
        db.transaction(|conn| Ok(insert_user(conn, "child@x.org")?))
            .unwrap();
        return;
    }
    for (url, expected) in [
        ("sqlite://data/main.db", "data/main.db"),
        ("sqlite:rel.db", "rel.db"),
        ("plain/dir/x.db", "plain/dir/x.db"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "relative_url_forms_resolve_against_the_working_directory",
                "--test-threads=1",
            ])
            .env("LITEDAL_CHILD_OPEN_URL", url)
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{url}");
        let file = dir.path().join(expected);
        assert!(file.is_file(), "{url}: {} missing", file.display());
        let db = common::open_example(&file);
        assert_eq!(user_count(&db), 1, "{url}");
    }
}

#[test]
fn migrations_revert_and_reapply() {
    use diesel_migrations::MigrationHarness;
    let db = litedal::example::test_db_with(|b| b.write_gate(true)).unwrap();
    db.transaction(|conn| Ok(insert_user(conn, "m@x.org")?))
        .unwrap();
    let mut conn = db.write_connection().unwrap();
    let migrations = litedal::Migrations(&litedal::example::MIGRATIONS);
    let reverted = conn.revert_all_migrations(migrations).unwrap();
    assert_eq!(reverted.len(), 4);
    let tables = |conn: &mut SqliteConnection| {
        diesel::sql_query(
            "SELECT count(*) AS value FROM sqlite_master WHERE name IN ('users', 'posts')",
        )
        .get_result::<IntValue>(conn)
        .unwrap()
        .value
    };
    assert_eq!(tables(&mut conn), 0);
    assert!(conn.has_pending_migration(migrations).unwrap());
    assert_eq!(conn.run_pending_migrations(migrations).unwrap().len(), 4);
    assert_eq!(tables(&mut conn), 2);
}
