//! The `/metrics` + `/health` HTTP endpoint (cargo feature `metrics-server`), started at open
//! when `DB_METRICS_ADDR` is set: a small HTTP/1.x server on std's sockets, `GET` only, one
//! request per connection, built to stay up on an address hostile clients can reach:
//!
//! - at most [`MAX_CONNECTIONS`] connections at a time, each on a short-lived thread; past
//!   that, the connection that has waited longest for its request to arrive is closed to
//!   make room (a slowloris client never holds a slot a real scrape needs), and when every
//!   slot is answering, the newcomer gets a 503 at once;
//! - the request head must arrive within [`REQUEST_DEADLINE`] and [`MAX_HEAD_BYTES`], the
//!   response must be taken within [`WRITE_TIMEOUT`];
//! - `/health` runs its write probe at most once per [`HEALTH_CACHE`]: requests that arrive
//!   while a probe runs wait for it, later ones within the window get the cached report;
//! - with `DB_METRICS_TOKEN` (or `DB_METRICS_TOKEN_FILE`) every request needs
//!   `Authorization: Bearer TOKEN` (compared in constant time), else 401;
//! - an address off loopback is logged at WARN.
//!
//! Why a server of its own and not a crate: tiny_http (the endpoint's first server) has none of
//! these limits (a thread per connection without bound, no timeouts), and hyper/axum would put
//! tokio into every build with the endpoint, the CLI's included, for two GET paths. The
//! parsing here is only a request line and headers, bounded in bytes and time.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::health::HealthReport;
use super::metrics::CONTENT_TYPE;
use crate::config::MetricsToken;
use crate::database::{Database, Service};
use crate::error::{Error, Result};

/// Connections served at once (each has a thread while it lives).
pub(crate) const MAX_CONNECTIONS: usize = 32;
/// How long a client has to send its whole request head.
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// How long a client may take to accept each part of the response.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head read (request line and headers).
pub(crate) const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long a health report is served again before the next probe.
pub(crate) const HEALTH_CACHE: Duration = Duration::from_secs(1);
/// Stack of a connection thread: answering needs little.
const CONNECTION_STACK: usize = 256 * 1024;

/// The `/metrics` + `/health` HTTP endpoint: `GET /metrics` (Prometheus text) and
/// `GET /health` (the [`HealthReport`](crate::HealthReport) as JSON, HTTP 503 when
/// unhealthy).
///
/// Built for an address hostile clients can reach: at most 32 connections at a time (past
/// that, the one waiting longest for its request is closed to make room, or the newcomer
/// gets a 503 when all are being answered), 5 s for the request head, 10 s per write of the
/// response, the health probe run at most once a second (concurrent requests share it),
/// `Authorization: Bearer` required when `DB_METRICS_TOKEN` is set (else 401), and a WARN
/// when the address is not loopback.
///
/// [`Database::open`] starts one when `DB_METRICS_ADDR` is set and stops it when the
/// last clone of the database is dropped (or on
/// [`Database::shutdown_metrics_server`]). Started by hand with
/// [`MetricsServer::start`], it runs until this handle is dropped or
/// [`shut down`](MetricsServer::shutdown); it does not keep the database open, and
/// answers 503 once the database is gone.
///
/// ```
/// use std::io::{Read, Write};
///
/// let test_db = litedal::example::test_db()?;
/// let server = litedal::MetricsServer::start(test_db.db(), "127.0.0.1:0".parse().unwrap())?;
/// let mut stream = std::net::TcpStream::connect(server.local_addr()).unwrap();
/// stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
/// let mut response = String::new();
/// stream.read_to_string(&mut response).unwrap();
/// assert!(response.starts_with("HTTP/1.0 200"));
/// server.shutdown();
/// # Ok::<(), litedal::Error>(())
/// ```
pub struct MetricsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .field("running", &self.thread.is_some())
            .field("token", &self.shared.token.is_some())
            .finish()
    }
}

/// What the accepting thread and the connection threads share.
struct Shared {
    stop: AtomicBool,
    /// Where the accepting thread listens (to wake it when stopping).
    wake: SocketAddr,
    target: ScrapeTarget,
    token: Option<MetricsToken>,
    /// The live connections by age; `Some(stream)` while the request head is still being
    /// read (such a connection can be closed to make room).
    live: Mutex<BTreeMap<u64, Option<TcpStream>>>,
    next_id: AtomicU64,
    health: HealthCache,
}

impl MetricsServer {
    /// Listens on `addr` (port 0 picks a free port; see [`local_addr`](Self::local_addr))
    /// and serves `db`'s metrics and health, requiring the bearer token of `db`'s
    /// configuration (`DB_METRICS_TOKEN`) when it has one.
    ///
    /// # Errors
    ///
    /// [`Error::Metrics`] when the address cannot be bound (in use, not local, no
    /// permission) or the thread cannot be started.
    pub fn start(db: &Database, addr: SocketAddr) -> Result<MetricsServer> {
        let token = db.config().metrics_token().cloned();
        let db = db.downgrade();
        MetricsServer::serve(
            addr,
            Box::new(move || db.upgrade().map(|db| Box::new(db) as Box<dyn Scrape>)),
            token,
        )
    }

    /// Listens on `addr` and answers for the database `target` returns, until it returns
    /// `None` (the database is gone), requiring `token` when there is one: what PostgreSQL's
    /// endpoint runs.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn start_with(
        addr: SocketAddr,
        target: ScrapeTarget,
        token: Option<MetricsToken>,
    ) -> Result<MetricsServer> {
        MetricsServer::serve(addr, target, token)
    }

    fn serve(
        addr: SocketAddr,
        target: ScrapeTarget,
        token: Option<MetricsToken>,
    ) -> Result<MetricsServer> {
        let listener = TcpListener::bind(addr).map_err(|error| {
            Error::Metrics(format!(
                "cannot listen on {addr} (DB_METRICS_ADDR): {error}"
            ))
        })?;
        let local = listener.local_addr().map_err(|error| {
            Error::Metrics(format!("listening on {addr} gave no address: {error}"))
        })?;
        let wake = match local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), local.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), local.port())
            }
            _ => local,
        };
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            wake,
            target,
            token,
            live: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            health: HealthCache::default(),
        });
        let thread = std::thread::Builder::new()
            .name("litedal-metrics".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept_loop(&listener, &shared)
            })
            .map_err(|error| Error::Metrics(format!("cannot start the metrics thread: {error}")))?;
        if local.ip().is_loopback() {
            tracing::info!(
                addr = %local,
                token = shared.token.is_some(),
                "Database metrics endpoint listening: GET /metrics, GET /health"
            );
        } else {
            tracing::warn!(
                addr = %local,
                token = shared.token.is_some(),
                "Database metrics endpoint listening off loopback: whoever reaches this address \
                 reads the metrics and runs the health probe{}",
                if shared.token.is_some() {
                    " with the bearer token"
                } else {
                    "; set DB_METRICS_TOKEN, or bind 127.0.0.1 behind a proxy"
                }
            );
        }
        Ok(MetricsServer {
            addr: local,
            shared,
            thread: Some(thread),
        })
    }

    /// The address the endpoint listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the endpoint and waits for its accepting thread to end; a request being
    /// answered is finished on its own thread, and requests still arriving are closed.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    /// Blocks until the endpoint stops: after [`Database::shutdown_metrics_server`] or
    /// once the database is gone and a request arrives. The CLI's `serve-metrics` waits
    /// here until it is killed.
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("Database metrics endpoint thread panicked");
            }
        }
    }

    fn stop_and_join(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.stop();
        if thread.join().is_err() {
            tracing::error!("Database metrics endpoint thread panicked");
        }
        tracing::info!(addr = %self.addr, "Database metrics endpoint stopped");
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl Shared {
    /// Makes the accepting thread return, and closes the connections still being read.
    fn stop(&self) {
        if self.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        for stream in self.live.lock().values().flatten() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // The accepting thread blocks in accept(): a connection of our own wakes it.
        if let Err(error) = TcpStream::connect_timeout(&self.wake, Duration::from_secs(1)) {
            tracing::warn!(%error, addr = %self.wake, "Database metrics endpoint: waking the accepting thread failed");
        }
    }
}

/// A database the endpoint answers for: its metrics and its health.
pub(crate) trait Scrape {
    /// The Prometheus text of the database's metrics.
    fn render_metrics(&self) -> Result<String>;
    /// A fresh health report.
    fn health(&self) -> HealthReport;
}

/// Hands the endpoint its database for one request, or `None` once the database is gone.
pub(crate) type ScrapeTarget = Box<dyn Fn() -> Option<Box<dyn Scrape>> + Send + Sync>;

impl Scrape for Database {
    fn render_metrics(&self) -> Result<String> {
        Database::render_metrics(self)
    }

    fn health(&self) -> HealthReport {
        Database::health(self)
    }
}

/// The last health report and when its probe finished; probes run one at a time.
#[derive(Default)]
struct HealthCache {
    last: Mutex<Option<(Instant, HealthReport)>>,
    /// Probes finished so far: a request that arrived before the latest one finished takes
    /// its report, however long that probe waited for the write lock.
    probes: AtomicU64,
}

impl HealthCache {
    fn report(&self, db: &dyn Scrape) -> HealthReport {
        let arrived = self.probes.load(Ordering::Acquire);
        // Waits here while another request's probe runs.
        let mut last = self.last.lock();
        if let Some((at, report)) = &*last {
            if self.probes.load(Ordering::Acquire) != arrived || at.elapsed() < HEALTH_CACHE {
                return report.clone();
            }
        }
        let report = db.health();
        *last = Some((Instant::now(), report.clone()));
        self.probes.fetch_add(1, Ordering::AcqRel);
        report
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "Database metrics endpoint: accepting a connection failed");
                // Do not spin on a persistent error (e.g. out of file descriptors).
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        admit(shared, stream);
    }
}

/// Gives `stream` a slot and a thread, making room by closing the connection that has waited
/// longest for its request, or answers 503 when every slot is busy answering.
fn admit(shared: &Arc<Shared>, stream: TcpStream) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    {
        let mut live = shared.live.lock();
        if live.len() >= MAX_CONNECTIONS {
            let oldest_reading = live
                .iter()
                .find_map(|(id, reading)| reading.as_ref().map(|_| *id));
            match oldest_reading {
                Some(old) => {
                    if let Some(Some(old_stream)) = live.remove(&old) {
                        let _ = old_stream.shutdown(Shutdown::Both);
                    }
                    tracing::debug!(
                        "Database metrics endpoint: closed the slowest connection to make room"
                    );
                }
                None => {
                    drop(live);
                    refuse(stream);
                    return;
                }
            }
        }
        let Ok(reading) = stream.try_clone() else {
            return;
        };
        live.insert(id, Some(reading));
    }
    let spawned = std::thread::Builder::new()
        .name("litedal-metrics-conn".to_owned())
        .stack_size(CONNECTION_STACK)
        .spawn({
            let shared = Arc::clone(shared);
            move || {
                connection(&shared, id, stream);
                shared.live.lock().remove(&id);
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "Database metrics endpoint: cannot start a connection thread");
        if let Some(Some(stream)) = shared.live.lock().remove(&id) {
            refuse(stream);
        }
    }
}

/// 503 for a connection there is no slot for, without waiting on the client.
fn refuse(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let body = "too many connections; retry\n";
    let _ = write!(
        stream,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A request head as far as the endpoint reads it.
struct Head {
    method: String,
    path: String,
    http10: bool,
    authorization: Option<String>,
}

/// Reads the request head within [`REQUEST_DEADLINE`] and [`MAX_HEAD_BYTES`]; `Err` holds the
/// status to answer (`None`: the client is gone, answer nothing).
fn read_head(stream: &mut TcpStream) -> std::result::Result<Head, Option<u16>> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(end) = find_end(&buf) {
            break end;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(Some(431));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(Some(408));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Some(408));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(None),
        }
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| Some(400))?;
    let mut lines = text.lines();
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version), None) = (
        request_line.next(),
        request_line.next(),
        request_line.next(),
        request_line.next(),
    ) else {
        return Err(Some(400));
    };
    let http10 = match version {
        "HTTP/1.0" => true,
        "HTTP/1.1" => false,
        _ => return Err(Some(400)),
    };
    let authorization = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.trim().to_owned());
    Ok(Head {
        method: method.to_owned(),
        path: target.split('?').next().unwrap_or_default().to_owned(),
        http10,
        authorization,
    })
}

/// Where the head ends (the blank line), in CRLF or bare LF form.
fn find_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether `authorization` carries `token` as a bearer token, compared in time that does not
/// depend on where the first difference is.
fn authorized(token: &MetricsToken, authorization: Option<&str>) -> bool {
    let Some((scheme, given)) = authorization.and_then(|v| v.split_once(' ')) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let (given, expected) = (given.trim().as_bytes(), token.0.as_bytes());
    let differs = given.len() ^ expected.len();
    // Always walks the expected token, whatever the given length.
    let diff = expected.iter().enumerate().fold(0u8, |acc, (i, b)| {
        acc | (b ^ given.get(i).copied().unwrap_or(!b))
    });
    differs == 0 && diff == 0
}

fn connection(shared: &Shared, id: u64, mut stream: TcpStream) {
    let head = match read_head(&mut stream) {
        Ok(head) => head,
        Err(Some(status)) => {
            let text = match status {
                408 => "the request did not arrive in time\n",
                431 => "request head too large\n",
                _ => "bad request: GET /metrics or /health\n",
            };
            respond(
                &mut stream,
                false,
                status,
                "text/plain; charset=utf-8",
                text,
                false,
            );
            return;
        }
        Err(None) => return,
    };
    // Answering now: no longer a connection to close to make room.
    match shared.live.lock().get_mut(&id) {
        Some(reading) => *reading = None,
        // Closed to make room (or stopping) while its head arrived.
        None => return,
    }
    let text = "text/plain; charset=utf-8";
    if let Some(token) = &shared.token {
        if !authorized(token, head.authorization.as_deref()) {
            respond(
                &mut stream,
                head.http10,
                401,
                text,
                "a bearer token is required\n",
                true,
            );
            return;
        }
    }
    let get = head.method == "GET";
    if !get || !matches!(head.path.as_str(), "/metrics" | "/health") {
        let (status, body) = match head.path.as_str() {
            "/metrics" | "/health" => (405, "method not allowed: use GET\n"),
            _ => (404, "not found: GET /metrics or /health\n"),
        };
        respond(&mut stream, head.http10, status, text, body, false);
        return;
    }
    let Some(db) = (shared.target)() else {
        respond(
            &mut stream,
            head.http10,
            503,
            text,
            "database closed\n",
            false,
        );
        shared.stop();
        return;
    };
    if shared.stop.load(Ordering::Acquire) {
        respond(
            &mut stream,
            head.http10,
            503,
            text,
            "shutting down\n",
            false,
        );
        return;
    }
    match head.path.as_str() {
        "/metrics" => match db.render_metrics() {
            Ok(body) => respond(&mut stream, head.http10, 200, CONTENT_TYPE, &body, false),
            Err(error) => {
                tracing::error!(%error, "Database metrics could not be rendered");
                respond(
                    &mut stream,
                    head.http10,
                    500,
                    text,
                    &format!("{error}\n"),
                    false,
                );
            }
        },
        _ => {
            let report = shared.health.report(&*db);
            let status = report.status.http_status();
            match serde_json::to_string_pretty(&report) {
                Ok(body) => respond(
                    &mut stream,
                    head.http10,
                    status,
                    "application/json",
                    &body,
                    false,
                ),
                Err(error) => respond(
                    &mut stream,
                    head.http10,
                    500,
                    text,
                    &format!("{error}\n"),
                    false,
                ),
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn respond(
    stream: &mut TcpStream,
    http10: bool,
    status: u16,
    content_type: &str,
    body: &str,
    challenge: bool,
) {
    let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let challenge = if challenge {
        "WWW-Authenticate: Bearer realm=\"litedal\"\r\n"
    } else {
        ""
    };
    let head = format!(
        "{version} {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {challenge}Connection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    let sent = stream
        .set_write_timeout(Some(WRITE_TIMEOUT))
        .and_then(|()| stream.write_all(head.as_bytes()))
        .and_then(|()| stream.write_all(body.as_bytes()))
        .and_then(|()| stream.flush());
    match sent {
        Ok(()) => {
            let _ = stream.shutdown(Shutdown::Write);
        }
        Err(error) => tracing::debug!(%error, "Database metrics endpoint: the client went away"),
    }
}

/// The endpoint [`Database::open`] started, as the database keeps it.
#[derive(Default)]
pub(crate) struct MetricsEndpoint(Mutex<Option<MetricsServer>>);

/// Starts the endpoint on `addr` for `db` and hands it to the database, which stops it when
/// its last clone is dropped.
///
/// # Errors
///
/// As [`MetricsServer::start`].
pub(crate) fn start(db: &Database, addr: SocketAddr) -> Result<()> {
    let endpoint = Arc::new(MetricsEndpoint(Mutex::new(Some(MetricsServer::start(
        db, addr,
    )?))));
    db.add_extension(Arc::clone(&endpoint));
    db.add_service(Box::new(StopEndpoint(endpoint)));
    Ok(())
}

/// Stops the endpoint when the database closes.
struct StopEndpoint(Arc<MetricsEndpoint>);

impl Service for StopEndpoint {
    fn stop(&mut self) {
        if let Some(server) = self.0.0.lock().take() {
            server.shutdown();
        }
    }
}

impl Database {
    /// The address the `/metrics` + `/health` endpoint listens on, when `DB_METRICS_ADDR` is
    /// set and the endpoint is running (with port 0 in the setting, the port picked).
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        let endpoint = self.extension::<MetricsEndpoint>()?;
        endpoint.0.lock().as_ref().map(MetricsServer::local_addr)
    }

    /// Stops the `/metrics` + `/health` endpoint started by [`Database::open`] and waits for
    /// its thread to end; returns false when none was running. Dropping the last clone of the
    /// `Database` does the same.
    pub fn shutdown_metrics_server(&self) -> bool {
        let server = self
            .extension::<MetricsEndpoint>()
            .and_then(|endpoint| endpoint.0.lock().take());
        match server {
            Some(server) => {
                server.shutdown();
                true
            }
            None => false,
        }
    }
}
