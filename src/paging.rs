//! Lists with limits and keyset pages: [`Limit`], [`Page`], and opaque cursor tokens.
//!
//! A keyset page of an application's own table in a few lines: fetch [`Limit::fetch`] rows
//! (one more than the limit) ordered by the key, turn them into a [`Page`] with
//! [`Page::from_rows`], and hand clients [`Page::next_token`]; the next request decodes it
//! with [`decode_cursor`] and filters on the key:
//!
//! ```
//! use diesel::prelude::*;
//! use litedal::{Limit, Page, paging::decode_cursor};
//! use serde::{Deserialize, Serialize};
//!
//! diesel::table! {
//!     notes (id) {
//!         id -> BigInt,
//!         body -> Text,
//!     }
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! struct After {
//!     id: i64,
//! }
//!
//! fn page(conn: &mut SqliteConnection, token: Option<&str>, limit: Limit)
//!     -> litedal::Result<Page<(i64, String), After>>
//! {
//!     let mut query = notes::table.select((notes::id, notes::body)).order(notes::id).into_boxed();
//!     if let Some(token) = token {
//!         let after: After = decode_cursor(token)?;
//!         query = query.filter(notes::id.gt(after.id));
//!     }
//!     let rows = query.limit(limit.fetch()).load(conn)?;
//!     Ok(Page::from_rows(rows, limit, |(id, _)| After { id: *id }))
//! }
//!
//! let mut conn = SqliteConnection::establish(":memory:")?;
//! diesel::sql_query("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)").execute(&mut conn)?;
//! for i in 1..=5 {
//!     diesel::insert_into(notes::table).values((notes::id.eq(i), notes::body.eq("n"))).execute(&mut conn)?;
//! }
//! let first = page(&mut conn, None, Limit::new(2)?)?;
//! assert_eq!(first.items.len(), 2);
//! let token = first.next_token()?.expect("a next page");
//! let second = page(&mut conn, Some(&token), Limit::new(2)?)?;
//! assert_eq!(second.items[0].0, 3);
//! let last = page(&mut conn, second.next_token()?.as_deref(), Limit::new(2)?)?;
//! assert_eq!((last.items.len(), last.next.is_none()), (1, true));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// How many rows a list query may return: 1 to a maximum ([`Limit::MAX`] unless the query
/// type sets its own with [`Limit::with_max`]), default 100.
///
/// Out-of-range values are an error, never silently clamped: a caller asking for 5000 rows
/// should learn that it gets at most 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Limit(u32);

impl Limit {
    /// The largest limit of [`Limit::new`].
    pub const MAX: u32 = 1000;
    /// The default limit, 100.
    pub const DEFAULT: Limit = Limit(100);

    /// A limit of `n` rows, at most [`Limit::MAX`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `n` is 0 or above [`Limit::MAX`].
    ///
    /// ```
    /// use litedal::Limit;
    /// assert_eq!(Limit::new(1000)?.get(), 1000);
    /// assert!(Limit::new(0).is_err());
    /// assert!(Limit::new(1001).is_err());
    /// # Ok::<(), litedal::Error>(())
    /// ```
    pub fn new(n: u32) -> Result<Limit> {
        Limit::with_max(n, Limit::MAX)
    }

    /// A limit of `n` rows for a query type whose own maximum is `max` (an export may allow
    /// 10,000 rows where a web list allows 100).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `n` is 0 or above `max`.
    ///
    /// ```
    /// use litedal::Limit;
    /// /// Exports may ask for up to 10,000 rows at a time.
    /// const EXPORT_MAX: u32 = 10_000;
    /// assert_eq!(Limit::with_max(5000, EXPORT_MAX)?.get(), 5000);
    /// assert!(Limit::with_max(10_001, EXPORT_MAX).is_err());
    /// # Ok::<(), litedal::Error>(())
    /// ```
    pub fn with_max(n: u32, max: u32) -> Result<Limit> {
        if (1..=max).contains(&n) {
            Ok(Limit(n))
        } else {
            Err(Error::InvalidInput {
                what: "limit",
                value: n.to_string(),
                reason: format!("accepted: 1 to {max}"),
            })
        }
    }

    /// The number of rows.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The number of rows a paged query fetches: one more than the limit, so that
    /// [`Page::from_rows`] knows whether a next page exists.
    pub fn fetch(self) -> i64 {
        i64::from(self.0) + 1
    }
}

impl Default for Limit {
    fn default() -> Self {
        Limit::DEFAULT
    }
}

impl TryFrom<i64> for Limit {
    type Error = Error;

    fn try_from(n: i64) -> Result<Limit> {
        u32::try_from(n)
            .map_err(|_| Error::InvalidInput {
                what: "limit",
                value: n.to_string(),
                reason: format!("accepted: 1 to {}", Limit::MAX),
            })
            .and_then(Limit::new)
    }
}

/// One page of a keyset-paged list: the items and the cursor of the next page
/// (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T, C> {
    /// The rows of this page, at most the limit.
    pub items: Vec<T>,
    /// Where the next page starts (the key of this page's last row); `None` when there is
    /// none.
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// The page of `rows`, which a query fetched with [`Limit::fetch`] (one row more than
    /// `limit`): when that extra row came back, it is dropped and `next` is `cursor` of the
    /// last row kept.
    pub fn from_rows(mut rows: Vec<T>, limit: Limit, cursor: impl Fn(&T) -> C) -> Page<T, C> {
        let limit = usize::try_from(limit.get()).unwrap_or(usize::MAX);
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(cursor)
        } else {
            None
        };
        Page { items: rows, next }
    }

    /// The next page's cursor as an opaque token for a URL or a JSON body (URL-safe base64 of
    /// its JSON), or `None` on the last page. [`decode_cursor`] reads it back.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the cursor cannot be serialized.
    pub fn next_token(&self) -> Result<Option<String>>
    where
        C: Serialize,
    {
        self.next.as_ref().map(encode_cursor).transpose()
    }
}

/// A cursor as an opaque token (URL-safe base64 of its JSON, no padding).
///
/// # Errors
///
/// [`Error::InvalidInput`] when the cursor cannot be serialized (a map with non-string keys).
pub fn encode_cursor<C: Serialize>(cursor: &C) -> Result<String> {
    let json = serde_json::to_vec(cursor).map_err(|e| Error::InvalidInput {
        what: "cursor",
        value: String::new(),
        reason: format!("it cannot be written as JSON: {e}"),
    })?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// The cursor in a token from [`Page::next_token`] or [`encode_cursor`].
///
/// # Errors
///
/// [`Error::InvalidInput`] naming the token (cut to 64 characters) when it is not one: a
/// client's token is untrusted input.
pub fn decode_cursor<C: DeserializeOwned>(token: &str) -> Result<C> {
    let invalid = |reason: String| Error::InvalidInput {
        what: "cursor token",
        value: token.chars().take(64).collect(),
        reason,
    };
    let json = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|e| invalid(format!("not a token from Page::next_token: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| invalid(format!("not a cursor of this list: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_invalid_input() {
        #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
        struct After {
            at: String,
            id: i64,
        }
        let after = After {
            at: "2026-01-02 03:04:05.006".into(),
            id: 42,
        };
        let token = encode_cursor(&after).unwrap();
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        );
        assert_eq!(decode_cursor::<After>(&token).unwrap(), after);
        for bad in ["", "!!!", "e30", &encode_cursor(&7).unwrap()] {
            assert!(
                matches!(decode_cursor::<After>(bad), Err(Error::InvalidInput { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn pages_drop_the_extra_row_and_point_after_the_last_one() {
        let limit = Limit::new(2).unwrap();
        let full = Page::from_rows(vec![1, 2, 3], limit, |n| *n);
        assert_eq!((full.items, full.next), (vec![1, 2], Some(2)));
        let last = Page::from_rows(vec![1, 2], limit, |n| *n);
        assert_eq!((last.items, last.next), (vec![1, 2], None));
        assert_eq!(limit.fetch(), 3);
    }
}
