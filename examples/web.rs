//! A JSON API over the reference domain (users and their posts) with axum, on litedal's async
//! API: every database call is `transaction_async` or `read_async`, which run on tokio's
//! blocking pool, so a request waiting for SQLite's write lock never stalls the others.
//!
//! ```sh
//! cargo run --example web                    # DATABASE_URL defaults to sqlite://data/web.db
//! curl -s -XPOST localhost:3000/users -H 'content-type: application/json' \
//!     -d '{"name":"Ada","email":"ada@example.com"}'
//! curl -s -XPOST localhost:3000/users/1/posts -H 'content-type: application/json' \
//!     -d '{"title":"Hello","body":"First post"}'
//! curl -s 'localhost:3000/users/1/posts?limit=10'  # {"items":[...],"next":null}
//! curl -s localhost:3000/metrics                  # Prometheus text
//! curl -s localhost:3000/health                   # JSON; 503 when unhealthy
//! ```
//!
//! | route | answer |
//! |---|---|
//! | `POST /users` `{name, email}` | 201 and the user; 409 for a taken email (in any letter case); 400 for bad input |
//! | `GET /users/{id}` | 200 and the user; 404 |
//! | `POST /users/{id}/posts` `{title, body, published?}` | 201 and the post; 404 for a missing user |
//! | `GET /users/{id}/posts?limit=N&cursor=TOKEN` | 200 and `{items, next}`: newest first, `next` is the token of the next page or `null` |
//! | `GET /metrics` | the database's metrics, Prometheus text format 0.0.4 |
//! | `GET /health` | the health report as JSON; 200, or 503 when unhealthy |
//!
//! Every error is a JSON body `{"error": "..."}`. A body that is not valid JSON, or JSON with a
//! missing field or a wrong type, is a 400 like any other bad input; a body over
//! [`BODY_LIMIT`] is a 413, and a body that is not `Content-Type: application/json` a 415.
//!
//! It stops on Ctrl-C (SIGINT) and on SIGTERM (what process managers and container runtimes
//! send): it stops accepting connections, lets the requests in flight finish, closes the
//! database and exits 0.
//!
//! Environment: `DATABASE_URL` and the `DB_*` variables of litedal, `WEB_ADDR` (default
//! `127.0.0.1:3000`), `RUST_LOG` (default `info`). tests/web.rs serves [`router`] over real
//! HTTP with concurrent clients.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use litedal::example::models::{NewPost, NewUser, Post, User, UserId};
use litedal::example::repo::{Posts, Users};
use litedal::example::schema::posts;
use litedal::paging::decode_cursor;
use litedal::{ConfigBuilder, Database, DbTimestamp, Error, Limit, Page};
use serde::{Deserialize, Serialize};

/// The largest request body read: a post of 10,000 characters of up to 4 bytes each, its
/// title and the JSON around them fit; anything larger is a 413 before it is buffered.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The application's routes, with `/metrics` and `/health` mounted beside them.
pub fn router(db: Database) -> Router {
    Router::new()
        .route("/users", post(create_user))
        .route("/users/{id}", get(get_user))
        .route("/users/{id}/posts", get(list_posts).post(create_post))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(db)
}

/// What a handler can fail with: a database error, or a request that could not be read.
#[derive(Debug)]
pub enum ApiError {
    /// An error of litedal (or of the handler's own validation, as `Error::InvalidInput`).
    Db(Error),
    /// A body, path or query string that axum could not read, with the status that says why
    /// (413 too large, 415 not JSON, 400 otherwise).
    Rejected {
        /// The status of the response.
        status: StatusCode,
        /// What was wrong, as axum words it.
        message: String,
    },
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError::Db(error)
    }
}

impl ApiError {
    /// A rejection of axum with its own status, except that JSON of the wrong shape (axum's
    /// 422) is a 400 like every other bad input of this API, the handlers' own checks included.
    fn rejected(status: StatusCode, message: String) -> ApiError {
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        ApiError::Rejected { status, message }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::rejected(rejection.status(), rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::rejected(rejection.status(), rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::rejected(rejection.status(), rejection.body_text())
    }
}

/// The HTTP status of a litedal error: the one place where errors become statuses.
pub fn status_of(error: &Error) -> StatusCode {
    match error {
        // Overloaded, not broken: the client may retry later.
        Error::Busy | Error::PoolTimeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::NotFound => StatusCode::NOT_FOUND,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::InvalidInput { .. } | Error::NotNull { .. } | Error::Check { .. } => {
            StatusCode::BAD_REQUEST
        }
        // In this API a foreign key fails only for a post whose author (the user in the
        // path) does not exist.
        Error::ForeignKey { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            ApiError::Db(error) => (status_of(error), error.report().to_string()),
            ApiError::Rejected { status, message } => (*status, message.clone()),
        };
        if status.is_server_error() {
            tracing::error!(%status, error = %message, "request failed");
        }
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn invalid(what: &'static str, value: &str, reason: &str) -> ApiError {
    ApiError::Db(Error::InvalidInput {
        what,
        value: value.chars().take(64).collect(),
        reason: reason.to_owned(),
    })
}

/// Checks that `value` has 1 to `max` characters after trimming, and returns it trimmed.
fn text(what: &'static str, value: String, max: usize) -> ApiResult<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max {
        return Err(invalid(what, &value, &format!("1 to {max} characters")));
    }
    Ok(trimmed.to_owned())
}

/// The body of `POST /users`.
#[derive(Debug, Deserialize)]
pub struct CreateUser {
    /// Display name.
    pub name: String,
    /// Unique email address.
    pub email: String,
}

async fn create_user(
    State(db): State<Database>,
    body: Result<Json<CreateUser>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let Json(body) = body?;
    let name = text("name", body.name, 200)?;
    let email = text("email", body.email, 320)?;
    if !email.contains('@') {
        return Err(invalid("email", &email, "an address with an @"));
    }
    let user = db
        .transaction_async(move |conn| Users::insert(conn, &NewUser::new(&name, &email)))
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

async fn get_user(
    State(db): State<Database>,
    id: Result<Path<i64>, PathRejection>,
) -> ApiResult<Json<User>> {
    let Path(id) = id?;
    let user = db
        .read_async(move |conn| Users::find(conn, UserId(id)))
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Json(user))
}

/// The body of `POST /users/{id}/posts`.
#[derive(Debug, Deserialize)]
pub struct CreatePost {
    /// Title.
    pub title: String,
    /// Body text.
    pub body: String,
    /// Published at once (default true).
    #[serde(default = "yes")]
    pub published: bool,
}

fn yes() -> bool {
    true
}

async fn create_post(
    State(db): State<Database>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<CreatePost>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Post>)> {
    let Path(id) = id?;
    let Json(body) = body?;
    let title = text("title", body.title, 200)?;
    if body.body.chars().count() > 10_000 {
        return Err(invalid("body", &body.body, "at most 10000 characters"));
    }
    let published = body.published;
    let post = db
        .transaction_async(move |conn| {
            let new = NewPost {
                user_id: UserId(id),
                title: &title,
                body: &body.body,
                published,
            };
            Posts::insert(conn, &new)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(post)))
}

/// The query string of `GET /users/{id}/posts`.
#[derive(Debug, Deserialize)]
pub struct ListPosts {
    /// Page size, 1 to [`MAX_PAGE`] (default 20).
    pub limit: Option<u32>,
    /// The `next` token of the previous page.
    pub cursor: Option<String>,
}

/// The largest page a client may ask for.
pub const MAX_PAGE: u32 = 100;

/// Where the next page of a user's posts starts: the key of the last post of this page.
/// `created_at` alone is not unique (milliseconds), so the key is `(created_at, id)`.
#[derive(Debug, Serialize, Deserialize)]
struct PostCursor {
    at: NaiveDateTime,
    id: i64,
}

/// One page of a user's posts, newest first.
#[derive(Debug, Serialize)]
pub struct PostsPage {
    /// The posts of this page.
    pub items: Vec<Post>,
    /// The token of the next page (`?cursor=`), or `null` on the last page.
    pub next: Option<String>,
}

async fn list_posts(
    State(db): State<Database>,
    id: Result<Path<i64>, PathRejection>,
    query: Result<Query<ListPosts>, QueryRejection>,
) -> ApiResult<Json<PostsPage>> {
    let Path(id) = id?;
    let Query(query) = query?;
    let limit = Limit::with_max(query.limit.unwrap_or(20), MAX_PAGE)?;
    // A client's token is untrusted input: a bad one is a 400, checked before any database work.
    let after: Option<PostCursor> = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let user = UserId(id);
    // One read transaction: the user check and the page see the same snapshot.
    let page = db
        .read_async(move |conn| {
            if Users::find(&mut *conn, user)?.is_none() {
                return Err(Error::NotFound);
            }
            let mut rows = posts::table
                .filter(posts::user_id.eq(user))
                .order((posts::created_at.desc(), posts::id.desc()))
                .select(Post::as_select())
                .into_boxed();
            if let Some(after) = after {
                // SQLite compares timestamps as text: DbTimestamp binds the stored form, so
                // the row of the cursor itself is not returned again.
                let at = DbTimestamp(after.at);
                rows = rows.filter(
                    posts::created_at
                        .lt(at)
                        .or(posts::created_at.eq(at).and(posts::id.lt(after.id))),
                );
            }
            let rows = rows.limit(limit.fetch()).load(conn)?;
            Ok(Page::from_rows(rows, limit, |post| PostCursor {
                at: post.created_at,
                id: post.id.get(),
            }))
        })
        .await?;
    let next = page.next_token()?;
    Ok(Json(PostsPage {
        items: page.items,
        next,
    }))
}

/// Runs one of the database's blocking calls (metrics, health) on the blocking pool.
async fn blocking<T: Send + 'static>(
    db: Database,
    f: impl FnOnce(&Database) -> T + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(|e| {
            ApiError::Db(Error::Panicked {
                message: e.to_string(),
            })
        })
}

async fn metrics(State(db): State<Database>) -> ApiResult<Response> {
    let text = blocking(db, Database::render_metrics).await??;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn health(State(db): State<Database>) -> ApiResult<Response> {
    // The write probe may wait up to the busy timeout: never on a runtime worker.
    let report = blocking(db, Database::health).await?;
    let status = StatusCode::from_u16(report.status.http_status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok((status, Json(report)).into_response())
}

/// Listens for Ctrl-C (SIGINT) and SIGTERM from now on (so a signal sent as soon as the
/// "serving" line is out is not lost), and returns what resolves on the first of them.
/// Must be called inside the runtime.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| format!("listening for {name}: {e}"))
    };
    let mut interrupt = listen(SignalKind::interrupt(), "SIGINT")?;
    let mut terminate = listen(SignalKind::terminate(), "SIGTERM")?;
    Ok(async move {
        let signal = std::future::poll_fn(|cx| {
            if interrupt.poll_recv(cx).is_ready() {
                std::task::Poll::Ready("SIGINT")
            } else if terminate.poll_recv(cx).is_ready() {
                std::task::Poll::Ready("SIGTERM")
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        tracing::info!(
            signal,
            "shutting down: no new connections, finishing the requests in flight"
        );
    })
}

/// Opens the database (before the runtime starts: opening blocks) and serves until Ctrl-C or
/// SIGTERM, then lets the requests in flight finish.
#[allow(dead_code)] // tests/web.rs includes this file for `router`.
fn run() -> Result<(), String> {
    let mut config = ConfigBuilder::from_env()
        .map_err(|e| format!("reading the configuration: {}", e.report()))?;
    if std::env::var_os("DATABASE_URL").is_none() {
        config = config.database_url("sqlite://data/web.db");
    }
    let config = config
        .migrations(&litedal::example::MIGRATIONS)
        .build()
        .map_err(|e| format!("reading the configuration: {}", e.report()))?;
    let db = Database::open(config).map_err(|e| format!("opening the database: {}", e.report()))?;

    let addr = std::env::var("WEB_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("WEB_ADDR={addr:?} is not an address such as 127.0.0.1:3000: {e}"))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("starting tokio: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("listening on {addr}: {e}"))?;
        let stop = shutdown_signal()?;
        // The bound address, so that `WEB_ADDR=127.0.0.1:0` says which port it got.
        let bound = listener.local_addr().unwrap_or(addr);
        tracing::info!(
            addr = %bound,
            database = %db.location().to_url(),
            "serving the web example"
        );
        axum::serve(listener, router(db))
            .with_graceful_shutdown(stop)
            .await
            .map_err(|e| format!("serving on {addr}: {e}"))?;
        tracing::info!("stopped: every request answered");
        Ok::<(), String>(())
    })
}

#[allow(dead_code)] // tests/web.rs includes this file for `router`.
fn main() -> ExitCode {
    // Logs on stderr (`RUST_LOG`, `DB_LOG_FORMAT=json`, colour only on a terminal).
    if let Err(error) = litedal::cli::init_logging("info") {
        eprintln!("web: error: {}", error.report());
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("web: {message}");
            ExitCode::FAILURE
        }
    }
}
