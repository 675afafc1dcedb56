//! An application adopting litedal with its own schema: only its migrations run, through
//! every entry point; its own per-connection setup; foreign keys and stable query plans
//! configurable; errors that keep their sources; spans that group a transaction's statements.

mod common;

use std::error::Error as _;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_migrations::{EmbeddedMigrations, FileBasedMigrations, embed_migrations};
use litedal::testing::TestDb;
use litedal::{Config, Database, Error, Role};

/// An application's own migrations: one `notes` table.
const OWN: EmbeddedMigrations = embed_migrations!("examples/own_tables/migrations");

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// The tables of `db`, SQLite's own `sqlite_*` tables aside.
fn tables(db: &Database) -> Vec<String> {
    db.read(|conn| {
        Ok(diesel::sql_query(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .load::<Name>(conn)?)
    })
    .unwrap()
    .into_iter()
    .map(|t| t.name)
    .collect()
}

#[test]
fn without_migrations_litedal_creates_no_table() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("app.db").display().to_string();
    let db = Database::open(Config::builder().database_url(&url).build().unwrap()).unwrap();
    assert!(tables(&db).is_empty(), "{:?}", tables(&db));
    match db.run_pending_migrations() {
        Err(error @ Error::Migration { .. }) => {
            assert!(
                error
                    .report()
                    .to_string()
                    .contains("no migrations were configured")
            )
        }
        other => panic!("{other:?}"),
    }
    let empty = TestDb::new().unwrap();
    assert!(tables(empty.db()).is_empty());
}

#[test]
fn every_entry_point_runs_the_applications_migrations_and_only_those() {
    let expected = ["__diesel_schema_migrations", "notes"];
    // The builder.
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("builder.db").display().to_string();
    let db = Database::open(
        Config::builder()
            .database_url(&url)
            .migrations(&OWN)
            .build()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(tables(&db), expected);
    // The environment (Config::from_env reads the same variables as from_vars).
    let url = dir.path().join("env.db").display().to_string();
    let config = Config::from_vars([("DATABASE_URL", url.as_str()), ("DB_POOL_SIZE", "2")])
        .unwrap()
        .with_migrations(&OWN);
    let db = Database::open(config).unwrap();
    assert_eq!(tables(&db), expected);
    assert_eq!(
        db.applied_migrations().unwrap(),
        ["2026-12-01-000001_create_notes"]
    );
    // With DB_RUN_MIGRATIONS=false, the same set runs only when asked.
    let url = dir.path().join("later.db").display().to_string();
    let config = Config::from_vars([
        ("DATABASE_URL", url.as_str()),
        ("DB_RUN_MIGRATIONS", "false"),
    ])
    .unwrap()
    .with_migrations(&OWN);
    let db = Database::open(config).unwrap();
    assert!(tables(&db).is_empty());
    assert_eq!(
        db.run_pending_migrations().unwrap(),
        ["2026-12-01-000001_create_notes"]
    );
    assert_eq!(tables(&db), expected);
    // TestDb.
    let test_db = TestDb::with_migrations(&OWN).unwrap();
    assert_eq!(tables(test_db.db()), expected);
}

/// Each connection records the role it was set up for, in a table of its own.
fn role_of(conn: &mut SqliteConnection) -> litedal::Result<String> {
    Ok(
        diesel::sql_query("SELECT role AS name FROM temp.connection_role")
            .get_result::<Name>(conn)?
            .name,
    )
}

#[test]
fn the_connection_hook_runs_on_every_connection_with_its_role() {
    let db = TestDb::with_config(|b| {
        b.pool_size(2).on_connect(|conn, role| {
            conn.batch_execute(&format!(
                "CREATE TEMP TABLE connection_role AS SELECT '{role}' AS role"
            ))?;
            Ok(())
        })
    })
    .unwrap();
    assert_eq!(db.read(role_of).unwrap(), "read");
    assert_eq!(db.transaction(role_of).unwrap(), "write");
    // Every connection of both pools, not just the first: hold them all at once.
    let readers: Vec<_> = (0..4).map(|_| db.read_connection().unwrap()).collect();
    for mut conn in readers {
        assert_eq!(role_of(&mut conn).unwrap(), "read");
    }
    // Statements the hook runs are not counted as the application's.
    let fresh = TestDb::with_config(|b| {
        b.on_connect(|conn, _| Ok(conn.batch_execute("SELECT 1; SELECT 2; SELECT 3")?))
    })
    .unwrap();
    assert_eq!(fresh.connection_stats().total.queries.queries, 0);
}

#[test]
fn a_failing_hook_fails_the_open_naming_the_role() {
    for failing in [Role::Read, Role::Write] {
        let result = TestDb::with_config(|b| {
            b.on_connect(move |conn, role| {
                if role == failing {
                    conn.batch_execute("SELECT no_such_function()")?;
                }
                Ok(())
            })
        });
        match result {
            Err(error @ Error::ConnectionHook { .. }) => {
                let Error::ConnectionHook { role, .. } = &error else {
                    unreachable!()
                };
                assert_eq!(*role, failing);
                let report = error.report().to_string();
                assert!(report.contains("no such function"), "{report}");
                assert!(report.contains(&failing.to_string()), "{report}");
            }
            other => panic!("{failing}: {other:?}"),
        }
    }
}

#[test]
fn foreign_keys_are_on_by_default_and_can_be_turned_off() {
    use litedal::example::models::NewPost;
    use litedal::example::models::UserId;
    use litedal::example::repo::Posts;
    let post = NewPost {
        user_id: UserId(999),
        title: "t",
        body: "b",
        published: true,
    };
    let checked = litedal::example::test_db().unwrap();
    assert!(matches!(
        Posts::insert(checked.db(), &post),
        Err(Error::ForeignKey { .. })
    ));
    let unchecked = litedal::example::test_db_with(|b| b.foreign_keys(false)).unwrap();
    Posts::insert(unchecked.db(), &post).unwrap();
    let from_env = Config::from_vars([("DB_FOREIGN_KEYS", "false")]).unwrap();
    assert!(!from_env.pragmas(Role::Write).foreign_keys);
    assert!(Config::from_vars([("DB_FOREIGN_KEYS", "sometimes")]).is_err());
}

#[derive(QueryableByName)]
struct PlanStep {
    #[diesel(sql_type = Text)]
    detail: String,
}

/// The plan SQLite picks for one statement with a bound value, on a read connection and on a
/// write connection of `db`.
fn plans_with_bound_value(db: &Database) -> [String; 2] {
    use diesel::sql_types::BigInt;
    let plan = |conn: &mut SqliteConnection| -> QueryResult<String> {
        let steps: Vec<PlanStep> =
            diesel::sql_query("EXPLAIN QUERY PLAN SELECT b FROM plans WHERE a = ? AND b = 5")
                .bind::<BigInt, _>(0)
                .load(conn)?;
        Ok(steps
            .into_iter()
            .map(|s| s.detail)
            .collect::<Vec<_>>()
            .join("; "))
    };
    let read = db.read(|conn| Ok(plan(conn)?)).unwrap();
    let write = db.transaction(|conn| Ok(plan(conn)?)).unwrap();
    [read, write]
}

#[test]
fn stable_query_plans_are_on_by_default_and_can_be_turned_off() {
    // A partial index that a query can use only when the planner looks at the bound value:
    // with the stability guarantee it does not (one plan whatever is bound, prepared once),
    // without it the statement is planned for the value bound (and re-planned when it changes).
    const INDEX: &str = "CREATE TABLE plans (a INTEGER, b INTEGER); \
                         CREATE INDEX plans_b_where_a_is_0 ON plans (b) WHERE a = 0";
    let stable = litedal::example::test_db().unwrap();
    let replanned = litedal::example::test_db_with(|b| b.stable_query_plans(false)).unwrap();
    for test in [&stable, &replanned] {
        test.db()
            .transaction(|conn| Ok(conn.batch_execute(INDEX)?))
            .unwrap();
    }
    for plan in plans_with_bound_value(stable.db()) {
        assert!(!plan.contains("plans_b_where_a_is_0"), "{plan}");
    }
    for plan in plans_with_bound_value(replanned.db()) {
        assert!(plan.contains("plans_b_where_a_is_0"), "{plan}");
    }
    assert!(
        Config::from_vars(Vec::<(&str, &str)>::new())
            .unwrap()
            .stable_query_plans()
    );
    let from_env = Config::from_vars([("DB_STABLE_QUERY_PLANS", "false")]).unwrap();
    assert!(!from_env.stable_query_plans());
    let error = Config::from_vars([("DB_STABLE_QUERY_PLANS", "maybe")]).unwrap_err();
    assert!(
        error.to_string().contains("DB_STABLE_QUERY_PLANS"),
        "{error}"
    );
}

#[test]
fn errors_keep_their_source_and_do_not_repeat_it() {
    // A file-system error: the operation and path in Display, the OS error as the source.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let url = file.join("app.db").display().to_string();
    let error = Database::open(Config::builder().database_url(&url).build().unwrap()).unwrap_err();
    let source = error
        .source()
        .expect("an I/O error keeps its source")
        .to_string();
    assert!(
        !error.to_string().contains(&source),
        "{error} repeats {source}"
    );
    assert!(
        error.report().to_string().ends_with(&source),
        "{}",
        error.report()
    );

    // A failing migration: which one failed is in the source.
    let migrations = dir.path().join("migrations/2026-01-01-000001_broken");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(migrations.join("up.sql"), "CREATE TABLE broken (;").unwrap();
    std::fs::write(migrations.join("down.sql"), "DROP TABLE broken;").unwrap();
    let db_url = dir.path().join("m.db").display().to_string();
    let db = Database::open(Config::builder().database_url(&db_url).build().unwrap()).unwrap();
    let files = FileBasedMigrations::from_path(dir.path().join("migrations")).unwrap();
    let error = db.run_pending_migrations_from(files).unwrap_err();
    assert!(matches!(error, Error::Migration { .. }), "{error:?}");
    let source = error.source().expect("the migration error").to_string();
    assert!(source.contains("2026-01-01-000001"), "{source}");
    assert!(!error.to_string().contains(&source), "{error}");
    assert!(tables(&db).iter().all(|t| t != "broken"));

    // An exhausted pool: r2d2's error is the source.
    let test_db =
        TestDb::with_config(|b| b.write_pool_size(1).pool_timeout(Duration::from_secs(1))).unwrap();
    let _held = test_db.write_connection().unwrap();
    let error = test_db.transaction(|_| Ok(())).unwrap_err();
    assert!(matches!(error, Error::PoolTimeout { .. }), "{error:?}");
    assert!(error.source().is_some(), "{error:?}");

    // Other database errors are diesel's, shown once.
    let error = test_db
        .read(|conn| Ok(conn.batch_execute("SELECT * FROM no_such_table")?))
        .unwrap_err();
    assert_eq!(error.to_string(), "no such table: no_such_table");
}

#[test]
fn a_transactions_statements_are_logged_inside_its_span() {
    // In a child process of its own, with a process-wide subscriber: tracing caches per
    // call site whether anyone listens, and the other tests of this binary, running in
    // parallel without a subscriber, would race with a thread-local one.
    if std::env::var_os("LITEDAL_CHILD_SPANS").is_some() {
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(std::io::stdout)
            .init();
        // Every statement is "slow", so each one is logged at WARN with its span.
        let db = litedal::example::test_db_with(|b| b.slow_query(Duration::from_nanos(1))).unwrap();
        db.transaction(|conn| Ok(conn.batch_execute("SELECT 'inside the transaction'")?))
            .unwrap();
        db.read(|conn| Ok(conn.batch_execute("SELECT 'inside the read'")?))
            .unwrap();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_transactions_statements_are_logged_inside_its_span",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LITEDAL_CHILD_SPANS", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let line_of = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle) && l.contains("slow query"))
            .unwrap_or_else(|| panic!("no slow-query line with {needle}:\n{text}"))
            .to_owned()
    };
    assert!(
        line_of("inside the transaction").contains("db.transaction"),
        "{text}"
    );
    assert!(line_of("inside the read").contains("db.read"), "{text}");
    // Checkouts are spans of their own, closed with the pool wait recorded.
    assert!(
        text.lines()
            .any(|l| l.contains("db.checkout") && l.contains("wait_us=") && l.contains("close")),
        "{text}"
    );
}
