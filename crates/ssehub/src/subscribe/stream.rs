//! The body of a subscription response: the open comment, the replay from
//! history, then live deliveries, as one SSE stream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use http_body::{Body, Frame, SizeHint};

use super::lifetime::{self, Deadline};
use super::Start;
use crate::fanout::queue;
use crate::fanout::{Delivery, Subscriber};
use crate::history::LogError;
use crate::hub::Hub;
use crate::proto::event::Event;

/// The comment written at open and as heartbeat: a static, so no allocation.
const EMPTY_COMMENT: &[u8] = b":\n\n";

/// Events read from the log per page during replay.
const REPLAY_PAGE: usize = 512;

/// A subscription's SSE response body. Dropping it unsubscribes.
pub struct SubscriptionBody {
    hub: Arc<Hub>,
    sub: Arc<Subscriber>,
    rx: queue::Receiver<Delivery>,
    opened: bool,
    replay: Option<Replay>,
    /// Position of the last event handled; live events at or before it were
    /// already replayed, so they are skipped (no duplicates).
    last_seq: u64,
    deadline: Option<Deadline>,
    /// Set once the stream returned its end (and, at shutdown, its last
    /// frame): nothing more comes.
    ended: bool,
}

struct Replay {
    after: Option<u64>,
    page: VecDeque<Arc<Event>>,
    next: Option<BoxFuture<'static, Result<Vec<Arc<Event>>, LogError>>>,
}

impl SubscriptionBody {
    /// A body for a registered subscriber.
    pub(super) fn new(
        hub: Arc<Hub>,
        sub: Arc<Subscriber>,
        rx: queue::Receiver<Delivery>,
        start: &Start,
        deadline: Option<Deadline>,
    ) -> SubscriptionBody {
        let (replay, last_seq) = match start {
            Start::Live => (None, 0),
            // A node of a cluster may not have fanned out the client's last
            // event yet: live events up to it are skipped too.
            Start::After { position, .. } => (
                Some(Replay {
                    after: *position,
                    page: VecDeque::new(),
                    next: None,
                }),
                position.unwrap_or(0),
            ),
        };
        SubscriptionBody {
            hub,
            sub,
            rx,
            opened: false,
            replay,
            last_seq,
            deadline,
            ended: false,
        }
    }

    /// Polls the replay; `Ready(None)` once history is exhausted.
    fn poll_replay(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, LogError>>> {
        let Some(replay) = self.replay.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            if let Some(event) = replay.page.pop_front() {
                replay.after = Some(event.seq);
                self.last_seq = event.seq;
                if self.sub.wants(&event) {
                    return Poll::Ready(Some(Ok(event.frame.clone())));
                }
                continue;
            }
            let next = replay.next.get_or_insert_with(|| {
                let log = self.hub.log.clone();
                let after = replay.after;
                async move { log.read_after(after, REPLAY_PAGE).await }.boxed()
            });
            let page = ready!(next.poll_unpin(cx));
            replay.next = None;
            match page {
                Ok(page) if page.is_empty() => {
                    self.replay = None;
                    return Poll::Ready(None);
                }
                Ok(page) => replay.page = page.into(),
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }
}

impl Body for SubscriptionBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if let Some(deadline) = this.deadline.as_mut() {
            if let Poll::Ready(end) = deadline.poll(cx) {
                this.ended = true;
                end.count(&this.hub);
                return Poll::Ready(None);
            }
        }
        if !this.opened {
            // Flushes the headers at once: clients wait for bytes to fire `open`.
            this.opened = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(EMPTY_COMMENT)))));
        }
        match ready!(this.poll_replay(cx)) {
            Some(Ok(frame)) => return Poll::Ready(Some(Ok(Frame::data(frame)))),
            Some(Err(e)) => {
                tracing::warn!("replay failed, closing the stream: {e}");
                return Poll::Ready(None);
            }
            None => {}
        }
        loop {
            match ready!(this.rx.poll_recv(cx)) {
                Some(Delivery::Event(event)) if event.seq > this.last_seq => {
                    this.last_seq = event.seq;
                    return Poll::Ready(Some(Ok(Frame::data(event.frame.clone()))));
                }
                Some(Delivery::Event(_)) => {}
                Some(Delivery::Heartbeat) => {
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(EMPTY_COMMENT)))));
                }
                None => {
                    // At shutdown, the client is told when to come back.
                    this.ended = true;
                    let closing = this.hub.fanout.is_closed();
                    return Poll::Ready(closing.then(|| Ok(Frame::data(lifetime::farewell()))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for SubscriptionBody {
    fn drop(&mut self) {
        self.hub.fanout.remove(&self.sub);
        if let Some(events) = &self.hub.subscription_events {
            events.announce(&self.sub, false);
        }
    }
}
