//! `litedal copy`: moves the rows of every table two databases share, SQLite to PostgreSQL
//! or back (feature `postgres`), and verifies them.
//!
//! - The destination's schema is its own (its migrations run first); the source is opened
//!   read-only and never modified.
//! - Before any row moves, every shared table is checked: the columns are matched by name,
//!   their types must map (the categories integer, real, text, boolean, timestamp,
//!   blob), a source column the destination lacks or a required destination column the
//!   source lacks is refused, naming `table.column`, and so is a table without a
//!   single-column integer primary key.
//! - Tables go in foreign-key order; each is streamed in primary-key order in batches
//!   (constant memory) and each batch is one transaction in the destination. A copy killed
//!   part-way leaves a prefix of every table: it is **resumable** (`CopyMode::Resume` starts
//!   each table after the largest key the destination has).
//! - PostgreSQL sequences are moved past the copied ids; row counts and a per-table checksum
//!   of every value (the same canonical form read from both sides) end the copy, and
//!   [`verify`] re-runs them alone.

mod schema;

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::engine::AnyConnection;
use crate::error::{Error, Result};
use schema::{Category, Table, quote};

/// What to do with a destination that already has rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyMode {
    /// Refuse a destination table that has rows (the default).
    #[default]
    Fresh,
    /// Insert after the rows already there (a key that exists fails the copy).
    Append,
    /// Continue an interrupted copy: each table starts after the largest key the destination
    /// has.
    Resume,
}

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Rows per batch (one transaction in the destination); default 10,000.
    pub batch_rows: usize,
    /// See [`CopyMode`].
    pub mode: CopyMode,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            batch_rows: 10_000,
            mode: CopyMode::Fresh,
        }
    }
}

/// Where a copy is, for a progress display.
#[derive(Debug, Clone)]
pub struct CopyProgress<'a> {
    /// The table being copied.
    pub table: &'a str,
    /// Rows of this table copied so far (this run).
    pub table_rows: u64,
    /// Rows of this table in the source.
    pub table_total: u64,
    /// Rows of every table copied so far (this run).
    pub rows: u64,
    /// Rows of every shared table in the source.
    pub total: u64,
}

/// The counts and checksums of one table on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCheck {
    /// The table.
    pub table: String,
    /// Rows in the source.
    pub source_rows: u64,
    /// Rows in the destination.
    pub destination_rows: u64,
    /// Checksum of every value of the shared columns, in key order, in the source.
    pub source_checksum: u64,
    /// The same in the destination.
    pub destination_checksum: u64,
}

impl TableCheck {
    /// Whether both sides hold the same rows.
    pub fn matches(&self) -> bool {
        self.source_rows == self.destination_rows
            && self.source_checksum == self.destination_checksum
    }
}

/// What a copy did.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// Rows copied per table, in the order they were copied.
    pub copied: Vec<(String, u64)>,
    /// Tables of the source the destination does not have (not copied).
    pub skipped: Vec<String>,
    /// The verification that ended the copy.
    pub checks: Vec<TableCheck>,
    /// How long the copy took, verification included.
    pub elapsed: Duration,
}

/// Opens `url` for a copy: SQLite (read-only when `read_only`) or PostgreSQL (read-only
/// transactions when `read_only`).
fn open(url: &str, read_only: bool) -> Result<AnyConnection> {
    if crate::url::is_postgres_url(url) {
        let mut conn = PgConnection::establish(url).map_err(|e| {
            Error::config(
                "DATABASE_URL",
                crate::url::redact_password(url),
                format!("could not connect to PostgreSQL: {e}"),
            )
        })?;
        if read_only {
            conn.batch_execute("SET default_transaction_read_only = on")?;
        }
        return Ok(AnyConnection::Postgresql(conn));
    }
    let location = crate::url::parse_database_url(url)?;
    if let (true, Some(path)) = (read_only, location.path()) {
        // The source is a file litedal did not create: opened as untrusted (read-only, no
        // hook, trusted_schema off, no mmap) and refused unless quick_check passes.
        if let crate::url::DatabaseLocation::File {
            params: Some(params),
            ..
        } = &location
        {
            return Err(Error::InvalidInput {
                what: "SQLite source of the copy",
                value: url.to_owned(),
                reason: format!(
                    "its URI parameters ({params}) cannot be used: the source is always opened \
                     read-only as an untrusted file; give the plain path"
                ),
            });
        }
        if !path.exists() {
            return Err(Error::io(
                "opening the copy's source",
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            ));
        }
        let conn = crate::upkeep::untrusted::open_checked(
            path,
            crate::upkeep::untrusted::Source::MaybeLive,
        )?;
        return Ok(AnyConnection::Sqlite(conn));
    }
    let mut uri = location.sqlite_uri();
    if read_only {
        uri.push_str(if uri.contains('?') {
            "&mode=ro"
        } else {
            "?mode=ro"
        });
    }
    let mut conn = diesel::SqliteConnection::establish(&uri)
        .map_err(|e| Error::config("DATABASE_URL", url, format!("could not open: {e}")))?;
    conn.batch_execute("PRAGMA busy_timeout = 5000")?;
    Ok(AnyConnection::Sqlite(conn))
}

/// One table's copy plan: the shared columns in the destination's order.
struct Plan {
    table: String,
    key: String,
    /// (name, category, destination's declared type)
    columns: Vec<(String, Category, String)>,
}

/// Checks every shared table before anything moves.
fn plan(source: &[Table], destination: Vec<Table>) -> Result<(Vec<Plan>, Vec<String>)> {
    let skipped = source
        .iter()
        .filter(|s| !destination.iter().any(|d| d.name == s.name))
        .map(|s| s.name.clone())
        .collect();
    let shared: Vec<Table> = destination
        .into_iter()
        .filter(|d| source.iter().any(|s| s.name == d.name))
        .collect();
    let refuse = |table: &str, column: &str, reason: String| Error::InvalidInput {
        what: "column to copy",
        value: format!("{table}.{column}"),
        reason,
    };
    let mut plans = Vec::new();
    for dest in schema::in_foreign_key_order(shared)? {
        let Some(src) = source.iter().find(|s| s.name == dest.name) else {
            continue;
        };
        for column in &src.columns {
            if !dest.columns.iter().any(|d| d.name == column.name) {
                return Err(refuse(
                    &src.name,
                    &column.name,
                    "the destination has no such column; its values would be lost (add it to the \
                     destination's migrations)"
                        .to_owned(),
                ));
            }
        }
        let mut columns = Vec::new();
        for d in &dest.columns {
            let Some(s) = src.columns.iter().find(|s| s.name == d.name) else {
                if d.required {
                    return Err(refuse(
                        &dest.name,
                        &d.name,
                        "NOT NULL without a default in the destination, and the source has no such column"
                            .to_owned(),
                    ));
                }
                continue;
            };
            match (s.category, d.category) {
                (Some(a), Some(b)) if a == b => {
                    columns.push((d.name.clone(), b, d.declared.clone()))
                }
                _ => {
                    return Err(refuse(
                        &dest.name,
                        &d.name,
                        format!(
                            "{} in the source cannot be copied into {} in the destination \
                             (copied: integer, real, text, boolean, timestamp and blob types, \
                             each into its own kind)",
                            s.declared, d.declared
                        ),
                    ));
                }
            }
        }
        let key = match (&src.key, &dest.key) {
            (Some(a), Some(b)) if a == b => a.clone(),
            _ => {
                return Err(refuse(
                    &dest.name,
                    "(primary key)",
                    "copy streams rows in the order of a single-column primary key shared by \
                     both sides; this table has none"
                        .to_owned(),
                ));
            }
        };
        if !columns
            .iter()
            .any(|(name, category, _)| *name == key && *category == Category::Integer)
        {
            return Err(refuse(
                &dest.name,
                &key,
                "the primary key must be an integer to stream rows in order".to_owned(),
            ));
        }
        plans.push(Plan {
            table: dest.name,
            key,
            columns,
        });
    }
    Ok((plans, skipped))
}

/// The canonical JSON form of a column, the same on both engines: integers and reals as
/// numbers, booleans as 0/1, timestamps as `YYYY-MM-DD HH:MM:SS.SSS`, blobs as lowercase hex.
fn value_sql(conn: &AnyConnection, name: &str, category: Category) -> String {
    let c = quote(name);
    match (conn, category) {
        (AnyConnection::Sqlite(_), Category::Timestamp) => {
            format!("strftime('%Y-%m-%d %H:%M:%f', {c})")
        }
        (AnyConnection::Sqlite(_), Category::Blob) => format!("lower(hex({c}))"),
        (AnyConnection::Sqlite(_), _) => c,
        (AnyConnection::Postgresql(_), Category::Boolean) => format!("{c}::int"),
        (AnyConnection::Postgresql(_), Category::Timestamp) => {
            format!("to_char({c}, 'YYYY-MM-DD HH24:MI:SS.MS')")
        }
        (AnyConnection::Postgresql(_), Category::Blob) => format!("encode({c}, 'hex')"),
        (AnyConnection::Postgresql(_), _) => c,
    }
}

#[derive(QueryableByName)]
struct KeyedRow {
    #[diesel(sql_type = BigInt)]
    key: i64,
    #[diesel(sql_type = Text)]
    row: String,
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = Nullable<BigInt>)]
    n: Option<i64>,
}

/// Up to `limit` rows after `after` in key order, each as a JSON array of canonical values.
fn rows_after(
    conn: &mut AnyConnection,
    plan: &Plan,
    after: i64,
    limit: usize,
) -> Result<Vec<KeyedRow>> {
    let values: Vec<String> = plan
        .columns
        .iter()
        .map(|(name, category, _)| value_sql(conn, name, *category))
        .collect();
    let (table, key) = (quote(&plan.table), quote(&plan.key));
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(match conn {
        AnyConnection::Sqlite(c) => diesel::sql_query(format!(
            "SELECT {key} AS key, json_array({}) AS row FROM {table} WHERE {key} > ?1 \
             ORDER BY {key} LIMIT ?2",
            values.join(", ")
        ))
        .bind::<BigInt, _>(after)
        .bind::<BigInt, _>(limit)
        .load(c)?,
        AnyConnection::Postgresql(c) => diesel::sql_query(format!(
            "SELECT {key}::bigint AS key, json_build_array({})::text AS row FROM {table} \
             WHERE {key} > $1 ORDER BY {key} LIMIT $2",
            values.join(", ")
        ))
        .bind::<BigInt, _>(after)
        .bind::<BigInt, _>(limit)
        .load(c)?,
    })
}

/// Inserts `rows` (JSON arrays in the plan's column order) in one transaction.
fn insert(conn: &mut AnyConnection, plan: &Plan, rows: &[KeyedRow]) -> Result<()> {
    let batch = format!(
        "[{}]",
        rows.iter()
            .map(|r| r.row.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    let names: Vec<String> = plan.columns.iter().map(|(n, _, _)| quote(n)).collect();
    let table = quote(&plan.table);
    match conn {
        AnyConnection::Sqlite(c) => {
            let values: Vec<String> = plan
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, category, _))| {
                    let v = format!("json_extract(value, '$[{i}]')");
                    if *category == Category::Blob {
                        format!("unhex({v})")
                    } else {
                        v
                    }
                })
                .collect();
            let sql = format!(
                "INSERT INTO {table} ({}) SELECT {} FROM json_each(?1)",
                names.join(", "),
                values.join(", ")
            );
            c.immediate_transaction(|c| {
                diesel::sql_query(&sql).bind::<Text, _>(&batch).execute(c)
            })?;
        }
        AnyConnection::Postgresql(c) => {
            let values: Vec<String> = plan
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, category, declared))| match category {
                    Category::Text => format!("(r->>{i})"),
                    Category::Boolean => format!("((r->>{i})::numeric <> 0)"),
                    Category::Blob => format!("decode(r->>{i}, 'hex')"),
                    Category::Timestamp => format!("(r->>{i})::timestamp"),
                    Category::Integer | Category::Real => format!("(r->>{i})::{declared}"),
                })
                .collect();
            let sql = format!(
                "INSERT INTO {table} ({}) OVERRIDING SYSTEM VALUE SELECT {} \
                 FROM json_array_elements($1::json) AS r",
                names.join(", "),
                values.join(", ")
            );
            c.transaction(|c| diesel::sql_query(&sql).bind::<Text, _>(&batch).execute(c))?;
        }
    }
    Ok(())
}

fn count(conn: &mut AnyConnection, table: &str) -> Result<u64> {
    let sql = format!("SELECT count(*) AS n FROM {}", quote(table));
    let n: Number = match conn {
        AnyConnection::Sqlite(c) => diesel::sql_query(sql).get_result(c)?,
        AnyConnection::Postgresql(c) => diesel::sql_query(sql).get_result(c)?,
    };
    Ok(n.n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
}

fn max_key(conn: &mut AnyConnection, plan: &Plan) -> Result<Option<i64>> {
    let sql = format!(
        "SELECT max({})::bigint AS n FROM {}",
        quote(&plan.key),
        quote(&plan.table)
    );
    let n: Number = match conn {
        // SQLite has no `::`; a CAST reads the same on both.
        AnyConnection::Sqlite(c) => {
            diesel::sql_query(sql.replace(")::bigint", ")")).get_result(c)?
        }
        AnyConnection::Postgresql(c) => diesel::sql_query(sql).get_result(c)?,
    };
    Ok(n.n)
}

/// Feeds one canonical row into `hasher`: numbers compare by value whatever form the
/// engine printed them in (`1` and `1.0`), so both sides hash alike.
fn hash_row(hasher: &mut DefaultHasher, key: i64, row: &str) -> Result<()> {
    hasher.write_i64(key);
    let value: serde_json::Value = serde_json::from_str(row).map_err(|e| Error::InvalidInput {
        what: "copied row",
        value: row.chars().take(80).collect(),
        reason: format!("not the JSON litedal reads rows as: {e}"),
    })?;
    let serde_json::Value::Array(values) = value else {
        return Ok(());
    };
    for value in values {
        match value {
            serde_json::Value::Null => hasher.write_u8(0),
            serde_json::Value::Bool(b) => {
                hasher.write_u8(2);
                hasher.write_i64(i64::from(b));
            }
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => {
                    hasher.write_u8(2);
                    hasher.write_i64(i);
                }
                #[allow(clippy::cast_possible_truncation)]
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    hasher.write_u8(2);
                    hasher.write_i64(f as i64);
                }
                (_, f) => {
                    hasher.write_u8(3);
                    hasher.write_u64(f.unwrap_or(f64::NAN).to_bits());
                }
            },
            serde_json::Value::String(s) => {
                hasher.write_u8(4);
                hasher.write(s.as_bytes());
                hasher.write_u8(0xff);
            }
            other => {
                hasher.write_u8(5);
                hasher.write(other.to_string().as_bytes());
            }
        }
    }
    Ok(())
}

/// Row count and checksum of a table's shared columns on one side.
fn checksum(conn: &mut AnyConnection, plan: &Plan, batch_rows: usize) -> Result<(u64, u64)> {
    let mut hasher = DefaultHasher::new();
    let (mut rows, mut after) = (0u64, i64::MIN);
    loop {
        let batch = rows_after(conn, plan, after, batch_rows)?;
        let Some(last) = batch.last() else {
            break;
        };
        after = last.key;
        for row in &batch {
            hash_row(&mut hasher, row.key, &row.row)?;
        }
        rows += batch.len() as u64;
    }
    Ok((rows, hasher.finish()))
}

fn checks(
    source: &mut AnyConnection,
    destination: &mut AnyConnection,
    plans: &[Plan],
    batch_rows: usize,
) -> Result<Vec<TableCheck>> {
    plans
        .iter()
        .map(|plan| {
            let (source_rows, source_checksum) = checksum(source, plan, batch_rows)?;
            let (destination_rows, destination_checksum) = checksum(destination, plan, batch_rows)?;
            Ok(TableCheck {
                table: plan.table.clone(),
                source_rows,
                destination_rows,
                source_checksum,
                destination_checksum,
            })
        })
        .collect()
}

fn prepare(from: &str, to: &str) -> Result<(AnyConnection, AnyConnection, Vec<Plan>, Vec<String>)> {
    let mut source = open(from, true)?;
    let mut destination = open(to, false)?;
    let source_tables = schema::read(&mut source)?;
    let destination_tables = schema::read(&mut destination)?;
    let (plans, skipped) = plan(&source_tables, destination_tables)?;
    Ok((source, destination, plans, skipped))
}

/// Copies every table `from` and `to` share (see the [module documentation](self)).
/// `progress` is called after every batch.
///
/// # Errors
///
/// [`Error::InvalidInput`] naming `table.column` for a schema that cannot be copied (before
/// any row moves), or a non-empty destination table in [`CopyMode::Fresh`];
/// [`Error::CopyFailed`] naming the table and the last committed key for a failure part-way.
pub fn copy(
    from: &str,
    to: &str,
    options: &CopyOptions,
    progress: &mut dyn FnMut(&CopyProgress<'_>),
) -> Result<CopyReport> {
    let started = Instant::now();
    let batch_rows = options.batch_rows.max(1);
    let (mut source, mut destination, plans, skipped) = prepare(from, to)?;
    if options.mode == CopyMode::Fresh {
        for plan in &plans {
            let rows = count(&mut destination, &plan.table)?;
            if rows > 0 {
                return Err(Error::InvalidInput {
                    what: "copy destination",
                    value: format!("{} ({rows} rows)", plan.table),
                    reason: "the destination table is not empty; copy into an empty database, \
                             or pass --append (add to it) or --resume (continue a copy)"
                        .to_owned(),
                });
            }
        }
    }
    let mut totals = Vec::with_capacity(plans.len());
    for plan in &plans {
        totals.push(count(&mut source, &plan.table)?);
    }
    let total: u64 = totals.iter().sum();
    let mut copied = Vec::with_capacity(plans.len());
    let mut rows_done = 0u64;
    for (plan, table_total) in plans.iter().zip(totals) {
        let mut after = match options.mode {
            CopyMode::Resume => max_key(&mut destination, plan)?.unwrap_or(i64::MIN),
            _ => i64::MIN,
        };
        let mut table_rows = 0u64;
        loop {
            let failed = |after: i64, e: Error| Error::CopyFailed {
                table: plan.table.clone(),
                after_key: after,
                source: Box::new(e),
            };
            let batch =
                rows_after(&mut source, plan, after, batch_rows).map_err(|e| failed(after, e))?;
            let Some(last) = batch.last().map(|r| r.key) else {
                break;
            };
            insert(&mut destination, plan, &batch).map_err(|e| failed(after, e))?;
            after = last;
            table_rows += batch.len() as u64;
            rows_done += batch.len() as u64;
            progress(&CopyProgress {
                table: &plan.table,
                table_rows,
                table_total,
                rows: rows_done,
                total,
            });
        }
        if let AnyConnection::Postgresql(c) = &mut destination {
            // Explicit ids leave an identity or serial sequence behind: move it past them.
            diesel::sql_query(format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), m) FROM (SELECT max({})::bigint \
                 AS m FROM {}) s WHERE m IS NOT NULL",
                quote(&plan.key),
                quote(&plan.table)
            ))
            .bind::<Text, _>(quote(&plan.table))
            .bind::<Text, _>(&plan.key)
            .execute(c)?;
        }
        tracing::info!(table = %plan.table, rows = table_rows, "Database copy: table copied");
        copied.push((plan.table.clone(), table_rows));
    }
    let checks = checks(&mut source, &mut destination, &plans, batch_rows)?;
    Ok(CopyReport {
        copied,
        skipped,
        checks,
        elapsed: started.elapsed(),
    })
}

/// Compares row counts and checksums of every table `from` and `to` share, without copying.
///
/// # Errors
///
/// As [`copy`]'s checks before any row moves, and database errors.
pub fn verify(from: &str, to: &str) -> Result<Vec<TableCheck>> {
    let (mut source, mut destination, plans, _) = prepare(from, to)?;
    checks(
        &mut source,
        &mut destination,
        &plans,
        CopyOptions::default().batch_rows,
    )
}
