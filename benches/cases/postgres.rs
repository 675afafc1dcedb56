//! PostgreSQL rows (feature `postgres`), on a throwaway server started for the run: bulk
//! inserts against `COPY ... FROM STDIN` of the same rows (the floor) and plain diesel
//! multi-row statements (the peer); repository point reads against a plain diesel
//! `PgConnection` (prepared statement kept by diesel).

use litedal::AnyDatabase;
use litedal::example::models::User;
use litedal::testing::postgres::PgCluster;

use super::*;

/// A cluster for the PostgreSQL cases, or `None` (after saying so) where none can start
/// outside CI.
pub fn cluster() -> BoxResult<Option<PgCluster>> {
    Ok(PgCluster::start_or_skip("benchmark: PostgreSQL rows")?)
}

fn open(url: &str) -> BoxResult<AnyDatabase> {
    let config = litedal::ConfigBuilder::from_vars([("DATABASE_URL", url)])?
        .postgres_migrations(&litedal::example::MIGRATIONS_POSTGRES)
        .build_any()?;
    Ok(AnyDatabase::open(config)?)
}

fn empty_users(conn: &mut PgConnection) -> BoxResult<()> {
    conn.batch_execute("TRUNCATE users RESTART IDENTITY CASCADE")?;
    Ok(())
}

/// Bulk insert of users: COPY floor, plain diesel multi-row statements, litedal.
pub fn bulk(s: &Settings, cluster: &PgCluster, table: &mut Table) -> BoxResult<()> {
    let url = cluster.create_database("bench_bulk")?;
    let db = open(&url)?;
    let mut conn = PgConnection::establish(&url)?;
    let n = if s.quick { 20_000 } else { 200_000 };
    let emails = emails("pg", n);
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("user", e)).collect();
    let (mut copy, mut peer, mut lite) = (vec![], vec![], vec![]);
    for _ in 0..s.runs {
        empty_users(&mut conn)?;
        let started = Instant::now();
        let copied = diesel::copy_from(users::table)
            .from_insertable(&rows)
            .execute(&mut conn)?;
        copy.push(per_second(copied, started));

        empty_users(&mut conn)?;
        let started = Instant::now();
        let inserted = conn.transaction(|conn| {
            let mut inserted = 0;
            // 3 values per row: 21,845 rows fit PostgreSQL's 65,535 binds; 10,000 per chunk.
            for chunk in rows.chunks(10_000) {
                inserted += diesel::insert_into(users::table)
                    .values(chunk)
                    .execute(conn)?;
            }
            diesel::QueryResult::Ok(inserted)
        })?;
        peer.push(per_second(inserted, started));

        empty_users(&mut conn)?;
        let started = Instant::now();
        lite.push(per_second(Users::batch_insert(&db, &rows)?, started));
    }
    let case = "PostgreSQL: bulk insert, users";
    table.add(
        case,
        format!("COPY FROM STDIN (binary), {n} rows"),
        "rows/s",
        copy,
    );
    table.add_peer(case, "plain diesel, 10,000-row statements", "rows/s", peer);
    table.add(case, "litedal batch_insert (AnyDatabase)", "rows/s", lite);
    Ok(())
}

/// Pins process or thread `pid` (0: the calling thread) to CPU 0.
fn pin_to_cpu0(pid: libc::pid_t) -> BoxResult<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only
    // read and write the set passed by reference.
    let failed = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0
    };
    if failed {
        return Err(format!(
            "pinning {pid} to CPU 0: {}",
            std::io::Error::last_os_error()
        )
        .into());
    }
    Ok(())
}

/// Point reads on one thread: a plain diesel `PgConnection` (the floor) and litedal's
/// repository through `AnyDatabase`'s read pool.
///
/// The reading thread and the server (the postmaster, whose backends inherit its CPU set)
/// run on CPU 0: otherwise each connection's server process is woken on whichever core the
/// scheduler picks, and a loopback round trip takes ~13 or ~75 us by luck, not by code.
pub fn reads(s: &Settings, cluster: &PgCluster, table: &mut Table) -> BoxResult<()> {
    let postmaster = std::fs::read_to_string(cluster.primary_data_dir().join("postmaster.pid"))?;
    let postmaster: libc::pid_t = postmaster
        .lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .ok_or("postmaster.pid has no pid")?;
    // Pinning another user's process needs root (CI runs as root); elsewhere the figure is
    // measured unpinned and labelled so.
    let pinned = match pin_to_cpu0(postmaster) {
        Ok(()) => true,
        Err(error) => {
            eprintln!("PostgreSQL point reads measured unpinned: {error}");
            false
        }
    };
    // The connections below are new backends, forked from the pinned postmaster.
    let url = cluster.create_database("bench_reads")?;
    let db = open(&url)?;
    let rows_n = 20_000usize;
    let emails = emails("pgr", rows_n);
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("reader", e)).collect();
    Users::batch_insert(&db, &rows)?;
    let reads = if s.quick { 2_000 } else { 20_000 };
    let (floor, lite) = std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<(Vec<f64>, Vec<f64>), String> {
                if pinned {
                    pin_to_cpu0(0).map_err(|e| e.to_string())?;
                }
                measure_reads(s, &url, &db, rows_n, reads).map_err(|e| e.to_string())
            })
            .join()
            .map_err(|_| "the reading thread panicked".to_owned())?
    })?;
    let case = if pinned {
        "PostgreSQL: point read, 1 thread (client and server on CPU 0)"
    } else {
        "PostgreSQL: point read, 1 thread (unpinned: scheduling moves it)"
    };
    table.add(
        case,
        "plain diesel PgConnection, prepared",
        "reads/s",
        floor,
    );
    table.add(case, "litedal Users::find (AnyDatabase)", "reads/s", lite);
    // Not yet a fair comparison: each variant has its own server process, and where the
    // scheduler runs it moves a loopback round trip between ~13 and ~75 us (PERFORMANCE.md).
    Ok(())
}

/// The turns of [`reads`], on the calling thread.
fn measure_reads(
    s: &Settings,
    url: &str,
    db: &AnyDatabase,
    rows_n: usize,
    reads: usize,
) -> BoxResult<(Vec<f64>, Vec<f64>)> {
    let mut conn = PgConnection::establish(url)?;
    let (mut floor, mut lite) = (vec![], vec![]);
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    // The two take turns in 10 rounds per run: on a shared 2-core machine the speed of a
    // loopback round trip drifts with scheduling, and turns spread the drift over both.
    let per_round = (reads / 10).max(1);
    for _ in 0..s.runs {
        let mut seconds = [0.0f64; 2];
        for _ in 0..10 {
            let started = Instant::now();
            for _ in 0..per_round {
                let id = next_id(&mut state, rows_n);
                let user: User = users::table
                    .find(id)
                    .select(User::as_select())
                    .get_result(&mut conn)?;
                if user.id.get() != id {
                    return Err(format!("asked for {id}, got {}", user.id).into());
                }
            }
            seconds[0] += started.elapsed().as_secs_f64();
            let started = Instant::now();
            for _ in 0..per_round {
                let id = next_id(&mut state, rows_n);
                let user = Users::find(db, UserId(id))?.ok_or("a seeded user is missing")?;
                if user.id.get() != id {
                    return Err(format!("asked for {id}, got {}", user.id).into());
                }
            }
            seconds[1] += started.elapsed().as_secs_f64();
        }
        let done = (per_round * 10) as f64;
        floor.push(done / seconds[0]);
        lite.push(done / seconds[1]);
    }
    Ok((floor, lite))
}
