//! Online backups: [`Database::backup`] and [`Database::backup_with_progress`].

use std::fmt;
use std::io::ErrorKind;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::sqlite::SqliteConnection;
use parking_lot::Mutex;

use super::check::{CheckDepth, run_check};
use super::checkpoint::StopSignal;
use super::files::{
    PrivateTemp, create_private_dir, pages, require_no_other_writer, sibling, split_file_path,
    sync_dir,
};
use super::untrusted::{self, Source};
use crate::database::{Database, PooledConnection};
use crate::error::{Error, Result};

/// Whether a backup may replace an existing file at its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Overwrite {
    /// Fail with an [`Error::Io`] of kind `AlreadyExists` naming the path (the default
    /// choice: a typo must not destroy an older backup).
    Refuse,
    /// Replace the existing file atomically (the CLI's `--overwrite`).
    Replace,
}

/// Progress of a running backup, reported about four times a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupProgress {
    /// Bytes written to the backup so far.
    pub bytes_written: u64,
    /// Size of the source database (page count x page size) when the backup started; the
    /// copy ends up at most this large (free pages are not copied).
    pub bytes_expected: u64,
}

/// What [`Database::backup`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The backup file (absolute).
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its page count.
    pub pages: u64,
    /// Its page size in bytes.
    pub page_size: u64,
    /// True when an existing file was replaced ([`Overwrite::Replace`]).
    pub replaced: bool,
    /// How long it took, the integrity check of the copy included.
    pub duration: Duration,
}

impl fmt::Display for BackupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "backup {}{}: {} bytes, {} pages of {} bytes, quick_check ok, {:.1} ms",
            self.path.display(),
            if self.replaced { " (replaced)" } else { "" },
            self.bytes,
            self.pages,
            self.page_size,
            self.duration.as_secs_f64() * 1e3
        )
    }
}

/// A connection for a long maintenance statement: a dedicated one for a file (so a backup
/// never occupies a pooled connection the application needs), the pooled one for an
/// in-memory database (a new connection would open a different, empty database).
enum MaintenanceConnection {
    Own(SqliteConnection),
    Pooled(PooledConnection),
}

impl Deref for MaintenanceConnection {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        match self {
            MaintenanceConnection::Own(c) => c,
            MaintenanceConnection::Pooled(c) => c,
        }
    }
}

impl DerefMut for MaintenanceConnection {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            MaintenanceConnection::Own(c) => c,
            MaintenanceConnection::Pooled(c) => c,
        }
    }
}

impl Database {
    /// Writes a consistent snapshot of the database to `dest` while readers and writers keep
    /// running. See [`Database::backup_with_progress`].
    ///
    /// ```
    /// use litedal::Overwrite;
    ///
    /// let db = litedal::example::test_db()?;
    /// let dir = tempfile::tempdir()?;
    /// let report = db.backup(dir.path().join("backups/main.db"), Overwrite::Refuse)?;
    /// assert!(report.pages > 0);
    /// // The same path again is refused unless Overwrite::Replace is given.
    /// assert!(db.backup(&report.path, Overwrite::Refuse).is_err());
    /// db.backup(&report.path, Overwrite::Replace)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Database::backup_with_progress`].
    pub fn backup(&self, dest: impl AsRef<Path>, overwrite: Overwrite) -> Result<BackupReport> {
        self.backup_inner(dest.as_ref(), overwrite, None)
    }

    /// Writes a consistent snapshot of the database to `dest`, calling `progress` about four
    /// times a second and once at the end.
    ///
    /// The snapshot is `VACUUM INTO` (one read transaction, so writers are never blocked and
    /// the copy is never torn) with the path as a bound parameter, written to a temporary
    /// file created 0600 *beside* `dest`: `rename(2)` is atomic only within one file system,
    /// so a temporary file elsewhere (say on a tmpfs `/tmp`) could not be renamed into place.
    /// The copy is fsynced, checked with `PRAGMA quick_check` before it takes `dest`'s name
    /// (a failed copy never replaces a good older backup), renamed, and the directory is
    /// fsynced so the rename itself survives power loss. Missing parent directories are
    /// created 0700.
    ///
    /// The temporary file lives in a private 0700 directory litedal creates beside `dest`, and
    /// is synced, checked and renamed through descriptors. SQLite's `VACUUM INTO` must open it
    /// by name, which no descriptor protects, so a destination whose directory (or an
    /// ancestor) another user can change is refused: that user could redirect the write to
    /// any file of the user running the backup (root's, say).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path: of kind `AlreadyExists` when `dest` exists and
    /// `overwrite` is [`Overwrite::Refuse`] (nothing is written), `PermissionDenied` naming
    /// the directory when another user could change it (or swapped a file meanwhile),
    /// `InvalidInput` when `dest`
    /// is the database's own file, its `-wal`/`-shm`, a directory or not valid UTF-8, or the
    /// file-system error; [`Error::NotADatabase`] when the copy fails its check; or the error
    /// SQLite reported.
    pub fn backup_with_progress<F>(
        &self,
        dest: impl AsRef<Path>,
        overwrite: Overwrite,
        mut progress: F,
    ) -> Result<BackupReport>
    where
        F: FnMut(BackupProgress) + Send,
    {
        self.backup_inner(dest.as_ref(), overwrite, Some(&mut progress))
    }

    fn backup_inner(
        &self,
        dest: &Path,
        overwrite: Overwrite,
        progress: Option<&mut (dyn FnMut(BackupProgress) + Send)>,
    ) -> Result<BackupReport> {
        let started = Instant::now();
        let dest = std::path::absolute(dest)
            .map_err(|e| Error::io("resolving the backup path", dest, e))?;
        let (dir, name) = split_file_path(&dest, "the backup path names no file:")?;
        if let Some(db_path) = self.path() {
            refuse_live_files(&dest, &dir, &name, db_path)?;
        }
        let replaced = match std::fs::symlink_metadata(&dest) {
            Ok(meta) if meta.is_dir() => {
                return Err(Error::io(
                    "the backup destination is a directory:",
                    &dest,
                    std::io::Error::new(ErrorKind::InvalidInput, "give a file path"),
                ));
            }
            Ok(_) if overwrite == Overwrite::Refuse => return Err(exists_error(&dest)),
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io("reading the metadata of", &dest, e)),
        };
        create_private_dir(&dir)?;
        // Before anything is created there: nothing of litedal's for another user to move.
        require_no_other_writer(&dir)?;
        let temp = PrivateTemp::create(&dir, &name)?;
        // The path is bound as a parameter, never formatted into the SQL; it is absolute, so
        // SQLite cannot read it as a `file:` URI. SQLite opens it by name: VACUUM INTO writes
        // into the empty file created in litedal's private directory (it refuses a file that
        // is not empty), and the name is checked to still lead to that file before and after.
        let temp_str = temp.path().to_str().ok_or_else(|| {
            Error::io(
                "the backup path is not valid UTF-8 (SQLite needs UTF-8):",
                &dest,
                std::io::Error::new(ErrorKind::InvalidInput, "rename the directory or file"),
            )
        })?;

        let mut conn = self.maintenance_connection()?;
        let (page_count, page_size) = pages(&mut conn)?;
        let expected = page_count.saturating_mul(page_size);
        temp.verify()?;
        let vacuum = with_progress(temp.path(), expected, progress, || {
            diesel::sql_query("VACUUM INTO ?")
                .bind::<Text, _>(temp_str)
                .execute(&mut *conn)
        });
        drop(conn);
        vacuum?;

        temp.verify()?;
        temp.sync()?;
        let mut check = untrusted::open(temp.path(), Source::PrivateCopy { shown_as: &dest })?;
        let problems = run_check(&mut check, CheckDepth::Quick)?;
        let (pages, page_size) = pages(&mut check)?;
        drop(check);
        if !problems.is_empty() {
            return Err(Error::NotADatabase {
                path: dest,
                message: format!(
                    "the backup copy failed quick_check: {}",
                    problems.join("; ")
                ),
            });
        }
        let persisted = temp.rename_into_place(
            &dest,
            overwrite == Overwrite::Replace,
            "renaming the backup into place at",
        );
        if let Err(e) = persisted {
            return Err(match e {
                Error::Io { source, .. } if source.kind() == ErrorKind::AlreadyExists => {
                    exists_error(&dest)
                }
                other => other,
            });
        }
        sync_dir(&dir)?;
        let bytes = std::fs::metadata(&dest)
            .map_err(|e| Error::io("reading the metadata of", &dest, e))?
            .len();
        let report = BackupReport {
            path: dest,
            bytes,
            pages,
            page_size,
            replaced,
            duration: started.elapsed(),
        };
        tracing::info!(
            path = %report.path.display(),
            bytes = report.bytes,
            pages = report.pages,
            replaced = report.replaced,
            elapsed_ms = report.duration.as_secs_f64() * 1e3,
            "Database backup written"
        );
        Ok(report)
    }

    fn maintenance_connection(&self) -> Result<MaintenanceConnection> {
        if self.location().is_memory() {
            return Ok(MaintenanceConnection::Pooled(self.write_connection()?));
        }
        let mut conn = SqliteConnection::establish(self.uri())?;
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}",
            self.config().busy_timeout().as_millis()
        ))?;
        Ok(MaintenanceConnection::Own(conn))
    }
}

/// Runs `work` while a helper thread reports the size of `file` to `progress`; reports the
/// final size once more at the end.
fn with_progress<T>(
    file: &Path,
    expected: u64,
    progress: Option<&mut (dyn FnMut(BackupProgress) + Send)>,
    work: impl FnOnce() -> T,
) -> T {
    let Some(progress) = progress else {
        return work();
    };
    let progress = Mutex::new(progress);
    let report = || {
        let mut callback = progress.lock();
        (*callback)(BackupProgress {
            bytes_written: std::fs::metadata(file).map_or(0, |m| m.len()),
            bytes_expected: expected,
        });
    };
    let done = StopSignal::default();
    let out = std::thread::scope(|scope| {
        let watcher = std::thread::Builder::new()
            .name("litedal-backup".to_owned())
            .spawn_scoped(scope, || {
                let mut stopped = done.stopped.lock();
                while !*stopped {
                    if done
                        .wake
                        .wait_for(&mut stopped, Duration::from_millis(250))
                        .timed_out()
                    {
                        report();
                    }
                }
            });
        if let Err(error) = &watcher {
            // Progress is a convenience: the backup goes on without it.
            tracing::warn!(%error, "Database backup: progress thread not started");
        }
        let out = work();
        *done.stopped.lock() = true;
        done.wake.notify_all();
        out
    });
    report();
    out
}

fn exists_error(path: &Path) -> Error {
    Error::io(
        "refusing to overwrite the existing file",
        path,
        std::io::Error::new(
            ErrorKind::AlreadyExists,
            "it already exists; pass Overwrite::Replace (--overwrite) to replace it",
        ),
    )
}

/// Refuses a backup destination that is the live database or one of its companion files:
/// renaming a snapshot over them while the database is open would corrupt it.
fn refuse_live_files(
    dest: &Path,
    dir: &Path,
    name: &std::ffi::OsStr,
    db_path: &Path,
) -> Result<()> {
    let Ok(db) = std::fs::canonicalize(db_path) else {
        return Ok(());
    };
    let resolved = match std::fs::canonicalize(dest) {
        Ok(p) => p,
        Err(_) => match std::fs::canonicalize(dir) {
            Ok(d) => d.join(name),
            Err(_) => return Ok(()), // the directory does not exist: cannot be the database's
        },
    };
    let live = ["", "-wal", "-shm", "-journal"]
        .iter()
        .any(|suffix| resolved == sibling(&db, suffix));
    if live {
        return Err(Error::io(
            "refusing to write a backup over the live database's own files:",
            dest,
            std::io::Error::new(
                ErrorKind::InvalidInput,
                "choose a path outside the database's own files",
            ),
        ));
    }
    Ok(())
}
