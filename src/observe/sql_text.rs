//! SQL text for logs: a statement's SQL without its bind values, cut to a bounded length.

use std::fmt;

use diesel::connection::DebugQuery;

/// The longest SQL text logged; longer statements are cut (at a character boundary) and end
/// with "...".
const MAX_LOGGED_SQL: usize = 2048;

/// What diesel's `Display` of a query writes between the SQL and the bind values.
const BINDS_MARKER: &str = " -- binds: ";

/// Renders a query's SQL without its bind values.
///
/// diesel's `Display` writes `<sql> -- binds: [<values>]`; this writer keeps what comes before
/// the marker and then fails the formatting, so the values are never formatted at all. SQL
/// passed as text (`batch_execute`) has no binds and is kept whole.
pub(crate) fn sql_without_binds(query: &dyn DebugQuery) -> String {
    let mut writer = UntilBinds {
        out: String::new(),
        done: false,
    };
    // An `Err` here is the writer stopping at the marker (or at the length limit).
    let _ = fmt::write(&mut writer, format_args!("{query}"));
    writer.out
}

struct UntilBinds {
    out: String,
    done: bool,
}

impl fmt::Write for UntilBinds {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.done {
            return Err(fmt::Error);
        }
        // The marker may span two writes: search from where it could start.
        let from = self.out.len().saturating_sub(BINDS_MARKER.len());
        self.out.push_str(s);
        let found = self.out.as_bytes()[from..]
            .windows(BINDS_MARKER.len())
            .position(|w| w == BINDS_MARKER.as_bytes());
        if let Some(at) = found {
            // The marker starts with an ASCII space, so `from + at` is a character boundary.
            self.out.truncate(from + at);
            self.done = true;
            return Err(fmt::Error);
        }
        if self.out.len() > MAX_LOGGED_SQL {
            let mut cut = MAX_LOGGED_SQL;
            while !self.out.is_char_boundary(cut) {
                cut -= 1;
            }
            self.out.truncate(cut);
            self.out.push_str("...");
            self.done = true;
            return Err(fmt::Error);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query whose `Display` is diesel's format: SQL, marker, binds.
    struct Fake(&'static str, &'static str);

    impl fmt::Display for Fake {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let sql = self.0.to_owned();
            write!(f, "{sql}{BINDS_MARKER}{:?}", [self.1])
        }
    }

    impl fmt::Debug for Fake {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Display::fmt(self, f)
        }
    }

    impl DebugQuery for Fake {}

    #[test]
    fn bind_values_are_cut_off() {
        let q = Fake("SELECT * FROM users WHERE email = ?", "secret@example.com");
        assert_eq!(sql_without_binds(&q), "SELECT * FROM users WHERE email = ?");
    }

    #[test]
    fn long_sql_is_cut_at_a_character_boundary() {
        let long: &'static str = Box::leak("é".repeat(MAX_LOGGED_SQL).into_boxed_str());
        let out = sql_without_binds(&Fake(long, "secret"));
        assert!(out.ends_with("..."), "{out}");
        assert!(out.len() <= MAX_LOGGED_SQL + 3);
        assert!(!out.contains("secret"));
    }
}
