//! The `posts` repository.

use diesel::prelude::*;

use crate::batch::EngineRows;
use crate::engine::EngineKind;
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
    pub fn insert<E: EngineKind>(exec: impl Executor<E>, new: &NewPost<'_>) -> Result<Post> {
        exec.write(|conn| {
            Ok(crate::on_engine!(conn, |c| diesel::insert_into(
                posts::table
            )
            .values(new)
            .returning(Post::as_returning())
            .get_result(c))?)
        })
    }

    /// Inserts many posts as multi-row statements in one transaction; returns the count.
    ///
    /// # Errors
    ///
    /// The first failing statement's error naming its chunk; no row of the batch is kept.
    pub fn batch_insert<'a, E: EngineKind>(
        exec: impl Executor<E>,
        rows: &'a [NewPost<'a>],
    ) -> Result<usize>
    where
        NewPost<'a>: EngineRows<'a, posts::table, E>,
    {
        exec.batch_insert(posts::table, rows)
    }

    /// The post with `id`, or `None`.
    ///
    /// # Errors
    ///
    /// Database and pool errors only.
    pub fn find<E: EngineKind>(exec: impl Executor<E>, id: PostId) -> Result<Option<Post>> {
        exec.read(|conn| {
            Ok(crate::on_engine!(conn, |c| posts::table
                .find(id)
                .select(Post::as_select())
                .get_result(c)
                .optional())?)
        })
    }

    /// A user's posts (drafts included), newest first.
    ///
    /// # Errors
    ///
    /// Database and pool errors.
    pub fn by_user<E: EngineKind>(
        exec: impl Executor<E>,
        user: UserId,
        limit: Limit,
    ) -> Result<Vec<Post>> {
        exec.read(|conn| {
            Ok(crate::on_engine!(conn, |c| posts::table
                .filter(posts::user_id.eq(user))
                .order((posts::created_at.desc(), posts::id.desc()))
                .limit(i64::from(limit.get()))
                .select(Post::as_select())
                .load(c))?)
        })
    }

    /// The newest published posts of all users.
    ///
    /// # Errors
    ///
    /// Database and pool errors.
    pub fn recent<E: EngineKind>(exec: impl Executor<E>, limit: Limit) -> Result<Vec<Post>> {
        exec.read(|conn| {
            Ok(crate::on_engine!(conn, |c| posts::table
                .filter(posts::published.eq(true))
                .order((posts::created_at.desc(), posts::id.desc()))
                .limit(i64::from(limit.get()))
                .select(Post::as_select())
                .load(c))?)
        })
    }

    /// The newest published posts with their authors, in one statement (an inner join).
    ///
    /// # Errors
    ///
    /// Database and pool errors.
    pub fn recent_with_authors<E: EngineKind>(
        exec: impl Executor<E>,
        limit: Limit,
    ) -> Result<Vec<PostWithAuthor>> {
        exec.read(|conn| {
            Ok(crate::on_engine!(conn, |c| posts::table
                .inner_join(users::table)
                .filter(posts::published.eq(true))
                .order((posts::created_at.desc(), posts::id.desc()))
                .limit(i64::from(limit.get()))
                .select((Post::as_select(), User::as_select()))
                .load::<(Post, User)>(c))?
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
    pub fn update<E: EngineKind>(
        exec: impl Executor<E>,
        id: PostId,
        changes: &PostChanges,
    ) -> Result<Post> {
        if changes == &PostChanges::default() {
            // diesel refuses an empty changeset; an update that changes nothing still has to
            // report a missing row.
            return exec.read(|conn| {
                Ok(crate::on_engine!(conn, |c| posts::table
                    .find(id)
                    .select(Post::as_select())
                    .get_result(c))?)
            });
        }
        exec.write(|conn| {
            Ok(crate::on_engine!(conn, |c| diesel::update(
                posts::table.find(id)
            )
            .set(changes)
            .returning(Post::as_returning())
            .get_result(c))?)
        })
    }

    /// Publishes the post and returns the new row.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no such post.
    pub fn publish<E: EngineKind>(exec: impl Executor<E>, id: PostId) -> Result<Post> {
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
    pub fn delete<E: EngineKind>(exec: impl Executor<E>, id: PostId) -> Result<()> {
        exec.write(|conn| {
            match crate::on_engine!(conn, |c| diesel::delete(posts::table.find(id)).execute(c))? {
                0 => Err(Error::NotFound),
                _ => Ok(()),
            }
        })
    }

    /// The number of posts.
    ///
    /// # Errors
    ///
    /// Database and pool errors.
    pub fn count<E: EngineKind>(exec: impl Executor<E>) -> Result<i64> {
        exec.read(|conn| {
            Ok(crate::on_engine!(conn, |c| posts::table
                .count()
                .get_result(c))?)
        })
    }
}
