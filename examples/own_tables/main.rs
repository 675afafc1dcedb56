//! Your own tables on litedal: an application with a `notes` table of its own, from migrations
//! to a repository and its tests. Nothing of litedal's reference domain (users, posts) is used
//! or created: the database holds exactly `notes` and diesel's migrations table.
//!
//! ```text
//! cargo run --example own_tables            # on data/notes.db (DATABASE_URL to change)
//! cargo test --example own_tables           # its tests (plain `cargo test` runs them too)
//! ```
//!
//! What an application writes, in order: migrations in its own directory (here
//! `examples/own_tables/migrations`, usually `migrations/`, which the diesel CLI also runs),
//! embedded with `embed_migrations!`; the schema (`diesel print-schema` writes it); models; a
//! repository whose functions take an [`Executor`], so that they run on the `Database` or
//! inside a transaction; keyset pages with opaque tokens; tests on a `TestDb`.

use std::process::ExitCode;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use litedal::paging::decode_cursor;
use litedal::{Database, DbTimestamp, Executor, Limit, Page, StoredTimestamp};
use serde::{Deserialize, Serialize};

/// The application's migrations, embedded at build time.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("examples/own_tables/migrations");

/// What `diesel print-schema` generates for the migrations above.
pub mod schema {
    diesel::table! {
        notes (id) {
            id -> BigInt,
            author -> Text,
            body -> Text,
            created_at -> Timestamp,
        }
    }
}

use schema::notes;

litedal::typed_id! {
    /// The id of a row in `notes`.
    pub NoteId
}

/// A row of `notes`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = notes, check_for_backend(diesel::sqlite::Sqlite))]
pub struct Note {
    pub id: NoteId,
    pub author: String,
    pub body: String,
    /// Read with litedal's fast parser of the stored text.
    #[diesel(deserialize_as = StoredTimestamp)]
    pub created_at: NaiveDateTime,
}

/// A note to insert. `treat_none_as_default_value = false` lets diesel insert a slice as one
/// multi-row statement (batch inserts); `id` and `created_at` come from the database.
#[derive(Debug, Clone, Copy, Insertable)]
#[diesel(table_name = notes, treat_none_as_default_value = false)]
pub struct NewNote<'a> {
    pub author: &'a str,
    pub body: &'a str,
}

/// Where the next page of an author's notes starts (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteCursor {
    pub created_at: NaiveDateTime,
    pub id: NoteId,
}

/// The repository: each function takes an [`Executor`] (`&Database`, or the connection of a
/// transaction).
pub struct Notes;

impl Notes {
    /// Inserts one note and returns it.
    pub fn insert(exec: impl Executor, new: &NewNote<'_>) -> litedal::Result<Note> {
        exec.write(|conn| {
            Ok(diesel::insert_into(notes::table)
                .values(new)
                .returning(Note::as_returning())
                .get_result(conn)?)
        })
    }

    /// Inserts many notes as multi-row statements, all or none; returns the count.
    pub fn batch_insert(exec: impl Executor, rows: &[NewNote<'_>]) -> litedal::Result<usize> {
        exec.batch_insert(notes::table, rows)
    }

    /// The note with `id`, or `None`.
    pub fn find(exec: impl Executor, id: NoteId) -> litedal::Result<Option<Note>> {
        exec.read(|conn| {
            Ok(notes::table
                .find(id)
                .select(Note::as_select())
                .get_result(conn)
                .optional()?)
        })
    }

    /// A page of `author`'s notes, newest first, after the page whose token is `after`.
    pub fn by_author(
        exec: impl Executor,
        author: &str,
        limit: Limit,
        after: Option<&str>,
    ) -> litedal::Result<Page<Note, NoteCursor>> {
        let mut query = notes::table
            .filter(notes::author.eq(author.to_owned()))
            .select(Note::as_select())
            .order((notes::created_at.desc(), notes::id.desc()))
            .limit(limit.fetch())
            .into_boxed();
        if let Some(token) = after {
            let cursor: NoteCursor = decode_cursor(token)?;
            // DbTimestamp binds the exact stored text: SQLite compares timestamps as text.
            let at = DbTimestamp(cursor.created_at);
            query = query.filter(
                notes::created_at
                    .le(at)
                    .and(notes::created_at.lt(at).or(notes::id.lt(cursor.id))),
            );
        }
        let rows = exec.read(|conn| Ok(query.load(conn)?))?;
        Ok(Page::from_rows(rows, limit, |note| NoteCursor {
            created_at: note.created_at,
            id: note.id,
        }))
    }
}

fn run() -> litedal::Result<()> {
    // DATABASE_URL and DB_* from the environment; this application's migrations.
    let mut config = litedal::ConfigBuilder::from_env()?;
    if std::env::var_os("DATABASE_URL").is_none() {
        config = config.database_url("sqlite://data/notes.db");
    }
    let db = Database::open(config.migrations(&MIGRATIONS).build()?)?;
    // Each run writes under its own author, so runs (even concurrent ones) never collide.
    let author = format!("run-{}-{}", std::process::id(), DbTimestamp::now().0);
    let bodies: Vec<String> = (1..=250).map(|i| format!("note {i}")).collect();
    let rows: Vec<NewNote> = bodies
        .iter()
        .map(|body| NewNote {
            author: &author,
            body,
        })
        .collect();
    let inserted = Notes::batch_insert(&db, &rows)?;
    let first = db.transaction(|conn| {
        Notes::insert(
            &mut *conn,
            &NewNote {
                author: &author,
                body: "written in a transaction",
            },
        )
    })?;
    let (mut pages, mut seen, mut token) = (0, 0, None::<String>);
    loop {
        let page = Notes::by_author(&db, &author, Limit::new(100)?, token.as_deref())?;
        pages += 1;
        seen += page.items.len();
        token = page.next_token()?;
        if token.is_none() {
            break;
        }
    }
    println!(
        "database: {} (tables: notes, __diesel_schema_migrations)",
        db.location().to_url()
    );
    println!(
        "inserted {inserted} notes in one batch and note {} in a transaction; \
         read {seen} back in {pages} keyset pages of up to 100",
        first.id
    );
    Ok(())
}

fn main() -> ExitCode {
    // Logs on stderr (`RUST_LOG`, `DB_LOG_FORMAT=json`).
    if let Err(error) = litedal::cli::init_logging("warn") {
        eprintln!("own_tables: error: {}", error.report());
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("own_tables: error: {}", error.report());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::Text;
    use litedal::testing::TestDb;

    use super::*;

    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }

    #[test]
    fn the_database_holds_only_the_applications_tables() {
        let db = TestDb::with_migrations(&MIGRATIONS).unwrap();
        let tables: Vec<String> = db
            .read(|conn| {
                Ok(diesel::sql_query(
                    "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
                )
                .load::<Name>(conn)?)
            })
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(tables, ["__diesel_schema_migrations", "notes"]);
    }

    #[test]
    fn notes_page_newest_first_through_opaque_tokens() {
        let db = TestDb::with_migrations(&MIGRATIONS).unwrap();
        let bodies: Vec<String> = (0..25).map(|i| format!("n{i}")).collect();
        let rows: Vec<NewNote> = bodies
            .iter()
            .map(|body| NewNote {
                author: "ada",
                body,
            })
            .collect();
        assert_eq!(Notes::batch_insert(db.db(), &rows).unwrap(), 25);
        Notes::insert(
            db.db(),
            &NewNote {
                author: "bob",
                body: "other",
            },
        )
        .unwrap();
        let (mut ids, mut token) = (Vec::new(), None::<String>);
        loop {
            let page = Notes::by_author(db.db(), "ada", Limit::new(10).unwrap(), token.as_deref())
                .unwrap();
            assert!(page.items.iter().all(|n| n.author == "ada"));
            ids.extend(page.items.iter().map(|n| n.id.get()));
            token = page.next_token().unwrap();
            if token.is_none() {
                break;
            }
        }
        // One batch: same millisecond for most rows, so the id breaks the ties.
        assert_eq!(ids, (1..=25).rev().collect::<Vec<i64>>());
        let bad = Notes::by_author(db.db(), "ada", Limit::default(), Some("not-a-token"));
        assert!(matches!(bad, Err(litedal::Error::InvalidInput { .. })));
    }

    #[test]
    fn repository_writes_compose_in_one_transaction() {
        let db = TestDb::with_migrations(&MIGRATIONS).unwrap();
        let result = db.transaction(|conn| {
            Notes::insert(
                &mut *conn,
                &NewNote {
                    author: "a",
                    body: "kept?",
                },
            )?;
            // An empty body breaks the CHECK constraint: the whole transaction rolls back.
            Notes::insert(
                &mut *conn,
                &NewNote {
                    author: "a",
                    body: "",
                },
            )?;
            Ok(())
        });
        assert!(
            matches!(result, Err(litedal::Error::Check { .. })),
            "{result:?}"
        );
        assert_eq!(Notes::find(db.db(), NoteId(1)).unwrap(), None);
        let kept = Notes::insert(
            db.db(),
            &NewNote {
                author: "a",
                body: "kept",
            },
        )
        .unwrap();
        assert_eq!(Notes::find(db.db(), kept.id).unwrap(), Some(kept));
    }
}
