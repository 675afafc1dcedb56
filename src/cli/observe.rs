//! The observability commands: migrate, stats, health, serve-metrics.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use super::common::{CmdResult, Failure, open};
use crate::{
    ConfigBuilder, ConnectionStats, Database, HealthCheck, HealthReport, HealthThresholds,
    Measured, MetricsServer, PoolStats, Threshold,
};

pub(super) fn migrate(
    dir: Option<std::path::PathBuf>,
    embedded: Option<&'static diesel_migrations::EmbeddedMigrations>,
) -> CmdResult {
    let source = super::migrations::find(dir, embedded)?;
    let db = open(true)?;
    let applied_now = db.run_pending_migrations_from(&source)?;
    let applied = db.applied_migrations_from(&source)?;
    let out = migrate_report(
        &source.describe(),
        &applied_now,
        &db.location().to_url(),
        &applied,
    );
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// What `migrate` prints on either engine: the source, the migrations applied now, and every
/// applied one in `database`.
pub(super) fn migrate_report(
    source: &str,
    applied_now: &[String],
    database: &str,
    applied: &[String],
) -> String {
    let mut out = format!("migrations: {source}\n");
    if applied_now.is_empty() {
        out.push_str("no pending migrations\n");
    } else {
        out.push_str(&format!(
            "applied {} pending migration(s):\n",
            applied_now.len()
        ));
        for name in applied_now {
            out.push_str(&format!("  {name}\n"));
        }
    }
    out.push_str(&format!(
        "applied migrations in {database} ({}):\n",
        applied.len()
    ));
    for name in applied {
        out.push_str(&format!("  {name}\n"));
    }
    out
}

pub(super) fn stats(json: bool) -> CmdResult {
    let db = open(false)?;
    let stats = db.connection_stats();
    if json {
        let text = serde_json::to_string_pretty(&stats).map_err(|e| Failure::new(e, 1))?;
        println!("{text}");
    } else {
        let header = format!(
            "litedal stats for {} (journal_mode={}, instrumented={})\n",
            db.config().location().to_url(),
            db.journal_mode(),
            stats.instrumented
        );
        let path = db
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        print!("{}", stats_tables(&header, &stats, &path));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn health(json: bool) -> CmdResult {
    // A database that cannot be opened is an unhealthy report (exit code 2), in the same
    // shape as any other: a monitor parsing the JSON always gets one.
    let (db, report) = match open(false) {
        Ok(db) => {
            let report = db.health();
            (Some(db), report)
        }
        Err(error) => {
            let thresholds = ConfigBuilder::from_env()
                .and_then(ConfigBuilder::build)
                .map(|config| config.health_thresholds().clone())
                .unwrap_or_else(|_| HealthThresholds::defaults(64 << 20, Duration::from_secs(30)));
            (None, HealthReport::unavailable(&error, &thresholds))
        }
    };
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| Failure::new(e, 2))?;
        println!("{text}");
    } else {
        print!("{}", health_table(db.as_ref(), &report));
    }
    let code = u8::try_from(report.status.exit_code()).unwrap_or(2);
    Ok(ExitCode::from(code))
}

pub(super) fn serve_metrics(addr: Option<SocketAddr>) -> CmdResult {
    let from_env = ConfigBuilder::from_env()?.build()?.metrics_addr();
    let Some(addr) = addr.or(from_env) else {
        return Err(Failure::new(
            "serve-metrics needs an address: pass --addr 127.0.0.1:8081 or set DB_METRICS_ADDR",
            1,
        ));
    };
    let db = open(false)?;
    let server = MetricsServer::start(&db, addr)?;
    println!(
        "litedal: serving GET /metrics and GET /health on http://{} for {} (Ctrl-C stops)",
        server.local_addr(),
        db.config().location().to_url()
    );
    // The address line is what scripts wait for.
    let _ = std::io::stdout().flush();
    server.wait();
    Ok(ExitCode::SUCCESS)
}

/// Columns: the first left-aligned, the others right-aligned.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    aligned_table(headers, rows, &[])
}

/// Columns right-aligned except the first and those listed in `left`.
fn aligned_table(headers: &[&str], rows: &[Vec<String>], left: &[usize]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == 0 {
                out.push_str(&format!("{cell:<w$}"));
            } else if left.contains(&i) {
                out.push_str(&format!("  {cell:<w$}"));
            } else {
                out.push_str(&format!("  {cell:>w$}"));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn opt(n: Option<u64>) -> String {
    n.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// The tables of `litedal stats` under `header`, for either engine: SQLite's page caches,
/// memory and files (at `path`) only where the statistics have them.
pub(super) fn stats_tables(header: &str, stats: &ConnectionStats, path: &str) -> String {
    let mut out = format!(
        "{header}counters cover this process only; an application's live counters are on its /metrics\n\n"
    );
    let pools: Vec<&PoolStats> = stats.pools.iter().chain([&stats.total]).collect();
    let rows: Vec<Vec<String>> = pools
        .iter()
        .map(|p| {
            vec![
                p.pool.to_string(),
                p.max_size.to_string(),
                p.open.to_string(),
                p.idle.to_string(),
                p.active.to_string(),
                format!("{:.1}", p.pool_utilization),
                p.checkouts.to_string(),
                ms(p.checkout_wait_total),
                ms(p.checkout_wait_max),
                p.checkout_timeouts.to_string(),
                p.connections_opened.to_string(),
                p.connections_closed.to_string(),
                ms(p.held_total),
                ms(p.held_max),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "pool",
            "size",
            "open",
            "idle",
            "active",
            "util %",
            "checkouts",
            "wait total",
            "wait max",
            "timeouts",
            "opened",
            "closed",
            "held total",
            "held max",
        ],
        &rows,
    ));
    out.push('\n');
    let rows: Vec<Vec<String>> = pools
        .iter()
        .map(|p| {
            let q = &p.queries;
            vec![
                p.pool.to_string(),
                q.queries.to_string(),
                q.errors.to_string(),
                q.busy_errors.to_string(),
                q.slow_queries.to_string(),
                ms(q.duration_total),
                ms(q.duration_max),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "queries",
            "count",
            "errors",
            "busy",
            "slow",
            "time total",
            "time max",
        ],
        &rows,
    ));
    out.push('\n');
    let rows: Vec<Vec<String>> = pools
        .iter()
        .filter_map(|p| {
            let c = p.cache.as_ref()?;
            Some(vec![
                p.pool.to_string(),
                c.hits.to_string(),
                c.misses.to_string(),
                c.hit_ratio
                    .map_or_else(|| "-".to_owned(), |r| format!("{:.1}", r * 100.0)),
                c.writes.to_string(),
                c.spills.to_string(),
                c.used_bytes.to_string(),
            ])
        })
        .collect();
    if !rows.is_empty() {
        out.push_str(&table(
            &[
                "page cache",
                "hits",
                "misses",
                "hit %",
                "writes",
                "spills",
                "bytes used",
            ],
            &rows,
        ));
    }
    if let Some(memory) = &stats.memory {
        out.push_str(&format!(
            "SQLite memory in this process: {} bytes (high-water mark {} bytes)\n\n",
            memory.used_bytes, memory.high_water_bytes
        ));
    }
    let t = &stats.transactions;
    out.push_str(&table(
        &["transactions", "committed", "rolled back"],
        &[
            vec![
                "read".to_owned(),
                t.read.committed.to_string(),
                t.read.rolled_back.to_string(),
            ],
            vec![
                "write".to_owned(),
                t.write.committed.to_string(),
                t.write.rolled_back.to_string(),
            ],
        ],
    ));
    out.push('\n');
    match &stats.files {
        Some(f) => out.push_str(&table(
            &[
                "files",
                "database bytes",
                "wal bytes",
                "page size",
                "pages",
                "free pages",
            ],
            &[vec![
                path.to_owned(),
                f.database_bytes.to_string(),
                f.wal_bytes.to_string(),
                opt(f.page_size),
                opt(f.page_count),
                opt(f.freelist_count),
            ]],
        )),
        None if stats.memory.is_some() => out.push_str("files: none (in-memory database)\n"),
        None => {}
    }
    out
}

/// A number with at most three decimals, without trailing zeros.
fn trimmed(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// A check's value (or limit) in its unit, for people.
fn human(value: f64, unit: &str) -> String {
    const KIB: f64 = 1024.0;
    match unit {
        "seconds" => format!("{} ms", trimmed(value * 1e3)),
        "percent" => format!("{} %", trimmed(value)),
        "bytes" if value >= KIB * KIB => format!("{} MiB", trimmed(value / (KIB * KIB))),
        "bytes" if value >= KIB => format!("{} KiB", trimmed(value / KIB)),
        "bytes" => format!("{value} B"),
        _ => trimmed(value),
    }
}

fn threshold_text(check: &HealthCheck) -> String {
    match &check.threshold {
        Threshold::Expected { expected } => format!("expected {expected}"),
        Threshold::Limits(limits) => {
            let show = |level: &str, v: Option<f64>| match v {
                Some(v) => format!("{level} >= {}", human(v, check.unit)),
                None => format!("{level} off"),
            };
            format!(
                "{}, {}",
                show("degraded", limits.degraded_at),
                show("unhealthy", limits.unhealthy_at)
            )
        }
    }
}

pub(super) fn health_table(db: Option<&Database>, report: &HealthReport) -> String {
    let name = db.map_or_else(
        || {
            std::env::var("DATABASE_URL")
                .map(|url| crate::url::redact_password(&url))
                .unwrap_or_else(|_| "the database of DATABASE_URL".to_owned())
        },
        |db| db.location().to_url(),
    );
    let mut out = format!(
        "litedal health of {}: {} (checked {})\n\n",
        name,
        report.status,
        report.checked_at.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let rows: Vec<Vec<String>> = report
        .checks
        .iter()
        .map(|c| {
            vec![
                c.name.to_owned(),
                c.status.to_string(),
                match &c.value {
                    Some(Measured::Number(n)) => human(*n, c.unit),
                    Some(Measured::Text(t)) => t.clone(),
                    None => "failed".to_owned(),
                },
                threshold_text(c),
                c.detail.clone(),
            ]
        })
        .collect();
    out.push_str(&aligned_table(
        &["check", "status", "value", "threshold", "detail"],
        &rows,
        &[1, 3, 4],
    ));
    out
}
