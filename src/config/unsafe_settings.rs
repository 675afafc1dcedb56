//! Settings that trade safety away: refused unless the application acknowledges them with
//! `DB_ALLOW_UNSAFE_SETTINGS=true` ([`ConfigBuilder::allow_unsafe_settings`]), and then logged
//! at WARN once, when the configuration is built (just before the open).
//!
//! | setting | what it costs |
//! |---|---|
//! | `DATABASE_URL` `file:...?nolock=1` | SQLite takes no file locks: two writers corrupt the file |
//! | `DB_SYNCHRONOUS=off` | a commit can be lost, or the file corrupted, by a power loss or OS crash |
//! | `DB_BUSY_TIMEOUT_MS=0` | a write that meets another process's lock fails at once |
//! | `DB_LOCK_TIMEOUT_MS=0` (PostgreSQL) | a write waits for a lock for ever, never `Error::Busy` |
//!
//! (`immutable=1` and `mode=ro` on a database litedal writes are refused at open with
//! [`Error::ReadOnly`](crate::Error::ReadOnly), acknowledged or not.)
//!
//! [`ConfigBuilder::allow_unsafe_settings`]: super::ConfigBuilder::allow_unsafe_settings

use crate::error::{Error, Result};

/// One unsafe setting found: its variable, value and what it costs.
pub(super) struct UnsafeSetting {
    pub(super) var: &'static str,
    pub(super) value: String,
    pub(super) cost: &'static str,
}

/// The variable that acknowledges unsafe settings.
pub(super) const ACKNOWLEDGEMENT: &str = "DB_ALLOW_UNSAFE_SETTINGS";

/// Refuses the first of `found` unless `allowed`; with `allowed`, logs each at WARN.
///
/// # Errors
///
/// [`Error::Config`] naming the setting, what it costs and how to accept it.
pub(super) fn check(found: Vec<UnsafeSetting>, allowed: bool) -> Result<()> {
    for setting in found {
        if !allowed {
            return Err(Error::config(
                setting.var,
                setting.value,
                format!(
                    "is unsafe: {}; choose another value, or set {ACKNOWLEDGEMENT}=true \
                     (ConfigBuilder::allow_unsafe_settings) to accept it",
                    setting.cost
                ),
            ));
        }
        tracing::warn!(
            variable = setting.var,
            value = %setting.value,
            cost = setting.cost,
            "Database unsafe setting accepted ({ACKNOWLEDGEMENT})"
        );
    }
    Ok(())
}

/// Whether a SQLite URI's parameters turn file locking off (`nolock=1`, any of SQLite's
/// spellings of true).
pub(super) fn uri_disables_locking(params: Option<&str>) -> bool {
    params.is_some_and(|query| {
        query.split('&').any(|pair| {
            pair.split_once('=').is_some_and(|(key, value)| {
                key == "nolock"
                    && ["1", "yes", "true", "on"]
                        .iter()
                        .any(|t| value.eq_ignore_ascii_case(t))
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigBuilder};
    use crate::error::Error;
    use crate::pragmas::Synchronous;

    #[test]
    fn unsafe_settings_are_refused_unless_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let file = format!("sqlite://{}/a.db", dir.path().display());
        let nolock = format!("file:{}/a.db?nolock=1", dir.path().display());
        for (vars, var) in [
            (vec![("DATABASE_URL", nolock.as_str())], "DATABASE_URL"),
            (
                vec![(
                    "DATABASE_URL",
                    nolock
                        .replace("nolock=1", "cache=private&nolock=TRUE")
                        .as_str(),
                )],
                "DATABASE_URL",
            ),
            (
                vec![("DATABASE_URL", file.as_str()), ("DB_SYNCHRONOUS", "off")],
                "DB_SYNCHRONOUS",
            ),
            (
                vec![("DATABASE_URL", file.as_str()), ("DB_BUSY_TIMEOUT_MS", "0")],
                "DB_BUSY_TIMEOUT_MS",
            ),
        ] {
            match Config::from_vars(vars.clone()) {
                Err(Error::Config {
                    var: got, reason, ..
                }) => {
                    assert_eq!(got, var, "{vars:?}");
                    assert!(reason.contains("DB_ALLOW_UNSAFE_SETTINGS=true"), "{reason}");
                }
                other => panic!("{vars:?} must be refused: {other:?}"),
            }
            let mut acknowledged = vars.clone();
            acknowledged.push(("DB_ALLOW_UNSAFE_SETTINGS", "true"));
            assert!(Config::from_vars(acknowledged).is_ok(), "{vars:?}");
        }
        // The builder's own form, and safe neighbours that need nothing.
        let built = ConfigBuilder::default()
            .database_url(file.as_str())
            .synchronous(Synchronous::Off)
            .busy_timeout(std::time::Duration::ZERO);
        assert!(matches!(
            built.clone().build(),
            Err(Error::Config {
                var: "DB_SYNCHRONOUS",
                ..
            })
        ));
        assert!(built.allow_unsafe_settings(true).build().is_ok());
        for vars in [
            vec![
                ("DATABASE_URL", file.as_str()),
                ("DB_SYNCHRONOUS", "normal"),
            ],
            vec![("DATABASE_URL", file.as_str()), ("DB_BUSY_TIMEOUT_MS", "1")],
            vec![("DATABASE_URL", ":memory:"), ("DB_SYNCHRONOUS", "off")],
        ] {
            assert!(Config::from_vars(vars.clone()).is_ok(), "{vars:?}");
        }
        let nolock_off = nolock.replace("nolock=1", "nolock=0");
        assert!(Config::from_vars([("DATABASE_URL", nolock_off.as_str())]).is_ok());
    }

    #[test]
    fn immutable_on_a_database_litedal_writes_is_refused_at_open_acknowledged_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        drop(
            crate::Database::open(
                Config::from_vars([("DATABASE_URL", path.to_str().unwrap())]).unwrap(),
            )
            .unwrap(),
        );
        for acknowledged in ["false", "true"] {
            let url = format!("file:{}?immutable=1", path.display());
            let config = Config::from_vars([
                ("DATABASE_URL", url.as_str()),
                ("DB_ALLOW_UNSAFE_SETTINGS", acknowledged),
            ])
            .unwrap();
            match crate::Database::open(config) {
                Err(Error::ReadOnly { message }) => {
                    assert!(message.contains("immutable=1"), "{message}")
                }
                other => panic!("immutable=1 must be refused: {other:?}"),
            }
        }
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn a_postgres_lock_timeout_of_zero_is_refused_unless_acknowledged() {
        let url = "postgres://app@localhost/app";
        match ConfigBuilder::from_vars([("DATABASE_URL", url), ("DB_LOCK_TIMEOUT_MS", "0")])
            .unwrap()
            .build_any()
        {
            Err(Error::Config { var, reason, .. }) => {
                assert_eq!(var, "DB_LOCK_TIMEOUT_MS");
                assert!(reason.contains("for ever"), "{reason}");
            }
            other => panic!("lock_timeout=0 must be refused: {other:?}"),
        }
        let config = ConfigBuilder::from_vars([
            ("DATABASE_URL", url),
            ("DB_LOCK_TIMEOUT_MS", "0"),
            ("DB_ALLOW_UNSAFE_SETTINGS", "1"),
        ])
        .unwrap()
        .build_any();
        assert!(
            matches!(&config, Ok(crate::AnyConfig::Postgres(pg)) if pg.lock_timeout().is_zero()),
            "{config:?}"
        );
        // SQLite's unsafe values do not apply (and are not refused) with a PostgreSQL URL.
        assert!(
            ConfigBuilder::from_vars([("DATABASE_URL", url), ("DB_SYNCHRONOUS", "off")])
                .unwrap()
                .build_any()
                .is_ok()
        );
    }
}
