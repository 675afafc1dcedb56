//! The raw SQLite floor: the C API through libsqlite3-sys, with no pool, no ORM and no
//! allocation per row beyond the copied-out column text. Shared by the throughput benchmark
//! and the `blog` example (`#[path]`-included), so both measure against the same floor.
//!
//! Every function here is safe for any input. The invariants the `unsafe` blocks rely on:
//!
//! - `RawDb` owns a non-null connection from `sqlite3_open_v2`, closed exactly once in `Drop`.
//!   Its raw pointer makes it neither `Send` nor `Sync`, so every call on a connection (and
//!   on its statements) comes from one thread: a pointer SQLite returns (an error message,
//!   a column's text) stays valid until this module, on this thread, makes the next call.
//! - `RawStmt` owns a non-null statement of that connection, finalized exactly once in
//!   `Drop`; it borrows its `RawDb`, so the connection outlives it.
//! - Column values can be read only through a `Row`, which only `step` returns when SQLite
//!   has a current row. A `Row` borrows its statement, so the statement cannot be stepped,
//!   reset, rebound or finalized while it lives; its column indexes are checked against
//!   `sqlite3_data_count` (taken once per row).
//! - Every Rust length handed to C fits the C parameter, or the call is an `Err` naming the
//!   length and the limit: `int` byte counts are converted with `c_len`, text is bound with
//!   the 64-bit `sqlite3_bind_text64` (SQLite then enforces `SQLITE_LIMIT_LENGTH`), and
//!   NUL-terminated strings are `CString`s, which cannot contain a NUL.
//! - Text bindings pass `SQLITE_TRANSIENT`, so SQLite copies the bytes and no Rust buffer
//!   has to outlive the call.

#![allow(dead_code)]

use std::ffi::{CStr, CString, c_int};
use std::fmt::Debug;
use std::path::Path;
use std::ptr;

use libsqlite3_sys as ffi;

/// An open SQLite connection.
pub struct RawDb {
    /// Non-null, open, owned by this value.
    handle: *mut ffi::sqlite3,
}

/// A prepared statement of a `RawDb`.
pub struct RawStmt<'db> {
    /// Non-null, prepared on `db`, owned by this value.
    stmt: *mut ffi::sqlite3_stmt,
    db: &'db RawDb,
}

/// The current row of a statement, from `RawStmt::step`: the only way to read columns.
///
/// It borrows the statement (through the `&mut` that `step` took), so it cannot outlive the
/// row: the next `step`, `reset`, a rebinding or finalizing the statement all need that
/// borrow back.
pub struct Row<'s> {
    stmt: &'s RawStmt<'s>,
    /// The number of columns of this row (`sqlite3_data_count`), so indexes are checked
    /// without a call into C.
    columns: c_int,
}

/// `len` as an `int` byte count of the C API, or an error naming the length and the limit
/// (a plain `as` cast would turn lengths above 2 GiB negative, and SQLite would then read
/// past the Rust buffer looking for a NUL terminator).
fn c_len(what: &str, len: usize) -> Result<c_int, String> {
    c_int::try_from(len).map_err(|_| {
        format!(
            "{what} is {len} bytes, more than the {} bytes the SQLite C API takes",
            c_int::MAX
        )
    })
}

impl RawDb {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<RawDb, String> {
        // Not `to_string_lossy`: a lossy conversion would open a different file.
        let path_text = path
            .to_str()
            .ok_or_else(|| format!("open: path {} is not UTF-8", path.display()))?;
        c_len("open: path", path_text.len())?;
        let c_path = CString::new(path_text).map_err(|e| format!("open: path: {e}"))?;
        let mut handle = ptr::null_mut();
        // SAFETY: `c_path` is NUL-terminated without an interior NUL and outlives the call;
        // `handle` is a valid out-pointer; a null VFS name selects the default VFS.
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                c_path.as_ptr(),
                &mut handle,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE,
                ptr::null(),
            )
        };
        if handle.is_null() {
            // SQLite could not even allocate the connection object.
            return Err(format!(
                "open {}: out of memory (code {rc})",
                path.display()
            ));
        }
        // Owned from here on: `Drop` closes the handle, also when opening failed (SQLite
        // returns a handle carrying the error message, which must still be closed).
        let db = RawDb { handle };
        db.check(rc, "open")?;
        Ok(db)
    }

    /// Turns SQLite's query planner stability guarantee on or off, as litedal does on its
    /// connections (`DB_STABLE_QUERY_PLANS`): with it on, a statement with a bound `LIMIT` or
    /// `LIKE` pattern is not re-prepared when it is rebound.
    pub fn set_stable_query_plans(&self, on: bool) -> Result<(), String> {
        let mut now: c_int = -1;
        // SAFETY: live handle; SQLITE_DBCONFIG_ENABLE_QPSG takes an `int` and an `int*`
        // (a valid local that receives the state after the call).
        let rc = unsafe {
            ffi::sqlite3_db_config(
                self.handle,
                ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
                c_int::from(on),
                &mut now as *mut c_int,
            )
        };
        self.check(rc, "sqlite3_db_config(SQLITE_DBCONFIG_ENABLE_QPSG)")?;
        if now != c_int::from(on) {
            return Err(format!(
                "query planner stability guarantee is {now}, not {on}"
            ));
        }
        Ok(())
    }

    /// Runs one or more statements that return no rows.
    pub fn exec(&self, sql: &str) -> Result<(), String> {
        // SQLite measures the NUL-terminated text itself; keep it within the C API's `int`
        // lengths all the same (and fail before copying a huge string).
        c_len("exec: SQL", sql.len())?;
        let c_sql = CString::new(sql).map_err(|e| format!("exec: SQL: {e}"))?;
        // SAFETY: live handle (RawDb's invariant); `c_sql` is NUL-terminated without an
        // interior NUL and outlives the call; with no callback, the callback argument and
        // the error-message out-pointer may be null.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.handle,
                c_sql.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        self.check(rc, sql)
    }

    /// Prepares the first statement of `sql` once, for repeated execution.
    pub fn prepare(&self, sql: &str) -> Result<RawStmt<'_>, String> {
        if sql.is_empty() {
            // Also keeps a dangling zero-length slice pointer away from C.
            return Err("prepare: no SQL statement in \"\"".to_string());
        }
        let len = c_len("prepare: SQL", sql.len())?;
        let mut stmt = ptr::null_mut();
        // SAFETY: live handle; `sql` is a non-empty slice valid for reads of `len` bytes,
        // and `len` is `sql.len()` as a non-negative `int`, so SQLite reads exactly those
        // bytes and never looks for a NUL terminator; `stmt` is a valid out-pointer, and a
        // null tail out-pointer is allowed.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                self.handle,
                sql.as_ptr().cast(),
                len,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        self.check(rc, sql)?;
        if stmt.is_null() {
            // SQLITE_OK without a statement: the text was only whitespace or comments.
            return Err(format!("prepare: no SQL statement in {sql:?}"));
        }
        Ok(RawStmt { stmt, db: self })
    }

    /// Ok for SQLITE_OK, SQLITE_ROW and SQLITE_DONE; otherwise the connection's error
    /// message, prefixed by `what`.
    fn check(&self, rc: c_int, what: &str) -> Result<(), String> {
        if rc == ffi::SQLITE_OK || rc == ffi::SQLITE_DONE || rc == ffi::SQLITE_ROW {
            return Ok(());
        }
        Err(format!("{what}: {} (code {rc})", self.error_message()))
    }

    /// The message of the connection's most recent error, copied.
    fn error_message(&self) -> String {
        // SAFETY: live handle. The result is null or a NUL-terminated string owned by
        // SQLite, valid until the next call on this connection; RawDb is not Sync, so no
        // other thread can make one, and it is copied below before this thread makes one.
        let message = unsafe { ffi::sqlite3_errmsg(self.handle) };
        if message.is_null() {
            return "unknown error".to_string();
        }
        // SAFETY: non-null, NUL-terminated and valid for the copy, as above.
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    }

    /// The connection's current value of the limit `id` (an `SQLITE_LIMIT_*`).
    fn limit(&self, id: c_int) -> c_int {
        // SAFETY: live handle; a negative new value only reads the limit, and an unknown
        // `id` returns -1.
        unsafe { ffi::sqlite3_limit(self.handle, id, -1) }
    }

    /// Sets the limit `id` to `value` (SQLite clamps it to its compile-time maximum);
    /// returns the previous value.
    fn set_limit(&self, id: c_int, value: c_int) -> c_int {
        // SAFETY: live handle; SQLite ignores an unknown `id` and clamps `value`.
        unsafe { ffi::sqlite3_limit(self.handle, id, value) }
    }
}

impl Drop for RawDb {
    fn drop(&mut self) {
        // SAFETY: live handle, closed exactly once, here. Every RawStmt borrows its RawDb,
        // so all of them are finalized by now; had one been leaked (`mem::forget`),
        // sqlite3_close would return SQLITE_BUSY and leave the connection open: a leak, not
        // a use after free.
        unsafe {
            ffi::sqlite3_close(self.handle);
        }
    }
}

impl RawStmt<'_> {
    /// Binds text to the 1-based parameter `index` (copied by SQLite). Text longer than
    /// SQLite's `SQLITE_LIMIT_LENGTH` is an error naming the length and the limit; an
    /// index out of range is an error (SQLITE_RANGE).
    pub fn bind_text(&mut self, index: c_int, text: &str) -> Result<(), String> {
        // An empty `&str` may point nowhere, and a null pointer would bind NULL instead of
        // '': give SQLite a real (static) byte to point at.
        let bytes = if text.is_empty() {
            c"".as_ptr()
        } else {
            text.as_ptr().cast()
        };
        // Lossless: usize has at most 64 bits, and a slice at most isize::MAX bytes, so
        // SQLite's signed 64-bit copy of it is never negative.
        let len = text.len() as ffi::sqlite3_uint64;
        // SAFETY: live statement (RawStmt's invariant), not running a row (`&mut self`: no
        // Row is alive); `bytes` is valid for reads of `len` bytes and `len` is the exact,
        // non-negative length, so SQLite reads only those bytes; SQLite checks `index`
        // against the parameter count (SQLITE_RANGE) and `len` against SQLITE_LIMIT_LENGTH
        // (SQLITE_TOOBIG) before reading them; SQLITE_TRANSIENT makes it copy the bytes
        // before returning; `&str` is UTF-8, as SQLITE_UTF8 declares.
        let rc = unsafe {
            ffi::sqlite3_bind_text64(
                self.stmt,
                index,
                bytes,
                len,
                ffi::SQLITE_TRANSIENT(),
                ffi::SQLITE_UTF8 as u8,
            )
        };
        if rc == ffi::SQLITE_TOOBIG {
            return Err(format!(
                "bind_text: parameter {index}: the text is {} bytes, more than SQLite's \
                 SQLITE_LIMIT_LENGTH of {} bytes",
                text.len(),
                self.db.limit(ffi::SQLITE_LIMIT_LENGTH)
            ));
        }
        self.db.check(rc, "bind_text")
    }

    /// Binds an integer to the 1-based parameter `index` (out of range: an error).
    pub fn bind_int(&mut self, index: c_int, value: i64) -> Result<(), String> {
        // SAFETY: live statement, no Row alive (`&mut self`); SQLite checks `index` against
        // the parameter count (SQLITE_RANGE).
        let rc = unsafe { ffi::sqlite3_bind_int64(self.stmt, index, value) };
        self.db.check(rc, "bind_int64")
    }

    /// Binds a double to the 1-based parameter `index` (out of range: an error).
    pub fn bind_double(&mut self, index: c_int, value: f64) -> Result<(), String> {
        // SAFETY: live statement, no Row alive (`&mut self`); SQLite checks `index` against
        // the parameter count (SQLITE_RANGE).
        let rc = unsafe { ffi::sqlite3_bind_double(self.stmt, index, value) };
        self.db.check(rc, "bind_double")
    }

    /// Steps once: the current row, or `None` when the statement is done.
    pub fn step(&mut self) -> Result<Option<Row<'_>>, String> {
        // SAFETY: live statement; `&mut self` means no Row of an earlier step is alive, so
        // nothing can read the column values this call replaces.
        let rc = unsafe { ffi::sqlite3_step(self.stmt) };
        if rc == ffi::SQLITE_ROW {
            // SAFETY: live statement. sqlite3_data_count is the number of columns of the
            // current row; taken per row, since stepping may have re-prepared the statement
            // after a schema change, with a different number of columns.
            let columns = unsafe { ffi::sqlite3_data_count(self.stmt) };
            return Ok(Some(Row {
                stmt: self,
                columns,
            }));
        }
        self.db.check(rc, "step")?;
        Ok(None)
    }

    /// Resets the statement for the next execution (bindings are kept until rebound).
    pub fn reset(&mut self) -> Result<(), String> {
        // SAFETY: live statement, no Row alive (`&mut self`).
        let rc = unsafe { ffi::sqlite3_reset(self.stmt) };
        self.db.check(rc, "reset")
    }

    /// How many times SQLite re-prepared this statement (`SQLITE_STMTSTATUS_REPREPARE`): a
    /// statement whose plan depends on a bound value is re-prepared when it is rebound.
    pub fn reprepares(&self) -> i64 {
        // SAFETY: live statement; reading a counter (reset flag 0) changes nothing.
        i64::from(unsafe {
            ffi::sqlite3_stmt_status(self.stmt, ffi::SQLITE_STMTSTATUS_REPREPARE, 0)
        })
    }
}

impl Drop for RawStmt<'_> {
    fn drop(&mut self) {
        // SAFETY: live statement, finalized exactly once, here, while its connection is open
        // (RawStmt borrows its RawDb); no Row is alive (a Row borrows the statement).
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
        }
    }
}

impl Row<'_> {
    /// The number of columns of this row.
    pub fn column_count(&self) -> c_int {
        self.columns
    }

    /// `index` if it names a column of this row.
    fn column(&self, index: c_int) -> Result<c_int, String> {
        if (0..self.columns).contains(&index) {
            Ok(index)
        } else {
            Err(format!(
                "column {index} out of range: the row has {} columns",
                self.columns
            ))
        }
    }

    /// The integer in column `index` (0-based).
    pub fn column_int(&self, index: c_int) -> Result<i64, String> {
        let index = self.column(index)?;
        // SAFETY: `column` checked that `index` is a column of this row.
        Ok(unsafe { self.int_unchecked(index) })
    }

    /// The text in column `index` (0-based), copied; NULL reads as "".
    pub fn column_text(&self, index: c_int) -> Result<String, String> {
        let index = self.column(index)?;
        // SAFETY: `column` checked that `index` is a column of this row.
        Ok(unsafe { self.text_unchecked(index) })
    }

    /// Reads the row as a user (columns in `USER_COLUMNS` order).
    pub fn user(&self) -> Result<RawUser, String> {
        // One bounds check for the six columns, not one per column.
        if self.columns < 6 {
            return Err(format!(
                "user: the row has {} columns, not the 6 of USER_COLUMNS",
                self.columns
            ));
        }
        // SAFETY: 0..=5 are columns of this row (checked above).
        unsafe {
            Ok(RawUser {
                id: self.int_unchecked(0),
                name: self.text_unchecked(1),
                email: self.text_unchecked(2),
                active: self.int_unchecked(3) != 0,
                created_at: self.text_unchecked(4),
                updated_at: self.text_unchecked(5),
            })
        }
    }

    /// The integer in column `index`.
    ///
    /// # Safety
    ///
    /// `index` must be a column of this row: `0 <= index < self.columns`.
    #[inline]
    unsafe fn int_unchecked(&self, index: c_int) -> i64 {
        // SAFETY: live statement on a current row (a Row exists only from a step that
        // returned SQLITE_ROW until the statement is next stepped, reset or finalized, all
        // of which need the borrow this Row holds); the caller guarantees
        // 0 <= index < sqlite3_data_count.
        unsafe { ffi::sqlite3_column_int64(self.stmt.stmt, index) }
    }

    /// The text in column `index`, copied; NULL reads as "".
    ///
    /// # Safety
    ///
    /// `index` must be a column of this row: `0 <= index < self.columns`.
    #[inline]
    unsafe fn text_unchecked(&self, index: c_int) -> String {
        // SAFETY: live statement on a current row, index in range (as in `int_unchecked`).
        // Text first, then its length: the order SQLite documents, so the length is that of
        // the text the pointer points at and the pointer stays valid.
        let text = unsafe { ffi::sqlite3_column_text(self.stmt.stmt, index) };
        // SAFETY: as above.
        let len = unsafe { ffi::sqlite3_column_bytes(self.stmt.stmt, index) };
        let len = usize::try_from(len).unwrap_or(0);
        if text.is_null() || len == 0 {
            return String::new();
        }
        // SAFETY: SQLite keeps `text` valid for `len` bytes until the statement is stepped,
        // reset or finalized or this column is converted to another type; none of that can
        // happen before the copy below (the Row borrows the statement, and neither RawDb nor
        // RawStmt can be used from another thread).
        let bytes = unsafe { std::slice::from_raw_parts(text, len) };
        String::from_utf8_lossy(bytes).into_owned()
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
/// and litedal's example schema (the `users` and `posts` tables).
pub fn open_like_litedal(path: &Path, synchronous: &str) -> Result<RawDb, String> {
    let db = open_writer_like_litedal(path, synchronous)?;
    for migration in SCHEMA {
        db.exec(migration)?;
    }
    Ok(db)
}

/// Opens a raw connection set up as litedal sets up a writer (the PRAGMAs, `synchronous` as
/// given, and stable query plans), and no schema.
pub fn open_writer_like_litedal(path: &Path, synchronous: &str) -> Result<RawDb, String> {
    let db = RawDb::open(path)?;
    db.set_stable_query_plans(true)?;
    db.exec("PRAGMA busy_timeout = 5000")?;
    db.exec("PRAGMA journal_mode = WAL")?;
    db.exec("PRAGMA foreign_keys = ON")?;
    db.exec(&format!("PRAGMA synchronous = {synchronous}"))?;
    db.exec("PRAGMA cache_size = -2000")?;
    db.exec("PRAGMA temp_store = MEMORY")?;
    db.exec("PRAGMA mmap_size = 268435456")?;
    db.exec("PRAGMA wal_autocheckpoint = 1000")?;
    db.exec("PRAGMA journal_size_limit = 67108864")?;
    Ok(db)
}

/// Runs `body` in a `BEGIN IMMEDIATE` transaction: committed if it succeeds, rolled back if
/// it (or the commit) fails, so an error leaves no transaction open.
pub fn immediate_transaction<T>(
    db: &RawDb,
    body: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    db.exec("BEGIN IMMEDIATE")?;
    match body().and_then(|value| db.exec("COMMIT").map(|()| value)) {
        Ok(value) => Ok(value),
        Err(e) => {
            // The original error is the one to report; a failed rollback adds nothing.
            let _ = db.exec("ROLLBACK");
            Err(e)
        }
    }
}

/// The raw single-row floor: one cached prepared statement, all rows in one transaction.
pub fn insert_users_single_row(db: &RawDb, emails: &[String]) -> Result<usize, String> {
    immediate_transaction(db, || {
        let mut stmt = db.prepare("INSERT INTO users (name, email, active) VALUES (?, ?, ?)")?;
        for email in emails {
            stmt.bind_text(1, "user")?;
            stmt.bind_text(2, email)?;
            stmt.bind_int(3, 1)?;
            stmt.step()?;
            stmt.reset()?;
        }
        Ok(emails.len())
    })
}

/// The raw multi-row floor: statements of `rows_per_statement` rows (prepared once), the
/// remainder in one more statement, all in one transaction. `rows_per_statement` must be
/// at least 1 and at most SQLITE_LIMIT_VARIABLE_NUMBER / 3 (3 parameters a row).
pub fn insert_users_multi_row(
    db: &RawDb,
    emails: &[String],
    rows_per_statement: usize,
) -> Result<usize, String> {
    let max_parameters = db.limit(ffi::SQLITE_LIMIT_VARIABLE_NUMBER);
    let max_rows = usize::try_from(max_parameters / 3).unwrap_or(0);
    if !(1..=max_rows).contains(&rows_per_statement) {
        return Err(format!(
            "insert_users_multi_row: rows_per_statement is {rows_per_statement}, not within \
             1..={max_rows} (3 parameters a row, SQLITE_LIMIT_VARIABLE_NUMBER {max_parameters})"
        ));
    }
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
    immediate_transaction(db, || {
        let mut full = db.prepare(&sql(rows_per_statement))?;
        for chunk in emails.chunks(rows_per_statement) {
            let mut partial;
            let stmt = if chunk.len() == rows_per_statement {
                &mut full
            } else {
                partial = db.prepare(&sql(chunk.len()))?;
                &mut partial
            };
            // At most 3 * rows_per_statement <= SQLITE_LIMIT_VARIABLE_NUMBER: fits c_int.
            let mut base: c_int = 0;
            for email in chunk {
                stmt.bind_text(base + 1, "user")?;
                stmt.bind_text(base + 2, email)?;
                stmt.bind_int(base + 3, 1)?;
                base += 3;
            }
            stmt.step()?;
            stmt.reset()?;
        }
        Ok(emails.len())
    })
}

/// Opens a raw reader set up as litedal sets up its read connections: the PRAGMAs and
/// stable query plans.
pub fn open_reader_like_litedal(path: &Path) -> Result<RawDb, String> {
    let db = RawDb::open(path)?;
    db.set_stable_query_plans(true)?;
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

/// Checks this module's guarantees on an in-memory database. The benchmark runs with
/// `harness = false`, so `#[test]`s here would never run; it calls this instead.
pub fn self_check() -> Result<(), String> {
    fn expect_eq<T: PartialEq + Debug>(what: &str, got: T, want: T) -> Result<(), String> {
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "raw_sqlite self-check: {what}: got {got:?}, want {want:?}"
            ))
        }
    }
    fn expect_err<T>(
        what: &str,
        result: Result<T, String>,
        needles: &[&str],
    ) -> Result<(), String> {
        match result {
            Ok(_) => Err(format!(
                "raw_sqlite self-check: {what}: succeeded, want an error"
            )),
            Err(e) if needles.iter().all(|needle| e.contains(needle)) => Ok(()),
            Err(e) => Err(format!(
                "raw_sqlite self-check: {what}: error {e:?} does not mention {needles:?}"
            )),
        }
    }

    // Lengths that do not fit C's `int` are errors naming the length and the limit (the
    // prepare/exec/open path of a string over 2 GiB, without allocating one).
    let max = c_int::MAX as usize;
    expect_eq("c_len at the limit", c_len("SQL", max)?, c_int::MAX)?;
    expect_err(
        "c_len over the limit",
        c_len("SQL", max + 1),
        &["2147483648 bytes", "2147483647 bytes"],
    )?;

    let db = RawDb::open(Path::new(":memory:"))?;
    expect_err("prepare of nothing", db.prepare(""), &["no SQL statement"])?;
    expect_err(
        "prepare of a comment",
        db.prepare("  -- nothing"),
        &["no SQL statement"],
    )?;
    expect_err("exec with a NUL", db.exec("SELECT 1;\0"), &["nul byte"])?;

    // Columns only on a row, only in range; text lengths are passed, not NUL-terminated.
    let mut stmt = db.prepare("SELECT ?1, ?2, length(CAST(?2 AS BLOB)), ?2 IS NULL")?;
    stmt.bind_int(1, 42)?;
    stmt.bind_text(2, "a\0é")?;
    {
        let row = stmt.step()?.ok_or("raw_sqlite self-check: no row")?;
        expect_eq("column_count", row.column_count(), 4)?;
        expect_eq("int column", row.column_int(0)?, 42)?;
        expect_eq("text column", row.column_text(1)?.as_str(), "a\0é")?;
        expect_eq("bound text length", row.column_int(2)?, 4)?;
        expect_err(
            "column past the end",
            row.column_int(4),
            &["column 4", "4 columns"],
        )?;
        expect_err("negative column", row.column_text(-1), &["column -1"])?;
        expect_err("user of a 4-column row", row.user(), &["4 columns"])?;
    }
    expect_eq("step after the last row", stmt.step()?.is_none(), true)?;
    stmt.reset()?;
    // The empty string binds '' (not NULL).
    stmt.bind_text(2, "")?;
    {
        let row = stmt.step()?.ok_or("raw_sqlite self-check: no row")?;
        expect_eq("empty text", row.column_text(1)?.as_str(), "")?;
        expect_eq("empty text length", row.column_int(2)?, 0)?;
        expect_eq("empty text is not NULL", row.column_int(3)?, 0)?;
    }
    stmt.reset()?;
    expect_err("bind to parameter 0", stmt.bind_int(0, 1), &["bind_int64"])?;
    expect_err("bind past the end", stmt.bind_text(3, "x"), &["bind_text"])?;
    // Text over SQLite's length limit: the error path a string over 2 GiB takes (the limit
    // is at most 2^31 - 1), shown with the limit lowered as far as SQLite allows (30 bytes).
    let old_limit = db.set_limit(ffi::SQLITE_LIMIT_LENGTH, 0);
    let limit = db.limit(ffi::SQLITE_LIMIT_LENGTH);
    let too_long = "x".repeat(usize::try_from(limit).unwrap_or(0) + 1);
    let result = stmt.bind_text(2, &too_long);
    let at_limit = stmt.bind_text(2, &too_long[1..]);
    db.set_limit(ffi::SQLITE_LIMIT_LENGTH, old_limit);
    at_limit?;
    expect_err(
        "text over the length limit",
        result,
        &[
            &format!("{} bytes", too_long.len()),
            &format!("{limit} bytes"),
        ],
    )?;
    drop(stmt);

    // The insert helpers, and a failed insert leaves no transaction open.
    let db = open_like_litedal(Path::new(":memory:"), "OFF")?;
    let emails: Vec<String> = (0..5).map(|i| format!("self-check-{i}@example")).collect();
    expect_eq(
        "single-row insert",
        insert_users_single_row(&db, &emails[..2])?,
        2,
    )?;
    expect_eq(
        "multi-row insert (a full statement and a remainder)",
        insert_users_multi_row(&db, &emails[2..], 2)?,
        3,
    )?;
    expect_err(
        "0 rows per statement",
        insert_users_multi_row(&db, &emails, 0),
        &["rows_per_statement is 0"],
    )?;
    expect_err(
        "too many rows per statement",
        insert_users_multi_row(&db, &emails, usize::MAX),
        &["rows_per_statement"],
    )?;
    let duplicate = ["new@example".to_string(), emails[0].clone()];
    expect_err(
        "duplicate email",
        insert_users_single_row(&db, &duplicate),
        &["UNIQUE"],
    )?;
    db.exec("BEGIN")?; // fails if the failed insert had left its transaction open
    db.exec("COMMIT")?;
    let mut read = db.prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))?;
    let mut read_emails = vec![];
    while let Some(row) = read.step()? {
        let user = row.user()?;
        expect_eq("user name", user.name.as_str(), "user")?;
        read_emails.push(user.email);
    }
    expect_eq("users read back", read_emails, emails)?;
    drop(read);
    // A bound LIMIT: re-prepared at every rebinding by default, never with stable plans.
    let limited = "SELECT id FROM users ORDER BY id LIMIT ?";
    for (stable, want_reprepares) in [(true, 0), (false, 2)] {
        db.set_stable_query_plans(stable)?;
        let mut stmt = db.prepare(limited)?;
        for limit in [1, 2] {
            stmt.bind_int(1, limit)?;
            let mut rows = 0;
            while stmt.step()?.is_some() {
                rows += 1;
            }
            stmt.reset()?;
            expect_eq("rows under the bound LIMIT", rows, limit)?;
        }
        expect_eq(
            &format!("re-prepares with stable plans {stable}"),
            stmt.reprepares(),
            want_reprepares,
        )?;
    }
    Ok(())
}
