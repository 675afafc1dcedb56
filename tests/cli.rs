//! The `litedal` CLI against temp-file databases: migrate, stats, health (with its exit
//! codes), serve-metrics, and `--help`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{http_get, parse_metrics};
use diesel::{Connection, RunQueryDsl};

/// The CLI with a clean environment: only `DATABASE_URL` and the given variables.
fn litedal(db: &Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    command(db, vars, args).output().expect("run litedal")
}

fn command(db: &Path, vars: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_litedal"));
    cmd.env_clear()
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .envs(vars.iter().copied())
        .args(args);
    cmd
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A fresh directory with a migrated database in it.
fn migrated() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/main.db");
    let out = litedal(&db, &[], &["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    (dir, db)
}

/// Latency thresholds no loaded machine reaches, so only the variable under test decides.
const CALM: [(&str, &str); 2] = [
    ("DB_HEALTH_READ_LATENCY_MS", "3600000"),
    ("DB_HEALTH_WRITE_LATENCY_MS", "3600000"),
];

#[test]
fn migrate_runs_pending_migrations_and_lists_applied_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/main.db");
    let out = litedal(&db, &[], &["migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("applied 4 pending migration(s)"), "{text}");
    assert!(text.contains("2026-11-29-000001_create_users"), "{text}");
    assert!(text.contains("2026-11-29-000002_create_posts"), "{text}");
    assert!(db.exists());

    let again = stdout(&litedal(&db, &[], &["migrate"]));
    assert!(again.contains("\nno pending migrations"), "{again}");
    assert!(again.contains("applied migrations in"), "{again}");
    assert!(again.contains("2026-11-29-000002_create_posts"), "{again}");
}

#[test]
fn migrate_runs_an_applications_own_migrations_directory() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("notes.db");
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/own_tables/migrations");
    let out = litedal(
        &db,
        &[],
        &["migrate", "--migrations-dir", migrations.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("2026-12-01-000001_create_notes"), "{text}");
    assert!(!text.contains("create_users"), "{text}");
    // Exactly the application's table and diesel's migrations table (SQLite's own
    // sqlite_stat tables, from PRAGMA optimize at close, aside).
    let conn = &mut diesel::SqliteConnection::establish(db.to_str().unwrap()).unwrap();
    let tables: Vec<String> = diesel::sql_query(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .load::<TableName>(conn)
    .unwrap()
    .into_iter()
    .map(|t| t.name)
    .collect();
    assert_eq!(tables, ["__diesel_schema_migrations", "notes"]);
    let out = litedal(&db, &[], &["stats"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[derive(diesel::QueryableByName)]
struct TableName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

#[test]
fn migrate_without_migrations_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let out = command(&db, &[], &["migrate"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no migrations to run"), "{err}");
    assert!(err.contains("--migrations-dir"), "{err}");
    assert!(!db.exists(), "nothing is created without migrations");
    let out = litedal(&db, &[], &["migrate", "--migrations-dir", "/no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/no/such/dir"), "{}", stderr(&out));
}

#[test]
fn stats_prints_tables_and_json() {
    let (_dir, db) = migrated();
    let out = litedal(&db, &[("DB_POOL_SIZE", "2")], &["stats"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for row in [
        "read ",
        "write ",
        "total ",
        "transactions",
        "database bytes",
    ] {
        assert!(text.contains(row), "{row:?} missing in:\n{text}");
    }

    let out = litedal(&db, &[("DB_POOL_SIZE", "2")], &["stats", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["pools"][0]["pool"], "read");
    assert_eq!(json["pools"][0]["max_size"], 4);
    assert_eq!(json["pools"][1]["max_size"], 1);
    assert_eq!(json["total"]["max_size"], 5);
    assert_eq!(json["files"]["page_size"], 4096);
    assert!(json["files"]["page_count"].as_u64().unwrap() > 0);
}

#[test]
fn health_exit_codes_follow_the_status() {
    let (_dir, db) = migrated();

    let out = litedal(&db, &CALM, &["health"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains(": healthy"), "{text}");
    for check in [
        "read_latency",
        "write_latency",
        "pool_utilization",
        "wal_size",
        "journal_mode",
    ] {
        assert!(text.contains(check), "{check} missing in:\n{text}");
    }

    // Any read round trip is at least 0 ms: degraded, exit code 1.
    let degraded = [
        ("DB_HEALTH_READ_LATENCY_MS", "0,3600000"),
        ("DB_HEALTH_WRITE_LATENCY_MS", "3600000"),
    ];
    let out = litedal(&db, &degraded, &["health", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "degraded");

    let unhealthy = [
        ("DB_HEALTH_READ_LATENCY_MS", "0,0"),
        ("DB_HEALTH_WRITE_LATENCY_MS", "3600000"),
    ];
    let out = litedal(&db, &unhealthy, &["health", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "unhealthy");

    // No database at all is an unhealthy report too (saying how to create it), and nothing
    // is created.
    let missing = db.with_file_name("missing.db");
    let out = litedal(&missing, &CALM, &["health"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("litedal migrate"), "{}", stdout(&out));
    assert!(!missing.exists());
}

#[test]
fn bad_environment_values_are_reported_with_their_name() {
    let (_dir, db) = migrated();
    let out = litedal(&db, &[("DB_HEALTH_POOL_UTILIZATION", "150")], &["stats"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("DB_HEALTH_POOL_UTILIZATION"), "{err}");
    assert!(err.contains("150"), "{err}");
}

#[test]
fn help_documents_every_environment_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_litedal"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = stdout(&out);
    for (name, default, _) in litedal::config::ENV_VARS {
        assert!(help.contains(name), "{name} missing in --help");
        assert!(
            help.contains(default),
            "default of {name} missing in --help"
        );
    }
    for command in ["migrate", "stats", "health", "serve-metrics"] {
        assert!(help.contains(command), "{command} missing in --help");
    }
}

#[test]
fn serve_metrics_serves_until_killed() {
    let (_dir, db) = migrated();
    let mut child = command(&db, &CALM, &["serve-metrics", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));

    let (status, body) = http_get(addr, "/metrics");
    let (health, health_body) = http_get(addr, "/health");
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(status, 200, "{body}");
    let scrape = parse_metrics(&body);
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "litedal_pool_max_connections"),
        "{body}"
    );
    assert_eq!(health, 200, "{health_body}");
    assert!(
        health_body.contains("\"status\": \"healthy\""),
        "{health_body}"
    );
}

#[test]
fn serve_metrics_without_an_address_says_what_to_set() {
    let (_dir, db) = migrated();
    let out = litedal(&db, &[], &["serve-metrics"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("DB_METRICS_ADDR"), "{}", stderr(&out));
}

/// Inserts `n` users through the library (the CLI has no data commands).
fn add_users(db: &Path, from: usize, n: usize) {
    use litedal::example::models::NewUser;
    let database = litedal::Database::open(
        litedal::example::config()
            .database_url(format!("sqlite://{}", db.display()))
            .build()
            .unwrap(),
    )
    .unwrap();
    let emails: Vec<String> = (from..from + n)
        .map(|i| format!("cli{i}@x.example"))
        .collect();
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("cli", e)).collect();
    litedal::example::repo::Users::batch_insert(&database, &rows).unwrap();
}

fn user_count(db: &Path) -> i64 {
    let database = litedal::Database::open(
        litedal::example::config()
            .database_url(format!("sqlite://{}", db.display()))
            .build()
            .unwrap(),
    )
    .unwrap();
    litedal::example::repo::Users::count(&database).unwrap()
}

#[test]
fn checkpoint_backup_check_and_restore_commands() {
    let (dir, db) = migrated();
    add_users(&db, 0, 500);

    for mode in ["passive", "TRUNCATE"] {
        let out = litedal(&db, &[], &["checkpoint", "--mode", mode]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stdout(&out).contains("checkpoint"), "{}", stdout(&out));
    }
    let out = litedal(&db, &[], &["checkpoint", "--mode", "eager"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("PASSIVE, FULL, RESTART, TRUNCATE"),
        "{}",
        stderr(&out)
    );

    let out = litedal(&db, &[], &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "quick_check: ok");
    let out = litedal(&db, &[], &["check", "--full"]);
    assert_eq!(stdout(&out).trim(), "integrity_check: ok");

    let backup = dir.path().join("backups/main-1.db");
    let out = litedal(&db, &[], &["backup", backup.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("quick_check ok"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("backup: 100%"),
        "progress: {}",
        stderr(&out)
    );
    // Not over an existing file, unless asked.
    let out = litedal(&db, &[], &["backup", backup.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("main-1.db"), "{}", stderr(&out));
    let out = litedal(
        &db,
        &[],
        &["backup", backup.to_str().unwrap(), "--overwrite"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    add_users(&db, 500, 250);
    assert_eq!(user_count(&db), 750);
    let out = litedal(&db, &[], &["restore", backup.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("restored"), "{}", stdout(&out));
    assert_eq!(user_count(&db), 500, "the data is as at backup time");

    // A file that is not a backup is refused, and the database is left as it was.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    let out = litedal(&db, &[], &["restore", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(user_count(&db), 500);
}

#[test]
fn restore_is_refused_while_the_database_is_open() {
    let (dir, db) = migrated();
    add_users(&db, 0, 10);
    let backup = dir.path().join("b.db");
    assert!(
        litedal(&db, &[], &["backup", backup.to_str().unwrap()])
            .status
            .success()
    );
    let open = litedal::Database::open(
        litedal::example::config()
            .database_url(format!("sqlite://{}", db.display()))
            .build()
            .unwrap(),
    )
    .unwrap();
    let out = litedal(&db, &[], &["restore", backup.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("main.db"), "{}", stderr(&out));
    drop(open);
    let out = litedal(&db, &[], &["restore", backup.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn logs_go_to_stderr_plain_or_as_json_and_every_line_says_database() {
    let (_dir, db) = migrated();
    // RUST_LOG filters; stdout has only the command's own output.
    let out = litedal(&db, &[("RUST_LOG", "info")], &["stats", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let _: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is the JSON");
    let log = stderr(&out);
    assert!(!log.is_empty(), "no log lines at RUST_LOG=info");
    // Not a terminal: no colour codes.
    assert!(!log.contains('\u{1b}'), "{log}");
    for line in log.lines() {
        assert!(line.contains("Database"), "not greppable: {line}");
    }
    // JSON lines for log shippers.
    let out = litedal(
        &db,
        &[("RUST_LOG", "info"), ("DB_LOG_FORMAT", "json")],
        &["stats"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(!log.is_empty());
    for line in log.lines() {
        let json: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
        let message = json["fields"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("Database"), "{line}");
    }
    // Off is off; a bad format is a clear error naming the variable.
    let out = litedal(&db, &[("RUST_LOG", "off")], &["stats"]);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let out = litedal(&db, &[("DB_LOG_FORMAT", "xml")], &["stats"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("DB_LOG_FORMAT"), "{}", stderr(&out));
}
