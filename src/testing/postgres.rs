//! Throwaway PostgreSQL servers for tests (features `testing` and `postgres`).
//!
//! [`PgCluster`] runs `initdb` into a temporary directory and starts a primary on a free
//! loopback port; [`PgCluster::start_with_standby`] adds a streaming hot standby made with
//! `pg_basebackup -R`. Both stop, and the directory goes, when the value drops; a cluster
//! whose process died without dropping it (SIGKILL, Ctrl-C on `cargo test`) is stopped and
//! deleted by the next [`PgCluster::start`] on the machine. The server binaries are the
//! installed ones (Debian's `postgresql-15`); nothing is downloaded.
//!
//! The clusters are made for tests: `--auth=trust` on loopback only, the C locale (byte-wise
//! text order, the same as SQLite's `BINARY` collation, so both engines return rows in the
//! same order) and UTF-8.
//!
//! ```no_run
//! use litedal::testing::postgres::PgCluster;
//!
//! // `None` (after one line on stderr) where no server is installed and CI is not set.
//! if let Some(cluster) = PgCluster::start_or_skip("my test")? {
//!     let url = cluster.create_database("app")?;
//!     assert!(url.starts_with("postgres://"));
//! }
//! # Ok::<(), litedal::testing::postgres::PgClusterError>(())
//! ```

use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::Bool;

/// The programs a cluster needs, looked up in this order: `$PG_BINDIR`, `pg_config
/// --bindir`, the newest `/usr/lib/postgresql/<version>/bin`, then `PATH`.
const PROGRAMS: [&str; 4] = ["initdb", "pg_ctl", "pg_basebackup", "postgres"];

/// Why a cluster could not be started or used.
#[derive(Debug)]
pub enum PgClusterError {
    /// The server programs are not installed (or not found); the text says what was looked at.
    Unavailable(String),
    /// A step failed: the command or statement, and what it printed.
    Failed {
        /// What was being done.
        step: String,
        /// The output or error, including the end of the server log where there is one.
        detail: String,
    },
}

impl fmt::Display for PgClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgClusterError::Unavailable(why) => {
                write!(f, "no PostgreSQL server to test against: {why}")
            }
            PgClusterError::Failed { step, detail } => write!(f, "{step} failed: {detail}"),
        }
    }
}

impl std::error::Error for PgClusterError {}

fn failed(step: impl Into<String>, detail: impl fmt::Display) -> PgClusterError {
    PgClusterError::Failed {
        step: step.into(),
        detail: detail.to_string(),
    }
}

/// One server of a cluster: its data directory and port.
#[derive(Debug)]
struct Server {
    data: PathBuf,
    port: u16,
    running: bool,
}

/// A primary, and optionally a hot standby, in a temporary directory; stopped and deleted on
/// drop.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    /// `Some("postgres")` when running as root: the server refuses root, so its commands run
    /// through `runuser`.
    run_as: Option<String>,
    dir: tempfile::TempDir,
    primary: Server,
    standby: Option<Server>,
}

impl PgCluster {
    /// Whether the server programs can be found, without starting anything.
    ///
    /// # Errors
    ///
    /// [`PgClusterError::Unavailable`] saying what was looked at.
    pub fn available() -> Result<(), PgClusterError> {
        find_bindir().map(|_| ())
    }

    /// Initializes and starts a primary.
    ///
    /// # Errors
    ///
    /// [`PgClusterError::Unavailable`] when the programs are missing, `Failed` otherwise.
    pub fn start() -> Result<PgCluster, PgClusterError> {
        let bin = find_bindir()?;
        let run_as = server_user()?;
        stop_abandoned(&bin, run_as.as_deref());
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| failed("creating a temporary directory", e))?;
        // Who owns the cluster: a later start stops it if this process dies without `Drop`.
        std::fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())
            .map_err(|e| failed("writing the cluster's owner file", e))?;
        if let Some(user) = &run_as {
            give_to(dir.path(), user)?;
        }
        let mut cluster = PgCluster {
            bin,
            run_as,
            primary: Server {
                data: dir.path().join("primary"),
                port: free_port()?,
                running: false,
            },
            dir,
            standby: None,
        };
        let data = cluster.primary.data.clone();
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "--encoding=UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        cluster.start_server(false)?;
        Ok(cluster)
    }

    /// A primary and a streaming hot standby of it (`pg_basebackup -R -X stream`).
    ///
    /// # Errors
    ///
    /// As [`PgCluster::start`].
    pub fn start_with_standby() -> Result<PgCluster, PgClusterError> {
        let mut cluster = PgCluster::start()?;
        let standby = Server {
            data: cluster.dir.path().join("standby"),
            port: free_port()?,
            running: false,
        };
        let socket_dir = cluster.dir.path().to_path_buf();
        let port = cluster.primary.port.to_string();
        cluster.run(
            "pg_basebackup",
            &[
                "-h".as_ref(),
                socket_dir.as_os_str(),
                "-p".as_ref(),
                port.as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-D".as_ref(),
                standby.data.as_os_str(),
                "-R".as_ref(),
                "-X".as_ref(),
                "stream".as_ref(),
                "-c".as_ref(),
                "fast".as_ref(),
            ],
        )?;
        cluster.standby = Some(standby);
        cluster.start_server(true)?;
        Ok(cluster)
    }

    /// [`PgCluster::start`] (or [`PgCluster::start_with_standby`]) for a test named `test`:
    /// `Ok(None)` where no server is installed and the `CI` variable is unset, after one line
    /// on stderr that says the test did not run. Under CI a missing server is an error.
    ///
    /// # Errors
    ///
    /// Any failure to start, and a missing server under CI.
    pub fn start_or_skip(test: &str) -> Result<Option<PgCluster>, PgClusterError> {
        PgCluster::start_or_skip_with(test, false)
    }

    /// As [`PgCluster::start_or_skip`], with a standby.
    ///
    /// # Errors
    ///
    /// As [`PgCluster::start_or_skip`].
    pub fn start_with_standby_or_skip(test: &str) -> Result<Option<PgCluster>, PgClusterError> {
        PgCluster::start_or_skip_with(test, true)
    }

    fn start_or_skip_with(test: &str, standby: bool) -> Result<Option<PgCluster>, PgClusterError> {
        let started = if standby {
            PgCluster::start_with_standby()
        } else {
            PgCluster::start()
        };
        match started {
            Ok(cluster) => Ok(Some(cluster)),
            Err(PgClusterError::Unavailable(why)) if std::env::var_os("CI").is_none() => {
                eprintln!("litedal: SKIPPED {test}: no PostgreSQL server to test against ({why})");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `postgres://` URL of database `postgres` on the primary.
    pub fn primary_url(&self) -> String {
        url(self.primary.port, "postgres")
    }

    /// `postgres://` URL of database `postgres` on the standby, if there is one.
    pub fn standby_url(&self) -> Option<String> {
        self.standby.as_ref().map(|s| url(s.port, "postgres"))
    }

    /// The URL of `database` on the primary (for a database made by
    /// [`PgCluster::create_database`]).
    pub fn primary_url_of(&self, database: &str) -> String {
        url(self.primary.port, database)
    }

    /// The URL of `database` on the standby, if there is one.
    pub fn standby_url_of(&self, database: &str) -> Option<String> {
        self.standby.as_ref().map(|s| url(s.port, database))
    }

    /// The port of the primary.
    pub fn primary_port(&self) -> u16 {
        self.primary.port
    }

    /// The primary's data directory (for a test that edits `postgresql.conf` or adds
    /// certificates; call [`PgCluster::restart_primary`] afterwards).
    pub fn primary_data_dir(&self) -> &Path {
        &self.primary.data
    }

    /// Creates an empty database on the primary and returns its URL. Tests sharing one
    /// cluster each take their own database. `name` must be a plain identifier
    /// (`[a-z0-9_]`, not starting with a digit).
    ///
    /// # Errors
    ///
    /// `Failed` for a bad name or a failed `CREATE DATABASE`.
    pub fn create_database(&self, name: &str) -> Result<String, PgClusterError> {
        let plain = !name.is_empty()
            && name.len() <= 63
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            return Err(failed(
                format!("creating database {name:?}"),
                "accepted: 1-63 of a-z, 0-9 and _, not starting with a digit",
            ));
        }
        let mut conn = connect(&self.primary_url())?;
        // Quoted: a plain name may still be a reserved word (`any`, `user`).
        conn.batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .map_err(|e| failed(format!("CREATE DATABASE {name}"), e))?;
        Ok(self.primary_url_of(name))
    }

    /// Waits until the standby has replayed everything the primary had written when called.
    ///
    /// # Errors
    ///
    /// `Failed` without a standby, or when `timeout` passes first.
    pub fn wait_for_replay(&self, timeout: Duration) -> Result<(), PgClusterError> {
        let standby_url = self
            .standby_url()
            .ok_or_else(|| failed("waiting for replay", "the cluster has no standby"))?;
        #[derive(QueryableByName)]
        struct Lsn {
            #[diesel(sql_type = diesel::sql_types::Text)]
            lsn: String,
        }
        let target = diesel::sql_query("SELECT pg_current_wal_lsn()::text AS lsn")
            .get_result::<Lsn>(&mut connect(&self.primary_url())?)
            .map_err(|e| failed("reading the primary's WAL position", e))?
            .lsn;
        #[derive(QueryableByName)]
        struct Caught {
            #[diesel(sql_type = Bool)]
            caught_up: bool,
        }
        let mut standby = connect(&standby_url)?;
        let deadline = Instant::now() + timeout;
        loop {
            let caught = diesel::sql_query(
                "SELECT coalesce(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), $1::pg_lsn) >= 0, \
                 false) AS caught_up",
            )
            .bind::<diesel::sql_types::Text, _>(&target)
            .get_result::<Caught>(&mut standby)
            .map_err(|e| failed("reading the standby's replay position", e))?;
            if caught.caught_up {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(failed(
                    "waiting for replay",
                    format!("the standby did not reach {target} within {timeout:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Pauses WAL replay on the standby (`pg_wal_replay_pause()`): it keeps receiving but
    /// stops applying, so it falls behind.
    ///
    /// # Errors
    ///
    /// `Failed` without a standby or when the statement fails.
    pub fn pause_replay(&self) -> Result<(), PgClusterError> {
        self.on_standby("SELECT pg_wal_replay_pause()")
    }

    /// Resumes WAL replay on the standby.
    ///
    /// # Errors
    ///
    /// As [`PgCluster::pause_replay`].
    pub fn resume_replay(&self) -> Result<(), PgClusterError> {
        self.on_standby("SELECT pg_wal_replay_resume()")
    }

    /// Stops the standby (fast shutdown); [`PgCluster::start_standby`] brings it back on the
    /// same port.
    ///
    /// # Errors
    ///
    /// `Failed` without a standby or when `pg_ctl stop` fails.
    pub fn stop_standby(&mut self) -> Result<(), PgClusterError> {
        self.stop_server(true, "fast")
    }

    /// Starts the standby again after [`PgCluster::stop_standby`].
    ///
    /// # Errors
    ///
    /// `Failed` without a standby or when `pg_ctl start` fails.
    pub fn start_standby(&mut self) -> Result<(), PgClusterError> {
        self.start_server(true)
    }

    /// Restarts the primary, for configuration that needs it (ssl, ...).
    ///
    /// # Errors
    ///
    /// `Failed` when `pg_ctl` fails.
    pub fn restart_primary(&mut self) -> Result<(), PgClusterError> {
        self.stop_server(false, "fast")?;
        self.start_server(false)
    }

    /// Turns TLS on for the primary with `cert_pem` and `key_pem` (PEM text) and restarts
    /// it. Plain connections keep working; clients choose with `sslmode`.
    ///
    /// # Errors
    ///
    /// `Failed` when the files cannot be written or the server does not come back.
    pub fn enable_ssl(&mut self, cert_pem: &str, key_pem: &str) -> Result<(), PgClusterError> {
        let data = self.primary.data.clone();
        let write = |name: &str, text: &str| -> Result<(), PgClusterError> {
            let path = data.join(name);
            std::fs::write(&path, text)
                .and_then(|()| {
                    use std::os::unix::fs::PermissionsExt;
                    // The server refuses a key that others can read.
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                })
                .map_err(|e| failed(format!("writing {}", path.display()), e))?;
            if let Some(user) = &self.run_as {
                give_to(&path, user)?;
            }
            Ok(())
        };
        write("server.crt", cert_pem)?;
        write("server.key", key_pem)?;
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)
            .map_err(|e| failed(format!("reading {}", conf.display()), e))?;
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text)
            .map_err(|e| failed(format!("writing {}", conf.display()), e))?;
        self.restart_primary()
    }

    fn on_standby(&self, sql: &str) -> Result<(), PgClusterError> {
        let standby_url = self
            .standby_url()
            .ok_or_else(|| failed(sql, "the cluster has no standby"))?;
        connect(&standby_url)?
            .batch_execute(sql)
            .map_err(|e| failed(sql, e))
    }

    fn server(&mut self, standby: bool) -> Result<&mut Server, PgClusterError> {
        if standby {
            self.standby
                .as_mut()
                .ok_or_else(|| failed("starting the standby", "the cluster has no standby"))
        } else {
            Ok(&mut self.primary)
        }
    }

    fn start_server(&mut self, standby: bool) -> Result<(), PgClusterError> {
        let socket_dir = self.dir.path().display().to_string();
        let server = self.server(standby)?;
        if server.running {
            return Ok(());
        }
        let (data, port) = (server.data.clone(), server.port);
        let log = data.with_extension("log");
        // Loopback only, the socket in the cluster's own directory, room for several pools.
        let options = format!(
            "-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c max_connections=300"
        );
        let result = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "start".as_ref(),
            ],
        );
        if let Err(PgClusterError::Failed { step, detail }) = result {
            let tail = std::fs::read_to_string(&log)
                .map(|text| text.lines().rev().take(15).collect::<Vec<_>>().join("\n"))
                .unwrap_or_default();
            return Err(failed(
                step,
                format!("{detail}\nserver log (last lines, newest first):\n{tail}"),
            ));
        }
        result?;
        self.server(standby)?.running = true;
        Ok(())
    }

    fn stop_server(&mut self, standby: bool, mode: &str) -> Result<(), PgClusterError> {
        let server = self.server(standby)?;
        if !server.running {
            return Ok(());
        }
        let data = server.data.clone();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                mode.as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        )?;
        self.server(standby)?.running = false;
        Ok(())
    }

    /// Runs a server program, as the `postgres` user when we are root.
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<Output, PgClusterError> {
        let path = self.bin.join(program);
        let mut command = server_command(&path, self.run_as.as_deref());
        command.args(args).current_dir(self.dir.path());
        let output = command
            .output()
            .map_err(|e| failed(format!("running {}", path.display()), e))?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(failed(
                format!("{program} {}", render_args(args)),
                format!(
                    "{}: {}{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr),
                    String::from_utf8_lossy(&output.stdout)
                ),
            ))
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Immediate: the data goes with the directory, nothing needs a clean shutdown.
        let servers = if self.standby.is_some() {
            &[true, false][..]
        } else {
            &[false][..]
        };
        for &standby in servers {
            if let Err(e) = self.stop_server(standby, "immediate") {
                eprintln!("litedal: stopping a test PostgreSQL server: {e}");
            }
        }
    }
}

/// A server program, run as `run_as` (through `runuser`) when given: the server refuses root.
fn server_command(program: &Path, run_as: Option<&str>) -> Command {
    match run_as {
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// The prefix of a cluster's temporary directory.
const DIR_PREFIX: &str = "litedal-pg-";

/// The file in a cluster's directory that holds the owning process's id.
const OWNER_FILE: &str = "owner.pid";

/// Whether process `pid` exists (signal 0 checks without sending anything).
fn process_exists(pid: libc::pid_t) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists and may be signalled.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Stops and deletes the clusters of test processes that died without running `Drop` (a
/// SIGKILL, or Ctrl-C on `cargo test`), so their servers do not run on for ever. A cluster
/// whose owner is alive, or whose owner is unknown, is left alone.
fn stop_abandoned(bin: &Path, run_as: Option<&str>) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let owner = std::fs::read_to_string(dir.join(OWNER_FILE))
            .ok()
            .and_then(|pid| pid.trim().parse::<libc::pid_t>().ok());
        let Some(owner) = owner else {
            continue;
        };
        if owner <= 0 || process_exists(owner) {
            continue;
        }
        for server in ["standby", "primary"] {
            let data = dir.join(server);
            if !data.join("postmaster.pid").exists() {
                continue;
            }
            let stopped = server_command(&bin.join("pg_ctl"), run_as)
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
            eprintln!(
                "litedal: stopping a test PostgreSQL server left by process {owner}, which ended \
                 without stopping it ({}): {}",
                data.display(),
                match stopped {
                    Ok(out) if out.status.success() => "stopped".to_owned(),
                    Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                }
            );
        }
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("litedal: removing {}: {e}", dir.display());
        }
    }
}

fn render_args(args: &[&std::ffi::OsStr]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

fn url(port: u16, database: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{database}")
}

fn connect(url: &str) -> Result<PgConnection, PgClusterError> {
    PgConnection::establish(url).map_err(|e| failed(format!("connecting to {url}"), e))
}

/// A port nobody listens on now (the kernel's choice for port 0).
fn free_port() -> Result<u16, PgClusterError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| failed("finding a free loopback port", e))
}

fn find_bindir() -> Result<PathBuf, PgClusterError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        candidates.push(dir.into());
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            candidates.push(String::from_utf8_lossy(&out.stdout).trim().into());
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                Some((version, e.path().join("bin")))
            })
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev().map(|(_, p)| p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    let found = candidates
        .iter()
        .find(|dir| PROGRAMS.iter().all(|p| dir.join(p).is_file()));
    found.cloned().ok_or_else(|| {
        PgClusterError::Unavailable(format!(
            "no directory holds all of {} (looked at $PG_BINDIR, pg_config --bindir, \
             /usr/lib/postgresql/*/bin and PATH; install postgresql-15)",
            PROGRAMS.join(", ")
        ))
    })
}

/// `Some("postgres")` when running as root (the server refuses to run as root).
fn server_user() -> Result<Option<String>, PgClusterError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        return Ok(None);
    }
    if user_ids("postgres").is_none() {
        return Err(PgClusterError::Unavailable(
            "running as root and there is no `postgres` user to run the server as".to_owned(),
        ));
    }
    Ok(Some("postgres".to_owned()))
}

/// uid and gid of `user` from /etc/passwd.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != user {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

fn give_to(dir: &Path, user: &str) -> Result<(), PgClusterError> {
    let (uid, gid) = user_ids(user)
        .ok_or_else(|| failed(format!("looking up user {user}"), "not in /etc/passwd"))?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .map_err(|e| failed(format!("giving {} to {user}", dir.display()), e))
}
