//! `soak`: held subscriptions, each on two of `--topics` topics, connected
//! before publishing starts; a churn of short-lived subscriptions
//! (`--churn-rate` a second, each held `--churn-hold` seconds); publishing
//! at the first `--rates` rate over every topic for `--soak-seconds`.
//! Samples the server's RSS and open files every `--sample-seconds` (and
//! writes them with the counts to `--samples`), then checks that every held
//! subscription received every acknowledged update of its topics exactly
//! once and in order, and fits the trend of RSS and open files over the
//! second half of the run (the first is warm-up).

mod plan;
mod samples;
mod trend;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::load::{path_for_two, target};
use crate::args::Args;
use crate::orchestrator::{connect_all, Workers};
use crate::publisher::{self, Sequences};
use crate::wire::{ChurnSpec, Report};
use plan::Plan;
use samples::Samples;

/// How long a publish that fails is sent again: longer than a store
/// restart takes.
const PATIENCE: Duration = Duration::from_secs(120);
/// The longest wait, after the last publish, for the deliveries it owes.
const DRAIN: Duration = Duration::from_secs(60);
/// How often a progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

/// Runs the soak and reports its checks and trends.
pub(super) async fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    let plan = Plan::new(args.subscribers, args.topics)?;
    let paths = plan
        .pairs
        .iter()
        .map(|&(a, b)| path_for_two(args, &plan.topics[a], &plan.topics[b]))
        .collect();
    let ms = |s: f64| u64::try_from(Duration::from_secs_f64(s).as_millis()).unwrap_or(u64::MAX);
    let churn = ChurnSpec {
        rate: args.churn_rate,
        hold_ms: (ms(args.churn_hold.min), ms(args.churn_hold.max)),
        // Two neighbouring topics each, as many paths as topics.
        paths: (0..plan.topics.len())
            .map(|t| {
                let next = &plan.topics[(t + 1) % plan.topics.len()];
                path_for_two(args, &plan.topics[t], next)
            })
            .collect(),
    };
    let mut workers = Workers::spawn_churning(args, paths, &churn).await?;
    connect_all(&mut workers, args.subscribers).await?;
    workers.ask("churn").await?;

    let mut target = target(args)?;
    target.patience = PATIENCE;
    let seqs = Arc::new(Sequences::default());
    let rate = *args.rates.first().unwrap_or(&50.0);
    let size = *args.payload.first().unwrap_or(&100);
    let duration = Duration::from_secs_f64(args.soak_seconds);
    let mut samples = Samples::new(&args.server_pid, args.samples.as_deref())?;
    eprintln!(
        "soak: publishing {rate}/s over {} topics for {:.0} s; {} stable subscriptions, churn {}/s held {:?} s",
        plan.topics.len(),
        duration.as_secs_f64(),
        args.subscribers,
        args.churn_rate,
        (args.churn_hold.min, args.churn_hold.max),
    );
    let t0 = Instant::now();
    let publishing = publisher::start(&target, &seqs, &plan.topics, rate, duration, size);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(args.sample_seconds));
    let mut next_progress = PROGRESS_EVERY;
    while t0.elapsed() < duration {
        tick.tick().await;
        let totals = workers.total().await?;
        let sent = publishing.sent();
        let procs = samples.take(t0.elapsed().as_secs_f64(), &sent, &totals)?;
        if t0.elapsed() >= next_progress {
            next_progress += PROGRESS_EVERY;
            let rss: u64 = procs.iter().map(|p| p.rss_kib).sum();
            let fds: u64 = procs.iter().map(|p| p.fds).sum();
            eprintln!(
                "soak: {:.1} min: {} published ({} failed attempts), stable {} received ({} gaps, {} dups, {} ended), \
                 churn {} opened {} closed {} failed; server RSS {rss} KiB, {fds} files",
                t0.elapsed().as_secs_f64() / 60.0,
                sent.published(),
                sent.errors,
                totals.received,
                totals.gaps,
                totals.dups,
                totals.failed,
                totals.churn.opened,
                totals.churn.closed,
                totals.churn.failed
            );
        }
    }
    let sent = publishing.finish().await;
    let owed = plan.owed(&sent.per_topic);
    let drain_started = Instant::now();
    let end = loop {
        let t = workers.total().await?;
        if t.received >= owed || drain_started.elapsed() > DRAIN {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    samples.take(t0.elapsed().as_secs_f64(), &sent, &end)?;
    workers.quit().await;

    let half = duration.as_secs_f64() / 2.0;
    let trends = |node| {
        let (rss, fds) = samples.trends(node, half);
        json!({ "rss_kib": rss, "fds": fds })
    };
    let nodes: Vec<_> = (0..args.server_pid.len())
        .map(|i| trends(Some(i)))
        .collect();
    let check = stable_check(&end, owed);
    eprintln!(
        "{}: stable: {} of {owed} owed deliveries received, {} gaps, {} dups, {} streams ended: {}; \
         churn: {} opened, {} closed, {} failed, {} gaps, {} dups; {} published, {} failed attempts, {} given up",
        args.label,
        end.received,
        end.gaps,
        end.dups,
        end.failed,
        if check { "every update exactly once and in order" } else { "FAILED" },
        end.churn.opened,
        end.churn.closed,
        end.churn.failed,
        end.churn.gaps,
        end.churn.dups,
        sent.published(),
        sent.errors,
        sent.given_up
    );
    Ok(json!({
        "seconds": duration.as_secs_f64(),
        "rate": rate, "payload": size, "topics": plan.topics.len(), "audience_per_publish": plan.audience.iter().sum::<u64>() as f64 / plan.topics.len() as f64,
        "published": sent.published(), "publish_errors": sent.errors, "given_up": sent.given_up,
        "stable": { "subscriptions": args.subscribers, "topics_each": 2, "owed": owed, "received": end.received,
            "missing": owed.saturating_sub(end.received), "gaps": end.gaps, "dups": end.dups, "streams_ended": end.failed,
            "exactly_once_in_order": check },
        "churn": { "rate": args.churn_rate, "hold_s": [args.churn_hold.min, args.churn_hold.max], "opened": end.churn.opened,
            "closed": end.churn.closed, "failed": end.churn.failed, "received": end.churn.received,
            "gaps": end.churn.gaps, "dups": end.churn.dups },
        "trend_window_s": [half, duration.as_secs_f64()],
        "server": { "total": trends(None), "nodes": nodes, "pids": args.server_pid },
    }))
}

/// Whether the stable subscriptions received exactly what they were owed:
/// each checks its topics' sequences start at 1 and never skip or repeat a
/// number, so with no gap and no duplicate, `owed` deliveries in all means
/// each received every acknowledged update of its topics, once, in order.
fn stable_check(totals: &Report, owed: u64) -> bool {
    totals.gaps == 0 && totals.dups == 0 && totals.received == owed
}
