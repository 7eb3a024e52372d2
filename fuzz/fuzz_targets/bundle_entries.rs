//! See `amoeba_fuzz::bundle_entries` for what this target feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amoeba_fuzz::bundle_entries(data));
