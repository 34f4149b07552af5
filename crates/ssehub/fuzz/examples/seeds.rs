//! Writes the seed inputs of every target into `corpus/<target>/`:
//! `cargo run --example seeds` in `crates/ssehub/fuzz` (then minimize with
//! `cargo fuzz cmin`, see docs/fuzzing.md).

use std::path::Path;

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let seeds = ssehub_fuzz::seeds::all();
    for seed in &seeds {
        let dir = corpus.join(seed.target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(&seed.name), &seed.bytes)?;
    }
    println!("{} seeds written under {}", seeds.len(), corpus.display());
    Ok(())
}
