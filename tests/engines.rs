//! One query body, two engines: the reference models, typed ids, timestamps and error mapping
//! on SQLite and on a real PostgreSQL server (a throwaway `PgCluster`), through
//! `litedal::on_engine!` and `AnyConnection`.

mod common;

use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use litedal::engine::{AnyConnection, Engine};
use litedal::example::models::{NewUser, User, UserId};
use litedal::example::schema::users;
use litedal::testing::postgres::PgCluster;
use litedal::{DbTimestamp, Error};

/// Both engines, migrated: SQLite in a temp file, PostgreSQL in a database of `cluster`.
fn engines(cluster: &PgCluster, dir: &tempfile::TempDir, name: &str) -> Vec<AnyConnection> {
    let path = dir.path().join(format!("{name}.db"));
    let mut sqlite = diesel::SqliteConnection::establish(&path.display().to_string()).unwrap();
    sqlite.batch_execute("PRAGMA foreign_keys = ON").unwrap();
    sqlite
        .run_pending_migrations(litedal::example::MIGRATIONS)
        .unwrap();
    let url = cluster.create_database(name).unwrap();
    let mut pg = diesel::PgConnection::establish(&url).unwrap();
    pg.run_pending_migrations(litedal::example::MIGRATIONS_POSTGRES)
        .unwrap();
    vec![AnyConnection::Sqlite(sqlite), AnyConnection::Postgresql(pg)]
}

fn engine_name(conn: &mut AnyConnection) -> &'static str {
    match conn {
        AnyConnection::Sqlite(_) => "sqlite",
        AnyConnection::Postgresql(_) => "postgres",
    }
}

/// Written once: insert, returning the stored row.
fn insert(conn: &mut impl Engine, name: &str, email: &str) -> Result<User, Error> {
    let new = NewUser::new(name, email);
    Ok(litedal::on_engine!(conn, |c| diesel::insert_into(
        users::table
    )
    .values(&new)
    .returning(User::as_returning())
    .get_result(c))?)
}

/// Written once: a keyset page in (created_at, id) order after a cursor.
fn page_after(
    conn: &mut impl Engine,
    at: NaiveDateTime,
    id: UserId,
    limit: i64,
) -> Result<Vec<User>, Error> {
    let at = DbTimestamp(at);
    Ok(litedal::on_engine!(conn, |c| users::table
        .filter(
            users::created_at
                .ge(at)
                .and(users::created_at.gt(at).or(users::id.gt(id)))
        )
        .order((users::created_at.asc(), users::id.asc()))
        .limit(limit)
        .select(User::as_select())
        .load(c))?)
}

fn set_created_at(conn: &mut impl Engine, id: UserId, at: NaiveDateTime) -> Result<usize, Error> {
    Ok(litedal::on_engine!(conn, |c| diesel::update(
        users::table.find(id)
    )
    .set(users::created_at.eq(DbTimestamp(at)))
    .execute(c))?)
}

fn at(h: u32, m: u32, s: u32, nanos: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 12, 2)
        .unwrap()
        .and_hms_nano_opt(h, m, s, nanos)
        .unwrap()
}

#[test]
fn models_ids_timestamps_and_keyset_pages_agree_on_both_engines() {
    let Some(cluster) = PgCluster::start_or_skip("engines: models").unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for mut conn in engines(&cluster, &dir, "models") {
        let engine = engine_name(&mut conn);
        let mut ids = Vec::new();
        for i in 0..6 {
            let user = insert(&mut conn, &format!("user {i}"), &format!("u{i}@x.example"))
                .unwrap_or_else(|e| panic!("{engine}: {e}"));
            assert_eq!(user.email, format!("u{i}@x.example"), "{engine}");
            assert!(user.active, "{engine}");
            ids.push(user.id);
        }
        assert_eq!(ids, (1..=6).map(UserId).collect::<Vec<_>>(), "{engine}");
        // Timestamps finer than a millisecond are stored truncated on both engines (SQLite's
        // text form truncates; PostgreSQL's timestamp(3) would round .9996 up).
        let times = [
            at(12, 0, 0, 999_600_000),
            at(12, 0, 0, 123_456_789),
            at(12, 0, 0, 123_456_789),
            at(11, 59, 59, 0),
            at(12, 0, 1, 500_000_000),
            at(12, 0, 0, 999_999_999),
        ];
        for (id, time) in ids.iter().zip(times) {
            assert_eq!(set_created_at(&mut conn, *id, time).unwrap(), 1, "{engine}");
        }
        let all = page_after(&mut conn, at(0, 0, 0, 0), UserId(0), 100).unwrap();
        let order: Vec<(i64, NaiveDateTime)> =
            all.iter().map(|u| (u.id.get(), u.created_at)).collect();
        assert_eq!(
            order,
            vec![
                (4, at(11, 59, 59, 0)),
                (2, at(12, 0, 0, 123_000_000)),
                (3, at(12, 0, 0, 123_000_000)),
                (1, at(12, 0, 0, 999_000_000)),
                (6, at(12, 0, 0, 999_000_000)),
                (5, at(12, 0, 1, 500_000_000)),
            ],
            "{engine}"
        );
        // A cursor on a row with a tied timestamp continues after it, not at it, even when
        // the cursor's time has more precision than the column.
        let next = page_after(&mut conn, at(12, 0, 0, 123_456_789), UserId(2), 2).unwrap();
        let next_ids: Vec<i64> = next.iter().map(|u| u.id.get()).collect();
        assert_eq!(next_ids, vec![3, 1], "{engine}");
        results.push(all);
    }
    // The same rows, field for field, apart from updated_at (set by each database's clock).
    let strip = |users: &[User]| -> Vec<(UserId, String, String, bool, NaiveDateTime)> {
        users
            .iter()
            .map(|u| {
                (
                    u.id,
                    u.name.clone(),
                    u.email.clone(),
                    u.active,
                    u.created_at,
                )
            })
            .collect()
    };
    assert_eq!(strip(&results[0]), strip(&results[1]));
}

#[test]
fn constraint_errors_map_to_the_same_variants_on_both_engines() {
    let Some(cluster) = PgCluster::start_or_skip("engines: errors").unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for mut conn in engines(&cluster, &dir, "errors") {
        let engine = engine_name(&mut conn);
        insert(&mut conn, "a", "a@x.example").unwrap();
        match insert(&mut conn, "b", "a@x.example") {
            Err(Error::Conflict { constraint, .. }) => {
                assert_eq!(constraint, "users.email", "{engine}")
            }
            other => panic!("{engine}: {other:?}"),
        }
        let null_name = litedal::on_engine!(&mut conn, |c| diesel::sql_query(
            "INSERT INTO users (name, email) VALUES (NULL, 'n@x.example')"
        )
        .execute(c));
        match null_name.map_err(Error::from) {
            Err(Error::NotNull { column, .. }) => assert_eq!(column, "users.name", "{engine}"),
            other => panic!("{engine}: {other:?}"),
        }
        let orphan = litedal::on_engine!(&mut conn, |c| diesel::sql_query(
            "INSERT INTO posts (user_id, title, body) VALUES (999, 't', 'b')"
        )
        .execute(c));
        assert!(
            matches!(orphan.map_err(Error::from), Err(Error::ForeignKey { .. })),
            "{engine}"
        );
        let missing = litedal::on_engine!(&mut conn, |c| users::table
            .find(UserId(999))
            .select(User::as_select())
            .get_result(c));
        assert!(
            matches!(missing.map_err(Error::from), Err(Error::NotFound)),
            "{engine}"
        );
    }
}

#[test]
fn a_postgres_lock_or_statement_timeout_is_busy() {
    let Some(cluster) = PgCluster::start_or_skip("engines: busy").unwrap() else {
        return;
    };
    let url = cluster.create_database("busy").unwrap();
    let mut holder = diesel::PgConnection::establish(&url).unwrap();
    holder
        .batch_execute(
            "CREATE TABLE t (id bigint PRIMARY KEY, n bigint); INSERT INTO t VALUES (1, 0)",
        )
        .unwrap();
    holder
        .batch_execute("BEGIN; UPDATE t SET n = n + 1 WHERE id = 1")
        .unwrap();
    let mut waiter = diesel::PgConnection::establish(&url).unwrap();
    waiter.batch_execute("SET lock_timeout = '100ms'").unwrap();
    let started = std::time::Instant::now();
    let blocked = waiter.batch_execute("UPDATE t SET n = n + 1 WHERE id = 1");
    assert!(
        matches!(blocked.map_err(Error::from), Err(Error::Busy)),
        "a lock timeout"
    );
    assert!(started.elapsed() >= Duration::from_millis(100));
    waiter
        .batch_execute("SET lock_timeout = 0; SET statement_timeout = '50ms'")
        .unwrap();
    let slow = waiter.batch_execute("SELECT pg_sleep(5)");
    assert!(
        matches!(slow.map_err(Error::from), Err(Error::Busy)),
        "a statement timeout"
    );
    holder.batch_execute("ROLLBACK").unwrap();
}

use litedal::Limit;
use litedal::example::models::{NewPost, UserChanges};
use litedal::example::repo::{Posts, UserOrder, Users};

#[test]
fn the_repositories_run_unchanged_on_both_engines() {
    let Some(cluster) = PgCluster::start_or_skip("engines: repositories").unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut outcomes = Vec::new();
    for mut conn in engines(&cluster, &dir, "repositories") {
        let engine = engine_name(&mut conn);
        // 25,000 rows: statements of 1,024 rows prepared once on both engines, and a last
        // shorter one.
        let emails: Vec<String> = (0..25_000).map(|i| format!("u{i:05}@x.example")).collect();
        let rows: Vec<NewUser> = emails
            .iter()
            .enumerate()
            .map(|(i, e)| NewUser {
                name: if i % 2 == 0 { "Even" } else { "odd" },
                email: e,
                active: i % 3 != 0,
            })
            .collect();
        assert_eq!(
            Users::batch_insert(&mut conn, &rows).unwrap(),
            25_000,
            "{engine}"
        );
        assert_eq!(Users::count(&mut conn).unwrap(), 25_000, "{engine}");
        // Every value landed in its column, in input order, in the full chunks as in the
        // last one.
        let mut stored = Vec::with_capacity(rows.len());
        let mut query = Users::query().limit(Limit::new(1_000).unwrap());
        loop {
            let page = query.clone().page(&mut conn).unwrap();
            stored.extend(page.items.into_iter().map(|u| (u.name, u.email, u.active)));
            match page.next {
                Some(cursor) => query = query.after(cursor),
                None => break,
            }
        }
        let given: Vec<(String, String, bool)> = rows
            .iter()
            .map(|r| (r.name.to_owned(), r.email.to_owned(), r.active))
            .collect();
        assert_eq!(stored.len(), given.len(), "{engine}");
        assert!(
            stored == given,
            "{engine}: the stored rows differ from the batch"
        );

        // A batch with a duplicate in its second chunk keeps nothing and names the chunk.
        let fresh: Vec<String> = (0..20_000)
            .map(|i| match i {
                15_000 => emails[7].clone(),
                _ => format!("n{i}@y.example"),
            })
            .collect();
        let again: Vec<NewUser> = fresh.iter().map(|e| NewUser::new("new", e)).collect();
        match Users::batch_insert(&mut conn, &again) {
            Err(Error::Conflict {
                constraint,
                chunk: Some(chunk),
            }) => {
                assert_eq!(constraint, "users.email", "{engine}");
                assert!(chunk.rows.contains(&15_000), "{engine}: {chunk}");
                assert!(chunk.index >= 1, "{engine}: {chunk}");
            }
            other => panic!("{engine}: {other:?}"),
        }
        assert_eq!(Users::count(&mut conn).unwrap(), 25_000, "{engine}");

        let found = Users::find_by_email(&mut conn, "u00042@x.example")
            .unwrap()
            .unwrap();
        assert_eq!(found.id, UserId(43), "{engine}");
        assert_eq!(Users::find(&mut conn, found.id).unwrap().unwrap(), found);
        let renamed = Users::update(
            &mut conn,
            found.id,
            &UserChanges {
                name: Some("Renamed".into()),
                ..UserChanges::default()
            },
        )
        .unwrap();
        assert_eq!(renamed.name, "Renamed", "{engine}");
        assert!(!Users::deactivate(&mut conn, found.id).unwrap().active);
        let post = Posts::insert(
            &mut conn,
            &NewPost {
                user_id: found.id,
                title: "t",
                body: "b",
                published: true,
            },
        )
        .unwrap();
        assert_eq!(
            Posts::by_user(&mut conn, found.id, Limit::new(10).unwrap()).unwrap(),
            vec![post.clone()]
        );
        let with_authors = Posts::recent_with_authors(&mut conn, Limit::new(5).unwrap()).unwrap();
        assert_eq!(with_authors[0].author.id, found.id, "{engine}");
        Users::delete(&mut conn, found.id).unwrap();
        assert_eq!(
            Posts::find(&mut conn, post.id).unwrap(),
            None,
            "{engine}: cascade"
        );
        assert!(matches!(
            Users::delete(&mut conn, found.id),
            Err(Error::NotFound)
        ));

        // Typed queries and keyset pages: filters, both orders, pages that meet exactly.
        let mut seen = Vec::new();
        let mut query = Users::query()
            .active(true)
            .name_prefix("Ev")
            .email_domain("x.example")
            .order(UserOrder::IdDesc)
            .limit(Limit::new(1_000).unwrap());
        loop {
            let page = query.clone().page(&mut conn).unwrap();
            seen.extend(page.items.iter().map(|u| u.id.get()));
            match page.next {
                Some(cursor) => query = query.after(cursor),
                None => break,
            }
        }
        let expected: Vec<i64> = (0..25_000i64)
            .rev()
            .filter(|i| i % 2 == 0 && i % 3 != 0 && *i != 42)
            .map(|i| i + 1)
            .collect();
        assert_eq!(seen, expected, "{engine}");
        let oldest = Users::query()
            .order(UserOrder::CreatedAsc)
            .limit(Limit::new(3).unwrap())
            .load(&mut conn)
            .unwrap();
        assert_eq!(oldest.len(), 3, "{engine}");
        outcomes.push((seen.len(), Users::count(&mut conn).unwrap()));
    }
    assert_eq!(outcomes[0], outcomes[1]);
}

#[test]
fn writes_commit_roll_back_and_nest_the_same_way_on_both_engines() {
    use litedal::Executor;
    let Some(cluster) = PgCluster::start_or_skip("engines: transactions").unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for mut conn in engines(&cluster, &dir, "transactions") {
        let engine = engine_name(&mut conn);
        // Err rolls the whole write back.
        let failed: Result<(), Error> = (&mut conn).write(|tx| {
            Users::insert(&mut *tx, &NewUser::new("a", "a@x.example"))?;
            Err(Error::NotFound)
        });
        assert!(matches!(failed, Err(Error::NotFound)), "{engine}");
        assert_eq!(Users::count(&mut conn).unwrap(), 0, "{engine}");
        // A failed nested operation is a savepoint: the rest commits.
        (&mut conn)
            .write(|tx| {
                Users::insert(&mut *tx, &NewUser::new("a", "a@x.example"))?;
                let duplicate = Users::insert(&mut *tx, &NewUser::new("b", "a@x.example"));
                assert!(matches!(duplicate, Err(Error::Conflict { .. })), "{engine}");
                Users::insert(&mut *tx, &NewUser::new("c", "c@x.example"))?;
                Ok(())
            })
            .unwrap();
        assert_eq!(Users::count(&mut conn).unwrap(), 2, "{engine}");
        // A panic rolls back and the connection stays usable.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = (&mut conn).write(|tx| -> Result<(), Error> {
                Users::insert(&mut *tx, &NewUser::new("d", "d@x.example"))?;
                panic!("in the middle of a write")
            });
        }));
        assert!(panicked.is_err(), "{engine}");
        assert_eq!(Users::count(&mut conn).unwrap(), 2, "{engine}");
    }
}

#[test]
fn concurrent_read_modify_write_loses_no_update_on_postgres() {
    use litedal::Executor;
    let Some(cluster) = PgCluster::start_or_skip("engines: counter").unwrap() else {
        return;
    };
    let url = cluster.create_database("counter").unwrap();
    let mut setup = diesel::PgConnection::establish(&url).unwrap();
    setup
        .batch_execute("CREATE TABLE counter (id bigint PRIMARY KEY, n bigint NOT NULL); INSERT INTO counter VALUES (1, 0)")
        .unwrap();
    diesel::table! {
        counter (id) {
            id -> BigInt,
            n -> BigInt,
        }
    }
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut conn =
                    AnyConnection::Postgresql(diesel::PgConnection::establish(&url).unwrap());
                for _ in 0..250 {
                    (&mut conn)
                        .write(|tx| {
                            // Read, compute in Rust, write back: a lost update unless the
                            // writes are serialized.
                            let n: i64 = litedal::on_engine!(tx, |c| counter::table
                                .find(1)
                                .select(counter::n)
                                .get_result(c))?;
                            litedal::on_engine!(tx, |c| diesel::update(counter::table.find(1))
                                .set(counter::n.eq(n + 1))
                                .execute(c))?;
                            Ok(())
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let n: i64 = counter::table
        .find(1)
        .select(counter::n)
        .get_result(&mut setup)
        .unwrap();
    assert_eq!(n, 1000);
}

use litedal::{AnyConfig, AnyDatabase, ConfigBuilder};

/// `AnyDatabase` from environment-style variables, with both engines' migrations.
fn open_any(vars: &[(&str, &str)]) -> Result<AnyDatabase, Error> {
    let config = ConfigBuilder::from_vars(vars.iter().copied())?
        .migrations(&litedal::example::MIGRATIONS)
        .postgres_migrations(&litedal::example::MIGRATIONS_POSTGRES)
        .build_any()?;
    AnyDatabase::open(config)
}

#[test]
fn any_database_runs_the_same_code_on_the_engine_the_url_names() {
    let Some(cluster) = PgCluster::start_or_skip("engines: AnyDatabase").unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}/any.db", dir.path().display());
    let pg_url = cluster.create_database("any").unwrap();
    for url in [sqlite_url.as_str(), pg_url.as_str()] {
        let db = open_any(&[("DATABASE_URL", url), ("DB_POOL_SIZE", "4")]).unwrap();
        let engine = db.engine();
        assert_eq!(
            engine,
            if url.starts_with("sqlite") {
                "sqlite"
            } else {
                "postgres"
            }
        );
        let emails: Vec<String> = (0..3_000).map(|i| format!("a{i}@x.example")).collect();
        let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("a", e)).collect();
        assert_eq!(Users::batch_insert(&db, &rows).unwrap(), 3_000, "{engine}");
        // A write that fails leaves nothing; one read transaction sees one snapshot.
        let failed: Result<(), Error> = db.transaction(|tx| {
            Users::insert(&mut *tx, &NewUser::new("b", "b@x.example"))?;
            Err(Error::NotFound)
        });
        assert!(failed.is_err());
        let (before, after) = db
            .read(|conn| Ok((Users::count(&mut *conn)?, Users::count(&mut *conn)?)))
            .unwrap();
        assert_eq!((before, after), (3_000, 3_000), "{engine}");
        // Reads are read-only connections on both engines.
        let refused = db.read(|conn| Users::insert(&mut *conn, &NewUser::new("c", "c@x.example")));
        assert!(
            matches!(refused, Err(Error::ReadOnly { .. })),
            "{engine}: {refused:?}"
        );

        // 4 threads x 250 read-modify-write increments through the pools: none lost.
        let target = rows.len() as i64;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let db = db.clone();
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        db.transaction(|tx| {
                            let user = Users::find(&mut *tx, UserId(1))?.ok_or(Error::NotFound)?;
                            let n: i64 = user.name.parse().unwrap_or(0);
                            Users::update(
                                &mut *tx,
                                UserId(1),
                                &UserChanges {
                                    name: Some((n + 1).to_string()),
                                    ..UserChanges::default()
                                },
                            )?;
                            Ok(())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let user = Users::find(&db, UserId(1)).unwrap().unwrap();
        assert_eq!(user.name, "1000", "{engine}");
        assert_eq!(Users::count(&db).unwrap(), target, "{engine}");
    }
}

#[test]
fn postgres_configuration_is_validated_and_never_prints_the_password() {
    let Some(cluster) = PgCluster::start_or_skip("engines: configuration").unwrap() else {
        return;
    };
    // DATABASE_READ_URL only means something with PostgreSQL.
    let err = AnyConfig::from_vars([
        ("DATABASE_URL", "sqlite://x.db"),
        ("DATABASE_READ_URL", &cluster.primary_url()),
    ])
    .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Config {
                var: "DATABASE_READ_URL",
                ..
            }
        ),
        "{err}"
    );
    // PostgreSQL's own variables are validated; SQLite-only ones are ignored with it.
    let err = AnyConfig::from_vars([
        ("DATABASE_URL", cluster.primary_url().as_str()),
        ("DB_STATEMENT_TIMEOUT_MS", "soon"),
    ])
    .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Config {
                var: "DB_STATEMENT_TIMEOUT_MS",
                ..
            }
        ),
        "{err}"
    );
    let config = AnyConfig::from_vars([
        ("DATABASE_URL", cluster.primary_url().as_str()),
        ("DB_SYNCHRONOUS", "NORMAL"),
        ("DB_MMAP_SIZE", "0"),
        ("DB_POOL_SIZE", "3"),
        ("DB_APPLICATION_NAME", "billing api"),
    ])
    .unwrap();
    let AnyConfig::Postgres(pg) = config else {
        panic!("a postgres URL gives a PostgreSQL configuration");
    };
    assert_eq!((pg.read_pool_size(), pg.write_pool_size()), (6, 1));
    assert_eq!(pg.application_name(), "billing api");
    // The session settings reach the server.
    let db = AnyDatabase::open(AnyConfig::Postgres(pg)).unwrap();
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let show = |name: &'static str| {
        db.read(|conn| {
            Ok(litedal::on_engine!(conn, |c| diesel::sql_query(format!(
                "SELECT current_setting('{name}') AS value"
            ))
            .get_result::<Setting>(c))?
            .value)
        })
        .unwrap()
    };
    assert_eq!(show("application_name"), "billing api");
    assert_eq!(show("lock_timeout"), "5s");
    assert_eq!(show("transaction_read_only"), "on");

    // A server that does not answer: a configuration error naming the URL, without the
    // password.
    let unreachable = "postgres://app:s3cret-pw@127.0.0.1:1/app";
    let err = open_any(&[("DATABASE_URL", unreachable), ("DB_POOL_TIMEOUT", "1")]).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("s3cret-pw"), "{text}");
    assert!(
        text.contains("postgres://app:***@127.0.0.1:1/app"),
        "{text}"
    );
    assert!(
        matches!(
            err,
            Error::Config {
                var: "DATABASE_URL",
                ..
            }
        ),
        "{text}"
    );
}

#[test]
fn reads_go_to_the_standby_named_by_database_read_url() {
    let Some(cluster) = PgCluster::start_with_standby_or_skip("engines: read replica").unwrap()
    else {
        return;
    };
    let primary = cluster.create_database("replica").unwrap();
    let standby = cluster.standby_url_of("replica").unwrap();
    let db = open_any(&[
        ("DATABASE_URL", primary.as_str()),
        ("DATABASE_READ_URL", standby.as_str()),
    ])
    .unwrap();
    Users::insert(&db, &NewUser::new("r", "r@x.example")).unwrap();
    cluster.wait_for_replay(Duration::from_secs(30)).unwrap();
    assert_eq!(Users::count(&db).unwrap(), 1);
    #[derive(QueryableByName)]
    struct Flag {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        flag: bool,
    }
    let on_standby = db
        .read(|conn| {
            Ok(litedal::on_engine!(conn, |c| diesel::sql_query(
                "SELECT pg_is_in_recovery() AS flag"
            )
            .get_result::<Flag>(c))?
            .flag)
        })
        .unwrap();
    assert!(on_standby, "reads run on the standby");
    let on_primary = db
        .transaction(|conn| {
            Ok(litedal::on_engine!(conn, |c| diesel::sql_query(
                "SELECT pg_is_in_recovery() AS flag"
            )
            .get_result::<Flag>(c))?
            .flag)
        })
        .unwrap();
    assert!(!on_primary, "writes run on the primary");
}

#[test]
fn reads_leave_a_lagging_or_stopped_standby_and_come_back() {
    let Some(mut cluster) =
        PgCluster::start_with_standby_or_skip("engines: replica fallback").unwrap()
    else {
        return;
    };
    let primary = cluster.create_database("fallback").unwrap();
    let standby = cluster.standby_url_of("fallback").unwrap();
    let db = open_any(&[
        ("DATABASE_URL", primary.as_str()),
        ("DATABASE_READ_URL", standby.as_str()),
        ("DB_MAX_REPLICA_LAG_MS", "200"),
        ("DB_REPLICA_RETRY_SECS", "1"),
    ])
    .unwrap();
    #[derive(QueryableByName)]
    struct Flag {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        flag: bool,
    }
    // Where a read ran, and how many users it saw.
    let read = |db: &AnyDatabase| -> (bool, i64) {
        db.read(|conn| {
            let standby = litedal::on_engine!(conn, |c| diesel::sql_query(
                "SELECT pg_is_in_recovery() AS flag"
            )
            .get_result::<Flag>(c))?
            .flag;
            Ok((standby, Users::count(&mut *conn)?))
        })
        .unwrap()
    };
    let settle = || std::thread::sleep(Duration::from_millis(1_200));
    Users::insert(&db, &NewUser::new("a", "a@x.example")).unwrap();
    cluster.wait_for_replay(Duration::from_secs(30)).unwrap();
    assert_eq!(read(&db), (true, 1));

    // Replay paused: the standby falls behind; reads move to the primary and see the write.
    cluster.pause_replay().unwrap();
    Users::insert(&db, &NewUser::new("b", "b@x.example")).unwrap();
    let own_write = db.read_primary(|conn| Users::count(&mut *conn)).unwrap();
    assert_eq!(own_write, 2, "read_primary sees the caller's write at once");
    settle();
    assert_eq!(read(&db), (false, 2), "a lagging standby serves no reads");
    let lag = db.replica_lag().unwrap();
    assert!(lag > Duration::from_millis(200), "lag {lag:?}");

    // Caught up again: after the retry interval reads return to the standby.
    cluster.resume_replay().unwrap();
    cluster.wait_for_replay(Duration::from_secs(30)).unwrap();
    settle();
    assert_eq!(read(&db), (true, 2));
    assert_eq!(db.replica_lag(), Some(Duration::ZERO));

    // Stopped: reads go on, on the primary, without an error.
    cluster.stop_standby().unwrap();
    Users::insert(&db, &NewUser::new("c", "c@x.example")).unwrap();
    assert_eq!(read(&db), (false, 3));
    assert_eq!(read(&db), (false, 3));
    cluster.start_standby().unwrap();
    cluster.wait_for_replay(Duration::from_secs(30)).unwrap();
    settle();
    assert_eq!(read(&db), (true, 3));
}

#[test]
fn tls_require_and_verify_full_work_and_a_certificate_mismatch_is_refused() {
    let Some(mut cluster) = PgCluster::start_or_skip("engines: TLS").unwrap() else {
        return;
    };
    // A self-signed certificate for "localhost" (its own root, as PostgreSQL's docs do it).
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    cluster
        .enable_ssl(&cert.pem(), &key.serialize_pem())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.crt");
    std::fs::write(&root, cert.pem()).unwrap();
    // Another certificate: a root that did not sign the server's.
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    let wrong_root = dir.path().join("wrong.crt");
    std::fs::write(&wrong_root, other.pem()).unwrap();
    cluster.create_database("tls").unwrap();
    let port = cluster.primary_port();

    #[derive(QueryableByName)]
    struct Ssl {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ssl: bool,
    }
    let encrypted = |url: &str| -> Result<bool, Error> {
        let db = open_any(&[("DATABASE_URL", url), ("DB_POOL_TIMEOUT", "2")])?;
        db.read(|conn| {
            Ok(litedal::on_engine!(conn, |c| diesel::sql_query(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            )
            .get_result::<Ssl>(c))?
            .ssl)
        })
    };
    let require = format!("postgres://postgres@127.0.0.1:{port}/tls?sslmode=require");
    assert!(encrypted(&require).unwrap(), "sslmode=require is encrypted");
    let verified = format!(
        "postgres://postgres@localhost:{port}/tls?sslmode=verify-full&sslrootcert={}",
        root.display()
    );
    assert!(
        encrypted(&verified).unwrap(),
        "verify-full against the right root"
    );
    let plain = format!("postgres://postgres@127.0.0.1:{port}/tls?sslmode=disable");
    assert!(!encrypted(&plain).unwrap(), "sslmode=disable is not");

    // The certificate names localhost, not 127.0.0.1: refused, never downgraded.
    let mismatch = format!(
        "postgres://postgres@127.0.0.1:{port}/tls?sslmode=verify-full&sslrootcert={}",
        root.display()
    );
    match encrypted(&mismatch) {
        Err(Error::Config { var, reason, .. }) => {
            assert_eq!(var, "DATABASE_URL");
            assert!(reason.contains("does not match host name"), "{reason}");
        }
        other => panic!("a host name mismatch must fail: {other:?}"),
    }
    let untrusted = format!(
        "postgres://postgres@localhost:{port}/tls?sslmode=verify-full&sslrootcert={}",
        wrong_root.display()
    );
    match encrypted(&untrusted) {
        Err(Error::Config { reason, .. }) => {
            assert!(reason.contains("certificate verify failed"), "{reason}")
        }
        other => panic!("an untrusted certificate must fail: {other:?}"),
    }
}

#[test]
fn postgres_health_has_its_own_checks_and_sees_a_stopped_standby() {
    use litedal::HealthStatus;
    let Some(mut cluster) = PgCluster::start_with_standby_or_skip("engines: health").unwrap()
    else {
        return;
    };
    let primary = cluster.create_database("health").unwrap();
    let standby = cluster.standby_url_of("health").unwrap();
    let db = open_any(&[
        ("DATABASE_URL", primary.as_str()),
        ("DATABASE_READ_URL", standby.as_str()),
    ])
    .unwrap();
    let report = db.health();
    let names: Vec<&str> = report.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "read_latency",
            "write_latency",
            "pool_utilization",
            "replica_lag"
        ],
        "SQLite-only checks are absent"
    );
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");

    cluster.stop_standby().unwrap();
    let report = db.health();
    let lag = report.check("replica_lag").unwrap();
    assert_eq!(lag.status, HealthStatus::Degraded, "{lag:?}");
    assert!(
        lag.detail.contains("reads use the primary"),
        "{}",
        lag.detail
    );
    assert_eq!(
        report.check("read_latency").unwrap().status,
        HealthStatus::Healthy,
        "reads are served by the primary"
    );
    assert_eq!(report.status, HealthStatus::Degraded);

    // The metrics show the pools, the standby and the last health report.
    let text = db.render_metrics().unwrap();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let scrape = prometheus_parse::Scrape::parse(lines.into_iter().map(Ok)).unwrap();
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("{name} {label:?} missing:\n{text}"));
        match sample.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: {other:?}"),
        }
    };
    assert_eq!(value("litedal_info", Some(("engine", "postgres"))), 1.0);
    assert_eq!(
        value("litedal_pool_max_connections", Some(("pool", "read"))),
        20.0
    );
    assert_eq!(
        value("litedal_pool_max_connections", Some(("pool", "write"))),
        5.0
    );
    assert_eq!(value("litedal_replica_reads_on_primary", None), 1.0);
    assert!(value("litedal_replica_lag_seconds", None) >= 0.0);
    assert_eq!(
        value("litedal_health_status", Some(("check", "replica_lag"))),
        1.0
    );
    assert_eq!(
        value("litedal_health_status", Some(("check", "read_latency"))),
        0.0
    );

    // SQLite keeps its own checks.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = open_any(&[(
        "DATABASE_URL",
        format!("sqlite://{}/h.db", dir.path().display()).as_str(),
    )])
    .unwrap();
    let report = sqlite.health();
    assert!(report.check("journal_mode").is_some());
    assert!(report.check("replica_lag").is_none());
}

#[test]
fn the_cli_migrates_and_checks_postgres_and_names_the_tool_for_sqlite_only_commands() {
    let Some(cluster) = PgCluster::start_or_skip("engines: CLI").unwrap() else {
        return;
    };
    let url = cluster.create_database("cli").unwrap();
    let litedal = |args: &[&str], url: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_litedal"))
            .args(args)
            .env("DATABASE_URL", url)
            .env_remove("RUST_LOG")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = litedal(&["migrate"], &url);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("applied 4 pending migration(s)"), "{out}");
    let (code, out, _) = litedal(&["migrate"], &url);
    assert_eq!(code, Some(0));
    assert!(out.contains("no pending migrations"), "{out}");
    assert_eq!(
        diesel::PgConnection::establish(&url)
            .unwrap()
            .applied_migrations()
            .unwrap()
            .len(),
        4
    );

    let (code, out, err) = litedal(&["health", "--json"], &url);
    assert_eq!(code, Some(0), "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["status"], "healthy", "{out}");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["read_latency", "write_latency", "pool_utilization"]);

    let (code, out, err) = litedal(&["stats", "--json"], &url);
    assert_eq!(code, Some(0), "{out}{err}");
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["engine"], "postgres");
    assert_eq!(stats["pools"][0]["pool"], "read");
    assert_eq!(stats["pools"][0]["max_size"], 20);
    assert_eq!(stats["pools"][1]["max_size"], 5);
    // The statement counters (zero: the CLI's process ran no statement on its pools).
    assert_eq!(stats["pools"][1]["queries"]["queries"], 0, "{out}");
    assert!(
        stats["transactions"]["write"]["committed"].is_u64(),
        "{out}"
    );
    assert!(
        stats["memory"].is_null() && stats["files"].is_null(),
        "{out}"
    );
    let (code, out, _) = litedal(&["stats"], &url);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("(PostgreSQL, instrumented=true)")
            && out.contains("queries")
            && !out.contains("page cache")
            && out.contains("replica lag"),
        "{out}"
    );

    for (command, tool) in [
        (&["backup", "x.db"][..], "pg_dump"),
        (&["restore", "x.db"][..], "pg_restore"),
        (&["check"][..], "pg_amcheck"),
        (&["checkpoint"][..], "CHECKPOINT"),
    ] {
        let (code, _, err) = litedal(command, &url);
        assert_eq!(code, Some(1), "{command:?}");
        assert!(err.contains(tool), "{command:?}: {err}");
    }

    // Unreachable: unhealthy (exit 2), and the password never printed.
    let secret = "postgres://app:pw-s3cret@127.0.0.1:1/app";
    let (code, out, err) = litedal(&["health"], secret);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        !out.contains("pw-s3cret") && !err.contains("pw-s3cret"),
        "{out}{err}"
    );
    assert!(out.contains("unhealthy"), "{out}");
}

#[test]
fn connections_idle_past_the_bypass_window_are_tested_so_a_server_restart_is_invisible() {
    let Some(mut cluster) = PgCluster::start_or_skip("engines: restart").unwrap() else {
        return;
    };
    let url = cluster.create_database("restart").unwrap();
    let db = open_any(&[("DATABASE_URL", url.as_str())]).unwrap();
    Users::insert(&db, &NewUser::new("a", "a@x.example")).unwrap();
    assert_eq!(Users::count(&db).unwrap(), 1);
    // Every pooled connection dies with the server; after the bypass window each one is
    // tested at checkout and replaced, so callers see no error.
    cluster.restart_primary().unwrap();
    std::thread::sleep(litedal::postgres::ALIVE_BYPASS + Duration::from_millis(200));
    assert_eq!(Users::count(&db).unwrap(), 1);
    Users::insert(&db, &NewUser::new("b", "b@x.example")).unwrap();
    assert_eq!(Users::count(&db).unwrap(), 2);
}

/// A counter of one pool of `stats`.
fn pool<'a>(stats: &'a litedal::ConnectionStats, name: &str) -> &'a litedal::PoolStats {
    stats
        .pools
        .iter()
        .find(|p| p.pool.as_str() == name)
        .unwrap_or_else(|| panic!("no {name} pool in {stats:?}"))
}

#[test]
fn postgres_counts_statements_and_transactions_and_serves_them_on_metrics() {
    let Some(cluster) = PgCluster::start_or_skip("engines: statistics").unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}/stats.db", dir.path().display());
    let pg_url = cluster.create_database("stats").unwrap();
    for url in [sqlite_url.as_str(), pg_url.as_str()] {
        let db = open_any(&[
            ("DATABASE_URL", url),
            ("DB_SLOW_QUERY_MS", "20"),
            ("DB_METRICS_ADDR", "127.0.0.1:0"),
        ])
        .unwrap();
        let engine = db.engine();
        let before = db.connection_stats();
        // The same work on both engines: 3 writes (one rolled back, one failing on a
        // constraint), 2 reads, and one statement slower than DB_SLOW_QUERY_MS.
        let rows = [
            NewUser::new("a", "a@x.example"),
            NewUser::new("b", "b@x.example"),
        ];
        Users::batch_insert(&db, &rows).unwrap();
        let rolled_back: Result<(), Error> = db.transaction(|tx| {
            Users::insert(&mut *tx, &NewUser::new("c", "c@x.example"))?;
            Err(Error::NotFound)
        });
        assert!(rolled_back.is_err());
        let duplicate = db.transaction(|tx| Users::insert(&mut *tx, &rows[0]));
        assert!(
            matches!(duplicate, Err(Error::Conflict { .. })),
            "{duplicate:?}"
        );
        let count = db.read(|conn| Users::count(&mut *conn)).unwrap();
        assert_eq!(count, 2, "{engine}");
        db.read(|conn| {
            litedal::on_engine!(conn, |c| {
                let sleep = if engine == "postgres" {
                    "SELECT pg_sleep(0.05)"
                } else {
                    // A recursive count that takes well over 20 ms on SQLite.
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                     WHERE i < 3000000) SELECT count(*) FROM n"
                };
                c.batch_execute(sleep)
            })?;
            Ok(())
        })
        .unwrap();

        let stats = db.connection_stats();
        assert!(stats.instrumented);
        let names: Vec<&str> = stats.pools.iter().map(|p| p.pool.as_str()).collect();
        assert_eq!(names, ["read", "write"], "{engine}");
        let t = &stats.transactions;
        assert_eq!(
            (
                t.write.committed - before.transactions.write.committed,
                t.write.rolled_back
            ),
            (1, 2),
            "{engine}: batch_insert committed; the Err and the conflict rolled back"
        );
        assert_eq!(
            t.read.committed - before.transactions.read.committed,
            2,
            "{engine}"
        );
        let write = pool(&stats, "write");
        let read = pool(&stats, "read");
        // BEGIN, the lock or advisory lock, the INSERT and COMMIT/ROLLBACK of each write.
        assert!(
            write.queries.queries - pool(&before, "write").queries.queries >= 9,
            "{engine}: {write:?}"
        );
        // diesel's SQLite connection reports a failing INSERT ... RETURNING to its
        // instrumentation without the error, so only PostgreSQL counts the conflict.
        if engine == "postgres" {
            assert!(
                write.queries.errors >= 1,
                "{engine}: the conflict is an error: {write:?}"
            );
        }
        assert!(read.queries.queries >= 4, "{engine}: {read:?}");
        assert!(read.queries.slow_queries >= 1, "{engine}: {read:?}");
        assert!(
            read.queries.duration_max >= Duration::from_millis(20),
            "{engine}: {read:?}"
        );
        assert_eq!(
            read.queries.duration_buckets.last().copied(),
            Some(read.queries.queries),
            "{engine}: every statement is under the 10 s bound"
        );
        assert!(
            write.checkouts >= 3 && read.checkouts >= 2,
            "{engine}: {stats:?}"
        );
        assert_eq!(
            stats.total.queries.queries,
            read.queries.queries + write.queries.queries
        );
        // SQLite's own figures exist only on SQLite, never as zeros on PostgreSQL.
        let sqlite = engine == "sqlite";
        assert_eq!(stats.files.is_some(), sqlite, "{engine}");
        assert_eq!(stats.memory.is_some(), sqlite, "{engine}");
        assert_eq!(write.cache.is_some(), sqlite, "{engine}");

        // The endpoint of DB_METRICS_ADDR serves the same names on both engines.
        let addr = db
            .metrics_addr()
            .expect("DB_METRICS_ADDR starts the endpoint");
        let (status, body) = common::http_get(addr, "/metrics");
        assert_eq!(status, 200, "{engine}: {body}");
        let scrape = common::parse_metrics(&body);
        let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
            scrape
                .samples
                .iter()
                .find(|s| {
                    s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
                })
                .map(|s| match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    ref other => panic!("{name}: {other:?}"),
                })
        };
        assert_eq!(
            value("litedal_info", &[("engine", engine)]),
            Some(1.0),
            "{body}"
        );
        assert_eq!(
            value(
                "litedal_transactions_total",
                &[("role", "write"), ("outcome", "rolled_back")]
            ),
            Some(2.0),
            "{engine}: {body}"
        );
        assert!(
            value("litedal_slow_queries_total", &[("pool", "read")]).unwrap_or(0.0) >= 1.0,
            "{engine}: {body}"
        );
        assert!(
            value("litedal_queries_total", &[("pool", "write")]).unwrap_or(0.0) >= 9.0,
            "{engine}: {body}"
        );
        assert!(
            body.contains("litedal_query_duration_seconds_bucket{pool=\"read\""),
            "{engine}: {body}"
        );
        for sqlite_only in [
            "litedal_cache_hits_total",
            "litedal_sqlite_memory_used_bytes",
            "litedal_wal_size_bytes",
            "litedal_database_size_bytes",
        ] {
            assert_eq!(
                body.contains(sqlite_only),
                sqlite,
                "{engine}: {sqlite_only} in\n{body}"
            );
        }
        let (status, health) = common::http_get(addr, "/health");
        assert_eq!(status, 200, "{engine}: {health}");
        assert!(health.contains("\"write_latency\""), "{engine}: {health}");

        // The endpoint does not keep the database open and stops with its last clone.
        // (the endpoint closes its listener from its own accept thread, so allow it a moment.)
        drop(db);
        let closed = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::net::TcpStream::connect(addr).is_err()
        });
        assert!(
            closed,
            "{engine}: the endpoint still listens 5 s after the database was dropped"
        );
    }
}

#[test]
fn the_cli_serves_metrics_for_postgres_until_killed() {
    use std::io::BufRead;
    let Some(cluster) = PgCluster::start_or_skip("engines: serve-metrics").unwrap() else {
        return;
    };
    let url = cluster.create_database("serve").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_litedal"))
        .args(["serve-metrics", "--addr", "127.0.0.1:0"])
        .env("DATABASE_URL", &url)
        .env_remove("DB_METRICS_ADDR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let (status, body) = common::http_get(addr, "/metrics");
    let (health, health_body) = common::http_get(addr, "/health");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(!line.contains("secret"), "{line}");
    let scrape = common::parse_metrics(&body);
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "litedal_info" && s.labels.get("engine") == Some("postgres")),
        "{body}"
    );
    assert!(
        body.contains("litedal_queries_total{pool=\"read\"}"),
        "{body}"
    );
    assert_eq!(health, 200, "{health_body}");
    assert!(
        health_body.contains("\"status\": \"healthy\""),
        "{health_body}"
    );
}

#[test]
fn one_test_body_runs_on_an_any_test_db_of_each_engine() {
    use litedal::testing::TestEngine;
    for engine in TestEngine::ALL {
        let Some(db) = litedal::example::any_test_db(engine, "engines: AnyTestDb").unwrap() else {
            continue;
        };
        assert_eq!(db.engine(), engine.as_str());
        let emails: Vec<String> = (0..250).map(|i| format!("t{i:03}@x.example")).collect();
        let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("t", e)).collect();
        assert_eq!(Users::batch_insert(&*db, &rows).unwrap(), 250, "{engine:?}");
        let first = Users::find_by_email(&*db, "t000@x.example")
            .unwrap()
            .unwrap();
        assert_eq!(first.name, "t");
        assert_eq!(Users::count(&*db).unwrap(), 250, "{engine:?}");
    }
    // Each AnyTestDb is a database of its own: a second one starts empty.
    for engine in TestEngine::ALL {
        let Some(db) = litedal::example::any_test_db(engine, "engines: AnyTestDb").unwrap() else {
            continue;
        };
        assert_eq!(Users::count(&*db).unwrap(), 0, "{engine:?}");
    }
}

#[test]
fn any_test_db_uses_and_cleans_up_the_server_named_by_the_environment() {
    let Some(cluster) = PgCluster::start_or_skip("engines: AnyTestDb on a named server").unwrap()
    else {
        return;
    };
    // The variable goes to a child process (this test binary running one ignored test), not
    // into this process's environment, which the tests running beside this one share.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "any_test_db_child_opens_on_the_named_server",
            "--ignored",
            "--nocapture",
        ])
        .env(litedal::testing::TEST_POSTGRES_URL, cluster.primary_url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    // The child's database was made on the named server and dropped with its AnyTestDb.
    let mut conn = diesel::PgConnection::establish(&cluster.primary_url()).unwrap();
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let left: Vec<Name> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'litedal_test_%'")
            .load(&mut conn)
            .unwrap();
    assert!(
        left.is_empty(),
        "left behind: {:?}",
        left.iter().map(|n| &n.datname).collect::<Vec<_>>()
    );
    assert!(stdout.contains("made litedal_test_"), "{stdout}");
}

/// Run by `any_test_db_uses_and_cleans_up_the_server_named_by_the_environment` in a child
/// process with `LITEDAL_TEST_POSTGRES_URL` set.
#[test]
#[ignore = "run by any_test_db_uses_and_cleans_up_the_server_named_by_the_environment"]
fn any_test_db_child_opens_on_the_named_server() {
    let admin = std::env::var(litedal::testing::TEST_POSTGRES_URL).unwrap();
    let db = litedal::example::any_test_db(litedal::testing::TestEngine::Postgres, "child")
        .unwrap()
        .unwrap();
    let litedal::AnyDatabase::Postgres(pg) = &*db else {
        panic!("not PostgreSQL");
    };
    let url = pg.config().url().to_owned();
    let port = admin.rsplit(':').next().unwrap().split('/').next().unwrap();
    assert!(
        url.contains(&format!(":{port}/litedal_test_")),
        "{url} on {admin}"
    );
    println!("made {}", url.rsplit('/').next().unwrap());
    Users::batch_insert(&*db, &[NewUser::new("c", "c@x.example")]).unwrap();
    assert_eq!(Users::count(&*db).unwrap(), 1);
}

#[test]
fn async_callers_get_the_same_transactions_on_both_engines() {
    use litedal::testing::TestEngine;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    for engine in TestEngine::ALL {
        let Some(test_db) = litedal::example::any_test_db(engine, "engines: async").unwrap() else {
            continue;
        };
        let db = test_db.db().clone();
        runtime.block_on(async {
            // 8 tasks x 25 read-modify-write increments of one row: none lost.
            let first = db
                .transaction_async(|tx| Users::insert(&mut *tx, &NewUser::new("0", "n@x.example")))
                .await
                .unwrap();
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let db = db.clone();
                    tokio::spawn(async move {
                        for _ in 0..25 {
                            db.transaction_async(move |tx| {
                                let user =
                                    Users::find(&mut *tx, first.id)?.ok_or(Error::NotFound)?;
                                let n: i64 = user.name.parse().unwrap_or(-1_000);
                                Users::update(
                                    &mut *tx,
                                    first.id,
                                    &UserChanges {
                                        name: Some((n + 1).to_string()),
                                        ..UserChanges::default()
                                    },
                                )
                            })
                            .await
                            .unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            let name = db
                .read_async(move |conn| Ok(Users::find(&mut *conn, first.id)?.map(|u| u.name)))
                .await
                .unwrap();
            assert_eq!(name.as_deref(), Some("200"), "{engine:?}");
            // A panic rolls back and comes back as an error; the row is unchanged.
            let panicked = db
                .transaction_async(|tx| -> Result<(), Error> {
                    Users::insert(&mut *tx, &NewUser::new("p", "p@x.example"))?;
                    panic!("handler bug")
                })
                .await;
            assert!(
                matches!(&panicked, Err(Error::Panicked { message }) if message == "handler bug"),
                "{engine:?}: {panicked:?}"
            );
            let count = db
                .read_primary_async(|conn| Users::count(&mut *conn))
                .await
                .unwrap();
            assert_eq!(count, 1, "{engine:?}");
        });
    }
}
