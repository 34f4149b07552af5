//! `rooms`: each subscription on a private topic plus one of N/10 group
//! topics.

use std::sync::Arc;

use super::load::{path_for_two, step, target, Load};
use crate::args::Args;
use crate::orchestrator::{connect_all, Workers};
use crate::publisher::Sequences;

/// Publishes to every private and group topic in turn, at the first rate.
pub(super) async fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    let groups = (args.subscribers / 10).max(1);
    // Topics and how many subscriptions select each: groups first, then one
    // private topic per subscription.
    let mut topics: Vec<String> = (0..groups).map(|g| format!("group-{g}")).collect();
    let mut audience = vec![0u64; groups];
    let paths = (0..args.subscribers)
        .map(|i| {
            let user = format!("user-{i}");
            let path = path_for_two(args, &user, &format!("group-{}", i % groups));
            topics.push(user);
            audience.push(1);
            audience[i % groups] += 1;
            path
        })
        .collect();
    let mut workers = Workers::spawn(args, paths, 0).await?;
    connect_all(&mut workers, args.subscribers).await?;
    let (target, seqs) = (target(args)?, Arc::new(Sequences::default()));
    let rate = *args.rates.first().unwrap_or(&100.0);
    let size = *args.payload.first().unwrap_or(&100);
    let line = step(
        args,
        &mut workers,
        &Load {
            target: &target,
            seqs: &seqs,
            topics: &topics,
            size,
            audience,
        },
        rate,
    )
    .await?;
    workers.quit().await;
    Ok(line)
}
