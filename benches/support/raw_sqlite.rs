//! The raw SQLite floor: the C API through libsqlite3-sys, with no pool, no ORM and no
//! allocation per row. Shared by the throughput benchmark and the `blog` example
//! (`#[path]`-included), so both measure against the same floor.
//!
//! All `unsafe` here calls the SQLite C API on a handle this module owns: `RawDb` is created
//! by `sqlite3_open_v2` and closed exactly once in `Drop`; statements are finalized before
//! the handle is closed; every text binding passes `SQLITE_TRANSIENT`, so SQLite copies the
//! bytes and no Rust buffer has to outlive the call.

#![allow(dead_code)]

use std::ffi::{CStr, CString, c_int};
use std::path::Path;
use std::ptr;

use libsqlite3_sys as ffi;

/// An open SQLite connection.
pub struct RawDb {
    handle: *mut ffi::sqlite3,
}

/// A prepared statement of a `RawDb`.
pub struct RawStmt<'db> {
    stmt: *mut ffi::sqlite3_stmt,
    db: &'db RawDb,
}

fn check(db: *mut ffi::sqlite3, rc: c_int, what: &str) -> Result<(), String> {
    if rc == ffi::SQLITE_OK || rc == ffi::SQLITE_DONE || rc == ffi::SQLITE_ROW {
        return Ok(());
    }
    // SAFETY: `db` is a live handle (or null, for which sqlite3_errmsg returns a static text).
    let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) }
        .to_string_lossy()
        .into_owned();
    Err(format!("{what}: {message} (code {rc})"))
}

impl RawDb {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<RawDb, String> {
        let c_path = CString::new(path.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
        let mut handle = ptr::null_mut();
        // SAFETY: c_path is a valid NUL-terminated string; handle receives the new connection.
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                c_path.as_ptr(),
                &mut handle,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE,
                ptr::null(),
            )
        };
        let db = RawDb { handle };
        check(handle, rc, "open")?;
        Ok(db)
    }

    /// Runs one or more statements that return no rows.
    pub fn exec(&self, sql: &str) -> Result<(), String> {
        let c_sql = CString::new(sql).map_err(|e| e.to_string())?;
        // SAFETY: live handle, valid SQL string, no callback.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.handle,
                c_sql.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        check(self.handle, rc, sql)
    }

    /// Prepares `sql` once, for repeated execution.
    pub fn prepare(&self, sql: &str) -> Result<RawStmt<'_>, String> {
        let mut stmt = ptr::null_mut();
        // SAFETY: live handle; the length covers the whole UTF-8 text; stmt receives the
        // statement, which RawStmt finalizes.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                self.handle,
                sql.as_ptr().cast(),
                sql.len() as c_int,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        check(self.handle, rc, sql)?;
        Ok(RawStmt { stmt, db: self })
    }
}

impl Drop for RawDb {
    fn drop(&mut self) {
        // SAFETY: closed exactly once; RawStmt borrows RawDb, so every statement is already
        // finalized.
        unsafe {
            ffi::sqlite3_close(self.handle);
        }
    }
}

impl RawStmt<'_> {
    /// Binds text to the 1-based parameter `index` (copied by SQLite).
    pub fn bind_text(&mut self, index: c_int, text: &str) -> Result<(), String> {
        // SAFETY: live statement; SQLITE_TRANSIENT makes SQLite copy the bytes now.
        let rc = unsafe {
            ffi::sqlite3_bind_text(
                self.stmt,
                index,
                text.as_ptr().cast(),
                text.len() as c_int,
                ffi::SQLITE_TRANSIENT(),
            )
        };
        check(self.db.handle, rc, "bind_text")
    }

    /// Binds an integer to the 1-based parameter `index`.
    pub fn bind_int(&mut self, index: c_int, value: i64) -> Result<(), String> {
        // SAFETY: live statement.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.stmt, index, value) };
        check(self.db.handle, rc, "bind_int64")
    }

    /// Steps once; true when a row is available.
    pub fn step(&mut self) -> Result<bool, String> {
        // SAFETY: live statement.
        let rc = unsafe { ffi::sqlite3_step(self.stmt) };
        check(self.db.handle, rc, "step")?;
        Ok(rc == ffi::SQLITE_ROW)
    }

    /// The integer in column `index` (0-based) of the current row.
    pub fn column_int(&self, index: c_int) -> i64 {
        // SAFETY: live statement positioned on a row (after step returned true).
        unsafe { ffi::sqlite3_column_int64(self.stmt, index) }
    }

    /// The text in column `index` (0-based) of the current row, copied.
    pub fn column_text(&self, index: c_int) -> String {
        // SAFETY: live statement positioned on a row; the pointer is valid until the next
        // step/reset, and the bytes are copied before that.
        unsafe {
            let ptr = ffi::sqlite3_column_text(self.stmt, index);
            let len = ffi::sqlite3_column_bytes(self.stmt, index);
            if ptr.is_null() {
                return String::new();
            }
            String::from_utf8_lossy(std::slice::from_raw_parts(ptr, len as usize)).into_owned()
        }
    }

    /// Resets the statement for the next execution (bindings are kept until rebound).
    pub fn reset(&mut self) -> Result<(), String> {
        // SAFETY: live statement.
        let rc = unsafe { ffi::sqlite3_reset(self.stmt) };
        check(self.db.handle, rc, "reset")
    }
}

impl Drop for RawStmt<'_> {
    fn drop(&mut self) {
        // SAFETY: finalized exactly once, before its RawDb (which it borrows) is closed.
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
        }
    }
}

/// litedal's schema: every migration's `up.sql`, so the raw floor maintains the same
/// indexes as litedal does.
pub const SCHEMA: &[&str] = &[
    include_str!("../../migrations/2026-11-29-000001_create_users/up.sql"),
    include_str!("../../migrations/2026-11-29-000002_create_posts/up.sql"),
    include_str!("../../migrations/2026-11-29-000003_users_active_id_index/up.sql"),
];

/// Opens a raw connection with the PRAGMAs litedal gives a writer (`synchronous` as given)
/// and the `users` table.
pub fn open_like_litedal(path: &Path, synchronous: &str) -> Result<RawDb, String> {
    let db = RawDb::open(path)?;
    db.exec("PRAGMA busy_timeout = 5000")?;
    db.exec("PRAGMA journal_mode = WAL")?;
    db.exec("PRAGMA foreign_keys = ON")?;
    db.exec(&format!("PRAGMA synchronous = {synchronous}"))?;
    db.exec("PRAGMA cache_size = -2000")?;
    db.exec("PRAGMA temp_store = MEMORY")?;
    db.exec("PRAGMA mmap_size = 268435456")?;
    db.exec("PRAGMA wal_autocheckpoint = 1000")?;
    db.exec("PRAGMA journal_size_limit = 67108864")?;
    for migration in SCHEMA {
        db.exec(migration)?;
    }
    Ok(db)
}

/// The raw single-row floor: one cached prepared statement, all rows in one transaction.
pub fn insert_users_single_row(db: &RawDb, emails: &[String]) -> Result<usize, String> {
    db.exec("BEGIN IMMEDIATE")?;
    {
        let mut stmt = db.prepare("INSERT INTO users (name, email, active) VALUES (?, ?, ?)")?;
        for email in emails {
            stmt.bind_text(1, "user")?;
            stmt.bind_text(2, email)?;
            stmt.bind_int(3, 1)?;
            stmt.step()?;
            stmt.reset()?;
        }
    }
    db.exec("COMMIT")?;
    Ok(emails.len())
}

/// The raw multi-row floor: statements of `rows_per_statement` rows (prepared once), the
/// remainder in one more statement, all in one transaction.
pub fn insert_users_multi_row(
    db: &RawDb,
    emails: &[String],
    rows_per_statement: usize,
) -> Result<usize, String> {
    let sql = |rows: usize| {
        let mut sql = String::from("INSERT INTO users (name, email, active) VALUES ");
        for i in 0..rows {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str("(?, ?, ?)");
        }
        sql
    };
    db.exec("BEGIN IMMEDIATE")?;
    {
        let full = db.prepare(&sql(rows_per_statement))?;
        let mut full = Some(full);
        for chunk in emails.chunks(rows_per_statement) {
            let mut partial;
            let stmt = if chunk.len() == rows_per_statement {
                full.as_mut().ok_or("statement missing")?
            } else {
                partial = db.prepare(&sql(chunk.len()))?;
                &mut partial
            };
            for (i, email) in chunk.iter().enumerate() {
                let base = (i * 3) as c_int;
                stmt.bind_text(base + 1, "user")?;
                stmt.bind_text(base + 2, email)?;
                stmt.bind_int(base + 3, 1)?;
            }
            stmt.step()?;
            stmt.reset()?;
        }
        full.take();
    }
    db.exec("COMMIT")?;
    Ok(emails.len())
}

/// Opens a raw reader with the PRAGMAs litedal gives its read connections.
pub fn open_reader_like_litedal(path: &Path) -> Result<RawDb, String> {
    let db = RawDb::open(path)?;
    db.exec("PRAGMA busy_timeout = 5000")?;
    db.exec("PRAGMA foreign_keys = ON")?;
    db.exec("PRAGMA cache_size = -2000")?;
    db.exec("PRAGMA temp_store = MEMORY")?;
    db.exec("PRAGMA mmap_size = 268435456")?;
    db.exec("PRAGMA query_only = ON")?;
    Ok(db)
}

/// The columns of litedal's `User` read model, in its order.
pub const USER_COLUMNS: &str = "id, name, email, active, created_at, updated_at";

/// One user row as the raw floor reads it: every column copied out, as diesel does.
pub struct RawUser {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl RawStmt<'_> {
    /// Reads the current row as a user (columns in `USER_COLUMNS` order).
    pub fn user(&self) -> RawUser {
        RawUser {
            id: self.column_int(0),
            name: self.column_text(1),
            email: self.column_text(2),
            active: self.column_int(3) != 0,
            created_at: self.column_text(4),
            updated_at: self.column_text(5),
        }
    }
}
