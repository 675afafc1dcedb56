//! Bulk inserts: one multi-row `INSERT ... VALUES (..), (..)` per chunk, all chunks in one
//! immediate transaction.
//!
//! diesel does not split a batch, and SQLite refuses a statement with more than 32766 bound
//! values ("too many SQL variables"). [`batch_insert`] counts the bound values of one row
//! and sends statements of at most `floor(32766 / values per row)` rows.

use diesel::query_builder::{InsertStatement, QueryBuilder, QueryFragment};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::sqlite::{Sqlite, SqliteConnection, SqliteQueryBuilder};
use diesel::{Insertable, Table};

use crate::database::{Database, write_on};
use crate::error::{BatchChunk, Error, Result};

/// SQLite's limit on bound values per statement (SQLITE_MAX_VARIABLE_NUMBER of the bundled
/// SQLite, 3.32 and later).
pub const MAX_BOUND_VALUES: usize = 32766;

/// Batches of at least this many rows are followed by `PRAGMA optimize` (see
/// [`Database::optimize`]).
pub const OPTIMIZE_AFTER_ROWS: usize = 10_000;

/// How many rows of `values_per_row` bound values fit in one statement.
pub fn rows_per_statement(values_per_row: usize) -> usize {
    (MAX_BOUND_VALUES / values_per_row.max(1)).max(1)
}

/// Counts the `?` placeholders of an SQL string, skipping quoted identifiers and literals.
fn count_placeholders(sql: &str) -> usize {
    let mut count = 0;
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, '`' | '"' | '\'' | '[') => {
                quote = Some(if c == '[' { ']' } else { c })
            }
            None if c == '?' => count += 1,
            None => {}
        }
    }
    count
}

/// Rows that can be bulk-inserted into table `T` as multi-row statements.
///
/// Implemented for every diesel insert model whose slices diesel can insert into `T`; there is
/// nothing to implement by hand. (The bounds live on this trait rather than on
/// [`batch_insert`] so that rustc can infer the row type at call sites.)
pub trait BatchRows<'a, T>: Sized + 'a {
    /// Bound values of one row (at most `MAX_BOUND_VALUES` fit in one statement).
    ///
    /// # Errors
    ///
    /// When the row cannot be rendered to SQL.
    fn values_per_row(table: T, row: &'a Self) -> diesel::QueryResult<usize>;

    /// Executes one multi-row `INSERT` of `rows`.
    ///
    /// # Errors
    ///
    /// The statement's error.
    fn insert_chunk(
        table: T,
        rows: &'a [Self],
        conn: &mut SqliteConnection,
    ) -> diesel::QueryResult<usize>;
}

impl<'a, T, R> BatchRows<'a, T> for R
where
    R: 'a,
    T: Table + Copy,
    &'a [R]: Insertable<T>,
    &'a R: Insertable<T>,
    InsertStatement<T, <&'a [R] as Insertable<T>>::Values>: ExecuteDsl<SqliteConnection>,
    InsertStatement<T, <&'a R as Insertable<T>>::Values>: QueryFragment<Sqlite>,
{
    fn values_per_row(table: T, row: &'a R) -> diesel::QueryResult<usize> {
        let one_row = diesel::insert_into(table).values(row);
        let mut builder = SqliteQueryBuilder::new();
        one_row.to_sql(&mut builder, &Sqlite)?;
        Ok(count_placeholders(&builder.finish()))
    }

    fn insert_chunk(
        table: T,
        rows: &'a [R],
        conn: &mut SqliteConnection,
    ) -> diesel::QueryResult<usize> {
        ExecuteDsl::execute(diesel::insert_into(table).values(rows), conn)
    }
}

/// Inserts `rows` into `table` on `conn` as multi-row statements and returns the row count.
///
/// Runs inside the caller's transaction when there is one (as a savepoint, so a failure
/// undoes only this batch), otherwise in its own immediate transaction: all rows or none.
/// The insert model must be declared with `#[diesel(treat_none_as_default_value = false)]`;
/// with diesel's default, SQLite inserts row by row.
///
/// # Errors
///
/// The first failing statement's error (`Error::Conflict`, `Error::ForeignKey`, ...), which
/// names the failing chunk; nothing of the batch is left in the table.
pub fn batch_insert<'a, T, R>(conn: &mut SqliteConnection, table: T, rows: &'a [R]) -> Result<usize>
where
    T: Copy,
    R: BatchRows<'a, T>,
{
    write_on(conn, |conn| insert_chunks(conn, table, rows))
}

/// The statements of a batch insert, on a connection already inside the transaction that
/// makes them all or nothing.
pub(crate) fn insert_chunks<'a, T, R>(
    conn: &mut SqliteConnection,
    table: T,
    rows: &'a [R],
) -> Result<usize>
where
    T: Copy,
    R: BatchRows<'a, T>,
{
    let Some(first) = rows.first() else {
        return Ok(0);
    };
    let chunk_rows = rows_per_statement(R::values_per_row(table, first)?);
    let count = rows.len().div_ceil(chunk_rows);
    let mut inserted = 0;
    for (index, chunk) in rows.chunks(chunk_rows).enumerate() {
        inserted += R::insert_chunk(table, chunk, conn).map_err(|e| {
            let start = index * chunk_rows;
            let at = BatchChunk {
                index,
                count,
                rows: start..start + chunk.len(),
            };
            tracing::warn!(error = %e, chunk = %at, "Database batch insert failed");
            Error::from(e).in_chunk(at)
        })?;
    }
    Ok(inserted)
}

impl Database {
    /// Inserts `rows` into `table` in one immediate transaction, as multi-row statements of
    /// at most `floor(32766 / bound values per row)` rows each, and returns the row count.
    /// Batches of [`OPTIMIZE_AFTER_ROWS`] rows or more are followed by `PRAGMA optimize`, so
    /// the query planner has statistics for the new rows.
    ///
    /// ```
    /// use litedal::example::models::NewUser;
    /// use litedal::example::schema::users;
    ///
    /// # let test_db = litedal::example::test_db()?;
    /// # let db = test_db.db();
    /// let emails: Vec<String> = (0..20_000).map(|i| format!("user{i}@example.com")).collect();
    /// let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("user", e)).collect();
    /// assert_eq!(db.batch_insert(users::table, &rows)?, 20_000);
    /// # Ok::<(), litedal::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] or [`Error::PoolTimeout`] before anything ran, or the first failing
    /// statement's error naming its chunk; the table is then unchanged.
    pub fn batch_insert<'a, T, R>(&self, table: T, rows: &'a [R]) -> Result<usize>
    where
        T: Copy,
        R: BatchRows<'a, T>,
    {
        let inserted = self.transaction(|conn| insert_chunks(conn, table, rows))?;
        if inserted >= OPTIMIZE_AFTER_ROWS {
            // Statistics for the query planner: without them, a filter on a column with few
            // distinct values (`active`) picks its index and sorts every match instead of
            // walking the primary key. The rows are committed; a failure here only loses the
            // statistics until the next optimize.
            if let Err(error) = self.optimize() {
                tracing::warn!(%error, "Database optimize after a batch insert failed");
            }
        }
        Ok(inserted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(rows_per_statement(3), 10922);
        assert_eq!(rows_per_statement(4), 8191);
        assert_eq!(rows_per_statement(32766), 1);
        assert_eq!(rows_per_statement(40000), 1);
        assert_eq!(rows_per_statement(0), 32766);
    }

    #[test]
    fn placeholders_outside_quotes() {
        assert_eq!(
            count_placeholders("INSERT INTO `a?` (`x`, \"y?\") VALUES (?, ?), (?, '?')"),
            3
        );
    }
}
