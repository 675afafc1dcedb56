//! Hostile input, table-driven: each case names the exact outcome it expects and checks
//! that nothing was created or lost.

mod common;

use common::dir_entries;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::Command;

use diesel::prelude::*;
use litedal::Limit;
use litedal::example::models::NewUser;
use litedal::example::repo::{UserCursor, Users};
use litedal::{Config, Database, Error};

/// The kinds of value the configuration variables take.
#[derive(Clone, Copy, Debug)]
enum Kind {
    PoolSize,
    Bool,
    Seconds { min: u64 },
    Millis,
    Kib,
    MmapBytes,
    WalLimit,
    Pages,
    Synchronous,
    TempStore,
    CheckpointMode,
    Addr,
    HealthMillis,
    HealthPercent,
    HealthBytes,
    HealthSecs,
}

const VARIABLES: &[(&str, Kind)] = &[
    ("DB_POOL_SIZE", Kind::PoolSize),
    ("DB_READ_POOL_SIZE", Kind::PoolSize),
    ("DB_WRITE_POOL_SIZE", Kind::PoolSize),
    ("DB_SEPARATE_READ_WRITE", Kind::Bool),
    ("DB_ENABLE_WAL", Kind::Bool),
    ("DB_RUN_MIGRATIONS", Kind::Bool),
    ("DB_POOL_TIMEOUT", Kind::Seconds { min: 1 }),
    ("DB_CHECKPOINT_INTERVAL_SECS", Kind::Seconds { min: 0 }),
    ("DB_BUSY_TIMEOUT_MS", Kind::Millis),
    ("DB_SLOW_QUERY_MS", Kind::Millis),
    ("DB_CACHE_SIZE_KIB", Kind::Kib),
    ("DB_READ_CACHE_SIZE_KIB", Kind::Kib),
    ("DB_WRITE_CACHE_SIZE_KIB", Kind::Kib),
    ("DB_MMAP_SIZE", Kind::MmapBytes),
    ("DB_READ_MMAP_SIZE", Kind::MmapBytes),
    ("DB_WRITE_MMAP_SIZE", Kind::MmapBytes),
    ("DB_WAL_SIZE_LIMIT", Kind::WalLimit),
    ("DB_WAL_AUTOCHECKPOINT", Kind::Pages),
    ("DB_SYNCHRONOUS", Kind::Synchronous),
    ("DB_TEMP_STORE", Kind::TempStore),
    ("DB_WAL_CHECKPOINT_MODE", Kind::CheckpointMode),
    ("DB_METRICS_ADDR", Kind::Addr),
    ("DB_HEALTH_READ_LATENCY_MS", Kind::HealthMillis),
    ("DB_HEALTH_WRITE_LATENCY_MS", Kind::HealthMillis),
    ("DB_HEALTH_POOL_UTILIZATION", Kind::HealthPercent),
    ("DB_HEALTH_WAL_SIZE_BYTES", Kind::HealthBytes),
    ("DB_HEALTH_CHECKPOINT_AGE_SECS", Kind::HealthSecs),
];

/// Values every variable must refuse, whatever its kind.
const ALWAYS_BAD: &[&str] = &[
    "",
    "   ",
    "-1",
    "-0.5",
    "1e3",
    "NaN",
    "ten",
    "0x10",
    "1 000",
    "🦀",
    "'; DROP TABLE users; --",
];

/// Per kind: values it must accept and values it must refuse (on top of `ALWAYS_BAD`).
fn cases(kind: Kind) -> (Vec<&'static str>, Vec<&'static str>) {
    match kind {
        Kind::PoolSize => (
            vec!["1", "7", "1024", " 3 "],
            vec!["0", "1025", "99999999999999999999999"],
        ),
        Kind::Bool => (
            vec!["true", "FALSE", "True", "1", "0", "yes", "No", "ON", "off"],
            vec!["2", "truee", "y", "enable"],
        ),
        Kind::Seconds { min: 1 } => (vec!["1", "30", "3600"], vec!["0", "3601", "1.5", "30s"]),
        Kind::Seconds { .. } => (vec!["0", "30", "86400"], vec!["86401", "1.5", "30s"]),
        Kind::Millis => (vec!["0", "5000", "3600000"], vec!["3600001", "5s", "1.5"]),
        Kind::Kib => (vec!["0", "2000", "16777216"], vec!["16777217", "2MB"]),
        Kind::MmapBytes => (
            vec!["0", "268435456", "2147418112"],
            vec!["2147418113", "99999999999", "256MiB"],
        ),
        Kind::WalLimit => (
            vec!["1", "67108864", "1099511627776"],
            vec!["0", "1099511627777", "64MB"],
        ),
        Kind::Pages => (vec!["0", "1000", "1000000000"], vec!["1000000001", "1k"]),
        Kind::Synchronous => (
            vec!["off", "NORMAL", "Full", "extra"],
            vec!["fast", "2", "normal;"],
        ),
        Kind::TempStore => (vec!["default", "FILE", "Memory"], vec!["disk", "2"]),
        Kind::CheckpointMode => (
            vec!["passive", "FULL", "Restart", "truncate"],
            vec!["eager", "0"],
        ),
        Kind::Addr => (
            vec!["127.0.0.1:8081", "[::1]:0", "0.0.0.0:9000"],
            vec![
                "localhost",
                "localhost:8081",
                "127.0.0.1",
                "127.0.0.1:99999",
                "http://127.0.0.1:8081",
            ],
        ),
        Kind::HealthMillis => (
            vec!["100", "100,1000", "off", "OFF,5000", "0,0", "3600000"],
            vec!["1000,100", "1,2,3", "3600001", "100,", "fast"],
        ),
        Kind::HealthPercent => (
            vec!["90", "90,off", "0,100", "Off"],
            vec!["101", "90,80", "50%", "0.5"],
        ),
        Kind::HealthSecs => (
            vec!["120", "60,600", "off", "1,604800"],
            vec!["0", "604801", "600,60", "2m"],
        ),
        Kind::HealthBytes => (
            vec!["1", "67108864,268435456", "off", "4398046511104"],
            vec!["0", "4398046511105", "64MB", "2,1"],
        ),
    }
}

#[test]
fn every_configuration_variable_refuses_bad_values_and_opens_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/never.db", dir.path().display());
    let mut tried = 0;
    for (var, kind) in VARIABLES {
        let (good, bad) = cases(*kind);
        for value in ALWAYS_BAD.iter().chain(&bad) {
            tried += 1;
            let result = Config::from_vars([("DATABASE_URL", url.as_str()), (var, value)])
                .and_then(Database::open);
            match result {
                Err(Error::Config {
                    var: got,
                    value: shown,
                    reason,
                }) => {
                    assert_eq!(got, *var, "{var}={value:?}");
                    assert_eq!(shown.trim(), value.trim(), "{var}={value:?}");
                    assert!(!reason.is_empty());
                }
                other => panic!("{var}={value:?}: expected Error::Config, got {other:?}"),
            }
        }
        for value in good {
            tried += 1;
            // Acknowledged: the accepted values include unsafe ones (DB_SYNCHRONOUS=off).
            let config = Config::from_vars([
                ("DATABASE_URL", url.as_str()),
                (var, value),
                ("DB_ALLOW_UNSAFE_SETTINGS", "true"),
            ]);
            assert!(config.is_ok(), "{var}={value:?}: {config:?}");
        }
        // Not UTF-8.
        tried += 1;
        let bytes = OsString::from_vec(vec![b'1', 0xff, 0xfe]);
        match Config::from_vars([(OsString::from(var), bytes)]) {
            Err(Error::Config {
                var: got, reason, ..
            }) => {
                assert_eq!(got, *var);
                assert!(reason.contains("UTF-8"), "{reason}");
            }
            other => panic!("{var} non-UTF-8: {other:?}"),
        }
    }
    assert!(
        dir_entries(dir.path()).is_empty(),
        "a refused configuration created files"
    );
    eprintln!("{tried} configuration values tried");
}

#[test]
fn database_urls_that_cannot_work_are_refused_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "mongodb://h/db",
        "redis://h",
        "libsql://x.turso.io",
        "postgresql://u:pw@h/db",
        "ftp://h/x.db",
        "HTTP://x",
    ] {
        assert!(
            matches!(
                Config::from_vars([("DATABASE_URL", url)]),
                Err(Error::UnsupportedUrl { .. })
            ),
            "{url}"
        );
    }
    for url in [
        "",
        " ",
        "sqlite://",
        "sqlite:",
        "file:",
        "file://remote-host/x.db",
        "file:x.db%00",
        "bad\0url",
    ] {
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
    // A directory instead of a file.
    let err = Database::open(
        Config::from_vars([("DATABASE_URL", dir.path().display().to_string())]).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    // A path whose parent is a file.
    let file = dir.path().join("plain.txt");
    std::fs::write(&file, "x").unwrap();
    let err = Database::open(
        Config::from_vars([("DATABASE_URL", format!("{}/sub/x.db", file.display()))]).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("plain.txt"), "{err}");
    assert_eq!(dir_entries(dir.path()), vec!["plain.txt"]);
}

/// Makes `path` unwritable for this process: chmod when not root; `chattr +i` as root (root
/// ignores permission bits). Returns false when neither works here.
fn make_unwritable(path: &Path) -> bool {
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let mode = if path.is_dir() { 0o555 } else { 0o444 };
        return std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).is_ok();
    }
    Command::new("chattr")
        .arg("+i")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

fn make_writable(path: &Path) {
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
    } else {
        let _ = Command::new("chattr").arg("-i").arg(path).status();
    }
}

#[test]
fn a_path_under_a_read_only_directory_is_a_clear_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    if !make_unwritable(&locked) {
        eprintln!("SKIPPED: cannot make a directory read-only on this file system");
        return;
    }
    let result = Database::open(
        Config::from_vars([(
            "DATABASE_URL",
            format!("sqlite://{}/data/main.db", locked.display()),
        )])
        .unwrap(),
    );
    make_writable(&locked);
    match result {
        Err(Error::Io { path, .. }) => assert!(path.starts_with(&locked), "{}", path.display()),
        other => panic!("{other:?}"),
    }
    assert!(dir_entries(&locked).is_empty());
}

#[test]
fn a_read_only_database_file_is_refused_and_kept() {
    let test_db = litedal::example::test_db().unwrap();
    Users::insert(test_db.db(), &NewUser::new("kept", "kept@x.example")).unwrap();
    let path = test_db.path().to_path_buf();
    let keep_dir = path.parent().unwrap().to_path_buf();
    drop(test_db.keep());
    let before = std::fs::read(&path).unwrap();
    if !make_unwritable(&path) {
        eprintln!("SKIPPED: cannot make a file read-only on this file system");
        std::fs::remove_dir_all(&keep_dir).unwrap();
        return;
    }
    let result =
        Database::open(Config::from_vars([("DATABASE_URL", path.display().to_string())]).unwrap());
    make_writable(&path);
    match result {
        Err(Error::ReadOnly { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file changed");
    std::fs::remove_dir_all(&keep_dir).unwrap();
}

fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// A real litedal database file, closed, with one user in it.
fn real_database_bytes() -> Vec<u8> {
    let test_db = litedal::example::test_db().unwrap();
    Users::insert(test_db.db(), &NewUser::new("real", "real@x.example")).unwrap();
    let path = test_db.path().to_path_buf();
    let dir = path.parent().unwrap().to_path_buf();
    drop(test_db.keep()); // closes the pools: the WAL is checkpointed into the file
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    bytes
}

#[test]
fn files_that_are_not_sqlite_are_refused_and_left_untouched() {
    let real = real_database_bytes();
    assert!(real.len() > 8192, "{}", real.len());
    let mut header_only = real[..100].to_vec();
    header_only.extend(random_bytes(4000, 7));
    let mut bad_magic = real.clone();
    bad_magic[0] = b'X';
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", random_bytes(64 * 1024, 42)),
        (
            "a text file",
            b"name,email\nada,ada@example.com\n".repeat(200),
        ),
        ("a short text file", b"hello\n".to_vec()),
        ("truncated to 50 bytes", real[..50].to_vec()),
        ("truncated to its first page", real[..4096].to_vec()),
        ("truncated to half", real[..real.len() / 2].to_vec()),
        ("a header and garbage", header_only),
        ("a damaged header", bad_magic),
    ];
    for (what, bytes) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.db");
        std::fs::write(&path, &bytes).unwrap();
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        let result = Database::open(
            Config::from_vars([("DATABASE_URL", path.display().to_string())]).unwrap(),
        );
        // A file that is not SQLite at all is NotADatabase; one that starts like SQLite but is
        // damaged is Corrupt. Either names the file.
        match result {
            Err(Error::NotADatabase { path: p, .. }) => assert_eq!(p, path, "{what}"),
            Err(Error::Corrupt { path: p, .. }) => assert_eq!(p, Some(path.clone()), "{what}"),
            other => panic!("{what}: expected NotADatabase or Corrupt, got {other:?}"),
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{what}: the file changed"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            modified,
            "{what}"
        );
        assert_eq!(
            dir_entries(dir.path()),
            vec!["main.db"],
            "{what}: stray files"
        );
    }
}

#[test]
fn hostile_strings_round_trip_exactly() {
    let db = litedal::example::test_db().unwrap();
    let megabyte: String = "0123456789abcdef".repeat(65_536);
    let values = [
        "'; DROP TABLE users; --".to_owned(),
        "Robert'); DELETE FROM posts; --".to_owned(),
        "quotes ' \" ` and backslash \\".to_owned(),
        "nul \0 in the middle".to_owned(),
        "\0".to_owned(),
        "emoji 🦀🚀 and RTL \u{202e}txet".to_owned(),
        "%_ LIKE wildcards %".to_owned(),
        "line\nbreaks\r\nand\ttabs".to_owned(),
        String::new(),
        megabyte,
    ];
    let mut stored = 0;
    for (i, value) in values.iter().enumerate() {
        let email = format!("{value}#{i}@x.example");
        // Names and emails with control characters (NUL, line breaks) or no text are refused
        // before anything is written; everything else is stored exactly (emails lowercased).
        let refused = value.trim().is_empty() || value.chars().any(char::is_control);
        match Users::insert(db.db(), &NewUser::new(value, &email)) {
            Err(Error::InvalidInput { what, .. }) if refused => {
                assert_eq!(what, "users.name", "case {i}");
                continue;
            }
            Err(other) => panic!("case {i}: {other:?}"),
            Ok(user) => {
                assert!(!refused, "case {i}: {value:?} was accepted");
                let back = Users::find(db.db(), user.id).unwrap().unwrap();
                assert_eq!(&back.name, value, "case {i}");
                assert_eq!(back.email, email.to_lowercase(), "case {i}");
                assert_eq!(
                    Users::find_by_email(db.db(), &email).unwrap().map(|u| u.id),
                    Some(user.id),
                    "case {i}"
                );
                stored += 1;
            }
        }
    }
    assert_eq!(stored, 6, "the printable values were all stored");
    assert_eq!(Users::count(db.db()).unwrap(), stored);
    // The injection attempts are data, not SQL: both tables are intact.
    let posts: i64 = db
        .read(|conn| {
            Ok(litedal::example::schema::posts::table
                .count()
                .get_result(conn)?)
        })
        .unwrap();
    assert_eq!(posts, 0);
    // A prefix filter with wildcards and quotes matches literally.
    let found = Users::query().name_prefix("%_ LIKE").load(db.db()).unwrap();
    assert_eq!(found.len(), 1);
    let found = Users::query().name_prefix("'; DROP").load(db.db()).unwrap();
    assert_eq!(found.len(), 1);
}

#[test]
fn limits_and_cursors_out_of_range_are_typed_errors() {
    for n in [0u32, 1001, 5000, u32::MAX] {
        assert!(
            matches!(
                Limit::new(n),
                Err(Error::InvalidInput { what: "limit", .. })
            ),
            "{n}"
        );
    }
    for n in [i64::MIN, -1, 0, 1001, i64::MAX] {
        assert!(Limit::try_from(n).is_err(), "{n}");
    }
    for token in [
        "",
        "abc",
        "1",
        "_",
        "1_",
        "_2",
        "1_2_3",
        "-1_-1",
        "1_-1",
        "99999999999999999999_1",
        "1_99999999999999999999",
        "8640000000000001_1",
    ] {
        assert!(
            matches!(
                UserCursor::from_token(token),
                Err(Error::InvalidInput { .. })
            ),
            "{token:?}"
        );
    }
    // A valid cursor far beyond the data is an empty page, not an error.
    let db = litedal::example::test_db().unwrap();
    Users::insert(db.db(), &NewUser::new("a", "a@x.example")).unwrap();
    let far = UserCursor::from_token("253402300799000_9223372036854775807").unwrap();
    let page = Users::query().after(far).page(db.db()).unwrap();
    assert!(page.items.is_empty() && page.next.is_none());
}

#[test]
fn uri_modes_spaces_and_sqlite_memory_spelling() {
    let dir = tempfile::tempdir().unwrap();
    // mode=rw and mode=ro never create a missing file (SQLite's own rule): a mistyped path
    // must not become a new, empty production database.
    for mode in ["rw", "ro"] {
        let url = format!(
            "file:{}/missing-{mode}.db?mode={mode}",
            dir.path().display()
        );
        let err = Database::open(Config::from_vars([("DATABASE_URL", url.as_str())]).unwrap())
            .unwrap_err();
        match &err {
            Error::Io { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound, "{err}")
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    assert!(dir_entries(dir.path()).is_empty());
    // An existing file opens with mode=rw.
    let path = dir.path().join("exists.db");
    drop(
        Database::open(Config::from_vars([("DATABASE_URL", path.display().to_string())]).unwrap())
            .unwrap(),
    );
    let rw = format!("file:{}?mode=rw", path.display());
    Database::open(Config::from_vars([("DATABASE_URL", rw.as_str())]).unwrap()).unwrap();

    // Surrounding spaces are trimmed, as for every variable.
    let padded = format!("  sqlite://{}/padded.db \t", dir.path().display());
    let db =
        Database::open(Config::from_vars([("DATABASE_URL", padded.as_str())]).unwrap()).unwrap();
    assert_eq!(db.path().unwrap(), dir.path().join("padded.db"));
    drop(db);

    // SQLite's own in-memory spelling is an in-memory database, not a file named ":memory:".
    for url in ["file::memory:", "file::memory:?cache=shared"] {
        let db = Database::open(Config::from_vars([("DATABASE_URL", url)]).unwrap()).unwrap();
        assert!(db.path().is_none(), "{url}");
    }
    assert!(!std::path::Path::new(":memory:").exists());

    // A builder value past the accepted range names its own setting.
    assert!(matches!(
        litedal::example::config().wal_size_limit(u64::MAX).build(),
        Err(Error::Config {
            var: "DB_WAL_SIZE_LIMIT",
            ..
        })
    ));
}

/// What the sweep below counts: every input tried ends in a typed error, is accepted, or
/// (never) panics or hangs.
#[derive(Debug, Default)]
struct Tally {
    tried: usize,
    errors: usize,
    accepted: Vec<String>,
    panics: Vec<String>,
    hangs: Vec<String>,
}

/// How long one input may take before it counts as a hang.
const INPUT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

impl Tally {
    /// Runs `f` on a thread of its own with a deadline; `Ok(true)` from it is accepted,
    /// `Ok(false)` a typed error.
    fn run(&mut self, what: String, f: impl FnOnce() -> bool + Send + 'static) {
        self.tried += 1;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(outcome);
        });
        match rx.recv_timeout(INPUT_DEADLINE) {
            Ok(Ok(true)) => self.accepted.push(what),
            Ok(Ok(false)) => self.errors += 1,
            Ok(Err(_)) => self.panics.push(what),
            Err(_) => self.hangs.push(what),
        }
    }
}

/// Opening with `vars`: accepted, or refused with one of litedal's typed errors (every
/// `Error` is one; `Error::Database` only wraps what SQLite reported).
fn opens(vars: Vec<(OsString, OsString)>) -> bool {
    match Config::from_vars(vars).and_then(Database::open) {
        Ok(_) => true,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            false
        }
    }
}

#[path = "../examples/web.rs"]
#[allow(dead_code)]
mod web;

/// One raw HTTP request to the web example's router; the status.
fn web_status(addr: std::net::SocketAddr, request: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(INPUT_DEADLINE)).unwrap();
    let _ = stream.write_all(request);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(json["error"].is_string() || status < 300, "{status} {body}");
    status
}

/// The hostile-input sweep a reviewer runs as one command (`cargo test --test hostile_input`,
/// see RELIABILITY.md): environment values for every variable, URLs, file names, database
/// files and HTTP bodies for the web example, each on a thread with a deadline. Each ends in
/// a typed error (or is accepted); none panics or hangs. The counts are printed.
#[test]
fn hostile_inputs_end_in_typed_errors_never_a_panic_or_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    let mut tally = Tally::default();
    let os = |s: &str| OsString::from(s);

    // Environment values, for every variable litedal reads.
    let huge = "9".repeat(100_000);
    let values: Vec<OsString> = vec![
        os(""),
        os(" "),
        os("-1"),
        os("-99999999999999999999"),
        os(&huge),
        OsString::from_vec(b"\0".to_vec()),
        OsString::from_vec(b"1\0".to_vec()),
        OsString::from_vec(vec![0xff, 0xfe, b'1']),
        os("🦀"),
        os("\u{202e}1"),
        os("1\n2"),
    ];
    for (i, (var, _, _)) in litedal::config::ENV_VARS.iter().enumerate() {
        if *var == "DATABASE_URL" {
            // Its values are paths: tried below, inside the temporary directory.
            continue;
        }
        for (j, value) in values.iter().enumerate() {
            let url = os(&format!("sqlite://{}/env-{i}-{j}.db", base.display()));
            let mut vars = vec![(os("DATABASE_URL"), url)];
            vars.push((os(var), value.clone()));
            tally.run(format!("{var}={value:?}"), move || opens(vars));
        }
    }

    // URLs and file names.
    std::fs::create_dir(base.join("a-directory")).unwrap();
    std::os::unix::fs::symlink(base.join("loop"), base.join("loop")).unwrap();
    let device = base.join("null-device");
    let have_device = Command::new("mknod")
        .arg(&device)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    let mut urls: Vec<String> = vec![
        String::new(),
        "\0".into(),
        "sqlite://".into(),
        "sqlite:".into(),
        "file:".into(),
        "mysql://u:p@h/db".into(),
        "postgres://u:p@256.0.0.1:1/db".into(),
        format!("sqlite://{}/a-directory", base.display()),
        format!("sqlite://{}/loop", base.display()),
        format!("sqlite://{}/loop/x.db", base.display()),
        format!("sqlite://{}/line\nbreak.db", base.display()),
        format!("sqlite://{}/{}", base.display(), "n".repeat(5000)),
        format!("sqlite://{}/missing/dirs/x.db", base.display()),
        format!("file:{}/x.db?mode=ro", base.display()),
        format!("file:{}/x.db?vfs=nope", base.display()),
        format!("{}/nul\0.db", base.display()),
    ];
    if have_device {
        urls.push(format!("sqlite://{}", device.display()));
    }
    for url in urls {
        let vars = vec![(os("DATABASE_URL"), os(&url))];
        tally.run(format!("DATABASE_URL={url:?}"), move || opens(vars));
    }

    // Database files.
    let real = real_database_bytes();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("zero-length", Vec::new()),
        ("random", random_bytes(65_536, 7)),
        ("random-small", random_bytes(17, 9)),
        ("header-only", real[..16].to_vec()),
        ("truncated-header", real[..50].to_vec()),
        ("one-page", real[..4096.min(real.len())].to_vec()),
        ("half", real[..real.len() / 2].to_vec()),
        ("header-then-garbage", {
            let mut v = real[..100].to_vec();
            v.extend(random_bytes(8192, 3));
            v
        }),
    ];
    for (name, bytes) in files {
        let path = base.join(format!("{name}.db"));
        std::fs::write(&path, bytes).unwrap();
        let vars = vec![(os("DATABASE_URL"), path.into_os_string())];
        tally.run(format!("file {name}"), move || opens(vars));
    }

    // HTTP bodies for the web example.
    let db = litedal::example::test_db_with(|b| b.busy_timeout(std::time::Duration::from_secs(30)))
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let router = web::router(db.db().clone());
    runtime.spawn(async move { axum::serve(listener, router).await });
    let post = |path: &str, content_type: &str, body: &[u8]| {
        let mut r = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    let json = "application/json";
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let big_name = format!(
        r#"{{"name":"{}","email":"b@x.example"}}"#,
        "x".repeat(200_000)
    );
    let requests: Vec<(String, Vec<u8>)> = vec![
        ("malformed".into(), post("/users", json, b"{nope")),
        (
            "truncated".into(),
            post("/users", json, br#"{"name":"A","email":"#),
        ),
        ("empty".into(), post("/users", json, b"")),
        ("null".into(), post("/users", json, b"null")),
        ("array".into(), post("/users", json, b"[1,2,3]")),
        (
            "wrong types".into(),
            post("/users", json, br#"{"name":1,"email":true}"#),
        ),
        (
            "NUL name".into(),
            post(
                "/users",
                json,
                br#"{"name":"\u0000","email":"n@x.example"}"#,
            ),
        ),
        (
            "NUL in name".into(),
            post(
                "/users",
                json,
                br#"{"name":"a\u0000b","email":"m@x.example"}"#,
            ),
        ),
        (
            "blank name".into(),
            post("/users", json, br#"{"name":" \t ","email":"o@x.example"}"#),
        ),
        (
            "NUL email".into(),
            post(
                "/users",
                json,
                br#"{"name":"A","email":"a\u0000@x.example"}"#,
            ),
        ),
        (
            "invalid UTF-8".into(),
            post("/users", json, b"{\"name\":\"\xff\xfe\",\"email\":\"u@x\"}"),
        ),
        (
            "lone surrogate".into(),
            post(
                "/users",
                json,
                br#"{"name":"\ud800","email":"s@x.example"}"#,
            ),
        ),
        ("deep nesting".into(), post("/users", json, deep.as_bytes())),
        ("huge".into(), post("/users", json, big_name.as_bytes())),
        (
            "text/plain".into(),
            post(
                "/users",
                "text/plain",
                br#"{"name":"A","email":"t@x.example"}"#,
            ),
        ),
        (
            "post wrong types".into(),
            post("/users/1/posts", json, br#"{"title":[],"body":{}}"#),
        ),
        (
            "post huge id".into(),
            post(
                "/users/99999999999999999999/posts",
                json,
                br#"{"title":"t","body":"b"}"#,
            ),
        ),
        (
            "bad cursor".into(),
            b"GET /users/1/posts?cursor=%00%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                .to_vec(),
        ),
        (
            "bad limit".into(),
            b"GET /users/1/posts?limit=-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                .to_vec(),
        ),
    ];
    for (what, request) in requests {
        tally.run(format!("HTTP {what}"), move || {
            let status = web_status(addr, &request);
            assert!((400..500).contains(&status), "{status}");
            false
        });
    }

    eprintln!(
        "hostile inputs: {} tried, {} typed errors, {} accepted, {} panics, {} hangs",
        tally.tried,
        tally.errors,
        tally.accepted.len(),
        tally.panics.len(),
        tally.hangs.len()
    );
    eprintln!("accepted: {:?}", tally.accepted);
    assert!(tally.panics.is_empty(), "panicked: {:?}", tally.panics);
    assert!(tally.hangs.is_empty(), "hung: {:?}", tally.hangs);
}
