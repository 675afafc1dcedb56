//! The operator CLI (cargo feature `cli`): the `litedal` binary is [`run`]`(None)`. It reads
//! the same environment as the library (`DATABASE_URL`, `DB_*`; `litedal --help` lists them)
//! and works on the database that names.
//!
//! An application can ship the same commands in a binary of its own, with its embedded
//! migrations, so that `migrate` needs no migrations directory on the server:
//!
//! ```no_run
//! use diesel_migrations::{EmbeddedMigrations, embed_migrations};
//!
//! const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");
//!
//! fn main() -> std::process::ExitCode {
//!     litedal::cli::run(Some(&MIGRATIONS))
//! }
//! ```
//!
//! One file per group of commands: `observe.rs` has migrate, stats, health and
//! serve-metrics; `upkeep.rs` has checkpoint, backup, restore and check; `migrations.rs`
//! finds the migrations `migrate` runs.

mod common;
mod migrations;
mod observe;
#[cfg(feature = "postgres")]
mod postgres;
mod upkeep;

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use diesel_migrations::EmbeddedMigrations;

/// Operate a litedal database: migrations, statistics, health checks, metrics, and for SQLite
/// checkpoints, backups, restores and integrity checks; with the `postgres` feature the same
/// commands on a postgres:// DATABASE_URL, and `copy` between the engines.
///
/// Only `migrate` changes the schema: the other commands open the database without running
/// migrations and refuse to create a database that does not exist.
#[derive(Debug, Parser)]
#[command(name = "litedal", version, after_help = env_help())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pending migrations, then list the applied ones. The migrations are, in this
    /// order: the directory given with --migrations-dir, the ones built into this binary,
    /// the `[migrations_directory] dir` of the nearest diesel.toml (searched from the current
    /// directory upwards, as the diesel CLI does), or ./migrations.
    Migrate {
        /// A directory of diesel migrations (`<version>_<name>/up.sql`, `down.sql`).
        #[arg(long)]
        migrations_dir: Option<PathBuf>,
    },
    /// Show pool, statement, transaction and file statistics.
    ///
    /// The counters cover this process only (the CLI's own work); an application's live
    /// counters are on its /metrics endpoint (DB_METRICS_ADDR).
    Stats {
        /// Print JSON for scripts instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Run the health checks. Exit code: 0 healthy, 1 degraded, 2 unhealthy.
    Health {
        /// Print JSON for scripts instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Serve GET /metrics (Prometheus text) and GET /health (JSON) until killed.
    ServeMetrics {
        /// Address to listen on, e.g. 127.0.0.1:8081 [default: DB_METRICS_ADDR].
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
    /// Checkpoint the WAL into the database file. Exit code 3 when readers kept it from
    /// finishing (PASSIVE never waits; the others wait at most half the busy timeout).
    Checkpoint {
        /// passive, full, restart or truncate.
        #[arg(long, default_value = "passive")]
        mode: String,
    },
    /// Take a consistent online backup (VACUUM INTO), checked and renamed into place, 0600.
    Backup {
        /// Destination file; refused if it exists unless --overwrite.
        path: PathBuf,
        /// Replace an existing file at PATH.
        #[arg(long)]
        overwrite: bool,
    },
    /// Replace the database with a verified backup. Refused while any process has the
    /// database open: stop the application first.
    Restore {
        /// The backup file.
        path: PathBuf,
    },
    /// Copy every table two databases share, SQLite to PostgreSQL or back (feature
    /// `postgres`): the destination's migrations run first, tables in foreign-key order,
    /// rows in primary-key order in batches, the source never modified; ends by comparing
    /// row counts and checksums. A copy that was killed continues with --resume.
    #[cfg(feature = "postgres")]
    Copy(CopyArgs),
    /// Check the database for corruption (quick_check; --full runs integrity_check).
    /// Exit code 2 when problems were found.
    Check {
        /// Run the full integrity_check (also verifies index contents; slower).
        #[arg(long)]
        full: bool,
    },
}

/// The arguments of `copy`. A URL with a password on the command line can be read by every
/// user of the machine (`ps`, `/proc/<pid>/cmdline`): give it in an environment variable
/// (`--from-env`, `--to-env`) or a file (`--from-file`, `--to-file`) instead.
#[cfg(feature = "postgres")]
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["from", "from_env", "from_file"])))]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["to", "to_env", "to_file"])))]
struct CopyArgs {
    /// The source's URL (sqlite://..., a path, or postgres://...). Visible to every user in
    /// the process list: a URL with a password belongs in --from-env or --from-file.
    #[arg(long)]
    from: Option<String>,
    /// The name of an environment variable holding the source's URL.
    #[arg(long, value_name = "VAR")]
    from_env: Option<String>,
    /// A file holding the source's URL (trimmed; warned about when others can read it).
    #[arg(long, value_name = "PATH")]
    from_file: Option<PathBuf>,
    /// The destination's URL. As --from: a password belongs in --to-env or --to-file.
    #[arg(long)]
    to: Option<String>,
    /// The name of an environment variable holding the destination's URL.
    #[arg(long, value_name = "VAR")]
    to_env: Option<String>,
    /// A file holding the destination's URL.
    #[arg(long, value_name = "PATH")]
    to_file: Option<PathBuf>,
    /// Add to a destination that has rows (by default a non-empty table is refused).
    #[arg(long, conflicts_with = "resume")]
    append: bool,
    /// Continue an interrupted copy: each table starts after the largest key the
    /// destination has.
    #[arg(long)]
    resume: bool,
    /// Only compare row counts and checksums; copy nothing.
    #[arg(long)]
    verify: bool,
    /// Rows per batch (one destination transaction each).
    #[arg(long, default_value_t = 10_000)]
    batch_rows: usize,
    /// The destination's migrations [default: migrations_postgres for PostgreSQL; for
    /// SQLite as `migrate` finds them].
    #[arg(long)]
    migrations_dir: Option<PathBuf>,
}

/// The environment section of `--help`, from the library's own list.
fn env_help() -> String {
    let width = crate::config::ENV_VARS
        .iter()
        .map(|(name, _, _)| name.len())
        .max()
        .unwrap_or(0);
    let mut help = String::from("Environment (read exactly as the library reads it):\n");
    for (name, default, meaning) in crate::config::ENV_VARS {
        let _ = writeln!(help, "  {name:<width$}  {meaning} [default: {default}]");
    }
    let _ = writeln!(
        help,
        "  {:<width$}  log filter for stderr, e.g. debug or litedal=info [default: warn; serve-metrics: info]",
        "RUST_LOG"
    );
    help
}

/// Sets up logging the way litedal's CLI and examples do: to stderr, filtered by `RUST_LOG`
/// (else `default_filter`, e.g. `"warn"` or `"litedal=info"`), in colour only when stderr is
/// a terminal and `NO_COLOR` is unset or empty, and as JSON lines for log shippers with
/// `DB_LOG_FORMAT=json`. Every litedal event says "Database", so `grep Database` finds them.
/// An application that installs its own subscriber does not call this (and if it already
/// installed one, this leaves it in place).
///
/// # Errors
///
/// [`Error::Config`](crate::Error::Config) naming `DB_LOG_FORMAT` when it is neither `text`
/// nor `json`.
pub fn init_logging(default_filter: &str) -> crate::Result<()> {
    let json = match std::env::var("DB_LOG_FORMAT") {
        Err(_) => false,
        Ok(value) => match value.trim().to_ascii_lowercase().as_str() {
            "" | "text" => false,
            "json" => true,
            _ => {
                return Err(crate::Error::Config {
                    var: "DB_LOG_FORMAT",
                    value,
                    reason: "accepted: text or json".to_owned(),
                });
            }
        },
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init`: a subscriber installed before this one stays.
    let _ = if json {
        builder.json().try_init()
    } else {
        let colour = std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
        builder.with_ansi(colour).try_init()
    };
    Ok(())
}

/// Runs the CLI on the process's arguments and environment and returns its exit code:
/// 0 on success, 1 on an error (2 for `health` unhealthy or `check` problems, 3 for a
/// checkpoint readers kept from finishing). `migrations` are the application's embedded
/// migrations, which `migrate` runs when no `--migrations-dir` is given; `litedal`'s own
/// binary passes `None`.
pub fn run(migrations: Option<&'static EmbeddedMigrations>) -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = init_logging(match cli.command {
        Command::ServeMetrics { .. } => "info",
        _ => "warn",
    }) {
        eprintln!("litedal: error: {}", error.report());
        return ExitCode::from(1);
    }
    #[cfg(feature = "postgres")]
    if postgres::selected() {
        let result = match cli.command {
            Command::Migrate { migrations_dir } => postgres::migrate(migrations_dir),
            Command::Health { json } => postgres::health(json),
            Command::Stats { json } => postgres::stats(json),
            Command::ServeMetrics { addr } => postgres::serve_metrics(addr),
            Command::Checkpoint { .. } => postgres::sqlite_only("checkpoint"),
            Command::Backup { .. } => postgres::sqlite_only("backup"),
            Command::Restore { .. } => postgres::sqlite_only("restore"),
            Command::Check { .. } => postgres::sqlite_only("check"),
            Command::Copy(args) => copy(args, migrations),
        };
        return exit(result);
    }
    let result = match cli.command {
        Command::Migrate { migrations_dir } => observe::migrate(migrations_dir, migrations),
        Command::Stats { json } => observe::stats(json),
        Command::Health { json } => observe::health(json),
        Command::ServeMetrics { addr } => observe::serve_metrics(addr),
        Command::Checkpoint { mode } => upkeep::checkpoint(&mode),
        Command::Backup { path, overwrite } => upkeep::backup(path, overwrite),
        Command::Restore { path } => upkeep::restore(path),
        Command::Check { full } => upkeep::check(full),
        #[cfg(feature = "postgres")]
        Command::Copy(args) => copy(args, migrations),
    };
    exit(result)
}

/// `copy`: the same on either `DATABASE_URL` (it names both databases itself).
#[cfg(feature = "postgres")]
fn copy(args: CopyArgs, migrations: Option<&'static EmbeddedMigrations>) -> common::CmdResult {
    let mode = match (args.append, args.resume) {
        (true, _) => crate::copy::CopyMode::Append,
        (_, true) => crate::copy::CopyMode::Resume,
        _ => crate::copy::CopyMode::Fresh,
    };
    let from = copy_url("--from", args.from, args.from_env, args.from_file)?;
    let to = copy_url("--to", args.to, args.to_env, args.to_file)?;
    let (from, to) = (
        crate::config::secure_copy_url("--from", &from)?,
        crate::config::secure_copy_url("--to", &to)?,
    );
    postgres::copy(
        &from,
        &to,
        mode,
        args.verify,
        args.batch_rows,
        args.migrations_dir,
        migrations,
    )
}

/// A URL of `copy` from its argument, the environment variable it names, or the file it
/// names. A password given as the argument itself is warned about (the process list shows it).
#[cfg(feature = "postgres")]
fn copy_url(
    flag: &'static str,
    url: Option<String>,
    env: Option<String>,
    file: Option<PathBuf>,
) -> Result<String, common::Failure> {
    if let Some(url) = url {
        if crate::url::redact_password(&url) != url {
            tracing::warn!(
                argument = flag,
                "Database URL with a password on the command line: every user of the machine \
                 can read it in the process list; use {flag}-env or {flag}-file"
            );
        }
        return Ok(url);
    }
    if let Some(var) = env {
        return match std::env::var(&var) {
            Ok(url) if !url.trim().is_empty() => Ok(url.trim().to_owned()),
            _ => Err(common::Failure::new(
                format!("{flag}-env {var}: the variable is not set, is empty or is not UTF-8"),
                2,
            )),
        };
    }
    match file {
        Some(path) => Ok(crate::config::read_secret_file(
            if flag == "--from" {
                "--from-file"
            } else {
                "--to-file"
            },
            &path,
        )?),
        None => Err(common::Failure::new(
            format!("{flag}, {flag}-env or {flag}-file is required"),
            2,
        )),
    }
}

fn exit(result: common::CmdResult) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("litedal: error: {}", failure.error);
            ExitCode::from(failure.exit_code)
        }
    }
}
