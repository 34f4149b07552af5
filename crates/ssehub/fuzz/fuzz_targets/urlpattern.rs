//! Fuzz target `urlpattern`: see [`ssehub_fuzz::urlpattern`] and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ssehub_fuzz::urlpattern::check(data));
