//! File helpers the upkeep operations share: SQLite's header, private temporary files beside
//! a destination (worked on through their descriptors), fsync of directories, page counts.

use std::fs::{DirBuilder, File};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::sqlite::SqliteConnection;

use crate::error::{Error, Result};

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

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

/// A new, empty file for a backup or a restored copy, in a private directory litedal creates
/// beside the destination (`rename(2)` is atomic only within one file system).
///
/// Why a directory and descriptors: a restore or backup may run as root in a directory the
/// service account can write. A temporary file in that directory could be swapped for a
/// symlink to any file between two steps that reopen it by name, and root would then
/// overwrite or chown that file. So the file is created with `O_EXCL | O_NOFOLLOW` inside a
/// fresh 0700 directory (nobody else can add, remove or swap entries in it), every later
/// step works through its descriptor (write, fchown, fchmod, fsync), the rename into place
/// names it through the directory's descriptor, and (device, inode) of the file and the
/// directory are compared with what their names lead to before a path is handed to SQLite
/// and before the rename (a user who can write the parent directory can still rename the
/// private directory away; that is then refused).
///
/// Dropped before [`PrivateTemp::rename_into_place`], the directory and the file go away.
pub(super) struct PrivateTemp {
    /// Removed with its contents on drop.
    dir: tempfile::TempDir,
    dir_fd: std::os::fd::OwnedFd,
    name: std::ffi::OsString,
    path: PathBuf,
    file: File,
}

impl PrivateTemp {
    /// Creates `dir/.NAME.XXXXXX.litedal/NAME`, the directory 0700, the file 0600 whatever
    /// the umask.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the directory or the file.
    pub(super) fn create(dir: &Path, name: &std::ffi::OsStr) -> Result<PrivateTemp> {
        use rustix::fs::{Mode, OFlags};
        let private = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".litedal")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(dir)
            .map_err(|e| Error::io("creating a private directory in", dir, e))?;
        let dir_fd = rustix::fs::open(
            private.path(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("opening the private directory", private.path(), e.into()))?;
        let path = private.path().join(name);
        let file = rustix::fs::openat(
            &dir_fd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map(File::from)
        .map_err(|e| Error::io("creating the temporary file", &path, e.into()))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io("setting the mode of", &path, e))?;
        // The directory the descriptor leads to must be the one just made: owned by whoever
        // owns the new file (this process's user) and closed to everybody else.
        let dir_stat = rustix::fs::fstat(&dir_fd)
            .map_err(|e| Error::io("reading the metadata of", private.path(), e.into()))?;
        let file_stat = rustix::fs::fstat(&file)
            .map_err(|e| Error::io("reading the metadata of", &path, e.into()))?;
        if dir_stat.st_uid != file_stat.st_uid || dir_stat.st_mode & 0o077 != 0 {
            return Err(swapped(private.path()));
        }
        Ok(PrivateTemp {
            dir: private,
            dir_fd,
            name: name.to_owned(),
            path,
            file,
        })
    }

    /// The file's path (for SQLite, which opens files by name).
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The open file: write, chown, chmod and sync through this, never through the path.
    pub(super) fn file(&self) -> &File {
        &self.file
    }

    /// Checks that the private directory's name still leads to the directory created, and
    /// the file's name in it to the open file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] of kind `PermissionDenied` naming the path when either was swapped.
    pub(super) fn verify(&self) -> Result<()> {
        use rustix::fs::AtFlags;
        let id = |s: rustix::fs::Stat| (s.st_dev, s.st_ino);
        let dir_now = rustix::fs::lstat(self.dir.path()).map(id);
        let dir_then = rustix::fs::fstat(&self.dir_fd).map(id);
        if dir_now.is_err() || dir_now != dir_then {
            return Err(swapped(self.dir.path()));
        }
        let file_now =
            rustix::fs::statat(&self.dir_fd, &self.name, AtFlags::SYMLINK_NOFOLLOW).map(id);
        let file_then = rustix::fs::fstat(&self.file).map(id);
        if file_now.is_err() || file_now != file_then {
            return Err(swapped(&self.path));
        }
        Ok(())
    }

    /// fsyncs the file through its descriptor.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file.
    pub(super) fn sync(&self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|e| Error::io("syncing", &self.path, e))
    }

    /// Checks the file once more ([`PrivateTemp::verify`]), then renames it to `target`
    /// (through the private directory's descriptor, so it is this file that moves), replacing
    /// an existing file only when `replace`.
    ///
    /// # Errors
    ///
    /// As [`PrivateTemp::verify`]; the rename's own error as an [`Error::Io`] naming
    /// `target` with `op` (of kind `AlreadyExists` when it exists and `replace` is false).
    pub(super) fn rename_into_place(
        self,
        target: &Path,
        replace: bool,
        op: &'static str,
    ) -> Result<()> {
        use rustix::fs::{CWD, RenameFlags};
        self.verify()?;
        let flags = if replace {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        rustix::fs::renameat_with(&self.dir_fd, &self.name, CWD, target, flags)
            .map_err(|e| Error::io(op, target, e.into()))
    }
}

/// The refusal when a name in litedal's private directory no longer leads to its file.
fn swapped(path: &Path) -> Error {
    Error::io(
        "refusing to go on: a file or directory litedal created was replaced meanwhile:",
        path,
        std::io::Error::new(
            ErrorKind::PermissionDenied,
            "another user can write the destination's directory; use a directory only the \
             user running litedal can write",
        ),
    )
}

/// Makes a rename in `dir` durable: the new directory entry is on disk after this.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("syncing the directory", dir, e))
}

/// Refuses when a user other than this process's user or root could
/// rename entries on the way to the private directory: the destination directory or one
/// of its ancestors is owned by such a user, or writable by group or others without the
/// sticky bit. For steps where SQLite must open the file by name (`VACUUM INTO`), which no
/// descriptor can protect: such a user could move the private directory away and put a
/// symlink where SQLite looks, and SQLite would create or fill a file wherever it points.
///
/// # Errors
///
/// [`Error::Io`] of kind `PermissionDenied` naming the directory another user controls.
pub(super) fn require_no_other_writer(dir: &Path) -> Result<()> {
    let me = rustix::process::geteuid().as_raw();
    let parent =
        std::fs::canonicalize(dir).map_err(|e| Error::io("resolving the directory", dir, e))?;
    for dir in parent.ancestors() {
        let stat = rustix::fs::lstat(dir)
            .map_err(|e| Error::io("reading the metadata of", dir, e.into()))?;
        let foreign_owner = stat.st_uid != me && stat.st_uid != 0;
        let shared_write = stat.st_mode & 0o022 != 0 && stat.st_mode & 0o1000 == 0;
        if foreign_owner || shared_write {
            let owner = if foreign_owner {
                format!("it belongs to uid {}", stat.st_uid)
            } else {
                format!("its mode is {:o}", stat.st_mode & 0o7777)
            };
            return Err(Error::io(
                "refusing to write a backup where another user could redirect it:",
                dir,
                std::io::Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "{owner}, so another user could swap the temporary file SQLite writes \
                         by name for a symlink. Write the backup into a directory only uid \
                         {me} (or root) can change, or run the backup as the directory's \
                         owner"
                    ),
                ),
            ));
        }
    }
    Ok(())
}
