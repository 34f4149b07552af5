//! `storm`: everyone drops and reconnects with Last-Event-ID while
//! publishing goes on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::load::{crowd, target};
use crate::args::Args;
use crate::output::{bar, latency};
use crate::publisher::{self, Sequences};

/// Drops every subscription at once and times their recovery.
pub(super) async fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    /// Longest wait for everyone to be back.
    const LIMIT: Duration = Duration::from_secs(60);
    let topic = "storm".to_string();
    let mut workers = crowd(args, &topic, args.subscribers, 0).await?;
    let (target, seqs) = (target(args)?, Arc::new(Sequences::default()));
    let rate = *args.rates.first().unwrap_or(&10.0);
    let size = *args.payload.first().unwrap_or(&100);
    // Publishing goes on until everyone is back (or the limit).
    let publishing = {
        let (target, seqs, topic) = (target.clone(), seqs.clone(), topic.clone());
        tokio::spawn(async move {
            publisher::run(
                &target,
                &seqs,
                &[topic],
                rate,
                LIMIT + Duration::from_secs(4),
                size,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (before, _) = workers.snapshot().await?;
    // Everyone drops at once and comes back with Last-Event-ID; recovered
    // means each has received the update published right after the drop.
    let goal = seqs.last(&topic) + 1;
    let t0 = Instant::now();
    workers.ask(&format!("reconnect {goal}")).await?;
    let pb = bar(args.subscribers as u64, "recovering");
    let recovered = loop {
        let t = workers.total().await?;
        pb.set_position(t.caught_up);
        if recovered_all(t.caught_up, args.subscribers) || t0.elapsed() > LIMIT {
            break t.caught_up;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let recovery = recovered_all(recovered, args.subscribers).then(|| t0.elapsed().as_secs_f64());
    pb.finish_and_clear();
    // A little more publishing after recovery, then stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    publishing.abort();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after, hist) = workers.snapshot().await?;
    workers.quit().await;
    let (gaps, dups) = (after.gaps - before.gaps, after.dups - before.dups);
    let published = seqs.last(&topic);
    match recovery {
        Some(s) => eprintln!("{}: storm of {}: all recovered in {s:.3} s, gaps {gaps}, dups {dups}, {published} publishes", args.label, args.subscribers),
        None => eprintln!("{}: storm of {}: only {recovered} recovered within {LIMIT:?}, gaps {gaps}, dups {dups}, {published} publishes", args.label, args.subscribers),
    }
    Ok(
        json!({ "recovery_s": recovery, "recovered": recovered, "gaps": gaps, "dups": dups, "published": published, "latency": latency(&hist) }),
    )
}

/// Whether `caught_up` subscriptions are all of `subscribers`.
fn recovered_all(caught_up: u64, subscribers: usize) -> bool {
    usize::try_from(caught_up).is_ok_and(|n| n >= subscribers)
}
