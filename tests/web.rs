//! The async API (feature `tokio`) and the axum example (`examples/web.rs`) over real HTTP on
//! loopback.
//!
//! No assertion here is about timings (the machine is shared and noisy): "no runtime worker is
//! blocked" is checked by ordering, on a runtime with one thread, and every wait is bounded
//! by a generous hang guard that turns a hang into a clear failure.

#[path = "../examples/web.rs"]
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use litedal::example::models::NewUser;
use litedal::example::repo::Users;
use litedal::testing::TestDb;
use litedal::{Database, Error, Role};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;
use tracing_subscriber::registry::LookupSpan;

/// How long any one test may take before it is reported as hung.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// A busy timeout long enough that a writer waiting for a lock a test holds does not give up.
const PATIENT: Duration = Duration::from_secs(30);

/// One HTTP response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The JSON body, after checking the status.
    fn expect(&self, status: u16, what: &str) -> Value {
        assert_eq!(self.status, status, "{what}: {}", self.text());
        self.json()
    }
}

/// A minimal HTTP/1.1 client: one request per connection (`Connection: close`), the response
/// read to the end of the stream.
async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    call_raw(addr, request.as_bytes()).await
}

async fn call_raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream.write_all(request).await.expect("sending a request");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .expect("reading a response");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Serves the example's router on an ephemeral loopback port, on the current runtime.
async fn serve(db: Database) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, web::router(db))
            .await
            .expect("serving");
    });
    addr
}

/// Runs `test` on `runtime` under the hang guard.
fn run<F: Future<Output = ()>>(runtime: &tokio::runtime::Runtime, what: &str, test: F) {
    runtime.block_on(async {
        if tokio::time::timeout(HANG_GUARD, test).await.is_err() {
            panic!("{what}: still not done after {HANG_GUARD:?} (hung)");
        }
    });
}

/// Waits until `done` holds; fails naming `what` after half the hang guard (a hang, not a
/// slow machine).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let wait = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    if tokio::time::timeout(HANG_GUARD / 2, wait).await.is_err() {
        panic!("still waiting, after {:?}, for {what}", HANG_GUARD / 2);
    }
}

fn active(db: &Database, role: Role) -> u32 {
    db.connection_stats().pool_for(role).active
}

/// A plain connection that holds SQLite's write lock (`BEGIN IMMEDIATE`) on the test database
/// until [`release`](Locker::release): litedal's writers must wait for it.
struct Locker(SqliteConnection);

impl Locker {
    fn hold(test_db: &TestDb) -> Locker {
        let path = test_db.path().to_str().expect("a UTF-8 path");
        let mut conn = SqliteConnection::establish(path).expect("opening a second connection");
        conn.batch_execute("PRAGMA busy_timeout = 30000; BEGIN IMMEDIATE")
            .expect("taking the write lock");
        Locker(conn)
    }

    fn release(mut self) {
        self.0
            .batch_execute("ROLLBACK")
            .expect("releasing the lock");
    }
}

fn patient_db() -> TestDb {
    litedal::example::test_db_with(|b| b.busy_timeout(PATIENT)).expect("test database")
}

fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

const CLIENTS: usize = 8;
const POSTS_PER_CLIENT: usize = 40;
const PAGE: usize = 7;

/// One client: a user, its posts (reading back the newest after every fifth), then every page
/// of its posts. Returns the number of requests it made.
async fn client(addr: SocketAddr, n: usize) -> usize {
    let mut requests = 0;
    let email = format!("client{n}@example.com");
    let user = call(
        addr,
        "POST",
        "/users",
        Some(&json!({ "name": format!("Client {n}"), "email": email })),
    )
    .await
    .expect(201, "creating a user");
    requests += 1;
    let id = user["id"].as_i64().expect("a user id");
    let read = call(addr, "GET", &format!("/users/{id}"), None)
        .await
        .expect(200, "reading the user back");
    requests += 1;
    assert_eq!(read["email"], json!(email));

    let mut created = Vec::with_capacity(POSTS_PER_CLIENT);
    for i in 0..POSTS_PER_CLIENT {
        let body = json!({ "title": format!("Post {i} of client {n}"), "body": "text" });
        let post = call(addr, "POST", &format!("/users/{id}/posts"), Some(&body))
            .await
            .expect(201, "creating a post");
        requests += 1;
        let post_id = post["id"].as_i64().expect("a post id");
        assert_eq!(post["user_id"], json!(id));
        created.push(post_id);
        if i % 5 == 4 {
            // An acknowledged write is visible to the next read at once.
            let newest = call(addr, "GET", &format!("/users/{id}/posts?limit=1"), None)
                .await
                .expect(200, "reading the newest post");
            requests += 1;
            assert_eq!(newest["items"][0]["id"], json!(post_id), "{newest}");
        }
    }

    // Every page, by the next token, until `next` is null: exactly the posts created, newest
    // first (one client creates its posts one after the other).
    let mut seen = Vec::new();
    let mut stamps = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(token) => format!("/users/{id}/posts?limit={PAGE}&cursor={token}"),
            None => format!("/users/{id}/posts?limit={PAGE}"),
        };
        let page = call(addr, "GET", &path, None)
            .await
            .expect(200, "reading a page");
        requests += 1;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= PAGE, "{page}");
        for item in items {
            seen.push(item["id"].as_i64().expect("a post id"));
            stamps.push(item["created_at"].as_str().expect("a timestamp").to_owned());
        }
        match &page["next"] {
            Value::Null => break,
            Value::String(token) => cursor = Some(token.clone()),
            other => panic!("next is {other}"),
        }
        assert!(seen.len() <= POSTS_PER_CLIENT, "more pages than posts");
    }
    let mut expected = created.clone();
    expected.reverse();
    assert_eq!(
        seen, expected,
        "client {n}: the pages hold exactly its posts, newest first"
    );
    assert!(
        stamps.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {stamps:?}"
    );
    requests
}

#[test]
fn concurrent_clients_read_every_acknowledged_write() {
    let test_db = litedal::example::test_db().expect("test database");
    let db = test_db.db().clone();
    let runtime = multi_thread(2);
    run(&runtime, "concurrent clients", async {
        let addr = serve(db.clone()).await;
        let started = Instant::now();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|n| tokio::spawn(client(addr, n)))
            .collect();
        let mut requests = 0;
        for client in clients {
            requests += client.await.expect("a client failed");
        }
        let elapsed = started.elapsed();

        let health = call(addr, "GET", "/health", None).await;
        assert_eq!(health.status, 200, "{}", health.text());
        let report = health.json();
        assert!(
            matches!(report["status"].as_str(), Some("healthy" | "degraded")),
            "{report}"
        );
        let metrics = call(addr, "GET", "/metrics", None).await;
        assert_eq!(metrics.status, 200);
        assert!(
            metrics
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
            "{:?}",
            metrics.headers
        );
        assert!(metrics.text().contains("litedal_"), "{}", metrics.text());

        let stats = db.connection_stats();
        assert_eq!(stats.total.queries.busy_errors, 0, "{stats:#?}");
        assert_eq!(stats.total.checkout_timeouts, 0, "{stats:#?}");
        assert_eq!(
            Users::count(&db).expect("counting users"),
            i64::try_from(CLIENTS).unwrap()
        );
        eprintln!(
            "web: {CLIENTS} clients, {requests} requests over HTTP in {:.2} s, \
             {} commits, busy errors: {}",
            elapsed.as_secs_f64(),
            stats.transactions.write.committed,
            stats.total.queries.busy_errors
        );
    });
}

/// With one runtime thread, a request whose write waits for the write lock must not keep the
/// runtime from serving another request (and the test itself) meanwhile. Were the closure run
/// on the runtime thread, nothing else would run until the lock is released, which only this
/// test does, after the other request is done: the write would time out as busy (503) first,
/// and the order checks below fail.
#[test]
fn a_write_waiting_for_the_lock_does_not_block_the_runtime() {
    let test_db = patient_db();
    let db = test_db.db().clone();
    let existing = Users::insert(&db, &NewUser::new("Existing", "existing@example.com"))
        .expect("a user")
        .id;
    let runtime = current_thread();
    run(&runtime, "a write waiting for the lock", async {
        let addr = serve(db.clone()).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let locker = Locker::hold(&test_db);

        let write = tokio::spawn({
            let order = Arc::clone(&order);
            async move {
                let body = json!({ "name": "Waiting", "email": "waiting@example.com" });
                let reply = call(addr, "POST", "/users", Some(&body)).await;
                order.lock().unwrap().push("write");
                reply
            }
        });
        // The write's transaction has its connection: it now waits for the lock.
        until("the write to check out its connection", || {
            active(&db, Role::Write) >= 1 || write.is_finished()
        })
        .await;
        assert!(
            !write.is_finished(),
            "the write finished while the lock was held (timed out as busy?): its closure \
             blocked the runtime thread"
        );

        // Meanwhile, the same runtime thread serves a read over HTTP and runs other tasks.
        let user = call(addr, "GET", &format!("/users/{existing}"), None)
            .await
            .expect(200, "a read while a write waits");
        assert_eq!(user["name"], json!("Existing"));
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
            let _ = tx.send(());
        });
        rx.await.expect("the other task finished");
        order.lock().unwrap().push("others");
        assert!(
            !write.is_finished(),
            "the write finished while the lock was held (timed out as busy?): its closure \
             blocked the runtime thread"
        );

        locker.release();
        let reply = write.await.expect("the write task");
        reply.expect(201, "the write after the lock was released");
        assert_eq!(*order.lock().unwrap(), ["others", "write"]);
    });
}

/// Polls `future` once (it starts its blocking task), then returns it still pending.
async fn poll_once<F: Future>(mut future: Pin<Box<F>>) -> Pin<Box<F>> {
    std::future::poll_fn(|cx| {
        assert!(
            future.as_mut().poll(cx).is_pending(),
            "finished at the first poll"
        );
        Poll::Ready(())
    })
    .await;
    future
}

#[test]
fn a_dropped_future_runs_nothing_and_releases_its_connection() {
    let test_db = patient_db();
    let db = test_db.db().clone();
    let runtime = multi_thread(2);
    run(&runtime, "a dropped future", async {
        let ran = Arc::new(AtomicBool::new(false));
        let witness = Arc::new(());
        let insert = |ran: &Arc<AtomicBool>, witness: &Arc<()>, email: &'static str| {
            let (ran, witness) = (Arc::clone(ran), Arc::clone(witness));
            move |conn: &mut SqliteConnection| {
                let _witness = witness;
                ran.store(true, Ordering::SeqCst);
                Users::insert(conn, &NewUser::new("Never", email))
            }
        };

        // Dropped before it was ever polled: nothing was started.
        drop(db.transaction_async(insert(&ran, &witness, "never0@example.com")));
        assert_eq!(Arc::strong_count(&witness), 1);

        // Dropped while its blocking task waits for the write lock.
        let locker = Locker::hold(&test_db);
        let future = Box::pin(db.transaction_async(insert(&ran, &witness, "never1@example.com")));
        let future = poll_once(future).await;
        until("the write to check out its connection", || {
            active(&db, Role::Write) >= 1
        })
        .await;
        drop(future);
        locker.release();
        // The blocking task ends (dropping the closure unrun), and returns its connection.
        until(
            "the dropped write's task to end and return its connection",
            || Arc::strong_count(&witness) == 1 && active(&db, Role::Write) == 0,
        )
        .await;
        assert!(
            !ran.load(Ordering::SeqCst),
            "the closure of a dropped future ran"
        );
        for email in ["never0@example.com", "never1@example.com"] {
            assert_eq!(Users::find_by_email(&db, email).expect("a lookup"), None);
        }

        // `read_async` never polled: nothing started either.
        let read_ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&read_ran);
        drop(db.read_async(move |_| {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        }));
        assert!(!read_ran.load(Ordering::SeqCst));

        // The database is fine afterwards.
        let user = db
            .transaction_async(|conn| {
                Users::insert(conn, &NewUser::new("After", "after@example.com"))
            })
            .await
            .expect("a write after the dropped one");
        assert_eq!(user.name, "After");
    });
}

#[test]
fn a_panicking_closure_is_an_error_and_rolls_back() {
    let test_db = litedal::example::test_db().expect("test database");
    let db = test_db.db().clone();
    let runtime = multi_thread(2);
    run(&runtime, "panicking closures", async {
        let write = db
            .transaction_async(|conn| -> litedal::Result<()> {
                Users::insert(conn, &NewUser::new("Gone", "gone@example.com"))?;
                panic!("write bug {}", 42)
            })
            .await;
        match write {
            Err(Error::Panicked { message }) => assert_eq!(message, "write bug 42"),
            other => panic!("expected Error::Panicked, got {other:?}"),
        }
        let read = db
            .read_async(|_| -> litedal::Result<()> { panic!("read bug") })
            .await;
        match &read {
            Err(error @ Error::Panicked { message }) => {
                assert_eq!(message, "read bug");
                assert!(error.to_string().contains("read bug"), "{error}");
            }
            other => panic!("expected Error::Panicked, got {other:?}"),
        }

        // Rolled back, and every connection went back to its pool.
        assert_eq!(
            db.read_async(|conn| Users::find_by_email(conn, "gone@example.com"))
                .await
                .expect("a lookup"),
            None
        );
        // (A wait, not an assertion: the background checkpointer may hold a write connection
        // for a moment.)
        until("every connection back in its pool", || {
            active(&db, Role::Write) == 0 && active(&db, Role::Read) == 0
        })
        .await;
        for n in 0..=db.config().write_pool_size() {
            let email = format!("after{n}@example.com");
            db.transaction_async(move |conn| Users::insert(conn, &NewUser::new("After", &email)))
                .await
                .expect("a write after the panics");
        }
        let stats = db.connection_stats();
        assert!(stats.transactions.write.rolled_back >= 1, "{stats:#?}");
    });
}

/// The names of the current span and its ancestors, innermost first, as the thread's
/// subscriber (a `Registry`) knows them.
fn span_scope() -> Vec<&'static str> {
    let current = tracing::Span::current().id();
    tracing::dispatcher::get_default(|dispatch| {
        let registry = dispatch
            .downcast_ref::<tracing_subscriber::Registry>()
            .expect("the test's Registry is this thread's subscriber");
        current
            .as_ref()
            .and_then(|id| registry.span(id))
            .map(|span| span.scope().map(|s| s.name()).collect())
            .unwrap_or_default()
    })
}

#[test]
fn the_callers_span_is_current_in_the_closure_on_a_blocking_thread() {
    let test_db = litedal::example::test_db().expect("test database");
    let db = test_db.db().clone();
    // A subscriber for this thread only: the closure sees it only if it is carried along.
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
    let runtime = current_thread();
    run(&runtime, "spans", async {
        let runtime_thread = std::thread::current().id();
        let where_am_i = |_: &mut SqliteConnection| Ok((span_scope(), std::thread::current().id()));
        let (scope, thread) = db
            .read_async(where_am_i)
            .instrument(tracing::info_span!("get_user_request"))
            .await
            .expect("a read");
        // litedal's own span of the read ("db.read") is a child of the caller's.
        assert!(scope.contains(&"get_user_request"), "{scope:?}");
        assert_ne!(
            thread, runtime_thread,
            "the closure ran on the runtime thread"
        );

        let (scope, thread) = db
            .transaction_async(where_am_i)
            .instrument(tracing::info_span!("create_user_request"))
            .await
            .expect("a write");
        assert!(scope.contains(&"create_user_request"), "{scope:?}");
        assert_ne!(
            thread, runtime_thread,
            "the closure ran on the runtime thread"
        );
    });
}

#[test]
fn errors_map_to_http_statuses() {
    let test_db = litedal::example::test_db().expect("test database");
    let db = test_db.db().clone();
    let runtime = multi_thread(2);
    run(&runtime, "error statuses", async {
        let addr = serve(db.clone()).await;
        let ada = json!({ "name": "Ada", "email": "ada@example.com" });
        let user = call(addr, "POST", "/users", Some(&ada))
            .await
            .expect(201, "creating a user");
        let id = user["id"].as_i64().expect("an id");

        let cases: Vec<(&str, String, Option<Value>, u16)> = vec![
            ("POST", "/users".into(), Some(ada.clone()), 409),
            (
                "POST",
                "/users".into(),
                Some(json!({ "name": " ", "email": "b@example.com" })),
                400,
            ),
            (
                "POST",
                "/users".into(),
                Some(json!({ "name": "B", "email": "no-at-sign" })),
                400,
            ),
            ("POST", "/users".into(), Some(json!({ "name": "B" })), 400),
            ("GET", "/users/999999".into(), None, 404),
            ("GET", "/users/abc".into(), None, 400),
            (
                "POST",
                "/users/999999/posts".into(),
                Some(json!({ "title": "T", "body": "B" })),
                404,
            ),
            (
                "POST",
                format!("/users/{id}/posts"),
                Some(json!({ "title": "", "body": "B" })),
                400,
            ),
            ("GET", "/users/999999/posts".into(), None, 404),
            ("GET", format!("/users/{id}/posts?limit=0"), None, 400),
            ("GET", format!("/users/{id}/posts?limit=101"), None, 400),
            ("GET", format!("/users/{id}/posts?limit=ten"), None, 400),
            (
                "GET",
                format!("/users/{id}/posts?cursor=garbage"),
                None,
                400,
            ),
        ];
        for (method, path, body, status) in cases {
            let reply = call(addr, method, &path, body.as_ref()).await;
            assert_eq!(reply.status, status, "{method} {path}: {}", reply.text());
            assert!(
                reply.json()["error"].is_string(),
                "{method} {path}: {}",
                reply.text()
            );
        }
        // A body that is not JSON at all.
        let raw = format!(
            "POST /users HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: 5\r\n\r\n{{nope"
        );
        let reply = call_raw(addr, raw.as_bytes()).await;
        assert_eq!(reply.status, 400, "{}", reply.text());

        // The write lock held past the busy timeout: 503, and the client may retry.
        let impatient =
            litedal::example::test_db_with(|b| b.busy_timeout(Duration::from_millis(20)))
                .expect("test database");
        let impatient_addr = serve(impatient.db().clone()).await;
        let locker = Locker::hold(&impatient);
        let reply = call(impatient_addr, "POST", "/users", Some(&ada)).await;
        locker.release();
        assert_eq!(reply.status, 503, "{}", reply.text());
        call(impatient_addr, "POST", "/users", Some(&ada))
            .await
            .expect(201, "the retry");
    });
}

/// D3: axum's rejections keep their status (413 too large, 415 not JSON) with the API's JSON
/// error body; JSON of the wrong shape is a 400 like the handlers' own checks.
#[test]
fn rejections_keep_their_status_and_a_json_body() {
    let test_db = litedal::example::test_db().expect("test database");
    let db = test_db.db().clone();
    let runtime = multi_thread(2);
    run(&runtime, "rejection statuses", async {
        let addr = serve(db.clone()).await;
        let post = |content_type: Option<&str>, body: &[u8]| {
            let mut request = format!(
                "POST /users HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
                 Content-Length: {}\r\n",
                body.len()
            )
            .into_bytes();
            if let Some(content_type) = content_type {
                request.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
            }
            request.extend_from_slice(b"\r\n");
            request.extend_from_slice(body);
            request
        };
        let ok = br#"{"name":"Ada","email":"ada@example.com"}"#;
        let huge = format!(
            r#"{{"name":"{}","email":"big@example.com"}}"#,
            "x".repeat(web::BODY_LIMIT)
        );
        let cases: Vec<(&str, Vec<u8>, u16)> = vec![
            (
                "a body over the limit",
                post(Some("application/json"), huge.as_bytes()),
                413,
            ),
            ("text/plain", post(Some("text/plain"), ok), 415),
            ("no content type", post(None, ok), 415),
            ("not JSON", post(Some("application/json"), b"{nope"), 400),
            (
                "a wrong type",
                post(Some("application/json"), br#"{"name":5,"email":"a@b"}"#),
                400,
            ),
            (
                "a missing field",
                post(Some("application/json"), br#"{"name":"Ada"}"#),
                400,
            ),
        ];
        for (what, request, status) in cases {
            let reply = call_raw(addr, &request).await;
            assert_eq!(reply.status, status, "{what}: {}", reply.text());
            assert!(
                reply.json()["error"].is_string(),
                "{what}: {}",
                reply.text()
            );
        }
        let reply = call_raw(addr, &post(Some("application/json"), ok)).await;
        assert_eq!(reply.status, 201, "{}", reply.text());
    });
}

/// Builds `examples/web.rs` (with the features it needs) and returns its executable.
fn web_example_binary() -> std::path::PathBuf {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--example",
            "web",
            "--features",
            "tokio,example-domain",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("running cargo build --example web");
    assert!(out.status.success(), "cargo build --example web failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["target"]["name"] == "web")
        .find_map(|message| message["executable"].as_str().map(std::path::PathBuf::from))
        .expect("cargo reported the web example's executable")
}

/// D2: SIGTERM drains: the example (a real child process) stops accepting, lets a request in
/// flight (a write waiting for a lock held outside it) finish with 201, and exits 0.
#[test]
fn sigterm_lets_the_request_in_flight_finish_and_exits_0() {
    use std::io::BufRead;

    let binary = web_example_binary();
    let test_db = patient_db();
    let url = format!("sqlite://{}", test_db.path().display());
    let child = std::process::Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", &url)
        .env("DB_BUSY_TIMEOUT_MS", "60000")
        .env("WEB_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting the web example");
    let pid = child.id().to_string();
    // Kills the child if the test fails before it exits on its own.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            if matches!(self.0.try_wait(), Ok(None)) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
    let mut child = Reap(child);
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.0.stderr.take().expect("piped stderr");
    let log = Arc::new(Mutex::new(String::new()));
    let log_writer = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            log_writer.lock().unwrap().push_str(&(line.clone() + "\n"));
            let _ = lines_tx.send(line);
        }
    });
    let addr: SocketAddr = loop {
        let line = lines_rx
            .recv_timeout(HANG_GUARD)
            .unwrap_or_else(|_| panic!("no 'serving' line: {}", log.lock().unwrap()));
        if line.contains("serving the web example") {
            let at = line.find("addr=").expect("the line names the address") + 5;
            let addr = line[at..].split_whitespace().next().unwrap_or_default();
            break addr.parse().expect("a socket address");
        }
    };

    let runtime = multi_thread(2);
    let locker = Locker::hold(&test_db);
    run(&runtime, "draining on SIGTERM", async {
        let ada = json!({ "name": "Ada", "email": "ada@example.com" });
        let slow = tokio::spawn(async move { call(addr, "POST", "/users", Some(&ada)).await });
        // The write is in flight once it holds a write connection (waiting for the lock).
        let active_write = || async {
            let metrics = call(addr, "GET", "/metrics", None).await.text();
            metrics
                .lines()
                .any(|l| l == "litedal_pool_active_connections{pool=\"write\"} 1")
        };
        let deadline = Instant::now() + HANG_GUARD / 2;
        while !active_write().await {
            assert!(Instant::now() < deadline, "the write never started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {pid}: {sent}");
        // Once it drains it accepts no new connection.
        let deadline = Instant::now() + HANG_GUARD / 2;
        while TcpStream::connect(addr).await.is_ok() {
            assert!(Instant::now() < deadline, "still accepting after SIGTERM");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            !slow.is_finished(),
            "the write finished before the lock was released"
        );
        locker.release();
        let reply = slow.await.expect("the client task");
        assert_eq!(reply.status, 201, "{}", reply.text());
    });
    let status = child.0.wait().expect("waiting for the web example");
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}: {}",
        log.lock().unwrap()
    );
    assert!(
        log.lock().unwrap().contains("signal=\"SIGTERM\"")
            || log.lock().unwrap().contains("signal=SIGTERM"),
        "{}",
        log.lock().unwrap()
    );
    assert_eq!(
        Users::find_by_email(test_db.db(), "ada@example.com")
            .expect("reading back")
            .map(|u| u.name),
        Some("Ada".to_owned())
    );
}
