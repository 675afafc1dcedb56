//! Timestamps as SQLite stores them: bound in one exact text form ([`DbTimestamp`]) so that
//! comparisons and keyset cursors are exact, and read back with a fast parser
//! ([`StoredTimestamp`]).

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{IsNull, Output, ToSql};
use diesel::sql_types::Timestamp;
use diesel::sqlite::Sqlite;
use diesel::sqlite::SqliteValue;

/// A timestamp bound in exactly the text form `strftime('%Y-%m-%d %H:%M:%f', 'now')` stores
/// (`YYYY-MM-DD HH:MM:SS.SSS`, UTC): use it for every comparison with a stored timestamp, and
/// for keyset cursors over one.
///
/// SQLite compares timestamps as text. diesel binds a `NaiveDateTime` as `%F %T%.f`, which
/// drops the fraction of a whole second (`12:00:00` instead of `12:00:00.000`), and that
/// sorts before the stored value of the same instant: a keyset cursor would then return its
/// own row again. Binding the canonical form keeps comparisons exact (to the millisecond).
///
/// ```
/// use chrono::NaiveDate;
/// use diesel::prelude::*;
/// use litedal::DbTimestamp;
///
/// diesel::table! {
///     events (id) {
///         id -> BigInt,
///         at -> Timestamp,
///     }
/// }
///
/// let noon = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap().and_hms_opt(12, 0, 0).unwrap();
/// let query = events::table.filter(events::at.gt(DbTimestamp(noon))).select(events::id);
/// let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&query).to_string();
/// assert!(sql.ends_with(r#"binds: ["2026-01-02 12:00:00.000"]"#), "{sql}");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, diesel::expression::AsExpression)]
#[diesel(sql_type = Timestamp)]
pub struct DbTimestamp(pub NaiveDateTime);

impl DbTimestamp {
    /// The value truncated to the millisecond, the precision the database keeps.
    #[cfg(feature = "postgres")]
    fn millis(&self) -> NaiveDateTime {
        use chrono::Timelike;
        let nanos = self.0.nanosecond() / 1_000_000 * 1_000_000;
        self.0.with_nanosecond(nanos).unwrap_or(self.0)
    }

    fn text(&self) -> String {
        self.0.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
    }
}

/// Shows the bound text, so `debug_query` prints what SQLite compares.
impl std::fmt::Debug for DbTimestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.text().fmt(f)
    }
}

impl ToSql<Timestamp, Sqlite> for DbTimestamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> diesel::serialize::Result {
        out.set_value(self.text());
        Ok(IsNull::No)
    }
}

impl From<NaiveDateTime> for DbTimestamp {
    fn from(at: NaiveDateTime) -> DbTimestamp {
        DbTimestamp(at)
    }
}

impl DbTimestamp {
    /// Now, in UTC (bound to the millisecond, as the database stores it).
    pub fn now() -> DbTimestamp {
        DbTimestamp(chrono::Utc::now().naive_utc())
    }
}

/// Reads a timestamp column into a `NaiveDateTime`, parsing the form [`DbTimestamp`] binds by
/// hand and anything else with diesel's parser.
///
/// diesel's `FromSql` for `NaiveDateTime` runs chrono's `parse_from_str`, which interprets its
/// format string on every call; with two timestamps per row that was about 7% of a point
/// read. Use it with `#[diesel(deserialize_as = litedal::StoredTimestamp)]` on a model's
/// `NaiveDateTime` field.
#[derive(Debug, Clone, Copy, diesel::deserialize::FromSqlRow)]
pub struct StoredTimestamp(pub NaiveDateTime);

impl From<StoredTimestamp> for NaiveDateTime {
    fn from(value: StoredTimestamp) -> NaiveDateTime {
        value.0
    }
}

/// Parses `YYYY-MM-DD HH:MM:SS` with an optional `.` and 1 to 9 fraction digits.
fn parse_stored(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let value = num(20..b.len())?;
            value * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let time = NaiveTime::from_hms_nano_opt(num(11..13)?, num(14..16)?, num(17..19)?, nanos)?;
    Some(NaiveDateTime::new(date, time))
}

impl FromSql<Timestamp, Sqlite> for StoredTimestamp {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        if let Some(parsed) = parse_stored(value.read_text()) {
            return Ok(StoredTimestamp(parsed));
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(StoredTimestamp)
    }
}

/// On PostgreSQL the stored value is binary (microseconds since 2000-01-01), so diesel's own
/// decoding is already fast.
#[cfg(feature = "postgres")]
impl FromSql<Timestamp, diesel::pg::Pg> for StoredTimestamp {
    fn from_sql(value: diesel::pg::PgValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, diesel::pg::Pg>>::from_sql(value).map(StoredTimestamp)
    }
}

/// Binds the value truncated to the millisecond, as SQLite's text form is: PostgreSQL's
/// `timestamp(3)` columns would round a finer value instead, and a keyset cursor must mean the
/// same instant on both engines.
#[cfg(feature = "postgres")]
impl ToSql<Timestamp, diesel::pg::Pg> for DbTimestamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::pg::Pg>) -> diesel::serialize::Result {
        let at = self.millis();
        <NaiveDateTime as ToSql<Timestamp, diesel::pg::Pg>>::to_sql(&at, &mut out.reborrow())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_timestamps_parse_like_chrono() {
        for text in [
            "2026-11-29 18:43:43.430",
            "2026-11-29 18:43:43",
            "2026-01-02 03:04:05.000",
            "1999-12-31 23:59:59.999999999",
            "2024-02-29 00:00:00.5",
        ] {
            let chrono = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap();
            assert_eq!(parse_stored(text), Some(chrono), "{text}");
        }
        for text in [
            "2026-11-29T18:43:43",
            "2026-02-30 00:00:00",
            "2026-11-29 18:43:43.",
            "2026-11-29 18:43:43.1234567890",
            "2026-11-29 25:00:00",
            "2026-11-29 18:43",
            "",
            "２０２６-11-29 18:43:43",
        ] {
            assert_eq!(parse_stored(text), None, "{text}");
        }
    }
}
