//! Which migrations `litedal migrate` runs: a directory given with `--migrations-dir`, the
//! ones built into an application's binary, the directory the nearest `diesel.toml` names
//! (the diesel CLI's convention, searched from the current directory upwards), or
//! `./migrations`.

use std::path::{Path, PathBuf};

use diesel::migration::{Migration, MigrationSource};
use diesel::sqlite::Sqlite;
use diesel_migrations::{EmbeddedMigrations, FileBasedMigrations};

use super::common::Failure;

/// The migrations `migrate` runs, and where they came from (for its report).
pub(super) enum Source {
    Directory(PathBuf, FileBasedMigrations),
    Embedded(&'static EmbeddedMigrations),
}

impl Source {
    /// Where the migrations come from, for the report.
    pub(super) fn describe(&self) -> String {
        match self {
            Source::Directory(dir, _) => dir.display().to_string(),
            Source::Embedded(_) => "built into this binary".to_owned(),
        }
    }
}

impl MigrationSource<Sqlite> for &Source {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<Sqlite>>>> {
        match self {
            Source::Directory(_, files) => MigrationSource::<Sqlite>::migrations(files),
            Source::Embedded(embedded) => MigrationSource::<Sqlite>::migrations(*embedded),
        }
    }
}

/// Finds the migrations (see the module docs for the order).
pub(super) fn find(
    dir: Option<PathBuf>,
    embedded: Option<&'static EmbeddedMigrations>,
) -> Result<Source, Failure> {
    if let Some(dir) = dir {
        return directory(&dir, "--migrations-dir");
    }
    if let Some(embedded) = embedded {
        return Ok(Source::Embedded(embedded));
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::new(format!("reading the current directory: {e}"), 1))?;
    if let Some((config, dir)) = diesel_toml_dir(&cwd)? {
        return directory(
            &dir,
            &format!("[migrations_directory] dir in {}", config.display()),
        );
    }
    let default = cwd.join("migrations");
    if default.is_dir() {
        return directory(&default, "the default ./migrations");
    }
    Err(Failure::new(
        format!(
            "no migrations to run: pass --migrations-dir DIR, run in a project with a diesel.toml \
             or a ./migrations directory (searched from {}), or build your own binary with \
             litedal::cli::run(Some(&MIGRATIONS))",
            cwd.display()
        ),
        1,
    ))
}

fn directory(dir: &Path, named_by: &str) -> Result<Source, Failure> {
    let files = FileBasedMigrations::from_path(dir).map_err(|e| {
        Failure::new(
            format!(
                "the migrations directory {} ({named_by}) cannot be used: {e}",
                dir.display()
            ),
            1,
        )
    })?;
    Ok(Source::Directory(dir.to_path_buf(), files))
}

/// The nearest `diesel.toml` at or above `start` that names a migrations directory, and that
/// directory (relative paths are relative to the file, as for the diesel CLI).
fn diesel_toml_dir(start: &Path) -> Result<Option<(PathBuf, PathBuf)>, Failure> {
    for dir in start.ancestors() {
        let config = dir.join("diesel.toml");
        let text = match std::fs::read_to_string(&config) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Failure::new(
                    format!("reading {}: {e}", config.display()),
                    1,
                ));
            }
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e| Failure::new(format!("{} is not valid TOML: {e}", config.display()), 1))?;
        let named = table
            .get("migrations_directory")
            .and_then(|section| section.get("dir"))
            .and_then(|value| value.as_str());
        return Ok(Some(match named {
            Some(named) => (config.clone(), dir.join(named)),
            // A diesel.toml without the section: the diesel CLI's default beside it.
            None => (config.clone(), dir.join("migrations")),
        }));
    }
    Ok(None)
}
