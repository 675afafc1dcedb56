//! Configuration parsing never panics on any bytes in any variable: it yields a config or
//! a configuration/URL error.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;
use litedal::config::ENV_VARS;
use litedal::{Config, Error};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, value)) = data.split_first() else {
        return;
    };
    let var = ENV_VARS[usize::from(selector) % ENV_VARS.len()].0;
    match Config::from_vars([(OsString::from(var), OsString::from_vec(value.to_vec()))]) {
        Ok(_) | Err(Error::Config { .. }) | Err(Error::UnsupportedUrl { .. }) => {}
        Err(other) => panic!("{var}: unexpected error {other:?}"),
    }
});
