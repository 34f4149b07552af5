//! What a worker's subscriptions share, whichever protocol carries them:
//! the counters, the latency histogram and the reconnect and quit signals
//! ([`Shared`]), and each subscription's check that it receives every
//! message once and in order ([`Tracker`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use ssehub::proto::sse::Parser;
use tokio::sync::watch;

use crate::payload;
use crate::wire::{encode_hist, histogram, Report, Spec};

/// A worker's running totals.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) connected: AtomicU64,
    pub(crate) failed: AtomicU64,
    received: AtomicU64,
    gaps: AtomicU64,
    dups: AtomicU64,
    caught_up: AtomicU64,
}

/// The state every subscription of a worker shares.
pub(crate) struct Shared {
    pub(crate) spec: Spec,
    pub(crate) counters: Counters,
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
            received: c.received.load(Ordering::Relaxed),
            gaps: c.gaps.load(Ordering::Relaxed),
            dups: c.dups.load(Ordering::Relaxed),
            caught_up: c.caught_up.load(Ordering::Relaxed),
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

/// What one subscription has seen, kept across its reconnections.
#[derive(Default)]
pub(crate) struct Tracker {
    last_seq: HashMap<String, u64>,
    last_id: Option<String>,
}

impl Tracker {
    /// The id of the last event received, sent as Last-Event-ID on reconnection.
    pub(crate) fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Checks and records every event completed by `bytes`.
    pub(crate) fn feed(&mut self, shared: &Shared, parser: &mut Parser, bytes: &[u8]) {
        let now = payload::now_ns();
        for event in parser.feed(bytes) {
            let Some((topic, seq, sent)) = payload::decode(&event.data) else {
                continue;
            };
            let c = &shared.counters;
            c.received.fetch_add(1, Ordering::Relaxed);
            let last = match self.last_seq.get_mut(topic) {
                Some(last) => last,
                None => self.last_seq.entry(topic.to_string()).or_insert(0),
            };
            match seq.cmp(&(*last + 1)) {
                std::cmp::Ordering::Equal => *last = seq,
                std::cmp::Ordering::Less => {
                    c.dups.fetch_add(1, Ordering::Relaxed);
                }
                std::cmp::Ordering::Greater => {
                    c.gaps.fetch_add(seq - *last - 1, Ordering::Relaxed);
                    *last = seq;
                }
            }
            if seq == shared.target.load(Ordering::Relaxed) {
                c.caught_up.fetch_add(1, Ordering::Relaxed);
            }
            let micros = now.saturating_sub(sent) / 1000;
            let _ = shared.hist.lock().unwrap().record(micros.max(1));
            self.last_id = Some(event.last_event_id);
        }
    }
}
