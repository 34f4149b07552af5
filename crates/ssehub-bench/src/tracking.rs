//! What a worker's subscriptions share, whichever protocol carries them:
//! the counters, the latency histogram and the reconnect and quit signals
//! ([`Shared`]), and each subscription's check that it receives every
//! message once and in order ([`Tracker`]). The subscriptions of the spec
//! and the short-lived ones of a soak's churn are counted apart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use ssehub::proto::sse::Parser;
use tokio::sync::watch;

use crate::payload;
use crate::wire::{encode_hist, histogram, ChurnReport, Report, Spec};

/// What a group of subscriptions received, checked per subscription and topic.
#[derive(Default)]
pub(crate) struct Deliveries {
    received: AtomicU64,
    gaps: AtomicU64,
    dups: AtomicU64,
}

/// The running totals of the spec's subscriptions.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) connected: AtomicU64,
    pub(crate) failed: AtomicU64,
    deliveries: Deliveries,
    caught_up: AtomicU64,
    /// Body bytes as they came (content-coded, after chunked framing).
    pub(crate) body_bytes: AtomicU64,
    /// The same bytes decoded.
    pub(crate) decoded_bytes: AtomicU64,
}

/// The running totals of the short-lived subscriptions (a soak's churn).
#[derive(Default)]
pub(crate) struct ChurnCounters {
    /// Answered 200.
    pub(crate) opened: AtomicU64,
    /// Held for their whole time, then closed by the worker.
    pub(crate) closed: AtomicU64,
    /// Refused, unreachable, or ended before their time.
    pub(crate) failed: AtomicU64,
    deliveries: Deliveries,
}

impl ChurnCounters {
    fn report(&self) -> ChurnReport {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        ChurnReport {
            opened: load(&self.opened),
            closed: load(&self.closed),
            failed: load(&self.failed),
            received: load(&self.deliveries.received),
            gaps: load(&self.deliveries.gaps),
            dups: load(&self.deliveries.dups),
        }
    }
}

/// The state every subscription of a worker shares.
pub(crate) struct Shared {
    pub(crate) spec: Spec,
    pub(crate) counters: Counters,
    pub(crate) churn: ChurnCounters,
    hist: Mutex<Histogram<u64>>,
    /// Bumped to make every subscription reconnect with Last-Event-ID.
    reconnect: watch::Sender<u64>,
    /// The sequence number every subscription must reach to count as caught up.
    target: AtomicU64,
    quit: AtomicBool,
}

impl Shared {
    /// Fresh state for the subscriptions `spec` describes.
    pub(crate) fn new(spec: Spec) -> Shared {
        let (reconnect, _) = watch::channel(0);
        Shared {
            spec,
            counters: Counters::default(),
            churn: ChurnCounters::default(),
            hist: Mutex::new(histogram()),
            reconnect,
            target: AtomicU64::new(u64::MAX),
            quit: AtomicBool::new(false),
        }
    }

    /// The totals; a snapshot also carries the latency histogram recorded
    /// since the last snapshot.
    pub(crate) fn report(&self, snapshot: bool) -> Report {
        let c = &self.counters;
        let hist = if snapshot {
            let mut h = self.hist.lock().unwrap();
            let encoded = encode_hist(&h);
            h.reset();
            encoded
        } else {
            String::new()
        };
        Report {
            connected: c.connected.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            received: c.deliveries.received.load(Ordering::Relaxed),
            gaps: c.deliveries.gaps.load(Ordering::Relaxed),
            dups: c.deliveries.dups.load(Ordering::Relaxed),
            caught_up: c.caught_up.load(Ordering::Relaxed),
            body_bytes: c.body_bytes.load(Ordering::Relaxed),
            decoded_bytes: c.decoded_bytes.load(Ordering::Relaxed),
            churn: self.churn.report(),
            hist,
        }
    }

    /// Makes every subscription reconnect with its Last-Event-ID; those that
    /// then receive sequence number `target` count as caught up.
    pub(crate) fn reconnect(&self, target: u64) {
        self.counters.caught_up.store(0, Ordering::Relaxed);
        self.target.store(target, Ordering::Relaxed);
        self.reconnect.send_modify(|n| *n += 1);
    }

    /// Changes whenever [`Shared::reconnect`] is called.
    pub(crate) fn reconnections(&self) -> watch::Receiver<u64> {
        self.reconnect.subscribe()
    }

    /// Tells the subscriptions to stop reconnecting.
    pub(crate) fn quit(&self) {
        self.quit.store(true, Ordering::Relaxed);
    }

    /// Whether [`Shared::quit`] was called.
    pub(crate) fn quitting(&self) -> bool {
        self.quit.load(Ordering::Relaxed)
    }
}

/// Which subscriptions a [`Tracker`] counts for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Role {
    /// One of the spec's, held for the run and connected before the first
    /// publish: each topic's sequence must start at 1.
    #[default]
    Stable,
    /// A short-lived one that joined while publishing went on: each topic's
    /// sequence starts at the first event it receives.
    Churn,
}

/// What one subscription has seen, kept across its reconnections.
#[derive(Default)]
pub(crate) struct Tracker {
    role: Role,
    last_seq: HashMap<String, u64>,
    last_id: Option<String>,
}

impl Tracker {
    /// A tracker for a subscription of `role`.
    pub(crate) fn new(role: Role) -> Tracker {
        Tracker {
            role,
            ..Tracker::default()
        }
    }

    /// The id of the last event received, sent as Last-Event-ID on reconnection.
    pub(crate) fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Checks and records every event completed by `bytes`.
    pub(crate) fn feed(&mut self, shared: &Shared, parser: &mut Parser, bytes: &[u8]) {
        let now = payload::now_ns();
        let counts = match self.role {
            Role::Stable => &shared.counters.deliveries,
            Role::Churn => &shared.churn.deliveries,
        };
        for event in parser.feed(bytes) {
            let Some((topic, seq, sent)) = payload::decode(&event.data) else {
                continue;
            };
            counts.received.fetch_add(1, Ordering::Relaxed);
            let last = match self.last_seq.get_mut(topic) {
                Some(last) => last,
                None => {
                    let start = match self.role {
                        Role::Stable => 0,
                        Role::Churn => seq.saturating_sub(1),
                    };
                    self.last_seq.entry(topic.to_string()).or_insert(start)
                }
            };
            match seq.cmp(&(*last + 1)) {
                std::cmp::Ordering::Equal => *last = seq,
                std::cmp::Ordering::Less => {
                    counts.dups.fetch_add(1, Ordering::Relaxed);
                }
                std::cmp::Ordering::Greater => {
                    counts.gaps.fetch_add(seq - *last - 1, Ordering::Relaxed);
                    *last = seq;
                }
            }
            if self.role == Role::Stable && seq == shared.target.load(Ordering::Relaxed) {
                shared.counters.caught_up.fetch_add(1, Ordering::Relaxed);
            }
            let micros = now.saturating_sub(sent) / 1000;
            let _ = shared.hist.lock().unwrap().record(micros.max(1));
            self.last_id = Some(event.last_event_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared::new(Spec {
            first: 0,
            count: 0,
            addr: "127.0.0.1:1".parse().unwrap(),
            host: "h".into(),
            paths: vec![],
            headers: vec![],
            sources: vec![],
            connect_rate: 1,
            stalled: 0,
            h2: None,
            churn: None,
        })
    }

    /// SSE events carrying `(topic, seq)` payloads.
    fn events(seqs: &[(&str, u64)]) -> Vec<u8> {
        seqs.iter()
            .map(|(t, n)| {
                format!(
                    "id: {t}-{n}\ndata: {}\n\n",
                    payload::encode(t, *n, 0, payload::Shape::Padded)
                )
            })
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn a_stable_subscription_must_start_at_one_and_a_churning_one_where_it_joins() {
        let s = shared();
        let mut stable = Tracker::new(Role::Stable);
        stable.feed(
            &s,
            &mut Parser::new(),
            &events(&[("a", 1), ("b", 3), ("a", 2), ("a", 2)]),
        );
        let r = s.report(false);
        assert_eq!(
            (r.received, r.gaps, r.dups),
            (4, 2, 1),
            "b skipped 1 and 2, a 2 came twice"
        );
        assert_eq!(stable.last_id(), Some("a-2"));
        assert_eq!(r.churn.received, 0, "nothing counted as churn");

        let mut churn = Tracker::new(Role::Churn);
        let mut parser = Parser::new();
        churn.feed(&s, &mut parser, &events(&[("a", 7), ("b", 40), ("a", 8)]));
        churn.feed(&s, &mut parser, &events(&[("a", 10), ("b", 40)]));
        let r = s.report(false);
        assert_eq!(
            (r.churn.received, r.churn.gaps, r.churn.dups),
            (5, 1, 1),
            "a skipped 9, b 40 came twice"
        );
        assert_eq!(
            (r.received, r.gaps, r.dups),
            (4, 2, 1),
            "the stable counts are untouched"
        );
    }
}
