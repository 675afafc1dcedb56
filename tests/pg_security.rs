//! PostgreSQL safety on a real server (a throwaway `PgCluster`): a transaction PostgreSQL
//! aborted never reports a commit, TLS is required off loopback, secrets come from files and
//! never show in logs, errors or `Debug` output.

#![cfg(all(feature = "postgres", feature = "testing", feature = "example-domain"))]

use diesel::prelude::*;
use litedal::example::models::NewUser;
use litedal::example::schema::users;
use litedal::postgres::PgDatabase;
use litedal::testing::postgres::PgCluster;
use litedal::{AnyConfig, AnyDatabase, ConfigBuilder, Error};

/// A migrated PostgreSQL database of `cluster` opened from environment-style variables.
fn open_pg(vars: &[(&str, &str)]) -> Result<PgDatabase, Error> {
    match ConfigBuilder::from_vars(vars.iter().copied())?
        .postgres_migrations(&litedal::example::MIGRATIONS_POSTGRES)
        .build_any()?
    {
        AnyConfig::Postgres(config) => PgDatabase::open(config),
        AnyConfig::Sqlite(_) => panic!("not a PostgreSQL URL: {vars:?}"),
    }
}

fn count_users(conn: &mut PgConnection) -> i64 {
    users::table.count().get_result(conn).unwrap()
}

/// The closure of the SQLite idiom: a plain statement fails (a duplicate email), the closure
/// ignores it, writes another row and returns `Ok`.
fn ignore_a_duplicate_and_go_on(conn: &mut PgConnection) -> Result<(), Error> {
    let duplicate = diesel::insert_into(users::table)
        .values(&NewUser::new("b", "a@x.example"))
        .execute(conn);
    assert!(duplicate.is_err(), "the duplicate must fail");
    // PostgreSQL refuses this one too (the transaction is aborted); ignored as well.
    let _ = diesel::insert_into(users::table)
        .values(&NewUser::new("c", "c@x.example"))
        .execute(conn);
    Ok(())
}

fn assert_names_the_duplicate(result: Result<(), Error>, what: &str) {
    match result {
        Err(Error::Conflict { constraint, .. }) => {
            assert_eq!(constraint, "users.email", "{what}")
        }
        other => panic!("{what}: the transaction must fail with the duplicate's error: {other:?}"),
    }
}

#[test]
fn a_transaction_postgres_aborted_returns_the_failed_statement_and_writes_nothing() {
    let Some(cluster) = PgCluster::start_or_skip("pg_security: aborted transaction").unwrap()
    else {
        return;
    };
    let url = cluster.create_database("aborted").unwrap();
    let db = open_pg(&[("DATABASE_URL", &url), ("DB_POOL_SIZE", "2")]).unwrap();
    db.transaction(|conn| {
        diesel::insert_into(users::table)
            .values(&NewUser::new("a", "a@x.example"))
            .execute(conn)?;
        Ok(())
    })
    .unwrap();

    assert_names_the_duplicate(db.transaction(ignore_a_duplicate_and_go_on), "PgDatabase");
    assert_eq!(db.read(|conn| Ok(count_users(conn))).unwrap(), 1);

    // A statement that fails and whose closure returns Ok inside a savepoint: the savepoint
    // fails with the cause, the outer transaction goes on and commits its own row.
    db.transaction(|conn| {
        use litedal::Executor;
        let mut engine = litedal::engine::EngineRef::Postgres(conn);
        let nested = (&mut engine).write(|tx| match tx {
            litedal::engine::EngineRef::Postgres(conn) => ignore_a_duplicate_and_go_on(conn),
            litedal::engine::EngineRef::Sqlite(_) => unreachable!(),
        });
        assert_names_the_duplicate(nested, "savepoint");
        let litedal::engine::EngineRef::Postgres(conn) = engine else {
            unreachable!()
        };
        diesel::insert_into(users::table)
            .values(&NewUser::new("d", "d@x.example"))
            .execute(conn)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(db.read(|conn| Ok(count_users(conn))).unwrap(), 2);

    // The connection went back to the pool clean: the next transactions commit.
    for i in 0..4 {
        db.transaction(|conn| {
            diesel::insert_into(users::table)
                .values(&NewUser::new("e", &format!("e{i}@x.example")))
                .execute(conn)?;
            Ok(())
        })
        .unwrap();
    }
    assert_eq!(db.read(|conn| Ok(count_users(conn))).unwrap(), 6);

    // The same through AnyDatabase.
    let config = ConfigBuilder::from_vars([("DATABASE_URL", url.as_str())])
        .unwrap()
        .build_any()
        .unwrap();
    let any = AnyDatabase::open(config).unwrap();
    let result = any.transaction(|tx| match tx {
        litedal::engine::EngineRef::Postgres(conn) => ignore_a_duplicate_and_go_on(conn),
        litedal::engine::EngineRef::Sqlite(_) => unreachable!(),
    });
    assert_names_the_duplicate(result, "AnyDatabase");
    assert_eq!(db.read(|conn| Ok(count_users(conn))).unwrap(), 6);

    // A connection litedal did not open keeps no record of the statement: still an error.
    let mut own = PgConnection::establish(&url).unwrap();
    let mut engine = litedal::engine::EngineRef::Postgres(&mut own);
    let result = litedal::Executor::write(&mut engine, |tx| match tx {
        litedal::engine::EngineRef::Postgres(conn) => ignore_a_duplicate_and_go_on(conn),
        litedal::engine::EngineRef::Sqlite(_) => unreachable!(),
    });
    assert!(
        matches!(result, Err(Error::TransactionAborted { cause: None })),
        "{result:?}"
    );
    assert_eq!(count_users(&mut own), 6);
}
