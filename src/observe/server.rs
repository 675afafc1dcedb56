//! The `/metrics` + `/health` HTTP endpoint (cargo feature `metrics-server`): one thread,
//! tiny_http, started at open when `DB_METRICS_ADDR` is set.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::health::HealthReport;
use super::metrics::CONTENT_TYPE;
use crate::database::{Database, Service};
use crate::error::{Error, Result};

/// The `/metrics` + `/health` HTTP endpoint: one thread serving `GET /metrics`
/// (Prometheus text) and `GET /health` (the [`HealthReport`](crate::HealthReport) as JSON,
/// HTTP 503 when unhealthy).
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
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl MetricsServer {
    /// Listens on `addr` (port 0 picks a free port; see [`local_addr`](Self::local_addr))
    /// and serves `db`'s metrics and health from a thread of its own.
    ///
    /// # Errors
    ///
    /// [`Error::Metrics`] when the address cannot be bound (in use, not local, no
    /// permission) or the thread cannot be started.
    pub fn start(db: &Database, addr: SocketAddr) -> Result<MetricsServer> {
        let db = db.downgrade();
        MetricsServer::start_with(
            addr,
            Box::new(move || db.upgrade().map(|db| Box::new(db) as Box<dyn Scrape>)),
        )
    }

    /// Listens on `addr` and answers for the database `target` returns, until it returns
    /// `None` (the database is gone): what both engines' endpoints run.
    pub(crate) fn start_with(addr: SocketAddr, target: ScrapeTarget) -> Result<MetricsServer> {
        let server = tiny_http::Server::http(addr).map_err(|error| {
            Error::Metrics(format!(
                "cannot listen on {addr} (DB_METRICS_ADDR): {error}"
            ))
        })?;
        let local = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| Error::Metrics(format!("listening on {addr} gave no IP address")))?;
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("litedal-metrics".to_owned())
            .spawn({
                let (server, stop) = (server.clone(), stop.clone());
                move || serve(&server, &stop, &target)
            })
            .map_err(|error| Error::Metrics(format!("cannot start the metrics thread: {error}")))?;
        tracing::info!(
            addr = %local,
            "Database metrics endpoint listening: GET /metrics, GET /health"
        );
        Ok(MetricsServer {
            addr: local,
            server,
            stop,
            thread: Some(thread),
        })
    }

    /// The address the endpoint listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the endpoint and waits for its thread to end (a request being answered is
    /// finished first).
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
        self.stop.store(true, Ordering::Release);
        self.server.unblock();
        // The last `Database` clone can be dropped by the endpoint's own thread (it holds
        // one while answering); it then ends by itself and must not wait for itself.
        if thread.thread().id() != std::thread::current().id() && thread.join().is_err() {
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

/// A database the endpoint answers for: its metrics and its health.
pub(crate) trait Scrape {
    /// The Prometheus text of the database's metrics.
    fn render_metrics(&self) -> Result<String>;
    /// A fresh health report.
    fn health(&self) -> HealthReport;
}

/// Hands the endpoint its database for one request, or `None` once the database is gone.
pub(crate) type ScrapeTarget = Box<dyn Fn() -> Option<Box<dyn Scrape>> + Send>;

impl Scrape for Database {
    fn render_metrics(&self) -> Result<String> {
        Database::render_metrics(self)
    }

    fn health(&self) -> HealthReport {
        Database::health(self)
    }
}

fn serve(server: &tiny_http::Server, stop: &AtomicBool, target: &ScrapeTarget) {
    loop {
        let request = match server.recv() {
            Ok(request) => request,
            Err(_) if stop.load(Ordering::Acquire) => return,
            Err(error) => {
                tracing::warn!(%error, "Database metrics endpoint: accepting a request failed");
                // Do not spin on a persistent error (e.g. out of file descriptors).
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if stop.load(Ordering::Acquire) {
            reply(
                request,
                503,
                "text/plain; charset=utf-8",
                "shutting down\n".into(),
            );
            return;
        }
        let Some(db) = target() else {
            reply(
                request,
                503,
                "text/plain; charset=utf-8",
                "database closed\n".into(),
            );
            return;
        };
        answer(&*db, request);
    }
}

fn answer(db: &dyn Scrape, request: tiny_http::Request) {
    let path = request.url().split('?').next().unwrap_or_default();
    let get = *request.method() == tiny_http::Method::Get;
    let text = "text/plain; charset=utf-8";
    match (get, path) {
        (true, "/metrics") => match db.render_metrics() {
            Ok(body) => reply(request, 200, CONTENT_TYPE, body),
            Err(error) => {
                tracing::error!(%error, "Database metrics could not be rendered");
                reply(request, 500, text, format!("{error}\n"));
            }
        },
        (true, "/health") => {
            let report = db.health();
            let status = report.status.http_status();
            match serde_json::to_string_pretty(&report) {
                Ok(body) => reply(request, status, "application/json", body),
                Err(error) => reply(request, 500, text, format!("{error}\n")),
            }
        }
        (false, "/metrics" | "/health") => {
            reply(request, 405, text, "method not allowed: use GET\n".into());
        }
        _ => reply(
            request,
            404,
            text,
            "not found: GET /metrics or /health\n".into(),
        ),
    }
}

fn reply(request: tiny_http::Request, status: u16, content_type: &str, body: String) {
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    if let Ok(header) = tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type) {
        response = response.with_header(header);
    }
    if let Err(error) = request.respond(response) {
        tracing::debug!(%error, "Database metrics endpoint: the client went away");
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
