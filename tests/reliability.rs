//! Reliability under load: threads and processes hammering one file, lock contention beyond
//! the timeouts. Bounded: each test runs a few seconds (`LITEDAL_SOAK_SECS` for longer
//! local soak runs).

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use litedal::Limit;
use litedal::example::models::{NewPost, NewUser, UserId};
use litedal::example::repo::{Posts, UserOrder, Users};
use litedal::{Database, Error};

const COUNTERS: i64 = 4;

fn soak_secs(default: u64) -> u64 {
    std::env::var("LITEDAL_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(QueryableByName, Debug)]
struct CounterRow {
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    value: i64,
}

#[derive(QueryableByName, Debug)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn create_stress_tables(db: &Database) {
    db.transaction(|conn| {
        conn.batch_execute(
            "CREATE TABLE IF NOT EXISTS counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS events (
                 id INTEGER PRIMARY KEY, writer TEXT NOT NULL, seq INTEGER NOT NULL,
                 UNIQUE (writer, seq));",
        )?;
        for id in 0..COUNTERS {
            diesel::sql_query("INSERT OR IGNORE INTO counters (id, value) VALUES (?, 0)")
                .bind::<BigInt, _>(id)
                .execute(conn)?;
        }
        Ok(())
    })
    .unwrap();
}

fn read_counters(conn: &mut SqliteConnection) -> litedal::Result<Vec<i64>> {
    Ok(
        diesel::sql_query("SELECT id, value FROM counters ORDER BY id")
            .load::<CounterRow>(conn)?
            .into_iter()
            .map(|r| r.value)
            .collect(),
    )
}

/// One read-modify-write increment of `counter` plus one event row, in one transaction.
fn increment(db: &Database, writer: &str, seq: i64, counter: i64) -> litedal::Result<()> {
    db.transaction(|conn| {
        let current: Vec<CounterRow> =
            diesel::sql_query("SELECT id, value FROM counters WHERE id = ?")
                .bind::<BigInt, _>(counter)
                .load(conn)?;
        let value = current.first().map(|r| r.value).ok_or(Error::NotFound)?;
        diesel::sql_query("UPDATE counters SET value = ? WHERE id = ?")
            .bind::<BigInt, _>(value + 1)
            .bind::<BigInt, _>(counter)
            .execute(conn)?;
        diesel::sql_query("INSERT INTO events (writer, seq) VALUES (?, ?)")
            .bind::<Text, _>(writer)
            .bind::<BigInt, _>(seq)
            .execute(conn)?;
        Ok(())
    })
}

#[test]
fn four_readers_and_four_writers_lose_nothing() {
    let db = litedal::example::test_db().unwrap();
    create_stress_tables(&db);
    let emails: Vec<String> = (0..200).map(|i| format!("s{i}@x.example")).collect();
    let users: Vec<NewUser> = emails.iter().map(|e| NewUser::new("s", e)).collect();
    Users::batch_insert(db.db(), &users).unwrap();
    let user_ids: Vec<UserId> = Users::query()
        .limit(Limit::new(1000).unwrap())
        .load(db.db())
        .unwrap()
        .iter()
        .map(|u| u.id)
        .collect();

    let duration = Duration::from_secs(soak_secs(3));
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(9));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (db, stop, barrier, user_ids) = (
            db.db().clone(),
            stop.clone(),
            barrier.clone(),
            user_ids.clone(),
        );
        writers.push(thread::spawn(move || {
            barrier.wait();
            let writer = format!("writer-{w}");
            let mut per_counter: HashMap<i64, i64> = HashMap::new();
            let mut posts = Vec::new();
            let mut errors = Vec::new();
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                let counter = (seq + w) % COUNTERS;
                match increment(&db, &writer, seq, counter) {
                    Ok(()) => *per_counter.entry(counter).or_default() += 1,
                    Err(e) => errors.push(e.to_string()),
                }
                if seq % 5 == 0 {
                    let title = format!("{writer} #{seq}");
                    let user_id = user_ids[(seq as usize * 7 + w as usize) % user_ids.len()];
                    match Posts::insert(
                        &db,
                        &NewPost {
                            user_id,
                            title: &title,
                            body: "stress",
                            published: true,
                        },
                    ) {
                        Ok(post) => posts.push(post.id),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                seq += 1;
            }
            (per_counter, posts, errors, seq)
        }));
    }
    let mut readers = Vec::new();
    for r in 0..4 {
        let (db, stop, barrier, user_ids) = (
            db.db().clone(),
            stop.clone(),
            barrier.clone(),
            user_ids.clone(),
        );
        readers.push(thread::spawn(move || {
            barrier.wait();
            let mut errors = Vec::new();
            let mut violations = Vec::new();
            let mut snapshots = 0u64;
            let mut last_seen = vec![0i64; COUNTERS as usize];
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                // Repository queries through the read pool.
                let user_id = user_ids[(i * 13 + r) % user_ids.len()];
                if let Err(e) = Posts::by_user(&db, user_id, Limit::new(10).unwrap()) {
                    errors.push(e.to_string());
                }
                if let Err(e) = Users::query()
                    .order(UserOrder::CreatedDesc)
                    .limit(Limit::new(20).unwrap())
                    .load(&db)
                {
                    errors.push(e.to_string());
                }
                // Several statements in one read transaction see one snapshot.
                let result = db.read(|conn| {
                    let first = read_counters(conn)?;
                    let events = diesel::sql_query("SELECT count(*) AS n FROM events")
                        .get_result::<Count>(conn)?
                        .n;
                    let second = read_counters(conn)?;
                    Ok((first, events, second))
                });
                match result {
                    Ok((first, events, second)) => {
                        snapshots += 1;
                        if first != second {
                            violations.push(format!("snapshot changed: {first:?} -> {second:?}"));
                        }
                        // Every increment inserted one event in the same transaction.
                        if first.iter().sum::<i64>() != events {
                            violations.push(format!("counters {first:?} vs {events} events"));
                        }
                        for (k, v) in first.iter().enumerate() {
                            if *v < last_seen[k] {
                                violations
                                    .push(format!("counter {k} went back {} -> {v}", last_seen[k]));
                            }
                            last_seen[k] = *v;
                        }
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (errors, violations, snapshots)
        }));
    }
    barrier.wait();
    thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);

    let mut expected = vec![0i64; COUNTERS as usize];
    let mut all_posts = Vec::new();
    let mut transactions = 0;
    for handle in writers {
        let (per_counter, posts, errors, attempts) = handle.join().unwrap();
        assert!(errors.is_empty(), "writer errors: {errors:?}");
        for (counter, n) in per_counter {
            expected[counter as usize] += n;
        }
        transactions += attempts;
        all_posts.extend(posts);
    }
    let mut snapshots = 0;
    for handle in readers {
        let (errors, violations, n) = handle.join().unwrap();
        assert!(errors.is_empty(), "reader errors: {errors:?}");
        assert!(violations.is_empty(), "snapshot violations: {violations:?}");
        snapshots += n;
    }
    let counters = db.read(read_counters).unwrap();
    assert_eq!(
        counters, expected,
        "every committed increment is counted, no lost update"
    );
    assert!(transactions > 0 && snapshots > 0);
    for id in &all_posts {
        assert!(
            Posts::find(db.db(), *id).unwrap().is_some(),
            "post {id} lost"
        );
    }
    assert_eq!(Posts::count(db.db()).unwrap(), all_posts.len() as i64);
    // Waiting for the write lock is not an error: the statistics show none.
    let stats = db.connection_stats();
    assert_eq!(stats.total.queries.busy_errors, 0);
    assert_eq!(stats.total.queries.errors, 0);
    assert_eq!(stats.transactions.write.rolled_back, 0);
    eprintln!(
        "stress: {} s, {transactions} write transactions, {} posts, {snapshots} read snapshots, 0 errors",
        duration.as_secs(),
        all_posts.len()
    );
}

/// Entry point of the child processes of `three_processes_write_one_file_without_busy_errors`.
fn run_child_writer(path: &str, name: &str, secs: u64) {
    let db = Database::open(
        litedal::example::config()
            .database_url(path)
            .pool_size(2)
            .build()
            .unwrap(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let db = db.clone();
            let writer = format!("{name}-t{t}");
            thread::spawn(move || {
                let (mut commits, mut busy, mut other) = (0i64, 0, 0);
                let mut max_wait = Duration::ZERO;
                while Instant::now() < deadline {
                    let started = Instant::now();
                    match increment(&db, &writer, commits, commits % COUNTERS) {
                        Ok(()) => commits += 1,
                        Err(Error::Busy) => busy += 1,
                        Err(e) => {
                            eprintln!("child error: {e}");
                            other += 1
                        }
                    }
                    max_wait = max_wait.max(started.elapsed());
                }
                (commits, busy, other, max_wait)
            })
        })
        .collect();
    let (mut commits, mut busy, mut other, mut max_wait) = (0, 0, 0, Duration::ZERO);
    for h in handles {
        let (c, b, o, w) = h.join().unwrap();
        commits += c;
        busy += b;
        other += o;
        max_wait = max_wait.max(w);
    }
    println!(
        "RESULT commits={commits} busy={busy} other={other} max_ms={}",
        max_wait.as_millis()
    );
}

#[test]
fn three_processes_write_one_file_without_busy_errors() {
    if let Ok(path) = std::env::var("LITEDAL_CHILD_WRITER_DB") {
        let name = std::env::var("LITEDAL_CHILD_NAME").unwrap();
        let secs = std::env::var("LITEDAL_CHILD_SECS")
            .unwrap()
            .parse()
            .unwrap();
        run_child_writer(&path, &name, secs);
        return;
    }
    let db = litedal::example::test_db().unwrap();
    create_stress_tables(&db);
    let url = db.path().display().to_string();
    let secs = soak_secs(3);
    let children: Vec<_> = (0..3)
        .map(|i| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "three_processes_write_one_file_without_busy_errors",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("LITEDAL_CHILD_WRITER_DB", &url)
                .env("LITEDAL_CHILD_NAME", format!("p{i}"))
                .env("LITEDAL_CHILD_SECS", secs.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut total_commits = 0;
    let mut report = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.find("RESULT ").map(|i| &l[i..]))
            .unwrap_or_else(|| panic!("no result line in {stdout}"));
        let fields: HashMap<&str, i64> = line["RESULT ".len()..]
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k, v.parse().unwrap()))
            .collect();
        assert_eq!(fields["busy"], 0, "{line}");
        assert_eq!(fields["other"], 0, "{line}");
        assert!(fields["commits"] > 0, "{line}");
        total_commits += fields["commits"];
        report.push(line.to_owned());
    }
    let counters = db.read(read_counters).unwrap();
    assert_eq!(counters.iter().sum::<i64>(), total_commits);
    let events = db
        .read(|conn| {
            Ok(diesel::sql_query("SELECT count(*) AS n FROM events").get_result::<Count>(conn)?)
        })
        .unwrap()
        .n;
    assert_eq!(events, total_commits);
    eprintln!("3 processes x 2 threads, {secs} s: {total_commits} commits; {report:?}");
}

#[test]
fn a_lock_held_past_the_busy_timeout_is_error_busy_then_recovers() {
    let db =
        litedal::example::test_db_with(|b| b.busy_timeout(Duration::from_millis(300))).unwrap();
    // Another connection (outside litedal's pools and gate) takes the write lock.
    let mut holder = SqliteConnection::establish(&db.path().display().to_string()).unwrap();
    holder.batch_execute("BEGIN IMMEDIATE").unwrap();

    let started = Instant::now();
    let result = Users::insert(db.db(), &NewUser::new("late", "late@x.example"));
    let waited = started.elapsed();
    assert!(matches!(result, Err(Error::Busy)), "{result:?}");
    assert!(
        waited >= Duration::from_millis(300),
        "gave up early: {waited:?}"
    );
    // "Within the timeout plus a small margin": far from a hang.
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");

    // Reads are not blocked by a writer in WAL mode.
    assert_eq!(Users::count(db.db()).unwrap(), 0);

    holder.batch_execute("ROLLBACK").unwrap();
    let user = Users::insert(db.db(), &NewUser::new("late", "late@x.example")).unwrap();
    assert_eq!(Users::find(db.db(), user.id).unwrap().unwrap().name, "late");
}

#[test]
fn an_exhausted_write_pool_is_pool_timeout_then_recovers() {
    let db = litedal::example::test_db_with(|b| {
        b.write_pool_size(2).pool_timeout(Duration::from_secs(1))
    })
    .unwrap();
    let held: Vec<_> = (0..2).map(|_| db.write_connection().unwrap()).collect();
    let started = Instant::now();
    let result = Users::insert(db.db(), &NewUser::new("p", "p@x.example"));
    let waited = started.elapsed();
    match result {
        Err(Error::PoolTimeout {
            role,
            waited: reported,
            ..
        }) => {
            assert_eq!(role, litedal::Role::Write);
            assert!(reported >= Duration::from_secs(1), "{reported:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    drop(held);
    Users::insert(db.db(), &NewUser::new("p", "p@x.example")).unwrap();
    assert_eq!(Users::count(db.db()).unwrap(), 1);
}
