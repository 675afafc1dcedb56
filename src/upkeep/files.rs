//! File helpers the upkeep operations share: SQLite's header, private temporary files beside
//! a destination, fsync of files and directories, page counts.

use std::fs::{DirBuilder, File};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::sqlite::SqliteConnection;

use crate::error::{Error, Result};
use crate::url::file_uri;

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Opens `path` (which must exist and start with SQLite's header) for a check or a page count.
pub(super) fn open_existing(path: &Path) -> Result<SqliteConnection> {
    require_sqlite_header(path)?;
    // mode=rw: never create a file that is not there.
    SqliteConnection::establish(&file_uri(path, Some("mode=rw")))
        .map_err(|e| Error::from(e).with_path(path))
}

/// Checks that `path` is a regular file starting with SQLite's 16-byte header.
pub(super) fn require_sqlite_header(path: &Path) -> Result<()> {
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

pub(super) fn pages(conn: &mut SqliteConnection) -> Result<(u64, u64)> {
    let count = diesel::sql_query("PRAGMA page_count").get_result::<PageCount>(conn)?;
    let size = diesel::sql_query("PRAGMA page_size").get_result::<PageSize>(conn)?;
    Ok((
        u64::try_from(count.page_count).unwrap_or(0),
        u64::try_from(size.page_size).unwrap_or(0),
    ))
}

/// `dir/name + suffix`, e.g. `main.db` -> `main.db-wal`.
pub(super) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Splits an absolute file path into its directory and file name; `op` says whose path it
/// is in the error.
pub(super) fn split_file_path(
    path: &Path,
    op: &'static str,
) -> Result<(PathBuf, std::ffi::OsString)> {
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
pub(super) fn create_private_dir(dir: &Path) -> Result<()> {
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
pub(super) fn private_temp_file(dir: &Path, name: &std::ffi::OsStr) -> Result<tempfile::TempPath> {
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

pub(super) fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("syncing", path, e))
}

/// Makes a rename in `dir` durable: the new directory entry is on disk after this.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("syncing the directory", dir, e))
}
