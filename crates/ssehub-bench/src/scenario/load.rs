//! What the scenarios share: subscription paths, crowds of subscribers,
//! the publish target, and measured publishing steps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::args::Args;
use crate::orchestrator::{connect_all, Workers};
use crate::output::{bar, latency, whole};
use crate::proc_stats::sample;
use crate::publisher::{self, Sequences, Target};

/// Characters escaped in a query value: all but RFC 3986's unreserved ones,
/// which some servers (Nchan's `$arg_*`) take without decoding.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What a publishing step sends, and to how many subscribers.
pub(super) struct Load<'a> {
    pub(super) target: &'a Target,
    pub(super) seqs: &'a Arc<Sequences>,
    pub(super) topics: &'a [String],
    pub(super) size: usize,
    /// How many subscribers receive a publish to each of `topics` (same order).
    pub(super) audience: Vec<u64>,
}

impl<'a> Load<'a> {
    /// Publishing to one topic that every subscriber receives.
    pub(super) fn one_topic(
        target: &'a Target,
        seqs: &'a Arc<Sequences>,
        topic: &'a String,
        size: usize,
        subscribers: usize,
    ) -> Load<'a> {
        Load {
            target,
            seqs,
            topics: std::slice::from_ref(topic),
            size,
            audience: vec![subscribers as u64],
        }
    }

    /// Deliveries an average publish makes (for the progress bar).
    fn mean_audience(&self) -> f64 {
        self.audience.iter().sum::<u64>() as f64 / self.audience.len().max(1) as f64
    }
}

/// One publishing step: publishes, waits for deliveries to settle, measures.
pub(super) async fn step(
    args: &Args,
    workers: &mut Workers,
    load: &Load<'_>,
    rate: f64,
) -> anyhow::Result<serde_json::Value> {
    let Load {
        target,
        seqs,
        topics,
        size,
        ref audience,
    } = *load;
    let (start, _) = workers.snapshot().await?;
    let s0 = sample(&args.server_pid);
    let c0 = sample(&workers.pids());
    let t0 = Instant::now();
    let pb = bar(
        whole(rate * args.step_seconds),
        &format!("{rate}/s x {size} B"),
    );
    let publishing = publisher::run(
        target,
        seqs,
        topics,
        rate,
        Duration::from_secs_f64(args.step_seconds),
        size,
    );
    tokio::pin!(publishing);
    let sent = loop {
        tokio::select! {
            sent = &mut publishing => break sent,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                let t = workers.total().await?;
                pb.set_position(whole((t.received - start.received) as f64 / load.mean_audience().max(1.0)));
            }
        }
    };
    // Exactly what the acknowledged publishes owe the subscribers; let
    // deliveries drain (bounded).
    let owed: u64 = sent
        .per_topic
        .iter()
        .zip(audience)
        .map(|(n, a)| n * a)
        .sum();
    let want = start.received + owed;
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = workers.total().await?;
        if t.received >= want || Instant::now() > drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let s1 = sample(&args.server_pid);
    let client_cpu = sample(&workers.pids()).cpu_s - c0.cpu_s;
    let (end, hist) = workers.snapshot().await?;
    pb.finish_and_clear();
    let delivered = end.received - start.received;
    let cpu = s1.cpu_s - s0.cpu_s;
    let lat = latency(&hist);
    let per_delivery = |bytes: u64| {
        if delivered > 0 {
            bytes as f64 / delivered as f64
        } else {
            0.0
        }
    };
    let line = json!({ "rate": rate, "payload": size, "payload_shape": format!("{:?}", target.shape).to_lowercase(),
        "body_bytes_per_delivery": per_delivery(end.body_bytes - start.body_bytes),
        "decoded_bytes_per_delivery": per_delivery(end.decoded_bytes - start.decoded_bytes), "published": sent.published(), "publish_errors": sent.errors,
        "delivered": delivered, "expected": want - start.received, "missing": want.saturating_sub(end.received), "deliveries_per_s": delivered as f64 / elapsed,
        "gaps": end.gaps - start.gaps, "dups": end.dups - start.dups, "latency": lat,
        "server_cpu_s": cpu, "server_cpu_us_per_delivery": if delivered > 0 { cpu * 1e6 / delivered as f64 } else { 0.0 },
        "server_rss_kib": s1.rss_kib, "seconds": elapsed, "client_cpu_s": client_cpu });
    eprintln!(
        "{}: {rate:>7}/s x {size:>5} B: {delivered} deliveries of {owed} owed ({:.0}/s), p50 {} ms p99 {} ms p99.9 {} ms max {} ms, gaps {} dups {}, server CPU {cpu:.2} s, load tool CPU {client_cpu:.2} s in {elapsed:.1} s, RSS {} KiB",
        args.label, line["deliveries_per_s"].as_f64().unwrap_or(0.0), lat["p50_ms"], lat["p99_ms"], lat["p999_ms"], lat["max_ms"], line["gaps"], line["dups"], s1.rss_kib
    );
    Ok(line)
}

/// Publishes once and discards what it measured: the first publish pays for
/// connection set-up and cold caches on every side.
pub(super) async fn warm_up(
    workers: &mut Workers,
    target: &Target,
    seqs: &Arc<Sequences>,
    topic: &str,
) -> anyhow::Result<()> {
    publisher::run(
        target,
        seqs,
        &[topic.to_string()],
        1.0,
        Duration::from_millis(500),
        100,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    workers.snapshot().await?;
    Ok(())
}

/// `count` subscriptions to `topic` (the first `stalled` never read), all connected.
pub(super) async fn crowd(
    args: &Args,
    topic: &str,
    count: usize,
    stalled: usize,
) -> anyhow::Result<Workers> {
    let paths = (0..count).map(|_| path_for(args, topic)).collect();
    let mut workers = Workers::spawn(args, paths, stalled).await?;
    connect_all(&mut workers, count).await?;
    Ok(workers)
}

/// The publish target the publish options describe.
pub(super) fn target(args: &Args) -> anyhow::Result<Target> {
    let mut headers = reqwest::header::HeaderMap::new();
    for h in &args.pub_headers {
        let (k, v) = h
            .split_once(':')
            .context("--pub-header needs Name: value")?;
        headers.insert(
            reqwest::header::HeaderName::from_bytes(k.trim().as_bytes())?,
            v.trim().parse()?,
        );
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    Ok(Target {
        urls: args.pub_url.clone(),
        next: Default::default(),
        format: args.pub_format,
        shape: args.payload_shape,
        headers,
        client,
        patience: Duration::ZERO,
    })
}

/// The request path (and query) subscribing to `topic` and `second` on the
/// first subscribe URL: `second` in the `--group-param` query parameter (a
/// second `topic` for a Mercure hub; Nchan multiplexes channels from
/// distinct names).
pub(super) fn path_for_two(args: &Args, topic: &str, second: &str) -> String {
    let path = path_for(args, topic);
    let sep = if path.contains('?') { '&' } else { '?' };
    format!(
        "{path}{sep}{}={}",
        args.group_param,
        percent_encoding::utf8_percent_encode(second, QUERY_VALUE)
    )
}

/// The request path (and query) subscribing to `topic` on the first subscribe URL.
pub(super) fn path_for(args: &Args, topic: &str) -> String {
    let url = args.sub_url[0].replace(
        "{topic}",
        &percent_encoding::utf8_percent_encode(topic, QUERY_VALUE).to_string(),
    );
    let url = reqwest::Url::parse(&url).expect("checked --sub-url");
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}
