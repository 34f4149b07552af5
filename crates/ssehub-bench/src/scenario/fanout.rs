//! `fanout`: N subscribers on one topic, publish rates rising until p99
//! passes the limit or deliveries fall short.

use std::sync::Arc;

use serde_json::json;

use super::load::{crowd, step, target, warm_up, Load};
use crate::args::Args;
use crate::publisher::Sequences;

/// Raises the publish rate for each payload size and reports every step.
pub(super) async fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    let topic = "fanout".to_string();
    let mut workers = crowd(args, &topic, args.subscribers, 0).await?;
    let (target, seqs) = (target(args)?, Arc::new(Sequences::default()));
    warm_up(&mut workers, &target, &seqs, &topic).await?;
    let mut steps = Vec::new();
    for &size in &args.payload {
        for &rate in &args.rates {
            let line = step(
                args,
                &mut workers,
                &Load::one_topic(&target, &seqs, &topic, size, args.subscribers),
                rate,
            )
            .await?;
            let p99 = line["latency"]["p99_ms"].as_f64().unwrap_or(f64::MAX);
            let complete = line["delivered"].as_u64() >= line["expected"].as_u64();
            steps.push(line);
            if p99 > args.p99_limit_ms || !complete {
                break;
            }
        }
    }
    workers.quit().await;
    let best = steps
        .iter()
        .filter_map(|s| s["deliveries_per_s"].as_f64())
        .fold(0.0, f64::max);
    eprintln!("{}: saturated fan-out {best:.0} deliveries/s", args.label);
    Ok(json!({ "steps": steps, "max_deliveries_per_s": best }))
}
