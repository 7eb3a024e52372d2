//! See `amoeba_fuzz::saved_model_genotype` for what this target feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amoeba_fuzz::saved_model_genotype(data));
