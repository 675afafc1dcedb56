//! Repositories: typed queries over the models, one file per table.
//!
//! Every repository function takes an [`Executor`](crate::Executor): either `&Database` (reads check out a
//! read connection, writes run in their own immediate transaction) or a connection the
//! caller already holds, so that several operations compose inside one
//! [`Database::transaction`]:
//!
//! ```
//! use litedal::example::models::{NewPost, NewUser};
//! use litedal::example::repo::{Posts, Users};
//!
//! # let test_db = litedal::example::test_db()?;
//! # let db = test_db.db();
//! // A user and their first post, atomically: both rows or neither.
//! let (user, post) = db.transaction(|conn| {
//!     let user = Users::insert(&mut *conn, &NewUser::new("Ada", "ada@example.com"))?;
//!     let post = Posts::insert(
//!         &mut *conn,
//!         &NewPost { user_id: user.id, title: "Hello", body: "First post", published: true },
//!     )?;
//!     Ok((user, post))
//! })?;
//! assert_eq!(Posts::find(db, post.id)?.map(|p| p.user_id), Some(user.id));
//! # Ok::<(), litedal::Error>(())
//! ```
//!
//! (`&mut *conn` reborrows the connection so it can be passed again.)
//!
//! Lookups by primary key or unique column use `get_result`, not `first`: `first` adds
//! `LIMIT ?`, and a bound LIMIT makes SQLite re-prepare the statement every time the value
//! is bound again (measured: 70k against 195k point reads/s on one thread).

mod posts;
mod users;

pub use posts::Posts;
pub use users::{UserCursor, UserOrder, UserQuery, Users};

#[cfg(doc)]
use crate::database::Database;
