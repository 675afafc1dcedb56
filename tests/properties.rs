//! Property tests: parsers never panic and round-trip; batch inserts insert exactly the rows
//! given for any row count and column count.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use diesel::prelude::*;
use litedal::batch::{MAX_BOUND_VALUES, batch_insert, rows_per_statement};
use litedal::config::ENV_VARS;
use litedal::url::parse_database_url;
use litedal::{Config, Error};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn url_parsing_never_panics_and_round_trips(url in any::<String>()) {
        if let Ok(location) = parse_database_url(&url) {
            let again = parse_database_url(&location.to_url());
            prop_assert_eq!(again.ok(), Some(location));
        }
    }

    #[test]
    fn url_like_strings_round_trip(
        scheme in prop::sample::select(vec!["", "sqlite://", "sqlite:", "file:", "file://", "sqlite:///"]),
        path in "[a-zA-Z0-9 ?#%&=._/~-]{0,40}",
    ) {
        let url = format!("{scheme}{path}");
        if let Ok(location) = parse_database_url(&url) {
            prop_assert_eq!(parse_database_url(&location.to_url()).ok(), Some(location));
        }
    }

    #[test]
    fn config_parsing_never_panics(
        index in 0..ENV_VARS.len(),
        value in any::<Vec<u8>>(),
        text in any::<String>(),
    ) {
        let var = ENV_VARS[index].0;
        for raw in [OsString::from_vec(value.clone()), OsString::from(text.clone())] {
            match Config::from_vars([(OsString::from(var), raw)]) {
                Ok(_) | Err(Error::Config { .. }) | Err(Error::UnsupportedUrl { .. }) => {}
                Err(other) => prop_assert!(false, "{var}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn chunks_cover_every_row_within_the_bound_value_limit(
        rows in 0usize..=100_000,
        values_per_row in 1usize..=40_000,
    ) {
        let per_statement = rows_per_statement(values_per_row);
        prop_assert!(per_statement >= 1);
        if values_per_row <= MAX_BOUND_VALUES {
            prop_assert!(per_statement * values_per_row <= MAX_BOUND_VALUES);
            prop_assert!((per_statement + 1) * values_per_row > MAX_BOUND_VALUES);
        }
        let statements = rows.div_ceil(per_statement);
        prop_assert!(statements * per_statement >= rows);
        prop_assert!(rows == 0 || (statements - 1) * per_statement < rows);
    }
}

// Tables of 1, 2, 7 and 32 columns, to insert into for real.
diesel::table! { wide1 (id) { id -> BigInt, c1 -> BigInt, } }
diesel::table! { wide2 (id) { id -> BigInt, c1 -> BigInt, c2 -> Text, } }
diesel::table! {
    wide7 (id) {
        id -> BigInt, c1 -> BigInt, c2 -> Text, c3 -> BigInt, c4 -> Text, c5 -> BigInt,
        c6 -> Text, c7 -> BigInt,
    }
}
diesel::table! {
    wide32 (id) {
        id -> BigInt,
        c1 -> BigInt, c2 -> BigInt, c3 -> BigInt, c4 -> BigInt, c5 -> BigInt, c6 -> BigInt,
        c7 -> BigInt, c8 -> BigInt, c9 -> BigInt, c10 -> BigInt, c11 -> BigInt, c12 -> BigInt,
        c13 -> BigInt, c14 -> BigInt, c15 -> BigInt, c16 -> BigInt, c17 -> BigInt, c18 -> BigInt,
        c19 -> BigInt, c20 -> BigInt, c21 -> BigInt, c22 -> BigInt, c23 -> BigInt, c24 -> BigInt,
        c25 -> BigInt, c26 -> BigInt, c27 -> BigInt, c28 -> BigInt, c29 -> BigInt, c30 -> BigInt,
        c31 -> BigInt,
    }
}

#[derive(Insertable, Clone)]
#[diesel(table_name = wide1, treat_none_as_default_value = false)]
struct Wide1 {
    c1: i64,
}

#[derive(Insertable, Clone)]
#[diesel(table_name = wide2, treat_none_as_default_value = false)]
struct Wide2 {
    c1: i64,
    c2: String,
}

#[derive(Insertable, Clone)]
#[diesel(table_name = wide7, treat_none_as_default_value = false)]
struct Wide7 {
    c1: i64,
    c2: String,
    c3: i64,
    c4: String,
    c5: i64,
    c6: String,
    c7: i64,
}

#[derive(Insertable, Clone)]
#[diesel(table_name = wide32, treat_none_as_default_value = false)]
struct Wide32 {
    id: i64,
    c1: i64,
    c2: i64,
    c3: i64,
    c4: i64,
    c5: i64,
    c6: i64,
    c7: i64,
    c8: i64,
    c9: i64,
    c10: i64,
    c11: i64,
    c12: i64,
    c13: i64,
    c14: i64,
    c15: i64,
    c16: i64,
    c17: i64,
    c18: i64,
    c19: i64,
    c20: i64,
    c21: i64,
    c22: i64,
    c23: i64,
    c24: i64,
    c25: i64,
    c26: i64,
    c27: i64,
    c28: i64,
    c29: i64,
    c30: i64,
    c31: i64,
}

fn wide32_row(i: i64) -> Wide32 {
    Wide32 {
        id: i + 1,
        c1: i,
        c2: i,
        c3: i,
        c4: i,
        c5: i,
        c6: i,
        c7: i,
        c8: i,
        c9: i,
        c10: i,
        c11: i,
        c12: i,
        c13: i,
        c14: i,
        c15: i,
        c16: i,
        c17: i,
        c18: i,
        c19: i,
        c20: i,
        c21: i,
        c22: i,
        c23: i,
        c24: i,
        c25: i,
        c26: i,
        c27: i,
        c28: i,
        c29: i,
        c30: i,
        c31: i,
    }
}

fn create_wide_tables(db: &litedal::Database) {
    use diesel::connection::SimpleConnection;
    let cols = |n: usize, text: &[usize]| -> String {
        (1..=n)
            .map(|i| {
                format!(
                    "c{i} {} NOT NULL",
                    if text.contains(&i) { "TEXT" } else { "INTEGER" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    db.transaction(|conn| {
        conn.batch_execute(&format!(
            "CREATE TABLE wide1 (id INTEGER PRIMARY KEY, {});
             CREATE TABLE wide2 (id INTEGER PRIMARY KEY, {});
             CREATE TABLE wide7 (id INTEGER PRIMARY KEY, {});
             CREATE TABLE wide32 (id INTEGER PRIMARY KEY, {});",
            cols(1, &[]),
            cols(2, &[2]),
            cols(7, &[2, 4, 6]),
            cols(31, &[]),
        ))?;
        Ok(())
    })
    .unwrap();
}

proptest! {
    // Each case inserts up to 100,000 rows into a real database: few cases.
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 4, ..ProptestConfig::default() })]

    #[test]
    fn batch_insert_inserts_exactly_the_rows_given(
        rows in prop_oneof![0usize..=3, 10_000usize..=12_000, 30_000usize..=100_000],
        table in 0usize..4,
    ) {
        let db = litedal::example::test_db().unwrap();
        create_wide_tables(&db);
        let n = rows as i64;
        let (inserted, count, sum) = match table {
            0 => {
                let data: Vec<Wide1> = (0..n).map(|i| Wide1 { c1: i }).collect();
                let inserted = db.batch_insert(wide1::table, &data).unwrap();
                let count: i64 = db.read(|c| Ok(wide1::table.count().get_result(c)?)).unwrap();
                let sum: i64 = db
                    .read(|c| {
                        Ok(wide1::table
                            .select(diesel::dsl::sql::<diesel::sql_types::BigInt>("COALESCE(SUM(c1), 0)"))
                            .first(c)?)
                    })
                    .unwrap();
                (inserted, count, Some(sum))
            }
            1 => {
                let data: Vec<Wide2> = (0..n).map(|i| Wide2 { c1: i, c2: i.to_string() }).collect();
                let inserted = db.batch_insert(wide2::table, &data).unwrap();
                let count: i64 = db.read(|c| Ok(wide2::table.count().get_result(c)?)).unwrap();
                (inserted, count, None)
            }
            2 => {
                let data: Vec<Wide7> = (0..n)
                    .map(|i| Wide7 { c1: i, c2: "a".into(), c3: i, c4: "b".into(), c5: i, c6: "c".into(), c7: i })
                    .collect();
                let inserted = db.batch_insert(wide7::table, &data).unwrap();
                let count: i64 = db.read(|c| Ok(wide7::table.count().get_result(c)?)).unwrap();
                (inserted, count, None)
            }
            _ => {
                let data: Vec<Wide32> = (0..n.min(20_000)).map(wide32_row).collect();
                let inserted = db.batch_insert(wide32::table, &data).unwrap();
                let count: i64 = db.read(|c| Ok(wide32::table.count().get_result(c)?)).unwrap();
                prop_assert_eq!(inserted, data.len());
                prop_assert_eq!(count, data.len() as i64);
                return Ok(());
            }
        };
        prop_assert_eq!(inserted, rows);
        prop_assert_eq!(count, n);
        if let Some(sum) = sum {
            prop_assert_eq!(sum, n * (n - 1) / 2);
        }
    }
}

#[test]
fn insert_batch_joins_the_callers_transaction() {
    let db = litedal::example::test_db().unwrap();
    create_wide_tables(&db);
    let data: Vec<Wide1> = (0..50_000).map(|i| Wide1 { c1: i }).collect();
    let err = db
        .transaction(|conn| {
            batch_insert(&mut *conn, wide1::table, &data)?;
            Err::<(), _>(Error::NotFound)
        })
        .unwrap_err();
    assert!(matches!(err, Error::NotFound));
    let count: i64 = db
        .read(|c| Ok(wide1::table.count().get_result(c)?))
        .unwrap();
    assert_eq!(
        count, 0,
        "the batch rolled back with the caller's transaction"
    );
}
