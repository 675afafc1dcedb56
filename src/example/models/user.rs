//! The `users` table.

use std::borrow::Cow;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::example::schema::users;

crate::typed_id! {
    /// The id of a row in `users`.
    pub UserId
}

/// A row of `users`. Timestamps are UTC with millisecond precision.
#[derive(
    Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Serialize, Deserialize,
)]
#[diesel(table_name = users, check_for_backend(diesel::sqlite::Sqlite))]
#[cfg_attr(feature = "postgres", diesel(check_for_backend(diesel::pg::Pg)))]
pub struct User {
    /// Primary key.
    pub id: UserId,
    /// Display name.
    pub name: String,
    /// Unique email address (constraint `users.email`), as the repository stores it: trimmed
    /// and lowercased (see [`NewUser::email`]).
    pub email: String,
    /// False once the user is deactivated.
    pub active: bool,
    /// When the row was inserted (set by the database).
    #[diesel(deserialize_as = crate::timestamp::StoredTimestamp)]
    pub created_at: NaiveDateTime,
    /// When the row was last changed through the repository.
    #[diesel(deserialize_as = crate::timestamp::StoredTimestamp)]
    pub updated_at: NaiveDateTime,
}

/// A user to insert; `id` and the timestamps come from the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Insertable, Serialize)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
#[cfg_attr(feature = "postgres", diesel(check_for_backend(diesel::pg::Pg)))]
pub struct NewUser<'a> {
    /// Display name: at least one character that is not whitespace, and no control
    /// characters (NUL, line breaks, tabs, ...); stored as given. The repository refuses
    /// anything else with [`Error::InvalidInput`] naming `users.name`.
    pub name: &'a str,
    /// Unique email address, whatever its letter case: the repository stores it trimmed and
    /// lowercased (Unicode lowercase), so `A@x.example` and `a@x.example` are one account on
    /// both engines, and finds it the same way. It must contain an `@` and no control
    /// characters ([`Error::InvalidInput`] naming `users.email` otherwise).
    pub email: &'a str,
    /// Whether the user starts active.
    pub active: bool,
}

impl<'a> NewUser<'a> {
    /// An active user.
    pub fn new(name: &'a str, email: &'a str) -> Self {
        NewUser {
            name,
            email,
            active: true,
        }
    }
}

/// Changes to a user: `None` leaves a column as it is. `updated_at` is set by the repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, AsChangeset, Deserialize)]
#[diesel(table_name = users)]
pub struct UserChanges {
    /// New display name, checked as [`NewUser::name`] is.
    pub name: Option<String>,
    /// New email address (must stay unique), stored as [`NewUser::email`] is.
    pub email: Option<String>,
    /// New active flag.
    pub active: Option<bool>,
}

/// The control characters a stored name or email may not contain: Unicode's `Cc` category
/// (U+0000-U+001F, U+007F-U+009F), NUL included. Format characters such as U+202E are text.
fn first_control(value: &str) -> Option<char> {
    value.chars().find(|c| c.is_control())
}

fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        what,
        value: value.chars().take(64).collect(),
        reason: reason.into(),
    }
}

/// Checks a name for `users.name` (see [`NewUser::name`]).
///
/// # Errors
///
/// [`Error::InvalidInput`] naming `users.name` for a name that is empty or only whitespace,
/// or that contains a control character.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(invalid(
            "users.name",
            name,
            "a name needs at least one character that is not whitespace",
        ));
    }
    if let Some(c) = first_control(name) {
        return Err(invalid(
            "users.name",
            name,
            format!(
                "control character U+{:04X} in a name; accepted: printable text",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// The key an email is stored and looked up by: trimmed, Unicode-lowercased. Borrowed when
/// the address is already in that form (the bulk insert's common case: no allocation).
pub(crate) fn email_key(email: &str) -> Cow<'_, str> {
    let trimmed = email.trim();
    let lower = trimmed
        .chars()
        .all(|c| c.to_lowercase().eq(std::iter::once(c)));
    if lower {
        Cow::Borrowed(trimmed)
    } else {
        Cow::Owned(trimmed.to_lowercase())
    }
}

/// Checks an email for `users.email` (see [`NewUser::email`]) and returns its stored form.
///
/// # Errors
///
/// [`Error::InvalidInput`] naming `users.email` for an address without an `@` or with a
/// control character.
pub(crate) fn stored_email(email: &str) -> Result<Cow<'_, str>> {
    if let Some(c) = first_control(email) {
        return Err(invalid(
            "users.email",
            email,
            format!(
                "control character U+{:04X} in an email address; accepted: printable text with an @",
                c as u32
            ),
        ));
    }
    let key = email_key(email);
    match key.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(key),
        _ => Err(invalid(
            "users.email",
            email,
            "accepted: an address with text on both sides of an @",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_need_text_and_no_control_characters() {
        for bad in [
            "",
            " ",
            "\t \n",
            "\0",
            "\0\0",
            "a\0b",
            "line\nbreak",
            "\u{7f}",
            "\u{85}",
        ] {
            match check_name(bad) {
                Err(Error::InvalidInput { what, .. }) => assert_eq!(what, "users.name", "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        for good in ["Ada", " Ada ", "Zoë", "\u{202e}txet", "🦀"] {
            check_name(good).unwrap();
        }
    }

    #[test]
    fn emails_are_stored_trimmed_and_lowercased() {
        assert_eq!(stored_email("A@X.example").unwrap(), "a@x.example");
        assert_eq!(stored_email("  ÄDA@x.example ").unwrap(), "äda@x.example");
        assert!(matches!(
            stored_email("a@x.example").unwrap(),
            Cow::Borrowed(_)
        ));
        for bad in ["", "   ", "ada", "@x", "ada@", "a\0@x", "a@x\n"] {
            match stored_email(bad) {
                Err(Error::InvalidInput { what, .. }) => assert_eq!(what, "users.email", "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
