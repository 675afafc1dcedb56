//! Opens the database from the environment (default `sqlite://data/main.db`), inserts a user
//! inside an immediate transaction, reads it back through the read pool, and prints what it did.
//!
//! ```text
//! cargo run --example quickstart
//! DATABASE_URL=sqlite:///tmp/demo.db DB_SYNCHRONOUS=normal cargo run --example quickstart
//! ```

use diesel::prelude::*;
use litedal::example::schema::users;
use litedal::{Config, Database};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let db = Database::open(Config::from_env()?.with_migrations(&litedal::example::MIGRATIONS))?;
    println!(
        "opened {} (journal_mode={}, read pool {}, write pool {})",
        db.config().location().to_url(),
        db.journal_mode(),
        db.config().read_pool_size(),
        db.config().write_pool_size()
    );

    // A fresh address each run, so re-running never trips the unique email constraint.
    let email = format!(
        "quickstart-{}@example.com",
        chrono::Utc::now().format("%Y%m%d%H%M%S%f")
    );
    let id: i64 = db.transaction(|conn| {
        Ok(diesel::insert_into(users::table)
            .values((users::name.eq("Quick Start"), users::email.eq(&email)))
            .returning(users::id)
            .get_result(conn)?)
    })?;
    println!("inserted user {id} <{email}> in an immediate transaction");

    let (name, active, total): (String, bool, i64) = db.read(|conn| {
        let (name, active) = users::table
            .find(id)
            .select((users::name, users::active))
            .first::<(String, bool)>(conn)?;
        let total = users::table.count().get_result(conn)?;
        Ok((name, active, total))
    })?;
    println!(
        "read it back on a read connection: name={name:?} active={active}; {total} users in total"
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    // Logs on stderr (`RUST_LOG`, `DB_LOG_FORMAT=json`); an error with its causes, exit 1.
    let result = litedal::cli::init_logging("info")
        .map_err(Into::into)
        .and_then(|()| run());
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("quickstart: error: {}", litedal::error::report(&*error));
            std::process::ExitCode::FAILURE
        }
    }
}
