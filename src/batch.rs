//! Bulk inserts: one multi-row `INSERT ... VALUES (..), (..)` per chunk, all chunks in one
//! immediate transaction.
//!
//! diesel does not split a batch, and SQLite refuses a statement with more than 32766 bound
//! values ("too many SQL variables"). [`batch_insert`] counts the bound values of one row
//! and sends statements of at most `floor(32766 / values per row)` rows.
//!
//! diesel renders and prepares a multi-row `INSERT` anew for every call (a slice's statement
//! is not cacheable), and SQLite's parser then takes a quarter of the time of a bulk insert.
//! When every row of the insert model renders the same SQL (diesel caches the model's
//! single-row statement by its type: no `None` left to a column default, no SQL literal),
//! litedal sends its own multi-row statement type instead (`repeated_insert.rs`): a full
//! chunk ([`PREPARED_CHUNK_ROWS`] rows) is one statement type that diesel finds in its
//! statement cache by type, so it is rendered and prepared once per write connection, and
//! its values are bound straight from the rows (text borrowed, not copied). Other models take diesel's path. Measured on a 5-column table
//! without secondary indexes: 0.77 M rows/s through diesel's path, 1.0 M rows/s prepared
//! once with copied values, more with borrowed ones (see PERFORMANCE.md).

use diesel::query_builder::{InsertStatement, QueryFragment, QueryId, ValuesClause};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{Insertable, Table};

use crate::database::{Database, write_on};
use crate::engine::{EngineKind, SqliteEngine};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::repeated_insert;

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

/// How the rows of one insert model render as a single-row `INSERT`.
#[derive(Debug, Clone)]
pub struct RowShape {
    /// Bound values of one row.
    values_per_row: usize,
    /// `INSERT INTO t (a, b) VALUES ` (everything before the first row's values) when every
    /// row of this model renders exactly the same: diesel itself caches the single-row
    /// statement by its type alone (a static query id, and no part of the SQL that depends
    /// on the values, such as a column left out for a `None` field that defaults), so the
    /// rows can go out as litedal's own multi-row statements, prepared once. `None`: the rows
    /// take diesel's own path.
    repeated_prefix: Option<String>,
}

impl RowShape {
    /// Bound values of one row.
    pub fn values_per_row(&self) -> usize {
        self.values_per_row
    }
}

/// Rows that can be bulk-inserted into table `T` as multi-row statements.
///
/// Implemented for every diesel insert model whose slices diesel can insert into `T`; there is
/// nothing to implement by hand. (The bounds live on this trait rather than on
/// [`batch_insert`] so that rustc can infer the row type at call sites.)
pub trait BatchRows<'a, T>: Sized + 'a {
    /// How `row` renders as a single-row `INSERT` into `table`.
    ///
    /// # Errors
    ///
    /// When the row cannot be rendered to SQL.
    fn shape(table: T, row: &'a Self) -> diesel::QueryResult<RowShape>;

    /// Executes one multi-row `INSERT` of `rows` the way diesel does (rendered and prepared
    /// for this call), for rows whose SQL may differ from row to row.
    ///
    /// # Errors
    ///
    /// The statement's error.
    fn insert_chunk(
        table: T,
        rows: &'a [Self],
        conn: &mut SqliteConnection,
    ) -> diesel::QueryResult<usize>;

    /// Executes one multi-row `INSERT` of `rows` (whose [`RowShape`] has the `prefix`), its
    /// SQL the same for every chunk of this length, binding each row's values in order,
    /// borrowed. With `cache`, the prepared statement stays in the connection's statement
    /// cache for the next full chunk.
    ///
    /// # Errors
    ///
    /// The statement's error.
    fn insert_prepared(
        table: T,
        rows: &'a [Self],
        prefix: &str,
        cache: bool,
        conn: &mut SqliteConnection,
    ) -> diesel::QueryResult<usize>;
}

impl<'a, T, R, V> BatchRows<'a, T> for R
where
    R: 'a,
    T: Table + Copy,
    &'a [R]: Insertable<T>,
    &'a R: Insertable<T, Values = ValuesClause<V, T>>,
    V: QueryFragment<Sqlite>,
    InsertStatement<T, <&'a [R] as Insertable<T>>::Values>: ExecuteDsl<SqliteConnection>,
    InsertStatement<T, ValuesClause<V, T>>: QueryFragment<Sqlite> + QueryId,
{
    fn shape(table: T, row: &'a R) -> diesel::QueryResult<RowShape> {
        let (sql, repeated_prefix) =
            repeated_insert::single_row::<T, R, V, Sqlite>(table, row, &Sqlite)?;
        Ok(RowShape {
            values_per_row: count_placeholders(&sql),
            repeated_prefix,
        })
    }

    fn insert_chunk(
        table: T,
        rows: &'a [R],
        conn: &mut SqliteConnection,
    ) -> diesel::QueryResult<usize> {
        ExecuteDsl::execute(diesel::insert_into(table).values(rows), conn)
    }

    fn insert_prepared(
        _table: T,
        rows: &'a [R],
        prefix: &str,
        cache: bool,
        conn: &mut SqliteConnection,
    ) -> diesel::QueryResult<usize> {
        ExecuteDsl::execute(
            repeated_insert::of_rows::<T, R, V>(prefix, rows, cache),
            conn,
        )
    }
}

/// Rows that can be bulk-inserted into `T` on the engines of `E`: on SQLite every
/// [`BatchRows`] type, and with the `postgres` feature on either engine every type that is
/// also insertable on PostgreSQL. Implemented by litedal for all of them; the bound of
/// [`Executor::batch_insert`](crate::Executor::batch_insert).
pub trait EngineRows<'a, T, E: EngineKind>: Sized + 'a {
    /// Inserts `rows` on `conn`, already inside the transaction that makes them all or
    /// nothing, and returns the row count.
    ///
    /// # Errors
    ///
    /// The first failing statement's error, naming its chunk.
    fn insert_rows(conn: &mut E::Conn<'_>, table: T, rows: &'a [Self]) -> Result<usize>;
}

impl<'a, T, R> EngineRows<'a, T, SqliteEngine> for R
where
    T: Copy,
    R: BatchRows<'a, T>,
{
    fn insert_rows(conn: &mut SqliteConnection, table: T, rows: &'a [R]) -> Result<usize> {
        insert_chunks(conn, table, rows)
    }
}

/// On either engine: SQLite's chunker or PostgreSQL's multi-row statements.
#[cfg(feature = "postgres")]
impl<'a, T, R> EngineRows<'a, T, crate::engine::AnyEngine> for R
where
    T: Copy,
    R: BatchRows<'a, T> + crate::postgres::PgRows<'a, T>,
{
    fn insert_rows(
        conn: &mut crate::engine::EngineRef<'_>,
        table: T,
        rows: &'a [R],
    ) -> Result<usize> {
        match conn {
            crate::engine::EngineRef::Sqlite(conn) => insert_chunks(conn, table, rows),
            crate::engine::EngineRef::Postgres(conn) => {
                crate::postgres::insert_chunks_pg(conn, table, rows)
            }
        }
    }
}

/// Rows per statement when the statement is prepared once and kept in the write
/// connection's statement cache. Larger statements do not insert faster once preparing is
/// out of the way (measured: 256, 1,024 and 8,191 rows of 4 values within noise of each
/// other), but a kept 8,191-row statement holds about 2.8 MiB of SQLite memory per write
/// connection, a 1,024-row one about 270 KiB.
pub const PREPARED_CHUNK_ROWS: usize = 1024;

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
    let shape = R::shape(table, first)?;
    repeated_insert::insert_in_chunks(
        rows,
        rows_per_statement(shape.values_per_row),
        PREPARED_CHUNK_ROWS,
        shape.repeated_prefix.as_deref(),
        |chunk, prepared| match prepared {
            Some((prefix, cache)) => R::insert_prepared(table, chunk, prefix, cache, conn),
            None => R::insert_chunk(table, chunk, conn),
        },
    )
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
        R: EngineRows<'a, T, SqliteEngine>,
    {
        let inserted = self.transaction(|conn| R::insert_rows(conn, table, rows))?;
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
