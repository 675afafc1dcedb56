//! The upkeep commands: checkpoint, backup, restore, check.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::upkeep::{integrity_check_file, restore as restore_file};
use crate::{CheckDepth, CheckpointMode, ConfigBuilder, Overwrite};

use super::common::{CmdResult, Failure, open};

pub(super) fn checkpoint(mode: &str) -> CmdResult {
    let mode = CheckpointMode::parse(mode).ok_or_else(|| {
        Failure::new(
            format!(
                "--mode {mode:?}: accepted (any case): {}",
                CheckpointMode::KEYWORDS.join(", ")
            ),
            1,
        )
    })?;
    let db = open(false)?;
    let report = db.checkpoint(mode)?;
    println!("{report}");
    // A checkpoint that readers kept from finishing is not a failure of the command, but
    // scripts may want to know: exit 3 when it stayed busy.
    Ok(if report.busy {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

pub(super) fn backup(path: PathBuf, overwrite: bool) -> CmdResult {
    let db = open(false)?;
    let terminal = std::io::stderr().is_terminal();
    let mut last_tenth = 0;
    let report = db.backup_with_progress(
        &path,
        if overwrite {
            Overwrite::Replace
        } else {
            Overwrite::Refuse
        },
        |p| {
            if p.bytes_expected == 0 {
                return;
            }
            let tenth = (p.bytes_written.saturating_mul(10) / p.bytes_expected).min(10);
            if terminal {
                eprint!(
                    "\rbackup: {} of {} bytes ({}%)",
                    p.bytes_written,
                    p.bytes_expected,
                    p.bytes_written.saturating_mul(100) / p.bytes_expected
                );
            } else if tenth > last_tenth {
                last_tenth = tenth;
                eprintln!(
                    "backup: {}% ({} of {} bytes)",
                    tenth * 10,
                    p.bytes_written,
                    p.bytes_expected
                );
            }
        },
    )?;
    if terminal {
        eprintln!();
    }
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn restore(backup: PathBuf) -> CmdResult {
    // No Database is opened here: restore refuses while any connection has the target open,
    // this process's own included.
    let config = ConfigBuilder::from_env()?.metrics_addr(None).build()?;
    let target = config.location().path().ok_or_else(|| {
        Failure::new(
            "DATABASE_URL names an in-memory database; restore needs a database file",
            1,
        )
    })?;
    let report = restore_file(&backup, target)?;
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn check(full: bool) -> CmdResult {
    // The file is checked as an untrusted one (read-only, no memory map, no hook, nothing of
    // its schema runs): `check` is what an operator runs on a file suspected to be damaged,
    // and no Database (no migrations, no journal-mode switch) is opened for it.
    let config = ConfigBuilder::from_env()?.metrics_addr(None).build()?;
    let path = config.location().path().ok_or_else(|| {
        Failure::new(
            "DATABASE_URL names an in-memory database; check needs a database file",
            1,
        )
    })?;
    let depth = if full {
        CheckDepth::Full
    } else {
        CheckDepth::Quick
    };
    let problems = integrity_check_file(path, depth)?;
    let name = if full {
        "integrity_check"
    } else {
        "quick_check"
    };
    if problems.is_empty() {
        println!("{name}: ok");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{name}: {} problem(s)", problems.len());
    for problem in &problems {
        println!("  {problem}");
    }
    Ok(ExitCode::from(2))
}
