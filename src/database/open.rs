//! The open sequence: the data directory and file, the journal mode, migrations, and the
//! checks that refuse a file litedal could not use.

use std::fs::{DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::sqlite::Sqlite;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::MigrationHarness;

use super::connection::{setup_error, setup_with_hook};
use super::raw::{Hardening, RawHandle};
use super::transaction::{check_foreign_keys, immediate, with_foreign_keys_off};
use crate::config::{Config, Migrations};
use crate::error::{Error, Result};
use crate::pragmas::Role;
use crate::url::DatabaseLocation;

#[derive(QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = Text)]
    journal_mode: String,
}

/// The location SQLite opens, with a file's path made absolute and its symlinks resolved,
/// once, at open: every later open (r2d2 replacing a connection, the monitoring and backup
/// connections) and every file operation uses this path, so an application that changes its
/// working directory keeps using the same file. (SQLite resolves symlinks the same way, so the
/// `-wal` and `-shm` files are beside the resolved path.)
///
/// # Errors
///
/// [`Error::Io`] naming the path when it cannot be resolved.
pub(crate) fn resolve(location: &DatabaseLocation) -> Result<DatabaseLocation> {
    match location {
        DatabaseLocation::Memory => Ok(DatabaseLocation::Memory),
        DatabaseLocation::File { path, params } => {
            let resolved = std::fs::canonicalize(path)
                .map_err(|e| Error::io("resolving the database path", path, e))?;
            Ok(DatabaseLocation::File {
                path: resolved,
                params: params.clone(),
            })
        }
    }
}

/// Creates the data directory (0700) and the database file (0600) if they do not exist.
/// With `create` false (a `file:` URI with `mode=rw` or `mode=ro`), a missing file is an
/// error, as SQLite itself would report it, instead of a new empty database.
pub(crate) fn prepare_file(path: &Path, url: &str, create: bool) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(Error::io(
                "opening the database: DATABASE_URL names a directory, not a file:",
                path,
                std::io::Error::new(ErrorKind::IsADirectory, format!("DATABASE_URL={url}")),
            ));
        }
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound && !create => {
            return Err(Error::io(
                "opening the database (the URI's mode= does not create it):",
                path,
                e,
            ));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("reading the metadata of", path, e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io("creating the data directory", dir, e))?;
        }
    }
    // Created here with 0600 (whatever the umask says) because SQLite gives the -wal and -shm
    // files the permissions of the database file. An empty file is a valid empty database.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io("setting the mode of", path, e))?;
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("creating the database file", path, e)),
    }
}

/// Opens the first connection: busy_timeout, journal mode (set and verified), migrations,
/// and a dry run of both roles' PRAGMAs so a bad one fails here instead of inside r2d2.
pub(crate) fn open_first_connection(
    config: &Config,
    uri: &str,
) -> Result<(SqliteConnection, String)> {
    let mut conn = SqliteConnection::establish(uri)?;
    // Hardened before anything reads the file: the migrations and the hook's dry run run
    // under the same rules as every pooled connection.
    let raw = hardened(&mut conn, config)?;
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {}",
        config.busy_timeout().as_millis()
    ))?;
    // Switching the journal mode needs an exclusive lock that busy_timeout does not wait for,
    // so it is done once here, never per pooled connection.
    let wanted = if config.enable_wal() { "WAL" } else { "DELETE" };
    let mode = set_journal_mode(&mut conn, wanted, config.busy_timeout())?;
    let memory = config.location().is_memory();
    if !memory && !mode.eq_ignore_ascii_case(wanted) {
        return Err(Error::Database(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new(format!(
                "PRAGMA journal_mode={wanted} was not applied: SQLite answered {mode:?}"
            )),
        )));
    }
    if let Some(hook) = config.on_connect() {
        // Migrations may use what the hook sets up (a SQL function, a collation).
        let load = config.load_extensions();
        let pragmas = config.pragmas(Role::Write);
        setup_with_hook(&mut conn, &raw, &pragmas, Role::Write, hook, load)?;
        if config.separate_read_write() {
            // A reader's setup fails here, at once, rather than after the pool timeout.
            let mut reader = SqliteConnection::establish(uri)?;
            let reader_raw = hardened(&mut reader, config)?;
            let pragmas = config.pragmas(Role::Read);
            setup_with_hook(&mut reader, &reader_raw, &pragmas, Role::Read, hook, load)?;
        }
    }
    if let Some(migrations) = config.migrations().filter(|_| config.run_migrations()) {
        // Checked with a read first: an open with nothing to migrate never waits for the
        // write lock (another process may hold it for long). When something is pending, the
        // lock is taken the way every write takes it, and the check is repeated under it (a
        // process that opened at the same moment may have migrated meanwhile).
        if has_pending_migrations(&mut conn, migrations)? {
            // Foreign keys off around the transaction, checked before it commits (see
            // `with_foreign_keys_off`): a table rebuild must not cascade into its children.
            let applied = with_foreign_keys_off(&mut conn, |conn| {
                immediate(conn, config.busy_timeout(), |conn| {
                    let applied = conn
                        .run_pending_migrations(migrations)
                        .map(|versions| {
                            versions.iter().map(ToString::to_string).collect::<Vec<_>>()
                        })
                        .map_err(|source| Error::Migration {
                            doing: "running the configured migrations at open",
                            source,
                        })?;
                    check_foreign_keys(conn)?;
                    Ok(applied)
                })
            })?;
            if !applied.is_empty() {
                tracing::info!(migrations = ?applied, "Database migrations applied");
            }
        }
    }
    // Dry run of the role PRAGMAs; the writer's last so the connection stays writable.
    config.pragmas(Role::Read).apply(&mut conn)?;
    config.pragmas(Role::Write).apply(&mut conn)?;
    Ok((conn, mode))
}

/// The raw handle of `conn`, just opened on this thread, with the query planner stability
/// guarantee as configured and SQLite's hardening applied ([`RawHandle::harden`]). A limit
/// above this SQLite build's ceiling is an [`Error::Config`] naming its variable.
fn hardened(conn: &mut SqliteConnection, config: &Config) -> Result<RawHandle> {
    let raw = RawHandle::capture(conn).map_err(setup_error)?;
    raw.set_stable_query_plans(config.stable_query_plans())
        .map_err(setup_error)?;
    raw.harden(&config.sqlite_limits())
        .map_err(|hardening| match hardening {
            Hardening::Limit {
                var,
                asked,
                applied,
            } => Error::config(
                var,
                asked.to_string(),
                format!(
                    "this SQLite build's ceiling is {applied}; accepted: {} to {applied}",
                    crate::pragmas::SqliteLimits::range(var).map_or(0, |(min, _)| min)
                ),
            ),
            Hardening::Switch(message) => setup_error(message),
        })?;
    Ok(raw)
}

/// Fails with [`Error::ReadOnly`] when the database could only be read: an immutable or
/// read-only file, a read-only mount, a URI with `mode=ro` or `immutable=1`, or (in WAL mode,
/// when they do not exist yet) a directory where the `-wal` and `-shm` files cannot be
/// created. Better at open than at the first write.
///
/// Asked of the kernel with `access(2)`, which needs no lock on the database (another process
/// may hold its write lock for long) and opens no descriptor of it (closing one would drop
/// this process's SQLite locks on the file).
pub(crate) fn check_writable(location: &DatabaseLocation, wal: bool) -> Result<()> {
    let DatabaseLocation::File { path, params } = location else {
        return Ok(());
    };
    let read_only_param = params.as_deref().is_some_and(|query| {
        query
            .split('&')
            .any(|kv| kv == "mode=ro" || kv == "immutable=1")
    });
    let refuse = |what: &Path, why: String| Error::ReadOnly {
        message: format!("{} is not writable: {why}", what.display()),
    };
    if read_only_param {
        return Err(refuse(
            path,
            "the URI opens it read-only (mode=ro or immutable=1)".to_owned(),
        ));
    }
    rustix::fs::access(path, rustix::fs::Access::WRITE_OK)
        .map_err(|errno| refuse(path, std::io::Error::from(errno).to_string()))?;
    let sibling = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    if wal && !(sibling("-wal").exists() && sibling("-shm").exists()) {
        if let Some(dir) = path.parent() {
            rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).map_err(|errno| {
                refuse(
                    dir,
                    format!(
                        "the -wal and -shm files of WAL mode cannot be created beside the \
                         database: {}",
                        std::io::Error::from(errno)
                    ),
                )
            })?;
        }
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    version: String,
}

/// True when `migrations` has one that the database has not applied; reads only (diesel's own
/// check creates its table first, which needs the write lock).
fn has_pending_migrations(conn: &mut SqliteConnection, migrations: Migrations) -> Result<bool> {
    let known =
        MigrationSource::<Sqlite>::migrations(&migrations).map_err(|source| Error::Migration {
            doing: "reading the configured migrations",
            source,
        })?;
    if known.is_empty() {
        return Ok(false);
    }
    let table = diesel::sql_query(
        "SELECT count(*) AS n FROM sqlite_schema \
         WHERE type = 'table' AND name = '__diesel_schema_migrations'",
    )
    .get_result::<Count>(conn)?;
    if table.n == 0 {
        return Ok(true);
    }
    let applied: Vec<String> = diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
        .load::<Version>(conn)?
        .into_iter()
        .map(|v| v.version)
        .collect();
    Ok(known
        .iter()
        .any(|m| !applied.contains(&m.name().version().to_string())))
}

/// Sets the journal mode. Retries while another connection holds the lock it needs, for up to
/// `busy_timeout` (SQLite's busy handler does not cover this case).
fn set_journal_mode(
    conn: &mut SqliteConnection,
    mode: &str,
    busy_timeout: Duration,
) -> Result<String> {
    let deadline = Instant::now() + busy_timeout;
    loop {
        let result: std::result::Result<Vec<JournalMode>, _> =
            diesel::sql_query(format!("PRAGMA journal_mode = {mode}")).load(conn);
        match result.map_err(Error::from) {
            Ok(rows) => {
                return Ok(rows
                    .into_iter()
                    .next()
                    .map(|r| r.journal_mode)
                    .unwrap_or_default());
            }
            Err(Error::Busy) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}
