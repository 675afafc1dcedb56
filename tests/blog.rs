//! The main job (`examples/blog.rs`) run twice at once on one file: each run touches only its
//! own rows, both finish with 0 busy errors and their own correct counts, and a later run
//! clears the rows of both.

mod common;

use std::process::{Command, Stdio};

#[allow(dead_code)]
#[path = "../examples/blog.rs"]
mod blog;

/// Child: one run of the blog on `DATABASE_URL`.
fn child() -> bool {
    if std::env::var_os("LITEDAL_CHILD_BLOG").is_none() {
        return false;
    }
    if let Err(error) = blog::run() {
        println!("BLOG-ERROR {}", litedal::error::report(&*error));
        std::process::exit(1);
    }
    true
}

fn spawn(path: &std::path::Path) -> std::process::Child {
    spawn_on(
        "two_runs_at_once_on_one_file_keep_to_their_own_rows",
        path.as_os_str(),
    )
}

/// A child running the blog on `url`, through the test `test` of this binary.
fn spawn_on(test: &str, url: &std::ffi::OsStr) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("LITEDAL_CHILD_BLOG", "1")
        .env("DATABASE_URL", url)
        .env("BLOG_SECONDS", "1")
        .env("BLOG_USERS", "2000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "a blog run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn two_runs_at_once_on_one_file_keep_to_their_own_rows() {
    if child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blog.db");
    // Create the schema first, so that the two runs start on the same footing.
    drop(common::open_example(&path));
    let (a, b) = (spawn(&path), spawn(&path));
    for stdout in [finish(a), finish(b)] {
        assert!(
            stdout.contains("bulk insert: 2000 users") && stdout.contains("10000 posts"),
            "{stdout}"
        );
        assert!(stdout.contains("keyset walk: 2000 users"), "{stdout}");
        assert!(
            stdout.contains("busy errors: 0, other errors: 0"),
            "{stdout}"
        );
        assert!(
            !stdout.contains("cleared"),
            "a run cleared a live run's rows:\n{stdout}"
        );
    }
    let third = finish(spawn(&path));
    assert!(
        third.contains("cleared 4000 users (and their posts) of 2 finished earlier run(s)"),
        "{third}"
    );
}

/// The same program on PostgreSQL (feature `postgres`): `DATABASE_URL` is all that changes,
/// and the report is the same.
#[test]
fn the_blog_runs_unchanged_on_postgres() {
    if child() {
        return;
    }
    let Some(cluster) =
        litedal::testing::postgres::PgCluster::start_or_skip("blog on PostgreSQL").unwrap()
    else {
        return;
    };
    let url = cluster.create_database("blog").unwrap();
    let test = "the_blog_runs_unchanged_on_postgres";
    let first = finish(spawn_on(test, url.as_ref()));
    assert!(first.contains("(PostgreSQL, read pool"), "{first}");
    assert!(
        first.contains("bulk insert: 2000 users") && first.contains("10000 posts"),
        "{first}"
    );
    assert!(
        first.contains("keyset walk: 2000 users in 2 pages"),
        "{first}"
    );
    assert!(first.contains("busy errors: 0, other errors: 0"), "{first}");
    let second = finish(spawn_on(test, url.as_ref()));
    assert!(
        second.contains("cleared 2000 users (and their posts) of 1 finished earlier run(s)"),
        "{second}"
    );
}
