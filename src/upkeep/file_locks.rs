//! Whether any process has an SQLite database open, asked of the kernel's lock table instead
//! of SQLite, so that it also works for a file SQLite cannot open (a damaged header) and for
//! the `-wal`/`-shm` files a deleted database left behind.
//!
//! In WAL mode every open connection, idle or not, holds a POSIX read lock on the database
//! file and on byte 128 of the `-shm` file for as long as it is open. Two sources are asked:
//!
//! 1. `/proc/locks`, which lists every lock of the processes this one can see, with their
//!    process ids, read without opening the files. It is the only safe way to learn about this
//!    process's own locks: opening and closing a file descriptor of a file drops all of the
//!    process's POSIX locks on it, SQLite's included.
//! 2. Once this process is known to hold no lock on a file: `fcntl(F_OFD_GETLK)` on a
//!    descriptor of it, which the kernel answers for every process, including those in other
//!    PID namespaces (containers) that `/proc/locks` leaves out.
//!
//! Linux only (like litedal's `-wal`/`-shm` handling). In rollback-journal mode
//! (`DB_ENABLE_WAL=false`) idle connections hold no lock and cannot be seen.

use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A process that holds a lock on one of the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    /// The locked file.
    pub(crate) path: PathBuf,
    /// The holder's process id as the kernel reports it (`None` when it is not known: an
    /// open-file-description lock, or a process in another PID namespace).
    pub(crate) pid: Option<i32>,
}

/// The first of `paths` (those that exist) that some process holds a lock on, or `None`.
///
/// # Errors
///
/// [`Error::Io`] naming `/proc/locks` or the file when the kernel could not be asked (then
/// nothing can be said, and the caller must refuse).
pub(crate) fn first_locked(paths: &[PathBuf]) -> Result<Option<Holder>> {
    let table = std::fs::read_to_string("/proc/locks")
        .map_err(|e| Error::io("reading the kernel's lock table", "/proc/locks", e))?;
    let mut existing = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) => existing.push((path, meta)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("reading the metadata of", path, e)),
        }
    }
    for (path, meta) in &existing {
        let id = FileId::of(meta);
        if let Some(pid) = table.lines().find_map(|line| lock_on(line, id)) {
            return Ok(Some(Holder {
                path: path.to_path_buf(),
                pid: (pid > 0).then_some(pid),
            }));
        }
    }
    // No process this one can see (this one included) holds a lock on any of the files, so
    // opening and closing descriptors of them cannot drop a lock of this process.
    for (path, _) in &existing {
        if let Some(pid) = ofd_probe(path)? {
            return Ok(Some(Holder {
                path: path.to_path_buf(),
                pid: (pid > 0).then_some(pid),
            }));
        }
    }
    Ok(None)
}

/// Device and inode of a file, as `/proc/locks` prints them (major and minor in hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    major: u64,
    minor: u64,
    inode: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> FileId {
        // glibc's encoding of dev_t (gnu_dev_major / gnu_dev_minor).
        let dev = meta.dev();
        FileId {
            major: ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
            minor: (dev & 0xff) | ((dev >> 12) & !0xff),
            inode: meta.ino(),
        }
    }
}

/// The process id of a lock line of `/proc/locks` on file `id` (-1 for an OFD lock), or
/// `None` when the line is about another file. A line looks like
/// `1: POSIX  ADVISORY  READ 24433 fe:00:10010663 1073741826 1073742335`; waiters have a
/// `->` after the number.
fn lock_on(line: &str, id: FileId) -> Option<i32> {
    let fields: Vec<&str> = line.split_whitespace().filter(|f| *f != "->").collect();
    let (pid, file) = (fields.get(4)?, fields.get(5)?);
    let mut parts = file.split(':');
    let major = u64::from_str_radix(parts.next()?, 16).ok()?;
    let minor = u64::from_str_radix(parts.next()?, 16).ok()?;
    let inode = parts.next()?.parse::<u64>().ok()?;
    (FileId {
        major,
        minor,
        inode,
    } == id)
        .then(|| pid.parse().unwrap_or(-1))
}

/// Asks the kernel whether any lock on `path` would conflict with a write lock on the whole
/// file: the holder's process id (-1 for an OFD lock), or `None` when there is no lock.
fn ofd_probe(path: &Path) -> Result<Option<i32>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("opening, to look for locks,", path, e)),
    };
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = 0;
    lock.l_len = 0; // to the end of the file, however large
    // SAFETY: `file` is an open descriptor for the whole call and `lock` a valid, writable
    // `flock` that F_OFD_GETLK fills in; the call changes no lock.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    if rc == -1 {
        return Err(Error::io(
            "asking the kernel for locks on",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok((i32::from(lock.l_type) != libc::F_UNLCK).then_some(lock.l_pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_lines_are_matched_by_device_and_inode() {
        let id = FileId {
            major: 0xfe,
            minor: 0,
            inode: 10010663,
        };
        let line = "2: POSIX  ADVISORY  READ 24433 fe:00:10010663 1073741826 1073742335";
        assert_eq!(lock_on(line, id), Some(24433));
        let waiter = "2: -> POSIX  ADVISORY  WRITE 77 fe:00:10010663 0 EOF";
        assert_eq!(lock_on(waiter, id), Some(77));
        let ofd = "3: OFDLCK ADVISORY  READ  -1 fe:00:10010663 128 128";
        assert_eq!(lock_on(ofd, id), Some(-1));
        let other = "2: POSIX  ADVISORY  READ 24433 fe:00:10010664 1073741826 1073742335";
        assert_eq!(lock_on(other, id), None);
        assert_eq!(lock_on("garbage", id), None);
    }

    #[test]
    fn a_lock_held_by_this_process_is_found_without_opening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked");
        std::fs::write(&path, b"x").unwrap();
        assert_eq!(first_locked(std::slice::from_ref(&path)).unwrap(), None);
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: as in `ofd_probe`, with F_SETLK on an open descriptor.
        let rc = unsafe {
            let mut lock: libc::flock = std::mem::zeroed();
            lock.l_type = libc::F_RDLCK as libc::c_short;
            lock.l_whence = libc::SEEK_SET as libc::c_short;
            libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &mut lock)
        };
        assert_eq!(rc, 0);
        let holder = first_locked(std::slice::from_ref(&path)).unwrap().unwrap();
        assert_eq!(holder.pid, Some(std::process::id() as i32));
        drop(file);
        assert_eq!(first_locked(&[path]).unwrap(), None);
    }
}
