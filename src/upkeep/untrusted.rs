//! Opening a database file litedal did not create: a restore source, the SQLite source of
//! `litedal copy`, a file given to `check`. Such a file may be damaged or crafted, so it is
//! opened the way <https://www.sqlite.org/security.html> says:
//!
//! - read-only (`mode=ro`) and `query_only`, so no trigger of the file can ever fire and
//!   nothing is written to it;
//! - `trusted_schema=OFF`: a view or trigger of the file may call only SQLite's innocuous
//!   built-in functions, never one a connection registered;
//! - `cell_size_check=ON` and `mmap_size=0`: a damaged page is an error, never a read out of
//!   bounds or a fault of a memory map;
//! - no application hook: the connection is a plain one, without the pool's customizer;
//! - then `PRAGMA quick_check` before anything else reads the file
//!   ([`open_checked`]); the first problem it reports is the refusal.
//!
//! **A `-wal` file beside the file.** SQLite replays any WAL it finds beside a database,
//! whichever database wrote it: nothing in a WAL names its database (measured: a WAL of
//! another database put beside a file made a read-only connection see that database's rows
//! and tables). `immutable=1` makes SQLite ignore the WAL (and take no locks), which is only
//! right for a file nobody can change. So:
//!
//! - a private copy in a directory litedal made ([`Source::PrivateCopy`], the restore's copy)
//!   is opened `immutable=1`: there is no WAL and nobody can write it;
//! - a file that may be in use ([`Source::MaybeLive`]) is opened normally (read-only, with
//!   locking), and a non-empty `-wal` beside it is trusted only while some process has the
//!   database open: a live database's WAL is its own, and that process already reads it. A
//!   `-wal` beside a file nobody has open is refused, with what to do: it is either left over
//!   from a crash (open the database once with the program that wrote it, which folds it in)
//!   or not this database's at all (move it aside).
//!
//! The restore refuses any non-empty `-wal` or `-journal` beside its source (see
//! `restore.rs`): it copies the file alone, and those would hold part of the database.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use super::check::{CheckDepth, run_check};
use super::file_locks;
use super::files::{require_sqlite_header, sibling};
use crate::error::{Error, Result};
use crate::url::file_uri;

/// How long an untrusted connection waits for a live database's locks (the same as a copy's
/// source connection waited before).
const BUSY_TIMEOUT_MS: u32 = 5000;

/// Where an untrusted file lives, which decides how SQLite may treat its `-wal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source<'a> {
    /// A copy litedal wrote into its own private directory: nobody else can change it, so it
    /// is opened `immutable=1` (no locks, no `-wal`, no `-shm`). Errors name `shown_as` (the
    /// file the copy was made from), not the temporary name.
    PrivateCopy {
        /// The file the copy was made from.
        shown_as: &'a Path,
    },
    /// A file that a process may have open (a copy's source, a file to check).
    MaybeLive,
}

/// Opens `path` as an untrusted database and refuses it unless `PRAGMA quick_check` says
/// `ok`.
///
/// # Errors
///
/// [`Error::Corrupt`] naming the file with the first problem quick_check reported (and how
/// many there were); otherwise as [`open`].
pub(crate) fn open_checked(path: &Path, source: Source<'_>) -> Result<SqliteConnection> {
    let shown = shown_path(path, source);
    let mut conn = open(path, source)?;
    let problems = run_check(&mut conn, CheckDepth::Quick).map_err(|e| e.with_path(shown))?;
    if let Some(first) = problems.first() {
        return Err(Error::Corrupt {
            path: Some(shown.to_path_buf()),
            message: format!(
                "refused: quick_check found {} problem(s), the first: {first}",
                problems.len()
            ),
        });
    }
    Ok(conn)
}

/// Opens `path` as an untrusted database (read-only, `query_only`, `trusted_schema=OFF`,
/// `cell_size_check=ON`, `mmap_size=0`, no hook) without checking it: for `check`, whose
/// answer is the list of problems.
///
/// # Errors
///
/// [`Error::Io`] naming the file when it is missing, not a regular file or unreadable, or
/// naming the `-wal` beside it when that is not trusted (see the module docs);
/// [`Error::NotADatabase`] naming the file when it is not an SQLite database (too short, a
/// foreign header); the error SQLite reported, with the path.
pub(crate) fn open(path: &Path, source: Source<'_>) -> Result<SqliteConnection> {
    let shown = shown_path(path, source);
    let params = match source {
        Source::PrivateCopy { .. } => {
            // Only litedal writes into its private directory; the header check opens a
            // descriptor, which is harmless here (this process holds no lock on a new file).
            require_sqlite_header(path).map_err(|e| rename_path(e, path, shown))?;
            "mode=ro&immutable=1"
        }
        Source::MaybeLive => {
            require_live_wal_or_none(path)?;
            "mode=ro"
        }
    };
    // A file that cannot be opened (gone, or its directory moved away under litedal) is an
    // I/O error naming the file, not a bare diesel connection error.
    let mut conn = SqliteConnection::establish(&file_uri(path, Some(params))).map_err(|e| {
        Error::io(
            "opening the database file",
            shown,
            std::io::Error::other(e.to_string()),
        )
    })?;
    // Set before the first statement that reads the schema or a page.
    conn.batch_execute(&format!(
        "PRAGMA trusted_schema = OFF; PRAGMA cell_size_check = ON; PRAGMA mmap_size = 0; \
         PRAGMA query_only = ON; PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};"
    ))
    .map_err(|e| rename_path(Error::from(e).with_path(shown), path, shown))?;
    Ok(conn)
}

fn shown_path<'a>(path: &'a Path, source: Source<'a>) -> &'a Path {
    match source {
        Source::PrivateCopy { shown_as } => shown_as,
        Source::MaybeLive => path,
    }
}

/// `error` with the temporary `path` replaced by `shown` (the file the user named).
fn rename_path(error: Error, path: &Path, shown: &Path) -> Error {
    match error {
        Error::NotADatabase { path: p, message } if p == path => Error::NotADatabase {
            path: shown.to_path_buf(),
            message,
        },
        Error::Corrupt {
            path: Some(p),
            message,
        } if p == path => Error::Corrupt {
            path: Some(shown.to_path_buf()),
            message,
        },
        Error::Io {
            op,
            path: p,
            source,
        } if p == path => Error::Io {
            op,
            path: shown.to_path_buf(),
            source,
        },
        other => other,
    }
}

/// Refuses a non-empty `-wal` beside `path` unless a process has the database open, and
/// checks the header of a file nobody holds.
///
/// The header is read through a descriptor only when the kernel's lock table says this
/// process holds no lock on the file: closing a descriptor drops all of the process's POSIX
/// locks on the file, SQLite's included. A file this process (or another) has open is left
/// to SQLite, which reads it through its own shared descriptors.
fn require_live_wal_or_none(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => {
            return Err(Error::io(
                "expected an SQLite database file, not a directory or device:",
                path,
                std::io::Error::new(ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        Err(e) => return Err(Error::io("opening the database file", path, e)),
    }
    let wal = sibling(path, "-wal");
    let wal_bytes = match std::fs::symlink_metadata(&wal) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == ErrorKind::NotFound => 0,
        Err(e) => return Err(Error::io("reading the metadata of", &wal, e)),
    };
    let files: Vec<PathBuf> = ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| sibling(path, suffix))
        .collect();
    match file_locks::first_locked(&files) {
        // Open in some process: its WAL (if any) is the live one; SQLite reads the header.
        Ok(Some(_)) => Ok(()),
        Ok(None) if wal_bytes > 0 => Err(untrusted_wal(&wal, wal_bytes, None)),
        Ok(None) => require_sqlite_header(path),
        Err(error) if wal_bytes > 0 => Err(untrusted_wal(&wal, wal_bytes, Some(&error))),
        // Nobody can be asked; without a WAL there is nothing to trust. SQLite checks the
        // header itself (a plain descriptor could drop a lock this process holds).
        Err(error) => {
            tracing::debug!(%error, path = %path.display(), "Database untrusted open: lock table unreadable");
            Ok(())
        }
    }
}

fn untrusted_wal(wal: &Path, bytes: u64, lock_table: Option<&Error>) -> Error {
    let why = match lock_table {
        None => "no process has the database open".to_owned(),
        Some(error) => format!("whether a process has the database open is unknown ({error})"),
    };
    Error::io(
        "refusing to open: a -wal file that may not belong to the database lies beside it:",
        wal,
        std::io::Error::new(
            ErrorKind::InvalidData,
            format!(
                "{bytes} bytes, and {why}, so it is either left over from a crash or another \
                 database's (SQLite would replay it onto this file). If it is this database's, \
                 open the database once with the program that wrote it (that folds the WAL in); \
                 if not, move the -wal aside"
            ),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::{BigInt, Integer};

    #[derive(QueryableByName)]
    struct Value {
        #[diesel(sql_type = BigInt)]
        value: i64,
    }

    #[derive(QueryableByName)]
    struct MmapSize {
        #[diesel(sql_type = BigInt)]
        mmap_size: i64,
    }

    fn pragma(conn: &mut SqliteConnection, name: &str) -> i64 {
        if name == "mmap_size" {
            // Not a table-valued pragma.
            return diesel::sql_query("PRAGMA mmap_size")
                .get_result::<MmapSize>(conn)
                .unwrap()
                .mmap_size;
        }
        diesel::sql_query(format!("SELECT {name} AS value FROM pragma_{name}"))
            .get_result::<Value>(conn)
            .unwrap()
            .value
    }

    diesel::define_sql_function!(fn app_marker(x: Integer) -> Integer);

    #[test]
    fn an_untrusted_connection_is_read_only_and_calls_no_function_from_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostile.db");
        let mut maker = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        maker
            .batch_execute(
                "CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1);
                 CREATE VIEW v AS SELECT app_marker(x) AS y FROM t;",
            )
            .unwrap();
        drop(maker);

        let mut conn = open_checked(&path, Source::MaybeLive).unwrap();
        for (name, expected) in [
            ("trusted_schema", 0),
            ("cell_size_check", 1),
            ("mmap_size", 0),
            ("query_only", 1),
        ] {
            assert_eq!(pragma(&mut conn, name), expected, "PRAGMA {name}");
        }
        // Even a function this very connection registered cannot be called from the file's
        // view: SQLite allows only innocuous functions in the schema with trusted_schema off.
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        app_marker_utils::register_impl(&mut conn, move |x: i32| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            x
        })
        .unwrap();
        #[derive(QueryableByName, Debug)]
        #[allow(dead_code)]
        struct Y {
            #[diesel(sql_type = Integer)]
            y: i32,
        }
        let err = diesel::sql_query("SELECT y FROM v")
            .load::<Y>(&mut conn)
            .unwrap_err();
        assert!(
            err.to_string().contains("unsafe use of app_marker"),
            "{err}"
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
        // And nothing can be written.
        let write = conn.batch_execute("INSERT INTO t VALUES (2)").unwrap_err();
        assert!(write.to_string().contains("readonly"), "{write}");
    }
}
