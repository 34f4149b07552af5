//! One stream of a connection: its request's handler, then its response
//! body, polled when woken; its windows; the request body it receives.

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Body as _;

use super::body::{RequestBody, Shared};
use super::frame::Reason;
use super::send::{Outgoing, Sent};
use super::wake::StreamWaker;
use super::{Handler, ResponseFuture};

/// Where a stream's response is.
enum Responding {
    /// The handler runs.
    Handler(ResponseFuture),
    /// The head was sent; the body is polled, and what the windows did not
    /// let out yet is kept.
    Body {
        body: axum::body::Body,
        pending: Option<Bytes>,
    },
}

/// Body frames a poll takes at most before the stream waits its turn.
const FRAMES_PER_POLL: usize = 32;

/// What a poll of a stream came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Polled {
    /// The stream waits for its handler, its body or its own window, which
    /// wake it.
    Waiting,
    /// The stream has more to write once the connection's window opens
    /// ([`Sent::ConnectionWindow`]) or its output is written
    /// ([`Sent::Full`], also when the stream had its share of a poll).
    Blocked(Sent),
    /// The stream's response is whole.
    Ended(StreamEnd),
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StreamEnd {
    /// Request and response are whole.
    Complete,
    /// The response is whole before the request's body: the client is told
    /// to stop sending it.
    BeforeRequestEnded,
    /// The response body failed: the stream is reset.
    Failed,
}

/// What opening a stream needs besides its request.
pub(super) struct Opening {
    /// The stream's waker, already queued.
    pub(super) waker: Arc<StreamWaker>,
    /// The stream's send window: the client's initial window size.
    pub(super) send_window: i64,
    /// The stream's receive window: this side's initial window size.
    pub(super) recv_window: u32,
    /// Whether the request ended with its headers.
    pub(super) ends: bool,
}

/// A stream the client opened.
pub(super) struct Stream {
    pub(super) waker: Arc<StreamWaker>,
    pub(super) send_window: i64,
    recv_window: i64,
    /// Bytes received and consumed on this stream, not yet granted again.
    consumed: u32,
    body_in: Option<Arc<Shared>>,
    /// What the request's declared length leaves to receive.
    remaining: Option<u64>,
    recv_ended: bool,
    /// A HEAD request: the response has no body.
    head: bool,
    responded: bool,
    responding: Responding,
}

impl Stream {
    /// A stream whose request goes to `handler`.
    pub(super) fn new(
        opening: Opening,
        request: Request<()>,
        length: Option<u64>,
        handler: &Handler,
    ) -> Stream {
        let (body, body_in) = if opening.ends {
            (RequestBody::empty(), None)
        } else {
            let (body, shared) = RequestBody::channel(Waker::from(opening.waker.clone()));
            (body, Some(shared))
        };
        let head = request.method() == Method::HEAD;
        let (parts, ()) = request.into_parts();
        let future = (handler.0)(Request::from_parts(parts, body));
        Stream::with(opening, body_in, length, head, future)
    }

    /// A stream answered 431 at once: its header list is over the limit.
    pub(super) fn too_large(opening: Opening) -> Stream {
        let response = Response::builder()
            .status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(axum::body::Body::from(
                "The request's header fields are larger than the hub's limit (--max-header-bytes).\n",
            ))
            .unwrap_or_default();
        Stream::with(opening, None, None, false, Box::pin(async { response }))
    }

    fn with(
        opening: Opening,
        body_in: Option<Arc<Shared>>,
        remaining: Option<u64>,
        head: bool,
        future: ResponseFuture,
    ) -> Stream {
        Stream {
            waker: opening.waker,
            send_window: opening.send_window,
            recv_window: i64::from(opening.recv_window),
            consumed: 0,
            body_in,
            remaining,
            recv_ended: opening.ends,
            head,
            responded: false,
            responding: Responding::Handler(future),
        }
    }

    /// Queues the stream to be polled.
    pub(super) fn wake(&self) {
        Wake::wake_by_ref(&self.waker);
    }

    /// Whether the response's head was sent.
    pub(super) fn responded(&self) -> bool {
        self.responded
    }

    /// A DATA frame's bytes (or, empty, trailers) that `flow` bytes of the
    /// stream's window carried; `Ok(false)` when nobody reads them (the
    /// connection gives them back at once, as it does padding). A stream
    /// error otherwise.
    pub(super) fn receive(&mut self, data: &[u8], ends: bool, flow: i64) -> Result<bool, Reason> {
        if self.recv_ended {
            return Err(Reason::STREAM_CLOSED);
        }
        if flow > self.recv_window {
            return Err(Reason::FLOW_CONTROL_ERROR);
        }
        self.recv_window -= flow;
        let len = data.len() as u64;
        if let Some(remaining) = &mut self.remaining {
            if len > *remaining || (ends && len != *remaining) {
                return Err(Reason::PROTOCOL_ERROR);
            }
            *remaining -= len;
        }
        self.recv_ended = ends;
        let Some(shared) = self.body_in.as_ref().filter(|s| !s.abandoned()) else {
            return Ok(false);
        };
        if !data.is_empty() {
            shared.push(Bytes::copy_from_slice(data));
        }
        if ends {
            shared.finish(false);
        }
        Ok(true)
    }

    /// Bytes of the request body consumed since the last call: read by the
    /// handler, or, once it dropped the body, dropped.
    pub(super) fn take_read(&mut self) -> u32 {
        let Some(shared) = &self.body_in else {
            return 0;
        };
        let n = if shared.abandoned() {
            let n = shared.discard();
            self.body_in = None;
            n
        } else {
            shared.take_read()
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Whether the stream holds data its windows did not let out.
    pub(super) fn has_pending(&self) -> bool {
        matches!(
            self.responding,
            Responding::Body {
                pending: Some(_),
                ..
            }
        )
    }

    /// Counts `n` bytes of the stream's window consumed; once a quarter of
    /// `window` is, returns the WINDOW_UPDATE increment that grants them
    /// again (none once the request ended: the client sends no more).
    pub(super) fn grant(&mut self, n: u32, window: u32) -> Option<u32> {
        self.consumed += n;
        if self.recv_ended || self.consumed < window / 4 {
            return None;
        }
        self.recv_window += i64::from(self.consumed);
        Some(std::mem::take(&mut self.consumed))
    }

    /// The stream is gone (`reset`: the handler's body ends with an error
    /// if the request had not ended); returns the bytes received and never
    /// given back, for the connection's window.
    pub(super) fn close(&self, reset: bool) -> u32 {
        let Some(shared) = &self.body_in else {
            return 0;
        };
        if reset && !self.recv_ended {
            shared.finish(true);
        }
        u32::try_from(shared.discard()).unwrap_or(u32::MAX)
    }

    fn ended(&self) -> Polled {
        Polled::Ended(if self.recv_ended {
            StreamEnd::Complete
        } else {
            StreamEnd::BeforeRequestEnded
        })
    }

    /// Runs the handler, then writes the body as far as the windows and the
    /// output buffer allow.
    pub(super) fn poll(&mut self, send: &mut Outgoing) -> Polled {
        self.waker.unqueue();
        let id = self.waker.id();
        let waker = Waker::from(self.waker.clone());
        let mut cx = Context::from_waker(&waker);
        for _ in 0..FRAMES_PER_POLL {
            match &mut self.responding {
                Responding::Handler(future) => {
                    let Poll::Ready(response) = future.as_mut().poll(&mut cx) else {
                        return Polled::Waiting;
                    };
                    let (parts, body) = response.into_parts();
                    let ends = self.head || body.is_end_stream();
                    send.head(id, parts.status, &parts.headers, ends);
                    self.responded = true;
                    if ends {
                        return self.ended();
                    }
                    self.responding = Responding::Body {
                        body,
                        pending: None,
                    };
                }
                Responding::Body { body, pending } => {
                    if let Some(data) = pending {
                        match send.data(id, &mut self.send_window, data) {
                            Sent::All => *pending = None,
                            Sent::StreamWindow => return Polled::Waiting,
                            blocked => return Polled::Blocked(blocked),
                        }
                    }
                    if send.full() {
                        return Polled::Blocked(Sent::Full);
                    }
                    match std::pin::Pin::new(&mut *body).poll_frame(&mut cx) {
                        Poll::Pending => return Polled::Waiting,
                        Poll::Ready(None) => {
                            send.end(id);
                            return self.ended();
                        }
                        Poll::Ready(Some(Err(e))) => {
                            tracing::debug!(stream = id, "response body failed: {e}");
                            return Polled::Ended(StreamEnd::Failed);
                        }
                        Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                            Ok(data) => *pending = Some(data).filter(|d| !d.is_empty()),
                            Err(frame) => {
                                if let Ok(trailers) = frame.into_trailers() {
                                    send.trailers(id, &trailers);
                                    return self.ended();
                                }
                            }
                        },
                    }
                }
            }
        }
        // Its share of this poll: the others' turn.
        Polled::Blocked(Sent::Full)
    }
}
