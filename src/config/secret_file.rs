//! Secrets from files: `DATABASE_URL_FILE` (and `DATABASE_READ_URL_FILE`, `DB_METRICS_TOKEN_FILE`), the form container
//! and Kubernetes secrets take, so the URL with its password need not sit in the environment
//! (readable in `/proc/<pid>/environ`, `ps e`, crash reports).
//!
//! The file is read once, when the configuration is read; surrounding whitespace (the final
//! newline of an editor or `echo`) is trimmed. A file that group or others may read is used
//! but warned about. Its contents are never logged nor put in an error.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// The largest secret file read (a URL is a few hundred bytes; a larger file is a mistake).
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// The trimmed contents of the secret file at `path`, named by the variable `var` in errors.
///
/// # Errors
///
/// [`Error::Config`] naming `var` and the path when the file cannot be read, is not a
/// regular file, is larger than 64 KiB, is not UTF-8 or is empty.
pub(crate) fn read_secret_file(var: &'static str, path: &Path) -> Result<String> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path)
        .map_err(|e| Error::config(var, shown.clone(), format!("could not be opened: {e}")))?;
    let metadata = file
        .metadata()
        .map_err(|e| Error::config(var, shown.clone(), format!("could not be read: {e}")))?;
    if !metadata.is_file() {
        return Err(Error::config(
            var,
            shown,
            "is not a regular file; name a file holding the secret",
        ));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            variable = var,
            path = %shown,
            mode = format!("{mode:04o}"),
            "Database secret file is readable by group or others; chmod 600 it"
        );
    }
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::config(var, shown.clone(), format!("could not be read: {e}")))?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(Error::config(
            var,
            shown,
            "is larger than 64 KiB; it must hold only the secret",
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::config(var, shown.clone(), "is not valid UTF-8"))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Error::config(
            var,
            shown,
            "is empty; it must hold the secret",
        ));
    }
    Ok(trimmed.to_owned())
}

/// The variable a secret file stands in for, for the variables that have a `_FILE` form.
pub(crate) fn file_form_of(var: &str) -> Option<&'static str> {
    match var {
        "DATABASE_URL_FILE" => Some("DATABASE_URL"),
        #[cfg(feature = "postgres")]
        "DATABASE_READ_URL_FILE" => Some("DATABASE_READ_URL"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_is_trimmed_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(&path, "  postgres://app:pw@db/app\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read_secret_file("DATABASE_URL_FILE", &path).unwrap(),
            "postgres://app:pw@db/app"
        );
        // Through the environment: the file stands in for its variable; both is an error.
        let builder =
            crate::ConfigBuilder::from_vars([("DATABASE_URL_FILE", path.as_os_str())]).unwrap();
        assert_eq!(builder.database_url, "postgres://app:pw@db/app");
        match crate::ConfigBuilder::from_vars([
            ("DATABASE_URL", std::ffi::OsStr::new("sqlite://x.db")),
            ("DATABASE_URL_FILE", path.as_os_str()),
        ]) {
            Err(Error::Config { var, reason, .. }) => {
                assert_eq!(var, "DATABASE_URL_FILE");
                assert!(reason.contains("DATABASE_URL is set as well"), "{reason}");
            }
            other => panic!("both forms must be refused: {other:?}"),
        }
        #[cfg(feature = "postgres")]
        {
            let builder =
                crate::ConfigBuilder::from_vars([("DATABASE_READ_URL_FILE", path.as_os_str())])
                    .unwrap();
            assert_eq!(
                builder.postgres.read_url.as_deref(),
                Some("postgres://app:pw@db/app")
            );
            assert!(matches!(
                crate::ConfigBuilder::from_vars([
                    ("DATABASE_READ_URL", std::ffi::OsStr::new("postgres://h/db")),
                    ("DATABASE_READ_URL_FILE", path.as_os_str()),
                ]),
                Err(Error::Config {
                    var: "DATABASE_READ_URL_FILE",
                    ..
                })
            ));
            // Never in Debug.
            assert!(!format!("{builder:?}").contains(":pw@"), "{builder:?}");
        }
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        let missing = dir.path().join("missing");
        for (path, says) in [
            (empty.as_path(), "is empty"),
            (missing.as_path(), "could not be opened"),
            (dir.path(), "not a regular file"),
        ] {
            match read_secret_file("DATABASE_URL_FILE", path) {
                Err(Error::Config { var, value, reason }) => {
                    assert_eq!(var, "DATABASE_URL_FILE");
                    assert_eq!(value, path.display().to_string());
                    assert!(reason.contains(says), "{reason}");
                }
                other => panic!("{}: {other:?}", path.display()),
            }
        }
    }
}
