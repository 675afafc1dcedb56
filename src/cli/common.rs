//! What every command shares: how a failure is reported, and opening the database.

use std::process::ExitCode;

use crate::{ConfigBuilder, Database, Error};

/// A command that failed: what to print and the exit code.
pub(super) struct Failure {
    pub(super) error: String,
    pub(super) exit_code: u8,
}

impl Failure {
    pub(super) fn new(error: impl std::fmt::Display, exit_code: u8) -> Failure {
        Failure {
            error: error.to_string(),
            exit_code,
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure::new(error.report(), 1)
    }
}

pub(super) type CmdResult = Result<ExitCode, Failure>;

/// Opens the database of the environment, never running migrations at open (`migrate` runs
/// them itself, the others leave the schema alone) and without the endpoint of
/// DB_METRICS_ADDR (serve-metrics starts its own). Everything but `migrate` refuses to
/// create a database that does not exist.
pub(super) fn open(for_migrate: bool) -> Result<Database, Error> {
    let config = ConfigBuilder::from_env()?
        .metrics_addr(None)
        .run_migrations(false)
        .build()?;
    if !for_migrate {
        if let Some(path) = config.location().path() {
            if !path.exists() {
                return Err(Error::Io {
                    op: "opening the database (run `litedal migrate` to create it):",
                    path: path.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("no such file (DATABASE_URL={})", config.database_url()),
                    ),
                });
            }
        }
    }
    Database::open(config)
}
