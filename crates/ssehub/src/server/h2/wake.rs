//! Which streams of a connection have work: each stream has a waker of its
//! own that puts the stream's id in the connection's ready queue and wakes
//! the connection's task, so that one task serves every stream of the
//! connection and polls only the streams that were woken.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

/// The ready queue of one connection.
#[derive(Default)]
pub(super) struct Ready {
    ids: Mutex<Vec<u32>>,
    connection: AtomicWaker,
}

impl Ready {
    /// Registers the connection task's waker, woken when a stream is.
    pub(super) fn register(&self, waker: &Waker) {
        self.connection.register(waker);
    }

    /// The ids woken since the last call, in the order they were woken
    /// (the queue's allocation goes with them: an idle connection holds
    /// none).
    pub(super) fn take(&self) -> Vec<u32> {
        std::mem::take(&mut *self.ids.lock())
    }

    /// Puts back ids taken but not polled (still marked queued), to be
    /// polled at the next round; the connection is not woken: it runs that
    /// round once its output is written.
    pub(super) fn requeue(&self, ids: &[u32]) {
        self.ids.lock().extend_from_slice(ids);
    }

    fn push(&self, id: u32) {
        self.ids.lock().push(id);
        self.connection.wake();
    }
}

/// A stream's waker: at most once in the queue until the connection polls
/// the stream again.
pub(super) struct StreamWaker {
    id: u32,
    queued: AtomicBool,
    ready: Arc<Ready>,
}

impl StreamWaker {
    /// The waker of stream `id`, queued at once: a new stream has work.
    pub(super) fn queued(id: u32, ready: &Arc<Ready>) -> Arc<StreamWaker> {
        let waker = Arc::new(StreamWaker {
            id,
            queued: AtomicBool::new(false),
            ready: ready.clone(),
        });
        waker.wake_by_ref();
        waker
    }

    /// The stream's id.
    pub(super) fn id(&self) -> u32 {
        self.id
    }

    /// Queues the stream again without waking the connection (see
    /// [`Ready::requeue`]).
    pub(super) fn requeue(&self) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.requeue(&[self.id]);
        }
    }

    /// Called before the stream is polled: a wake from then on queues it
    /// again.
    pub(super) fn unqueue(&self) {
        self.queued.store(false, Ordering::Release);
    }
}

impl Wake for StreamWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.push(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_queued_once_until_polled_again() {
        let ready = Arc::new(Ready::default());
        let one = StreamWaker::queued(1, &ready);
        let three = StreamWaker::queued(3, &ready);
        Waker::from(one.clone()).wake_by_ref();
        assert_eq!(ready.take(), [1, 3]);
        one.unqueue();
        Waker::from(three.clone()).wake();
        Waker::from(one.clone()).wake();
        Waker::from(one.clone()).wake();
        assert_eq!(ready.take(), [1], "3 was not polled since it was queued");
    }
}
