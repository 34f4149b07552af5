//! What a run shows and writes: progress bars, latency percentiles, and
//! the JSON result.

use std::path::PathBuf;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

/// Writes the JSON result to `path`, or to stdout without one.
pub(crate) fn write_json(path: Option<&PathBuf>, value: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    match path {
        Some(p) => std::fs::write(p, text)?,
        None => println!("{text}"),
    }
    Ok(())
}

/// Latency percentiles (milliseconds) of a histogram in microseconds.
pub(crate) fn latency(hist: &Histogram<u64>) -> serde_json::Value {
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    json!({ "count": hist.len(), "p50_ms": ms(0.5), "p99_ms": ms(0.99), "p999_ms": ms(0.999), "max_ms": hist.max() as f64 / 1000.0 })
}

/// `x` rounded down to a whole count; negative and NaN give 0, and a value
/// beyond `u64` saturates. For progress and pacing, where an estimate is
/// fine.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub(crate) fn whole(x: f64) -> u64 {
    // `as` from a float saturates at the bounds and truncates toward zero.
    x as u64
}

/// A progress bar of `len` steps labelled `what`.
pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}} {{msg}}"
        ))
        .expect("a valid template"),
    );
    pb
}
