//! `idle`: N idle subscriptions; the server's memory and CPU.

use std::time::Duration;

use serde_json::json;

use super::load::path_for;
use crate::args::Args;
use crate::orchestrator::{connect_all, Workers};
use crate::proc_stats::sample;

/// Holds idle subscriptions and measures the server at rest.
pub(super) async fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    let before = sample(&args.server_pid);
    let paths = (0..args.subscribers)
        .map(|_| path_for(args, "idle"))
        .collect();
    let mut workers = Workers::spawn(args, paths, 0).await?;
    let connects_per_s = connect_all(&mut workers, args.subscribers).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connected = sample(&args.server_pid);
    tokio::time::sleep(Duration::from_secs_f64(args.idle_seconds)).await;
    let after = sample(&args.server_pid);
    workers.quit().await;
    let per_conn =
        (connected.rss_kib.saturating_sub(before.rss_kib)) as f64 / args.subscribers as f64;
    let cpu = after.cpu_s - connected.cpu_s;
    eprintln!(
        "{}: {} idle subscriptions, {connects_per_s:.0} connects/s, RSS {} -> {} KiB ({per_conn:.2} KiB per subscription), CPU {cpu:.2} s over {:.0} s idle, kernel TCP memory {} KiB",
        args.label, args.subscribers, before.rss_kib, connected.rss_kib, args.idle_seconds, after.tcp_mem_kib
    );
    Ok(
        json!({ "connects_per_s": connects_per_s, "rss_before_kib": before.rss_kib, "rss_connected_kib": connected.rss_kib,
        "rss_per_subscription_kib": per_conn, "idle_cpu_s": cpu, "idle_seconds": args.idle_seconds, "tcp_mem_kib": after.tcp_mem_kib }),
    )
}
