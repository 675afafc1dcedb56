//! PostgreSQL-specific code (feature `postgres`): write transactions and bulk inserts on a
//! `PgConnection`. The engine-neutral parts live in [`engine`](crate::engine); the design and
//! what is still to come are in `docs/postgres.md`.

mod abort;
mod batch;
mod database;
mod health;
mod metrics;
mod pool;
mod transaction;

pub(crate) use batch::insert_chunks_pg;
pub use batch::{PG_MAX_BIND_VALUES, PgRows};
pub use database::PgDatabase;
pub use pool::{ALIVE_BYPASS, PgSession};
pub use transaction::WRITE_LOCK_KEY;
pub(crate) use transaction::write_on_pg;
