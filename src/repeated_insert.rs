//! A multi-row `INSERT` that diesel prepares once per connection, and the cutting of a batch
//! into such statements: behind the bulk inserts of both engines (`batch.rs`,
//! `postgres/batch.rs`).
//!
//! diesel renders and prepares a multi-row `INSERT` of a slice anew for every call (it is not
//! cacheable). When every row of an insert model renders the same SQL (diesel caches the
//! model's single-row statement by its type: no `None` left to a column default, no SQL
//! literal), a statement of n such rows is the same SQL for every chunk of n rows, so
//! [`RepeatedInsert`] gives it a static query id: diesel finds its prepared statement by type,
//! without rendering or hashing the SQL, and binds each chunk's values straight from the rows
//! (on SQLite, text borrowed rather than copied).

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{
    AstPass, InsertStatement, QueryBuilder, QueryFragment, QueryId, ValuesClause,
};
use diesel::{Insertable, Table};

use crate::error::{Result, chunk_failed};

/// One multi-row `INSERT`: `prefix` (`INSERT INTO t (a, b) VALUES `), then each row's values,
/// in parentheses, comma-separated, walked from the row's own values clause.
///
/// `Id` is the query id of the rows' single-row statement; the statement's own id is made of
/// it, so every full chunk of one insert model (same row count, same SQL) shares one
/// prepared statement. Chunks of another length go with `cache: false`, which keeps them out
/// of the statement cache.
pub(crate) struct RepeatedInsert<'p, Id, V> {
    prefix: &'p str,
    rows: Vec<V>,
    cache: bool,
    id: PhantomData<Id>,
}

impl<'p, Id, V> RepeatedInsert<'p, Id, V> {
    /// The statement inserting `rows` (each row's values clause contents) after `prefix`.
    pub(crate) fn new(prefix: &'p str, rows: Vec<V>, cache: bool) -> Self {
        RepeatedInsert {
            prefix,
            rows,
            cache,
            id: PhantomData,
        }
    }
}

/// Inserts `rows` in chunks and returns the row count: chunks of at most `most` rows (what
/// one statement of the engine takes), and of at most `prepared_rows` when the rows can go
/// out as [`RepeatedInsert`]s after `prefix`. `send` executes one chunk: with
/// `Some((prefix, cache))` as a `RepeatedInsert`, kept in the statement cache exactly when
/// `cache` (a full chunk, whose SQL every full chunk of the model shares: what makes the
/// static query id right; the last, shorter chunk is prepared for that call only, so that
/// batches of many sizes do not fill the cache), with `None` as diesel's own statement.
///
/// # Errors
///
/// The first failing chunk's error, naming the chunk.
pub(crate) fn insert_in_chunks<'a, R>(
    rows: &'a [R],
    most: usize,
    prepared_rows: usize,
    prefix: Option<&str>,
    mut send: impl FnMut(&'a [R], Option<(&str, bool)>) -> diesel::QueryResult<usize>,
) -> Result<usize> {
    let chunk_rows = match prefix {
        Some(_) => most.min(prepared_rows),
        None => most,
    }
    .max(1);
    let count = rows.len().div_ceil(chunk_rows);
    let mut inserted = 0;
    for (index, chunk) in rows.chunks(chunk_rows).enumerate() {
        let prepared = prefix.map(|prefix| (prefix, chunk.len() == chunk_rows));
        inserted += send(chunk, prepared)
            .map_err(|e| chunk_failed(e, index, count, chunk_rows, chunk.len()))?;
    }
    Ok(inserted)
}

/// The query id of diesel's single-row `INSERT` into `T` of rows whose values clause holds `V`.
type SingleRowId<T, V> = <InsertStatement<T, ValuesClause<V, T>> as QueryId>::QueryId;

/// The statement of `rows` of table `T` after `prefix` (from [`single_row`]), with the
/// query id of the rows' own single-row statement.
pub(crate) fn of_rows<'a, 'p, T, R, V>(
    prefix: &'p str,
    rows: &'a [R],
    cache: bool,
) -> RepeatedInsert<'p, SingleRowId<T, V>, V>
where
    T: Table,
    &'a R: Insertable<T, Values = ValuesClause<V, T>>,
    InsertStatement<T, ValuesClause<V, T>>: QueryId,
{
    RepeatedInsert::new(
        prefix,
        rows.iter().map(|row| row.values().values).collect(),
        cache,
    )
}

/// diesel's single-row `INSERT` of `row` into `table`, rendered for `DB`, and the prefix a
/// [`RepeatedInsert`] of such rows repeats them after (see [`repeatable_prefix`]; `None`: the
/// rows take diesel's own path).
///
/// # Errors
///
/// When the row cannot be rendered to SQL.
pub(crate) fn single_row<'a, T, R, V, DB>(
    table: T,
    row: &'a R,
    backend: &DB,
) -> diesel::QueryResult<(String, Option<String>)>
where
    DB: Backend,
    DB::QueryBuilder: Default,
    T: Table,
    &'a R: Insertable<T, Values = ValuesClause<V, T>>,
    V: QueryFragment<DB>,
    InsertStatement<T, ValuesClause<V, T>>: QueryFragment<DB> + QueryId,
{
    let one_row = diesel::insert_into(table).values(row);
    let mut builder = DB::QueryBuilder::default();
    one_row.to_sql(&mut builder, backend)?;
    let sql = builder.finish();
    let static_sql = <InsertStatement<T, ValuesClause<V, T>> as QueryId>::HAS_STATIC_QUERY_ID
        && one_row.is_safe_to_cache_prepared(backend)?;
    let prefix = repeatable_prefix(
        &sql,
        static_sql,
        row.values().values,
        DB::QueryBuilder::default(),
        backend,
    )?;
    Ok((sql, prefix))
}

/// The query id of a [`RepeatedInsert`] whose rows' single-row statement has the id `Id`.
pub(crate) struct RepeatedInsertId<Id>(PhantomData<Id>);

impl<Id: 'static, V> QueryId for RepeatedInsert<'_, Id, V> {
    type QueryId = RepeatedInsertId<Id>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Id, V, DB> QueryFragment<DB> for RepeatedInsert<'_, Id, V>
where
    DB: Backend,
    V: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
        if !self.cache {
            out.unsafe_to_cache_prepared();
        }
        out.push_sql(self.prefix);
        for (index, values) in self.rows.iter().enumerate() {
            out.push_sql(if index == 0 { "(" } else { ", (" });
            values.walk_ast(out.reborrow())?;
            out.push_sql(")");
        }
        Ok(())
    }

    /// Without walking the rows: [`repeatable_prefix`] checked that the single-row statement
    /// is safe to cache, and the rows add nothing but bind values.
    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> diesel::QueryResult<bool> {
        Ok(self.cache)
    }
}

/// The prefix of `single_row_sql` (diesel's SQL for one row, whose values clause contents
/// are `values`) that a [`RepeatedInsert`] repeats the rows after, when one is safe: the
/// single-row statement has a static query id (`static_id`) and is safe to cache, and a
/// one-row `RepeatedInsert` renders exactly `single_row_sql` (so one of n rows renders
/// diesel's own n-row statement). `None`: the rows take diesel's own path.
///
/// # Errors
///
/// When rendering the SQL fails.
fn repeatable_prefix<DB, V>(
    single_row_sql: &str,
    static_id: bool,
    values: V,
    mut builder: DB::QueryBuilder,
    backend: &DB,
) -> diesel::QueryResult<Option<String>>
where
    DB: Backend,
    V: QueryFragment<DB>,
{
    if !static_id {
        return Ok(None);
    }
    // The row's values follow the last ") VALUES (": the column list before it is made of
    // quoted identifiers, and values that render as SQL text of their own (literals) make
    // the statement unsafe to cache, so they never get here.
    let Some(at) = single_row_sql.rfind(") VALUES (") else {
        return Ok(None);
    };
    let prefix = &single_row_sql[..at + ") VALUES ".len()];
    let one = RepeatedInsert::<(), V>::new(prefix, vec![values], true);
    one.to_sql(&mut builder, backend)?;
    Ok((builder.finish() == single_row_sql).then(|| prefix.to_owned()))
}
