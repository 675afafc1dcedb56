//! Query code written once for SQLite and, with the `postgres` feature, PostgreSQL.
//!
//! [`on_engine!`](crate::on_engine) runs a query body on the concrete connection of whichever
//! engine a connection is: the body is written once and compiled once per engine, so each
//! copy is plain diesel on `SqliteConnection` or `PgConnection`, with statements cached by
//! type and nothing converted at run time. diesel's own `MultiConnection` types every query
//! on one `MultiBackend` instead, which measured 0.56-0.58 of a concrete `SqliteConnection`
//! for point reads, against 0.99-1.00 for this `match` (`examples/profile_engine_dispatch.rs`,
//! `docs/postgres.md`).
//!
//! ```
//! use diesel::prelude::*;
//! use litedal::engine::Engine;
//!
//! diesel::table! {
//!     notes (id) {
//!         id -> BigInt,
//!         body -> Text,
//!     }
//! }
//!
//! /// Written once; runs on an `SqliteConnection`, or on a `litedal::engine::AnyConnection`
//! /// of either engine with the `postgres` feature.
//! fn note_body(conn: &mut impl Engine, id: i64) -> QueryResult<String> {
//!     litedal::on_engine!(conn, |c| notes::table.find(id).select(notes::body).first(c))
//! }
//!
//! let mut conn = diesel::SqliteConnection::establish(":memory:")?;
//! diesel::sql_query("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
//!     .execute(&mut conn)?;
//! diesel::sql_query("INSERT INTO notes VALUES (1, 'hello')").execute(&mut conn)?;
//! assert_eq!(note_body(&mut conn, 1)?, "hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use diesel::sqlite::SqliteConnection;

#[cfg(feature = "postgres")]
pub use any::AnyConnection;

/// diesel's derive makes public helper items without docs; they stay in this module.
#[cfg(feature = "postgres")]
#[allow(missing_docs)]
mod any {
    /// A connection of either engine, chosen at run time (feature `postgres`).
    ///
    /// It is diesel's `MultiConnection` derive, so it is also an ordinary diesel connection
    /// on `MultiBackend` for code that prefers one query type for both engines (and accepts
    /// its cost); [`on_engine!`](crate::on_engine) reaches the concrete connection instead.
    #[derive(diesel::MultiConnection)]
    pub enum AnyConnection {
        /// A PostgreSQL connection.
        Postgresql(diesel::pg::PgConnection),
        /// An SQLite connection.
        Sqlite(diesel::sqlite::SqliteConnection),
    }
}

/// The concrete connection behind an [`Engine`], borrowed for one query body.
pub enum EngineRef<'a> {
    /// SQLite.
    Sqlite(&'a mut SqliteConnection),
    /// PostgreSQL (feature `postgres`).
    #[cfg(feature = "postgres")]
    Postgres(&'a mut diesel::pg::PgConnection),
}

/// A connection that knows its engine: `SqliteConnection`, and with the `postgres` feature
/// [`AnyConnection`]. Sealed: litedal decides which engines exist.
pub trait Engine: sealed::Sealed {
    /// The concrete connection, for [`on_engine!`](crate::on_engine).
    fn as_engine(&mut self) -> EngineRef<'_>;
}

/// Which engines an [`Executor`](crate::Executor) runs on, and so what its closures get:
/// [`SqliteEngine`] (the default: `&mut SqliteConnection`, exactly as without PostgreSQL) or
/// [`AnyEngine`] (feature `postgres`: `&mut EngineRef`, either engine, for
/// [`on_engine!`](crate::on_engine)). Sealed.
pub trait EngineKind: sealed::SealedKind + 'static {
    /// The connection an executor's closure receives.
    type Conn<'c>: Engine;
}

/// SQLite only: closures get `&mut SqliteConnection`.
#[derive(Debug, Clone, Copy)]
pub enum SqliteEngine {}

impl EngineKind for SqliteEngine {
    type Conn<'c> = SqliteConnection;
}

/// SQLite or PostgreSQL, chosen at run time (feature `postgres`): closures get
/// `&mut EngineRef` and run their queries through [`on_engine!`](crate::on_engine).
#[cfg(feature = "postgres")]
#[derive(Debug, Clone, Copy)]
pub enum AnyEngine {}

#[cfg(feature = "postgres")]
impl EngineKind for AnyEngine {
    type Conn<'c> = EngineRef<'c>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for diesel::sqlite::SqliteConnection {}
    impl Sealed for crate::engine::EngineRef<'_> {}
    #[cfg(feature = "postgres")]
    impl Sealed for crate::engine::AnyConnection {}

    pub trait SealedKind {}
    impl SealedKind for crate::engine::SqliteEngine {}
    #[cfg(feature = "postgres")]
    impl SealedKind for crate::engine::AnyEngine {}
}

/// A borrowed engine connection is one too (nested operations reborrow it).
impl Engine for EngineRef<'_> {
    #[inline]
    fn as_engine(&mut self) -> EngineRef<'_> {
        match self {
            EngineRef::Sqlite(conn) => EngineRef::Sqlite(conn),
            #[cfg(feature = "postgres")]
            EngineRef::Postgres(conn) => EngineRef::Postgres(conn),
        }
    }
}

impl Engine for SqliteConnection {
    #[inline]
    fn as_engine(&mut self) -> EngineRef<'_> {
        EngineRef::Sqlite(self)
    }
}

#[cfg(feature = "postgres")]
impl Engine for AnyConnection {
    #[inline]
    fn as_engine(&mut self) -> EngineRef<'_> {
        match self {
            AnyConnection::Sqlite(conn) => EngineRef::Sqlite(conn),
            AnyConnection::Postgresql(conn) => EngineRef::Postgres(conn),
        }
    }
}

/// Runs `$body` with `$c` bound to the concrete connection of `$conn`'s engine (an
/// [`Engine`](crate::engine::Engine)): `&mut SqliteConnection` on SQLite, `&mut PgConnection`
/// on PostgreSQL. The body is type-checked once per engine; the PostgreSQL arm exists only
/// when litedal is built with its `postgres` feature. See [`engine`](crate::engine).
#[cfg(feature = "postgres")]
#[macro_export]
macro_rules! on_engine {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $crate::engine::Engine::as_engine($conn) {
            $crate::engine::EngineRef::Sqlite($c) => $body,
            $crate::engine::EngineRef::Postgres($c) => $body,
        }
    };
}

/// Runs `$body` with `$c` bound to the concrete connection of `$conn`'s engine (an
/// [`Engine`](crate::engine::Engine)): `&mut SqliteConnection` on SQLite, `&mut PgConnection`
/// on PostgreSQL. The body is type-checked once per engine; the PostgreSQL arm exists only
/// when litedal is built with its `postgres` feature. See [`engine`](crate::engine).
#[cfg(not(feature = "postgres"))]
#[macro_export]
macro_rules! on_engine {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $crate::engine::Engine::as_engine($conn) {
            $crate::engine::EngineRef::Sqlite($c) => $body,
        }
    };
}
