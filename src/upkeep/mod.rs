//! Upkeep and durability: WAL checkpoints (on demand and in the background), online backups,
//! integrity checks, `PRAGMA optimize`, and restore.
//!
//! Why each exists:
//!
//! - **Checkpoints** copy committed pages from the `-wal` file back into the database file.
//!   SQLite does this on commit once the WAL passes `wal_autocheckpoint` pages, but only in
//!   PASSIVE mode, which never waits: under a constant stream of readers the WAL can grow
//!   without bound. The background checkpointer runs one every `DB_CHECKPOINT_INTERVAL_SECS`
//!   and escalates to TRUNCATE when the WAL passes `DB_WAL_SIZE_LIMIT`.
//! - **Backups** are `VACUUM INTO` a temporary file beside the destination: a consistent
//!   snapshot taken inside one read transaction, so readers and writers keep running.
//! - **Restore** replaces the database file atomically, and only while no other connection
//!   has it open.
//!
//! The operator CLI's `checkpoint`, `backup`, `restore` and `check` subcommands are thin
//! wrappers over [`Database::checkpoint`], [`Database::backup_with_progress`], [`restore`]
//! and [`Database::integrity_check`]; every report implements `Display` for that purpose.
//!
//! One file a concern: `checkpoint.rs` (on-demand checkpoints and the background
//! checkpointer), `backup.rs`, `restore.rs` (with `file_locks.rs`, which asks the kernel who
//! has a file open), `integrity.rs` (integrity checks and `PRAGMA optimize`). This module
//! starts what runs beside a database and holds the file helpers they share.
//! It uses the core (`crate::database`), never the statistics.

mod backup;
mod checkpoint;
mod file_locks;
mod integrity;
mod restore;

use std::fs::{DirBuilder, File};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::sqlite::SqliteConnection;
use parking_lot::{Condvar, Mutex};

pub use backup::{BackupProgress, BackupReport, Overwrite};
pub use checkpoint::{CHECKPOINTER_THREAD_NAME, CheckpointReport};
pub use integrity::{CheckDepth, integrity_check_file};
pub use restore::{RESTORE_LOCK_WAIT, RestoreReport, restore};

use crate::database::{Database, Service, SqlitePool};
use crate::error::{Error, Result};
use crate::url::file_uri;
use checkpoint::{Checkpointer, Upkeep};

/// Starts what runs beside an open database: the checkpoint state every checkpoint shares,
/// the background checkpointer, and `PRAGMA optimize` when the database closes.
///
/// # Errors
///
/// [`Error::Io`] when the checkpointer thread cannot be started.
pub(crate) fn start(db: &Database) -> Result<()> {
    let upkeep = Arc::new(Upkeep::new(db));
    let checkpointer = Checkpointer::start(&upkeep, db)?;
    db.add_extension(Arc::clone(&upkeep));
    db.add_service(Box::new(UpkeepService {
        checkpointer,
        pool: (!db.location().is_memory()).then(|| db.pool(crate::pragmas::Role::Write).clone()),
    }));
    Ok(())
}

/// Stopped when the last clone of the database is dropped: the checkpointer thread is
/// stopped and joined first (so nothing else touches the pools), then `PRAGMA optimize`.
struct UpkeepService {
    checkpointer: Option<Checkpointer>,
    /// The write pool of a database on disk (an in-memory one is not optimized at close).
    pool: Option<SqlitePool>,
}

impl Service for UpkeepService {
    fn stop(&mut self) {
        if let Some(mut checkpointer) = self.checkpointer.take() {
            checkpointer.stop();
        }
        if let Some(pool) = self.pool.take() {
            integrity::optimize_on_close(&pool);
        }
    }
}

/// A flag and a condition variable: how a background thread is told to stop at once.
#[derive(Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Opens `path` (which must exist and start with SQLite's header) for a check or a page count.
pub(crate) fn open_existing(path: &Path) -> Result<SqliteConnection> {
    require_sqlite_header(path)?;
    // mode=rw: never create a file that is not there.
    SqliteConnection::establish(&file_uri(path, Some("mode=rw")))
        .map_err(|e| Error::from(e).with_path(path))
}

/// Checks that `path` is a regular file starting with SQLite's 16-byte header.
fn require_sqlite_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io("reading the metadata of", path, e))?;
    if !meta.is_file() {
        return Err(Error::io(
            "expected an SQLite database file, not a directory or device:",
            path,
            std::io::Error::new(ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let mut header = [0u8; 16];
    let read = File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map(|()| header == *SQLITE_MAGIC);
    match read {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NotADatabase {
            path: path.to_path_buf(),
            message: "the file does not start with the SQLite header".to_owned(),
        }),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Err(Error::NotADatabase {
            path: path.to_path_buf(),
            message: format!("the file is only {} bytes long", meta.len()),
        }),
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

#[derive(QueryableByName)]
struct PageCount {
    #[diesel(sql_type = BigInt)]
    page_count: i64,
}

#[derive(QueryableByName)]
struct PageSize {
    #[diesel(sql_type = BigInt)]
    page_size: i64,
}

fn pages(conn: &mut SqliteConnection) -> Result<(u64, u64)> {
    let count = diesel::sql_query("PRAGMA page_count").get_result::<PageCount>(conn)?;
    let size = diesel::sql_query("PRAGMA page_size").get_result::<PageSize>(conn)?;
    Ok((
        u64::try_from(count.page_count).unwrap_or(0),
        u64::try_from(size.page_size).unwrap_or(0),
    ))
}

/// `dir/name + suffix`, e.g. `main.db` -> `main.db-wal`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Splits an absolute file path into its directory and file name; `op` says whose path it
/// is in the error.
fn split_file_path(path: &Path, op: &'static str) -> Result<(PathBuf, std::ffi::OsString)> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => Ok((dir.to_path_buf(), name.to_owned())),
        _ => Err(Error::io(
            op,
            path,
            std::io::Error::new(ErrorKind::InvalidInput, "give a file path"),
        )),
    }
}

/// Creates `dir` and its missing parents with mode 0700.
fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("creating the directory", dir, e))
}

/// An empty file named `.NAME.XXXXXX.tmp` in `dir`, mode 0600 whatever the umask, deleted
/// again if it is dropped before being renamed into place.
fn private_temp_file(dir: &Path, name: &std::ffi::OsStr) -> Result<tempfile::TempPath> {
    let prefix = format!(".{}.", name.to_string_lossy());
    let file = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a temporary file in", dir, e))?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("setting the mode of", file.path(), e))?;
    Ok(file.into_temp_path())
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("syncing", path, e))
}

/// Makes a rename in `dir` durable: the new directory entry is on disk after this.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("syncing the directory", dir, e))
}
