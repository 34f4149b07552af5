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
    /// What payloads look like.
    pub(crate) shape: payload::Shape,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) client: reqwest::Client,
    /// How long a publish whose first [`ATTEMPTS`] failed is still sent
    /// again, every [`RETRY_PAUSE`], before its sequence number is given
    /// up (soak: a store that restarts); zero gives up after them.
    pub(crate) patience: Duration,
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

/// Attempts at one publish before its sequence number is given up (unless
/// the target is patient): a failed publish is sent again with the same
/// number (a subscriber that got it twice reports a duplicate), and one
/// given up shows as a gap at every subscriber.
const ATTEMPTS: usize = 3;
/// The pause between two attempts once [`ATTEMPTS`] have failed.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Counts of one publishing run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sent {
    /// Failed attempts (each retried: see [`ATTEMPTS`] and [`Target::patience`]).
    pub(crate) errors: u64,
    /// Publishes whose every attempt failed.
    pub(crate) given_up: u64,
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

/// What a publishing run has done so far, shared by its lanes.
struct Counts {
    acked: Vec<AtomicU64>,
    errors: AtomicU64,
    given_up: AtomicU64,
}

impl Counts {
    fn sent(&self) -> Sent {
        Sent {
            errors: self.errors.load(Ordering::Relaxed),
            given_up: self.given_up.load(Ordering::Relaxed),
            per_topic: self
                .acked
                .iter()
                .map(|n| n.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// A publishing run under way.
pub(crate) struct Publishing {
    counts: Arc<Counts>,
    lanes: Vec<tokio::task::JoinHandle<()>>,
}

impl Publishing {
    /// What it has done so far.
    pub(crate) fn sent(&self) -> Sent {
        self.counts.sent()
    }

    /// Waits for the run to end (its last publishes answered or given up).
    pub(crate) async fn finish(self) -> Sent {
        for lane in self.lanes {
            let _ = lane.await;
        }
        self.counts.sent()
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
    start(target, seqs, topics, rate, duration, size)
        .finish()
        .await
}

/// Starts publishing as [`run`] does, without waiting for the end.
pub(crate) fn start(
    target: &Target,
    seqs: &Arc<Sequences>,
    topics: &[String],
    rate: f64,
    duration: Duration,
    size: usize,
) -> Publishing {
    let lanes = topics.len().clamp(1, 16);
    let topics: Arc<[String]> = topics.into();
    let counts = Arc::new(Counts {
        acked: topics.iter().map(|_| AtomicU64::new(0)).collect(),
        errors: AtomicU64::new(0),
        given_up: AtomicU64::new(0),
    });
    let every = Duration::from_secs_f64(lanes as f64 / rate);
    let end = tokio::time::Instant::now() + duration;
    let tasks = (0..lanes)
        .map(|lane| {
            let mine: Vec<usize> = (lane..topics.len()).step_by(lanes).collect();
            let (target, seqs, topics, counts) =
                (target.clone(), seqs.clone(), topics.clone(), counts.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                while tokio::time::Instant::now() < end {
                    tick.tick().await;
                    let i = mine[rand::random::<usize>() % mine.len()];
                    target
                        .publish_numbered(&topics[i], seqs.next(&topics[i]), size, &counts, i)
                        .await;
                }
            })
        })
        .collect();
    Publishing {
        counts,
        lanes: tasks,
    }
}

impl Target {
    /// Publishes sequence number `seq` of `topic` (topic `i` of the run),
    /// retrying as the target allows, and counts the outcome.
    async fn publish_numbered(
        &self,
        topic: &str,
        seq: u64,
        size: usize,
        counts: &Counts,
        i: usize,
    ) {
        let started = tokio::time::Instant::now();
        for attempt in 1.. {
            if self
                .publish(topic, payload::encode(topic, seq, size, self.shape))
                .await
            {
                counts.acked[i].fetch_add(1, Ordering::Relaxed);
                return;
            }
            counts.errors.fetch_add(1, Ordering::Relaxed);
            if attempt >= ATTEMPTS {
                if started.elapsed() >= self.patience {
                    break;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
        counts.given_up.fetch_add(1, Ordering::Relaxed);
        eprintln!("publish to {topic}: sequence number {seq} given up");
    }
}
