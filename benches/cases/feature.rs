//! The `postgres` feature's cost to SQLite users: the same SQLite work timed in litedal built
//! with the feature and without it, side by side in one run. This case builds
//! `benches/sqlite-only` twice (release, in `target/sqlite-only/{off,on}`), without and with
//! the feature, so the two binaries differ only in it, and runs both in child processes,
//! alternating which goes first.

use super::*;

use std::path::PathBuf;
use std::process::Command;

use feature_cost::{CHILD_FLAG, WORK};

/// Builds `benches/sqlite-only`, with litedal's `postgres` feature or without, and returns
/// its binary.
fn build_sqlite_only(postgres: bool) -> BoxResult<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let package = root.join("benches").join("sqlite-only");
    let target = root
        .join("target")
        .join("sqlite-only")
        .join(if postgres { "on" } else { "off" });
    // The main package's lock file, so both builds use the same versions of everything.
    std::fs::copy(root.join("Cargo.lock"), package.join("Cargo.lock"))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "feature: building benches/sqlite-only ({} `postgres`)",
        if postgres { "with" } else { "without" }
    );
    let status = Command::new(cargo)
        .arg("build")
        .args(
            postgres
                .then_some(["--features", "postgres"])
                .into_iter()
                .flatten(),
        )
        .arg("--release")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(package.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()?;
    if !status.success() {
        return Err(format!("building benches/sqlite-only failed: {status}").into());
    }
    Ok(target.join("release").join("sqlite-only"))
}

/// One child's rate for `work` on `db`.
fn child_rate(binary: &Path, work: &str, db: &Path, count: usize) -> BoxResult<f64> {
    let out = Command::new(binary)
        .arg(CHILD_FLAG)
        .arg(work)
        .arg(db)
        .arg(count.to_string())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} {work}: {}{stdout}{}",
            binary.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    stdout
        .split_whitespace()
        .nth(1)
        .and_then(|rate| rate.parse().ok())
        .ok_or_else(|| format!("{} {work}: no rate in {stdout:?}", binary.display()).into())
}

pub fn cost(s: &Settings, reads_db: &Path, dir: &Path, table: &mut Table) -> BoxResult<()> {
    let without = build_sqlite_only(false)?;
    let with = build_sqlite_only(true)?;
    for work in WORK {
        let (count, case, unit) = match work {
            "reads" => (
                s.reads_per_thread,
                "feature cost: point reads, 1 thread (Users::find)",
                "reads/s",
            ),
            "list" => (
                s.list_queries,
                "feature cost: list, active + email domain, limit 100",
                "queries/s",
            ),
            _ => (
                s.bulk_rows / 2,
                "feature cost: batch_insert of users into a new file",
                "rows/s",
            ),
        };
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for run in 0..s.runs {
            // Alternate which build goes first, so drift on the machine hits both alike.
            let order: [(&Path, &mut Vec<f64>, &str); 2] = if run % 2 == 0 {
                [(&without, &mut off, "off"), (&with, &mut on, "on")]
            } else {
                [(&with, &mut on, "on"), (&without, &mut off, "off")]
            };
            for (binary, samples, label) in order {
                let db = if work == "bulk" {
                    dir.join(format!("feature-bulk-{run}-{label}.db"))
                } else {
                    reads_db.to_owned()
                };
                samples.push(child_rate(binary, work, &db, count)?);
            }
        }
        table.add(case, "litedal built without `postgres`", unit, off);
        table.add(case, "litedal built with `postgres` (SQLite URL)", unit, on);
    }
    Ok(())
}
