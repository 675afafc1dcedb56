//! [`TestDb`]: a fresh SQLite database in a temporary directory.

use std::path::{Path, PathBuf};

use diesel_migrations::EmbeddedMigrations;

use crate::config::{Config, ConfigBuilder};
use crate::database::Database;
use crate::error::{Error, Result};

/// A fresh database in its own temporary directory, deleted on drop.
///
/// Set `LITEDAL_KEEP_TEST_DB=1` (or call [`TestDb::keep`]) to keep the file for debugging;
/// its path is then logged and printed.
#[derive(Debug)]
pub struct TestDb {
    db: Database,
    path: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// An empty database with the default configuration (as `Config::from_env` with no
    /// variables set) and no migrations.
    ///
    /// # Errors
    ///
    /// Any error of creating the directory or of [`Database::open`].
    pub fn new() -> Result<TestDb> {
        TestDb::with_config(|builder| builder)
    }

    /// A database with the default configuration and the application's `migrations` applied.
    ///
    /// # Errors
    ///
    /// Any error of creating the directory or of [`Database::open`] (a failing migration is
    /// [`Error::Migration`]).
    pub fn with_migrations(migrations: &'static EmbeddedMigrations) -> Result<TestDb> {
        TestDb::with_config(|builder| builder.migrations(migrations))
    }

    /// A database whose configuration is the default adjusted by `configure`. The URL is
    /// always the temp file's.
    ///
    /// # Errors
    ///
    /// Any error of creating the directory, of the configuration or of [`Database::open`].
    pub fn with_config(configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Result<TestDb> {
        let dir = tempfile::Builder::new()
            .prefix("litedal-test-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory in", std::env::temp_dir(), e))?;
        let path = dir.path().join("test.db");
        let config = configure(Config::builder())
            .database_url(format!("sqlite://{}", path.display()))
            .build()?;
        let db = Database::open(config)?;
        let mut test_db = TestDb {
            db,
            path,
            dir: Some(dir),
        };
        if std::env::var_os("LITEDAL_KEEP_TEST_DB").is_some_and(|v| v == "1") {
            test_db.keep_dir();
        }
        Ok(test_db)
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory and the database file after drop and returns the file's path.
    pub fn keep(mut self) -> PathBuf {
        self.keep_dir();
        self.path.clone()
    }

    fn keep_dir(&mut self) {
        if let Some(dir) = self.dir.take() {
            let kept = dir.keep();
            tracing::info!(path = %kept.display(), "Database test file kept");
            eprintln!("litedal: test database kept at {}", self.path.display());
        }
    }
}

impl std::ops::Deref for TestDb {
    type Target = Database;

    fn deref(&self) -> &Database {
        &self.db
    }
}
