//! Thread-affine read connections: a thread keeps its read connection between reads, but
//! never at the expense of another thread waiting for one, never with a transaction left
//! open, and the statistics still count every checkout and hold.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use litedal::example::models::{NewUser, UserId};
use litedal::example::repo::Users;
use litedal::example::schema::users;
use litedal::{Error, Role};

fn read_pool(db: &litedal::Database) -> litedal::stats::PoolStats {
    db.connection_stats()
        .pools
        .into_iter()
        .find(|p| p.pool == litedal::stats::PoolName::Read)
        .expect("a read pool")
}

#[test]
fn parked_connections_go_to_a_thread_that_waits_for_one() {
    // 4 read connections, 2 slots. Two threads park one each and go idle; two more hold the
    // other two. A fifth thread must get a parked one at once, not after the pool timeout.
    let db = litedal::example::test_db_with(|b| {
        b.read_pool_size(4).pool_timeout(Duration::from_secs(5))
    })
    .unwrap();
    let id = Users::insert(db.db(), &NewUser::new("a", "a@example.com"))
        .unwrap()
        .id;
    for _ in 0..2 {
        let d = db.db().clone();
        thread::spawn(move || {
            assert!(Users::find(&d, id).unwrap().is_some());
        })
        .join()
        .unwrap();
    }
    let held: Vec<_> = (0..2).map(|_| db.db().read_connection().unwrap()).collect();
    let started = Instant::now();
    let d = db.db().clone();
    let found = thread::spawn(move || Users::find(&d, id)).join().unwrap();
    assert!(found.unwrap().is_some());
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "waited {waited:?} for a connection that sat parked"
    );
    // The same for a caller of read_connection().
    let started = Instant::now();
    let d = db.db().clone();
    let conn = thread::spawn(move || d.read_connection().map(drop))
        .join()
        .unwrap();
    assert!(conn.is_ok());
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(held);
    assert_eq!(read_pool(db.db()).checkout_timeouts, 0);
}

#[test]
fn more_threads_than_connections_all_read() {
    let db = litedal::example::test_db_with(|b| {
        b.read_pool_size(2).pool_timeout(Duration::from_secs(10))
    })
    .unwrap();
    let emails: Vec<String> = (0..100).map(|i| format!("u{i}@example.com")).collect();
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("u", e)).collect();
    db.db().batch_insert(users::table, &rows).unwrap();
    let before = read_pool(db.db()).checkouts;
    let threads = 8;
    let reads = 500;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (d, barrier) = (db.db().clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for i in 0..reads {
                    let id = UserId(((t * reads + i) % 100 + 1) as i64);
                    assert_eq!(Users::find(&d, id).unwrap().unwrap().id, id);
                    if i % 50 == 0 {
                        // Now and then a held connection, as an application's own code does.
                        let mut conn = d.read_connection().unwrap();
                        let n: i64 = users::table.count().get_result(&mut conn).unwrap();
                        assert_eq!(n, 100);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // A connection parked since the reads ended goes back to r2d2 when someone waits; its
    // r2d2 check-in (covering the time parked) must not count as a hold.
    thread::sleep(Duration::from_millis(1100));
    let held: Vec<_> = (0..2).map(|_| db.db().read_connection().unwrap()).collect();
    drop(held);
    let stats = read_pool(db.db());
    let expected = (threads * reads + threads * reads / 50 + 2) as u64;
    assert_eq!(stats.checkouts - before, expected, "{stats:?}");
    assert_eq!(stats.checkout_timeouts, 0);
    // Nothing is in use any more: parked connections count as idle.
    assert_eq!(stats.active, 0, "{stats:?}");
    assert_eq!(stats.idle, stats.open);
    assert!(stats.held_total > Duration::ZERO);
    // Held times are per read, not the time a connection sat parked.
    assert!(stats.held_max < Duration::from_secs(1), "{stats:?}");
}

#[test]
fn a_transaction_a_read_leaves_open_never_serves_the_next_read() {
    let db = litedal::example::test_db_with(|b| b.read_pool_size(2)).unwrap();
    Users::insert(db.db(), &NewUser::new("a", "a@example.com")).unwrap();
    let count = |db: &litedal::Database| -> i64 {
        db.read(|conn| Ok(users::table.count().get_result(conn)?))
            .unwrap()
    };
    // A read through the executor that opens a transaction of its own and reads in it.
    let seen: i64 = litedal::Executor::read(db.db(), |conn| {
        conn.batch_execute("BEGIN")?;
        Ok(users::table.count().get_result(conn)?)
    })
    .unwrap();
    assert_eq!(seen, 1);
    Users::insert(db.db(), &NewUser::new("b", "b@example.com")).unwrap();
    assert_eq!(count(db.db()), 2);
    let seen: i64 =
        litedal::Executor::read(db.db(), |conn| Ok(users::table.count().get_result(conn)?))
            .unwrap();
    assert_eq!(seen, 2);
}

#[test]
fn a_read_that_panics_leaves_the_pool_working() {
    let db = litedal::example::test_db_with(|b| b.read_pool_size(2)).unwrap();
    let id = Users::insert(db.db(), &NewUser::new("a", "a@example.com"))
        .unwrap()
        .id;
    let d = db.db().clone();
    let panicked = thread::spawn(move || {
        let _ = d.read(|_conn| -> litedal::Result<()> { panic!("in a read") });
    })
    .join();
    assert!(panicked.is_err());
    for _ in 0..10 {
        assert!(Users::find(db.db(), id).unwrap().is_some());
    }
    match db.db().transaction(|_| Err::<(), _>(Error::NotFound)) {
        Err(Error::NotFound) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(read_pool(db.db()).open, 2);
    let _ = Role::Read;
}
