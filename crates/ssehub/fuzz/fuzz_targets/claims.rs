//! Fuzz target `claims`: see [`ssehub_fuzz::claims`] and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ssehub_fuzz::claims::check(data));
