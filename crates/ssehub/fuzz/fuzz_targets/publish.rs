//! Fuzz target `publish`: see [`ssehub_fuzz::publish`] and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ssehub_fuzz::publish::check(data));
