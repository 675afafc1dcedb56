//! The `posts` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::user::{User, UserId};
use crate::example::schema::posts;

crate::typed_id! {
    /// The id of a row in `posts`.
    pub PostId
}

/// A row of `posts`. Deleting its user deletes the post (`ON DELETE CASCADE`).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Queryable,
    Selectable,
    Identifiable,
    Associations,
    Serialize,
    Deserialize,
)]
#[diesel(table_name = posts, belongs_to(User), check_for_backend(diesel::sqlite::Sqlite))]
#[cfg_attr(feature = "postgres", diesel(check_for_backend(diesel::pg::Pg)))]
pub struct Post {
    /// Primary key.
    pub id: PostId,
    /// The author.
    pub user_id: UserId,
    /// Title.
    pub title: String,
    /// Body text.
    pub body: String,
    /// False while the post is a draft.
    pub published: bool,
    /// When the row was inserted (set by the database), UTC.
    #[diesel(deserialize_as = crate::timestamp::StoredTimestamp)]
    pub created_at: NaiveDateTime,
}

/// A post to insert; `id` and `created_at` come from the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Insertable, Serialize)]
#[diesel(table_name = posts, treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
#[cfg_attr(feature = "postgres", diesel(check_for_backend(diesel::pg::Pg)))]
pub struct NewPost<'a> {
    /// The author; must exist (`Error::ForeignKey` otherwise).
    pub user_id: UserId,
    /// Title.
    pub title: &'a str,
    /// Body text.
    pub body: &'a str,
    /// Whether the post is published at once.
    pub published: bool,
}

/// Changes to a post: `None` leaves a column as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, AsChangeset, Deserialize)]
#[diesel(table_name = posts)]
pub struct PostChanges {
    /// New title.
    pub title: Option<String>,
    /// New body.
    pub body: Option<String>,
    /// Publish or unpublish.
    pub published: Option<bool>,
}

/// A post with its author, loaded in one statement (an inner join).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
#[cfg_attr(feature = "postgres", diesel(check_for_backend(diesel::pg::Pg)))]
pub struct PostWithAuthor {
    /// The post.
    #[diesel(embed)]
    pub post: Post,
    /// Its author.
    #[diesel(embed)]
    pub author: User,
}
