//! Operations while another connection holds the write lock past the busy timeout: opening,
//! reads, statistics, health, checks, backups and the metrics endpoint all work (only writes
//! wait, then fail with `Busy`); and `litedal health --json` always prints a full report,
//! also for a database that cannot be opened.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use litedal::example::models::NewUser;
use litedal::example::repo::Users;
use litedal::{CheckDepth, CheckpointMode, Database, Error, HealthStatus, Overwrite};

const BUSY_MS: &str = "500";

/// A database with a few users, closed again; its path.
fn populated(dir: &Path) -> PathBuf {
    let path = dir.join("main.db");
    let db = common::open_example(&path);
    let emails: Vec<String> = (0..20).map(|i| format!("c{i}@x.example")).collect();
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("c", e)).collect();
    Users::batch_insert(&db, &rows).unwrap();
    path
}

/// Another connection, outside litedal, holding the write lock until dropped.
fn hold_write_lock(path: &Path) -> SqliteConnection {
    let mut holder = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    holder.batch_execute("BEGIN IMMEDIATE").unwrap();
    holder
}

fn litedal(path: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_litedal"))
        .env_clear()
        .env("DATABASE_URL", path)
        .env("DB_BUSY_TIMEOUT_MS", BUSY_MS)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn everything_but_writes_works_while_another_connection_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = populated(dir.path());
    let holder = hold_write_lock(&path);

    // Opening (with the migrations given: none is pending, so none needs the lock).
    let db = Database::open(
        litedal::example::config()
            .database_url(path.display().to_string())
            .busy_timeout(Duration::from_millis(500))
            .metrics_addr(Some("127.0.0.1:0".parse().unwrap()))
            .build()
            .unwrap(),
    )
    .expect("open while another connection holds the write lock");
    assert_eq!(Users::count(&db).unwrap(), 20);
    assert_eq!(db.read(|conn| Users::count(conn)).unwrap(), 20);
    let stats = db.connection_stats();
    assert!(stats.files.unwrap().page_count.unwrap() > 1);
    assert!(db.integrity_check(CheckDepth::Quick).unwrap().is_empty());
    let backup = dir.path().join("backup.db");
    db.backup(&backup, Overwrite::Refuse).unwrap();
    db.checkpoint(CheckpointMode::Passive).unwrap();

    // Health: the read checks pass, the write check says what is wrong.
    let report = db.health();
    assert_eq!(report.status, HealthStatus::Unhealthy);
    let write = report.check("write_latency").unwrap();
    assert_eq!(write.status, HealthStatus::Unhealthy);
    assert!(
        write.detail.contains("write lock is held"),
        "{}",
        write.detail
    );
    assert_eq!(
        report.check("read_latency").unwrap().status,
        HealthStatus::Healthy,
        "{report:?}"
    );
    let addr = db.metrics_addr().unwrap();
    let (status, body) = common::http_get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("litedal_pool_connections"), "{body}");
    let (status, body) = common::http_get(addr, "/health");
    assert_eq!(status, 503);
    assert!(body.contains("write lock is held"), "{body}");

    // Writes wait for the busy timeout, then fail with Busy, as before.
    let write = Users::insert(&db, &NewUser::new("late", "late@x.example"));
    assert!(matches!(write, Err(Error::Busy)), "{write:?}");

    // The CLI's read-only commands, in other processes.
    for args in [
        vec!["health", "--json"],
        vec!["stats"],
        vec!["check"],
        vec!["checkpoint"],
        vec!["backup", dir.path().join("cli-backup.db").to_str().unwrap()],
    ] {
        let out = litedal(&path, &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected = if args[0] == "health" { 2 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{args:?}: {stdout}\n{stderr}"
        );
        assert!(!stderr.contains("litedal: error"), "{args:?}: {stderr}");
        if args[0] == "health" {
            let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(json["status"], "unhealthy");
            let checks = json["checks"].as_array().unwrap();
            let read = checks.iter().find(|c| c["name"] == "read_latency").unwrap();
            assert_eq!(read["status"], "healthy", "{stdout}");
        }
    }
    // serve-metrics answers too.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_litedal"))
        .env_clear()
        .env("DATABASE_URL", &path)
        .env("DB_BUSY_TIMEOUT_MS", BUSY_MS)
        .args(["serve-metrics", "--addr", &addr.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let answered = (0..200).find_map(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(addr)
            .ok()
            .map(|_| common::http_get(addr, "/metrics"))
    });
    server.kill().unwrap();
    server.wait().unwrap();
    let (status, body) = answered.expect("serve-metrics never listened");
    assert_eq!(status, 200);
    assert!(body.contains("litedal_"), "{body}");

    drop(holder);
    Users::insert(&db, &NewUser::new("late", "late@x.example")).unwrap();
}

#[test]
fn health_json_is_a_full_report_for_a_database_that_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let not_sqlite = dir.path().join("notes.txt");
    std::fs::write(
        &not_sqlite,
        "not a database, just text long enough for a header",
    )
    .unwrap();
    let missing = dir.path().join("missing.db");
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        ("not a database", not_sqlite, "not an SQLite database"),
        ("missing", missing, "no such file"),
    ];
    for (what, path, expected) in cases {
        let out = litedal(&path, &["health", "--json"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{what}: {stdout}");
        let json: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{what}: {e}: {stdout:?}"));
        assert_eq!(json["status"], "unhealthy", "{what}");
        let checks = json["checks"].as_array().unwrap();
        let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "read_latency",
                "write_latency",
                "pool_utilization",
                "wal_size",
                "journal_mode"
            ],
            "{what}"
        );
        for check in checks {
            assert_eq!(check["status"], "unhealthy", "{what}");
            assert!(
                check["detail"].as_str().unwrap().contains(expected),
                "{what}: {check}"
            );
        }
        // The same keys as a running database's report.
        assert!(json.get("checked_at").is_some());
        for key in ["name", "status", "value", "unit", "threshold", "detail"] {
            assert!(checks[0].get(key).is_some(), "{what}: no {key}");
        }
        // The text form says the same.
        let out = litedal(&path, &["health"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stdout).contains(expected));
    }
}
