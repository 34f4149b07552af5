//! Hands what the writer thread committed to the runtime.
//!
//! The thread queues its results and rings a socket; a task of the runtime,
//! woken by the I/O driver, answers the appends and feeds the tail. A wake
//! made by a task is scheduled on its worker (the woken task runs soon), but
//! a wake from another thread queues the task behind every task already
//! runnable: with thousands of streams just woken by the previous update,
//! that delayed each publish answer and each dispatch by a whole round of
//! writes.

use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::history::log::LogError;
use crate::history::tail::{TailSender, Tailed};
use crate::proto::event::Event;

/// Where an append's outcome goes.
pub(super) type Reply = oneshot::Sender<Result<Vec<Arc<Event>>, LogError>>;

/// The outcome of one append.
pub(super) enum Done {
    /// Committed: the events, in order.
    Appended(Reply, Vec<Arc<Event>>),
    /// Not committed.
    Failed(Reply, LogError),
}

/// Outcomes the writer queued and the runtime's side has not answered yet.
type Pending = Arc<Mutex<Vec<Done>>>;

/// The writer thread's side: queued outcomes and the socket it rings.
pub(super) struct Bell {
    pending: Pending,
    ring: UnixStream,
}

impl Bell {
    /// Queues `done` (in commit order) and wakes the runtime's side.
    pub(super) fn ring(&self, done: impl IntoIterator<Item = Done>) {
        self.pending.lock().extend(done);
        // A full socket means the runtime's side has not woken up yet; it
        // will take everything queued when it does.
        let _ = (&self.ring).write(&[1]);
    }
}

/// A bell for the writer thread, and the task that answers it, feeding
/// `tail`. The task ends once the bell is dropped (the writer stopped),
/// after answering what the writer queued last.
pub(super) fn open(tail: TailSender) -> std::io::Result<Arc<Bell>> {
    let (ring, hear) = UnixStream::pair()?;
    ring.set_nonblocking(true)?;
    hear.set_nonblocking(true)?;
    let hear = tokio::net::UnixStream::from_std(hear)?;
    let pending = Pending::default();
    tokio::spawn(answer(pending.clone(), hear, tail));
    Ok(Arc::new(Bell { pending, ring }))
}

async fn answer(pending: Pending, hear: tokio::net::UnixStream, tail: TailSender) {
    let mut buf = [0u8; 256];
    loop {
        let mut open = hear.readable().await.is_ok();
        while open {
            match hear.try_read(&mut buf) {
                Ok(n) if n > 0 => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // End of file (or a broken socket): the bell is gone.
                _ => open = false,
            }
        }
        deliver(&pending, &tail);
        if !open {
            // The bell is gone: what it queued before is answered above.
            return;
        }
    }
}

/// Answers every queued outcome, then feeds the committed events to the
/// tail: the dispatch task, woken last, is the one that runs next.
fn deliver(pending: &Pending, tail: &TailSender) {
    let done = std::mem::take(&mut *pending.lock());
    let mut events = Vec::new();
    for outcome in done {
        match outcome {
            Done::Appended(reply, mine) => {
                events.extend(mine.iter().cloned());
                let _ = reply.send(Ok(mine));
            }
            Done::Failed(reply, e) => {
                let _ = reply.send(Err(e));
            }
        }
    }
    for event in events {
        tail.send(Tailed::Event(event));
    }
}
