//! Fan-out: routes each logged event to the queues of matching subscribers.
//!
//! The registry indexes each subscriber's selectors separately: exact topics
//! in a map from topic to subscribers, the others in `index.rs`, which holds
//! each distinct compiled selector once with its subscribers and indexes URI
//! templates by their literal prefix. An event therefore visits only the
//! subscribers registered for one of its topics and matches only the
//! templates whose prefix starts one of its topics, each once whatever the
//! number of subscribers holding it; `*` and URL patterns are matched for
//! every event, also once per distinct selector. A subscriber reached
//! through several selectors or topics is queued the event once, after the
//! privacy check of its token's grants. Each subscriber has a bounded
//! queue: one that is full is dropped from the registry, which ends its
//! stream, and the client resumes from history. Nothing blocks on a slow
//! subscriber and no queue grows without bound. A subscriber registered
//! with a deadline (its token's expiry, its stream's maximum age) is
//! dropped then by [`Fanout::expire_due`], called by one task for the whole
//! hub: a deadline is an entry in an ordered map, not a timer per stream.

mod index;
pub mod queue;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::proto::claims::{can_receive, receiving_selectors, SelectorSet};
use crate::proto::event::Event;
use crate::proto::selector::Matcher;

use index::SelectorIndex;

/// What a subscriber's queue carries.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A logged event.
    Event(Arc<Event>),
    /// Time to write a heartbeat comment.
    Heartbeat,
}

/// Why the registry removed a subscriber (which ends its stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Its queue was full: it reads too slowly.
    Slow,
    /// The hub is shutting down.
    Shutdown,
    /// Every subscriber was disconnected so that each resumes from the
    /// history.
    Resync,
    /// Its token expired.
    TokenExpired,
    /// Its stream reached its maximum age.
    MaxDuration,
}

/// When the registry drops a subscriber, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// The instant it is dropped.
    pub at: Instant,
    /// Why: [`Removal::TokenExpired`] or [`Removal::MaxDuration`].
    pub why: Removal,
}

/// One registered subscription (one stream, any number of topics).
#[derive(Debug)]
pub struct Subscriber {
    key: u64,
    /// Public identifier, used by the subscriptions API.
    pub id: SubscriberId,
    /// Its subscriptions: the matchers as requested.
    pub subscriptions: Vec<Subscription>,
    subscribed: SelectorSet,
    allowed: SelectorSet,
    /// Sequence of the last event queued, so an event matching several of
    /// this subscriber's topics is queued once.
    last_queued: AtomicU64,
    /// Why the registry removed it, if it did.
    removal: OnceLock<Removal>,
    /// When the registry removes it, if ever (the key of its entry among
    /// the registry's deadlines).
    deadline: Option<Instant>,
}

impl Subscriber {
    /// Whether its token lets it receive `event`, a private one only
    /// through a topic its grants match (see [`can_receive`]; the registry
    /// already knows one of its selectors matches).
    fn allowed_to_see(&self, event: &Event) -> bool {
        !event.update.private || self.allowed.matches_any(&event.update.topics)
    }

    /// Why the registry removed this subscriber; `None` while it is
    /// registered, or when its stream removed itself.
    pub fn removal(&self) -> Option<Removal> {
        self.removal.get().copied()
    }

    /// Whether this subscriber may receive `event`.
    pub fn wants(&self, event: &Event) -> bool {
        receives(&self.subscribed, &self.allowed, event)
    }

    /// The texts of its matchers through which it receives `event` (see
    /// [`receiving_selectors`]: for a private update, only those matching a
    /// topic its token grants), each once, in the order requested.
    pub fn receiving(&self, event: &Event) -> Vec<&str> {
        let mut texts: Vec<&str> = Vec::new();
        let through = receiving_selectors(
            &self.subscribed,
            &self.allowed,
            &event.update.topics,
            event.update.private,
        );
        for text in through.filter_map(|i| self.subscriptions.get(i)) {
            let text = text.matcher.text.as_str();
            if !texts.contains(&text) {
                texts.push(text);
            }
        }
        texts
    }
}

/// A subscriber's public identifier, written `urn:uuid:...`. Held as the
/// UUID and written when asked (rarely): every stream has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberId(uuid::Uuid);

impl std::fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "urn:uuid:{}", self.0)
    }
}

/// A registry entry. The registry alone owns the queue's sender, so removing
/// the entry closes the queue and thereby ends the subscriber's stream.
struct Entry {
    sub: Arc<Subscriber>,
    tx: queue::Sender<Delivery>,
}

impl Entry {
    /// Queues `event`, which one of the subscriber's selectors matches, if
    /// its token allows and it was not already queued; `false` if the queue
    /// is full or closed.
    fn offer(&self, event: &Arc<Event>) -> bool {
        if self.sub.last_queued.swap(event.seq, Ordering::Relaxed) == event.seq
            || !self.sub.allowed_to_see(event)
        {
            return true;
        }
        self.tx.try_send(Delivery::Event(event.clone())).is_ok()
    }
}

/// One matcher of a stream, as the subscriptions API describes it.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The matcher as requested.
    pub matcher: Matcher,
    /// The payload the subscriber's token attaches to it.
    pub payload: Option<Value>,
}

/// What a new stream asks for.
#[derive(Debug)]
pub struct Registration {
    /// Its subscriptions, one per matcher.
    pub subscriptions: Vec<Subscription>,
    /// The same matchers, compiled, in the same order.
    pub subscribed: SelectorSet,
    /// The token's compiled `subscribe` grants (private updates).
    pub allowed: SelectorSet,
}

impl Registration {
    /// Whether the subscriber it registers will receive `event` (as
    /// [`Subscriber::wants`]).
    pub fn wants(&self, event: &Event) -> bool {
        receives(&self.subscribed, &self.allowed, event)
    }
}

/// Whether a stream holding `subscribed`, with the token's `allowed`
/// grants, receives `event`.
fn receives(subscribed: &SelectorSet, allowed: &SelectorSet, event: &Event) -> bool {
    can_receive(
        subscribed,
        allowed,
        &event.update.topics,
        event.update.private,
    )
}

/// The registry of live subscribers.
pub struct Fanout {
    registry: RwLock<Registry>,
    next_key: AtomicU64,
    queue_size: usize,
    /// Told when a deadline becomes the earliest.
    earliest_changed: Notify,
}

#[derive(Default)]
struct Registry {
    subscribers: HashMap<u64, Entry>,
    /// Subscribers by the exact topics they select.
    by_topic: HashMap<String, Vec<u64>>,
    /// The other selectors (templates, URL patterns, `*`).
    patterns: SelectorIndex,
    /// Subscribers to remove at a given instant, the earliest first.
    deadlines: BTreeMap<(Instant, u64), Removal>,
    closed: bool,
}

/// The hub is shutting down and takes no new subscribers.
#[derive(Debug, thiserror::Error)]
#[error("the hub is shutting down")]
pub struct Closed;

impl Fanout {
    /// An empty registry whose queues hold `queue_size` deliveries each.
    pub fn new(queue_size: usize) -> Fanout {
        Fanout {
            registry: RwLock::new(Registry::default()),
            next_key: AtomicU64::new(1),
            queue_size,
            earliest_changed: Notify::new(),
        }
    }

    /// Registers a subscriber; deliveries start queuing at once.
    /// With a `deadline`, it is removed then (see [`Fanout::expire_due`]).
    pub fn register(
        &self,
        reg: Registration,
        deadline: Option<Deadline>,
    ) -> Result<(Arc<Subscriber>, queue::Receiver<Delivery>), Closed> {
        let (tx, rx) = queue::bounded(self.queue_size);
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let sub = Arc::new(Subscriber {
            key,
            id: SubscriberId(uuid::Uuid::now_v7()),
            subscriptions: reg.subscriptions,
            subscribed: reg.subscribed,
            allowed: reg.allowed,
            last_queued: AtomicU64::new(0),
            removal: OnceLock::new(),
            deadline: deadline.map(|d| d.at),
        });
        let mut r = self.registry.write();
        if r.closed {
            return Err(Closed);
        }
        for selector in sub.subscribed.selectors() {
            match selector.as_exact() {
                Some(topic) => {
                    let keys = r.by_topic.entry(topic.to_string()).or_default();
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
                None => r.patterns.insert(selector, key),
            }
        }
        r.subscribers.insert(
            key,
            Entry {
                sub: sub.clone(),
                tx,
            },
        );
        if let Some(Deadline { at, why }) = deadline {
            let earliest = r
                .deadlines
                .keys()
                .next()
                .is_none_or(|first| (at, key) < *first);
            r.deadlines.insert((at, key), why);
            drop(r);
            if earliest {
                self.earliest_changed.notify_one();
            }
        }
        Ok((sub, rx))
    }

    /// Removes the subscribers whose deadline is at or before `now`, each
    /// for its reason; returns the next deadline, if any.
    pub fn expire_due(&self, now: Instant) -> Option<Instant> {
        let mut r = self.registry.write();
        while let Some(entry) = r.deadlines.first_entry() {
            let (at, key) = *entry.key();
            if at > now {
                return Some(at);
            }
            let why = entry.remove();
            if let Some(sub) = r.remove(key) {
                let _ = sub.removal.set(why);
            }
        }
        None
    }

    /// Resolves when a subscriber was registered with a deadline earlier
    /// than every other (or than none), since the last call.
    pub async fn earliest_changed(&self) {
        self.earliest_changed.notified().await;
    }

    /// Removes a subscriber; returns whether it was still registered.
    pub fn remove(&self, sub: &Subscriber) -> bool {
        self.registry.write().remove(sub.key).is_some()
    }

    /// Queues `event` to every matching subscriber; drops those that lag
    /// and returns how many it dropped.
    pub fn dispatch(&self, event: &Arc<Event>) -> usize {
        let mut lagging = Vec::new();
        {
            let r = self.registry.read();
            let mut offer = |key: u64| {
                if let Some(entry) = r.subscribers.get(&key) {
                    if !entry.offer(event) {
                        lagging.push(key);
                    }
                }
            };
            let topics = &event.update.topics;
            topics
                .iter()
                .filter_map(|t| r.by_topic.get(t))
                .flatten()
                .for_each(|key| offer(*key));
            r.patterns.matching(topics, offer);
        }
        if lagging.is_empty() {
            return 0;
        }
        let mut r = self.registry.write();
        let mut dropped = 0;
        for key in lagging {
            if let Some(sub) = r.remove(key) {
                let _ = sub.removal.set(Removal::Slow);
                dropped += 1;
                tracing::debug!(key, "disconnecting a subscriber whose queue is full");
            }
        }
        dropped
    }

    /// Asks every idle subscriber to write a heartbeat (a busy one has data to
    /// write anyway, so a full queue is not an error here).
    pub fn heartbeat(&self) {
        for entry in self.registry.read().subscribers.values() {
            let _ = entry.tx.try_send(Delivery::Heartbeat);
        }
    }

    /// Every live subscriber (for the subscriptions API).
    pub fn subscribers(&self) -> Vec<Arc<Subscriber>> {
        self.registry
            .read()
            .subscribers
            .values()
            .map(|e| e.sub.clone())
            .collect()
    }

    /// Number of live subscribers.
    pub fn len(&self) -> usize {
        self.registry.read().subscribers.len()
    }

    /// Whether there are no live subscribers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends every stream (their queues close) and refuses new subscribers.
    pub fn close(&self) {
        let mut r = self.registry.write();
        r.closed = true;
        r.clear(Removal::Shutdown);
    }

    /// Whether [`Fanout::close`] was called: the hub is shutting down.
    pub fn is_closed(&self) -> bool {
        self.registry.read().closed
    }

    /// Ends every stream (their queues close, after what they already hold),
    /// still taking new subscribers; returns how many were ended.
    pub fn disconnect_all(&self) -> usize {
        self.registry.write().clear(Removal::Resync)
    }
}

impl Registry {
    /// Drops every subscriber, for `why`; returns how many there were.
    fn clear(&mut self, why: Removal) -> usize {
        let n = self.subscribers.len();
        for (_, entry) in self.subscribers.drain() {
            let _ = entry.sub.removal.set(why);
        }
        self.by_topic.clear();
        self.patterns.clear();
        self.deadlines.clear();
        n
    }

    /// Removes the subscriber `key`, returning it if it was registered.
    fn remove(&mut self, key: u64) -> Option<Arc<Subscriber>> {
        let Entry { sub, .. } = self.subscribers.remove(&key)?;
        if let Some(at) = sub.deadline {
            self.deadlines.remove(&(at, key));
        }
        for selector in sub.subscribed.selectors() {
            match selector.as_exact() {
                Some(topic) => self.forget_topic(topic, key),
                None => self.patterns.remove(selector, key),
            }
        }
        Some(sub)
    }

    /// Removes subscriber `key` from the subscribers of exact `topic`.
    fn forget_topic(&mut self, topic: &str, key: u64) {
        if let Some(keys) = self.by_topic.get_mut(topic) {
            keys.retain(|k| *k != key);
            if keys.is_empty() {
                self.by_topic.remove(topic);
            }
        }
    }
}

#[cfg(test)]
mod tests;
