//! Positional arguments of the profiling examples (`#[path]`-included): a missing one takes its
//! default, a malformed one is an error naming it, never silently the default.

/// Argument `index` (1-based) parsed as `T`, or `default` when absent.
pub fn arg<T: std::str::FromStr>(index: usize, default: T) -> Result<T, String> {
    match std::env::args().nth(index) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("argument {index}: {text:?} is not valid here")),
    }
}
