//! What litedal costs to open, and the memory its default pools hold.

use super::*;

pub fn open_cost(s: &Settings, dir: &Path, table: &mut Table) -> BoxResult<()> {
    let mut open = vec![];
    for run in 0..s.runs.max(5) {
        let path = dir.join(format!("open-{run}.db"));
        let started = Instant::now();
        let db = open_litedal(&path, |b| b)?;
        open.push(started.elapsed().as_secs_f64() * 1e3);
        drop(db);
    }
    table.add(
        "open + migrate a new database",
        "litedal defaults (25 connections)",
        "ms",
        open,
    );
    Ok(())
}

/// `Rss` and `Anonymous` of this process in KiB, from /proc/self/smaps_rollup.
fn memory_kib() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Anonymous:"))
}

/// Memory of the default pools, measured in a fresh child process (so no allocator state of
/// the other cases hides or inflates it).
pub fn memory(s: &Settings, dir: &Path) -> BoxResult<()> {
    let path = dir.join("memory.db");
    drop(populated(s, &path)?);
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("--memory-child")
        .arg(&path)
        .output()?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned().into());
    }
    Ok(())
}

pub fn memory_child(path: &Path) -> BoxResult<()> {
    let (rss0, anon0) = memory_kib();
    let db = open_litedal(path, |b| b.checkpoint_interval(Duration::ZERO))?;
    let (rss1, anon1) = memory_kib();
    // Fill every read connection's page cache with a full scan.
    let conns: Vec<_> = (0..db.config().read_pool_size())
        .map(|_| db.read_connection())
        .collect::<Result<_, _>>()?;
    for mut conn in conns {
        let _: i64 = users::table
            .filter(users::name.ne(""))
            .count()
            .get_result(&mut conn)?;
    }
    let (rss2, anon2) = memory_kib();
    println!(
        "memory of the default pools (read {} + write {} connections, {} users): after open +{} KiB anonymous (+{} KiB RSS); \
         after a full scan on every read connection +{} KiB anonymous (+{} KiB RSS, which counts the mmap'ed file once per connection)",
        db.config().read_pool_size(),
        db.config().write_pool_size(),
        users::table
            .count()
            .get_result::<i64>(&mut db.read_connection()?)?,
        anon1.saturating_sub(anon0),
        rss1.saturating_sub(rss0),
        anon2.saturating_sub(anon0),
        rss2.saturating_sub(rss0),
    );
    Ok(())
}
