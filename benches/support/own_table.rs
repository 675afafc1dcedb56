//! An application's own table for the bulk-insert cases: five columns, no secondary index,
//! declared the way the README tells applications to (`treat_none_as_default_value = false`).
//! Unlike litedal's `users` table, nothing but the rows themselves is written, so the cost
//! of the insert path shows instead of index maintenance. Shared by the throughput
//! benchmark and `examples/profile_bulk_insert.rs` (`#[path]`-included).

#![allow(dead_code)]

use diesel::prelude::*;

diesel::table! {
    /// Readings of an application's sensors.
    readings (id) {
        id -> BigInt,
        sensor -> Text,
        unit -> Text,
        taken_at -> BigInt,
        value -> Double,
    }
}

/// The table's schema (an application's migration).
pub const SCHEMA: &str = "CREATE TABLE readings (
    id INTEGER PRIMARY KEY,
    sensor TEXT NOT NULL,
    unit TEXT NOT NULL,
    taken_at BIGINT NOT NULL,
    value DOUBLE NOT NULL
)";

/// The raw single-row statement of the floor (the same four values a row as diesel binds).
pub const INSERT_ONE: &str =
    "INSERT INTO readings (sensor, unit, taken_at, value) VALUES (?, ?, ?, ?)";

/// The raw single-row floor: [`INSERT_ONE`] prepared once, bound and stepped per row, all rows
/// in one immediate transaction (on a connection from `raw_sqlite`, which both includers
/// have at their crate root).
pub fn insert_raw(db: &crate::raw_sqlite::RawDb, rows: &[NewReading<'_>]) -> Result<usize, String> {
    crate::raw_sqlite::immediate_transaction(db, || {
        let mut stmt = db.prepare(INSERT_ONE)?;
        for row in rows {
            stmt.bind_text(1, row.sensor)?;
            stmt.bind_text(2, row.unit)?;
            stmt.bind_int(3, row.taken_at)?;
            stmt.bind_double(4, row.value)?;
            stmt.step()?;
            stmt.reset()?;
        }
        Ok(rows.len())
    })
}

/// What an application writes with plain diesel: 500-row `insert_into(..).values(&chunk)`
/// statements in one immediate transaction.
pub fn insert_plain_diesel(
    conn: &mut SqliteConnection,
    rows: &[NewReading<'_>],
) -> QueryResult<usize> {
    conn.immediate_transaction(|conn| {
        let mut n = 0;
        for chunk in rows.chunks(500) {
            n += diesel::insert_into(readings::table)
                .values(chunk)
                .execute(conn)?;
        }
        Ok(n)
    })
}

/// A row to insert; the id is the table's rowid, assigned by SQLite.
#[derive(Insertable, Debug, Clone)]
#[diesel(table_name = readings, treat_none_as_default_value = false)]
pub struct NewReading<'a> {
    pub sensor: &'a str,
    pub unit: &'a str,
    pub taken_at: i64,
    pub value: f64,
}

/// The sensor names the rows cycle through (borrowed by the rows).
pub fn sensors() -> Vec<String> {
    (0..64).map(|i| format!("sensor-{i:02}")).collect()
}

/// `n` rows over `sensors`: deterministic, every column varying.
pub fn rows(sensors: &[String], n: usize) -> Vec<NewReading<'_>> {
    (0..n)
        .map(|i| NewReading {
            sensor: &sensors[i % sensors.len()],
            unit: if i % 3 == 0 { "kPa" } else { "degC" },
            taken_at: 1_700_000_000_000 + i as i64,
            value: (i % 1000) as f64 * 0.25,
        })
        .collect()
}
