//! Measurement behind the PostgreSQL design (issue 13): what running the same query code on
//! SQLite costs through diesel's `MultiConnection` (one `MultiBackend` for both engines)
//! against matching on the connection's variant and running the query on the concrete
//! connection (the body written once, compiled once per engine).
//!
//! ```text
//! cargo run --release --example profile_engine_dispatch --features postgres,example-domain
//! ```
//!
//! Prints point reads per second on a concrete `SqliteConnection` and the two others as a
//! fraction of it, measured in turns (20 rounds) in one process.

use diesel::prelude::*;
use litedal::example::models::NewUser;
use litedal::example::schema::users;

/// diesel's enum over both engines: queries are typed on `MultiBackend`.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Sqlite(diesel::SqliteConnection),
    Postgresql(diesel::PgConnection),
}

/// The connection of one engine, borrowed from an [`AnyConnection`].
enum EngineRef<'a> {
    Sqlite(&'a mut diesel::SqliteConnection),
    Postgres(&'a mut diesel::PgConnection),
}

/// Connections that know their engine.
trait Engine {
    fn as_engine(&mut self) -> EngineRef<'_>;
}

impl Engine for diesel::SqliteConnection {
    fn as_engine(&mut self) -> EngineRef<'_> {
        EngineRef::Sqlite(self)
    }
}

impl Engine for AnyConnection {
    fn as_engine(&mut self) -> EngineRef<'_> {
        match self {
            AnyConnection::Sqlite(c) => EngineRef::Sqlite(c),
            AnyConnection::Postgresql(c) => EngineRef::Postgres(c),
        }
    }
}

/// Runs `$body` with `$c` bound to the concrete connection of `$conn`'s engine: the body is
/// written once and type-checked once per engine, with no bound to spell out.
macro_rules! on_engine {
    ($conn:expr, |$c:ident| $body:expr) => {
        match Engine::as_engine($conn) {
            EngineRef::Sqlite($c) => $body,
            EngineRef::Postgres($c) => $body,
        }
    };
}

type Row = (i64, String, String, bool, chrono::NaiveDateTime);

/// A repository function written once for any engine.
fn find<C: Engine>(conn: &mut C, id: i64) -> QueryResult<Row> {
    on_engine!(conn, |c| users::table
        .find(id)
        .select((
            users::id,
            users::name,
            users::email,
            users::active,
            users::created_at
        ))
        .get_result::<Row>(c))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("engines.db");
    let db = litedal::Database::open(
        litedal::example::config()
            .database_url(format!("sqlite://{}", path.display()))
            .build()?,
    )?;
    let emails: Vec<String> = (0..20_000).map(|i| format!("u{i}@x.example")).collect();
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("u", e)).collect();
    db.batch_insert(users::table, &rows)?;
    let file = path.display().to_string();
    let mut concrete = diesel::SqliteConnection::establish(&file)?;
    let mut dispatched = AnyConnection::Sqlite(diesel::SqliteConnection::establish(&file)?);
    let mut multi = AnyConnection::Sqlite(diesel::SqliteConnection::establish(&file)?);
    let (rounds, per_round) = (20, 20_000);
    // Seconds spent by the concrete connection, variant dispatch and MultiBackend.
    let mut seconds = [0.0f64; 3];
    let mut x = 1u64;
    for _ in 0..rounds {
        for (way, spent) in seconds.iter_mut().enumerate() {
            let started = std::time::Instant::now();
            for _ in 0..per_round {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let id = ((x >> 33) % 20_000) as i64 + 1;
                let row = match way {
                    0 => users::table
                        .find(id)
                        .select((
                            users::id,
                            users::name,
                            users::email,
                            users::active,
                            users::created_at,
                        ))
                        .get_result::<Row>(&mut concrete)?,
                    1 => find(&mut dispatched, id)?,
                    _ => users::table
                        .find(id)
                        .select((
                            users::id,
                            users::name,
                            users::email,
                            users::active,
                            users::created_at,
                        ))
                        .get_result::<Row>(&mut multi)?,
                };
                if row.0 != id {
                    return Err(format!("asked for user {id}, got {}", row.0).into());
                }
            }
            *spent += started.elapsed().as_secs_f64();
        }
    }
    let reads = f64::from(rounds * per_round);
    println!(
        "point reads on SQLite: concrete SqliteConnection {:.0}/s; variant dispatch {:.3} of it; \
         MultiBackend {:.3} of it",
        reads / seconds[0],
        seconds[0] / seconds[1],
        seconds[0] / seconds[2]
    );
    Ok(())
}
