//! The body of a subscription response: the open comment, the replay from
//! history, then live deliveries, as one SSE stream; counted in the hub's
//! metrics as it goes, and logged in one line when it ends.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use http_body::{Body, Frame, SizeHint};

use super::{lifetime, Framing, Peer, Start};
use crate::fanout::queue;
use crate::fanout::{Delivery, Removal, Subscriber};
use crate::history::LogError;
use crate::hub::Hub;
use crate::metrics::{Label, StreamEnd};
use crate::proto::compress::{Compressed, Encoder};
use crate::proto::event::Event;
use crate::proto::sse::{encode_matched, without_blank_line};

/// The comment written at open and as heartbeat: a static, so no allocation.
const EMPTY_COMMENT: &[u8] = b":\n\n";

/// [`EMPTY_COMMENT`]'s compressed copies, made once for every stream.
static EMPTY_COMMENT_COMPRESSED: Compressed = Compressed::new();

/// The comment opening a stream whose events name their matchers
/// ([`Framing::Matched`]): a client learns that the hub honours the
/// request, so an event without `matched:` lines names no matcher (rather
/// than coming from a hub that does not write them).
const MATCHED_COMMENT: &[u8] = b":ssehub_matched\n\n";

/// Events read from the log per page during replay.
const REPLAY_PAGE: usize = 512;

/// Frames written between two additions to the hub's counters, at most
/// (they are also added whenever the stream waits).
const FLUSH_EVERY: u32 = 64;

/// A subscription's SSE response body. Dropping it unsubscribes.
pub struct SubscriptionBody {
    hub: Arc<Hub>,
    sub: Arc<Subscriber>,
    rx: queue::Receiver<Delivery>,
    opened: bool,
    /// Boxed: most of a stream's life is live, after its replay ended.
    replay: Option<Box<Replay>>,
    /// Position of the last event handled; live events at or before it were
    /// already replayed, so they are skipped (no duplicates).
    last_seq: u64,
    peer: Peer,
    /// How events are written, and compressed if they are.
    framing: Framing,
    /// What to write next, before anything else: the end of the event
    /// frame whose start was just written ([`Framing::Matched`]), the first
    /// frame after a compressed stream's header, or the end of a
    /// compressed stream after its farewell.
    rest: Option<Bytes>,
    opened_at: Instant,
    /// What this stream wrote, as far as the hub's counters hold it.
    counted: Counted,
    /// What it wrote since, not yet in the hub's counters.
    unflushed: Unflushed,
    /// Why the stream ended, once it did.
    ended: Option<StreamEnd>,
}

/// What a stream wrote over its life (for the line logged at its end).
#[derive(Debug, Default)]
struct Counted {
    /// Bytes of any frame.
    bytes: u64,
    /// Events, live and replayed.
    events: u64,
}

/// What a stream wrote since the hub's counters were last added to: at
/// most [`FLUSH_EVERY`] frames, so narrow counts (a stream's state is
/// multiplied by every subscriber).
#[derive(Debug, Default)]
struct Unflushed {
    /// Bytes of any frame.
    bytes: u64,
    /// Frames of any kind.
    frames: u32,
    /// Events, live and replayed.
    events: u32,
    /// Events replayed.
    replayed: u32,
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
        peer: Peer,
        framing: Framing,
    ) -> SubscriptionBody {
        let (replay, last_seq) = match start {
            Start::Live => (None, 0),
            // A node of a cluster may not have fanned out the client's last
            // event yet: live events up to it are skipped too.
            Start::After { position, .. } => (
                Some(Box::new(Replay {
                    after: *position,
                    page: VecDeque::new(),
                    next: None,
                })),
                position.unwrap_or(0),
            ),
        };
        hub.metrics.subscriptions.get(peer.protocol).inc();
        hub.metrics.subscriptions_total.inc();
        SubscriptionBody {
            hub,
            sub,
            rx,
            opened: false,
            replay,
            last_seq,
            peer,
            framing,
            rest: None,
            opened_at: Instant::now(),
            counted: Counted::default(),
            unflushed: Unflushed::default(),
            ended: None,
        }
    }

    /// Ends the stream for `why`; at the hub's shutdown, after a last frame
    /// telling the client when to come back (spread, so clients do not all
    /// return at once). A compressed stream then writes what ends its
    /// coding (gzip's trailer).
    fn end(&mut self, why: StreamEnd) -> Poll<Option<Bytes>> {
        self.ended = Some(why);
        lifetime::count(why, &self.hub);
        let farewell = (why == StreamEnd::Shutdown && self.hub.fanout.is_closed())
            .then(|| self.encode(&lifetime::farewell(), &Compressed::new()));
        let end = self.encoder().and_then(Encoder::finish);
        match farewell {
            Some(farewell) => {
                self.rest = end;
                Poll::Ready(Some(farewell))
            }
            None => Poll::Ready(end),
        }
    }

    /// `frame` as this stream writes it: itself, or its shared compressed
    /// copy from `compressed`.
    fn encode(&mut self, frame: &Bytes, compressed: &Compressed) -> Bytes {
        match &mut self.framing {
            Framing::Shared(Some(encoder)) => encoder.frame(frame, compressed),
            Framing::Shared(None) | Framing::Matched => frame.clone(),
        }
    }

    /// How the stream is compressed, if it is.
    fn encoder(&self) -> Option<&Encoder> {
        match &self.framing {
            Framing::Shared(encoder) => encoder.as_ref(),
            Framing::Matched => None,
        }
    }

    /// [`EMPTY_COMMENT`] as this stream writes it.
    fn empty_comment(&mut self) -> Bytes {
        self.encode(
            &Bytes::from_static(EMPTY_COMMENT),
            &EMPTY_COMMENT_COMPRESSED,
        )
    }

    /// Adds what was written since the last call to the hub's counters.
    fn flush(&mut self) {
        let new = std::mem::take(&mut self.unflushed);
        let m = &self.hub.metrics;
        for (counter, n) in [
            (&m.bytes_written, new.bytes),
            (&m.events_written, u64::from(new.events)),
            (&m.replayed_events, u64::from(new.replayed)),
        ] {
            if n > 0 {
                counter.add(n);
            }
        }
        self.counted.bytes += new.bytes;
        self.counted.events += u64::from(new.events);
    }

    /// The next frame: the open comment, the replay, then the live queue.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.ended.is_some() {
            return Poll::Ready(None);
        }
        // Past its deadline, nothing more is written, queued or not.
        if let Some(r @ (Removal::TokenExpired | Removal::MaxDuration)) = self.sub.removal() {
            return self.end(ended_by(r));
        }
        if !self.opened {
            // Flushes the headers at once: clients wait for bytes to fire `open`.
            self.opened = true;
            if self.framing == Framing::Matched {
                return Poll::Ready(Some(Bytes::from_static(MATCHED_COMMENT)));
            }
            let comment = self.empty_comment();
            return Poll::Ready(Some(match self.encoder().and_then(Encoder::header) {
                Some(header) => {
                    self.rest = Some(comment);
                    header
                }
                None => comment,
            }));
        }
        match ready!(self.poll_replay(cx)) {
            Some(Ok(event)) => {
                self.unflushed.events += 1;
                self.unflushed.replayed += 1;
                return Poll::Ready(Some(self.frame(&event)));
            }
            Some(Err(e)) => {
                tracing::warn!("replay failed, closing the stream: {e}");
                return self.end(StreamEnd::ReplayFailed);
            }
            None => {}
        }
        loop {
            match ready!(self.rx.poll_recv(cx)) {
                Some(Delivery::Event(event)) if event.seq > self.last_seq => {
                    self.last_seq = event.seq;
                    self.unflushed.events += 1;
                    if let Some(dispatched) = event.dispatched.get() {
                        self.hub
                            .metrics
                            .delivery_duration
                            .observe(dispatched.elapsed());
                    }
                    return Poll::Ready(Some(self.frame(&event)));
                }
                Some(Delivery::Event(_)) => {}
                Some(Delivery::Heartbeat) => {
                    return Poll::Ready(Some(self.empty_comment()));
                }
                None => {
                    // Removed by the registry, or (none) the hub is gone.
                    let why = self.sub.removal().map_or(StreamEnd::Shutdown, ended_by);
                    return self.end(why);
                }
            }
        }
    }

    /// What to write of `event`: its shared frame (or its shared
    /// compressed copy); with [`Framing::Matched`] (never compressed), the
    /// frame without its blank line, the `matched:` lines and the blank line
    /// being kept for the next poll (two chunks, so the shared bytes are not
    /// copied).
    fn frame(&mut self, event: &Event) -> Bytes {
        match self.framing {
            Framing::Shared(_) => self.encode(&event.frame, &event.compressed),
            Framing::Matched => {
                self.rest = Some(encode_matched(&self.sub.receiving(event)));
                without_blank_line(&event.frame)
            }
        }
    }

    /// Polls the replay for the next event this stream wants; `Ready(None)`
    /// once history is exhausted.
    fn poll_replay(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Arc<Event>, LogError>>> {
        let Some(replay) = self.replay.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            if let Some(event) = replay.page.pop_front() {
                replay.after = Some(event.seq);
                self.last_seq = event.seq;
                if self.sub.wants(&event) {
                    return Poll::Ready(Some(Ok(event)));
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

/// How a stream the registry removed for `removal` ends.
fn ended_by(removal: Removal) -> StreamEnd {
    match removal {
        Removal::Slow => StreamEnd::Slow,
        Removal::Resync => StreamEnd::Resync,
        Removal::Shutdown => StreamEnd::Shutdown,
        Removal::TokenExpired => StreamEnd::TokenExpired,
        Removal::MaxDuration => StreamEnd::MaxDuration,
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
        // The end of an event started by the last chunk, before anything.
        if let Some(rest) = this.rest.take() {
            this.unflushed.bytes += rest.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(rest))));
        }
        let polled = this.poll_next(cx);
        if let Poll::Ready(Some(frame)) = &polled {
            this.unflushed.frames += 1;
            this.unflushed.bytes += frame.len() as u64;
            if this.unflushed.frames < FLUSH_EVERY {
                return polled.map(|f| f.map(|f| Ok(Frame::data(f))));
            }
        }
        // Waiting, ended, or many frames since: the hub's counters catch up.
        this.flush();
        polled.map(|f| f.map(|f| Ok(Frame::data(f))))
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
        self.flush();
        // Dropped before it ended: the connection went away.
        let why = self.ended.unwrap_or(StreamEnd::ClientClosed);
        let m = &self.hub.metrics;
        m.subscriptions.get(self.peer.protocol).dec();
        m.subscription_ends.get(why).inc();
        tracing::info!(
            target: "ssehub::subscription",
            subscriber = %self.sub.id,
            client = self.peer.ip.map(tracing::field::display),
            matchers = self.sub.subscriptions.len(),
            protocol = self.peer.protocol.value(),
            duration_ms = crate::clock::millis(self.opened_at.elapsed()),
            events = self.counted.events,
            bytes = self.counted.bytes,
            reason = why.value(),
            "subscription ended"
        );
    }
}
