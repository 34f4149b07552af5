//! Publishes numbered payloads at a steady rate, keeping each topic's
//! publishes in order (one in flight per topic) so subscribers can check
//! order and completeness.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::payload;

/// How a publish is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Mercure: form `topic=...&data=...` to the URL.
    Mercure,
    /// The payload as the raw body, to the URL with `{topic}` substituted (Nchan, the floor).
    Raw,
}

/// Where and how to publish.
#[derive(Clone)]
pub(crate) struct Target {
    /// Publish URLs (one per node), taken in turn.
    pub(crate) urls: Vec<String>,
    /// How many publishes have picked a URL, shared by every clone.
    pub(crate) next: Arc<AtomicUsize>,
    pub(crate) format: Format,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) client: reqwest::Client,
}

/// The next sequence number of each topic, kept across rate steps.
#[derive(Default)]
pub(crate) struct Sequences(parking_lot::Mutex<HashMap<String, u64>>);

impl Sequences {
    fn next(&self, topic: &str) -> u64 {
        let mut m = self.0.lock();
        let n = m.entry(topic.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    /// The last sequence number published to `topic`.
    pub(crate) fn last(&self, topic: &str) -> u64 {
        self.0.lock().get(topic).copied().unwrap_or(0)
    }
}

/// Attempts at one publish before its sequence number is given up: a
/// failed publish is sent again with the same number (a subscriber that got
/// it twice reports a duplicate), and one given up shows as a gap at every
/// subscriber.
const ATTEMPTS: usize = 3;

/// Counts of one publishing run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sent {
    /// Failed attempts (each retried, up to [`ATTEMPTS`] per publish).
    pub(crate) errors: u64,
    /// Acknowledged publishes of each topic, in the order of `run`'s topics.
    pub(crate) per_topic: Vec<u64>,
}

impl Sent {
    /// Acknowledged publishes, all topics together.
    pub(crate) fn published(&self) -> u64 {
        self.per_topic.iter().sum()
    }
}

impl Target {
    /// Publishes to the next URL in turn. Its caller waits for the answer
    /// before publishing to the same topic again, so a topic's publishes stay
    /// one sequence whichever node takes each.
    async fn publish(&self, topic: &str, data: String) -> bool {
        let url = &self.urls[self.next.fetch_add(1, Ordering::Relaxed) % self.urls.len()];
        let via = if self.urls.len() > 1 {
            format!(" via {url}")
        } else {
            String::new()
        };
        let req = match self.format {
            Format::Mercure => {
                let body = form_urlencoded::Serializer::new(String::new())
                    .append_pair("topic", topic)
                    .append_pair("data", &data)
                    .finish();
                self.client
                    .post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
            }
            Format::Raw => self.client.post(url.replace("{topic}", topic)).body(data),
        };
        match req.headers(self.headers.clone()).send().await {
            Ok(res) if res.status().is_success() => true,
            Ok(res) => {
                eprintln!("publish to {topic}{via}: {}", res.status());
                false
            }
            Err(e) => {
                eprintln!("publish to {topic}{via}: {e}");
                false
            }
        }
    }
}

/// Publishes to `topics` (chosen at random) at `rate` per second for
/// `duration`, with `lanes` concurrent publishers owning disjoint topics.
pub(crate) async fn run(
    target: &Target,
    seqs: &Arc<Sequences>,
    topics: &[String],
    rate: f64,
    duration: Duration,
    size: usize,
) -> Sent {
    let lanes = topics.len().clamp(1, 16);
    let topics: Arc<[String]> = topics.into();
    let acked: Arc<[AtomicU64]> = topics.iter().map(|_| AtomicU64::new(0)).collect();
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let mine: Vec<usize> = (lane..topics.len()).step_by(lanes).collect();
        let (target, seqs, topics, acked, errors) = (
            target.clone(),
            seqs.clone(),
            topics.clone(),
            acked.clone(),
            errors.clone(),
        );
        let every = Duration::from_secs_f64(lanes as f64 / rate);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let end = tokio::time::Instant::now() + duration;
            while tokio::time::Instant::now() < end {
                tick.tick().await;
                let i = mine[rand::random::<usize>() % mine.len()];
                let topic = &topics[i];
                let seq = seqs.next(topic);
                for _ in 0..ATTEMPTS {
                    if target
                        .publish(topic, payload::encode(topic, seq, size))
                        .await
                    {
                        acked[i].fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let per_topic: Vec<u64> = acked.iter().map(|n| n.load(Ordering::Relaxed)).collect();
    Sent {
        errors: errors.load(Ordering::Relaxed),
        per_topic,
    }
}
