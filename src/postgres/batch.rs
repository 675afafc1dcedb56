//! Bulk inserts on PostgreSQL: multi-row `INSERT` statements within PostgreSQL's 65,535 bind
//! values each, all inside the caller's transaction (all rows or none).
//!
//! As on SQLite, an insert model whose rows all render the same SQL goes out as statements
//! of [`PG_PREPARED_CHUNK_ROWS`] rows that diesel prepares once per connection (a named
//! prepared statement: the server parses and plans it once), other models as diesel's own
//! multi-row statements, parsed and planned at every call.

use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{InsertStatement, QueryBuilder, QueryFragment, QueryId, ValuesClause};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::sqlite::{Sqlite, SqliteQueryBuilder};
use diesel::{Insertable, Table};

use crate::error::Result;
use crate::repeated_insert;

/// Bind values PostgreSQL takes in one statement (its protocol counts them in 16 bits).
pub const PG_MAX_BIND_VALUES: usize = 65_535;

/// Rows per statement when the statement is prepared once per connection (fewer when a row
/// binds more than 64 values). A prepared statement stays on the server for the
/// connection's life, so it is kept to the size of SQLite's
/// ([`crate::batch::PREPARED_CHUNK_ROWS`]); 4,096 rows measured no faster.
pub const PG_PREPARED_CHUNK_ROWS: usize = 1024;

/// Rows that diesel can insert into table `T` on PostgreSQL as one multi-row statement.
/// Implemented for every such insert model; nothing to implement by hand.
pub trait PgRows<'a, T>: Sized + 'a {
    /// Columns of `table`, the most values one row can bind.
    fn columns(table: T) -> usize;

    /// `INSERT INTO t (a, b) VALUES ` when every row of this model renders the same SQL as
    /// `row` (see [`crate::batch::RowShape`]), so its rows can go out as statements prepared
    /// once; `None` otherwise.
    ///
    /// # Errors
    ///
    /// When the row cannot be rendered to SQL.
    fn repeated_prefix_pg(table: T, row: &'a Self) -> diesel::QueryResult<Option<String>>;

    /// Executes one multi-row `INSERT` of `rows` after `prefix` (from
    /// [`PgRows::repeated_prefix_pg`]), its SQL the same for every chunk of this length; with
    /// `cache`, prepared once per connection.
    ///
    /// # Errors
    ///
    /// The statement's error.
    fn insert_prepared_pg(
        table: T,
        rows: &'a [Self],
        prefix: &str,
        cache: bool,
        conn: &mut PgConnection,
    ) -> diesel::QueryResult<usize>;

    /// Executes one multi-row `INSERT` of `rows`.
    ///
    /// # Errors
    ///
    /// The statement's error.
    fn insert_chunk_pg(
        table: T,
        rows: &'a [Self],
        conn: &mut PgConnection,
    ) -> diesel::QueryResult<usize>;
}

impl<'a, T, R, V> PgRows<'a, T> for R
where
    R: 'a,
    T: Table + Copy,
    T::AllColumns: QueryFragment<Sqlite>,
    &'a [R]: Insertable<T>,
    InsertStatement<T, <&'a [R] as Insertable<T>>::Values>: ExecuteDsl<PgConnection>,
    &'a R: Insertable<T, Values = ValuesClause<V, T>>,
    V: QueryFragment<Pg>,
    InsertStatement<T, ValuesClause<V, T>>: QueryFragment<Pg> + QueryId,
{
    fn repeated_prefix_pg(table: T, row: &'a R) -> diesel::QueryResult<Option<String>> {
        Ok(repeated_insert::single_row::<T, R, V, Pg>(table, row, &Pg)?.1)
    }

    fn insert_prepared_pg(
        _table: T,
        rows: &'a [R],
        prefix: &str,
        cache: bool,
        conn: &mut PgConnection,
    ) -> diesel::QueryResult<usize> {
        ExecuteDsl::execute(
            repeated_insert::of_rows::<T, R, V>(prefix, rows, cache),
            conn,
        )
    }

    fn columns(_table: T) -> usize {
        // The table's column list, rendered: one comma fewer than columns (identifiers are
        // quoted, and a quoted name may hold a comma, so commas inside quotes do not count).
        let mut builder = SqliteQueryBuilder::new();
        if T::all_columns().to_sql(&mut builder, &Sqlite).is_err() {
            return 1;
        }
        let sql = builder.finish();
        let mut quote = None;
        let mut columns = 1;
        for c in sql.chars() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '`' || c == '"' => quote = Some(c),
                None if c == ',' => columns += 1,
                None => {}
            }
        }
        columns
    }

    fn insert_chunk_pg(
        table: T,
        rows: &'a [R],
        conn: &mut PgConnection,
    ) -> diesel::QueryResult<usize> {
        ExecuteDsl::execute(diesel::insert_into(table).values(rows), conn)
    }
}

/// Inserts `rows` as multi-row statements of at most [`PG_MAX_BIND_VALUES`] values each, on
/// a connection already inside the transaction that makes them all or nothing.
pub(crate) fn insert_chunks_pg<'a, T, R>(
    conn: &mut PgConnection,
    table: T,
    rows: &'a [R],
) -> Result<usize>
where
    T: Copy,
    R: PgRows<'a, T>,
{
    let Some(first) = rows.first() else {
        return Ok(0);
    };
    let prefix = R::repeated_prefix_pg(table, first)?;
    repeated_insert::insert_in_chunks(
        rows,
        PG_MAX_BIND_VALUES / R::columns(table).max(1),
        PG_PREPARED_CHUNK_ROWS,
        prefix.as_deref(),
        |chunk, prepared| match prepared {
            Some((prefix, cache)) => R::insert_prepared_pg(table, chunk, prefix, cache, conn),
            None => R::insert_chunk_pg(table, chunk, conn),
        },
    )
}
