//! The throwaway PostgreSQL cluster that the PostgreSQL tests run on: a primary and a
//! streaming hot standby, started from the installed server binaries.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};
use litedal::testing::postgres::PgCluster;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    flag: bool,
}

fn count(url: &str) -> i64 {
    let mut conn = PgConnection::establish(url).unwrap();
    diesel::sql_query("SELECT count(*) AS n FROM t")
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n
}

#[test]
fn a_standby_replays_the_primary_and_falls_behind_when_paused() {
    let Some(mut cluster) =
        PgCluster::start_with_standby_or_skip("pg_cluster: standby replay").unwrap()
    else {
        return;
    };
    let primary = cluster.create_database("replay").unwrap();
    let standby = cluster.standby_url_of("replay").unwrap();
    let mut conn = PgConnection::establish(&primary).unwrap();
    conn.batch_execute("CREATE TABLE t (id bigint PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .unwrap();
    cluster.wait_for_replay(Duration::from_secs(30)).unwrap();
    assert_eq!(count(&standby), 2);

    // The standby is read-only and knows it is one.
    let mut on_standby = PgConnection::establish(&standby).unwrap();
    let recovering = diesel::sql_query("SELECT pg_is_in_recovery() AS flag")
        .get_result::<Flag>(&mut on_standby)
        .unwrap();
    assert!(recovering.flag);
    let refused = on_standby
        .batch_execute("INSERT INTO t VALUES (3)")
        .unwrap_err();
    assert!(refused.to_string().contains("read-only"), "{refused}");

    // Paused replay: the primary moves on, the standby does not.
    cluster.pause_replay().unwrap();
    conn.batch_execute("INSERT INTO t VALUES (3)").unwrap();
    let behind = cluster.wait_for_replay(Duration::from_millis(300));
    assert!(behind.is_err(), "replay went on while paused");
    assert_eq!(count(&standby), 2);
    cluster.resume_replay().unwrap();
    cluster.wait_for_replay(Duration::from_secs(30)).unwrap();
    assert_eq!(count(&standby), 3);

    // Stopped and started again, on the same port, with what it had.
    cluster.stop_standby().unwrap();
    assert!(PgConnection::establish(&standby).is_err());
    conn.batch_execute("INSERT INTO t VALUES (4)").unwrap();
    cluster.start_standby().unwrap();
    cluster.wait_for_replay(Duration::from_secs(30)).unwrap();
    assert_eq!(count(&standby), 4);
}

#[test]
fn databases_are_separate_and_names_are_checked() {
    let Some(cluster) = PgCluster::start_or_skip("pg_cluster: databases").unwrap() else {
        return;
    };
    let a = cluster.create_database("a").unwrap();
    let b = cluster.create_database("b").unwrap();
    PgConnection::establish(&a)
        .unwrap()
        .batch_execute("CREATE TABLE t (id bigint); INSERT INTO t VALUES (1)")
        .unwrap();
    PgConnection::establish(&b)
        .unwrap()
        .batch_execute("CREATE TABLE t (id bigint)")
        .unwrap();
    assert_eq!(count(&a), 1);
    assert_eq!(count(&b), 0);
    for bad in ["", "A", "1x", "x;drop", "x y"] {
        let err = cluster.create_database(bad).unwrap_err();
        assert!(err.to_string().contains("accepted"), "{bad}: {err}");
    }
    assert!(cluster.standby_url().is_none());
    assert!(cluster.wait_for_replay(Duration::from_secs(1)).is_err());
}

#[test]
fn dropping_the_cluster_stops_its_servers_and_removes_the_directory() {
    let Some(cluster) = PgCluster::start_or_skip("pg_cluster: drop").unwrap() else {
        return;
    };
    let url = cluster.primary_url();
    let dir = cluster.primary_data_dir().to_path_buf();
    assert!(dir.join("PG_VERSION").is_file());
    PgConnection::establish(&url).unwrap();
    drop(cluster);
    assert!(!dir.exists());
    assert!(PgConnection::establish(&url).is_err());
}

#[test]
fn a_cluster_whose_test_was_killed_is_stopped_by_the_next_start() {
    use std::io::BufRead;
    // Only to learn whether a server can be had here (says so and returns where not).
    let Some(probe) = PgCluster::start_or_skip("pg_cluster: abandoned cluster").unwrap() else {
        return;
    };
    drop(probe);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "abandoned_cluster_child",
            "--ignored",
            "--nocapture",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("cluster ").map(str::to_owned))
        .expect("the child prints its cluster");
    let (url, dir) = started.split_once(' ').unwrap();
    // SIGKILL: the child's Drop never runs, its server keeps running.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        PgConnection::establish(url).is_ok(),
        "the abandoned server runs"
    );
    assert!(std::path::Path::new(dir).exists());

    // The next start stops it and removes its directory; a live owner's cluster is untouched.
    let live = PgCluster::start().unwrap();
    let _next = PgCluster::start().unwrap();
    assert!(PgConnection::establish(url).is_err(), "{url} still answers");
    assert!(!std::path::Path::new(dir).exists(), "{dir} is left");
    assert!(PgConnection::establish(&live.primary_url()).is_ok());
}

/// Run by `a_cluster_whose_test_was_killed_is_stopped_by_the_next_start` in a child process,
/// which it kills while the cluster runs.
#[test]
#[ignore = "run by a_cluster_whose_test_was_killed_is_stopped_by_the_next_start"]
fn abandoned_cluster_child() {
    let cluster = PgCluster::start().unwrap();
    println!(
        "cluster {} {}",
        cluster.primary_url(),
        cluster.primary_data_dir().parent().unwrap().display()
    );
    std::thread::sleep(Duration::from_secs(120));
    drop(cluster);
}
