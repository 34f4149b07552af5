//! Fuzz target `sse`: see [`ssehub_fuzz::sse`] and docs/fuzzing.md.
#![no_main]

#[path = "../src/panics.rs"]
mod panics;

libfuzzer_sys::fuzz_target!(init: panics::install(), |data: &[u8]| {
    ssehub_fuzz::sse::check(data)
});
