//! SQLite's hardening of every pooled connection (defensive mode, `trusted_schema` off,
//! extension loading off, the `DB_SQLITE_MAX_*` limits), migrations that rebuild a table
//! under foreign keys, connections returned to the pool inside a transaction, and SQLite's
//! one-time initialisation from many threads. Every test uses real files in a temp dir.

use std::sync::{Arc, Mutex};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer};
use litedal::{Config, ConfigBuilder, Database, Error, SqliteLimits};

diesel::define_sql_function! {
    /// The application's own SQL function (not marked innocuous, as diesel registers it).
    fn app_double(x: BigInt) -> BigInt;
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Value {
    #[diesel(sql_type = BigInt)]
    v: i64,
}

fn url(dir: &tempfile::TempDir) -> String {
    dir.path().join("app.db").display().to_string()
}

fn open(
    dir: &tempfile::TempDir,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> Database {
    let builder = Config::builder().database_url(url(dir)).pool_size(2);
    Database::open(configure(builder).build().unwrap()).unwrap()
}

/// The message of a statement's error, on a connection of each pool.
fn error_of(conn: &mut SqliteConnection, sql: &str) -> String {
    match diesel::sql_query(sql).load::<Value>(conn) {
        Ok(rows) => panic!("{sql:.80} succeeded: {rows:?}"),
        Err(error) => error.to_string(),
    }
}

fn value_of(conn: &mut SqliteConnection, sql: &str) -> i64 {
    match diesel::sql_query(sql).get_result::<Value>(conn) {
        Ok(row) => row.v,
        Err(error) => panic!("{sql:.80} failed: {error}"),
    }
}

fn register(conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
    app_double_utils::register_impl(conn, |x: i64| x * 2)
}

#[test]
fn a_hook_function_works_when_called_but_not_from_the_files_views_and_triggers() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The file as a crafted one would come: a view and a trigger that call a function
        // the application registers on its connections.
        let mut plain = SqliteConnection::establish(&url(&dir)).unwrap();
        register(&mut plain).unwrap();
        plain
            .batch_execute(
                "CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
                 CREATE TABLE log (v INTEGER NOT NULL);
                 CREATE VIEW doubled AS SELECT app_double(n) AS v FROM items;
                 CREATE TRIGGER items_log AFTER INSERT ON items
                     BEGIN INSERT INTO log VALUES (app_double(new.n)); END;
                 INSERT INTO items (n) VALUES (5);",
            )
            .unwrap();
        // Without hardening, the view and the trigger run the function.
        assert_eq!(value_of(&mut plain, "SELECT v FROM doubled"), 10);
        assert_eq!(value_of(&mut plain, "SELECT count(*) AS v FROM log"), 1);
    }
    let db = open(&dir, |b| b.on_connect(|conn, _role| Ok(register(conn)?)));
    for mut conn in [
        db.read_connection().unwrap(),
        db.write_connection().unwrap(),
    ] {
        assert_eq!(value_of(&mut conn, "SELECT app_double(21) AS v"), 42);
        let view = error_of(&mut conn, "SELECT v FROM doubled");
        assert!(view.contains("unsafe use of app_double()"), "{view}");
    }
    let trigger = db
        .transaction(|conn| {
            diesel::sql_query("INSERT INTO items (n) VALUES (7)").execute(conn)?;
            Ok(())
        })
        .unwrap_err();
    assert!(
        trigger.to_string().contains("unsafe use of app_double()"),
        "{trigger}"
    );
    let mut conn = db.read_connection().unwrap();
    assert_eq!(value_of(&mut conn, "SELECT count(*) AS v FROM items"), 1);
    assert_eq!(value_of(&mut conn, "SELECT count(*) AS v FROM log"), 1);
}

#[test]
fn defensive_mode_refuses_to_rewrite_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, |b| b);
    db.transaction(|conn| Ok(conn.batch_execute("CREATE TABLE items (id INTEGER PRIMARY KEY)")?))
        .unwrap();
    let mut conn = db.write_connection().unwrap();
    let rewrite = conn.batch_execute(
        "PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET sql = 'CREATE TABLE items (id INTEGER PRIMARY KEY, evil)'
         WHERE name = 'items';",
    );
    let message = rewrite.unwrap_err().to_string();
    assert!(message.contains("may not be modified"), "{message}");
    drop(conn);
    let mut plain = SqliteConnection::establish(&url(&dir)).unwrap();
    #[derive(QueryableByName)]
    struct Sql {
        #[diesel(sql_type = diesel::sql_types::Text)]
        sql: String,
    }
    let sql = diesel::sql_query("SELECT sql FROM sqlite_schema WHERE name = 'items'")
        .get_result::<Sql>(&mut plain)
        .unwrap();
    assert_eq!(sql.sql, "CREATE TABLE items (id INTEGER PRIMARY KEY)");
}

#[test]
fn extensions_load_only_inside_a_hook_that_asked_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no_such_extension").display().to_string();
    let load = format!("SELECT load_extension('{missing}') AS v");
    {
        let db = open(&dir, |b| b);
        for mut conn in [
            db.read_connection().unwrap(),
            db.write_connection().unwrap(),
        ] {
            let message = error_of(&mut conn, &load);
            assert!(message.contains("not authorized"), "{message}");
        }
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let db = {
        let (seen, load) = (Arc::clone(&seen), load.clone());
        open(&dir, move |b| {
            b.load_extensions(true).on_connect(move |conn, _role| {
                let outcome = diesel::sql_query(&load).load::<Value>(conn);
                seen.lock().unwrap().push(format!("{outcome:?}"));
                Ok(())
            })
        })
    };
    let seen = seen.lock().unwrap().clone();
    // The open's two dry runs and every pooled connection (1 writer, 4 readers).
    assert_eq!(seen.len(), 2 + 1 + 4, "{seen:?}");
    for attempt in &seen {
        // Loading was allowed: it failed only because the library does not exist.
        assert!(attempt.contains("no_such_extension"), "{attempt}");
        assert!(!attempt.contains("not authorized"), "{attempt}");
    }
    for mut conn in [
        db.read_connection().unwrap(),
        db.write_connection().unwrap(),
    ] {
        let message = error_of(&mut conn, &load);
        assert!(message.contains("not authorized"), "{message}");
    }
    match Config::builder()
        .database_url(url(&dir))
        .load_extensions(true)
        .build()
    {
        Err(Error::Config { var, .. }) => assert_eq!(var, "ConfigBuilder::load_extensions"),
        other => panic!("load_extensions without a hook: {other:?}"),
    }
}

/// Each limit at its value works and one past it fails, on a connection of `db`'s each pool.
fn assert_limits(db: &Database, limits: SqliteLimits) {
    for mut conn in [
        db.read_connection().unwrap(),
        db.write_connection().unwrap(),
    ] {
        let n = limits.length;
        assert_eq!(
            value_of(&mut conn, &format!("SELECT length(zeroblob({n})) AS v")),
            i64::from(n)
        );
        let message = error_of(
            &mut conn,
            &format!("SELECT length(zeroblob({})) AS v", n + 1),
        );
        assert!(message.contains("string or blob too big"), "{message}");

        let statement = |len: u32| {
            let head = "SELECT 1 AS v /*";
            let tail = "*/";
            let pad = len as usize - head.len() - tail.len();
            format!("{head}{}{tail}", "x".repeat(pad))
        };
        assert_eq!(value_of(&mut conn, &statement(limits.sql_length)), 1);
        let message = error_of(&mut conn, &statement(limits.sql_length + 1));
        assert!(message.contains("statement too long"), "{message}");

        let columns = |n: u32| {
            let rest = ", 0".repeat(n as usize - 1);
            format!("SELECT 1 AS v{rest}")
        };
        assert_eq!(value_of(&mut conn, &columns(limits.columns)), 1);
        let message = error_of(&mut conn, &columns(limits.columns + 1));
        assert!(
            message.contains("too many columns in result set"),
            "{message}"
        );

        // `1+1+...+1` with k additions is k + 1 deep.
        let sum = |depth: u32| format!("SELECT 1{} AS v", "+1".repeat(depth as usize - 1));
        assert_eq!(
            value_of(&mut conn, &sum(limits.expr_depth)),
            i64::from(limits.expr_depth)
        );
        let message = error_of(&mut conn, &sum(limits.expr_depth + 1));
        assert!(
            message.contains(&format!("maximum depth {}", limits.expr_depth)),
            "{message}"
        );

        let v = limits.variables;
        assert_eq!(
            value_of(&mut conn, &format!("SELECT coalesce(?{v}, 3) AS v")),
            3
        );
        let message = error_of(&mut conn, &format!("SELECT ?{} AS v", v + 1));
        assert!(
            message.contains(&format!("between ?1 and ?{v}")),
            "{message}"
        );
    }
}

#[test]
fn every_limit_applies_on_both_pools_with_defaults_and_with_settings() {
    let dir = tempfile::tempdir().unwrap();
    let defaults = open(&dir, |b| b);
    assert_eq!(defaults.config().sqlite_limits(), SqliteLimits::default());
    assert_limits(&defaults, SqliteLimits::default());
    drop(defaults);
    let low = SqliteLimits {
        length: 1_000_000,
        sql_length: 1_000_000,
        columns: 16,
        expr_depth: 16,
        variables: 32766,
    };
    assert_limits(&open(&dir, |b| b.sqlite_limits(low)), low);
    let from_env = Config::from_vars([
        ("DATABASE_URL", url(&dir).as_str()),
        ("DB_SQLITE_MAX_LENGTH", "2000000"),
        ("DB_SQLITE_MAX_SQL_LENGTH", "1500000"),
        ("DB_SQLITE_MAX_COLUMNS", "20"),
        ("DB_SQLITE_MAX_EXPR_DEPTH", "30"),
        ("DB_SQLITE_MAX_VARIABLES", "32766"),
    ])
    .unwrap();
    let expected = SqliteLimits {
        length: 2_000_000,
        sql_length: 1_500_000,
        columns: 20,
        expr_depth: 30,
        variables: 32766,
    };
    assert_eq!(from_env.sqlite_limits(), expected);
    assert_limits(&Database::open(from_env).unwrap(), expected);
}

#[test]
fn limits_outside_their_range_are_refused_naming_variable_value_and_range() {
    for (var, value, accepted) in [
        ("DB_SQLITE_MAX_VARIABLES", "32765", "from 32766 to 250000"),
        ("DB_SQLITE_MAX_COLUMNS", "2001", "from 16 to 2000"),
        ("DB_SQLITE_MAX_EXPR_DEPTH", "0", "from 16 to 1000"),
        (
            "DB_SQLITE_MAX_LENGTH",
            "999999",
            "from 1000000 to 1000000000",
        ),
        (
            "DB_SQLITE_MAX_SQL_LENGTH",
            "lots",
            "from 1000000 to 1000000000",
        ),
    ] {
        match Config::from_vars([(var, value)]) {
            Err(Error::Config {
                var: named,
                value: given,
                reason,
            }) => {
                assert_eq!((named, given.as_str()), (var, value));
                assert!(reason.contains(accepted), "{var}: {reason}");
            }
            other => panic!("{var}={value}: {other:?}"),
        }
    }
    let too_few = SqliteLimits {
        variables: 999,
        ..SqliteLimits::default()
    };
    match Config::builder().sqlite_limits(too_few).build() {
        Err(Error::Config { var, value, .. }) => {
            assert_eq!((var, value.as_str()), ("DB_SQLITE_MAX_VARIABLES", "999"))
        }
        other => panic!("{other:?}"),
    }
    // Above this SQLite build's ceiling (32766): refused at open, naming the variable.
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_vars([
        ("DATABASE_URL", url(&dir).as_str()),
        ("DB_SQLITE_MAX_VARIABLES", "40000"),
    ])
    .unwrap();
    match Database::open(config) {
        Err(Error::Config { var, value, reason }) => {
            assert_eq!((var, value.as_str()), ("DB_SQLITE_MAX_VARIABLES", "40000"));
            assert!(reason.contains("ceiling is 32766"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

diesel::table! {
    wide (id) {
        id -> BigInt,
        c1 -> BigInt,
        c2 -> BigInt,
        c3 -> BigInt,
        c4 -> BigInt,
        c5 -> BigInt,
        c6 -> BigInt,
        c7 -> BigInt,
        c8 -> BigInt,
        c9 -> BigInt,
        c10 -> BigInt,
        c11 -> BigInt,
        c12 -> BigInt,
        c13 -> BigInt,
        c14 -> BigInt,
        c15 -> BigInt,
        c16 -> BigInt,
        c17 -> BigInt,
        c18 -> BigInt,
        c19 -> BigInt,
        c20 -> BigInt,
        c21 -> BigInt,
        c22 -> BigInt,
        c23 -> BigInt,
        c24 -> BigInt,
        c25 -> BigInt,
        c26 -> BigInt,
        c27 -> BigInt,
        c28 -> BigInt,
        c29 -> BigInt,
        c30 -> BigInt,
        c31 -> BigInt,
    }
}

diesel::table! {
    narrow (id) {
        id -> BigInt,
        n -> Integer,
    }
}

#[derive(Insertable, Clone)]
#[diesel(table_name = wide, treat_none_as_default_value = false)]
struct NewWide {
    c1: i64,
    c2: i64,
    c3: i64,
    c4: i64,
    c5: i64,
    c6: i64,
    c7: i64,
    c8: i64,
    c9: i64,
    c10: i64,
    c11: i64,
    c12: i64,
    c13: i64,
    c14: i64,
    c15: i64,
    c16: i64,
    c17: i64,
    c18: i64,
    c19: i64,
    c20: i64,
    c21: i64,
    c22: i64,
    c23: i64,
    c24: i64,
    c25: i64,
    c26: i64,
    c27: i64,
    c28: i64,
    c29: i64,
    c30: i64,
    c31: i64,
}

#[derive(Insertable, Clone)]
#[diesel(table_name = narrow, treat_none_as_default_value = false)]
struct NewNarrow {
    n: i32,
}

#[test]
fn bulk_inserts_of_wide_and_narrow_models_fit_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    // The lowest statement length accepted, and columns to spare for the wide table only.
    let limits = SqliteLimits {
        sql_length: 1_000_000,
        columns: 32,
        ..SqliteLimits::default()
    };
    let db = open(&dir, |b| b.sqlite_limits(limits));
    db.transaction(|conn| {
        Ok(conn.batch_execute(
            "CREATE TABLE wide (id INTEGER PRIMARY KEY, c1 INTEGER NOT NULL, c2 INTEGER NOT NULL, c3 INTEGER NOT NULL, c4 INTEGER NOT NULL, c5 INTEGER NOT NULL, c6 INTEGER NOT NULL, c7 INTEGER NOT NULL, c8 INTEGER NOT NULL, c9 INTEGER NOT NULL, c10 INTEGER NOT NULL, c11 INTEGER NOT NULL, c12 INTEGER NOT NULL, c13 INTEGER NOT NULL, c14 INTEGER NOT NULL, c15 INTEGER NOT NULL, c16 INTEGER NOT NULL, c17 INTEGER NOT NULL, c18 INTEGER NOT NULL, c19 INTEGER NOT NULL, c20 INTEGER NOT NULL, c21 INTEGER NOT NULL, c22 INTEGER NOT NULL, c23 INTEGER NOT NULL, c24 INTEGER NOT NULL, c25 INTEGER NOT NULL, c26 INTEGER NOT NULL, c27 INTEGER NOT NULL, c28 INTEGER NOT NULL, c29 INTEGER NOT NULL, c30 INTEGER NOT NULL, c31 INTEGER NOT NULL);
             CREATE TABLE narrow (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);",
        )?)
    })
    .unwrap();
    // 31 values a row: 1056 rows (32736 bound values) a statement.
    let rows: Vec<NewWide> = (0..5000i64)
        .map(|i| NewWide {
            c1: i,
            c2: i * 2,
            c3: i * 3,
            c4: i * 4,
            c5: i * 5,
            c6: i * 6,
            c7: i * 7,
            c8: i * 8,
            c9: i * 9,
            c10: i * 10,
            c11: i * 11,
            c12: i * 12,
            c13: i * 13,
            c14: i * 14,
            c15: i * 15,
            c16: i * 16,
            c17: i * 17,
            c18: i * 18,
            c19: i * 19,
            c20: i * 20,
            c21: i * 21,
            c22: i * 22,
            c23: i * 23,
            c24: i * 24,
            c25: i * 25,
            c26: i * 26,
            c27: i * 27,
            c28: i * 28,
            c29: i * 29,
            c30: i * 30,
            c31: i * 31,
        })
        .collect();
    assert_eq!(db.batch_insert(wide::table, &rows).unwrap(), 5000);
    // One value a row: 32766 rows (the longest statement the bulk insert writes) a statement.
    let narrow_rows: Vec<NewNarrow> = (0..70_000).map(|n| NewNarrow { n }).collect();
    assert_eq!(
        db.batch_insert(narrow::table, &narrow_rows).unwrap(),
        70_000
    );
    let mut conn = db.read_connection().unwrap();
    assert_eq!(value_of(&mut conn, "SELECT count(*) AS v FROM wide"), 5000);
    assert_eq!(
        value_of(&mut conn, "SELECT sum(c31) AS v FROM wide"),
        31 * (4999 * 5000 / 2)
    );
    #[derive(QueryableByName)]
    struct Sum {
        #[diesel(sql_type = BigInt)]
        v: i64,
        #[diesel(sql_type = Integer)]
        last: i32,
    }
    let sum = diesel::sql_query("SELECT sum(n) AS v, max(n) AS last FROM narrow")
        .get_result::<Sum>(&mut conn)
        .unwrap();
    assert_eq!((sum.v, sum.last), (69_999 * 70_000 / 2, 69_999));
}

/// The parents-and-children schema, then SQLite's table rebuild of the parents.
const REBUILD: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("tests/migrations/rebuild");

fn count(db: &Database, table: &str) -> i64 {
    let mut conn = db.read_connection().unwrap();
    value_of(&mut conn, &format!("SELECT count(*) AS v FROM {table}"))
}

fn foreign_keys_on_writer(db: &Database) -> i64 {
    let mut conn = db.write_connection().unwrap();
    diesel::sql_query("PRAGMA foreign_keys")
        .get_result::<ForeignKeysRow>(&mut conn)
        .unwrap()
        .foreign_keys
}

#[derive(QueryableByName)]
struct ForeignKeysRow {
    #[diesel(sql_type = BigInt)]
    foreign_keys: i64,
}

#[test]
fn a_table_rebuild_migration_at_open_keeps_every_child_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, |b| b.migrations(&REBUILD));
    assert_eq!(db.applied_migrations().unwrap().len(), 2);
    assert_eq!(count(&db, "children"), 10);
    assert_eq!(count(&db, "parents"), 3);
    // The rebuilt table is the parent again: its children still cascade.
    assert_eq!(foreign_keys_on_writer(&db), 1);
    db.transaction(|conn| Ok(conn.batch_execute("DELETE FROM parents WHERE id = 3")?))
        .unwrap();
    assert_eq!(count(&db, "children"), 6);
}

/// A migrations directory with the rebuild's first migration, and `extra` after it.
fn migrations_dir(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/migrations/rebuild");
    let mut all: Vec<(String, String)> = Vec::new();
    for name in [
        "2024-01-01-000000_parents_and_children",
        "2024-01-02-000000_rebuild_parents",
    ] {
        let up = std::fs::read_to_string(source.join(name).join("up.sql")).unwrap();
        all.push((name.to_owned(), up));
    }
    all.extend(extra.iter().map(|(n, up)| (n.to_string(), up.to_string())));
    for (name, up) in all {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("up.sql"), up).unwrap();
        std::fs::write(d.join("down.sql"), "SELECT 1;").unwrap();
    }
    dir
}

#[test]
fn run_pending_migrations_rebuilds_a_parent_table_without_losing_children() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = migrations_dir(&[]);
    let db = open(&dir, |b| b);
    let files = diesel_migrations::FileBasedMigrations::from_path(migrations.path()).unwrap();
    assert_eq!(db.run_pending_migrations_from(files).unwrap().len(), 2);
    assert_eq!(count(&db, "children"), 10);
    assert_eq!(foreign_keys_on_writer(&db), 1);
}

#[test]
fn migrations_that_leave_a_row_pointing_nowhere_are_refused_and_nothing_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = migrations_dir(&[(
        "2024-01-03-000000_dangling",
        "CREATE TABLE audit (id INTEGER PRIMARY KEY);
         INSERT INTO children (id, parent_id) VALUES (77, 999);",
    )]);
    let db = open(&dir, |b| b);
    let files = diesel_migrations::FileBasedMigrations::from_path(migrations.path()).unwrap();
    let error = db.run_pending_migrations_from(files).unwrap_err();
    let report = format!("{}", error.report());
    assert!(matches!(error, Error::Migration { .. }), "{error:?}");
    assert!(
        report.contains("rowid 77 of table children points to a row of parents"),
        "{report}"
    );
    // None of the three migrations was applied, nor anything of them.
    assert!(db.applied_migrations().unwrap().is_empty());
    let mut conn = db.read_connection().unwrap();
    let tables = value_of(
        &mut conn,
        "SELECT count(*) AS v FROM sqlite_schema WHERE name IN ('parents', 'children', 'audit')",
    );
    assert_eq!(tables, 0);
    drop(conn);
    assert_eq!(foreign_keys_on_writer(&db), 1);
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Checkpoint {
    #[diesel(sql_type = Integer)]
    busy: i32,
    #[diesel(sql_type = Integer)]
    log: i32,
    #[diesel(sql_type = Integer)]
    checkpointed: i32,
}

/// A connection outside the pools that waits for no lock.
fn impatient(dir: &tempfile::TempDir) -> SqliteConnection {
    let mut conn = SqliteConnection::establish(&url(dir)).unwrap();
    conn.batch_execute("PRAGMA busy_timeout = 0").unwrap();
    conn
}

#[test]
fn a_raw_begin_left_open_on_a_writer_is_rolled_back_at_check_in_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, |b| b);
    db.transaction(|conn| {
        Ok(conn.batch_execute("CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER)")?)
    })
    .unwrap();
    {
        let mut conn = db.write_connection().unwrap();
        conn.batch_execute("BEGIN IMMEDIATE; INSERT INTO items (n) VALUES (1);")
            .unwrap();
        // Dropped without COMMIT: back to the pool.
    }
    // Another connection writes at once: nobody holds the write lock.
    impatient(&dir)
        .batch_execute("INSERT INTO items (n) VALUES (2)")
        .unwrap();
    // The pool's writer (the same connection: the pool has one) writes too.
    db.transaction(|conn| Ok(conn.batch_execute("INSERT INTO items (n) VALUES (3)")?))
        .unwrap();
    let mut conn = db.read_connection().unwrap();
    // The write left open was rolled back: 2 + 3.
    assert_eq!(value_of(&mut conn, "SELECT sum(n) AS v FROM items"), 5);
    drop(conn);
    let stats = db.connection_stats();
    assert_eq!(stats.transactions.write.left_open, 1);
    assert_eq!(stats.transactions.read.left_open, 0);
    let metrics = db.render_metrics().unwrap();
    assert!(
        metrics.contains(r#"litedal_transactions_total{outcome="left_open",role="write"} 1"#),
        "{metrics}"
    );
}

#[test]
fn a_raw_begin_left_open_on_a_reader_no_longer_pins_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, |b| b.pool_size(1));
    db.transaction(|conn| {
        Ok(conn.batch_execute("CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER)")?)
    })
    .unwrap();
    {
        let mut conn = db.read_connection().unwrap();
        conn.batch_execute("BEGIN").unwrap();
        assert_eq!(value_of(&mut conn, "SELECT count(*) AS v FROM items"), 0);
    }
    db.transaction(|conn| Ok(conn.batch_execute("INSERT INTO items (n) VALUES (1)")?))
        .unwrap();
    // A snapshot older than the last commit would keep TRUNCATE from resetting the WAL.
    let checkpoint = diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)")
        .get_result::<Checkpoint>(&mut impatient(&dir))
        .unwrap();
    assert_eq!(
        checkpoint,
        Checkpoint {
            busy: 0,
            log: 0,
            checkpointed: 0
        }
    );
    let mut conn = db.read_connection().unwrap();
    assert_eq!(value_of(&mut conn, "SELECT count(*) AS v FROM items"), 1);
    drop(conn);
    assert_eq!(db.connection_stats().transactions.read.left_open, 1);
}

/// Runs test `name` again in a child process of this test binary, alone (no other test's
/// threads touch SQLite there), and checks that it passed; returns true inside the child,
/// where the caller then runs the test's body.
fn in_child_process(name: &str) -> bool {
    const CHILD: &str = "LITEDAL_HARDENING_CHILD";
    if std::env::var(CHILD).as_deref() == Ok(name) {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {name}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

#[test]
fn init_sqlite_from_many_threads_while_databases_open_decides_once() {
    if !in_child_process("init_sqlite_from_many_threads_while_databases_open_decides_once") {
        return;
    }
    let threads = 8;
    let barrier = Arc::new(std::sync::Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                if i % 2 == 0 {
                    // SAFETY: in this process every use of SQLite goes through litedal's
                    // `Database::open` or `init_sqlite`, which wait for each other.
                    Some(unsafe { litedal::init_sqlite() })
                } else {
                    let dir = tempfile::tempdir().unwrap();
                    let db = open(&dir, |b| b);
                    db.transaction(|conn| {
                        Ok(conn.batch_execute(
                            "CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1)",
                        )?)
                    })
                    .unwrap();
                    let mut conn = db.read_connection().unwrap();
                    assert_eq!(value_of(&mut conn, "SELECT sum(n) AS v FROM t"), 1);
                    None
                }
            })
        })
        .collect();
    let answers: Vec<bool> = workers
        .into_iter()
        .filter_map(|worker| worker.join().unwrap())
        .collect();
    assert_eq!(answers.len(), threads / 2);
    // SAFETY: as above; SQLite is initialized by now, so this only reads the decision.
    let last = unsafe { litedal::init_sqlite() };
    assert!(
        answers.iter().all(|&a| a == last),
        "{answers:?} then {last}"
    );
}

#[test]
fn database_open_leaves_sqlite_configuration_alone_while_other_threads_run() {
    if !in_child_process("database_open_leaves_sqlite_configuration_alone_while_other_threads_run")
    {
        return;
    }
    // Another thread of the process exists (it could be in SQLite through other code):
    // `Database::open` must not call sqlite3_config now.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || stopped.recv());
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, |b| b);
    db.transaction(|conn| Ok(conn.batch_execute("CREATE TABLE t (n INTEGER)")?))
        .unwrap();
    // SAFETY: the other thread does not use SQLite; SQLite is initialized by now, so this
    // only reads the decision `Database::open` made.
    assert!(!unsafe { litedal::init_sqlite() });
    stop.send(()).unwrap();
    other.join().unwrap().unwrap();
}
