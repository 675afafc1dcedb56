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
use super::observe::{health_table, migrate_report, stats_tables};
use crate::config::{AnyConfig, HealthThresholds};
use crate::postgres::{PgDatabase, WRITE_LOCK_KEY};
use crate::{ConfigBuilder, Error, HealthReport};

/// Whether the environment's `DATABASE_URL` is a PostgreSQL URL.
pub(super) fn selected() -> bool {
    std::env::var("DATABASE_URL").is_ok_and(|url| crate::url::is_postgres_url(&url))
}

/// The environment's PostgreSQL configuration, without running migrations at open and
/// without the endpoint of DB_METRICS_ADDR (serve-metrics starts its own), as on SQLite.
fn config() -> Result<crate::PgConfig, Error> {
    Ok(env_config()?.0)
}

/// The configuration as [`config`] returns it, and DB_METRICS_ADDR.
fn env_config() -> Result<(crate::PgConfig, Option<std::net::SocketAddr>), Error> {
    match ConfigBuilder::from_env()?
        .run_migrations(false)
        .build_any()?
    {
        AnyConfig::Postgres(config) => {
            let addr = config.metrics_addr();
            Ok((config.without_metrics_addr(), addr))
        }
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
    let config = config()?;
    let applied_now = migrate_postgres(config.url(), &dir)?;
    let source = FileBasedMigrations::from_path(&dir)
        .map_err(|e| Failure::new(format!("{}: {e}", dir.display()), 1))?;
    let mut conn = PgConnection::establish(config.url()).map_err(|e| {
        Failure::new(
            format!("could not connect to {}: {e}", config.display_url()),
            1,
        )
    })?;
    let applied: Vec<String> = conn
        .applied_migrations()
        .map_err(|e| Failure::new(format!("listing applied migrations: {e}"), 1))?
        .iter()
        .map(ToString::to_string)
        .collect();
    let known = MigrationSource::<Pg>::migrations(&source)
        .map(|m| m.len())
        .unwrap_or_default();
    let out = migrate_report(
        &format!("{} ({known})", dir.display()),
        &applied_now,
        &config.display_url(),
        &applied,
    );
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

/// `stats` on PostgreSQL: the statistics SQLite's `stats` shows (pools, statements,
/// transactions; SQLite's caches, memory and files do not apply) and the standby's lag.
/// As on SQLite the counters are this process's own.
pub(super) fn stats(json: bool) -> CmdResult {
    let db = PgDatabase::open(config()?)?;
    let lag = db.measure_replica_lag();
    let stats = db.connection_stats();
    if json {
        let mut value = serde_json::to_value(&stats).map_err(|e| Failure::new(e, 1))?;
        if let Some(object) = value.as_object_mut() {
            object.insert("engine".into(), "postgres".into());
            object.insert("url".into(), db.config().display_url().into());
            object.insert(
                "read_url".into(),
                db.config()
                    .read_url()
                    .map(crate::url::redact_password)
                    .into(),
            );
            object.insert(
                "replica_lag_seconds".into(),
                lag.as_ref()
                    .ok()
                    .and_then(|lag| lag.map(|lag| lag.as_secs_f64()))
                    .into(),
            );
            object.insert("reads_on_primary".into(), db.reads_on_primary().into());
        }
        let text = serde_json::to_string_pretty(&value).map_err(|e| Failure::new(e, 1))?;
        println!("{text}");
    } else {
        let header = format!(
            "litedal stats for {} (PostgreSQL, instrumented={})\n",
            db.config().display_url(),
            stats.instrumented
        );
        print!("{}", stats_tables(&header, &stats, ""));
        let lag_text = match &lag {
            Ok(Some(lag)) => format!("{:.3} s", lag.as_secs_f64()),
            Ok(None) => "no standby (DATABASE_READ_URL unset)".to_owned(),
            Err(error) => format!("the standby cannot be asked: {error}"),
        };
        println!("replica lag: {lag_text}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `serve-metrics` on PostgreSQL: `GET /metrics` and `GET /health` of a database the command
/// opens, until it is killed.
pub(super) fn serve_metrics(addr: Option<std::net::SocketAddr>) -> CmdResult {
    let (config, env_addr) = env_config()?;
    let Some(addr) = addr.or(env_addr) else {
        return Err(Failure::new(
            "serve-metrics needs an address: pass --addr 127.0.0.1:8081 or set DB_METRICS_ADDR",
            1,
        ));
    };
    let db = PgDatabase::open(config)?;
    let server = db.serve_metrics(addr)?;
    println!(
        "litedal: serving GET /metrics and GET /health on http://{} for {} (Ctrl-C stops)",
        server.local_addr(),
        db.config().display_url()
    );
    // The address line is what scripts wait for.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    server.wait();
    Ok(ExitCode::SUCCESS)
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

/// Runs the PostgreSQL migrations of `dir` on `url` under litedal's write lock; returns the
/// versions applied now.
fn migrate_postgres(url: &str, dir: &std::path::Path) -> Result<Vec<String>, Failure> {
    let source = FileBasedMigrations::from_path(dir).map_err(|e| {
        Failure::new(
            format!(
                "no PostgreSQL migrations at {} ({e}); pass --migrations-dir",
                dir.display()
            ),
            1,
        )
    })?;
    let mut conn = PgConnection::establish(url).map_err(|e| {
        Failure::new(
            format!(
                "could not connect to {}: {e}",
                crate::url::redact_password(url)
            ),
            1,
        )
    })?;
    let lock = |conn: &mut PgConnection, sql: &str| {
        conn.batch_execute(&format!("SELECT {sql}({WRITE_LOCK_KEY})"))
            .map_err(|e| Failure::from(Error::from(e)))
    };
    lock(&mut conn, "pg_advisory_lock")?;
    let applied = conn
        .run_pending_migrations(source)
        .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>());
    lock(&mut conn, "pg_advisory_unlock")?;
    applied.map_err(|e| Failure::new(format!("migration failed: {e}"), 1))
}

/// `copy`: migrates the destination, copies (or with `verify_only` only compares), prints a
/// progress bar on stderr and a summary; exit code 1 when the checks differ.
pub(super) fn copy(
    from: &str,
    to: &str,
    mode: crate::copy::CopyMode,
    verify_only: bool,
    batch_rows: usize,
    migrations_dir: Option<PathBuf>,
    embedded: Option<&'static diesel_migrations::EmbeddedMigrations>,
) -> CmdResult {
    use crate::copy::{CopyOptions, TableCheck};
    let checks: Vec<TableCheck> = if verify_only {
        crate::copy::verify(from, to)?
    } else {
        // The destination's schema comes from its own migrations.
        if crate::url::is_postgres_url(to) {
            let dir = migrations_dir.unwrap_or_else(|| PathBuf::from("migrations_postgres"));
            let applied = migrate_postgres(to, &dir)?;
            eprintln!("destination migrations: {} applied now", applied.len());
        } else {
            let source = super::migrations::find(migrations_dir, embedded)?;
            let db = crate::Database::open(
                ConfigBuilder::default()
                    .database_url(to)
                    .run_migrations(false)
                    .build()?,
            )?;
            let applied = db.run_pending_migrations_from(&source)?;
            eprintln!(
                "destination migrations ({}): {} applied now",
                source.describe(),
                applied.len()
            );
        }
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>16} [{bar:30}] {human_pos}/{human_len} rows, {per_sec}, ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let options = CopyOptions { batch_rows, mode };
        let report = crate::copy::copy(from, to, &options, &mut |p| {
            bar.set_length(p.total);
            bar.set_position(p.rows);
            bar.set_message(p.table.to_owned());
        });
        bar.finish_and_clear();
        let report = report?;
        for (table, rows) in &report.copied {
            println!("copied {rows:>10} rows  {table}");
        }
        for table in &report.skipped {
            println!("skipped (not in the destination)  {table}");
        }
        let rows: u64 = report.copied.iter().map(|(_, n)| n).sum();
        println!(
            "{rows} rows in {:.1} s ({:.0} rows/s)",
            report.elapsed.as_secs_f64(),
            rows as f64 / report.elapsed.as_secs_f64().max(1e-9)
        );
        report.checks
    };
    let mut all_match = true;
    for check in &checks {
        all_match &= check.matches();
        println!(
            "{}  {}: {} rows / {} rows, checksum {:016x} / {:016x}",
            if check.matches() {
                "ok      "
            } else {
                "MISMATCH"
            },
            check.table,
            check.source_rows,
            check.destination_rows,
            check.source_checksum,
            check.destination_checksum
        );
    }
    if all_match {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Failure::new(
            "the destination differs from the source (see MISMATCH above)",
            1,
        ))
    }
}
