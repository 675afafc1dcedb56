//! The `users` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

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
    /// Unique email address (constraint `users.email`).
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
    /// Display name.
    pub name: &'a str,
    /// Unique email address.
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
    /// New display name.
    pub name: Option<String>,
    /// New email address (must stay unique).
    pub email: Option<String>,
    /// New active flag.
    pub active: Option<bool>,
}
