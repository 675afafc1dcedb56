//! The migrations run at open: the application's own, embedded with `embed_migrations!`.

use diesel_migrations::EmbeddedMigrations;

/// A set of embedded migrations (an application's `embed_migrations!("migrations")`), usable
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

#[cfg(feature = "postgres")]
impl diesel::migration::MigrationSource<diesel::pg::Pg> for Migrations {
    fn migrations(
        &self,
    ) -> diesel::migration::Result<Vec<Box<dyn diesel::migration::Migration<diesel::pg::Pg>>>> {
        diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(self.0)
    }
}
