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

/// The tests of this file one at a time: the racing children spin a core each, and a
/// database dropped under that load can still be closing (r2d2's threads let go of its
/// pool a moment later) when the next test's restore asks who holds a file.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

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
    let _serial = serial();
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
    let _serial = serial();
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
    let _serial = serial();
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
    let _serial = serial();
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

const RACE_DIR: &str = "LITEDAL_RACE_DIR";
const RACE_VICTIM: &str = "LITEDAL_RACE_VICTIM";
const RACE_NAME: &str = "LITEDAL_RACE_NAME";
/// The unprivileged service account of the race tests (`nobody` on Debian).
const NOBODY: u32 = 65534;

fn euid() -> u32 {
    // SAFETY: a plain libc getter.
    unsafe { libc::geteuid() }
}

/// Child: the service account's attack on a restore or backup run as root into a directory
/// it owns. As uid `NOBODY` it watches `dir` for what litedal creates for `name` and swaps
/// it: a temporary file (litedal's old way) for a symlink to the victim; a private directory
/// (it cannot enter one, but it can rename it, since it owns `dir`) for one of its own with a
/// symlink named `name` to the victim. Runs until `dir/stop` exists (at most 60 s), then prints its count.
fn race(dir: &Path, victim: &Path, name: &str) {
    // SAFETY: plain libc calls; the harness runs this child with one test thread.
    unsafe {
        assert_eq!(libc::setgid(NOBODY), 0);
        assert_eq!(libc::setuid(NOBODY), 0);
    }
    println!("ready");
    let prefix = format!(".{name}.");
    let (mut swaps, mut n) = (0u64, 0u64);
    // Bounded, so a parent that failed before writing `stop` leaves no spinning child.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !dir.join("stop").exists() && std::time::Instant::now() < deadline {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(&prefix) {
                continue;
            }
            let path = entry.path();
            match entry.file_type() {
                Ok(kind)
                    if kind.is_file()
                        && std::fs::remove_file(&path).is_ok()
                        && std::os::unix::fs::symlink(victim, &path).is_ok() =>
                {
                    swaps += 1;
                }
                Ok(kind) if kind.is_dir() => {
                    n += 1;
                    if std::fs::rename(&path, dir.join(format!("stolen-{n}"))).is_ok() {
                        swaps += 1;
                        if std::fs::create_dir(&path).is_ok() {
                            let _ = std::os::unix::fs::symlink(victim, path.join(name));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    println!("swaps {swaps}");
}

/// Starts [`race`] in a child process; returns it and the receiver of its last line.
fn spawn_racer(
    test: &str,
    dir: &Path,
    victim: &Path,
    name: &str,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(RACE_DIR, dir)
        .env(RACE_VICTIM, victim)
        .env(RACE_NAME, name)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap().ends_with("ready")),
        "the racer did not start"
    );
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Some(at) = line.find("swaps ") {
                let _ = send.send(line[at..].to_owned());
            }
        }
    });
    (child, receive)
}

fn stop_racer(dir: &Path, mut child: Child, last: std::sync::mpsc::Receiver<String>) -> u64 {
    std::fs::write(dir.join("stop"), b"").unwrap();
    child.wait().unwrap();
    let line = last
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap();
    line.trim_start_matches("swaps ").trim().parse().unwrap()
}

/// A service directory owned by `NOBODY` under a root-owned, traversable `root`, and a victim
/// file only root may write, with `content`.
fn service_dir_and_victim(root: &Path, content: &[u8]) -> (PathBuf, PathBuf) {
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let service = root.join("service");
    std::fs::create_dir(&service).unwrap();
    std::os::unix::fs::chown(&service, Some(NOBODY), Some(NOBODY)).unwrap();
    let vault = root.join("vault");
    std::fs::create_dir(&vault).unwrap();
    std::fs::set_permissions(&vault, std::fs::Permissions::from_mode(0o755)).unwrap();
    let victim = vault.join("victim");
    std::fs::write(&victim, content).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    (service, victim)
}

fn file_state(path: &Path) -> (Vec<u8>, u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (
        std::fs::read(path).unwrap(),
        meta.uid(),
        meta.gid(),
        meta.mode(),
    )
}

#[test]
fn a_restore_run_as_root_never_writes_or_chowns_a_file_the_service_account_swaps_in() {
    let _serial = serial();
    const TEST: &str =
        "a_restore_run_as_root_never_writes_or_chowns_a_file_the_service_account_swaps_in";
    if let (Ok(dir), Ok(victim), Ok(name)) = (
        std::env::var(RACE_DIR),
        std::env::var(RACE_VICTIM),
        std::env::var(RACE_NAME),
    ) {
        race(Path::new(&dir), Path::new(&victim), &name);
        return;
    }
    if euid() != 0 {
        eprintln!("SKIPPED: the race needs root (to play root and the service account)");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let root = root.path().canonicalize().unwrap();
    let (service, victim) = service_dir_and_victim(&root, b"root's file, not a database\n");
    // Made by root in a directory of root's (a backup into the service's directory is
    // refused), then the service's database is a copy of it.
    let build = root.join("build");
    std::fs::create_dir(&build).unwrap();
    let (made, backup) = database_and_backup(&build, 5);
    let path = service.join("main.db");
    std::fs::copy(&made, &path).unwrap();
    std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
    let backup_bytes = std::fs::read(&backup).unwrap();
    let victim_before = file_state(&victim);

    let (child, last) = spawn_racer(TEST, &service, &victim, "main.db");
    let (mut restored, mut refused) = (0, Vec::new());
    for _ in 0..300 {
        match restore(&backup, &path) {
            Ok(_) => {
                restored += 1;
                let meta = std::fs::symlink_metadata(&path).unwrap();
                assert!(meta.is_file(), "the target is a regular file");
                assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));
                assert_eq!(std::fs::read(&path).unwrap(), backup_bytes);
            }
            Err(err @ (Error::Io { .. } | Error::NotADatabase { .. } | Error::Corrupt { .. })) => {
                refused.push(err.report().to_string())
            }
            Err(other) => panic!("an untyped failure: {other:?}"),
        }
        assert_eq!(
            file_state(&victim),
            victim_before,
            "the victim was modified"
        );
    }
    let swaps = stop_racer(&service, child, last);
    println!(
        "{restored} restored, {} refused, {swaps} swaps; first refusal: {:?}",
        refused.len(),
        refused.first()
    );
    assert!(swaps > 0, "the racer never got to swap anything");
    assert_eq!(file_state(&victim), victim_before);
    // Each refusal names the service's directory, or the backup (whose copy in the private
    // directory was moved away: the copy is named after the file it came from).
    assert!(
        refused
            .iter()
            .all(|r| r.contains(&service.display().to_string())
                || r.contains(&backup.display().to_string())),
        "{refused:?}"
    );
}

#[test]
fn a_backup_run_as_root_never_writes_a_file_the_service_account_swaps_in() {
    let _serial = serial();
    const TEST: &str = "a_backup_run_as_root_never_writes_a_file_the_service_account_swaps_in";
    if let (Ok(dir), Ok(victim), Ok(name)) = (
        std::env::var(RACE_DIR),
        std::env::var(RACE_VICTIM),
        std::env::var(RACE_NAME),
    ) {
        race(Path::new(&dir), Path::new(&victim), &name);
        return;
    }
    if euid() != 0 {
        eprintln!("SKIPPED: the race needs root (to play root and the service account)");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let root = root.path().canonicalize().unwrap();
    // An empty victim: VACUUM INTO fills an existing empty file.
    let (service, victim) = service_dir_and_victim(&root, b"");
    let app = root.join("app");
    std::fs::create_dir(&app).unwrap();
    let db = open(&app.join("main.db"));
    Users::insert(&db, &NewUser::new("b", "b@x.example")).unwrap();
    let victim_before = file_state(&victim);
    let dest = service.join("backup.db");

    let (child, last) = spawn_racer(TEST, &service, &victim, "backup.db");
    let mut refused = 0;
    for _ in 0..300 {
        match db.backup(&dest, Overwrite::Replace) {
            Ok(report) => panic!("a backup into a directory another user owns: {report}"),
            Err(Error::Io { path, source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);
                assert_eq!(path, service);
                refused += 1;
            }
            Err(other) => panic!("{other:?}"),
        }
        assert_eq!(
            file_state(&victim),
            victim_before,
            "the victim was modified"
        );
    }
    let swaps = stop_racer(&service, child, last);
    println!("{refused} refused, {swaps} swaps");
    assert_eq!(file_state(&victim), victim_before);
    // Into a directory only root can change, the same backup works.
    let safe = root.join("backups").join("backup.db");
    db.backup(&safe, Overwrite::Refuse).unwrap();
    assert_eq!(users_in(&safe), 1);
}

#[test]
fn a_refused_restore_keeps_this_processs_own_locks_on_the_open_database() {
    let _serial = serial();
    const TEST: &str = "a_refused_restore_keeps_this_processs_own_locks_on_the_open_database";
    if let Ok(path) = std::env::var(HOLD) {
        // Child: can another process take SQLite's exclusive lock on the database now?
        let mut conn =
            diesel::SqliteConnection::establish(&format!("file:{path}?mode=rw")).unwrap();
        use diesel::connection::SimpleConnection;
        use diesel::prelude::*;
        let taken = conn
            .batch_execute(
                "PRAGMA busy_timeout = 0; PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; ROLLBACK;",
            )
            .map(|()| "taken".to_owned())
            .unwrap_or_else(|e| format!("refused: {e}"));
        println!("exclusive lock {taken}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (path, backup) = database_and_backup(dir.path(), 3);
    let db = open(&path);
    Users::insert(&db, &NewUser::new("open", "open@x.example")).unwrap();
    let inode = std::fs::metadata(&path).unwrap().ino();
    let own_locks = || {
        let me = std::process::id().to_string();
        std::fs::read_to_string("/proc/locks")
            .unwrap()
            .lines()
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().filter(|f| *f != "->").collect();
                f.get(4) == Some(&me.as_str())
                    && f.get(5).and_then(|d| d.rsplit(':').next()) == Some(&inode.to_string())
            })
            .count()
    };
    let before = own_locks();
    assert!(before > 0, "the open database holds a lock on its file");

    let err = restore(&backup, &path).unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::ResourceBusy),
        "{err:?}"
    );
    assert_eq!(
        own_locks(),
        before,
        "the refused restore dropped this process's locks"
    );
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(HOLD, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("exclusive lock refused"),
        "another process took the exclusive lock of an open database: {stdout}"
    );
    Users::insert(&db, &NewUser::new("still", "still@x.example")).unwrap();
    assert_eq!(Users::count(&db).unwrap(), 6);
    assert!(
        db.integrity_check(litedal::CheckDepth::Full)
            .unwrap()
            .is_empty()
    );
}
