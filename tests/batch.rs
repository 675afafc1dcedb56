//! Bulk inserts into an application's own tables: every value lands in its own column, in
//! input order, whichever path the insert model takes (a multi-row statement prepared once,
//! or diesel's own for models whose rows may render different SQL), and a failing chunk
//! leaves nothing behind.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use litedal::batch::PREPARED_CHUNK_ROWS;
use litedal::testing::TestDb;
use litedal::{BatchChunk, Error};

diesel::table! {
    readings (id) {
        id -> BigInt,
        sensor -> Text,
        unit -> Nullable<Text>,
        taken_at -> BigInt,
        value -> Double,
    }
}

diesel::table! {
    labels (id) {
        id -> BigInt,
        left_label -> Text,
        right_label -> Text,
    }
}

const SCHEMA: &str = "
    CREATE TABLE readings (
        id INTEGER PRIMARY KEY,
        sensor TEXT NOT NULL,
        unit TEXT,
        taken_at BIGINT NOT NULL UNIQUE,
        value DOUBLE NOT NULL
    );
    CREATE TABLE labels (
        id INTEGER PRIMARY KEY,
        left_label TEXT NOT NULL DEFAULT 'left default',
        right_label TEXT NOT NULL DEFAULT 'right default'
    );";

/// The model the README recommends: every field always bound (a `None` is NULL).
#[derive(Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = readings, treat_none_as_default_value = false)]
struct NewReading<'a> {
    sensor: &'a str,
    unit: Option<&'a str>,
    taken_at: i64,
    value: f64,
}

#[derive(Queryable, Debug, PartialEq)]
struct Reading {
    id: i64,
    sensor: String,
    unit: Option<String>,
    taken_at: i64,
    value: f64,
}

/// diesel's default: a `None` leaves the column out, so SQLite fills in its default, and two
/// rows may name different columns.
#[derive(Insertable, Debug, Clone)]
#[diesel(table_name = labels)]
struct NewLabel {
    left_label: Option<String>,
    right_label: Option<String>,
}

fn test_db() -> TestDb {
    let db = TestDb::new().unwrap();
    db.db()
        .transaction(|conn| Ok(conn.batch_execute(SCHEMA)?))
        .unwrap();
    db
}

fn sensors() -> Vec<String> {
    (0..7).map(|i| format!("sensor {i} \u{e9}'\"")).collect()
}

fn readings(sensors: &[String], n: usize) -> Vec<NewReading<'_>> {
    (0..n)
        .map(|i| NewReading {
            sensor: &sensors[i % sensors.len()],
            unit: (i % 3 != 0).then_some(if i % 2 == 0 { "kPa" } else { "degC" }),
            taken_at: 1_000_000 + i as i64,
            value: i as f64 * 0.5 - 7.25,
        })
        .collect()
}

fn stored(db: &TestDb) -> Vec<Reading> {
    db.db()
        .read(|conn| Ok(readings::table.order(readings::id).load(conn)?))
        .unwrap()
}

#[test]
fn every_value_lands_in_its_column_in_input_order_across_full_and_partial_chunks() {
    let db = test_db();
    let sensors = sensors();
    // Two full prepared chunks and a partial one; then the same again, reusing the statement.
    let n = 2 * PREPARED_CHUNK_ROWS + 77;
    let rows = readings(&sensors, n);
    assert_eq!(db.db().batch_insert(readings::table, &rows).unwrap(), n);
    let more: Vec<NewReading> = readings(&sensors, 2 * n)[n..].to_vec();
    assert_eq!(db.db().batch_insert(readings::table, &more).unwrap(), n);
    let stored = stored(&db);
    assert_eq!(stored.len(), 2 * n);
    for (i, (row, input)) in stored.iter().zip(rows.iter().chain(&more)).enumerate() {
        let expected = Reading {
            id: i as i64 + 1,
            sensor: input.sensor.to_owned(),
            unit: input.unit.map(str::to_owned),
            taken_at: input.taken_at,
            value: input.value,
        };
        assert_eq!(row, &expected, "row {i}");
    }
}

#[test]
fn rows_that_leave_different_columns_to_their_defaults_keep_them_apart() {
    // Alternating rows name different columns: a statement built from the first row's shape
    // would put the second row's right label into the left column. These rows must take
    // diesel's own path, one statement per row.
    let db = test_db();
    let n = PREPARED_CHUNK_ROWS + 10;
    let rows: Vec<NewLabel> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                NewLabel {
                    left_label: Some(format!("left {i}")),
                    right_label: None,
                }
            } else {
                NewLabel {
                    left_label: None,
                    right_label: Some(format!("right {i}")),
                }
            }
        })
        .collect();
    assert_eq!(db.db().batch_insert(labels::table, &rows).unwrap(), n);
    let stored: Vec<(i64, String, String)> = db
        .db()
        .read(|conn| Ok(labels::table.order(labels::id).load(conn)?))
        .unwrap();
    assert_eq!(stored.len(), n);
    for (i, (id, left, right)) in stored.into_iter().enumerate() {
        assert_eq!(id, i as i64 + 1);
        if i % 2 == 0 {
            assert_eq!((left, right), (format!("left {i}"), "right default".into()));
        } else {
            assert_eq!((left, right), ("left default".into(), format!("right {i}")));
        }
    }
}

#[test]
fn a_failure_in_a_prepared_chunk_or_the_last_one_leaves_nothing_and_names_the_chunk() {
    let db = test_db();
    let sensors = sensors();
    let n = 3 * PREPARED_CHUNK_ROWS + 5;
    let count = 4;
    for (duplicate_at, index) in [(PREPARED_CHUNK_ROWS + 3, 1), (n - 1, 3)] {
        let mut rows = readings(&sensors, n);
        // `taken_at` is unique: repeat the first row's value.
        rows[duplicate_at].taken_at = rows[0].taken_at;
        match db.db().batch_insert(readings::table, &rows) {
            Err(Error::Conflict { constraint, chunk }) => {
                assert_eq!(constraint, "readings.taken_at");
                let start = index * PREPARED_CHUNK_ROWS;
                assert_eq!(
                    chunk,
                    Some(BatchChunk {
                        index,
                        count,
                        rows: start..(start + PREPARED_CHUNK_ROWS).min(n),
                    })
                );
            }
            other => panic!("duplicate at {duplicate_at}: {other:?}"),
        }
        assert!(stored(&db).is_empty(), "duplicate at {duplicate_at}");
    }
    // The connection and its kept statement still work.
    let rows = readings(&sensors, n);
    assert_eq!(db.db().batch_insert(readings::table, &rows).unwrap(), n);
    assert_eq!(stored(&db).len(), n);
}

#[test]
fn inside_a_transaction_a_batch_is_a_savepoint() {
    let db = test_db();
    let sensors = sensors();
    let rows = readings(&sensors, PREPARED_CHUNK_ROWS + 1);
    let mut bad = rows.clone();
    bad[PREPARED_CHUNK_ROWS].taken_at = bad[0].taken_at;
    db.db()
        .transaction(|conn| {
            assert!(matches!(
                litedal::batch::batch_insert(conn, readings::table, &bad),
                Err(Error::Conflict { .. })
            ));
            assert_eq!(
                litedal::batch::batch_insert(conn, readings::table, &rows)?,
                rows.len()
            );
            Ok(())
        })
        .unwrap();
    assert_eq!(stored(&db).len(), rows.len());
}
