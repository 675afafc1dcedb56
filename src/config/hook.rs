//! The application's connection hook: its own per-connection setup (SQL functions,
//! collations, extra PRAGMAs), run on every new connection after litedal's PRAGMAs.

use std::sync::Arc;

use diesel::sqlite::SqliteConnection;

use crate::error::Result;
use crate::pragmas::Role;

/// The function an application runs on every new connection (see
/// [`ConfigBuilder::on_connect`](crate::ConfigBuilder::on_connect)).
pub type ConnectHook = dyn Fn(&mut SqliteConnection, Role) -> Result<()> + Send + Sync;

/// A shared [`ConnectHook`] (the configuration is `Clone`).
#[derive(Clone)]
pub struct ConnectionHook(pub(crate) Arc<ConnectHook>);

impl ConnectionHook {
    /// Runs the hook on `conn`, which serves `role`.
    ///
    /// # Errors
    ///
    /// What the hook returned.
    pub fn run(&self, conn: &mut SqliteConnection, role: Role) -> Result<()> {
        (self.0)(conn, role)
    }
}

impl std::fmt::Debug for ConnectionHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionHook")
    }
}
