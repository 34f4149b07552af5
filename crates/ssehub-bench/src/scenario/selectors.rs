//! `selectors`: N subscriptions, each with one selector (`--selectors`:
//! distinct exact topics, distinct URI templates, or one template shared by
//! all), and publishes that match none of them: the server's CPU time per
//! publish, which is what matching the selectors costs on top of taking the
//! publish.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::load::path_for;
use crate::args::{Args, Selectors};
use crate::orchestrator::{connect_all, Workers};
use crate::proc_stats::sample;
use crate::publisher::{self, Sequences};

/// Publish topics: one per publishing lane, sharing the subscriptions'
/// literal prefix and matching none of their selectors (a template's
/// `{i}/` needs a `/` after the user).
const MISS_TOPICS: usize = 16;

/// The selector subscription `i` holds.
fn selector(kind: Selectors, i: usize) -> String {
    match kind {
        Selectors::Exact => format!("https://example.com/users/{i}"),
        Selectors::Templates => format!("https://example.com/users/{i}/{{+rest}}"),
        Selectors::OneTemplate => "https://example.com/users/{id}/{+rest}".to_string(),
    }
}

/// Measures the server idle for `--step-seconds`, then publishes for three
/// windows of `--step-seconds` at the first `--rates`, each window followed
/// by the time the server takes to settle back to its idle rate (its
/// dispatch may lag the acknowledged publishes), and reports the server's
/// CPU time per publish in each, raw and less the idle rate.
pub(super) async fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    let kind = args.selectors;
    let paths = (0..args.subscribers)
        .map(|i| path_for(args, &selector(kind, i)))
        .collect();
    let mut workers = Workers::spawn(args, paths, 0).await?;
    connect_all(&mut workers, args.subscribers).await?;
    let target = super::load::target(args)?;
    let seqs = Arc::new(Sequences::default());
    let topics: Vec<String> = (0..MISS_TOPICS)
        .map(|k| format!("https://example.com/users/none-{k}"))
        .collect();
    let rate = *args.rates.first().unwrap_or(&20.0);
    let size = *args.payload.first().unwrap_or(&100);
    let window = Duration::from_secs_f64(args.step_seconds);
    // Warm-up: connection set-up and cold caches on every side.
    publisher::run(&target, &seqs, &topics, rate, Duration::from_secs(1), size).await;
    settle(args, f64::INFINITY).await;
    let (s0, t0) = (sample(&args.server_pid), Instant::now());
    tokio::time::sleep(window).await;
    let idle_cpu_per_s = (sample(&args.server_pid).cpu_s - s0.cpu_s) / t0.elapsed().as_secs_f64();
    let mut rounds = Vec::new();
    for round in 0..3 {
        let (s1, t1) = (sample(&args.server_pid), Instant::now());
        let sent = publisher::run(&target, &seqs, &topics, rate, window, size).await;
        settle(args, idle_cpu_per_s).await;
        let (s2, t2) = (sample(&args.server_pid), Instant::now());
        let cpu = s2.cpu_s - s1.cpu_s;
        let net = cpu - idle_cpu_per_s * (t2 - t1).as_secs_f64();
        let published = sent.published().max(1) as f64;
        let (raw_us, net_us) = (cpu * 1e6 / published, net * 1e6 / published);
        eprintln!(
            "{}: round {round}: {} publishes matching none of {} {kind:?} subscriptions in {:.1} s, server CPU {raw_us:.0} us per publish ({net_us:.0} us less idle {:.1} ms/s), RSS {} KiB",
            args.label, sent.published(), args.subscribers, (t2 - t1).as_secs_f64(), idle_cpu_per_s * 1e3, s2.rss_kib
        );
        rounds.push(json!({ "published": sent.published(), "publish_errors": sent.errors, "seconds": (t2 - t1).as_secs_f64(),
            "server_cpu_s": cpu, "cpu_us_per_publish": raw_us, "net_cpu_us_per_publish": net_us, "server_rss_kib": s2.rss_kib }));
    }
    let total = workers.total().await?;
    workers.quit().await;
    let median = |field: &str| {
        let mut v: Vec<f64> = rounds.iter().filter_map(|r| r[field].as_f64()).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (raw, net) = (
        median("cpu_us_per_publish"),
        median("net_cpu_us_per_publish"),
    );
    eprintln!(
        "{}: median {raw:.0} us per publish ({net:.0} us less idle); {} deliveries (0 expected)",
        args.label, total.received
    );
    Ok(
        json!({ "selectors": format!("{kind:?}"), "rate": rate, "window_s": args.step_seconds, "rounds": rounds,
        "median_cpu_us_per_publish": raw, "median_net_cpu_us_per_publish": net, "deliveries": total.received }),
    )
}

/// Waits (at most 30 s) until the server spends at most `idle_cpu_per_s`
/// plus 20 ms of CPU time over a second: what it owed the publishes is done.
async fn settle(args: &Args, idle_cpu_per_s: f64) {
    for _ in 0..30 {
        let before = sample(&args.server_pid).cpu_s;
        tokio::time::sleep(Duration::from_secs(1)).await;
        if sample(&args.server_pid).cpu_s - before <= idle_cpu_per_s + 0.02 {
            return;
        }
    }
}
