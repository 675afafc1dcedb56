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

mod common;

use std::sync::OnceLock;

use common::Captured;

/// Every log line of this test binary, from every thread (the pools connect on their own).
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        tracing::subscriber::set_global_default(captured.subscriber())
            .expect("the only global subscriber of this binary");
        captured
    })
}

#[derive(QueryableByName)]
struct Ssl {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ssl: bool,
}

/// Whether the read connections of a database opened from `vars` are encrypted.
fn encrypted(vars: &[(&str, &str)]) -> Result<bool, Error> {
    let db = open_pg(vars)?;
    db.read(|conn| {
        Ok(
            diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .get_result::<Ssl>(conn)?
                .ssl,
        )
    })
}

/// A certificate for `name` signed by itself (its own root), as PEM (certificate, key).
fn self_signed(name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn tls_is_required_off_loopback_and_an_explicit_downgrade_is_warned() {
    let logs = logs();
    let Some(mut cluster) = PgCluster::start_or_skip("pg_security: TLS").unwrap() else {
        return;
    };
    cluster.create_database("tls").unwrap();
    let port = cluster.primary_port();
    // `db.test` is not loopback by name; hostaddr still reaches the local server.
    let remote = format!("postgres://postgres@db.test:{port}/tls?hostaddr=127.0.0.1");
    let local = format!("postgres://postgres@127.0.0.1:{port}/tls");

    // The server offers no TLS: a remote host is refused, never reached in clear.
    match open_pg(&[("DATABASE_URL", &remote), ("DB_POOL_TIMEOUT", "2")]) {
        Err(Error::Config { var, reason, .. }) => {
            assert_eq!(var, "DATABASE_URL");
            assert!(reason.contains("does not support SSL"), "{reason}");
        }
        other => panic!("no TLS to a remote host must fail: {other:?}"),
    }
    // Loopback keeps libpq's default.
    assert!(!encrypted(&[("DATABASE_URL", &local)]).unwrap());
    // An explicit downgrade to a remote host connects, with one WARN at open.
    let before = logs.text().len();
    let disabled = format!("{remote}&sslmode=disable");
    assert!(!encrypted(&[("DATABASE_URL", &disabled)]).unwrap());
    let opened = logs.text()[before..].to_owned();
    assert!(
        opened.contains("WARN") && opened.contains("Database TLS may be off"),
        "{opened}"
    );
    assert!(opened.contains("sslmode=disable"), "{opened}");

    // With TLS on, the same remote URL is encrypted, and INFO says why.
    let (cert, key) = self_signed("db.test");
    cluster.enable_ssl(&cert, &key).unwrap();
    let before = logs.text().len();
    assert!(encrypted(&[("DATABASE_URL", &remote)]).unwrap());
    let opened = logs.text()[before..].to_owned();
    assert!(
        opened.contains("INFO") && opened.contains("Database TLS required"),
        "{opened}"
    );
    // DB_PG_TLS=verify-full checks the certificate against a root and the host name.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.crt");
    std::fs::write(&root, &cert).unwrap();
    let with_root = format!("{remote}&sslrootcert={}", root.display());
    assert!(encrypted(&[("DATABASE_URL", &with_root), ("DB_PG_TLS", "verify-full")]).unwrap());
    let (other, _) = self_signed("db.test");
    let wrong_root = dir.path().join("wrong.crt");
    std::fs::write(&wrong_root, other).unwrap();
    let with_wrong_root = format!("{remote}&sslrootcert={}", wrong_root.display());
    match encrypted(&[
        ("DATABASE_URL", &with_wrong_root),
        ("DB_PG_TLS", "verify-full"),
    ]) {
        Err(Error::Config { reason, .. }) => {
            assert!(reason.contains("certificate verify failed"), "{reason}")
        }
        other => panic!("verify-full against the wrong root must fail: {other:?}"),
    }
    assert!(matches!(
        open_pg(&[("DATABASE_URL", &remote), ("DB_PG_TLS", "maybe")]),
        Err(Error::Config {
            var: "DB_PG_TLS",
            ..
        })
    ));
}
