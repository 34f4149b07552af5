//! The fuzz targets' inputs, replayed on stable: every file committed under
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`, and every seed,
//! goes through its target's check, the very code the fuzz targets run
//! (`fuzz/src/`, included here), so each crash ever found stays fixed and a
//! change that breaks a target's property fails `cargo test`.

use std::path::{Path, PathBuf};

/// The fuzz crate's library: its items are public there, for its targets.
#[allow(unreachable_pub, missing_docs)]
#[path = "../../fuzz/src/lib.rs"]
mod harness;

/// The fuzz crate's directory.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Runs every committed input of `target` through `check`.
fn replay(target: &str, check: fn(&[u8])) {
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
            continue;
        };
        files.extend(entries.map(|e| e.expect("a directory entry").path()));
    }
    files.sort();
    assert!(!files.is_empty(), "no committed corpus for {target}");
    for file in &files {
        let bytes = std::fs::read(file).expect("a committed input");
        let outcome = std::panic::catch_unwind(|| check(&bytes));
        assert!(outcome.is_ok(), "{} fails its check", file.display());
    }
}

#[test]
fn every_committed_fuzz_input_passes_its_check() {
    let mut targets: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .map(|e| {
            let path = e.expect("a directory entry").path();
            let stem = path.file_stem().expect("a target file");
            stem.to_string_lossy().into_owned()
        })
        .collect();
    targets.sort();
    let mut known: Vec<&str> = harness::TARGETS.iter().map(|(name, _)| *name).collect();
    known.sort_unstable();
    assert_eq!(targets, known, "fuzz_targets/ and TARGETS differ");
    for (target, check) in harness::TARGETS {
        replay(target, *check);
    }
}

#[test]
fn fuzz_seeds_pass_their_checks() {
    for seed in harness::seeds::all() {
        let (_, check) = harness::TARGETS
            .iter()
            .find(|(name, _)| *name == seed.target)
            .expect("a known target");
        let outcome = std::panic::catch_unwind(|| check(&seed.bytes));
        assert!(outcome.is_ok(), "{} seed {} fails", seed.target, seed.name);
    }
}
