//! The tail: every appended event, in log order, from the log to the
//! fan-out.
//!
//! The tail is bounded. Its consumer (the hub's dispatch task) only queues
//! events without waiting, so it falls behind only when appends outrun the
//! processor; if it ever falls [`CAPACITY`] events behind, the log stops
//! feeding it and sends [`Tailed::Lost`] as soon as there is room again:
//! every subscriber is then disconnected and resumes from the history, which
//! holds every event the tail skipped. Memory stays bounded and nothing is
//! lost.

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

/// Receives every appended event in sequence order (the log's tail).
pub type Tail = mpsc::Receiver<Tailed>;

/// The log's side of the tail.
#[derive(Debug)]
pub struct TailSender {
    tx: mpsc::Sender<Tailed>,
    /// Items were dropped and [`Tailed::Lost`] is still owed.
    behind: AtomicBool,
}

/// A tail holding at most [`CAPACITY`] items.
pub fn tail() -> (TailSender, Tail) {
    with_capacity(CAPACITY)
}

fn with_capacity(capacity: usize) -> (TailSender, Tail) {
    let (tx, rx) = mpsc::channel(capacity);
    let sender = TailSender {
        tx,
        behind: AtomicBool::new(false),
    };
    (sender, rx)
}

impl TailSender {
    /// Queues `item` without waiting; when the tail is full it is dropped
    /// and a [`Tailed::Lost`] owed. False once the receiver is gone.
    pub fn send(&self, item: Tailed) -> bool {
        if self.behind.load(Ordering::Relaxed) {
            match self.tx.try_send(Tailed::Lost) {
                Ok(()) => self.behind.store(false, Ordering::Relaxed),
                Err(TrySendError::Full(_)) => return true,
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::warn!(
                    "the fan-out is {CAPACITY} events behind the history: its subscribers \
                     will resume from the history"
                );
                self.behind.store(true, Ordering::Relaxed);
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

    fn received(tail: &mut Tail) -> Vec<Option<u64>> {
        std::iter::from_fn(|| match tail.try_recv().ok()? {
            Tailed::Event(e) => Some(Some(e.seq)),
            Tailed::Lost => Some(None),
        })
        .collect()
    }

    #[test]
    fn a_full_tail_drops_events_then_reports_the_loss_in_order() {
        let (tx, mut rx) = with_capacity(2);
        for seq in 1..=4 {
            assert!(tx.send(event(seq)));
        }
        assert_eq!(received(&mut rx), [Some(1), Some(2)]);
        assert!(tx.send(event(5)));
        assert!(tx.send(event(6)));
        assert_eq!(
            received(&mut rx),
            [None, Some(5)],
            "3 and 4 were dropped: the loss comes before 5, then 6 did not fit"
        );
        assert!(tx.send(event(7)));
        assert_eq!(received(&mut rx), [None, Some(7)]);
        drop(rx);
        assert!(!tx.send(event(8)));
        assert!(tx.is_closed());
    }
}
