//! The in-memory log: a bounded ring of events and an id index.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use futures_util::future::{ready, BoxFuture, FutureExt};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::{Log, LogError, Tail, Tailed};
use crate::proto::event::Event;
use crate::proto::update::Update;

/// A log kept in memory, holding the newest `capacity` events.
pub struct MemoryLog {
    inner: Mutex<Inner>,
    capacity: usize,
}

struct Inner {
    events: VecDeque<Arc<Event>>,
    index: HashMap<String, u64>,
    next_seq: u64,
    tail: mpsc::UnboundedSender<Tailed>,
}

impl MemoryLog {
    /// A log retaining `capacity` events, and the tail that receives appends.
    pub fn new(capacity: usize) -> (MemoryLog, Tail) {
        let (tail, rx) = mpsc::unbounded_channel();
        let inner = Inner {
            events: VecDeque::new(),
            index: HashMap::new(),
            next_seq: 1,
            tail,
        };
        (
            MemoryLog {
                inner: Mutex::new(inner),
                capacity,
            },
            rx,
        )
    }
}

impl Inner {
    fn first_seq(&self) -> u64 {
        self.events.front().map_or(self.next_seq, |e| e.seq)
    }
}

impl Log for MemoryLog {
    fn append(&self, updates: Vec<Update>) -> BoxFuture<'_, Result<Vec<Arc<Event>>, LogError>> {
        let mut inner = self.inner.lock();
        let mut out = Vec::with_capacity(updates.len());
        for update in updates {
            let event = Arc::new(Event::new(inner.next_seq, update));
            inner.next_seq += 1;
            inner.index.insert(event.update.id.clone(), event.seq);
            inner.events.push_back(event.clone());
            // Sent under the lock so the tail sees events in sequence order.
            let _ = inner.tail.send(Tailed::Event(event.clone()));
            out.push(event);
        }
        while inner.events.len() > self.capacity {
            let old = inner.events.pop_front().expect("len > capacity >= 1");
            if inner.index.get(&old.update.id) == Some(&old.seq) {
                inner.index.remove(&old.update.id);
            }
        }
        ready(Ok(out)).boxed()
    }

    fn position<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<u64>, LogError>> {
        ready(Ok(self.inner.lock().index.get(id).copied())).boxed()
    }

    fn read_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, LogError>> {
        let inner = self.inner.lock();
        let first = inner.first_seq();
        let start = after.map_or(first, |s| (s + 1).max(first));
        let skip = usize::try_from(start - first).unwrap_or(usize::MAX);
        let page = inner
            .events
            .iter()
            .skip(skip)
            .take(limit)
            .cloned()
            .collect();
        ready(Ok(page)).boxed()
    }

    fn last_id(&self) -> Option<String> {
        self.inner.lock().events.back().map(|e| e.update.id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::update::UpdateRequest;

    fn update(id: &str) -> Update {
        UpdateRequest {
            topics: vec!["t".into()],
            id: Some(id.into()),
            ..Default::default()
        }
        .validate()
        .unwrap()
    }

    fn ids(events: &[Arc<Event>]) -> Vec<&str> {
        events.iter().map(|e| e.update.id.as_str()).collect()
    }

    #[tokio::test]
    async fn appends_indexes_and_evicts() {
        let (log, mut tail) = MemoryLog::new(3);
        log.append(["a", "b", "c", "d"].map(update).to_vec())
            .await
            .unwrap();
        assert_eq!(log.position("a").await.unwrap(), None, "evicted");
        assert_eq!(log.position("b").await.unwrap(), Some(2));
        assert_eq!(
            ids(&log.read_after(None, 10).await.unwrap()),
            ["b", "c", "d"]
        );
        assert_eq!(ids(&log.read_after(Some(2), 10).await.unwrap()), ["c", "d"]);
        assert_eq!(ids(&log.read_after(Some(2), 1).await.unwrap()), ["c"]);
        assert!(log.read_after(Some(4), 10).await.unwrap().is_empty());
        assert_eq!(log.last_id().as_deref(), Some("d"));
        for want in 1..=4 {
            match tail.recv().await.unwrap() {
                Tailed::Event(event) => assert_eq!(event.seq, want),
                Tailed::Lost => panic!("one node loses nothing"),
            }
        }
    }
}
