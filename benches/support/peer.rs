//! The peer: what an application writes with diesel + r2d2 and no litedal, done well. Its
//! pools get litedal's PRAGMAs through their own connection customizer (readers
//! `query_only`), connections are opened up front and never pinged on checkout
//! (`test_on_check_out(false)`), and its queries are the ones litedal's repositories run.
//! Shared by the throughput benchmark and the profiling examples (`#[path]`-included).

#![allow(dead_code)]

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};

pub type PeerPool = Pool<ConnectionManager<SqliteConnection>>;

const COMMON: &str = "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;
     PRAGMA cache_size = -2000; PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 268435456;";

/// litedal's PRAGMAs for a reader or a writer, applied on every new connection.
#[derive(Debug, Clone, Copy)]
pub struct Pragmas {
    pub writer: bool,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        let role = if self.writer {
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             PRAGMA wal_autocheckpoint = 1000; PRAGMA journal_size_limit = 67108864;"
        } else {
            "PRAGMA query_only = ON;"
        };
        conn.batch_execute(&format!("{COMMON}{role}"))
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// A pool of `size` readers (`writer` false) or writers of the database at `path`.
pub fn pool(path: &Path, size: u32, writer: bool) -> Result<PeerPool, r2d2::Error> {
    Pool::builder()
        .max_size(size)
        .min_idle(Some(size))
        .test_on_check_out(false)
        .connection_customizer(Box::new(Pragmas { writer }))
        .build(ConnectionManager::<SqliteConnection>::new(
            path.display().to_string(),
        ))
}
