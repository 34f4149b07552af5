//! Fuzz target `disk`: see [`ssehub_fuzz::disk`] and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ssehub_fuzz::disk::check(data));
