//! Restore edge cases: a damaged target, leftovers of a deleted database, another process
//! holding either, the target's owner and mode, and symlinked targets.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use litedal::example::models::NewUser;
use litedal::example::repo::Users;
use litedal::maintenance::restore;
use litedal::{Database, Error, Overwrite};

const HOLD: &str = "LITEDAL_RESTORE_HOLD_DB";

fn open(path: &Path) -> Database {
    Database::open(
        litedal::example::config()
            .database_url(path.display().to_string())
            .checkpoint_interval(std::time::Duration::ZERO)
            .build()
            .unwrap(),
    )
    .unwrap()
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A database at `path` with `n` users, and a backup of it with those users, in `dir`.
fn database_and_backup(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let path = dir.join("main.db");
    let backup = dir.join("backup.db");
    let db = open(&path);
    let emails: Vec<String> = (0..n).map(|i| format!("r{i}@x.example")).collect();
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("r", e)).collect();
    Users::batch_insert(&db, &rows).unwrap();
    db.backup(&backup, Overwrite::Refuse).unwrap();
    // Rows that are not in the backup.
    Users::insert(&db, &NewUser::new("later", "later@x.example")).unwrap();
    (path, backup)
}

fn users_in(path: &Path) -> i64 {
    Users::count(&open(path)).unwrap()
}

/// Child: opens the database and keeps it open until its stdin closes.
fn hold(path: &str) {
    let db = open(Path::new(path));
    Users::count(&db).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    drop(out);
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn spawn_holder(test: &str, path: &Path) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(HOLD, path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap().ends_with("ready")),
        "the child did not start"
    );
    // Keep reading, so that the child's last lines do not meet a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

fn assert_refused(result: litedal::Result<litedal::RestoreReport>, dir: &Path) {
    match result {
        Err(err @ Error::Io { .. }) => {
            let Error::Io { path, source, .. } = &err else {
                unreachable!()
            };
            assert_eq!(source.kind(), std::io::ErrorKind::ResourceBusy, "{err}");
            assert!(path.starts_with(dir), "{err}");
            assert!(err.to_string().contains("main.db"), "{err}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn damage_header(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[..16].copy_from_slice(b"garbage garbage!");
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_target_is_restored_unless_a_process_has_it_open() {
    if let Ok(path) = std::env::var(HOLD) {
        hold(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let (path, backup) = database_and_backup(&dir, 20);

    // Another process has the database open when its header is overwritten.
    let mut child = spawn_holder(
        "a_damaged_target_is_restored_unless_a_process_has_it_open",
        &path,
    );
    damage_header(&path);
    assert_refused(restore(&backup, &path), &dir);
    assert!(path.exists());

    drop(child.stdin.take());
    child.wait().unwrap();
    let report = restore(&backup, &path).unwrap();
    assert!(report.replaced);
    assert_eq!(users_in(&path), 20);
}

#[test]
fn leftovers_of_a_deleted_database_are_removed_unless_a_process_still_uses_them() {
    if let Ok(path) = std::env::var(HOLD) {
        hold(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let (path, backup) = database_and_backup(&dir, 15);

    // A running process has the database open; then someone deletes the file ("the obvious
    // workaround" for a damaged database): its -wal and -shm are still in use.
    let mut child = spawn_holder(
        "leftovers_of_a_deleted_database_are_removed_unless_a_process_still_uses_them",
        &path,
    );
    std::fs::remove_file(&path).unwrap();
    assert!(sibling(&path, "-shm").exists());
    assert_refused(restore(&backup, &path), &dir);
    assert!(
        sibling(&path, "-shm").exists(),
        "the running process's files were removed"
    );
    assert!(!path.exists());

    drop(child.stdin.take());
    child.wait().unwrap();
    // SQLite removes -wal and -shm when the last connection closes; put stale ones back
    // (as a crashed process would leave them) to check they are cleared.
    std::fs::write(sibling(&path, "-wal"), b"stale").unwrap();
    std::fs::write(sibling(&path, "-shm"), b"stale").unwrap();
    let report = restore(&backup, &path).unwrap();
    assert!(!report.replaced);
    assert!(
        report.removed.contains(&sibling(&path, "-wal")),
        "{report:?}"
    );
    assert!(
        report.removed.contains(&sibling(&path, "-shm")),
        "{report:?}"
    );
    assert_eq!(users_in(&path), 15);
}

#[test]
fn the_restored_file_keeps_the_targets_owner_group_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (path, backup) = database_and_backup(dir.path(), 5);
    // SAFETY: plain libc getters.
    let root = unsafe { libc::geteuid() } == 0;
    let (uid, gid) = if root {
        (4242, 4343)
    } else {
        eprintln!("PARTIAL: not root, so only the mode is checked, not a change of owner");
        let meta = std::fs::metadata(&path).unwrap();
        (meta.uid(), meta.gid())
    };
    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let report = restore(&backup, &path).unwrap();
    assert!(report.replaced);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!(users_in(&path), 5);
}

#[test]
fn a_symlinked_target_is_restored_through_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let real_dir = dir.join("volume");
    std::fs::create_dir(&real_dir).unwrap();
    let (real, backup) = database_and_backup(&real_dir, 8);
    let link = dir.join("main.db");
    std::os::unix::fs::symlink("volume/main.db", &link).unwrap();
    assert_eq!(users_in(&real), 9);

    let report = restore(&backup, &link).unwrap();
    assert_eq!(report.target, real);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a regular file"
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("volume/main.db")
    );
    assert_eq!(users_in(&real), 8);
    assert_eq!(users_in(&link), 8);

    // A dangling link: the restored database is created where it points.
    let other = dir.join("other.db");
    std::os::unix::fs::symlink("volume/new.db", &other).unwrap();
    let report = restore(&backup, &other).unwrap();
    assert!(!report.replaced);
    assert_eq!(report.target, real_dir.join("new.db"));
    assert_eq!(users_in(&real_dir.join("new.db")), 8);
}
