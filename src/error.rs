//! The one error type of litedal, and the mapping from diesel's and r2d2's errors.
//!
//! Callers match on the variants (`Busy`, `Conflict`, `NotFound`, ...) instead of parsing
//! SQLite's messages; the mapping from SQLite's messages lives here and nowhere else.

use std::path::PathBuf;
use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::pragmas::Role;

/// Result alias used throughout litedal.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in litedal.
///
/// The enum is `#[non_exhaustive]`: new failure kinds may be added without a breaking change,
/// so a `match` needs a catch-all arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid. Nothing was opened.
    #[error("invalid configuration: {var}={value:?}: {reason}")]
    Config {
        /// The environment variable (or builder setting) that holds the bad value.
        var: &'static str,
        /// The value as given (lossily decoded if it was not UTF-8).
        value: String,
        /// What is accepted instead.
        reason: String,
    },

    /// `DATABASE_URL` names a database litedal cannot open (another engine or a remote service).
    #[error("unsupported DATABASE_URL {url:?}: {hint}")]
    UnsupportedUrl {
        /// The URL as given, with any password removed.
        url: String,
        /// What to write instead.
        hint: String,
    },

    /// No pooled connection became free within `DB_POOL_TIMEOUT`.
    #[error("Database {role} pool timed out after {waited:?} waiting for a connection")]
    PoolTimeout {
        /// The pool that was exhausted.
        role: Role,
        /// How long the checkout waited.
        waited: Duration,
        /// r2d2's error, which names the last error opening a connection, if there was one.
        #[source]
        source: Option<r2d2::Error>,
    },

    /// The database stayed locked by another connection for longer than `DB_BUSY_TIMEOUT_MS`
    /// (SQLITE_BUSY). The operation did not run; retrying later is safe.
    #[error("database is locked (busy timeout expired)")]
    Busy,

    /// A table or the schema is locked by something of this same connection or of a
    /// connection sharing its page cache (SQLITE_LOCKED), e.g. `DROP TABLE` while a statement
    /// still reads that table. Waiting does not help: the statement that holds the lock must
    /// finish first, so litedal never retries this one.
    #[error("table or schema locked by the same connection or its shared cache: {message}")]
    Locked {
        /// SQLite's message, e.g. "database table is locked".
        message: String,
    },

    /// The row that an update or delete targeted does not exist.
    #[error("not found")]
    NotFound,

    /// A UNIQUE or PRIMARY KEY constraint failed.
    #[error("unique constraint failed: {constraint}{}", chunk_suffix(chunk))]
    Conflict {
        /// The key as `table.column` on both engines, e.g. `users.email` (`t.a, t.b` for a key
        /// of several columns; on PostgreSQL the constraint's name for a key on an expression).
        constraint: String,
        /// The statement of a batch insert that failed, if it was one.
        chunk: Option<BatchChunk>,
    },

    /// A FOREIGN KEY constraint failed (e.g. a post for a user that does not exist).
    #[error(
        "foreign key constraint failed{}{}",
        detail("foreign key", message),
        chunk_suffix(chunk)
    )]
    ForeignKey {
        /// The engine's message: SQLite's is only "FOREIGN KEY constraint failed", which the
        /// error's text does not repeat; PostgreSQL's names the table and constraint.
        message: String,
        /// The statement of a batch insert that failed, if it was one.
        chunk: Option<BatchChunk>,
    },

    /// A NOT NULL constraint failed.
    #[error("not null constraint failed: {column}{}", chunk_suffix(chunk))]
    NotNull {
        /// The column as `table.column` on both engines, e.g. `users.name`.
        column: String,
        /// The statement of a batch insert that failed, if it was one.
        chunk: Option<BatchChunk>,
    },

    /// A CHECK constraint failed.
    #[error(
        "check constraint failed{}{}",
        detail("check", message),
        chunk_suffix(chunk)
    )]
    Check {
        /// SQLite's message, which names the constraint.
        message: String,
        /// The statement of a batch insert that failed, if it was one.
        chunk: Option<BatchChunk>,
    },

    /// An argument is out of its accepted range (a limit, a paging cursor, ...).
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput {
        /// What was invalid, e.g. "limit".
        what: &'static str,
        /// The value as given.
        value: String,
        /// What is accepted instead.
        reason: String,
    },

    /// A write was attempted on a read-only connection or a read-only database file.
    #[error("attempt to write a read-only database: {message}")]
    ReadOnly {
        /// SQLite's message.
        message: String,
    },

    /// The file at `path` exists but is not an SQLite database: its header is not SQLite's
    /// (SQLITE_NOTADB). litedal never writes to such a file: opening it fails with this error
    /// and leaves it untouched. Damage found inside a valid file is [`Error::Corrupt`].
    #[error("{} is not an SQLite database: {message}", path.display())]
    NotADatabase {
        /// The file that was opened.
        path: PathBuf,
        /// SQLite's message.
        message: String,
    },

    /// SQLite found the database corrupt while it was in use (SQLITE_CORRUPT, "database disk
    /// image is malformed"). Stop writing to it; check it with
    /// [`Database::integrity_check`](crate::Database::integrity_check) and restore a backup.
    #[error("{} is corrupt: {message}", path.as_deref().map_or_else(|| "the database".into(), |p| p.display().to_string()))]
    Corrupt {
        /// The database file, when the operation knew it.
        path: Option<PathBuf>,
        /// SQLite's message.
        message: String,
    },

    /// The disk (or the file-size limit of the process) is full: the statement was rolled
    /// back and every transaction committed before it is intact. Inside a transaction, SQLite
    /// may have rolled back the whole transaction (see [`Error::TransactionAborted`]).
    #[error("disk full: {message}; the statement was rolled back, committed data is intact")]
    DiskFull {
        /// SQLite's message.
        message: String,
    },

    /// SQLite rolled back the whole write transaction before the closure finished: a
    /// statement failed with an error SQLite answers that way (an I/O error, a full disk while
    /// the page cache spilled, out of memory, an interrupt), or the closure ran `ROLLBACK`
    /// itself. Nothing of the transaction was committed. Every later repository operation in
    /// the same closure fails with this error, and no statement run on the connection can
    /// commit until the closure returns; the transaction itself then returns the original
    /// error (`cause`), or this one when there is none. On PostgreSQL: a statement of the
    /// transaction failed and the closure still returned `Ok`; the server had aborted the
    /// transaction, so it is rolled back and returns the failed statement's error, or this
    /// one on a connection litedal did not open (no record of the statement).
    #[error(
        "the transaction was rolled back by the database before it could commit; nothing of it was committed"
    )]
    TransactionAborted {
        /// The error of the statement whose failure made SQLite roll back, when known.
        #[source]
        cause: Option<Box<Error>>,
    },

    /// Running or reading the migrations failed; none of the failed set was applied.
    #[error("Database migration failed while {doing}")]
    Migration {
        /// What litedal was doing, e.g. "running the configured migrations at open".
        doing: &'static str,
        /// diesel's error (it names the failing migration).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A file-system operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What litedal was doing, e.g. "creating the data directory".
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A write transaction was started on a thread that already holds one on the same
    /// database; it would wait for itself. Run the inner work on the connection the outer
    /// closure received (nested `conn.transaction(..)` calls become savepoints).
    #[error(
        "nested Database::transaction on the same thread would deadlock; \
         use the connection passed to the outer closure instead"
    )]
    NestedTransaction,

    /// An in-memory database has one connection, and this thread holds it already (inside
    /// [`Database::transaction`](crate::Database::transaction) or
    /// [`Database::read`](crate::Database::read), or checked out): asking the `Database` for
    /// another would wait for itself until `DB_POOL_TIMEOUT`. Use the connection in hand.
    #[error(
        "this thread already holds the in-memory database's only connection; \
         pass the connection it holds instead of the Database"
    )]
    ConnectionHeld,

    /// `litedal copy` failed while copying `table` (feature `postgres`): the rows up to
    /// `after_key` are committed in the destination (a `--resume` run continues there).
    #[cfg(feature = "postgres")]
    #[error("copying table {table} failed after key {after_key}: {source}")]
    CopyFailed {
        /// The table being copied.
        table: String,
        /// The last primary key committed in the destination (`i64::MIN`: none).
        after_key: i64,
        /// What failed.
        #[source]
        source: Box<Error>,
    },

    /// The closure of an async call ([`Database::transaction_async`](crate::Database) and
    /// friends, feature `tokio`) panicked on the blocking thread; the transaction was rolled
    /// back.
    #[error("the database closure panicked: {message}")]
    Panicked {
        /// The panic's message, when it had one.
        message: String,
    },

    /// An async call's blocking task was cancelled before it finished (the runtime is
    /// shutting down); a transaction it had begun was rolled back.
    #[error("the database task was cancelled (the runtime is shutting down)")]
    Cancelled,

    /// The application's connection hook
    /// ([`ConfigBuilder::on_connect`](crate::ConfigBuilder::on_connect)) failed on a new
    /// connection; at open, nothing was opened.
    #[error("the connection hook failed on a new {role} connection")]
    ConnectionHook {
        /// The role of the connection.
        role: Role,
        /// What the hook returned.
        #[source]
        source: Box<Error>,
    },

    /// The metrics endpoint could not be started (e.g. its address is taken) or the metrics
    /// could not be rendered.
    #[error("Database metrics: {0}")]
    Metrics(String),

    /// Any other database error (diesel's, shown as it is).
    #[error(transparent)]
    Database(DieselError),
}

/// An error with its chain of sources on one line, from [`Error::report`] or [`report`] (for
/// any error, such as a `Box<dyn Error>` a program's `main` collected).
#[derive(Debug, Clone, Copy)]
pub struct Report<'a>(&'a (dyn std::error::Error + 'static));

/// `error` and its sources on one line ("creating the data directory /srv/app: Permission
/// denied"), a source its error's own text already contains printed once.
///
/// ```
/// let error: Box<dyn std::error::Error> = litedal::Config::from_vars([("DB_POOL_SIZE", "0")])
///     .unwrap_err()
///     .into();
/// assert!(litedal::error::report(&*error).to_string().contains("DB_POOL_SIZE"));
/// ```
pub fn report<'a>(error: &'a (dyn std::error::Error + 'static)) -> Report<'a> {
    Report(error)
}

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // Some errors repeat their source in their own text: do not print it twice.
            if !shown.contains(&text) {
                write!(f, ": {text}")?;
                shown.push_str(&text);
            }
            source = cause.source();
        }
        Ok(())
    }
}

/// Which statement of a batch insert failed: the whole batch was rolled back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchChunk {
    /// Index of the failing statement, from 0.
    pub index: usize,
    /// Number of statements in the batch.
    pub count: usize,
    /// The rows of the input slice that statement inserted.
    pub rows: std::ops::Range<usize>,
}

impl std::fmt::Display for BatchChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "batch statement {} of {} (rows {}..{}); the whole batch was rolled back",
            self.index + 1,
            self.count,
            self.rows.start,
            self.rows.end
        )
    }
}

/// What a constraint message adds to "`kind` constraint failed", as ": what" (empty when it
/// adds nothing): SQLite's messages start with those very words ("FOREIGN KEY constraint
/// failed", "CHECK constraint failed: name"), which the error's text already says.
fn detail(kind: &str, message: &str) -> String {
    let lead = format!("{kind} constraint failed");
    let rest = match message.get(..lead.len()) {
        Some(head) if head.eq_ignore_ascii_case(&lead) => &message[lead.len()..],
        _ => message,
    };
    let rest = rest.trim_start_matches(':').trim();
    if rest.is_empty() {
        String::new()
    } else {
        format!(": {rest}")
    }
}

fn chunk_suffix(chunk: &Option<BatchChunk>) -> String {
    chunk
        .as_ref()
        .map(|c| format!(" in {c}"))
        .unwrap_or_default()
}

impl Error {
    /// Builds a configuration error.
    pub(crate) fn config(
        var: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Config {
            var,
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// Builds an I/O error for `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Records which batch statement a constraint error came from.
    pub(crate) fn in_chunk(self, at: BatchChunk) -> Self {
        match self {
            Error::Conflict { constraint, .. } => Error::Conflict {
                constraint,
                chunk: Some(at),
            },
            Error::ForeignKey { message, .. } => Error::ForeignKey {
                message,
                chunk: Some(at),
            },
            Error::Check { message, .. } => Error::Check {
                message,
                chunk: Some(at),
            },
            Error::NotNull { column, .. } => Error::NotNull {
                column,
                chunk: Some(at),
            },
            other => other,
        }
    }

    /// The error and its sources on one line ("creating the data directory /srv/app:
    /// Permission denied"), for logs and for programs that print errors themselves: `Display`
    /// shows this error only, and `source()` gives the cause, as error reporters expect.
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }

    /// True for `Error::Busy`: the database stayed locked for the whole busy timeout.
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Busy)
    }

    /// Attaches the database path to a `NotADatabase` or `Corrupt` error raised without one.
    pub(crate) fn with_path(self, db_path: &std::path::Path) -> Self {
        match self {
            Error::NotADatabase { path, message } if path.as_os_str().is_empty() => {
                Error::NotADatabase {
                    path: db_path.to_path_buf(),
                    message,
                }
            }
            Error::Corrupt {
                path: None,
                message,
            } => Error::Corrupt {
                path: Some(db_path.to_path_buf()),
                message,
            },
            Error::TransactionAborted { cause: Some(cause) } => Error::TransactionAborted {
                cause: Some(Box::new(cause.with_path(db_path))),
            },
            other => other,
        }
    }
}

/// True when a diesel error is SQLITE_BUSY ("database is locked"), or a PostgreSQL lock or
/// statement timeout: what maps to [`Error::Busy`].
pub(crate) fn is_busy_error(error: &DieselError) -> bool {
    matches!(error, DieselError::DatabaseError(_, info)
        if is_busy_message(info.message()) || is_pg_timeout_message(info.message()))
}

/// SQLite's message for SQLITE_BUSY; diesel reports it as `DatabaseErrorKind::Unknown`.
/// (SQLITE_LOCKED says "database table is locked" or "database schema is locked".)
fn is_busy_message(message: &str) -> bool {
    message.contains("database is locked")
}

/// PostgreSQL's messages for a lock that could not be had in time (lock_timeout, NOWAIT) and
/// for statement_timeout (SQLSTATE 55P03 and 57014; diesel does not expose the SQLSTATE).
fn is_pg_timeout_message(message: &str) -> bool {
    message.starts_with("canceling statement due to lock timeout")
        || message.starts_with("canceling statement due to statement timeout")
        || message.starts_with("could not obtain lock on")
}

/// A unique key as `table.column` (`table.a, table.b` for several), the form SQLite's message
/// has, from PostgreSQL's detail `Key (email)=(...) already exists.`; `None` for SQLite (no
/// detail) and for keys on expressions.
fn key_columns(table: Option<&str>, details: Option<&str>) -> Option<String> {
    let table = table?;
    let columns = details?.strip_prefix("Key (")?.split_once(")=(")?.0;
    if columns.contains(['(', ')']) {
        return None;
    }
    Some(
        columns
            .split(", ")
            .map(|column| format!("{table}.{}", column.trim_matches('"')))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// SQLite's messages for SQLITE_LOCKED.
fn is_locked_message(message: &str) -> bool {
    message.contains("database table is locked") || message.contains("database schema is locked")
}

/// What a constraint error names: the name diesel found, else what follows SQLite's
/// "... constraint failed: " (`users.email`; for a unique index on an expression SQLite says
/// `index 'name'`, which becomes `name`, as PostgreSQL names such a key), else the whole
/// message.
fn named(name: Option<&str>, message: String) -> String {
    name.map(str::to_owned)
        .or_else(|| {
            message.split_once("failed: ").map(|(_, rest)| {
                rest.strip_prefix("index '")
                    .and_then(|index| index.strip_suffix('\''))
                    .unwrap_or(rest)
                    .to_owned()
            })
        })
        .unwrap_or(message)
}

/// The error of chunk `index` (of `count`, `chunk_rows` rows each) of a batch insert whose
/// statement failed with `error`: logged once, and named by the returned error.
pub(crate) fn chunk_failed(
    error: DieselError,
    index: usize,
    count: usize,
    chunk_rows: usize,
    len: usize,
) -> Error {
    let start = index * chunk_rows;
    let at = BatchChunk {
        index,
        count,
        rows: start..start + len,
    };
    tracing::warn!(error = %error, chunk = %at, "Database batch insert failed");
    Error::from(error).in_chunk(at)
}

impl From<DieselError> for Error {
    fn from(error: DieselError) -> Self {
        match error {
            DieselError::NotFound => Error::NotFound,
            DieselError::DatabaseError(kind, info) => {
                let message = info.message().to_owned();
                match kind {
                    DatabaseErrorKind::UniqueViolation => Error::Conflict {
                        constraint: key_columns(info.table_name(), info.details())
                            .unwrap_or_else(|| named(info.constraint_name(), message)),
                        chunk: None,
                    },
                    DatabaseErrorKind::ForeignKeyViolation => Error::ForeignKey {
                        message,
                        chunk: None,
                    },
                    DatabaseErrorKind::CheckViolation => Error::Check {
                        message,
                        chunk: None,
                    },
                    DatabaseErrorKind::NotNullViolation => Error::NotNull {
                        column: match (info.table_name(), info.column_name()) {
                            (Some(table), Some(column)) => format!("{table}.{column}"),
                            _ => named(info.column_name(), message),
                        },
                        chunk: None,
                    },
                    DatabaseErrorKind::ReadOnlyTransaction => Error::ReadOnly { message },
                    _ if is_busy_message(&message) || is_pg_timeout_message(&message) => {
                        Error::Busy
                    }
                    _ if is_locked_message(&message) => Error::Locked { message },
                    _ if message.contains("readonly database") => Error::ReadOnly { message },
                    _ if message.contains("database or disk is full") => {
                        Error::DiskFull { message }
                    }
                    _ if message.contains("file is not a database") => Error::NotADatabase {
                        path: PathBuf::new(),
                        message,
                    },
                    _ if message.contains("database disk image is malformed") => Error::Corrupt {
                        path: None,
                        message,
                    },
                    _ => Error::Database(DieselError::DatabaseError(kind, info)),
                }
            }
            other => Error::Database(other),
        }
    }
}

impl From<diesel::ConnectionError> for Error {
    fn from(error: diesel::ConnectionError) -> Self {
        match error {
            diesel::ConnectionError::CouldntSetupConfiguration(inner) => Error::from(inner),
            other => {
                let message = other.to_string();
                if message.contains("file is not a database") {
                    Error::NotADatabase {
                        path: PathBuf::new(),
                        message,
                    }
                } else {
                    Error::Database(DieselError::DatabaseError(
                        DatabaseErrorKind::UnableToSendCommand,
                        Box::new(message),
                    ))
                }
            }
        }
    }
}

impl From<diesel_migrations::MigrationError> for Error {
    fn from(error: diesel_migrations::MigrationError) -> Self {
        Error::Migration {
            doing: "reading the migrations",
            source: Box::new(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_error(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn postgres_key_details_become_table_columns() {
        let details = Some("Key (email)=(a@x.example) already exists.");
        assert_eq!(
            key_columns(Some("users"), details).as_deref(),
            Some("users.email")
        );
        let two = Some(r#"Key (a, "B")=(1, 2) already exists."#);
        assert_eq!(key_columns(Some("t"), two).as_deref(), Some("t.a, t.B"));
        let expression = Some("Key (lower(email))=(a@x.example) already exists.");
        assert_eq!(key_columns(Some("users"), expression), None);
        assert_eq!(key_columns(None, details), None);
        assert_eq!(key_columns(Some("users"), None), None);
        assert!(is_pg_timeout_message(
            "canceling statement due to lock timeout"
        ));
        assert!(!is_pg_timeout_message("syntax error at or near"));
    }

    #[test]
    fn an_expression_index_is_named_as_on_postgres() {
        match Error::from(db_error(
            DatabaseErrorKind::UniqueViolation,
            "UNIQUE constraint failed: index 'users_email_lower_key'",
        )) {
            Error::Conflict { constraint, .. } => assert_eq!(constraint, "users_email_lower_key"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn constraint_messages_do_not_repeat_themselves() {
        let sqlite = Error::from(db_error(
            DatabaseErrorKind::ForeignKeyViolation,
            "FOREIGN KEY constraint failed",
        ));
        assert_eq!(sqlite.to_string(), "foreign key constraint failed");
        let postgres = Error::from(db_error(
            DatabaseErrorKind::ForeignKeyViolation,
            r#"insert or update on table "posts" violates foreign key constraint "posts_user_id_fkey""#,
        ));
        assert_eq!(
            postgres.to_string(),
            r#"foreign key constraint failed: insert or update on table "posts" violates foreign key constraint "posts_user_id_fkey""#
        );
        let check = Error::from(db_error(
            DatabaseErrorKind::CheckViolation,
            "CHECK constraint failed: name_not_empty",
        ));
        assert_eq!(check.to_string(), "check constraint failed: name_not_empty");
    }

    #[test]
    fn sqlite_messages_map_to_variants() {
        assert!(matches!(
            Error::from(db_error(DatabaseErrorKind::Unknown, "database is locked")),
            Error::Busy
        ));
        match Error::from(db_error(
            DatabaseErrorKind::UniqueViolation,
            "UNIQUE constraint failed: users.email",
        )) {
            Error::Conflict { constraint, .. } => assert_eq!(constraint, "users.email"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            Error::from(db_error(
                DatabaseErrorKind::ForeignKeyViolation,
                "FOREIGN KEY constraint failed"
            )),
            Error::ForeignKey { .. }
        ));
        assert!(matches!(
            Error::from(db_error(
                DatabaseErrorKind::Unknown,
                "attempt to write a readonly database"
            )),
            Error::ReadOnly { .. }
        ));
        assert!(matches!(
            Error::from(db_error(
                DatabaseErrorKind::Unknown,
                "file is not a database"
            )),
            Error::NotADatabase { .. }
        ));
        assert!(matches!(
            Error::from(DieselError::NotFound),
            Error::NotFound
        ));
    }

    #[test]
    fn locked_corrupt_and_not_null_have_their_own_variants() {
        for message in [
            "database table is locked: t",
            "database schema is locked: main",
        ] {
            let error = Error::from(db_error(DatabaseErrorKind::Unknown, message));
            assert!(
                matches!(error, Error::Locked { .. }),
                "{message}: {error:?}"
            );
            assert!(!error.is_busy());
        }
        match Error::from(db_error(
            DatabaseErrorKind::NotNullViolation,
            "NOT NULL constraint failed: users.name",
        )) {
            Error::NotNull {
                column,
                chunk: None,
            } => assert_eq!(column, "users.name"),
            other => panic!("unexpected {other:?}"),
        }
        let corrupt = Error::from(db_error(
            DatabaseErrorKind::Unknown,
            "database disk image is malformed",
        ));
        assert!(matches!(corrupt, Error::Corrupt { path: None, .. }));
        let located = corrupt.with_path(std::path::Path::new("/srv/app/main.db"));
        assert!(matches!(&located, Error::Corrupt { path: Some(p), .. } if p.ends_with("main.db")));
        assert_eq!(
            located.to_string(),
            "/srv/app/main.db is corrupt: database disk image is malformed"
        );
    }

    #[test]
    fn an_aborted_transaction_keeps_its_cause_as_the_source() {
        use std::error::Error as _;
        let cause = Error::from(db_error(
            DatabaseErrorKind::Unknown,
            "database or disk is full",
        ));
        assert!(matches!(cause, Error::DiskFull { .. }));
        let aborted = Error::TransactionAborted {
            cause: Some(Box::new(cause)),
        };
        assert!(!aborted.to_string().contains("disk is full"), "{aborted}");
        let source = aborted
            .source()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(source.contains("disk is full"), "{source}");
    }
}
