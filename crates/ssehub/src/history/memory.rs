//! The in-memory log: a bounded ring of events and an id index.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::{ready, BoxFuture, FutureExt};
use parking_lot::{Mutex, MutexGuard};

use super::ids::IdGenerator;
use super::log::{Holding, Log, LogError, Retention};
use super::tail::{tail, Tail, TailSender, Tailed};
use crate::proto::event::Event;
use crate::proto::update::Update;

/// A log kept in memory, within its [`Retention`] (count, bytes of the
/// encoded frames, age).
pub struct MemoryLog {
    inner: Mutex<Inner>,
    retention: Retention,
    ids: IdGenerator,
}

struct Inner {
    /// Retained events, oldest first, with the time each was appended.
    events: VecDeque<(Arc<Event>, SystemTime)>,
    /// Bytes of the retained events' frames.
    bytes: u64,
    index: HashMap<String, u64>,
    next_seq: u64,
    tail: TailSender,
}

impl MemoryLog {
    /// A log retaining what `retention` allows, and the tail that receives
    /// appends.
    pub fn new(retention: Retention) -> (MemoryLog, Tail) {
        let (tail, rx) = tail();
        let inner = Inner {
            events: VecDeque::new(),
            bytes: 0,
            index: HashMap::new(),
            next_seq: 1,
            tail,
        };
        (
            MemoryLog {
                inner: Mutex::new(inner),
                retention,
                ids: IdGenerator::default(),
            },
            rx,
        )
    }

    /// The events still retained at `now`, the expired ones dropped first.
    fn retained(&self, now: SystemTime) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock();
        if let Some(age) = self.retention.max_age {
            let oldest = now.checked_sub(age).unwrap_or(UNIX_EPOCH);
            while inner.events.front().is_some_and(|(_, at)| *at < oldest) {
                inner.drop_oldest();
            }
        }
        inner
    }
}

impl Inner {
    fn first_seq(&self) -> u64 {
        self.events.front().map_or(self.next_seq, |(e, _)| e.seq)
    }

    /// Drops the oldest event and its index entry (unless a newer event
    /// reused its id).
    fn drop_oldest(&mut self) {
        let Some((old, _)) = self.events.pop_front() else {
            return;
        };
        self.bytes -= old.frame.len() as u64;
        if self.index.get(&old.update.id) == Some(&old.seq) {
            self.index.remove(&old.update.id);
        }
    }
}

impl Log for MemoryLog {
    fn append(&self, updates: Vec<Update>) -> BoxFuture<'_, Result<Vec<Arc<Event>>, LogError>> {
        let mut inner = self.retained(SystemTime::now());
        // Append times never go back, even if the clock does, so a time
        // is found by binary search.
        let now = inner
            .events
            .back()
            .map_or_else(SystemTime::now, |(_, at)| SystemTime::now().max(*at));
        let mut out = Vec::with_capacity(updates.len());
        for update in updates {
            let event = Arc::new(Event::new(inner.next_seq, update));
            inner.next_seq += 1;
            // A reused id keeps pointing at the earliest update that carried it.
            inner
                .index
                .entry(event.update.id.clone())
                .or_insert(event.seq);
            inner.bytes += event.frame.len() as u64;
            inner.events.push_back((event.clone(), now));
            // Sent under the lock so the tail sees events in sequence order.
            inner.tail.send(Tailed::Event(event.clone()));
            out.push(event);
        }
        let limits = &self.retention;
        while inner.events.len() > limits.max_count
            || (inner.bytes > limits.max_bytes && inner.events.len() > 1)
        {
            inner.drop_oldest();
        }
        ready(Ok(out)).boxed()
    }

    fn position<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<u64>, LogError>> {
        let position = self.retained(SystemTime::now()).index.get(id).copied();
        ready(Ok(position)).boxed()
    }

    fn read_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, LogError>> {
        let inner = self.retained(SystemTime::now());
        let first = inner.first_seq();
        let start = after.map_or(first, |s| (s + 1).max(first));
        let skip = usize::try_from(start - first).unwrap_or(usize::MAX);
        let page = inner
            .events
            .iter()
            .skip(skip)
            .take(limit)
            .map(|(event, _)| event.clone())
            .collect();
        ready(Ok(page)).boxed()
    }

    fn read_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, LogError>> {
        let inner = self.retained(SystemTime::now());
        let first = inner.first_seq();
        let end = before.map_or(inner.next_seq, |b| b.clamp(first, inner.next_seq));
        let count = usize::try_from(end - first).unwrap_or(usize::MAX);
        let page = inner
            .events
            .range(count.saturating_sub(limit)..count)
            .map(|(event, _)| event.clone())
            .collect();
        ready(Ok(page)).boxed()
    }

    fn before_time(&self, unix_ms: u64) -> BoxFuture<'_, Result<Option<Arc<Event>>, LogError>> {
        let inner = self.retained(SystemTime::now());
        let time = UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
        let before = inner.events.partition_point(|(_, at)| *at < time);
        let found = before
            .checked_sub(1)
            .and_then(|i| inner.events.get(i))
            .map(|(event, _)| event.clone());
        ready(Ok(found)).boxed()
    }

    fn last_id(&self) -> Option<String> {
        self.inner
            .lock()
            .events
            .back()
            .map(|(e, _)| e.update.id.clone())
    }

    fn new_id(&self) -> String {
        self.ids.next()
    }

    fn holding(&self) -> BoxFuture<'_, Holding> {
        let inner = self.retained(SystemTime::now());
        let holding = Holding {
            events: Some(inner.events.len() as u64),
            bytes: Some(inner.bytes),
        };
        ready(holding).boxed()
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
        .validate(String::new)
        .unwrap()
    }

    fn ids(events: &[Arc<Event>]) -> Vec<&str> {
        events.iter().map(|e| e.update.id.as_str()).collect()
    }

    #[tokio::test]
    async fn appends_indexes_and_evicts() {
        let (log, mut tail) = MemoryLog::new(Retention {
            max_count: 3,
            max_bytes: u64::MAX,
            max_age: None,
        });
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

    #[tokio::test]
    async fn reads_backward_in_pages() {
        let (log, _tail) = MemoryLog::new(Retention {
            max_count: 4,
            max_bytes: u64::MAX,
            max_age: None,
        });
        assert!(log.read_before(None, 10).await.unwrap().is_empty());
        log.append(["a", "b", "c", "d", "e"].map(update).to_vec())
            .await
            .unwrap();
        assert_eq!(ids(&log.read_before(None, 2).await.unwrap()), ["d", "e"]);
        assert_eq!(
            ids(&log.read_before(Some(4), 10).await.unwrap()),
            ["b", "c"],
            "stops at the oldest retained"
        );
        assert_eq!(ids(&log.read_before(Some(4), 1).await.unwrap()), ["c"]);
        assert!(log.read_before(Some(2), 10).await.unwrap().is_empty());
        assert!(log.read_before(Some(1), 10).await.unwrap().is_empty());
    }

    /// Milliseconds since the Unix epoch now, after a pause so that what
    /// is appended before and after it falls in different milliseconds.
    async fn instant_between() -> u64 {
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        let at = crate::clock::unix_ms();
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        at
    }

    #[tokio::test]
    async fn finds_the_newest_event_before_a_time() {
        let (log, _tail) = MemoryLog::new(Retention {
            max_count: 3,
            max_bytes: u64::MAX,
            max_age: None,
        });
        let seq = |e: Option<Arc<Event>>| e.map(|e| e.update.id.clone());
        let mut times = Vec::new();
        for id in ["a", "b", "c"] {
            times.push(instant_between().await);
            log.append(vec![update(id)]).await.unwrap();
        }
        let future = instant_between().await + 60_000;
        assert_eq!(seq(log.before_time(times[0]).await.unwrap()), None);
        assert_eq!(
            seq(log.before_time(times[1]).await.unwrap()).as_deref(),
            Some("a")
        );
        assert_eq!(
            seq(log.before_time(times[2]).await.unwrap()).as_deref(),
            Some("b")
        );
        assert_eq!(
            seq(log.before_time(future).await.unwrap()).as_deref(),
            Some("c")
        );
        log.append(vec![update("d")]).await.unwrap();
        assert_eq!(
            seq(log.before_time(times[1]).await.unwrap()),
            None,
            "a, the newest before that time, was evicted"
        );
        assert_eq!(
            seq(log.before_time(times[2]).await.unwrap()).as_deref(),
            Some("b")
        );
    }

    #[tokio::test]
    async fn drops_what_is_older_than_the_age_limit() {
        let (log, _tail) = MemoryLog::new(Retention {
            max_count: 100,
            max_bytes: u64::MAX,
            max_age: Some(std::time::Duration::from_millis(200)),
        });
        log.append(vec![update("old")]).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        log.append(vec![update("new")]).await.unwrap();
        assert_eq!(log.position("old").await.unwrap(), None, "expired");
        assert_eq!(ids(&log.read_after(None, 10).await.unwrap()), ["new"]);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            log.read_after(None, 10).await.unwrap().is_empty(),
            "reads skip what expired since the last append"
        );
        assert_eq!(log.position("new").await.unwrap(), None);
    }

    #[tokio::test]
    async fn keeps_within_the_byte_limit_but_always_the_newest() {
        let (log, _tail) = MemoryLog::new(Retention {
            max_count: 100,
            max_bytes: 1,
            max_age: None,
        });
        log.append(["a", "b"].map(update).to_vec()).await.unwrap();
        assert_eq!(ids(&log.read_after(None, 10).await.unwrap()), ["b"]);
        assert_eq!(log.position("a").await.unwrap(), None);
    }
}
