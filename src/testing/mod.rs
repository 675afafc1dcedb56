//! Temp-file databases for integration tests (cargo feature `testing`).
//!
//! [`TestDb`] is configured like production (WAL, separate read and write pools, the same
//! PRAGMAs) so that tests exercise what runs in production, unlike `:memory:`.
//!
//! ```
//! use diesel_migrations::{EmbeddedMigrations, embed_migrations};
//! use litedal::testing::TestDb;
//!
//! // The application's own migrations (here the reference domain's directory).
//! const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");
//!
//! let test_db = TestDb::with_migrations(&MIGRATIONS)?;
//! let db = test_db.db(); // a litedal::Database on a fresh file, its migrations applied
//! assert_eq!(db.journal_mode(), "wal");
//! # Ok::<(), litedal::Error>(())
//! ```

#[cfg(feature = "postgres")]
mod any;
#[cfg(feature = "postgres")]
pub mod postgres;
mod test_db;

#[cfg(feature = "postgres")]
pub use any::{AnyTestDb, TEST_POSTGRES_URL, TestEngine};
pub use test_db::TestDb;
