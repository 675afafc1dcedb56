//! The `users` repository and its typed query builder.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDateTime};
use diesel::dsl::{AsSelect, IntoBoxed, Select};
use diesel::prelude::*;
use diesel::sqlite::Sqlite;
use serde::{Deserialize, Serialize};

use crate::batch::EngineRows;
use crate::engine::EngineKind;
use crate::error::{Error, Result};
use crate::example::models::{
    NewUser, User, UserChanges, UserId, check_name, email_key, stored_email,
};
use crate::example::schema::users;
use crate::executor::Executor;
use crate::paging::{Limit, Page};
use crate::timestamp::DbTimestamp;

/// PostgreSQL's unique index on `lower(email)` guards `users.email`: its conflict (a row
/// stored in other letters around the repository) is the email's. (SQLite's twin is on
/// `email COLLATE NOCASE`, which SQLite reports as `users.email` itself.)
const EMAIL_LOWER_KEY: &str = "users_email_lower_key";

/// `error`, with a conflict on the case-insensitive email index named `users.email`.
fn email_conflict(error: Error) -> Error {
    match error {
        Error::Conflict { constraint, chunk } if constraint == EMAIL_LOWER_KEY => Error::Conflict {
            constraint: "users.email".to_owned(),
            chunk,
        },
        other => other,
    }
}

/// `error` (a row's invalid value) with the row named, for a batch of `len` rows.
fn in_row(error: Error, index: usize, len: usize) -> Error {
    match error {
        Error::InvalidInput {
            what,
            value,
            reason,
        } => Error::InvalidInput {
            what,
            value,
            reason: format!("{reason} (row {index} of a batch of {len}; nothing was inserted)"),
        },
        other => other,
    }
}

/// The boxed diesel query a [`UserQuery`] builds.
pub type UserSelect = IntoBoxed<'static, Select<users::table, AsSelect<User, Sqlite>>, Sqlite>;

/// Typed operations on `users`.
#[derive(Debug, Clone, Copy)]
pub struct Users;

impl Users {
    /// Inserts one user and returns the stored row (its email trimmed and lowercased, see
    /// [`NewUser::email`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming `users.name` or `users.email` for a value they do not
    /// accept (nothing is written), [`Error::Conflict`] naming `users.email` when the email is
    /// taken in any letter case.
    pub fn insert<E: EngineKind>(exec: impl Executor<E>, new: &NewUser<'_>) -> Result<User> {
        check_name(new.name)?;
        let email = stored_email(new.email)?;
        let new = NewUser {
            email: &email,
            ..*new
        };
        exec.write(|conn| {
            Ok(crate::on_engine!(conn, |c| diesel::insert_into(
                users::table
            )
            .values(&new)
            .returning(User::as_returning())
            .get_result(c))?)
        })
        .map_err(email_conflict)
    }

    /// Inserts many users as multi-row statements in one transaction; returns the count.
    /// Every row is checked as [`Users::insert`] checks it before anything is written.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for the first row with a value `users.name` or `users.email`
    /// does not accept, its index in the reason (nothing is written); otherwise the first
    /// failing statement's error naming its chunk; no row of the batch is kept.
    pub fn batch_insert<E: EngineKind>(
        exec: impl Executor<E>,
        rows: &[NewUser<'_>],
    ) -> Result<usize>
    where
        for<'b> NewUser<'b>: EngineRows<'b, users::table, E>,
    {
        let emails = rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                check_name(row.name)
                    .and_then(|()| stored_email(row.email))
                    .map_err(|error| in_row(error, i, rows.len()))
            })
            .collect::<Result<Vec<_>>>()?;
        let rows: Vec<NewUser<'_>> = rows
            .iter()
            .zip(&emails)
            .map(|(row, email)| NewUser { email, ..*row })
            .collect();
        exec.batch_insert(users::table, &rows)
            .map_err(email_conflict)
    }

    /// The user with `id`, or `None`.
    ///
    /// # Errors
    ///
    /// Database and pool errors only; a missing row is `Ok(None)`.
    pub fn find<E: EngineKind>(exec: impl Executor<E>, id: UserId) -> Result<Option<User>> {
        exec.read(|conn| {
            Ok(crate::on_engine!(conn, |c| users::table
                .find(id)
                .select(User::as_select())
                .get_result(c)
                .optional())?)
        })
    }

    /// The user with `email` in any letter case (and with surrounding whitespace ignored), or
    /// `None`: the address is looked up in the form it is stored in.
    ///
    /// # Errors
    ///
    /// Database and pool errors only.
    pub fn find_by_email<E: EngineKind>(
        exec: impl Executor<E>,
        email: &str,
    ) -> Result<Option<User>> {
        let email = email_key(email);
        let email = &*email;
        exec.read(|conn| {
            Ok(crate::on_engine!(conn, |c| users::table
                .filter(users::email.eq(email))
                .select(User::as_select())
                .get_result(c)
                .optional())?)
        })
    }

    /// Applies `changes` to the user with `id`, sets `updated_at`, returns the new row.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no such user, [`Error::Conflict`] for a taken email,
    /// [`Error::InvalidInput`] for a name or email [`NewUser`] would not accept either.
    pub fn update<E: EngineKind>(
        exec: impl Executor<E>,
        id: UserId,
        changes: &UserChanges,
    ) -> Result<User> {
        if let Some(name) = &changes.name {
            check_name(name)?;
        }
        let email = changes.email.as_deref().map(stored_email).transpose()?;
        let changes = &UserChanges {
            email: email.map(Cow::into_owned),
            ..changes.clone()
        };
        exec.write(|conn| {
            Ok(crate::on_engine!(conn, |c| diesel::update(
                users::table.find(id)
            )
            .set((changes, users::updated_at.eq(DbTimestamp::now())))
            .returning(User::as_returning())
            .get_result(c))?)
        })
        .map_err(email_conflict)
    }

    /// Marks the user inactive (their rows stay) and returns the new row.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no such user.
    pub fn deactivate<E: EngineKind>(exec: impl Executor<E>, id: UserId) -> Result<User> {
        Users::update(
            exec,
            id,
            &UserChanges {
                active: Some(false),
                ..UserChanges::default()
            },
        )
    }

    /// Deletes the user and, by `ON DELETE CASCADE`, their posts.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no such user.
    pub fn delete<E: EngineKind>(exec: impl Executor<E>, id: UserId) -> Result<()> {
        exec.write(|conn| {
            match crate::on_engine!(conn, |c| diesel::delete(users::table.find(id)).execute(c))? {
                0 => Err(Error::NotFound),
                _ => Ok(()),
            }
        })
    }

    /// The number of users.
    ///
    /// # Errors
    ///
    /// Database and pool errors.
    pub fn count<E: EngineKind>(exec: impl Executor<E>) -> Result<i64> {
        exec.read(|conn| {
            Ok(crate::on_engine!(conn, |c| users::table
                .count()
                .get_result(c))?)
        })
    }

    /// A typed list query: filters, ordering, keyset paging and a limit, built into one SQL
    /// statement.
    ///
    /// ```
    /// use litedal::Limit;
    /// use litedal::example::repo::Users;
    /// # let test_db = litedal::example::test_db()?;
    /// # let db = test_db.db();
    /// let active = Users::query().active(true).limit(Limit::new(100)?).load(db)?;
    /// assert!(active.is_empty());
    /// # Ok::<(), litedal::Error>(())
    /// ```
    pub fn query() -> UserQuery {
        UserQuery::default()
    }
}

/// The order of a [`UserQuery`]; each has its keyset for [`UserQuery::after`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserOrder {
    /// By id, ascending (insertion order).
    #[default]
    IdAsc,
    /// By id, descending.
    IdDesc,
    /// Oldest first, by `(created_at, id)`.
    CreatedAsc,
    /// Newest first, by `(created_at, id)` descending.
    CreatedDesc,
}

/// The position after which the next page starts: the last row of the previous page.
///
/// It can be sent to clients as an opaque token ([`UserCursor::to_token`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserCursor {
    /// `created_at` of the last row seen.
    pub created_at: NaiveDateTime,
    /// `id` of the last row seen.
    pub id: UserId,
}

impl UserCursor {
    /// The cursor that continues after `user`.
    pub fn after(user: &User) -> UserCursor {
        UserCursor {
            created_at: user.created_at,
            id: user.id,
        }
    }

    /// An opaque text form for URLs: `<created_at in ms since the epoch>_<id>`.
    pub fn to_token(&self) -> String {
        format!(
            "{}_{}",
            self.created_at.and_utc().timestamp_millis(),
            self.id
        )
    }

    /// Parses [`UserCursor::to_token`]'s output.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for anything else, including out-of-range numbers.
    pub fn from_token(token: &str) -> Result<UserCursor> {
        let invalid = |reason: &str| Error::InvalidInput {
            what: "user cursor",
            value: token.chars().take(64).collect(),
            reason: reason.to_owned(),
        };
        let (millis, id) = token.split_once('_').ok_or_else(|| {
            invalid("accepted: <millis>_<id> as produced by UserCursor::to_token")
        })?;
        let millis: i64 = millis
            .parse()
            .map_err(|_| invalid("the timestamp part is not a whole number"))?;
        let id: i64 = id
            .parse()
            .map_err(|_| invalid("the id part is not a whole number"))?;
        if id < 0 {
            return Err(invalid("the id part is negative"));
        }
        let created_at = DateTime::from_timestamp_millis(millis)
            .ok_or_else(|| invalid("the timestamp is out of range"))?
            .naive_utc();
        Ok(UserCursor {
            created_at,
            id: UserId(id),
        })
    }
}

/// Builder of a filtered, ordered, keyset-paged and limited list of users.
///
/// Everything becomes one diesel boxed query ([`UserQuery::to_query`]); nothing is filtered
/// in Rust.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    active: Option<bool>,
    name_prefix: Option<String>,
    email_domain: Option<String>,
    created_between: Option<(NaiveDateTime, NaiveDateTime)>,
    order: UserOrder,
    after: Option<UserCursor>,
    limit: Limit,
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The boxed query of a [`UserQuery`] with `LIMIT $limit`, for the backend its use infers:
/// written once, expanded once per engine (inside [`on_engine!`](crate::on_engine) arms) and
/// once for [`UserQuery::to_query`].
macro_rules! user_select {
    ($self:expr, $limit:expr) => {{
        let mut query = users::table.select(User::as_select()).into_boxed();
        if let Some(active) = $self.active {
            query = query.filter(users::active.eq(active));
        }
        if let Some(prefix) = &$self.name_prefix {
            query = query.filter(
                users::name
                    .like(format!("{}%", escape_like(prefix)))
                    .escape('\\'),
            );
        }
        if let Some(domain) = &$self.email_domain {
            query = query.filter(
                users::email
                    .like(format!("%@{}", escape_like(domain)))
                    .escape('\\'),
            );
        }
        if let Some((from, to)) = $self.created_between {
            if from > to {
                return Err(Error::InvalidInput {
                    what: "created_between",
                    value: format!("{from} .. {to}"),
                    reason: "the start must not be after the end".to_owned(),
                });
            }
            query = query.filter(
                users::created_at
                    .ge(DbTimestamp(from))
                    .and(users::created_at.lt(DbTimestamp(to))),
            );
        }
        if let Some(c) = $self.after {
            let at = DbTimestamp(c.created_at);
            query = match $self.order {
                UserOrder::IdAsc => query.filter(users::id.gt(c.id)),
                UserOrder::IdDesc => query.filter(users::id.lt(c.id)),
                // The first term bounds the index range; the second breaks ties by id.
                UserOrder::CreatedAsc => query.filter(
                    users::created_at
                        .ge(at)
                        .and(users::created_at.gt(at).or(users::id.gt(c.id))),
                ),
                UserOrder::CreatedDesc => query.filter(
                    users::created_at
                        .le(at)
                        .and(users::created_at.lt(at).or(users::id.lt(c.id))),
                ),
            };
        }
        query = match $self.order {
            UserOrder::IdAsc => query.order(users::id.asc()),
            UserOrder::IdDesc => query.order(users::id.desc()),
            UserOrder::CreatedAsc => query.order((users::created_at.asc(), users::id.asc())),
            UserOrder::CreatedDesc => query.order((users::created_at.desc(), users::id.desc())),
        };
        Ok::<_, Error>(query.limit($limit))
    }};
}

impl UserQuery {
    /// Only active (`true`) or only inactive (`false`) users.
    pub fn active(mut self, active: bool) -> Self {
        self.active = Some(active);
        self
    }

    /// Names starting with `prefix` (ASCII case-insensitive, like SQLite's LIKE).
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = Some(prefix.into());
        self
    }

    /// Emails at `domain` (`...@domain`), in any letter case: emails are stored lowercased.
    pub fn email_domain(mut self, domain: impl Into<String>) -> Self {
        self.email_domain = Some(domain.into().to_lowercase());
        self
    }

    /// Created in `[from, to)`, UTC, to the millisecond.
    pub fn created_between(mut self, from: NaiveDateTime, to: NaiveDateTime) -> Self {
        self.created_between = Some((from, to));
        self
    }

    /// The order; default [`UserOrder::IdAsc`].
    pub fn order(mut self, order: UserOrder) -> Self {
        self.order = order;
        self
    }

    /// Starts after `cursor` (keyset paging, no OFFSET).
    pub fn after(mut self, cursor: UserCursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// At most `limit` rows; default 100.
    pub fn limit(mut self, limit: Limit) -> Self {
        self.limit = limit;
        self
    }

    /// The diesel query this builder stands for, with `LIMIT limit`. Inspect it with
    /// `diesel::debug_query::<Sqlite, _>(&query)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `created_between` has `from` after `to`.
    pub fn to_query(&self) -> Result<UserSelect> {
        self.build(i64::from(self.limit.get()))
    }

    fn build(&self, limit: i64) -> Result<UserSelect> {
        user_select!(self, limit)
    }

    /// Runs the query.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an empty `created_between`, database and pool errors.
    pub fn load<E: EngineKind>(self, exec: impl Executor<E>) -> Result<Vec<User>> {
        let limit = i64::from(self.limit.get());
        exec.read(|conn| {
            crate::on_engine!(conn, |c| {
                let query = user_select!(self, limit)?;
                Ok(query.load(c)?)
            })
        })
    }

    /// Runs the query and returns a page with the cursor of the next one. One extra row is
    /// fetched to know whether a next page exists, so the last page has `next: None`.
    ///
    /// # Errors
    ///
    /// As [`UserQuery::load`].
    pub fn page<E: EngineKind>(self, exec: impl Executor<E>) -> Result<Page<User, UserCursor>> {
        let limit = self.limit;
        let rows: Vec<User> = exec.read(|conn| {
            crate::on_engine!(conn, |c| {
                let query = user_select!(self, limit.fetch())?;
                Ok(query.load(c)?)
            })
        })?;
        Ok(Page::from_rows(rows, limit, UserCursor::after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like(r"50%_off\"), r"50\%\_off\\");
    }

    #[test]
    fn cursor_tokens_round_trip_and_reject_garbage() {
        let cursor = UserCursor {
            created_at: DateTime::from_timestamp_millis(1_700_000_000_123)
                .unwrap()
                .naive_utc(),
            id: UserId(42),
        };
        assert_eq!(UserCursor::from_token(&cursor.to_token()).unwrap(), cursor);
        for bad in [
            "",
            "1_",
            "_1",
            "x_1",
            "1_x",
            "1_-5",
            "99999999999999999999_1",
            "9223372036854775807_1",
        ] {
            assert!(
                matches!(UserCursor::from_token(bad), Err(Error::InvalidInput { .. })),
                "{bad}"
            );
        }
    }
}
