//! Upkeep and durability: WAL checkpoints (on demand and in the background), online backups,
//! integrity checks, `PRAGMA optimize`, and restore.
//!
//! Why each exists:
//!
//! - **Checkpoints** copy committed pages from the `-wal` file back into the database file.
//!   SQLite does this on commit once the WAL passes `wal_autocheckpoint` pages, but only in
//!   PASSIVE mode, which never waits: under a constant stream of readers the WAL can grow
//!   without bound. The background checkpointer runs one every `DB_CHECKPOINT_INTERVAL_SECS`
//!   and escalates to TRUNCATE when the WAL passes `DB_WAL_SIZE_LIMIT`.
//! - **Backups** are `VACUUM INTO` a temporary file beside the destination: a consistent
//!   snapshot taken inside one read transaction, so readers and writers keep running.
//! - **Restore** replaces the database file atomically, and only while no other connection
//!   has it open.
//!
//! The operator CLI's `checkpoint`, `backup`, `restore` and `check` subcommands are thin
//! wrappers over [`Database::checkpoint`], [`Database::backup_with_progress`], [`restore`]
//! and [`Database::integrity_check`]; every report implements `Display` for that purpose.
//!
//! One file a concern: `checkpoint.rs` (on-demand checkpoints and the background
//! checkpointer), `backup.rs`, `restore.rs` (with `file_locks.rs`, which asks the kernel who
//! has a file open), `integrity.rs` (integrity checks and `PRAGMA optimize`), `untrusted.rs`
//! (opening a database file litedal did not create: restore sources, copy sources, checked
//! files). This module
//! starts what runs beside a database and holds the file helpers they share.
//! It uses the core (`crate::database`), never the statistics.

mod backup;
mod check;
mod checkpoint;
mod file_locks;
mod files;
mod integrity;
mod restore;
pub(crate) mod untrusted;

use std::sync::Arc;

pub use backup::{BackupProgress, BackupReport, Overwrite};
pub use checkpoint::{
    CHECKPOINTER_THREAD_NAME, CheckpointOutcome, CheckpointReport, CheckpointStats,
};
pub use integrity::{CheckDepth, integrity_check_file};
pub use restore::{RESTORE_LOCK_WAIT, RestoreReport, restore};

use crate::database::{Database, Service, SqlitePool};
use crate::error::Result;
use checkpoint::{Checkpointer, Upkeep};

/// Starts what runs beside an open database: the checkpoint state every checkpoint shares,
/// the background checkpointer, and `PRAGMA optimize` when the database closes.
///
/// # Errors
///
/// [`Error::Io`] when the checkpointer thread cannot be started.
pub(crate) fn start(db: &Database) -> Result<()> {
    let upkeep = Arc::new(Upkeep::new(db));
    let checkpointer = Checkpointer::start(&upkeep, db)?;
    db.add_extension(Arc::clone(&upkeep));
    db.add_service(Box::new(UpkeepService {
        checkpointer,
        pool: (!db.location().is_memory()).then(|| db.pool(crate::pragmas::Role::Write).clone()),
    }));
    Ok(())
}

/// Stopped when the last clone of the database is dropped: the checkpointer thread is
/// stopped and joined first (so nothing else touches the pools), then `PRAGMA optimize`.
struct UpkeepService {
    checkpointer: Option<Checkpointer>,
    /// The write pool of a database on disk (an in-memory one is not optimized at close).
    pool: Option<SqlitePool>,
}

impl Service for UpkeepService {
    fn stop(&mut self) {
        if let Some(mut checkpointer) = self.checkpointer.take() {
            checkpointer.stop();
        }
        if let Some(pool) = self.pool.take() {
            integrity::optimize_on_close(&pool);
        }
    }
}
