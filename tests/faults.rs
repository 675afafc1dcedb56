//! Failure injection: a writer that runs out of space must get a clear error, and the
//! database must stay consistent with every committed row.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use litedal::example::models::NewUser;
use litedal::example::repo::Users;
use litedal::{CheckDepth, Database, Error};

/// Child: caps its file size with RLIMIT_FSIZE, then commits users until a write fails.
fn run_child(path: &str, limit: u64) {
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
    let db = Database::open(
        litedal::example::config()
            .database_url(path)
            .build()
            .unwrap(),
    )
    .unwrap();
    let name = "x".repeat(2000);
    for i in 0.. {
        let email = format!("full{i}@x.example");
        match Users::insert(&db, &NewUser::new(&name, &email)) {
            Ok(_) => println!("COMMITTED {email}"),
            Err(e) => {
                println!("ERROR {e:?}");
                return;
            }
        }
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_loses_nothing() {
    if let Ok(path) = std::env::var("LITEDAL_CHILD_FULL_DB") {
        let limit = std::env::var("LITEDAL_CHILD_FSIZE")
            .unwrap()
            .parse()
            .unwrap();
        run_child(&path, limit);
        return;
    }
    let test_db = litedal::example::test_db().unwrap();
    let emails: Vec<String> = (0..500).map(|i| format!("base{i}@x.example")).collect();
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("base", e)).collect();
    Users::batch_insert(test_db.db(), &rows).unwrap();
    let path = test_db.path().to_path_buf();
    let dir = path.parent().unwrap().to_path_buf();
    drop(test_db.keep());
    let size = std::fs::metadata(&path).unwrap().len();

    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_full_disk_is_a_clear_error_and_loses_nothing",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LITEDAL_CHILD_FULL_DB", &path)
        .env("LITEDAL_CHILD_FSIZE", (size + 512 * 1024).to_string())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed: {stdout}");
    let committed: BTreeSet<String> = stdout
        .lines()
        .filter_map(|l| l.find("COMMITTED ").map(|i| l[i + 10..].to_owned()))
        .collect();
    let error = stdout
        .lines()
        .find_map(|l| l.find("ERROR ").map(|i| &l[i + 6..]))
        .unwrap_or_else(|| panic!("the child never hit the limit: {stdout}"));
    assert!(!committed.is_empty());
    assert!(
        error.starts_with("DiskFull") || error.contains("disk I/O error"),
        "unclear error: {error}"
    );

    let db = common::open_example(&path);
    assert!(db.integrity_check(CheckDepth::Full).unwrap().is_empty());
    assert_eq!(Users::count(&db).unwrap(), 500 + committed.len() as i64);
    for email in emails.iter().chain(&committed) {
        assert!(
            Users::find_by_email(&db, email).unwrap().is_some(),
            "{email} lost"
        );
    }
    eprintln!("disk full after {} commits: {error}", committed.len());
    drop(db);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Unmounts the test file system when dropped, also when the test panics.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_file_system_is_error_disk_full_and_loses_nothing() {
    // A 2 MiB tmpfs gives a real ENOSPC (SQLITE_FULL). Mounting needs root and the mount
    // capability; where the machine refuses, the RLIMIT_FSIZE test above still runs.
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(dir.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here");
        return;
    }
    let _mount = Mount(dir.path().to_path_buf());
    let path = dir.path().join("full.db");
    let db = common::open_example(&path);
    let name = "y".repeat(4000);
    let mut committed = Vec::new();
    let error = loop {
        let email = format!("fs{}@x.example", committed.len());
        match Users::insert(&db, &NewUser::new(&name, &email)) {
            Ok(_) => committed.push(email),
            Err(e) => break e,
        }
        assert!(committed.len() < 10_000, "2 MiB never filled up");
    };
    assert!(matches!(error, Error::DiskFull { .. }), "{error:?}");
    assert!(error.to_string().contains("full"), "{error}");
    // The failed transaction left nothing behind, the rest is intact and readable.
    assert!(db.integrity_check(CheckDepth::Full).unwrap().is_empty());
    assert_eq!(Users::count(&db).unwrap(), committed.len() as i64);
    drop(db);
    let db = Database::open(
        litedal::example::config()
            .database_url(path.display().to_string())
            .build()
            .unwrap(),
    );
    // Reopening may itself need space (the WAL index); either it works and every row is
    // there, or it says the disk is full.
    match db {
        Ok(db) => {
            for email in &committed {
                assert!(
                    Users::find_by_email(&db, email).unwrap().is_some(),
                    "{email} lost"
                );
            }
        }
        Err(e) => assert!(matches!(e, Error::DiskFull { .. }), "{e:?}"),
    }
    eprintln!("tmpfs full after {} commits: {error}", committed.len());
}
