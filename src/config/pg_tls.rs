//! TLS that cannot silently downgrade: the `sslmode` litedal hands libpq for a PostgreSQL URL.
//!
//! libpq's default, `sslmode=prefer`, falls back to plaintext without a word when the server
//! offers no TLS. For a URL whose hosts are not all loopback or Unix sockets and that sets no
//! `sslmode` (neither in the URL nor in libpq's `PGSSLMODE`), litedal adds `sslmode=require`
//! (or `verify-full` with `DB_PG_TLS=verify-full`) and says so at INFO; an explicit
//! `disable`, `allow` or `prefer` to such a host is kept and warned about once at open.
//!
//! The rule is by name, without DNS: a host is local when it is empty (libpq's Unix socket),
//! a socket directory (`/...`, `@...`), `localhost`, or a loopback address literal
//! (`127.0.0.0/8`, `::1`). Every other name counts as remote, even one that resolves to
//! 127.0.0.1. Every host of a host list and every `hostaddr` must be local.

use std::net::IpAddr;

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};

/// `DB_PG_TLS`: the `sslmode` litedal adds for a remote host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PgTls {
    /// `sslmode=require`: encrypted, the server's certificate not checked (the default).
    #[default]
    Require,
    /// `sslmode=verify-full`: encrypted, and the certificate must chain to a trusted root
    /// (`sslrootcert`, `PGSSLROOTCERT`, `~/.postgresql/root.crt`, or `sslrootcert=system`)
    /// and name the host.
    VerifyFull,
}

impl PgTls {
    /// The accepted values of `DB_PG_TLS`.
    pub(crate) const KEYWORDS: &'static [&'static str] = &["require", "verify-full"];

    /// Parses a `DB_PG_TLS` value (any case).
    pub(crate) fn parse(text: &str) -> Option<PgTls> {
        match text.to_ascii_lowercase().as_str() {
            "require" => Some(PgTls::Require),
            "verify-full" => Some(PgTls::VerifyFull),
            _ => None,
        }
    }

    fn sslmode(self) -> &'static str {
        match self {
            PgTls::Require => "require",
            PgTls::VerifyFull => "verify-full",
        }
    }
}

/// What litedal decided about a URL's TLS, logged at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsNote {
    /// `sslmode` was added for a remote host.
    Added {
        /// The variable whose URL it is.
        var: &'static str,
        /// The mode added.
        sslmode: &'static str,
        /// The first remote host.
        host: String,
    },
    /// An explicit mode that may send everything in clear to a remote host.
    Insecure {
        /// The variable whose URL it is.
        var: &'static str,
        /// The mode as given.
        sslmode: String,
        /// Where the mode came from: the URL or `PGSSLMODE`.
        from: &'static str,
        /// The first remote host.
        host: String,
    },
}

impl TlsNote {
    /// Logs the note: INFO for an added mode, WARN for an insecure one.
    pub(crate) fn log(&self) {
        match self {
            TlsNote::Added { var, sslmode, host } => tracing::info!(
                variable = var,
                host = %host,
                sslmode = sslmode,
                "Database TLS required: the host is not loopback and the URL sets no sslmode \
                 (set DB_PG_TLS=verify-full to check the certificate, or sslmode in the URL)"
            ),
            TlsNote::Insecure {
                var,
                sslmode,
                from,
                host,
            } => tracing::warn!(
                variable = var,
                host = %host,
                sslmode = %sslmode,
                from = from,
                "Database TLS may be off to a host that is not loopback: credentials and data \
                 can travel in clear (use sslmode=require or verify-full)"
            ),
        }
    }
}

/// The process environment libpq reads that the decision depends on.
#[derive(Debug, Clone, Default)]
pub(crate) struct LibpqEnv {
    /// `PGSSLMODE`.
    pub(crate) sslmode: Option<String>,
    /// `PGHOST`.
    pub(crate) host: Option<String>,
    /// `PGHOSTADDR`.
    pub(crate) hostaddr: Option<String>,
}

impl LibpqEnv {
    /// Reads the variables from the process environment (libpq reads the same).
    pub(crate) fn from_process() -> LibpqEnv {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        };
        LibpqEnv {
            sslmode: var("PGSSLMODE"),
            host: var("PGHOST"),
            hostaddr: var("PGHOSTADDR"),
        }
    }
}

/// The URL libpq gets for `url` (the value of `var`), and what to log about it.
///
/// # Errors
///
/// [`Error::Config`] naming `var` for an `sslmode` libpq does not know (libpq would refuse
/// it too, with a less clear message).
pub(crate) fn secure_url(
    var: &'static str,
    url: &str,
    default: PgTls,
    env: &LibpqEnv,
) -> Result<(String, Option<TlsNote>)> {
    let parts = UrlParts::of(url);
    let (sslmode, from) = match (&parts.sslmode, &env.sslmode) {
        (Some(mode), _) => (Some(mode.clone()), "the URL"),
        (None, Some(mode)) => (Some(mode.clone()), "PGSSLMODE"),
        (None, None) => (None, ""),
    };
    if let Some(mode) = &sslmode {
        const MODES: [&str; 6] = [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ];
        if !MODES.contains(&mode.as_str()) {
            return Err(Error::config(
                var,
                crate::url::redact_password(url),
                format!(
                    "sslmode={mode} (from {from}) is not one of libpq's: {}",
                    MODES.join(", ")
                ),
            ));
        }
    }
    let Some(host) = parts.first_remote_host(env) else {
        return Ok((url.to_owned(), None));
    };
    match sslmode {
        Some(mode) if ["disable", "allow", "prefer"].contains(&mode.as_str()) => Ok((
            url.to_owned(),
            Some(TlsNote::Insecure {
                var,
                sslmode: mode,
                from,
                host,
            }),
        )),
        Some(_) => Ok((url.to_owned(), None)),
        None => {
            let sslmode = default.sslmode();
            let separator = match url.rfind('?') {
                None => "?",
                Some(_) if url.ends_with(['?', '&']) => "",
                Some(_) => "&",
            };
            Ok((
                format!("{url}{separator}sslmode={sslmode}"),
                Some(TlsNote::Added { var, sslmode, host }),
            ))
        }
    }
}

/// A PostgreSQL URL of `litedal copy` (named by its flag) as libpq gets it: the rule of
/// [`secure_url`], with `DB_PG_TLS` from the environment; the decision is logged. Other URLs
/// are returned as given.
///
/// # Errors
///
/// [`Error::Config`] for a bad `DB_PG_TLS` or `sslmode`.
#[cfg(feature = "cli")]
pub(crate) fn secure_copy_url(flag: &'static str, url: &str) -> Result<String> {
    if !crate::url::is_postgres_url(url) {
        return Ok(url.to_owned());
    }
    let tls = match std::env::var("DB_PG_TLS") {
        Ok(value) => PgTls::parse(value.trim()).ok_or_else(|| {
            Error::config(
                "DB_PG_TLS",
                value.clone(),
                format!("accepted (any case): {}", PgTls::KEYWORDS.join(", ")),
            )
        })?,
        Err(_) => PgTls::default(),
    };
    let (secured, note) = secure_url(flag, url, tls, &LibpqEnv::from_process())?;
    if let Some(note) = note {
        note.log();
    }
    Ok(secured)
}

/// What the decision needs from a `postgres://` URL.
#[derive(Debug, Default)]
struct UrlParts {
    /// The hosts of the authority (a comma-separated list), percent-decoded.
    hosts: Vec<String>,
    /// `host=` parameters (they override the authority's).
    host_params: Vec<String>,
    /// `hostaddr=` parameters.
    hostaddrs: Vec<String>,
    /// `sslmode=`.
    sslmode: Option<String>,
}

impl UrlParts {
    fn of(url: &str) -> UrlParts {
        let mut parts = UrlParts::default();
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let (before_query, query) = match rest.split_once('?') {
            Some((before, query)) => (before, Some(query)),
            None => (rest, None),
        };
        // libpq: user info ends at an `@` that comes before the first `/`.
        let authority = before_query.split('/').next().unwrap_or_default();
        let hostspec = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        for host in hostspec.split(',') {
            parts.hosts.push(decode(strip_port(host)));
        }
        for pair in query.unwrap_or_default().split('&') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let value = decode(value);
            match decode(key).as_str() {
                "host" => parts
                    .host_params
                    .extend(value.split(',').map(str::to_owned)),
                "hostaddr" => parts.hostaddrs.extend(value.split(',').map(str::to_owned)),
                "sslmode" => parts.sslmode = Some(value),
                _ => {}
            }
        }
        parts
    }

    /// The first host that is not local, if any (see the module docs for the rule).
    fn first_remote_host(&self, env: &LibpqEnv) -> Option<String> {
        let named_hosts = !self.host_params.is_empty() || self.hosts.iter().any(|h| !h.is_empty());
        let hosts: Vec<String> = if !self.host_params.is_empty() {
            self.host_params.clone()
        } else if named_hosts {
            self.hosts.clone()
        } else {
            // No host in the URL: libpq takes PGHOST, else its Unix socket.
            env.host
                .as_deref()
                .map(|h| h.split(',').map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let hostaddrs: Vec<String> = if !self.hostaddrs.is_empty() {
            self.hostaddrs.clone()
        } else {
            env.hostaddr
                .as_deref()
                .map(|h| h.split(',').map(str::to_owned).collect())
                .unwrap_or_default()
        };
        hosts
            .iter()
            .chain(&hostaddrs)
            .find(|host| !is_local_host(host))
            .cloned()
    }
}

/// `host` without a `:port` (an IPv6 literal keeps its brackets until [`is_local_host`]).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// Local by name: empty (the default Unix socket), a socket directory, `localhost`, or a
/// loopback address literal. No DNS.
pub(crate) fn is_local_host(host: &str) -> bool {
    let host = host.trim();
    if host.is_empty() || host.starts_with('/') || host.starts_with('@') {
        return true;
    }
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match literal.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(url: &str, env: &LibpqEnv) -> (String, Option<TlsNote>) {
        secure_url("DATABASE_URL", url, PgTls::Require, env).unwrap()
    }

    #[test]
    fn local_hosts_are_loopback_literals_localhost_and_sockets_only() {
        for host in [
            "",
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
            "/var/run/postgresql",
            "@abstract",
        ] {
            assert!(is_local_host(host), "{host:?} is local");
        }
        for host in [
            "db.internal",
            "10.0.0.5",
            "192.168.1.1",
            "[2001:db8::1]",
            "localhost.example.com",
            "vm",
            "0.0.0.0",
        ] {
            assert!(!is_local_host(host), "{host:?} is remote");
        }
    }

    #[test]
    fn remote_hosts_without_sslmode_get_require_and_local_ones_nothing() {
        let none = LibpqEnv::default();
        for url in [
            "postgres://app@localhost/app",
            "postgres://app:pw@127.0.0.1:5432/app",
            "postgres://app@[::1]:5432/app?application_name=x",
            "postgres:///app",
            "postgres://%2Fvar%2Frun%2Fpostgresql/app",
            "postgres:///app?host=/tmp",
        ] {
            assert_eq!(decide(url, &none), (url.to_owned(), None), "{url}");
        }
        for (url, expected, host) in [
            (
                "postgres://app@db.internal/app",
                "postgres://app@db.internal/app?sslmode=require",
                "db.internal",
            ),
            (
                "postgres://app:p@ss@10.0.0.5:5432/app?application_name=a",
                "postgres://app:p@ss@10.0.0.5:5432/app?application_name=a&sslmode=require",
                "10.0.0.5",
            ),
            // One remote host of a list is enough.
            (
                "postgres://localhost:5432,db2.internal:5433/app",
                "postgres://localhost:5432,db2.internal:5433/app?sslmode=require",
                "db2.internal",
            ),
            // A name that resolves to 127.0.0.1 is not loopback by name; nor is a host=.
            (
                "postgres://vm/app",
                "postgres://vm/app?sslmode=require",
                "vm",
            ),
            (
                "postgres:///app?host=db.internal",
                "postgres:///app?host=db.internal&sslmode=require",
                "db.internal",
            ),
            (
                "postgres://db.internal/app?hostaddr=127.0.0.1",
                "postgres://db.internal/app?hostaddr=127.0.0.1&sslmode=require",
                "db.internal",
            ),
            (
                "postgres://localhost/app?hostaddr=10.1.2.3",
                "postgres://localhost/app?hostaddr=10.1.2.3&sslmode=require",
                "10.1.2.3",
            ),
        ] {
            let (secured, note) = decide(url, &none);
            assert_eq!(secured, expected, "{url}");
            assert_eq!(
                note,
                Some(TlsNote::Added {
                    var: "DATABASE_URL",
                    sslmode: "require",
                    host: host.to_owned()
                }),
                "{url}"
            );
        }
        let (secured, _) = secure_url(
            "DATABASE_READ_URL",
            "postgres://db.internal/app",
            PgTls::VerifyFull,
            &none,
        )
        .unwrap();
        assert_eq!(secured, "postgres://db.internal/app?sslmode=verify-full");
    }

    #[test]
    fn explicit_modes_are_kept_and_insecure_ones_to_remote_hosts_noted() {
        let none = LibpqEnv::default();
        for mode in ["require", "verify-ca", "verify-full"] {
            let url = format!("postgres://db.internal/app?sslmode={mode}");
            assert_eq!(decide(&url, &none), (url.clone(), None));
        }
        for mode in ["disable", "allow", "prefer"] {
            let url = format!("postgres://db.internal/app?sslmode={mode}");
            let (secured, note) = decide(&url, &none);
            assert_eq!(secured, url);
            assert!(
                matches!(&note, Some(TlsNote::Insecure { sslmode, from: "the URL", .. }) if sslmode == mode),
                "{note:?}"
            );
            // Locally nothing to say.
            let local = format!("postgres://localhost/app?sslmode={mode}");
            assert_eq!(decide(&local, &none), (local.clone(), None));
        }
        // PGSSLMODE counts as explicit; the URL's own mode wins over it.
        let env = LibpqEnv {
            sslmode: Some("disable".into()),
            ..LibpqEnv::default()
        };
        let (secured, note) = decide("postgres://db.internal/app", &env);
        assert_eq!(secured, "postgres://db.internal/app");
        assert!(
            matches!(
                note,
                Some(TlsNote::Insecure {
                    from: "PGSSLMODE",
                    ..
                })
            ),
            "{note:?}"
        );
        let url = "postgres://db.internal/app?sslmode=verify-full";
        assert_eq!(decide(url, &env), (url.to_owned(), None));
        // PGHOST and PGHOSTADDR stand in for a URL without a host.
        let env = LibpqEnv {
            host: Some("db.internal".into()),
            ..LibpqEnv::default()
        };
        assert_eq!(
            decide("postgres:///app", &env).0,
            "postgres:///app?sslmode=require"
        );
        let env = LibpqEnv {
            hostaddr: Some("10.0.0.9".into()),
            ..LibpqEnv::default()
        };
        assert_eq!(
            decide("postgres:///app", &env).0,
            "postgres:///app?sslmode=require"
        );
        // An unknown mode is refused, naming the variable.
        assert!(matches!(
            secure_url(
                "DATABASE_URL",
                "postgres://:pw@h/app?sslmode=on",
                PgTls::Require,
                &LibpqEnv::default()
            ),
            Err(Error::Config { var: "DATABASE_URL", value, .. }) if !value.contains("pw")
        ));
    }
}
