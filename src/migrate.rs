//! Running and listing migrations on an open [`Database`] (the CLI's `migrate`).
//!
//! [`Database::open`] already runs the pending migrations unless `DB_RUN_MIGRATIONS=false`;
//! these methods are for opening without them and migrating as a separate, logged step.

use diesel::migration::MigrationSource;
use diesel::sqlite::Sqlite;
use diesel_migrations::MigrationHarness;

use crate::database::Database;
use crate::error::{Error, Result};

fn migration_error(error: impl std::fmt::Display) -> Error {
    Error::Migration(error.to_string())
}

impl Database {
    /// Runs the pending migrations of the configured set
    /// ([`ConfigBuilder::migrations`](crate::ConfigBuilder::migrations)) in one immediate
    /// transaction, and returns the names of those it applied, oldest first (empty when
    /// none was pending).
    ///
    /// # Errors
    ///
    /// [`Error::Migration`] when a migration fails (none of them is then applied),
    /// [`Error::Busy`] or [`Error::PoolTimeout`].
    ///
    /// ```
    /// use litedal::{Config, Database};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let url = format!("sqlite://{}/app.db", dir.path().display());
    /// let db = Database::open(Config::builder().database_url(url).run_migrations(false).build()?)?;
    /// let applied = db.run_pending_migrations()?;
    /// assert_eq!(applied, db.applied_migrations()?);
    /// assert!(db.run_pending_migrations()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_pending_migrations(&self) -> Result<Vec<String>> {
        let migrations = self.config().migrations();
        let applied = self.transaction(|conn| {
            let pending = conn
                .pending_migrations(migrations)
                .map_err(migration_error)?;
            let names: Vec<String> = pending.iter().map(|m| m.name().to_string()).collect();
            conn.run_migrations(&pending).map_err(migration_error)?;
            Ok(names)
        })?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "Database migrations applied");
        }
        Ok(applied)
    }

    /// The names of the applied migrations, oldest first. A version recorded in the database
    /// that the configured set does not know (applied by another program) is listed as its
    /// bare version.
    ///
    /// # Errors
    ///
    /// [`Error::Migration`] when the migrations table cannot be read, [`Error::Busy`] or
    /// [`Error::PoolTimeout`]. (It runs on the write pool: diesel creates the migrations
    /// table when it is missing.)
    pub fn applied_migrations(&self) -> Result<Vec<String>> {
        let migrations = self.config().migrations();
        let known = MigrationSource::<Sqlite>::migrations(&migrations).map_err(migration_error)?;
        let mut versions = self.transaction(|conn| {
            Ok(conn
                .applied_migrations()
                .map_err(migration_error)?
                .into_iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>())
        })?;
        versions.sort();
        Ok(versions
            .into_iter()
            .map(|version| {
                known
                    .iter()
                    .find(|m| m.name().version().to_string() == version)
                    .map_or(version, |m| m.name().to_string())
            })
            .collect())
    }
}
