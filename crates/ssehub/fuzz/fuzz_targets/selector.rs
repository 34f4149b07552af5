//! Fuzz target `selector`: see [`ssehub_fuzz::selector`] and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ssehub_fuzz::selector::check(data));
