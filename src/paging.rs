//! Lists with limits and keyset pages: [`Limit`] and [`Page`].

use serde::Serialize;

use crate::error::{Error, Result};

/// How many rows a list query may return: 1 to [`Limit::MAX`], default 100.
///
/// Out-of-range values are an error, never silently clamped: a caller asking for 5000 rows
/// should learn that it gets at most 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Limit(u16);

impl Limit {
    /// The largest limit.
    pub const MAX: u32 = 1000;
    /// The default limit, 100.
    pub const DEFAULT: Limit = Limit(100);

    /// A limit of `n` rows.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `n` is 0 or above [`Limit::MAX`].
    ///
    /// ```
    /// use litedal::repo::Limit;
    /// assert_eq!(Limit::new(1000)?.get(), 1000);
    /// assert!(Limit::new(0).is_err());
    /// assert!(Limit::new(1001).is_err());
    /// # Ok::<(), litedal::Error>(())
    /// ```
    pub fn new(n: u32) -> Result<Limit> {
        if (1..=Limit::MAX).contains(&n) {
            Ok(Limit(n as u16))
        } else {
            Err(Error::InvalidInput {
                what: "limit",
                value: n.to_string(),
                reason: format!("accepted: 1 to {}", Limit::MAX),
            })
        }
    }

    /// The number of rows.
    pub fn get(self) -> u32 {
        u32::from(self.0)
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
    /// Pass to `after(..)` to get the next page; `None` when there is none.
    pub next: Option<C>,
}
