//! Bulk inserts: into litedal's example schema (unique email and three indexes, where index
//! maintenance dominates) and into an application's own unindexed table (where the insert
//! path itself shows).

use super::*;

/// Bulk insert of users: raw single-row floor, raw multi-row, litedal, naive diesel.
pub fn users(s: &Settings, dir: &Path, table: &mut Table) -> BoxResult<()> {
    let emails = emails("bulk", s.bulk_rows);
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("user", e)).collect();
    let (mut raw, mut multi, mut lite, mut naive) = (vec![], vec![], vec![], vec![]);
    for run in 0..s.runs {
        let db = raw_sqlite::open_like_litedal(&dir.join(format!("bulk-raw-{run}.db")), "FULL")?;
        let started = Instant::now();
        raw.push(per_second(
            raw_sqlite::insert_users_single_row(&db, &emails)?,
            started,
        ));

        let db = raw_sqlite::open_like_litedal(&dir.join(format!("bulk-multi-{run}.db")), "FULL")?;
        let started = Instant::now();
        multi.push(per_second(
            raw_sqlite::insert_users_multi_row(&db, &emails, 32766 / 3)?,
            started,
        ));

        let db = open_litedal(&dir.join(format!("bulk-litedal-{run}.db")), |b| b)?;
        let started = Instant::now();
        lite.push(per_second(db.batch_insert(users::table, &rows)?, started));
        drop(db);

        // What users write without litedal: diesel's defaults (rollback journal, default
        // Insertable), one autocommit INSERT per row.
        let mut conn = SqliteConnection::establish(
            &dir.join(format!("bulk-naive-{run}.db"))
                .display()
                .to_string(),
        )?;
        conn.run_pending_migrations(litedal::Migrations(&litedal::example::MIGRATIONS))
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        for email in emails.iter().take(s.naive_rows) {
            diesel::insert_into(users::table)
                .values(&NaiveUser {
                    name: "user",
                    email,
                    active: true,
                })
                .execute(&mut conn)?;
        }
        naive.push(per_second(s.naive_rows, started));
    }
    let case = "bulk insert, users (unique email + 3 indexes)";
    table.add(
        case,
        format!("raw SQLite, single-row statement, {} rows", s.bulk_rows),
        "rows/s",
        raw,
    );
    table.add(case, "raw SQLite, multi-row statements", "rows/s", multi);
    table.add(case, "litedal batch_insert", "rows/s", lite);
    table.add(
        case,
        format!("naive diesel, autocommit per row, {} rows", s.naive_rows),
        "rows/s",
        naive,
    );
    Ok(())
}

/// The insert model a user writes without reading litedal's docs: diesel's default
/// `treat_none_as_default_value`.
#[derive(Insertable)]
#[diesel(table_name = users)]
struct NaiveUser<'a> {
    name: &'a str,
    email: &'a str,
    active: bool,
}

/// Bulk insert into an application's own 5-column table without secondary indexes: the raw
/// single-row floor, plain diesel's 500-row statements (the peer) and litedal.
pub fn own_table(s: &Settings, dir: &Path, table: &mut Table) -> BoxResult<()> {
    let sensors = own_table::sensors();
    let rows = own_table::rows(&sensors, s.bulk_rows);
    let (mut raw, mut peer, mut lite) = (vec![], vec![], vec![]);
    for run in 0..s.runs {
        let db =
            raw_sqlite::open_writer_like_litedal(&dir.join(format!("own-raw-{run}.db")), "FULL")?;
        db.exec(own_table::SCHEMA)?;
        let started = Instant::now();
        let n = own_table::insert_raw(&db, &rows)?;
        raw.push(per_second(n, started));
        drop(db);

        let pool = peer::pool(&dir.join(format!("own-peer-{run}.db")), 1, true)?;
        let mut conn = pool.get()?;
        conn.batch_execute(own_table::SCHEMA)?;
        let started = Instant::now();
        let n = own_table::insert_plain_diesel(&mut conn, &rows)?;
        peer.push(per_second(n, started));
        drop((conn, pool));

        let db = Database::open(
            litedal::Config::builder()
                .database_url(sqlite_url(&dir.join(format!("own-litedal-{run}.db"))))
                .build()?,
        )?;
        db.transaction(|conn| Ok(conn.batch_execute(own_table::SCHEMA)?))?;
        let started = Instant::now();
        let n = db.batch_insert(own_table::readings::table, &rows)?;
        lite.push(per_second(n, started));
        if n != rows.len() {
            return Err(format!("litedal inserted {n} of {} rows", rows.len()).into());
        }
    }
    let case = "bulk insert, own 5-column table, no secondary index";
    table.add(
        case,
        format!("raw SQLite, single-row statement, {} rows", s.bulk_rows),
        "rows/s",
        raw,
    );
    table.add_peer(
        case,
        "plain diesel + r2d2, 500-row insert_into(..).values(&chunk)",
        "rows/s",
        peer,
    );
    table.add(case, "litedal batch_insert", "rows/s", lite);
    Ok(())
}
