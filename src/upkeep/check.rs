//! `PRAGMA quick_check` and `PRAGMA integrity_check` on a connection, read as a list of
//! problems: below both the integrity checks of a `Database` and the opening of untrusted
//! files, which run them.

use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::sqlite::SqliteConnection;

use crate::error::{Error, Result};

/// How thoroughly [`Database::integrity_check`](crate::Database::integrity_check) looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckDepth {
    /// `PRAGMA quick_check`: page structure, free lists, record formats, UNIQUE and NOT NULL.
    /// Linear in the database size; what backups and restores run.
    Quick,
    /// `PRAGMA integrity_check`: also verifies that every index matches its table. Slower
    /// (index lookups for every row).
    Full,
}

impl CheckDepth {
    fn pragma(self) -> &'static str {
        match self {
            CheckDepth::Quick => "PRAGMA quick_check",
            CheckDepth::Full => "PRAGMA integrity_check",
        }
    }
}

#[derive(QueryableByName)]
struct QuickCheckRow {
    #[diesel(sql_type = Text)]
    quick_check: String,
}

#[derive(QueryableByName)]
struct IntegrityCheckRow {
    #[diesel(sql_type = Text)]
    integrity_check: String,
}

/// Runs the check on `conn`: the problems found, empty when SQLite answers `ok`.
pub(crate) fn run_check(conn: &mut SqliteConnection, depth: CheckDepth) -> Result<Vec<String>> {
    let rows: std::result::Result<Vec<String>, _> = match depth {
        CheckDepth::Quick => diesel::sql_query(depth.pragma())
            .load::<QuickCheckRow>(conn)
            .map(|rows| rows.into_iter().map(|r| r.quick_check).collect()),
        CheckDepth::Full => diesel::sql_query(depth.pragma())
            .load::<IntegrityCheckRow>(conn)
            .map(|rows| rows.into_iter().map(|r| r.integrity_check).collect()),
    };
    match rows.map_err(Error::from) {
        Ok(rows) if matches!(rows.as_slice(), [only] if only == "ok") => Ok(Vec::new()),
        // One row may hold several problems, one a line, under a "*** in database main ***"
        // heading: return one problem each.
        Ok(rows) => Ok(rows
            .iter()
            .flat_map(|row| row.lines())
            .filter(|line| !line.trim().is_empty() && !line.starts_with("*** in database"))
            .map(str::to_owned)
            .collect()),
        // The check could not even read a page: that is the problem it found.
        Err(Error::NotADatabase { message, .. } | Error::Corrupt { message, .. }) => {
            Ok(vec![message])
        }
        Err(e) => Err(e),
    }
}
