//! The tail: every appended event, in log order, from the log to the
//! fan-out.
//!
//! The tail is bounded. Its consumer (the hub's dispatch task) only queues
//! events without waiting, so it falls behind only when appends outrun the
//! processor. If it ever falls [`CAPACITY`] events behind, the log stops
//! feeding it, and once the consumer has taken what the tail holds it
//! receives [`Tailed::Lost`]: every subscriber is then disconnected and
//! resumes from the history, which holds every event the tail skipped.
//! Memory stays bounded and nothing is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::proto::event::Event;

/// Most items the tail holds.
pub const CAPACITY: usize = 65_536;

/// What the log's tail carries, in log order.
#[derive(Debug)]
pub enum Tailed {
    /// An appended event.
    Event(Arc<Event>),
    /// Events between the previous item and the next one are lost to this
    /// node's live feed: the fan-out fell too far behind, or a log shared by
    /// several nodes trimmed them before this node could read them. Its
    /// subscribers must then resume from the history.
    Lost,
}

/// The log's side of the tail.
#[derive(Debug)]
pub struct TailSender {
    tx: mpsc::Sender<Tailed>,
    /// Items were dropped: nothing more is sent until the receiver has
    /// reported the loss (and cleared this).
    behind: Arc<AtomicBool>,
}

/// The fan-out's side: receives every appended event in sequence order.
#[derive(Debug)]
pub struct Tail {
    rx: mpsc::Receiver<Tailed>,
    behind: Arc<AtomicBool>,
}

/// A tail holding at most [`CAPACITY`] items.
pub fn tail() -> (TailSender, Tail) {
    with_capacity(CAPACITY)
}

fn with_capacity(capacity: usize) -> (TailSender, Tail) {
    let (tx, rx) = mpsc::channel(capacity);
    let behind = Arc::new(AtomicBool::new(false));
    let sender = TailSender {
        tx,
        behind: behind.clone(),
    };
    (sender, Tail { rx, behind })
}

impl TailSender {
    /// Queues `item` without waiting. When the tail is full, it and every
    /// item after it are dropped until the receiver has taken what the tail
    /// holds and reported the loss. False once the receiver is gone.
    pub fn send(&self, item: Tailed) -> bool {
        if self.behind.load(Ordering::SeqCst) {
            return !self.tx.is_closed();
        }
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::warn!(
                    "the fan-out is {CAPACITY} events behind the history: its subscribers \
                     will resume from the history"
                );
                self.behind.store(true, Ordering::SeqCst);
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Tail {
    /// Waits for items and moves up to `limit` of them into `buf`, in order;
    /// returns how many, 0 once the log is gone and everything was taken.
    /// After the items that fit before a loss comes [`Tailed::Lost`].
    pub async fn recv_many(&mut self, buf: &mut Vec<Tailed>, limit: usize) -> usize {
        let mut taken = 0;
        while taken < limit {
            match self.rx.try_recv() {
                Ok(item) => {
                    buf.push(item);
                    taken += 1;
                }
                Err(_) => break,
            }
        }
        if taken > 0 {
            return taken;
        }
        // Empty: a loss is reported now, before anything sent after it.
        if self.behind.swap(false, Ordering::SeqCst) {
            buf.push(Tailed::Lost);
            return 1;
        }
        self.rx.recv_many(buf, limit).await
    }

    /// The next item; `None` once the log is gone and everything was taken.
    pub async fn recv(&mut self) -> Option<Tailed> {
        let mut one = Vec::with_capacity(1);
        self.recv_many(&mut one, 1).await;
        one.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::update::UpdateRequest;

    fn event(seq: u64) -> Tailed {
        let update = UpdateRequest {
            topics: vec!["t".into()],
            ..Default::default()
        }
        .validate(String::new)
        .unwrap();
        Tailed::Event(Arc::new(Event::new(seq, update)))
    }

    async fn received(tail: &mut Tail) -> Vec<Option<u64>> {
        let mut items = Vec::new();
        tail.recv_many(&mut items, 100).await;
        items
            .into_iter()
            .map(|item| match item {
                Tailed::Event(e) => Some(e.seq),
                Tailed::Lost => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_full_tail_drops_events_and_reports_the_loss_after_what_it_held() {
        let (tx, mut rx) = with_capacity(2);
        for seq in 1..=4 {
            assert!(tx.send(event(seq)));
        }
        assert_eq!(received(&mut rx).await, [Some(1), Some(2)]);
        assert_eq!(
            received(&mut rx).await,
            [None],
            "3 and 4 were dropped: the loss is reported though nothing was sent since"
        );
        assert!(tx.send(event(5)));
        assert_eq!(received(&mut rx).await, [Some(5)], "then the feed goes on");
        drop(rx);
        assert!(!tx.send(event(6)));
        assert!(tx.is_closed());
    }

    #[tokio::test]
    async fn while_behind_nothing_passes_the_loss() {
        let (tx, mut rx) = with_capacity(1);
        assert!(tx.send(event(1)));
        assert!(tx.send(event(2)), "full: dropped");
        assert_eq!(received(&mut rx).await, [Some(1)]);
        assert!(
            tx.send(event(3)),
            "room again, but the loss is not reported yet: dropped"
        );
        assert_eq!(received(&mut rx).await, [None]);
        assert!(tx.send(event(4)));
        assert_eq!(received(&mut rx).await, [Some(4)]);
    }
}
