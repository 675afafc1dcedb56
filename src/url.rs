//! `DATABASE_URL` -> the location SQLite opens, or a clear error.
//!
//! Accepted forms (one variable serves litedal and the diesel CLI):
//!
//! | form | meaning |
//! |---|---|
//! | `sqlite://data/main.db` | relative path `data/main.db` |
//! | `sqlite:///var/lib/app/main.db` | absolute path |
//! | `sqlite:data/main.db` | relative path |
//! | `data/main.db`, `/abs/main.db` | a plain path, as the diesel CLI takes it |
//! | `file:data/main.db?mode=rwc` | an SQLite URI; its parameters are kept |
//! | `:memory:`, `sqlite::memory:` | a private in-memory database |
//!
//! Paths are taken literally (no percent-decoding outside `file:` URIs). Whatever the form,
//! SQLite is always handed a percent-encoded `file:` URI, so a name such as `sqlite://x` or a
//! path containing `?` or `#` can never be misread as a different file.
//! `libsql://`, `postgres://`, `mysql://`, `http(s)://` and other schemes are refused with a
//! hint of what to write instead.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str};

use crate::error::{Error, Result};

/// Characters percent-encoded in the path of the `file:` URI handed to SQLite: everything
/// except unreserved characters and `/`.
const PATH_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// A database file.
    File {
        /// The file's path (relative paths are relative to the working directory).
        path: PathBuf,
        /// SQLite URI parameters (`mode=ro&vfs=unix`), kept verbatim from a `file:` URI.
        params: Option<String>,
    },
    /// A private in-memory database. litedal serves it from one connection shared by both
    /// roles, so readers always see what writers wrote; it disappears with the `Database`.
    Memory,
}

impl DatabaseLocation {
    /// The file's path, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        match self {
            DatabaseLocation::File { path, .. } => Some(path),
            DatabaseLocation::Memory => None,
        }
    }

    /// True for an in-memory database.
    pub fn is_memory(&self) -> bool {
        matches!(self, DatabaseLocation::Memory)
    }

    /// False when the URI's `mode=` (`rw` or `ro`) tells SQLite not to create a missing file;
    /// litedal then does not create it either.
    pub fn creates_missing_file(&self) -> bool {
        match self {
            DatabaseLocation::Memory => true,
            DatabaseLocation::File { params, .. } => params.as_deref().is_none_or(|query| {
                query
                    .split('&')
                    .filter_map(|kv| kv.strip_prefix("mode="))
                    .all(|mode| mode == "rwc")
            }),
        }
    }

    /// A URL in litedal's accepted forms that parses back to this location.
    pub fn to_url(&self) -> String {
        match self {
            DatabaseLocation::Memory => ":memory:".to_owned(),
            DatabaseLocation::File { path, params } => file_uri(path, params.as_deref()),
        }
    }

    /// The `file:` URI handed to SQLite. Each in-memory database gets a unique name, so
    /// two `Database`s in one process never share one.
    pub(crate) fn sqlite_uri(&self) -> String {
        match self {
            DatabaseLocation::File { path, params } => file_uri(path, params.as_deref()),
            DatabaseLocation::Memory => {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                format!(
                    "file:litedal-memory-{}-{n}?mode=memory&cache=shared",
                    std::process::id()
                )
            }
        }
    }
}

pub(crate) fn file_uri(path: &Path, params: Option<&str>) -> String {
    let encoded: String = path
        .as_os_str()
        .as_bytes()
        .split(|b| *b == b'/')
        .map(|segment| percent_encoding::percent_encode(segment, PATH_ENCODE).to_string())
        .collect::<Vec<_>>()
        .join("/");
    // An absolute path becomes file:///abs so that the authority is empty.
    let prefix = if path.is_absolute() {
        "file://"
    } else {
        "file:"
    };
    match params {
        Some(p) if !p.is_empty() => format!("{prefix}{encoded}?{p}"),
        _ => format!("{prefix}{encoded}"),
    }
}

const VAR: &str = "DATABASE_URL";

/// Parses `DATABASE_URL` into a [`DatabaseLocation`].
///
/// # Errors
///
/// [`Error::UnsupportedUrl`] for another engine's or a remote URL, [`Error::Config`] for an
/// empty path or a malformed `file:` URI.
pub fn parse_database_url(url: &str) -> Result<DatabaseLocation> {
    if url.trim().is_empty() {
        return Err(Error::config(
            VAR,
            url,
            "is empty; use a path such as sqlite://data/main.db or data/main.db, or :memory:",
        ));
    }
    if url.contains('\0') {
        return Err(Error::config(
            VAR,
            url.replace('\0', "\\0"),
            "contains a NUL byte",
        ));
    }
    if url == ":memory:" || url == "sqlite::memory:" || url == "sqlite://:memory:" {
        return Ok(DatabaseLocation::Memory);
    }
    if let Some(rest) = url.strip_prefix("sqlite://") {
        return plain_path(url, rest);
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        return plain_path(url, rest);
    }
    if url.starts_with("file:") {
        return parse_file_uri(url);
    }
    if let Some((scheme, _)) = url.split_once("://") {
        if !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(unsupported(url, &scheme.to_ascii_lowercase()));
        }
    }
    plain_path(url, url)
}

fn plain_path(url: &str, path: &str) -> Result<DatabaseLocation> {
    if path.is_empty() {
        return Err(Error::config(
            VAR,
            url,
            "has no file path; write e.g. sqlite://data/main.db (relative) or sqlite:///var/lib/app/main.db (absolute)",
        ));
    }
    Ok(DatabaseLocation::File {
        path: PathBuf::from(path),
        params: None,
    })
}

fn parse_file_uri(url: &str) -> Result<DatabaseLocation> {
    let rest = &url["file:".len()..];
    let (before_fragment, _) = rest.split_once('#').unwrap_or((rest, ""));
    let (raw_path, params) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (before_fragment, None),
    };
    let raw_path = if let Some(after) = raw_path.strip_prefix("//") {
        // file://authority/path: SQLite accepts only an empty authority or "localhost".
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        if !(authority.is_empty() || authority == "localhost") {
            return Err(Error::config(
                VAR,
                url,
                "a file: URI may only name a local file (file:///abs/path or file:rel/path)",
            ));
        }
        path
    } else {
        raw_path
    };
    if params
        .as_deref()
        .is_some_and(|q| q.split('&').any(|kv| kv == "mode=memory"))
    {
        return Ok(DatabaseLocation::Memory);
    }
    let decoded: Vec<u8> = percent_decode_str(raw_path).collect();
    // `file::memory:` is SQLite's own spelling of an in-memory database.
    if decoded == b":memory:" {
        return Ok(DatabaseLocation::Memory);
    }
    if decoded.is_empty() {
        return Err(Error::config(VAR, url, "the file: URI has no path"));
    }
    if decoded.contains(&0) {
        return Err(Error::config(VAR, url, "the path decodes to a NUL byte"));
    }
    Ok(DatabaseLocation::File {
        path: PathBuf::from(OsStr::from_bytes(&decoded)),
        params: params.filter(|p| !p.is_empty()),
    })
}

fn unsupported(url: &str, scheme: &str) -> Error {
    let hint = match scheme {
        "libsql" | "libsql+ws" | "libsql+wss" | "ws" | "wss" => {
            "litedal opens local SQLite files only; for a Turso/libSQL database use a local replica \
             file, e.g. DATABASE_URL=sqlite://data/main.db"
        }
        "postgres" | "postgresql" if cfg!(feature = "postgres") => {
            "a PostgreSQL URL opens with litedal::AnyDatabase (AnyConfig::from_env or \
             ConfigBuilder::build_any); litedal::Database is SQLite's"
        }
        "postgres" | "postgresql" => {
            "PostgreSQL needs litedal's `postgres` cargo feature; without it use a local SQLite \
             file, e.g. DATABASE_URL=sqlite://data/main.db"
        }
        "mysql" | "mariadb" => {
            "MySQL is not supported; use a local SQLite file, e.g. DATABASE_URL=sqlite://data/main.db"
        }
        "http" | "https" => {
            "SQLite is opened as a local file, not over HTTP; write a path, e.g. \
             DATABASE_URL=sqlite://data/main.db"
        }
        _ => {
            "unknown scheme; accepted: sqlite://rel/path, sqlite:///abs/path, sqlite:path, a plain \
             path, a file: URI, or :memory:"
        }
    };
    Error::UnsupportedUrl {
        url: redact_password(url),
        hint: hint.to_owned(),
    }
}

/// The connection parameters whose values are secrets: libpq's `password` and `sslpassword`
/// (the passphrase of the client key).
const SECRET_KEYS: [&str; 2] = ["password", "sslpassword"];

fn is_secret_key(key: &str) -> bool {
    let decoded = percent_decode_str(key.trim()).decode_utf8_lossy();
    SECRET_KEYS
        .iter()
        .any(|secret| decoded.eq_ignore_ascii_case(secret))
}

/// `url` with every password replaced by `***`: what litedal prints of a URL. Covers the
/// user info of a URL (`user:secret@host`, wherever the secret has `/`, `?`, `#` or `@`),
/// `password=` and `sslpassword=` query parameters (keys percent-encoded or not), and libpq's
/// `key=value` connection strings (`host=h password='a b'`). When in doubt it hides more
/// (everything up to the last `@` after the scheme), never less.
pub(crate) fn redact_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", redact_url_rest(rest)),
        None if url.contains('=') => redact_key_values(url),
        None => url.to_owned(),
    }
}

/// The part of a URL after `scheme://`, its password(s) redacted.
fn redact_url_rest(rest: &str) -> String {
    // The user info ends at the last `@` (a password may hold `/`, `?`, `#` or `@` that
    // were not percent-encoded); a `:` before it separates the user from the password. An
    // `@` in a parameter makes this hide more than the password, never less.
    let rest = match rest.rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{}:***{}", &rest[..colon], &rest[at..]),
            None => rest.to_owned(),
        },
        None => rest.to_owned(),
    };
    redact_parameters(&rest)
}

/// `url` with the value of every secret parameter of its query replaced. The query starts
/// at the first `?` (the user info, which may hold one, is already hidden) and its pairs are
/// separated by `&` only, as libpq reads them; a value runs to the next `&` that starts
/// another `key=` pair, so an unencoded `&` in a password is hidden too.
fn redact_parameters(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let mut pairs: Vec<String> = Vec::new();
    let mut hiding = false;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((key, _)) if is_secret_key(key) => {
                pairs.push(format!("{key}=***"));
                hiding = true;
            }
            // The rest of a secret value that held an `&`.
            None if hiding => {}
            _ => {
                pairs.push(pair.to_owned());
                hiding = false;
            }
        }
    }
    format!("{head}?{}", pairs.join("&"))
}

/// A libpq `key=value` connection string with the values of secret keys replaced. Values are
/// single-quoted (with `\'` and `\\` escapes) or run to the next whitespace.
fn redact_key_values(conninfo: &str) -> String {
    let mut out = String::with_capacity(conninfo.len());
    let mut chars = conninfo.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            out.push(c);
            chars.next();
            continue;
        }
        // A key runs to `=` or whitespace.
        let mut key_end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key_end = i + c.len_utf8();
            chars.next();
        }
        let key = &conninfo[start..key_end];
        out.push_str(key);
        // Spaces and the `=`.
        while let Some(&(_, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                out.push(c);
                chars.next();
                if c == '=' {
                    break;
                }
            } else {
                break;
            }
        }
        while let Some(&(_, c)) = chars.peek() {
            if c.is_whitespace() {
                out.push(c);
                chars.next();
            } else {
                break;
            }
        }
        // The value.
        let secret = is_secret_key(key);
        let mut value = String::new();
        if let Some(&(_, '\'')) = chars.peek() {
            value.push('\'');
            chars.next();
            while let Some((_, c)) = chars.next() {
                value.push(c);
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '\'' => break,
                    _ => {}
                }
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push_str(if secret { "***" } else { &value });
    }
    out
}

/// Whether `url` is a PostgreSQL URL (`postgres://` or `postgresql://`, any case).
#[cfg(feature = "postgres")]
pub(crate) fn is_postgres_url(url: &str) -> bool {
    let url = url.trim_start();
    ["postgres://", "postgresql://"].iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(scheme))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> DatabaseLocation {
        DatabaseLocation::File {
            path: PathBuf::from(path),
            params: None,
        }
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(
            parse_database_url("sqlite://data/main.db").unwrap(),
            file("data/main.db")
        );
        assert_eq!(
            parse_database_url("sqlite:///abs/main.db").unwrap(),
            file("/abs/main.db")
        );
        assert_eq!(
            parse_database_url("sqlite:data/main.db").unwrap(),
            file("data/main.db")
        );
        assert_eq!(
            parse_database_url("data/main.db").unwrap(),
            file("data/main.db")
        );
        assert_eq!(parse_database_url("/abs/x.db").unwrap(), file("/abs/x.db"));
        assert_eq!(
            parse_database_url(":memory:").unwrap(),
            DatabaseLocation::Memory
        );
        assert_eq!(
            parse_database_url("sqlite::memory:").unwrap(),
            DatabaseLocation::Memory
        );
        assert_eq!(
            parse_database_url("file:///abs/my%20db.db?mode=rwc").unwrap(),
            DatabaseLocation::File {
                path: PathBuf::from("/abs/my db.db"),
                params: Some("mode=rwc".into())
            }
        );
        assert_eq!(parse_database_url("file:rel.db").unwrap(), file("rel.db"));
        assert_eq!(
            parse_database_url("file::memory:").unwrap(),
            DatabaseLocation::Memory
        );
        assert_eq!(
            parse_database_url("file::memory:?cache=shared").unwrap(),
            DatabaseLocation::Memory
        );
    }

    #[test]
    fn only_mode_rwc_or_no_mode_creates_a_missing_file() {
        for (url, creates) in [
            ("sqlite://a.db", true),
            ("file:a.db", true),
            ("file:a.db?mode=rwc", true),
            ("file:a.db?cache=private&mode=rwc", true),
            ("file:a.db?mode=rw", false),
            ("file:a.db?mode=ro", false),
        ] {
            assert_eq!(
                parse_database_url(url).unwrap().creates_missing_file(),
                creates,
                "{url}"
            );
        }
    }

    #[test]
    fn passwords_are_redacted_in_user_info_and_parameters() {
        assert_eq!(
            redact_password("postgres://app:pw@h:5432/db?sslmode=require"),
            "postgres://app:***@h:5432/db?sslmode=require"
        );
        assert_eq!(
            redact_password("postgresql://h/db?user=app&password=pw&sslmode=verify-full"),
            "postgresql://h/db?user=app&password=***&sslmode=verify-full"
        );
        assert_eq!(redact_password("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn passwords_with_url_delimiters_other_keys_and_key_value_strings_are_redacted() {
        for (url, redacted) in [
            (
                "postgres://app:pa/ss?w#rd@h:5432/db?sslmode=require",
                "postgres://app:***@h:5432/db?sslmode=require",
            ),
            ("postgres://app:p@ss@h/db", "postgres://app:***@h/db"),
            (
                "postgres://h/db?sslpassword=key-pass&sslmode=verify-full",
                "postgres://h/db?sslpassword=***&sslmode=verify-full",
            ),
            (
                "postgres://h/db?pass%77ord=pw&user=app",
                "postgres://h/db?pass%77ord=***&user=app",
            ),
            (
                "postgres://h/db?user=a@b.example&PASSWORD=pw",
                "postgres://h/db?user=a@b.example&PASSWORD=***",
            ),
            (
                "postgres://h/db?password=a&b&user=app",
                "postgres://h/db?password=***&user=app",
            ),
            (
                "host=h password=secret dbname=app",
                "host=h password=*** dbname=app",
            ),
            (
                "host=h password = 'a b\\' c' sslpassword=k user=app",
                "host=h password = *** sslpassword=*** user=app",
            ),
        ] {
            assert_eq!(redact_password(url), redacted, "{url}");
        }
    }

    fn quoted(value: &str) -> String {
        format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    }

    proptest::proptest! {
        /// Whatever a password holds, what litedal prints of the URL is the same: nothing of
        /// the password shows.
        #[test]
        fn no_password_survives_redaction(
            first in "[a-zA-Z0-9/?#@:&=%' \\\\.+-]{0,16}",
            second in "[a-zA-Z0-9/?#@:&=%' \\\\.+-]{0,16}",
            key in proptest::sample::select(vec!["password", "sslpassword", "pass%77ord", "PassWord"]),
        ) {
            let forms: [&dyn Fn(&str) -> String; 3] = [
                &|password| format!("postgres://app:Zq7{password}@db.internal:5432/app?sslmode=require"),
                // A parameter's value cannot hold an unencoded `&` followed by `=` (libpq
                // would read another parameter there): encoded as a client must.
                &|password| format!(
                    "postgresql://db.internal/app?user=app&{key}=Zq7{}&sslmode=require",
                    password.replace('%', "%25").replace('&', "%26")
                ),
                &|password| format!("host=db.internal {key}={} dbname=app", quoted(&format!("Zq7{password}"))),
            ];
            for form in forms {
                let redacted = redact_password(&form(&first));
                proptest::prop_assert!(!redacted.contains("Zq7"), "{redacted}");
                proptest::prop_assert_eq!(&redacted, &redact_password(&form(&second)));
            }
        }
    }

    #[test]
    fn sqlite_gets_an_encoded_uri() {
        assert_eq!(file("data/a b?.db").sqlite_uri(), "file:data/a%20b%3F.db");
        assert_eq!(file("/x/y.db").sqlite_uri(), "file:///x/y.db");
        assert_eq!(file("sqlite:/x").sqlite_uri(), "file:sqlite%3A/x");
    }

    #[test]
    fn refused_forms_say_what_to_write() {
        for url in [
            "libsql://db.turso.io",
            "postgres://u:pw@h/db",
            "mysql://h/db",
            "https://x",
            "redis://x",
        ] {
            match parse_database_url(url) {
                Err(Error::UnsupportedUrl { url, hint }) => {
                    assert!(!url.contains("pw"), "{url}");
                    // A PostgreSQL URL points at AnyDatabase when the feature is on.
                    let expected = if url.starts_with("postgres") && cfg!(feature = "postgres") {
                        "AnyDatabase"
                    } else {
                        "sqlite://"
                    };
                    assert!(hint.contains(expected), "{hint}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        for url in [
            "",
            "   ",
            "sqlite://",
            "sqlite:",
            "file:",
            "file://host/x.db",
        ] {
            assert!(
                matches!(
                    parse_database_url(url),
                    Err(Error::Config {
                        var: "DATABASE_URL",
                        ..
                    })
                ),
                "{url:?}"
            );
        }
    }

    #[test]
    fn locations_round_trip_through_their_url() {
        for url in [
            "sqlite://a/b.db",
            "/abs/x y.db",
            "file:q.db?mode=ro",
            ":memory:",
            "weird%41.db",
        ] {
            let loc = parse_database_url(url).unwrap();
            assert_eq!(parse_database_url(&loc.to_url()).unwrap(), loc, "{url}");
        }
    }
}
