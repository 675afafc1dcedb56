//! DATABASE_URL parsing never panics, and every location it accepts round-trips through
//! its own URL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use litedal::url::parse_database_url;

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(location) = parse_database_url(url) {
        let again = parse_database_url(&location.to_url());
        assert_eq!(again.ok(), Some(location), "{url:?} does not round-trip");
    }
});
