//! diesel models, one file per table: a read model (`User`), an insert model that borrows its
//! strings (`NewUser<'a>`) and a changeset (`UserChanges`).
//!
//! Insert models are declared with `#[diesel(treat_none_as_default_value = false)]`: only then
//! does diesel insert a slice as one multi-row `INSERT ... VALUES (..), (..)` on SQLite
//! (with the default it inserts row by row). Columns with a database default (`id`,
//! timestamps) are left out of the insert models so the default applies.
//!
//! Changesets use `Option<T>` per column: `None` leaves the column as it is. For a nullable
//! column the convention is `Option<Option<T>>`: `None` leaves it, `Some(None)` sets NULL,
//! `Some(Some(v))` sets `v` (none of the current tables has a nullable column).

mod post;
mod user;

pub use post::{NewPost, Post, PostChanges, PostId, PostWithAuthor};
pub use user::{NewUser, User, UserChanges, UserId};
pub(crate) use user::{check_name, email_key, stored_email};
