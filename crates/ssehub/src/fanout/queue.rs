//! A bounded queue from the fan-out to one stream that costs nothing while
//! empty: an idle subscriber holds a lock, a waker slot and an empty
//! `VecDeque`, where tokio's channel keeps two cache-padded fields and a
//! 32-slot block (about 1 KiB) per subscriber.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

/// Capacity kept after a burst is drained; above it the buffer is freed.
const KEEP: usize = 16;

struct Shared<T> {
    state: Mutex<State<T>>,
    waker: AtomicWaker,
    capacity: usize,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

/// Why an item was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The queue holds `capacity` items: the reader is too slow.
    Full,
    /// The reader is gone.
    Closed,
}

/// Why nothing was received.
#[derive(Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing queued right now.
    Empty,
    /// Nothing queued, and the sender is gone.
    Closed,
}

/// The sending side (one per queue); dropping it ends the queue.
pub struct Sender<T>(Arc<Shared<T>>);

/// The receiving side; dropping it makes sends fail with `Closed`.
pub struct Receiver<T>(Arc<Shared<T>>);

/// A queue holding at most `capacity` items.
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            closed: false,
        }),
        waker: AtomicWaker::new(),
        capacity,
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Queues `item` without waiting.
    pub fn try_send(&self, item: T) -> Result<(), SendError> {
        {
            let mut state = self.0.state.lock();
            if state.closed {
                return Err(SendError::Closed);
            }
            if state.items.len() >= self.0.capacity {
                return Err(SendError::Full);
            }
            state.items.push_back(item);
        }
        self.0.waker.wake();
        Ok(())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.state.lock().closed = true;
        self.0.waker.wake();
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once the sender is gone and the queue is empty.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self.try_recv() {
            Ok(item) => return Poll::Ready(Some(item)),
            Err(TryRecvError::Closed) => return Poll::Ready(None),
            Err(TryRecvError::Empty) => {}
        }
        self.0.waker.register(cx.waker());
        // An item may have arrived between the check and the registration.
        match self.try_recv() {
            Ok(item) => Poll::Ready(Some(item)),
            Err(TryRecvError::Closed) => Poll::Ready(None),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }

    /// The next item, if one is queued.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = self.0.state.lock();
        match state.items.pop_front() {
            Some(item) => {
                if state.items.is_empty() && state.items.capacity() > KEEP {
                    state.items = VecDeque::new();
                }
                Ok(item)
            }
            None if state.closed => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.closed = true;
        state.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker_ref;

    #[test]
    fn bounded_ordered_and_closed_both_ways() {
        let (tx, mut rx) = bounded(2);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(tx.try_send(3), Err(SendError::Full));
        assert_eq!(rx.try_recv(), Ok(1));
        tx.try_send(3).unwrap();
        drop(tx);
        let mut cx = Context::from_waker(noop_waker_ref());
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(2)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(3)));
        assert_eq!(
            rx.poll_recv(&mut cx),
            Poll::Ready(None),
            "drained, then ended"
        );

        let (tx, rx) = bounded(2);
        drop(rx);
        assert_eq!(tx.try_send(1), Err(SendError::Closed));
    }

    #[tokio::test]
    async fn wakes_a_waiting_receiver() {
        let (tx, mut rx) = bounded::<u32>(4);
        let waiter = tokio::spawn(async move { std::future::poll_fn(|cx| rx.poll_recv(cx)).await });
        tokio::task::yield_now().await;
        tx.try_send(7).unwrap();
        assert_eq!(waiter.await.unwrap(), Some(7));
    }

    #[test]
    fn frees_the_buffer_after_a_burst() {
        let (tx, mut rx) = bounded(1000);
        for i in 0..100 {
            tx.try_send(i).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert_eq!(rx.0.state.lock().items.capacity(), 0);
    }
}
