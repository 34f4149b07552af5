//! `slow`: healthy readers next to readers that stop reading.

use std::sync::Arc;

use serde_json::json;

use super::load::{crowd, step, target, Load};
use crate::args::Args;
use crate::proc_stats::{sample, Sample};
use crate::publisher::Sequences;

/// Measures the healthy readers without, then with, stalled ones.
pub(super) async fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    let topic = "slow".to_string();
    let rate = *args.rates.first().unwrap_or(&100.0);
    let size = *args.payload.first().unwrap_or(&1024);
    let mut phases = serde_json::Map::new();
    for (name, stalled) in [("without_stalled", 0), ("with_stalled", args.stalled)] {
        let total = args.subscribers + stalled;
        let mut workers = crowd(args, &topic, total, stalled).await?;
        let (target, seqs) = (target(args)?, Arc::new(Sequences::default()));
        let rss_before: Sample = sample(&args.server_pid);
        let line = step(
            args,
            &mut workers,
            &Load::one_topic(&target, &seqs, &topic, size, args.subscribers),
            rate,
        )
        .await?;
        workers.quit().await;
        phases.insert(
            name.into(),
            json!({ "healthy": line, "rss_before_kib": rss_before.rss_kib }),
        );
    }
    Ok(serde_json::Value::Object(phases))
}
