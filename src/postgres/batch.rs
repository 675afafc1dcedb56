//! Bulk inserts on PostgreSQL: multi-row `INSERT` statements within PostgreSQL's 65,535 bind
//! values each, all inside the caller's transaction (all rows or none).

use diesel::pg::PgConnection;
use diesel::query_builder::{InsertStatement, QueryBuilder, QueryFragment};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::sqlite::{Sqlite, SqliteQueryBuilder};
use diesel::{Insertable, Table};

use crate::error::{Result, chunk_failed};

/// Bind values PostgreSQL takes in one statement (its protocol counts them in 16 bits).
pub const PG_MAX_BIND_VALUES: usize = 65_535;

/// Rows that diesel can insert into table `T` on PostgreSQL as one multi-row statement.
/// Implemented for every such insert model; nothing to implement by hand.
pub trait PgRows<'a, T>: Sized + 'a {
    /// Columns of `table`, the most values one row can bind.
    fn columns(table: T) -> usize;

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

impl<'a, T, R> PgRows<'a, T> for R
where
    R: 'a,
    T: Table + Copy,
    T::AllColumns: QueryFragment<Sqlite>,
    &'a [R]: Insertable<T>,
    InsertStatement<T, <&'a [R] as Insertable<T>>::Values>: ExecuteDsl<PgConnection>,
{
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
    if rows.is_empty() {
        return Ok(0);
    }
    let chunk_rows = (PG_MAX_BIND_VALUES / R::columns(table).max(1)).max(1);
    let count = rows.len().div_ceil(chunk_rows);
    let mut inserted = 0;
    for (index, chunk) in rows.chunks(chunk_rows).enumerate() {
        inserted += R::insert_chunk_pg(table, chunk, conn)
            .map_err(|e| chunk_failed(e, index, count, chunk_rows, chunk.len()))?;
    }
    Ok(inserted)
}
