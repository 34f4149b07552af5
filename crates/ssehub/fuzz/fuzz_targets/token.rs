//! Fuzz target `token`: see [`ssehub_fuzz::token`] and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ssehub_fuzz::token::check(data));
