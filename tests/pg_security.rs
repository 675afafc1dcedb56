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
    let logs = logs();
    let db = open_pg(&[("DATABASE_URL", &url), ("DB_POOL_SIZE", "2")]).unwrap();
    // The open's probe found this server's timeout messages recognisable (Error::Busy).
    assert!(
        !logs.text().contains("timeout messages are not recognised"),
        "{}",
        logs.text()
    );
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

/// The password of the role that must log in with one: URL delimiters in it, as real ones have.
const PASSWORD: &str = "Zq7/se?cr#et@pw";
/// `PASSWORD` percent-encoded, as it must be written in a URL.
const PASSWORD_IN_URL: &str = "Zq7%2Fse%3Fcr%23et%40pw";

/// A cluster where role `app` must log in with `PASSWORD` (SCRAM), and its database `sec`.
fn cluster_with_password() -> Option<PgCluster> {
    let cluster = PgCluster::start_or_skip("pg_security: secrets").unwrap()?;
    let admin = cluster.create_database("sec").unwrap();
    let mut conn = PgConnection::establish(&admin).unwrap();
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        &format!(
            "SET password_encryption = 'scram-sha-256'; \
             CREATE ROLE app LOGIN PASSWORD '{PASSWORD}'; \
             GRANT ALL ON DATABASE sec TO app; GRANT ALL ON SCHEMA public TO app; \
             ALTER DATABASE sec OWNER TO app"
        ),
    )
    .unwrap();
    // `app` needs its password; the test's superuser keeps trust. First match wins.
    let hba = cluster.primary_data_dir().join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!(
            "host all app 127.0.0.1/32 scram-sha-256\nhost all app ::1/128 scram-sha-256\n{text}"
        ),
    )
    .unwrap();
    diesel::connection::SimpleConnection::batch_execute(&mut conn, "SELECT pg_reload_conf()")
        .unwrap();
    Some(cluster)
}

fn write_private(path: &std::path::Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes one row as `app` and reads the count back.
fn write_and_count(db: &PgDatabase) -> i64 {
    db.transaction(|conn| {
        diesel::insert_into(users::table)
            .values(&NewUser::new("s", &format!("s{}@x.example", rand_suffix())))
            .execute(conn)?;
        Ok(())
    })
    .unwrap();
    db.read(|conn| Ok(count_users(conn))).unwrap()
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn urls_from_secret_files_and_libpq_password_files_reach_a_server_that_needs_a_password() {
    let logs = logs();
    let Some(cluster) = cluster_with_password() else {
        return;
    };
    let port = cluster.primary_port();
    let dir = tempfile::tempdir().unwrap();
    let with_password = format!("postgres://app:{PASSWORD_IN_URL}@127.0.0.1:{port}/sec");
    let without_password = format!("postgres://app@127.0.0.1:{port}/sec");

    // A secret file of mode 0600 with a trailing newline.
    let url_file = dir.path().join("database-url");
    write_private(&url_file, &format!("{with_password}\n"), 0o600);
    let file = url_file.display().to_string();
    let before = logs.text().len();
    let db = open_pg(&[("DATABASE_URL_FILE", &file)]).unwrap();
    assert_eq!(write_and_count(&db), 1);
    drop(db);
    assert!(!logs.text()[before..].contains("readable by group or others"));

    // Readable by others: used, and warned about (the path, never the contents).
    write_private(&url_file, &with_password, 0o644);
    let before = logs.text().len();
    let db = open_pg(&[("DATABASE_URL_FILE", &file)]).unwrap();
    assert_eq!(write_and_count(&db), 2);
    drop(db);
    let opened = logs.text()[before..].to_owned();
    assert!(
        opened.contains("WARN") && opened.contains("readable by group or others"),
        "{opened}"
    );
    assert!(opened.contains(&file), "{opened}");

    // Both forms: refused, naming both.
    match open_pg(&[
        ("DATABASE_URL_FILE", &file),
        ("DATABASE_URL", &with_password),
    ]) {
        Err(Error::Config { var, reason, .. }) => {
            assert_eq!(var, "DATABASE_URL_FILE");
            assert!(reason.contains("DATABASE_URL is set as well"), "{reason}");
        }
        other => panic!("both forms must be refused: {other:?}"),
    }

    // A URL without a password: libpq's password file (passfile= here, PGPASSFILE below).
    let passfile = dir.path().join("pgpass");
    let escaped = PASSWORD.replace('\\', "\\\\").replace(':', "\\:");
    write_private(
        &passfile,
        &format!("127.0.0.1:{port}:sec:app:{escaped}\n"),
        0o600,
    );
    let via_passfile = format!("{without_password}?passfile={}", passfile.display());
    let db = open_pg(&[("DATABASE_URL", &via_passfile)]).unwrap();
    assert_eq!(write_and_count(&db), 3);
    drop(db);
    // Without any password the server's refusal is what the caller gets.
    let no_passfile = format!(
        "{without_password}?passfile={}",
        dir.path().join("none").display()
    );
    match open_pg(&[("DATABASE_URL", &no_passfile), ("DB_POOL_TIMEOUT", "2")]) {
        Err(Error::Config { reason, .. }) => {
            assert!(reason.contains("password"), "{reason}")
        }
        other => panic!("no password must fail: {other:?}"),
    }
    // PGPASSFILE, in the environment of a child process (the CLI), as a deployment sets it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_litedal"))
        .args(["stats", "--json"])
        .env("DATABASE_URL", &without_password)
        .env("PGPASSFILE", &passfile)
        .env_remove("DATABASE_URL_FILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("\"engine\""), "{stdout}");
    assert!(!stdout.contains("Zq7") && !stderr.contains("Zq7"));
}

/// Everything a caller or an operator can see of `error`.
fn everything_shown(error: &Error) -> String {
    format!("{error}\n{error:?}\n{}", error.report())
}

#[test]
fn a_failing_connection_never_shows_the_password() {
    let logs = logs();
    let Some(cluster) = cluster_with_password() else {
        return;
    };
    let port = cluster.primary_port();
    let mut shown = Vec::<String>::new();

    // A wrong password, in the user info and as a parameter; an unreachable server.
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let wrong = "Zq7-wrong/pass?word#x";
    let wrong_in_url = "Zq7-wrong%2Fpass%3Fword%23x";
    for url in [
        format!("postgres://app:{wrong_in_url}@127.0.0.1:{port}/sec"),
        format!("postgres://app@127.0.0.1:{port}/sec?password={wrong_in_url}&sslmode=disable"),
        format!("postgres://app:{PASSWORD_IN_URL}@127.0.0.1:{free_port}/sec"),
        format!("postgres://app:{PASSWORD_IN_URL}@db.invalid:{free_port}/sec"),
    ] {
        let vars = [("DATABASE_URL", url.as_str()), ("DB_POOL_TIMEOUT", "1")];
        let builder = ConfigBuilder::from_vars(vars).unwrap();
        shown.push(format!("{builder:?}"));
        let config = builder.build_any().unwrap();
        shown.push(format!("{config:?}"));
        if let AnyConfig::Postgres(pg) = &config {
            shown.push(pg.display_url());
        }
        match AnyDatabase::open(config) {
            Err(error) => shown.push(everything_shown(&error)),
            Ok(_) => panic!("{} must not open", url.replace("Zq7", "***")),
        }
    }

    // A database that opened, then loses its login: new connections fail, and the pool
    // timeout, health report and metrics say so.
    let good = format!("postgres://app:{PASSWORD_IN_URL}@127.0.0.1:{port}/sec");
    let db = AnyDatabase::open(
        ConfigBuilder::from_vars([("DATABASE_URL", good.as_str()), ("DB_POOL_TIMEOUT", "1")])
            .unwrap()
            .build_any()
            .unwrap(),
    )
    .unwrap();
    shown.push(format!("{db:?}"));
    let mut admin = PgConnection::establish(&cluster.primary_url()).unwrap();
    diesel::connection::SimpleConnection::batch_execute(
        &mut admin,
        "ALTER ROLE app PASSWORD 'changed-Zq7'; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'",
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // past the alive bypass
    for _ in 0..2 {
        if let Err(error) = db.read(|_| Ok(())) {
            shown.push(everything_shown(&error));
        }
        if let Err(error) = db.transaction(|_| Ok(())) {
            shown.push(everything_shown(&error));
        }
    }
    let health = db.health();
    shown.push(format!("{health:?}"));
    shown.push(serde_json::to_string(&health).unwrap());
    shown.push(db.render_metrics().unwrap());
    shown.push(format!("{:?}", db.connection_stats()));
    drop(db);

    let everything = format!("{}\n{}", shown.join("\n"), logs.text());
    assert!(
        everything.contains("could not connect")
            || everything.contains("password authentication failed"),
        "the failures were seen: {everything}"
    );
    for secret in [PASSWORD, PASSWORD_IN_URL, wrong, wrong_in_url, "Zq7"] {
        assert!(
            !everything.contains(secret),
            "{secret:?} shown:\n{}",
            everything
                .lines()
                .filter(|line| line.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// The status code of `GET path` on `addr`, with `headers` (each ending in CRLF).
fn http_status(addr: std::net::SocketAddr, path: &str, headers: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n{headers}\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

#[test]
fn the_metrics_token_guards_the_postgres_endpoint_too() {
    let Some(cluster) = PgCluster::start_or_skip("pg_security: metrics token").unwrap() else {
        return;
    };
    let url = cluster.create_database("token").unwrap();
    let token = "pg-metrics-token-0123456789";
    let db = open_pg(&[
        ("DATABASE_URL", &url),
        ("DB_POOL_SIZE", "2"),
        ("DB_METRICS_ADDR", "127.0.0.1:0"),
        ("DB_METRICS_TOKEN", token),
    ])
    .unwrap();
    let addr = db.metrics_addr().expect("the endpoint runs");
    assert_eq!(http_status(addr, "/metrics", ""), 401);
    assert_eq!(http_status(addr, "/health", ""), 401);
    assert_eq!(
        http_status(
            addr,
            "/metrics",
            "Authorization: Bearer pg-metrics-token-012345678X\r\n"
        ),
        401
    );
    let good = format!("Authorization: Bearer {token}\r\n");
    assert_eq!(http_status(addr, "/metrics", &good), 200);
    assert_eq!(http_status(addr, "/health", &good), 200);
    assert!(!format!("{:?}", db.config()).contains(token));
}
