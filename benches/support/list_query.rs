//! The filtered list of the benchmark's `list` case (100 active users of one email domain,
//! by id) as the raw floor and the plain diesel peer run it, and the users it reads. Shared by
//! the throughput benchmark and `examples/profile_list.rs` (`#[path]`-included; both have
//! `raw_sqlite` and `peer` at their crate root). litedal's side is
//! `feature_cost::list`.

#![allow(dead_code)]

use diesel::prelude::*;
use litedal::Database;
use litedal::example::models::{NewUser, User};
use litedal::example::schema::users;

use crate::peer::PeerPool;
use crate::raw_sqlite::{RawStmt, USER_COLUMNS};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Rows the list returns.
pub const ROWS: usize = 100;

/// Inserts `n` users `{prefix}{i}@bench.example`, every tenth inactive: the read cases' data.
pub fn insert_readers(db: &Database, prefix: &str, n: usize) -> BoxResult<()> {
    let emails: Vec<String> = (0..n)
        .map(|i| format!("{prefix}{i}@bench.example"))
        .collect();
    let rows: Vec<NewUser> = emails
        .iter()
        .enumerate()
        .map(|(i, e)| NewUser {
            name: "reader",
            email: e,
            active: i % 10 != 0,
        })
        .collect();
    db.batch_insert(users::table, &rows)?;
    Ok(())
}

/// The SQL litedal's `UserQuery` sends for the list, for a raw statement.
pub fn sql() -> String {
    format!(
        "SELECT {USER_COLUMNS} FROM users WHERE active = ? AND email LIKE ? ESCAPE '\\' ORDER BY id ASC LIMIT ?"
    )
}

/// One run of the list on a raw statement of [`sql`]: binds, steps, copies every row out.
pub fn raw(stmt: &mut RawStmt<'_>) -> BoxResult<()> {
    stmt.bind_int(1, 1)?;
    stmt.bind_text(2, "%@bench.example")?;
    stmt.bind_int(3, ROWS as i64)?;
    let mut rows = 0;
    while let Some(row) = stmt.step()? {
        let _user = row.user()?;
        rows += 1;
    }
    stmt.reset()?;
    if rows != ROWS {
        return Err(format!("raw list: {rows} rows, not {ROWS}").into());
    }
    Ok(())
}

/// One run of the list as an application writes it with plain diesel + r2d2.
pub fn peer(pool: &PeerPool) -> BoxResult<()> {
    let mut conn = pool.get()?;
    let found: Vec<User> = users::table
        .filter(users::active.eq(true))
        .filter(users::email.like("%@bench.example"))
        .order(users::id.asc())
        .limit(ROWS as i64)
        .select(User::as_select())
        .load(&mut conn)?;
    if found.len() != ROWS {
        return Err(format!("peer list: {} rows, not {ROWS}", found.len()).into());
    }
    Ok(())
}
