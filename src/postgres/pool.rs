//! The r2d2 connection manager of the PostgreSQL pools: diesel's, with a connection test
//! only for connections idle for a while.
//!
//! r2d2's `test_on_check_out` tests every connection it hands out with `SELECT 1`: one more
//! round trip for every one-statement read, which doubles its cost. A connection that was in
//! use less than [`ALIVE_BYPASS`] ago is handed out untested (HikariCP does the same with its
//! 500 ms `aliveBypassWindowMs`); an older one is tested, so a connection the server dropped
//! while idle (a restart, a failover, an idle timeout) is replaced before a caller sees it.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, ManageConnection};

/// How recently a connection must have been used to be handed out without a test.
pub const ALIVE_BYPASS: Duration = Duration::from_secs(1);

/// A pooled PostgreSQL connection and when it was last returned to the pool.
pub struct PgSession {
    conn: PgConnection,
    last_used: Instant,
}

impl Deref for PgSession {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for PgSession {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

/// diesel's `ConnectionManager<PgConnection>` with the idle-based test.
#[derive(Debug)]
pub(crate) struct PgManager {
    manager: ConnectionManager<PgConnection>,
    /// Connections used more recently than this are handed out untested.
    bypass: Duration,
}

impl PgManager {
    /// A manager for `url` that skips the test for connections used within `bypass`: the
    /// primary's pools use [`ALIVE_BYPASS`]; a standby's pool tests every checkout (zero), so
    /// a standby that went down sends reads to the primary instead of failing one.
    pub(crate) fn new(url: &str, bypass: Duration) -> PgManager {
        PgManager {
            manager: ConnectionManager::new(url),
            bypass,
        }
    }
}

impl ManageConnection for PgManager {
    type Connection = PgSession;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<PgSession, Self::Error> {
        Ok(PgSession {
            conn: self.manager.connect()?,
            last_used: Instant::now(),
        })
    }

    fn is_valid(&self, session: &mut PgSession) -> Result<(), Self::Error> {
        if session.last_used.elapsed() < self.bypass {
            return Ok(());
        }
        self.manager.is_valid(&mut session.conn)
    }

    /// Called when a connection goes back to the pool: the moment it was last used.
    fn has_broken(&self, session: &mut PgSession) -> bool {
        session.last_used = Instant::now();
        self.manager.has_broken(&mut session.conn)
    }
}
