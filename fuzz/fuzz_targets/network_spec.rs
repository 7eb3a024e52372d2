//! See `amoeba_fuzz::network_spec` for what this target feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amoeba_fuzz::network_spec(data));
