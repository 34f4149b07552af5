//! Fan-out: routes each logged event to the queues of matching subscribers.
//!
//! Subscribers whose selectors are all exact topics are indexed by topic, so
//! an event only visits those registered for one of its topics; subscribers
//! with templates or `*` are checked one by one. Each subscriber has a bounded
//! queue: one that is full is dropped from the registry, which ends its
//! stream, and the client resumes from history. Nothing blocks on a slow
//! subscriber and no queue grows without bound.

pub mod queue;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use serde_json::Value;

use crate::proto::claims::{can_receive, receiving_selectors, SelectorSet};
use crate::proto::event::Event;
use crate::proto::selector::Matcher;

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
}

/// One registered subscription (one stream, any number of topics).
#[derive(Debug)]
pub struct Subscriber {
    key: u64,
    /// Public identifier, `urn:uuid:...`, used by the subscriptions API.
    pub id: String,
    /// Its subscriptions: the matchers as requested.
    pub subscriptions: Vec<Subscription>,
    subscribed: SelectorSet,
    allowed: SelectorSet,
    /// Sequence of the last event queued, so an event matching several of
    /// this subscriber's topics is queued once.
    last_queued: AtomicU64,
    /// Why the registry removed it, if it did.
    removal: OnceLock<Removal>,
}

impl Subscriber {
    /// The topics of its matchers when all are exact (it is then indexed
    /// by topic), else `None`.
    fn exact_topics(&self) -> Option<Vec<&str>> {
        self.subscribed
            .selectors()
            .iter()
            .map(|s| s.as_exact())
            .collect()
    }

    /// Why the registry removed this subscriber; `None` while it is
    /// registered, or when its stream removed itself.
    pub fn removal(&self) -> Option<Removal> {
        self.removal.get().copied()
    }

    /// Whether this subscriber may receive `event`.
    pub fn wants(&self, event: &Event) -> bool {
        can_receive(
            &self.subscribed,
            &self.allowed,
            &event.update.topics,
            event.update.private,
        )
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

/// A registry entry. The registry alone owns the queue's sender, so removing
/// the entry closes the queue and thereby ends the subscriber's stream.
struct Entry {
    sub: Arc<Subscriber>,
    tx: queue::Sender<Delivery>,
}

impl Entry {
    /// Queues `event` if it is for this subscriber; `false` if the queue is
    /// full or closed.
    fn offer(&self, event: &Arc<Event>) -> bool {
        if !self.sub.wants(event)
            || self.sub.last_queued.swap(event.seq, Ordering::Relaxed) == event.seq
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
        can_receive(
            &self.subscribed,
            &self.allowed,
            &event.update.topics,
            event.update.private,
        )
    }
}

/// The registry of live subscribers.
pub struct Fanout {
    registry: RwLock<Registry>,
    next_key: AtomicU64,
    queue_size: usize,
}

#[derive(Default)]
struct Registry {
    subscribers: HashMap<u64, Entry>,
    by_topic: HashMap<String, Vec<u64>>,
    by_pattern: Vec<u64>,
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
        }
    }

    /// Registers a subscriber; deliveries start queuing at once.
    pub fn register(
        &self,
        reg: Registration,
    ) -> Result<(Arc<Subscriber>, queue::Receiver<Delivery>), Closed> {
        let (tx, rx) = queue::bounded(self.queue_size);
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let sub = Arc::new(Subscriber {
            key,
            id: format!("urn:uuid:{}", uuid::Uuid::now_v7()),
            subscriptions: reg.subscriptions,
            subscribed: reg.subscribed,
            allowed: reg.allowed,
            last_queued: AtomicU64::new(0),
            removal: OnceLock::new(),
        });
        let mut r = self.registry.write();
        if r.closed {
            return Err(Closed);
        }
        match sub.exact_topics() {
            Some(topics) => {
                for topic in topics {
                    let keys = r.by_topic.entry(topic.to_string()).or_default();
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
            }
            None => r.by_pattern.push(key),
        }
        r.subscribers.insert(
            key,
            Entry {
                sub: sub.clone(),
                tx,
            },
        );
        Ok((sub, rx))
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
            let exact = event
                .update
                .topics
                .iter()
                .filter_map(|t| r.by_topic.get(t))
                .flatten();
            for key in exact.chain(&r.by_pattern) {
                if !r.subscribers[key].offer(event) {
                    lagging.push(*key);
                }
            }
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
        self.by_pattern.clear();
        n
    }

    /// Removes the subscriber `key`, returning it if it was registered.
    fn remove(&mut self, key: u64) -> Option<Arc<Subscriber>> {
        let Entry { sub, .. } = self.subscribers.remove(&key)?;
        if let Some(topics) = sub.exact_topics() {
            for topic in topics {
                if let Some(keys) = self.by_topic.get_mut(topic) {
                    keys.retain(|k| *k != key);
                    if keys.is_empty() {
                        self.by_topic.remove(topic);
                    }
                }
            }
        } else {
            self.by_pattern.retain(|k| *k != key);
        }
        Some(sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::selector::SelectorCache;
    use crate::proto::update::UpdateRequest;

    fn reg(cache: &SelectorCache, topics: &[&str], allowed: &[&str]) -> Registration {
        let matchers = |list: &[&str]| -> Vec<Matcher> {
            list.iter().map(|t| Matcher::selector(*t)).collect()
        };
        let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
        let compile = |list: &[&str]| SelectorSet::compile(cache, &matchers(list), &base).unwrap();
        Registration {
            subscribed: compile(topics),
            allowed: compile(allowed),
            subscriptions: matchers(topics)
                .into_iter()
                .map(|matcher| Subscription {
                    matcher,
                    payload: None,
                })
                .collect(),
        }
    }

    fn event(seq: u64, topics: &[&str], private: bool) -> Arc<Event> {
        let update = UpdateRequest {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            private,
            ..Default::default()
        }
        .validate(String::new)
        .unwrap();
        Arc::new(Event::new(seq, update))
    }

    fn seqs(rx: &mut queue::Receiver<Delivery>) -> Vec<u64> {
        std::iter::from_fn(|| match rx.try_recv().ok()? {
            Delivery::Event(e) => Some(e.seq),
            Delivery::Heartbeat => Some(0),
        })
        .collect()
    }

    #[test]
    fn routes_by_exact_topic_template_and_privacy() {
        let cache = SelectorCache::new(64);
        let f = Fanout::new(8);
        let (_, mut exact) = f.register(reg(&cache, &["a", "b"], &[])).unwrap();
        let (_, mut tpl) = f
            .register(reg(&cache, &["https://x/{id}"], &["https://x/1"]))
            .unwrap();
        f.dispatch(&event(1, &["a", "b"], false));
        f.dispatch(&event(2, &["c", "https://x/1"], false));
        f.dispatch(&event(3, &["https://x/2", "a"], true));
        f.dispatch(&event(4, &["https://x/2", "https://x/1"], true));
        assert_eq!(seqs(&mut exact), [1], "once for two topics; no private");
        assert_eq!(
            seqs(&mut tpl),
            [2, 4],
            "alternate topic authorizes the private one"
        );
    }

    #[test]
    fn names_each_receiving_matcher_once_and_never_an_unauthorized_one() {
        let cache = SelectorCache::new(64);
        let f = Fanout::new(8);
        let (sub, _rx) = f
            .register(reg(
                &cache,
                &["https://x/{id}", "https://x/2", "https://x/{id}", "*"],
                &["https://x/1"],
            ))
            .unwrap();
        let public = event(1, &["https://x/2"], false);
        assert_eq!(
            sub.receiving(&public),
            ["https://x/{id}", "https://x/2", "*"]
        );
        let private = event(2, &["https://x/2", "https://x/1"], true);
        assert!(sub.wants(&private));
        assert_eq!(
            sub.receiving(&private),
            ["https://x/{id}", "*"],
            "https://x/2 matches only a topic the token does not grant"
        );
        assert!(sub.receiving(&event(3, &["https://y"], true)).is_empty());
    }

    #[test]
    fn drops_lagging_subscribers_only() {
        let cache = SelectorCache::new(64);
        let f = Fanout::new(2);
        let (slow, _slow_rx) = f.register(reg(&cache, &["a"], &[])).unwrap();
        let (_, mut fast) = f.register(reg(&cache, &["a"], &[])).unwrap();
        let dropped: Vec<usize> = (1..=3)
            .map(|seq| {
                let dropped = f.dispatch(&event(seq, &["a"], false));
                seqs(&mut fast);
                dropped
            })
            .collect();
        assert_eq!(dropped, [0, 0, 1], "dropped when its queue of 2 overflows");
        assert_eq!(slow.removal(), Some(Removal::Slow));
        assert!(!f.remove(&slow), "slow subscriber was already dropped");
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn disconnect_all_ends_queues_after_their_events_and_keeps_accepting() {
        let cache = SelectorCache::new(64);
        let f = Fanout::new(4);
        let (sub, mut rx) = f.register(reg(&cache, &["a"], &[])).unwrap();
        f.dispatch(&event(1, &["a"], false));
        assert_eq!(sub.removal(), None);
        assert_eq!(f.disconnect_all(), 1);
        assert_eq!(sub.removal(), Some(Removal::Resync));
        assert_eq!(seqs(&mut rx), [1], "what was queued is still delivered");
        assert!(matches!(rx.try_recv(), Err(queue::TryRecvError::Closed)));
        let (_, mut again) = f.register(reg(&cache, &["a"], &[])).unwrap();
        f.dispatch(&event(2, &["a"], false));
        assert_eq!(seqs(&mut again), [2]);
    }

    #[test]
    fn close_ends_queues_and_refuses_new() {
        let cache = SelectorCache::new(64);
        let f = Fanout::new(2);
        let (sub, mut rx) = f.register(reg(&cache, &["*"], &[])).unwrap();
        f.close();
        assert_eq!(sub.removal(), Some(Removal::Shutdown));
        assert!(matches!(rx.try_recv(), Err(queue::TryRecvError::Closed)));
        assert!(f.register(reg(&cache, &["*"], &[])).is_err());
    }
}
