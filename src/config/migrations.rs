//! The migrations run at open: litedal's own ([`MIGRATIONS`]) or an application's.

use diesel_migrations::EmbeddedMigrations;

/// The migrations shipped with litedal (the `users` and `posts` tables), embedded at build time.
pub const MIGRATIONS: EmbeddedMigrations = diesel_migrations::embed_migrations!("migrations");

/// A set of embedded migrations (litedal's [`MIGRATIONS`] or an application's own), usable
/// wherever diesel takes a `MigrationSource`.
#[derive(Clone, Copy)]
pub struct Migrations(pub &'static EmbeddedMigrations);

impl std::fmt::Debug for Migrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedMigrations")
    }
}

impl diesel::migration::MigrationSource<diesel::sqlite::Sqlite> for Migrations {
    fn migrations(
        &self,
    ) -> diesel::migration::Result<Vec<Box<dyn diesel::migration::Migration<diesel::sqlite::Sqlite>>>>
    {
        diesel::migration::MigrationSource::<diesel::sqlite::Sqlite>::migrations(self.0)
    }
}
