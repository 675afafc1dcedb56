//! Running and listing migrations on an open [`Database`]: the application's embedded ones
//! ([`ConfigBuilder::migrations`](crate::ConfigBuilder::migrations)) or any other diesel
//! migration source, such as a directory of `up.sql`/`down.sql` files (the CLI's `migrate`).
//!
//! [`Database::open`] already runs the configured migrations unless `DB_RUN_MIGRATIONS=false`;
//! these methods are for opening without them and migrating as a separate, logged step.

use diesel::migration::MigrationSource;
use diesel::sqlite::Sqlite;
use diesel_migrations::MigrationHarness;

use crate::database::Database;
use crate::error::{Error, Result};

/// A migration error with what litedal was doing.
pub(crate) fn migration_error(
    doing: &'static str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Error {
    move |source| Error::Migration { doing, source }
}

impl Database {
    /// Runs the pending migrations of the configured set
    /// ([`ConfigBuilder::migrations`](crate::ConfigBuilder::migrations)) in one immediate
    /// transaction, and returns the names of those it applied, oldest first (empty when
    /// none was pending).
    ///
    /// Foreign keys are off on the connection while the migrations run (a migration cannot
    /// turn them off itself inside the transaction), so SQLite's table rebuild (create the new
    /// table, copy, drop the old one, rename) keeps the child rows of a parent table instead
    /// of deleting them through `ON DELETE CASCADE`; `PRAGMA foreign_key_check` runs before
    /// the commit, and migrations that leave a row pointing nowhere are rolled back.
    ///
    /// # Errors
    ///
    /// [`Error::Migration`] when no migrations were configured, a migration fails or the
    /// migrations leave a row pointing nowhere (naming its table and rowid; none of them is
    /// then applied), [`Error::Busy`] or [`Error::PoolTimeout`].
    ///
    /// ```
    /// use litedal::{Config, Database};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let url = format!("sqlite://{}/app.db", dir.path().display());
    /// let config = Config::builder()
    ///     .database_url(url)
    ///     .migrations(&litedal::example::MIGRATIONS)
    ///     .run_migrations(false)
    ///     .build()?;
    /// let db = Database::open(config)?;
    /// let applied = db.run_pending_migrations()?;
    /// assert_eq!(applied, db.applied_migrations()?);
    /// assert!(db.run_pending_migrations()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_pending_migrations(&self) -> Result<Vec<String>> {
        let migrations = self.config().migrations().ok_or_else(|| Error::Migration {
            doing: "running the configured migrations",
            source: "no migrations were configured (ConfigBuilder::migrations)".into(),
        })?;
        self.run_pending_migrations_from(migrations)
    }

    /// Runs the pending migrations of `source` (for example
    /// `diesel_migrations::FileBasedMigrations::from_path("migrations")`) in one immediate
    /// transaction; returns the names of those it applied, oldest first.
    ///
    /// # Errors
    ///
    /// As [`Database::run_pending_migrations`].
    pub fn run_pending_migrations_from<S: MigrationSource<Sqlite>>(
        &self,
        source: S,
    ) -> Result<Vec<String>> {
        let applied = self.migration_transaction(|conn| {
            let pending = conn
                .pending_migrations(source)
                .map_err(migration_error("finding the pending migrations"))?;
            let names: Vec<String> = pending.iter().map(|m| m.name().to_string()).collect();
            conn.run_migrations(&pending)
                .map_err(migration_error("running the pending migrations"))?;
            Ok(names)
        })?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "Database migrations applied");
        }
        Ok(applied)
    }

    /// The names of the applied migrations, oldest first, named after the configured set (a
    /// version that set does not know, applied by another program, is listed as its bare
    /// version).
    ///
    /// # Errors
    ///
    /// [`Error::Migration`] when the migrations table cannot be read, [`Error::Busy`] or
    /// [`Error::PoolTimeout`]. (It runs on the write pool: diesel creates the migrations
    /// table when it is missing.)
    pub fn applied_migrations(&self) -> Result<Vec<String>> {
        match self.config().migrations() {
            Some(migrations) => self.applied_migrations_from(migrations),
            None => self.applied_versions(),
        }
    }

    /// The names of the applied migrations, oldest first, named after `source`.
    ///
    /// # Errors
    ///
    /// As [`Database::applied_migrations`].
    pub fn applied_migrations_from<S: MigrationSource<Sqlite>>(
        &self,
        source: S,
    ) -> Result<Vec<String>> {
        let known = source
            .migrations()
            .map_err(migration_error("reading the migrations"))?;
        Ok(self
            .applied_versions()?
            .into_iter()
            .map(|version| {
                known
                    .iter()
                    .find(|m| m.name().version().to_string() == version)
                    .map_or(version, |m| m.name().to_string())
            })
            .collect())
    }

    /// The versions recorded in diesel's migrations table, sorted.
    fn applied_versions(&self) -> Result<Vec<String>> {
        let mut versions = self.transaction(|conn| {
            Ok(conn
                .applied_migrations()
                .map_err(migration_error("reading the applied migrations"))?
                .into_iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>())
        })?;
        versions.sort();
        Ok(versions)
    }
}
