//! `litedal copy` between SQLite and a real PostgreSQL server: a million rows there and
//! back, verified; a schema that cannot be copied is refused before any row moves; a copy
//! killed with SIGKILL continues with --resume.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use litedal::copy::CopyOptions;
use litedal::example::models::{NewPost, NewUser, UserId};
use litedal::example::repo::Users;
use litedal::example::schema::{posts, users};
use litedal::testing::postgres::PgCluster;
use litedal::{Database, Error};

/// A migrated SQLite file with `n` users (every third inactive) and a post for every tenth.
fn sqlite_with_users(dir: &std::path::Path, name: &str, n: usize) -> String {
    let url = format!("sqlite://{}/{name}", dir.display());
    let db = Database::open(
        litedal::example::config()
            .database_url(url.clone())
            .build()
            .unwrap(),
    )
    .unwrap();
    let emails: Vec<String> = (0..n).map(|i| format!("user{i}@copy.example")).collect();
    let rows: Vec<NewUser> = emails
        .iter()
        .enumerate()
        .map(|(i, e)| NewUser {
            name: "Zoë \"quoted\" \\ name",
            email: e,
            active: i % 3 != 0,
        })
        .collect();
    db.batch_insert(users::table, &rows).unwrap();
    let posts: Vec<NewPost> = (0..n / 10)
        .map(|i| NewPost {
            user_id: UserId(i as i64 * 10 + 1),
            title: "t",
            body: "line 1\nline 2 ✓",
            published: i % 2 == 0,
        })
        .collect();
    db.batch_insert(posts::table, &posts).unwrap();
    url
}

fn migrated_postgres(cluster: &PgCluster, name: &str) -> String {
    let url = cluster.create_database(name).unwrap();
    PgConnection::establish(&url)
        .unwrap()
        .run_pending_migrations(litedal::example::MIGRATIONS_POSTGRES)
        .unwrap();
    url
}

fn migrated_sqlite(dir: &std::path::Path, name: &str) -> String {
    let url = format!("sqlite://{}/{name}", dir.display());
    Database::open(
        litedal::example::config()
            .database_url(url.clone())
            .build()
            .unwrap(),
    )
    .unwrap();
    url
}

#[test]
fn a_million_rows_to_postgres_and_back_verified() {
    let Some(cluster) = PgCluster::start_or_skip("copy: 1M rows").unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_with_users(dir.path(), "source.db", 1_000_000);
    let pg = migrated_postgres(&cluster, "million");
    let started = Instant::now();
    let mut last_progress = 0;
    let report = litedal::copy::copy(&source, &pg, &CopyOptions::default(), &mut |p| {
        assert!(p.rows > last_progress && p.rows <= p.total);
        last_progress = p.rows;
    })
    .unwrap();
    let to_pg = started.elapsed();
    assert_eq!(
        report.copied,
        vec![
            ("users".to_owned(), 1_000_000),
            ("posts".to_owned(), 100_000)
        ]
    );
    assert!(
        report.checks.iter().all(|c| c.matches()),
        "{:?}",
        report.checks
    );
    assert_eq!(report.checks[0].destination_rows, 1_000_000);

    // The sequence moved past the copied ids: a new row gets the next id.
    let mut conn = PgConnection::establish(&pg).unwrap();
    let id: i64 = diesel::insert_into(users::table)
        .values(&NewUser::new("next", "next@copy.example"))
        .returning(users::id)
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(id, 1_000_001);
    diesel::delete(users::table.find(id))
        .execute(&mut conn)
        .unwrap();

    // And back into a new SQLite file.
    let back = migrated_sqlite(dir.path(), "back.db");
    let started = Instant::now();
    let report = litedal::copy::copy(&pg, &back, &CopyOptions::default(), &mut |_| {}).unwrap();
    let to_sqlite = started.elapsed();
    assert!(
        report.checks.iter().all(|c| c.matches()),
        "{:?}",
        report.checks
    );
    // The same rows field for field, through the repositories on both files.
    let a = Database::open(
        litedal::example::config()
            .database_url(source.clone())
            .build()
            .unwrap(),
    )
    .unwrap();
    let b = Database::open(
        litedal::example::config()
            .database_url(back.clone())
            .build()
            .unwrap(),
    )
    .unwrap();
    for id in [1, 2, 3, 500_000, 1_000_000] {
        assert_eq!(
            Users::find(&a, UserId(id)).unwrap(),
            Users::find(&b, UserId(id)).unwrap(),
            "user {id}"
        );
    }
    // The source was never written.
    assert_eq!(Users::count(&a).unwrap(), 1_000_000);
    eprintln!(
        "copy: 1,100,000 rows SQLite -> PostgreSQL {:.1} s, PostgreSQL -> SQLite {:.1} s (verification included)",
        to_pg.as_secs_f64(),
        to_sqlite.as_secs_f64()
    );
}

#[test]
fn a_column_that_cannot_be_copied_is_refused_before_any_row_moves() {
    let Some(cluster) = PgCluster::start_or_skip("copy: refused schema").unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_with_users(dir.path(), "source.db", 100);
    let pg = migrated_postgres(&cluster, "refused");
    let mut conn = PgConnection::establish(&pg).unwrap();
    // A table both sides have, whose column is JSON on PostgreSQL and text on SQLite.
    conn.batch_execute("CREATE TABLE settings (id bigint PRIMARY KEY, value jsonb)")
        .unwrap();
    let mut sqlite = SqliteConnection::establish(&source.replace("sqlite://", "")).unwrap();
    sqlite
        .batch_execute("CREATE TABLE settings (id INTEGER PRIMARY KEY, value TEXT); INSERT INTO settings VALUES (1, '{}')")
        .unwrap();
    match litedal::copy::copy(&source, &pg, &CopyOptions::default(), &mut |_| {}) {
        Err(Error::InvalidInput { value, reason, .. }) => {
            assert_eq!(value, "settings.value");
            assert!(
                reason.contains("TEXT") && reason.contains("jsonb"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    let count: i64 = users::table.count().get_result(&mut conn).unwrap();
    assert_eq!(count, 0, "nothing moved");
}

#[test]
fn a_killed_copy_continues_with_resume_and_a_plain_rerun_is_refused() {
    let Some(cluster) = PgCluster::start_or_skip("copy: killed").unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_with_users(dir.path(), "source.db", 300_000);
    let pg = cluster.create_database("killed").unwrap();
    let litedal = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_litedal"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = litedal(&[
        "copy",
        "--from",
        &source,
        "--to",
        &pg,
        "--batch-rows",
        "500",
    ]);
    // Kill it once some rows are committed and before it is done.
    let mut conn = loop {
        if let Ok(conn) = PgConnection::establish(&pg) {
            break conn;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let partial = loop {
        let n: i64 = users::table.count().get_result(&mut conn).unwrap_or(0);
        if n > 0 {
            break n;
        }
        assert!(Instant::now() < deadline, "the copy never started");
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    let committed: i64 = users::table.count().get_result(&mut conn).unwrap();
    assert!(committed >= partial && committed < 300_000, "{committed}");
    // Every committed row is a prefix of the source in key order: no gaps.
    let max: Option<i64> = users::table
        .select(diesel::dsl::max(users::id))
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(max, Some(committed));

    // A plain rerun is refused (the destination is not empty) ...
    let out = litedal(&["copy", "--from", &source, "--to", &pg])
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
    // ... and --resume finishes it, verified.
    let out = litedal(&["copy", "--from", &source, "--to", &pg, "--resume"])
        .wait_with_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok        users: 300000 rows / 300000 rows"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok        posts: 30000 rows / 30000 rows"),
        "{stdout}"
    );
    let out = litedal(&["copy", "--from", &source, "--to", &pg, "--verify"])
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn copy_takes_urls_from_environment_variables_and_files_and_warns_about_passwords_in_argv() {
    let Some(cluster) = PgCluster::start_or_skip("copy: url forms").unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_with_users(dir.path(), "source.db", 50);
    // The test cluster trusts loopback, so the password is ignored there, but it is in the
    // URL as a deployment's would be.
    let pg = cluster.create_database("url_forms").unwrap().replacen(
        "postgres@",
        "postgres:Zq7-secret@",
        1,
    );
    assert!(pg.contains("Zq7-secret@"), "{pg}");
    let source_file = dir.path().join("source-url");
    std::fs::write(&source_file, format!("{source}\n")).unwrap();
    let litedal = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_litedal"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("DATABASE_URL")
            .env("LITEDAL_TEST_COPY_TO", &pg)
            .output()
            .unwrap()
    };
    let shown = |out: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    let file = source_file.display().to_string();
    let out = litedal(&[
        "copy",
        "--from-file",
        &file,
        "--to-env",
        "LITEDAL_TEST_COPY_TO",
    ]);
    let text = shown(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("ok        users: 50 rows / 50 rows"),
        "{text}"
    );
    assert!(!text.contains("Zq7"), "{text}");
    assert!(!text.contains("password on the command line"), "{text}");

    // The password in argv works, and is warned about (without showing it).
    let out = litedal(&["copy", "--from", &source, "--to", &pg, "--verify"]);
    let text = shown(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("password on the command line"), "{text}");
    assert!(!text.contains("Zq7"), "{text}");

    // One form of each is required; a variable that is not set is named.
    let out = litedal(&["copy", "--to-env", "LITEDAL_TEST_COPY_TO"]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(shown(&out).contains("--from-env"), "{}", shown(&out));
    let out = litedal(&["copy", "--from", &source, "--to-env", "LITEDAL_TEST_UNSET"]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(
        shown(&out).contains("LITEDAL_TEST_UNSET"),
        "{}",
        shown(&out)
    );
    let out = litedal(&["copy", "--from", &source, "--from-file", &file, "--to", &pg]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));

    // A destination that is not loopback by name gets TLS required, as DATABASE_URL does:
    // this server offers none, so the copy is refused instead of going in clear.
    let remote = pg.replacen("@127.0.0.1:", "@db.test:", 1) + "?hostaddr=127.0.0.1";
    assert!(remote.contains("@db.test:"), "{remote}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_litedal"))
        .args([
            "copy",
            "--from",
            &source,
            "--to-env",
            "LITEDAL_TEST_REMOTE",
            "--verify",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env("LITEDAL_TEST_REMOTE", &remote)
        .output()
        .unwrap();
    let text = shown(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("does not support SSL"), "{text}");
    assert!(!text.contains("Zq7"), "{text}");

    let help = shown(&litedal(&["copy", "--help"]));
    for says in [
        "--from-env",
        "--from-file",
        "--to-env",
        "--to-file",
        "process list",
    ] {
        assert!(help.contains(says), "{says}: {help}");
    }
}
