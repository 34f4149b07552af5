//! Fuzz target `sse`: see [`ssehub_fuzz::sse`] and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ssehub_fuzz::sse::check(data));
