//! Connection roles, the PRAGMAs each role gets, and the r2d2 customizer that applies them.
//!
//! Every pooled connection runs [`PragmaCustomizer::on_acquire`] once, when r2d2 opens it:
//! `busy_timeout` first (so the statements after it already wait for locks instead of failing),
//! then the rest, one statement per PRAGMA. `journal_mode=WAL` is *not* set here: it is a
//! property of the database file, set once at open (see `database.rs`).

use std::fmt;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::CustomizeConnection;
use diesel::sqlite::SqliteConnection;
use serde::Serialize;

/// The role a connection plays: which pool it comes from and which PRAGMAs it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read connections: `query_only=ON`, they can never write.
    Read,
    /// Write connections: used for transactions (`BEGIN IMMEDIATE`).
    Write,
}

impl Role {
    /// Both roles, readers first.
    pub const ALL: [Role; 2] = [Role::Read, Role::Write];

    /// `"read"` or `"write"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares a PRAGMA keyword enum with case-insensitive parsing and its SQL spelling.
macro_rules! keyword_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $sql:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(rename_all = "UPPERCASE")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every accepted keyword, as SQLite spells it.
            pub const KEYWORDS: &'static [&'static str] = &[$($sql),+];

            /// The keyword as SQLite spells it.
            pub fn as_sql(self) -> &'static str {
                match self { $($name::$variant => $sql),+ }
            }

            /// Parses a keyword, ignoring ASCII case; `None` if it is not one of [`Self::KEYWORDS`].
            pub fn parse(word: &str) -> Option<Self> {
                $(if word.eq_ignore_ascii_case($sql) { return Some($name::$variant); })+
                None
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_sql())
            }
        }
    };
}

keyword_enum! {
    /// `PRAGMA synchronous`: how hard SQLite works to make a commit durable.
    Synchronous {
        /// No syncs: a power loss can corrupt the database. Never a default.
        Off = "OFF",
        /// In WAL mode: commits survive an application crash; the last commits may be lost on
        /// power loss. Much faster than FULL.
        Normal = "NORMAL",
        /// A committed transaction survives power loss. litedal's default for writers.
        Full = "FULL",
        /// FULL plus a sync of the directory after unlinking a rollback journal.
        Extra = "EXTRA",
    }
}

keyword_enum! {
    /// `PRAGMA temp_store`: where temporary tables and indices live.
    TempStore {
        /// The compile-time default of SQLite.
        Default = "DEFAULT",
        /// Temporary files.
        File = "FILE",
        /// Memory (litedal's default).
        Memory = "MEMORY",
    }
}

keyword_enum! {
    /// `PRAGMA wal_checkpoint(MODE)`.
    CheckpointMode {
        /// Checkpoint as many frames as possible without waiting for readers or writers.
        Passive = "PASSIVE",
        /// Wait for writers, then checkpoint every frame.
        Full = "FULL",
        /// FULL, then wait for readers so the next writer restarts the WAL from the start.
        Restart = "RESTART",
        /// RESTART, then truncate the WAL file to zero bytes.
        Truncate = "TRUNCATE",
    }
}

/// The PRAGMAs applied to every connection of one role.
///
/// Built by [`Config::pragmas`](crate::Config::pragmas); every value can be read back from a
/// checked-out connection with the PRAGMA of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pragmas {
    /// `busy_timeout`: how long a statement waits for a lock held by another connection.
    pub busy_timeout: Duration,
    /// `foreign_keys` (`DB_FOREIGN_KEYS`, on by default).
    pub foreign_keys: bool,
    /// `synchronous`.
    pub synchronous: Synchronous,
    /// `cache_size = -KiB`: the page cache size in KiB.
    pub cache_size_kib: u32,
    /// `temp_store`.
    pub temp_store: TempStore,
    /// `mmap_size` in bytes (0 = no memory-mapped I/O).
    pub mmap_size: u64,
    /// `wal_autocheckpoint` in pages (0 = SQLite never checkpoints on commit).
    pub wal_autocheckpoint: u32,
    /// `journal_size_limit` in bytes: the WAL is truncated to this size after a checkpoint
    /// resets it, so that a burst does not leave a huge file behind.
    pub journal_size_limit: u64,
    /// `query_only`: true on readers, so a read connection can never write.
    pub query_only: bool,
}

impl Pragmas {
    /// The statements that apply these PRAGMAs, in order, `busy_timeout` first.
    pub fn statements(&self) -> Vec<String> {
        vec![
            format!("PRAGMA busy_timeout = {}", self.busy_timeout.as_millis()),
            format!(
                "PRAGMA foreign_keys = {}",
                if self.foreign_keys { "ON" } else { "OFF" }
            ),
            format!("PRAGMA synchronous = {}", self.synchronous),
            // A negative cache_size is in KiB rather than pages.
            format!("PRAGMA cache_size = -{}", self.cache_size_kib),
            format!("PRAGMA temp_store = {}", self.temp_store),
            format!("PRAGMA mmap_size = {}", self.mmap_size),
            format!("PRAGMA wal_autocheckpoint = {}", self.wal_autocheckpoint),
            format!("PRAGMA journal_size_limit = {}", self.journal_size_limit),
            format!(
                "PRAGMA query_only = {}",
                if self.query_only { "ON" } else { "OFF" }
            ),
        ]
    }

    /// Applies the PRAGMAs to `conn`, one statement each.
    ///
    /// # Errors
    ///
    /// The first statement that fails.
    pub fn apply(&self, conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
        for statement in self.statements() {
            conn.batch_execute(&statement)?;
        }
        Ok(())
    }
}

/// SQLite's run-time limits (`sqlite3_limit`) on every connection of both pools: how large
/// one value, one statement, one result row and one expression may be, and how many values a
/// statement may bind. They bound what a crafted database file or an unexpected input can make
/// SQLite allocate; a statement over a limit fails (`string or blob too big`,
/// `statement too long`, `too many columns`, `Expression tree is too large`,
/// `too many SQL variables`) instead of using the memory.
///
/// Set with [`ConfigBuilder::sqlite_limits`](crate::ConfigBuilder::sqlite_limits) or the
/// `DB_SQLITE_MAX_*` variables; [`ConfigBuilder::build`](crate::ConfigBuilder::build) checks
/// each against [`SqliteLimits::RANGES`], and the open checks that SQLite applied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SqliteLimits {
    /// `SQLITE_LIMIT_LENGTH` (`DB_SQLITE_MAX_LENGTH`): bytes in one string or blob, and in
    /// one row; default 100,000,000.
    pub length: u32,
    /// `SQLITE_LIMIT_SQL_LENGTH` (`DB_SQLITE_MAX_SQL_LENGTH`): bytes of one SQL statement;
    /// default 1,000,000 (the bulk insert's largest statement, 32766 bound values, is about
    /// 200 KB).
    pub sql_length: u32,
    /// `SQLITE_LIMIT_COLUMN` (`DB_SQLITE_MAX_COLUMNS`): columns of a table, an index, a result
    /// row, an `ORDER BY` or `GROUP BY`; default 1000.
    pub columns: u32,
    /// `SQLITE_LIMIT_EXPR_DEPTH` (`DB_SQLITE_MAX_EXPR_DEPTH`): nesting of one expression (a
    /// chain of `n` `OR`s is `n` deep); default 200.
    pub expr_depth: u32,
    /// `SQLITE_LIMIT_VARIABLE_NUMBER` (`DB_SQLITE_MAX_VARIABLES`): the highest bind parameter
    /// number; default 32766, never lower: the bulk insert binds up to 32766 values per
    /// statement.
    pub variables: u32,
}

impl Default for SqliteLimits {
    fn default() -> Self {
        SqliteLimits {
            length: 100_000_000,
            sql_length: 1_000_000,
            columns: 1000,
            expr_depth: 200,
            variables: 32766,
        }
    }
}

/// One of [`SqliteLimits`]: its variable, its accepted range and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LimitSetting {
    /// The environment variable.
    pub(crate) var: &'static str,
    /// `SQLITE_LIMIT_*`.
    pub(crate) id: i32,
    pub(crate) value: u32,
}

impl SqliteLimits {
    /// Each limit's variable and accepted range, inclusive. The upper bounds are SQLite's
    /// own compile-time defaults (a build of SQLite with lower ceilings is reported at open);
    /// the lower bounds keep what litedal itself needs (the bulk insert's statements and
    /// binds, the migrations table).
    pub const RANGES: [(&'static str, u32, u32); 5] = [
        ("DB_SQLITE_MAX_LENGTH", 1_000_000, 1_000_000_000),
        ("DB_SQLITE_MAX_SQL_LENGTH", 1_000_000, 1_000_000_000),
        ("DB_SQLITE_MAX_COLUMNS", 16, 2000),
        ("DB_SQLITE_MAX_EXPR_DEPTH", 16, 1000),
        ("DB_SQLITE_MAX_VARIABLES", 32766, 250_000),
    ];

    /// The limits with their variables and `SQLITE_LIMIT_*` ids, in the order of
    /// [`SqliteLimits::RANGES`].
    pub(crate) fn settings(&self) -> [LimitSetting; 5] {
        use libsqlite3_sys as ffi;
        let [length, sql_length, columns, expr_depth, variables] =
            Self::RANGES.map(|(var, _, _)| var);
        let setting = |var, id, value| LimitSetting { var, id, value };
        [
            setting(length, ffi::SQLITE_LIMIT_LENGTH, self.length),
            setting(sql_length, ffi::SQLITE_LIMIT_SQL_LENGTH, self.sql_length),
            setting(columns, ffi::SQLITE_LIMIT_COLUMN, self.columns),
            setting(expr_depth, ffi::SQLITE_LIMIT_EXPR_DEPTH, self.expr_depth),
            setting(variables, ffi::SQLITE_LIMIT_VARIABLE_NUMBER, self.variables),
        ]
    }

    /// The accepted range of the limit of `var`.
    pub(crate) fn range(var: &str) -> Option<(u32, u32)> {
        Self::RANGES
            .iter()
            .find(|(name, _, _)| *name == var)
            .map(|&(_, min, max)| (min, max))
    }
}

/// The r2d2 connection customizer: applies the role's [`Pragmas`] to each new connection.
#[derive(Debug, Clone)]
pub struct PragmaCustomizer {
    /// The role of the pool this customizer belongs to.
    pub role: Role,
    /// The PRAGMAs applied on acquire.
    pub pragmas: Pragmas,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for PragmaCustomizer {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        self.pragmas.apply(conn).map_err(|error| {
            tracing::error!(role = %self.role, %error, "Database could not configure a new connection");
            diesel::r2d2::Error::QueryError(error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_parse_case_insensitively() {
        assert_eq!(Synchronous::parse("normal"), Some(Synchronous::Normal));
        assert_eq!(Synchronous::parse("FuLl"), Some(Synchronous::Full));
        assert_eq!(Synchronous::parse("fast"), None);
        assert_eq!(TempStore::parse("memory"), Some(TempStore::Memory));
        assert_eq!(
            CheckpointMode::parse("truncate"),
            Some(CheckpointMode::Truncate)
        );
        assert_eq!(CheckpointMode::Passive.to_string(), "PASSIVE");
    }
}
