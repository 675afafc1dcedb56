//! What `copy` needs to know of a schema, read from either engine at run time: the tables,
//! their columns with a type category, the primary key and the foreign keys.

use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

use crate::engine::AnyConnection;
use crate::error::{Error, Result};

/// The types `copy` moves between engines; a column of any other type is refused before a
/// row moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    Integer,
    Real,
    Text,
    Boolean,
    Timestamp,
    Blob,
}

impl Category {
    /// SQLite's declared type, by the same rules as diesel's `print-schema`.
    fn of_sqlite(declared: &str) -> Option<Category> {
        let t = declared.to_ascii_uppercase();
        Some(match t.as_str() {
            "BOOLEAN" | "BOOL" => Category::Boolean,
            "TIMESTAMP" | "DATETIME" => Category::Timestamp,
            _ if t.contains("INT") => Category::Integer,
            _ if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") => Category::Text,
            _ if t.contains("BLOB") || t.is_empty() => Category::Blob,
            _ if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") => Category::Real,
            _ => return None,
        })
    }

    /// PostgreSQL's `information_schema.columns.data_type`.
    fn of_postgres(data_type: &str) -> Option<Category> {
        Some(match data_type {
            "bigint" | "integer" | "smallint" => Category::Integer,
            "double precision" | "real" => Category::Real,
            "text" | "character varying" | "character" => Category::Text,
            "boolean" => Category::Boolean,
            "timestamp without time zone" => Category::Timestamp,
            "bytea" => Category::Blob,
            _ => return None,
        })
    }
}

/// One column.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    /// The type as the database names it (for error messages and casts).
    pub(crate) declared: String,
    pub(crate) category: Option<Category>,
    /// NOT NULL without a default: a destination column the source must supply.
    pub(crate) required: bool,
}

/// One table.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) name: String,
    pub(crate) columns: Vec<Column>,
    /// The single-column primary key rows are streamed in order of, if there is one.
    pub(crate) key: Option<String>,
    /// Tables this one references.
    pub(crate) references: Vec<String>,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    declared: String,
    #[diesel(sql_type = Bool)]
    required: bool,
    #[diesel(sql_type = Bool)]
    key: bool,
}

/// Quotes an identifier for either engine (both take `"..."`).
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The user tables of the database behind `conn` (diesel's migration table left out).
pub(crate) fn read(conn: &mut AnyConnection) -> Result<Vec<Table>> {
    let names: Vec<Name> = match conn {
        AnyConnection::Sqlite(c) => diesel::sql_query(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> '__diesel_schema_migrations' ORDER BY name",
        )
        .load(c)?,
        AnyConnection::Postgresql(c) => diesel::sql_query(
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             AND table_name <> '__diesel_schema_migrations' ORDER BY table_name",
        )
        .load(c)?,
    };
    names
        .into_iter()
        .map(|Name { name }| table(conn, name))
        .collect()
}

fn table(conn: &mut AnyConnection, name: String) -> Result<Table> {
    let (rows, references, postgres): (Vec<ColumnRow>, Vec<Name>, bool) = match conn {
        AnyConnection::Sqlite(c) => (
            diesel::sql_query(
                "SELECT name, type AS declared, (\"notnull\" AND dflt_value IS NULL AND pk = 0) \
                 AS required, pk = 1 AND (SELECT count(*) FROM pragma_table_info(?1) \
                 WHERE pk > 0) = 1 AS key FROM pragma_table_info(?1) ORDER BY cid",
            )
            .bind::<Text, _>(&name)
            .load(c)?,
            diesel::sql_query("SELECT DISTINCT \"table\" AS name FROM pragma_foreign_key_list(?1)")
                .bind::<Text, _>(&name)
                .load(c)?,
            false,
        ),
        AnyConnection::Postgresql(c) => (
            diesel::sql_query(
                "SELECT c.column_name::text AS name, c.data_type::text AS declared, \
                 (c.is_nullable = 'NO' AND c.column_default IS NULL AND c.is_identity = 'NO') \
                 AS required, coalesce((SELECT count(*) = 1 AND bool_or(a.attname = \
                 c.column_name) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
                 AND a.attnum = ANY(i.indkey) WHERE i.indrelid = quote_ident($1)::regclass \
                 AND i.indisprimary), false) AS key FROM information_schema.columns c \
                 WHERE c.table_schema = current_schema() AND c.table_name = $1 \
                 ORDER BY c.ordinal_position",
            )
            .bind::<Text, _>(&name)
            .load(c)?,
            diesel::sql_query(
                "SELECT DISTINCT ccu.table_name::text AS name \
                 FROM information_schema.table_constraints tc \
                 JOIN information_schema.constraint_column_usage ccu \
                 ON tc.constraint_name = ccu.constraint_name \
                 AND tc.table_schema = ccu.table_schema \
                 WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_name = $1 \
                 AND tc.table_schema = current_schema()",
            )
            .bind::<Text, _>(&name)
            .load(c)?,
            true,
        ),
    };
    let key = rows.iter().find(|r| r.key).map(|r| r.name.clone());
    let columns = rows
        .into_iter()
        .map(|r| Column {
            category: if postgres {
                Category::of_postgres(&r.declared)
            } else {
                Category::of_sqlite(&r.declared)
            },
            name: r.name,
            declared: r.declared,
            required: r.required,
        })
        .collect();
    Ok(Table {
        references: references
            .into_iter()
            .map(|n| n.name)
            .filter(|n| *n != name)
            .collect(),
        name,
        columns,
        key,
    })
}

/// `tables` ordered so that every table comes after the tables it references.
///
/// # Errors
///
/// [`Error::InvalidInput`] for a cycle of foreign keys between tables.
pub(crate) fn in_foreign_key_order(mut tables: Vec<Table>) -> Result<Vec<Table>> {
    let mut ordered: Vec<Table> = Vec::with_capacity(tables.len());
    while !tables.is_empty() {
        let ready = tables.iter().position(|t| {
            t.references.iter().all(|r| {
                ordered.iter().any(|o| &o.name == r) || !tables.iter().any(|x| &x.name == r)
            })
        });
        match ready {
            Some(at) => ordered.push(tables.remove(at)),
            None => {
                return Err(Error::InvalidInput {
                    what: "tables to copy",
                    value: tables
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    reason: "their foreign keys form a cycle; copy cannot order them".to_owned(),
                });
            }
        }
    }
    Ok(ordered)
}
