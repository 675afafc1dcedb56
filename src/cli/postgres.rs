//! The commands on a PostgreSQL `DATABASE_URL` (features `cli` and `postgres`): `migrate` and
//! `health` work as on SQLite; the SQLite upkeep commands name the PostgreSQL tool to use.

use std::path::PathBuf;
use std::process::ExitCode;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::pg::{Pg, PgConnection};
use diesel_migrations::{FileBasedMigrations, MigrationHarness};

use super::common::{CmdResult, Failure};
use super::observe::health_table;
use crate::config::{AnyConfig, HealthThresholds};
use crate::postgres::{PgDatabase, WRITE_LOCK_KEY};
use crate::{ConfigBuilder, Error, HealthReport};

/// Whether the environment's `DATABASE_URL` is a PostgreSQL URL.
pub(super) fn selected() -> bool {
    std::env::var("DATABASE_URL").is_ok_and(|url| crate::url::is_postgres_url(&url))
}

fn config() -> Result<crate::PgConfig, Error> {
    match ConfigBuilder::from_env()?
        .run_migrations(false)
        .build_any()?
    {
        AnyConfig::Postgres(config) => Ok(config),
        AnyConfig::Sqlite(_) => Err(Error::config(
            "DATABASE_URL",
            "",
            "expected a postgres:// or postgresql:// URL",
        )),
    }
}

/// `migrate`: the directory given, else `./migrations_postgres` (the PostgreSQL set beside
/// diesel's `migrations/`), run under litedal's write lock as at open.
pub(super) fn migrate(dir: Option<PathBuf>) -> CmdResult {
    let dir = dir.unwrap_or_else(|| PathBuf::from("migrations_postgres"));
    let source = FileBasedMigrations::from_path(&dir).map_err(|e| {
        Failure::new(
            format!(
                "no PostgreSQL migrations at {} ({e}); pass --migrations-dir",
                dir.display()
            ),
            1,
        )
    })?;
    let config = config()?;
    let mut conn = PgConnection::establish(config.url()).map_err(|e| {
        Failure::new(
            format!("could not connect to {}: {e}", config.display_url()),
            1,
        )
    })?;
    let lock = |conn: &mut PgConnection, sql: &str| {
        conn.batch_execute(&format!("SELECT {sql}({WRITE_LOCK_KEY})"))
            .map_err(|e| Failure::from(Error::from(e)))
    };
    lock(&mut conn, "pg_advisory_lock")?;
    let applied_now = conn
        .run_pending_migrations(source.clone())
        .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>());
    lock(&mut conn, "pg_advisory_unlock")?;
    let applied_now = applied_now.map_err(|e| Failure::new(format!("migration failed: {e}"), 1))?;
    let applied: Vec<String> = conn
        .applied_migrations()
        .map_err(|e| Failure::new(format!("listing applied migrations: {e}"), 1))?
        .iter()
        .map(ToString::to_string)
        .collect();
    let known = MigrationSource::<Pg>::migrations(&source)
        .map(|m| m.len())
        .unwrap_or_default();
    let mut out = format!("migrations: {} ({known})\n", dir.display());
    if applied_now.is_empty() {
        out.push_str("no pending migrations\n");
    } else {
        out.push_str(&format!(
            "applied {} pending migration(s):\n",
            applied_now.len()
        ));
        for version in &applied_now {
            out.push_str(&format!("  {version}\n"));
        }
    }
    out.push_str(&format!(
        "applied migrations in {} ({}):\n",
        config.display_url(),
        applied.len()
    ));
    for version in &applied {
        out.push_str(&format!("  {version}\n"));
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `health` on PostgreSQL; an unreachable server is an unhealthy report, exit code 2.
pub(super) fn health(json: bool) -> CmdResult {
    let report = match config().and_then(PgDatabase::open) {
        Ok(db) => db.health(),
        Err(error) => HealthReport::unavailable(
            &error,
            &HealthThresholds::defaults(64 << 20, std::time::Duration::from_secs(30)),
        ),
    };
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| Failure::new(e, 2))?;
        println!("{text}");
    } else {
        print!("{}", health_table(None, &report));
    }
    Ok(ExitCode::from(
        u8::try_from(report.status.exit_code()).unwrap_or(2),
    ))
}

/// A command that is SQLite's: what to use on PostgreSQL instead.
pub(super) fn sqlite_only(command: &str) -> CmdResult {
    let instead = match command {
        "checkpoint" => {
            "PostgreSQL checkpoints by itself (checkpoint_timeout, max_wal_size); run CHECKPOINT \
             in psql to force one"
        }
        "backup" => "use pg_dump (logical) or pg_basebackup (physical) against the server",
        "restore" => "use pg_restore or psql with a pg_dump file, or a pg_basebackup copy",
        "check" => "use pg_amcheck (the amcheck extension) to check tables and indexes",
        _ => "it applies to SQLite files only",
    };
    Err(Failure::new(
        format!(
            "`litedal {command}` is for SQLite databases; DATABASE_URL is PostgreSQL: {instead}"
        ),
        1,
    ))
}

/// A command not built for PostgreSQL yet (see docs/postgres.md).
pub(super) fn not_yet(command: &str) -> CmdResult {
    Err(Failure::new(
        format!(
            "`litedal {command}` does not support PostgreSQL yet (docs/postgres.md lists what is \
             left); `litedal health` works"
        ),
        1,
    ))
}
