//! Restore: [`restore`] puts a backup back in place of a database nobody has open.

use std::fmt;
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use super::file_locks;
use super::files::{
    PrivateTemp, create_private_dir, pages, require_sqlite_header, sibling, split_file_path,
    sync_dir,
};
use super::untrusted;
use crate::error::{Error, Result};
use crate::url::file_uri;

/// How long [`restore`] waits for other connections to let go of the target before refusing.
pub const RESTORE_LOCK_WAIT: Duration = Duration::from_secs(1);

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The database file that was replaced or created (absolute).
    pub target: PathBuf,
    /// The backup it was restored from (absolute).
    pub backup: PathBuf,
    /// Size of the restored database in bytes.
    pub bytes: u64,
    /// Its page count.
    pub pages: u64,
    /// True when an existing database was replaced.
    pub replaced: bool,
    /// Stale `-wal`, `-shm` and `-journal` files that were removed.
    pub removed: Vec<PathBuf>,
    /// How long it took.
    pub duration: Duration,
}

impl fmt::Display for RestoreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "restored {} from {}: {} bytes, {} pages, quick_check ok, {} stale file(s) removed, {:.1} ms",
            self.target.display(),
            self.backup.display(),
            self.bytes,
            self.pages,
            self.removed.len(),
            self.duration.as_secs_f64() * 1e3
        )
    }
}

/// Replaces the database file `target` with the backup at `backup`, atomically, while no
/// other connection has `target` open.
///
/// Steps: the backup must be an SQLite file. A symlinked `target` is followed to the file it
/// points at (SQLite opens that file and names its `-wal` and `-shm` after it), which is the
/// file replaced; the link stays. Nobody may have the database open: in WAL mode every open
/// connection, idle or not, in any process, holds a lock on the database file and on its
/// `-shm` file for as long as it is open, so the kernel's lock table is asked about the
/// database and its `-wal`, `-shm` and `-journal` files (this works whatever the files hold:
/// a damaged header, or leftovers of a deleted database), and for a file SQLite can open, a
/// connection in `locking_mode=EXCLUSIVE` also takes SQLite's exclusive lock, waiting at most
/// [`RESTORE_LOCK_WAIT`], and holds it while the copy is made. The backup is copied to a
/// temporary file beside `target`, fsynced and checked with `PRAGMA quick_check`; it gets the
/// replaced file's owner, group and mode (a new file: 0600, the caller's owner), so a restore
/// run as root leaves a file the service can still open. Then the lock is released, stale
/// `-wal`, `-shm` and `-journal` files are removed (a stale WAL would otherwise be replayed
/// into the restored file), the copy is renamed over `target` and the directory is fsynced.
/// The backup file itself is never modified.
///
/// Stop the application first: the refusal catches one that is still running, but a process
/// that opens the database between the release of the lock and the rename (microseconds)
/// would keep writing to the replaced file. In rollback-journal mode (`DB_ENABLE_WAL=false`)
/// idle connections hold no lock and cannot be detected.
///
/// ```
/// use litedal::{Config, Database, Overwrite};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("main.db");
/// let db = Database::open(Config::builder().database_url(path.display().to_string()).build()?)?;
/// let backup = db.backup(dir.path().join("backup.db"), Overwrite::Refuse)?;
/// drop(db); // restore refuses while the database is open
/// let report = litedal::maintenance::restore(&backup.path, &path)?;
/// assert!(report.replaced);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`Error::Io`] of kind `ResourceBusy` naming the file when another connection or process
/// has the database or one of its files open (or when that cannot be determined for a target
/// SQLite cannot open); [`Error::NotADatabase`] naming the file when the backup is not an
/// SQLite database or the copy fails its check; [`Error::Io`] naming the path for file-system
/// errors (including an owner that cannot be kept: run the restore as that user or as root),
/// or when `backup` and `target` are the same file.
pub fn restore(backup: impl AsRef<Path>, target: impl AsRef<Path>) -> Result<RestoreReport> {
    let started = Instant::now();
    let (backup, target) = (backup.as_ref(), target.as_ref());
    let backup = std::path::absolute(backup)
        .map_err(|e| Error::io("resolving the backup path", backup, e))?;
    let target = std::path::absolute(target)
        .map_err(|e| Error::io("resolving the restore target", target, e))?;
    require_sqlite_header(&backup)?;
    require_self_contained(&backup)?;
    let target = follow_symlinks(&target)?;
    let (dir, name) = split_file_path(&target, "the restore target names no file:")?;
    if let (Ok(a), Ok(b)) = (
        std::fs::canonicalize(&backup),
        std::fs::canonicalize(&target),
    ) {
        if a == b {
            return Err(Error::io(
                "the backup and the restore target are the same file:",
                &target,
                std::io::Error::new(ErrorKind::InvalidInput, "give the backup's own path"),
            ));
        }
    }
    // Note: the target is never opened with a plain file descriptor while this process might
    // hold SQLite connections to it: closing any descriptor of a file drops all of the
    // process's POSIX locks on it, SQLite's included. `file_locks` asks the kernel's lock
    // table first for that reason.
    let existing = match std::fs::symlink_metadata(&target) {
        Ok(meta) if meta.is_dir() => {
            return Err(Error::io(
                "the restore target is a directory:",
                &target,
                std::io::Error::new(ErrorKind::InvalidInput, "give the database file's path"),
            ));
        }
        Ok(meta) if !meta.is_file() => {
            return Err(Error::io(
                "the restore target is not a regular file:",
                &target,
                std::io::Error::new(ErrorKind::InvalidInput, "give the database file's path"),
            ));
        }
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("reading the metadata of", &target, e)),
    };
    let replaced = existing.is_some();
    let companions: Vec<PathBuf> = ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| sibling(&target, suffix))
        .collect();
    // The target's header is read (through a descriptor of its own) only once the lock
    // table says nobody holds the file: see the note above.
    let lock = match file_locks::first_locked(&companions) {
        Ok(None) if replaced && require_sqlite_header(&target).is_ok() => {
            match ExclusiveLock::take(&target) {
                Ok(lock) => Some(lock),
                // A header that looks right over a damaged file: nobody can use it, and the
                // lock table said nobody has it open.
                Err(Error::NotADatabase { .. } | Error::Corrupt { .. }) => None,
                Err(e) => return Err(e),
            }
        }
        Ok(None) => None,
        Ok(Some(holder)) => return Err(in_use(&target, Some(&holder))),
        // Without the lock table, only SQLite's own lock can decide, and only for a database
        // it can open (SQLite reads the header through its own descriptors).
        Err(error) => {
            let unknown = || {
                tracing::error!(%error, "Database restore: the kernel's lock table could not be read");
                Error::io(
                    "refusing to restore: cannot tell whether a process has the database open \
                     (the kernel's lock table is unreadable and SQLite cannot open the file):",
                    &target,
                    std::io::Error::new(
                        ErrorKind::ResourceBusy,
                        "stop every process that uses it, then move the file and its -wal/-shm aside",
                    ),
                )
            };
            if !replaced {
                return Err(unknown());
            }
            match ExclusiveLock::take(&target) {
                Ok(lock) => {
                    tracing::warn!(%error, "Database restore: the kernel's lock table could not be read");
                    Some(lock)
                }
                Err(Error::NotADatabase { .. } | Error::Corrupt { .. }) => return Err(unknown()),
                Err(e) => return Err(e),
            }
        }
    };

    create_private_dir(&dir)?;
    let temp = PrivateTemp::create(&dir, &name)?;
    copy_file(&backup, &temp)?;
    if let Some(meta) = &existing {
        keep_owner_and_mode(&temp, meta, &target)?;
    }
    temp.sync()?;
    // The copy is checked, not the backup: it is what takes the target's place, and the
    // backup could change between a check and the copy.
    temp.verify()?;
    let mut check = untrusted::open_checked(
        temp.path(),
        untrusted::Source::PrivateCopy { shown_as: &backup },
    )?;
    let (pages, _) = pages(&mut check).map_err(|e| e.with_path(&backup))?;
    drop(check);

    drop(lock);
    let mut removed = Vec::new();
    for stale in &companions[1..] {
        match std::fs::remove_file(stale) {
            Ok(()) => removed.push(stale.clone()),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing the stale file", stale, e)),
        }
    }
    // A target that did not exist is not clobbered if something created it meanwhile.
    temp.rename_into_place(
        &target,
        replaced,
        "renaming the restored copy into place at",
    )?;
    sync_dir(&dir)?;
    let bytes = std::fs::metadata(&target)
        .map_err(|e| Error::io("reading the metadata of", &target, e))?
        .len();
    let report = RestoreReport {
        target,
        backup,
        bytes,
        pages,
        replaced,
        removed,
        duration: started.elapsed(),
    };
    tracing::info!(
        target = %report.target.display(),
        backup = %report.backup.display(),
        bytes = report.bytes,
        pages = report.pages,
        removed = report.removed.len(),
        elapsed_ms = report.duration.as_secs_f64() * 1e3,
        "Database restored"
    );
    Ok(report)
}

/// Refuses a backup with a non-empty `-wal` or `-journal` beside it: the restore copies the
/// file alone, so what the WAL holds would be lost (or, if it is another database's WAL, it
/// says nothing about this file), and a hot journal means the file is half-way through a
/// transaction.
fn require_self_contained(backup: &Path) -> Result<()> {
    for (suffix, what) in [
        (
            "-wal",
            "the backup is a live database or was copied with its WAL",
        ),
        ("-journal", "the backup was copied in the middle of a write"),
    ] {
        let companion = sibling(backup, suffix);
        match std::fs::symlink_metadata(&companion) {
            Ok(meta) if meta.len() > 0 => {
                return Err(Error::io(
                    "refusing to restore: the backup is not self-contained, a non-empty file lies beside it:",
                    companion,
                    std::io::Error::new(
                        ErrorKind::InvalidData,
                        format!(
                            "{} bytes; {what}, and restore copies only the file itself. Take the \
                             backup with `litedal backup` (one self-contained file), or open the \
                             backup once with the program that wrote it so it folds this file in; \
                             if it is not the backup's, move it aside",
                            meta.len()
                        ),
                    ),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("reading the metadata of", companion, e)),
        }
    }
    Ok(())
}

/// The refusal when a process has the database `target` open (`holder`: who holds a lock on
/// which of its files, when the kernel said).
fn in_use(target: &Path, holder: Option<&file_locks::Holder>) -> Error {
    let detail = match holder {
        Some(holder) => {
            let who = match holder.pid {
                Some(pid) if u32::try_from(pid).is_ok_and(|p| p == std::process::id()) => {
                    "this process".to_owned()
                }
                Some(pid) => format!("process {pid}"),
                None => "another process".to_owned(),
            };
            format!("{who} holds a lock on {}; ", holder.path.display())
        }
        None => String::new(),
    };
    Error::io(
        "refusing to restore: another connection or process has the database open:",
        target,
        std::io::Error::new(
            ErrorKind::ResourceBusy,
            format!(
                "{detail}stop the application (and any other SQLite client of this file) first"
            ),
        ),
    )
}

/// `path` with every symlink in its last component followed (also a dangling one: the file it
/// names is where the restored database goes), in a directory with its own symlinks resolved.
fn follow_symlinks(path: &Path) -> Result<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&path)
                    .map_err(|e| Error::io("reading the symlink", &path, e))?;
                path = match path.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::NotFound => break,
            Err(e) => return Err(Error::io("reading the metadata of", &path, e)),
        }
    }
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::io(
            "the restore target is a chain of more than 40 symlinks:",
            &path,
            std::io::Error::new(ErrorKind::InvalidInput, "give the database file's path"),
        ));
    }
    let (dir, name) = split_file_path(&path, "the restore target names no file:")?;
    Ok(match std::fs::canonicalize(&dir) {
        Ok(dir) => dir.join(name),
        Err(_) => path,
    })
}

/// Gives the restored copy the owner, group and mode of the file it replaces, through its
/// descriptor.
fn keep_owner_and_mode(copy: &PrivateTemp, was: &std::fs::Metadata, target: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let file = copy.file();
    let now = file
        .metadata()
        .map_err(|e| Error::io("reading the metadata of", copy.path(), e))?;
    if (now.uid(), now.gid()) != (was.uid(), was.gid()) {
        std::os::unix::fs::fchown(file, Some(was.uid()), Some(was.gid())).map_err(|e| {
            Error::io(
                "keeping the owner and group of the restore target (run the restore as its owner or as root):",
                target,
                e,
            )
        })?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(was.mode() & 0o7777))
        .map_err(|e| Error::io("keeping the mode of the restore target on", copy.path(), e))
}

/// Copies the backup into the private copy through its descriptor.
fn copy_file(from: &Path, to: &PrivateTemp) -> Result<()> {
    let mut reader = File::open(from).map_err(|e| Error::io("opening the backup", from, e))?;
    let mut writer = to.file();
    std::io::copy(&mut reader, &mut writer)
        .map_err(|e| Error::io("copying the backup to", to.path(), e))?;
    Ok(())
}

/// An SQLite connection holding an exclusive lock on a database file.
struct ExclusiveLock {
    _conn: SqliteConnection,
}

impl ExclusiveLock {
    fn take(target: &Path) -> Result<ExclusiveLock> {
        let in_use = || in_use(target, None);
        let mut conn = SqliteConnection::establish(&file_uri(target, Some("mode=rw")))
            .map_err(|e| Error::from(e).with_path(target))?;
        // In EXCLUSIVE locking mode the first transaction takes an exclusive lock on the
        // database file and keeps it until the connection closes. A WAL database is then
        // opened without shared memory, and the exclusive lock is refused while any other
        // connection (idle ones included, in this process or another) has the file open.
        let locked = conn
            .batch_execute(&format!(
                "PRAGMA busy_timeout = {}; PRAGMA locking_mode = EXCLUSIVE;",
                RESTORE_LOCK_WAIT.as_millis()
            ))
            .and_then(|()| conn.batch_execute("BEGIN EXCLUSIVE; COMMIT;"))
            .map_err(|e| Error::from(e).with_path(target));
        match locked {
            Ok(()) => Ok(ExclusiveLock { _conn: conn }),
            Err(Error::Busy) => Err(in_use()),
            Err(e) => Err(e),
        }
    }
}
