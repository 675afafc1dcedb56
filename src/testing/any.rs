//! [`AnyTestDb`]: a fresh database of either engine, so one test body runs on SQLite and on
//! PostgreSQL (features `testing` and `postgres`).
//!
//! On SQLite it is a [`TestDb`]: a temporary file, deleted on drop. On PostgreSQL it is a new
//! database on the server named by `LITEDAL_TEST_POSTGRES_URL` (a server where tests may run
//! `CREATE DATABASE`; the database is dropped with the value), or, when that is unset, on a
//! throwaway [`PgCluster`] started for this database from the installed server binaries
//! (about a second; stopped and deleted on drop). A test process killed before the drop
//! leaves its database on a named server (`litedal_test_<pid>_<n>`; litedal does not drop
//! databases of other processes, which may run on other machines): drop those by hand. A
//! throwaway cluster is cleaned up by the next [`PgCluster::start`].
//!
//! ```
//! use litedal::testing::{AnyTestDb, TestEngine};
//!
//! let test_db = AnyTestDb::open(TestEngine::Sqlite, |builder| {
//!     builder
//!         .migrations(&litedal::example::MIGRATIONS)
//!         .postgres_migrations(&litedal::example::MIGRATIONS_POSTGRES)
//! })?;
//! assert_eq!(test_db.engine(), "sqlite");
//! # Ok::<(), litedal::Error>(())
//! ```

use std::sync::atomic::{AtomicU32, Ordering};

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;

use super::postgres::{PgCluster, PgClusterError};
use super::test_db::TestDb;
use crate::any_database::AnyDatabase;
use crate::config::{Config, ConfigBuilder};
use crate::error::{Error, Result};
use crate::url::redact_password;

/// The variable naming a PostgreSQL server for [`AnyTestDb`] instead of a throwaway cluster.
pub const TEST_POSTGRES_URL: &str = "LITEDAL_TEST_POSTGRES_URL";

/// Which engine an [`AnyTestDb`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestEngine {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

impl TestEngine {
    /// Both engines, for a test that loops over them.
    pub const ALL: [TestEngine; 2] = [TestEngine::Sqlite, TestEngine::Postgres];

    /// `"sqlite"` or `"postgres"`, as [`AnyDatabase::engine`] says.
    pub fn as_str(self) -> &'static str {
        match self {
            TestEngine::Sqlite => "sqlite",
            TestEngine::Postgres => "postgres",
        }
    }
}

/// A fresh database of either engine for one test; everything it made goes on drop.
#[derive(Debug)]
pub struct AnyTestDb {
    // Dropped first: the pools close before the file or server goes.
    db: AnyDatabase,
    _place: Place,
}

/// What holds the database's storage while the test runs (the fields are held for their
/// `Drop`).
#[derive(Debug)]
#[allow(dead_code)]
enum Place {
    Sqlite(TestDb),
    /// A database on a server the test does not own: dropped on drop.
    Server {
        admin_url: String,
        name: String,
    },
    /// A cluster of its own: stopped and deleted on drop.
    Cluster(PgCluster),
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Place::Server { admin_url, name } = self {
            let dropped = PgConnection::establish(admin_url)
                .map_err(|e| e.to_string())
                .and_then(|mut conn| {
                    conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .map_err(|e| e.to_string())
                });
            if let Err(error) = dropped {
                eprintln!("litedal: dropping test database {name}: {error}");
            }
        }
    }
}

impl AnyTestDb {
    /// A fresh database on `engine`, its configuration the default adjusted by `configure`
    /// (give it both engines' migrations: `migrations` and `postgres_migrations`). The URL is
    /// always the test database's.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming `LITEDAL_TEST_POSTGRES_URL` when no PostgreSQL server can be
    /// had (neither the variable nor installed server binaries) or the database cannot be
    /// created; any error of opening the database.
    pub fn open(
        engine: TestEngine,
        configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Result<AnyTestDb> {
        match engine {
            TestEngine::Sqlite => {
                let file = TestDb::with_config(configure)?;
                Ok(AnyTestDb {
                    db: AnyDatabase::Sqlite(file.db().clone()),
                    _place: Place::Sqlite(file),
                })
            }
            TestEngine::Postgres => {
                let (url, place) = postgres_database()?;
                let config = configure(Config::builder()).database_url(url).build_any()?;
                Ok(AnyTestDb {
                    db: AnyDatabase::open(config)?,
                    _place: place,
                })
            }
        }
    }

    /// As [`AnyTestDb::open`], but on a machine without a PostgreSQL server (no
    /// `LITEDAL_TEST_POSTGRES_URL`, no server binaries) and without `CI` set, prints one
    /// line naming `test` on stderr and returns `None`: the test says it did not run on
    /// PostgreSQL instead of passing silently. Under `CI` a missing server is an error.
    ///
    /// # Errors
    ///
    /// As [`AnyTestDb::open`].
    pub fn open_or_skip(
        engine: TestEngine,
        test: &str,
        configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Result<Option<AnyTestDb>> {
        if engine == TestEngine::Postgres
            && std::env::var_os(TEST_POSTGRES_URL).is_none()
            && std::env::var_os("CI").is_none()
        {
            if let Err(why) = PgCluster::available() {
                eprintln!(
                    "litedal: SKIPPED {test} on PostgreSQL: no server to test against ({why}); \
                     install postgresql-15 or set {TEST_POSTGRES_URL}"
                );
                return Ok(None);
            }
        }
        AnyTestDb::open(engine, configure).map(Some)
    }

    /// The database.
    pub fn db(&self) -> &AnyDatabase {
        &self.db
    }
}

impl std::ops::Deref for AnyTestDb {
    type Target = AnyDatabase;

    fn deref(&self) -> &AnyDatabase {
        &self.db
    }
}

fn unavailable(value: &str, why: impl std::fmt::Display) -> Error {
    Error::config(
        TEST_POSTGRES_URL,
        value,
        format!(
            "a postgres:// URL of a server where tests may CREATE DATABASE, or unset with \
             postgresql-15 installed for a throwaway server ({why})"
        ),
    )
}

/// A new, empty database and what keeps it: on `LITEDAL_TEST_POSTGRES_URL`'s server, else
/// on a cluster of its own.
fn postgres_database() -> Result<(String, Place)> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "litedal_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let Ok(admin_url) = std::env::var(TEST_POSTGRES_URL) else {
        let cluster = PgCluster::start().map_err(|e| unavailable("", e))?;
        let url = cluster
            .create_database(&name)
            .map_err(|e: PgClusterError| unavailable("", e))?;
        return Ok((url, Place::Cluster(cluster)));
    };
    let shown = redact_password(&admin_url);
    let url = with_database(&admin_url, &name)
        .ok_or_else(|| unavailable(&shown, "not a postgres:// URL with a host"))?;
    PgConnection::establish(&admin_url)
        .and_then(|mut conn| {
            conn.batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
        })
        .map_err(|e| unavailable(&shown, e))?;
    Ok((url, Place::Server { admin_url, name }))
}

/// `url` with its database (the path) replaced by `name`, its query parameters kept.
fn with_database(url: &str, name: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !crate::url::is_postgres_url(url) {
        return None;
    }
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next()?;
    if authority.is_empty() {
        return None;
    }
    let mut out = format!("{scheme}://{authority}/{name}");
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced_and_its_parameters_kept() {
        assert_eq!(
            with_database("postgres://u:p@h:5/app?sslmode=require", "t").as_deref(),
            Some("postgres://u:p@h:5/t?sslmode=require")
        );
        assert_eq!(
            with_database("postgresql://h", "t").as_deref(),
            Some("postgresql://h/t")
        );
        assert_eq!(with_database("sqlite://x.db", "t"), None);
        assert_eq!(with_database("postgres:///db", "t"), None);
    }
}
