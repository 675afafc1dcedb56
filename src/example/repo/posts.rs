//! The `posts` repository.

use diesel::prelude::*;

use crate::error::{Error, Result};
use crate::example::models::{NewPost, Post, PostChanges, PostId, PostWithAuthor, User, UserId};
use crate::example::schema::{posts, users};
use crate::executor::Executor;
use crate::paging::Limit;

/// Typed operations on `posts`.
#[derive(Debug, Clone, Copy)]
pub struct Posts;

impl Posts {
    /// Inserts one post and returns the stored row.
    ///
    /// # Errors
    ///
    /// [`Error::ForeignKey`] when the author does not exist.
    pub fn insert(exec: impl Executor, new: &NewPost<'_>) -> Result<Post> {
        exec.write(|conn| {
            Ok(diesel::insert_into(posts::table)
                .values(new)
                .returning(Post::as_returning())
                .get_result(conn)?)
        })
    }

    /// Inserts many posts as multi-row statements in one transaction; returns the count.
    ///
    /// # Errors
    ///
    /// The first failing statement's error naming its chunk; no row of the batch is kept.
    pub fn batch_insert(exec: impl Executor, rows: &[NewPost<'_>]) -> Result<usize> {
        exec.batch_insert(posts::table, rows)
    }

    /// The post with `id`, or `None`.
    ///
    /// # Errors
    ///
    /// Database and pool errors only.
    pub fn find(exec: impl Executor, id: PostId) -> Result<Option<Post>> {
        exec.read(|conn| {
            Ok(posts::table
                .find(id)
                .select(Post::as_select())
                .get_result(conn)
                .optional()?)
        })
    }

    /// A user's posts (drafts included), newest first.
    ///
    /// # Errors
    ///
    /// Database and pool errors.
    pub fn by_user(exec: impl Executor, user: UserId, limit: Limit) -> Result<Vec<Post>> {
        exec.read(|conn| {
            Ok(posts::table
                .filter(posts::user_id.eq(user))
                .order((posts::created_at.desc(), posts::id.desc()))
                .limit(i64::from(limit.get()))
                .select(Post::as_select())
                .load(conn)?)
        })
    }

    /// The newest published posts of all users.
    ///
    /// # Errors
    ///
    /// Database and pool errors.
    pub fn recent(exec: impl Executor, limit: Limit) -> Result<Vec<Post>> {
        exec.read(|conn| {
            Ok(posts::table
                .filter(posts::published.eq(true))
                .order((posts::created_at.desc(), posts::id.desc()))
                .limit(i64::from(limit.get()))
                .select(Post::as_select())
                .load(conn)?)
        })
    }

    /// The newest published posts with their authors, in one statement (an inner join).
    ///
    /// # Errors
    ///
    /// Database and pool errors.
    pub fn recent_with_authors(exec: impl Executor, limit: Limit) -> Result<Vec<PostWithAuthor>> {
        exec.read(|conn| {
            Ok(posts::table
                .inner_join(users::table)
                .filter(posts::published.eq(true))
                .order((posts::created_at.desc(), posts::id.desc()))
                .limit(i64::from(limit.get()))
                .select((Post::as_select(), User::as_select()))
                .load::<(Post, User)>(conn)?
                .into_iter()
                .map(|(post, author)| PostWithAuthor { post, author })
                .collect())
        })
    }

    /// Applies `changes` to the post with `id` and returns the new row.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no such post.
    pub fn update(exec: impl Executor, id: PostId, changes: &PostChanges) -> Result<Post> {
        if changes == &PostChanges::default() {
            // diesel refuses an empty changeset; an update that changes nothing still has to
            // report a missing row.
            return exec.read(|conn| {
                Ok(posts::table
                    .find(id)
                    .select(Post::as_select())
                    .get_result(conn)?)
            });
        }
        exec.write(|conn| {
            Ok(diesel::update(posts::table.find(id))
                .set(changes)
                .returning(Post::as_returning())
                .get_result(conn)?)
        })
    }

    /// Publishes the post and returns the new row.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no such post.
    pub fn publish(exec: impl Executor, id: PostId) -> Result<Post> {
        Posts::update(
            exec,
            id,
            &PostChanges {
                published: Some(true),
                ..PostChanges::default()
            },
        )
    }

    /// Deletes the post.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no such post.
    pub fn delete(exec: impl Executor, id: PostId) -> Result<()> {
        exec.write(
            |conn| match diesel::delete(posts::table.find(id)).execute(conn)? {
                0 => Err(Error::NotFound),
                _ => Ok(()),
            },
        )
    }

    /// The number of posts.
    ///
    /// # Errors
    ///
    /// Database and pool errors.
    pub fn count(exec: impl Executor) -> Result<i64> {
        exec.read(|conn| Ok(posts::table.count().get_result(conn)?))
    }
}
