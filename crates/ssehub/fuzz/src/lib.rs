//! The checks of ssehub's fuzz targets, one module per target. Each `check`
//! takes the bytes libFuzzer made, feeds them to ssehub through its public
//! API, and panics when ssehub misbehaves: a panic of its own, or an answer
//! breaking a property the module states.
//!
//! The fuzz targets (`fuzz_targets/`, nightly) are one line each around
//! these checks, and the replay test of the main workspace
//! (`tests/integration/fuzz_corpus.rs`, stable) includes this file to run
//! every committed corpus and regression input of every target through the
//! same checks: one copy of each, run in every `cargo test`.

pub mod claims;
pub mod disk;
mod input;
pub mod publish;
pub mod seeds;
pub mod selector;
pub mod sse;
pub mod token;
pub mod urlpattern;

/// A fuzz target: its name (that of its binary and of its directories under
/// `corpus/` and `regressions/`) and its check.
pub type Target = (&'static str, fn(&[u8]));

/// Every fuzz target.
pub const TARGETS: &[Target] = &[
    ("sse", sse::check),
    ("selector", selector::check),
    ("urlpattern", urlpattern::check),
    ("publish", publish::check),
    ("token", token::check),
    ("claims", claims::check),
    ("disk", disk::check),
];

/// The hub URL the targets use: the base of relative URL patterns and
/// topics, and the audience of 1.0 tokens.
const HUB_URL: &str = "https://hub.example/.well-known/mercure";

/// [`HUB_URL`], parsed.
fn hub_url() -> url::Url {
    url::Url::parse(HUB_URL).expect("a valid URL")
}
