//! One HTTP/2 connection, served by one task: it reads the client's
//! frames (`recv`), runs each request's handler and polls each response
//! body that was woken, and writes the frames out. The read buffer lives on
//! the task's stack and the output buffer only while it holds something:
//! an idle connection keeps its protocol state (windows, streams, the
//! client's HPACK table) and its timer.

mod recv;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::frame::{self, setting, Reason};
use super::hpack::Decoder;
use super::send::{Outgoing, Sent};
use super::stream::{Polled, Stream, StreamEnd};
use super::wake::Ready;
use super::{Config, Error, Handler};

/// Bytes read from the connection at a time; a frame that does not fit is
/// kept in a buffer of its own until it is whole.
const READ_CHUNK: usize = 16 << 10;
/// Rounds of work a poll does before it yields to the other tasks.
const ROUNDS: usize = 16;
/// The payload of the hub's keep-alive PINGs.
const PING: [u8; 8] = *b"ssehub\0\0";
/// Streams remembered after they were reset: frames the client had in
/// flight for a stream this side reset, or answered before its request
/// ended, are ignored; frames after the client's own reset are errors
/// (RFC 9113, 5.1, "closed").
const CLOSED_REMEMBERED: usize = 32;

/// Where a connection is in its life.
enum Phase {
    /// Serving streams.
    Open,
    /// GOAWAY sent: the open streams finish, no new one is taken.
    Draining,
    /// A connection error: what is queued (a GOAWAY, for a protocol error)
    /// is written, for a bounded time, then the connection closes.
    Failing(Error),
    /// Closing the transport (TLS `close_notify`, then the end), for a
    /// bounded time.
    Closing(Option<Error>),
}

/// Which side reset a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closer {
    /// The client: its later frames on the stream are errors.
    Client,
    /// This side: the client's frames in flight are ignored.
    Hub,
}

/// An HTTP/2 connection: a future that serves it to its end.
pub(crate) struct Connection<IO> {
    io: IO,
    handler: Handler,
    config: Arc<Config>,
    phase: Phase,
    /// How far the start of the connection was read.
    start: recv::Start,
    decoder: Decoder,
    send: Outgoing,
    /// Flow control credit this side granted and the client has not used.
    recv_window: i64,
    /// Bytes received and consumed, not yet granted again.
    recv_consumed: u32,
    streams: HashMap<u32, Stream>,
    /// The highest stream id the client opened.
    last_stream: u32,
    /// The last stream id of the GOAWAY sent, if one was.
    goaway: Option<u32>,
    /// Streams recently reset, and whether by the client (see
    /// [`CLOSED_REMEMBERED`]).
    closed: Vec<(u32, Closer)>,
    /// Streams waiting for the connection's window to open.
    window_blocked: Vec<u32>,
    block: Option<recv::Block>,
    /// Streams the client reset before their response started, less the
    /// responses that started (the rapid reset attack resets them all).
    early_resets: usize,
    /// Streams this side reset for the client's errors.
    error_resets: usize,
    ready: Arc<Ready>,
    /// An incomplete frame, read in part.
    partial: Vec<u8>,
    read_closed: bool,
    /// The keep-alive's timer, and the deadline of a failing or closing
    /// connection.
    timer: Pin<Box<Sleep>>,
    ping_out: bool,
    /// A stream was opened since the timer last fired.
    opened: bool,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Connection<IO> {
    /// Serves `io`, which starts with the client's connection preface.
    pub(crate) fn new(io: IO, handler: Handler, config: Arc<Config>) -> Connection<IO> {
        let mut send = Outgoing::default();
        // Below the default, a client could already have used the window.
        let stream_window = config.stream_window.max(frame::DEFAULT_WINDOW_SIZE);
        let connection_window = config.connection_window.max(frame::DEFAULT_WINDOW_SIZE);
        frame::write_settings(
            &mut send.out,
            &[
                (
                    setting::MAX_CONCURRENT_STREAMS,
                    config.max_concurrent_streams,
                ),
                (setting::INITIAL_WINDOW_SIZE, stream_window),
                (setting::MAX_HEADER_LIST_SIZE, config.max_header_list_size),
            ],
        );
        if connection_window > frame::DEFAULT_WINDOW_SIZE {
            let more = connection_window - frame::DEFAULT_WINDOW_SIZE;
            frame::write_window_update(&mut send.out, 0, more);
        }
        let timer = Box::pin(tokio::time::sleep(config.keepalive_interval));
        Connection {
            io,
            handler,
            recv_window: i64::from(connection_window),
            config,
            phase: Phase::Open,
            start: recv::Start::Preface,
            decoder: Decoder::new(recv::HEADER_TABLE),
            send,
            recv_consumed: 0,
            streams: HashMap::new(),
            last_stream: 0,
            goaway: None,
            closed: Vec::new(),
            window_blocked: Vec::new(),
            block: None,
            early_resets: 0,
            error_resets: 0,
            ready: Arc::new(Ready::default()),
            partial: Vec::new(),
            read_closed: false,
            timer,
            ping_out: false,
            opened: true,
        }
    }

    /// Stops taking new streams (GOAWAY `NO_ERROR`); the connection ends
    /// once its open streams have.
    pub(crate) fn graceful_shutdown(&mut self) {
        if matches!(self.phase, Phase::Open) {
            frame::write_goaway(&mut self.send.out, self.last_stream, Reason::NO_ERROR, b"");
            self.goaway = Some(self.last_stream);
            self.phase = Phase::Draining;
        }
    }

    /// A connection error: the GOAWAY (for a protocol error) is queued and
    /// the streams dropped; the connection ends once it is written, or
    /// after the keep-alive timeout.
    fn fail(&mut self, error: Error) {
        if let Error::Protocol { reason, why } = &error {
            frame::write_goaway(
                &mut self.send.out,
                self.last_stream,
                *reason,
                why.as_bytes(),
            );
        }
        self.drop_streams();
        self.phase = Phase::Failing(error);
        self.deadline();
    }

    /// The timer is now the deadline of a failing or closing connection.
    fn deadline(&mut self) {
        let at = Instant::now() + self.config.keepalive_timeout;
        self.timer.as_mut().reset(at);
    }

    /// Drops every stream; the handlers still reading a body see it fail.
    fn drop_streams(&mut self) {
        for (_, stream) in self.streams.drain() {
            stream.close(true);
        }
        self.streams = HashMap::new();
    }

    fn serving(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Draining)
    }

    /// One round of work; `Ready(true)` if anything moved.
    fn round(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut moved = false;
        if self.serving() {
            if let Err(e) = self.poll_keepalive(cx) {
                self.fail(e);
                moved = true;
            }
        } else if self.timer.as_mut().poll(cx).is_ready() {
            // Failing, and the client still has not read what is queued.
            return Poll::Ready(true);
        }
        if self.serving() && !self.read_closed && !self.send.full() {
            match self.poll_read(cx) {
                Poll::Ready(Ok(())) => moved = true,
                Poll::Ready(Err(e)) => {
                    self.fail(e);
                    moved = true;
                }
                Poll::Pending => {}
            }
        }
        if self.serving() && !self.send.full() {
            moved |= self.poll_streams();
        }
        match self.poll_write(cx) {
            Poll::Ready(Ok(wrote)) => moved |= wrote,
            Poll::Ready(Err(e)) => {
                // The client is gone: nothing more can be written.
                self.drop_streams();
                self.phase = Phase::Closing(Some(Error::Io(e)));
                self.deadline();
                return Poll::Ready(true);
            }
            Poll::Pending => {}
        }
        Poll::Ready(moved)
    }

    /// Sends a PING each interval; a PING unanswered for the timeout is an
    /// error. A connection that had no stream over a whole interval is
    /// closed (GOAWAY).
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        if self.timer.as_mut().poll(cx).is_pending() {
            return Ok(());
        }
        if self.ping_out {
            return Err(Error::KeepaliveTimeout);
        }
        if self.streams.is_empty() && !std::mem::take(&mut self.opened) {
            tracing::debug!("HTTP/2 connection idle: closed");
            self.graceful_shutdown();
        }
        frame::write_ping(&mut self.send.out, false, PING);
        self.ping_out = true;
        let at = Instant::now() + self.config.keepalive_timeout;
        self.timer.as_mut().reset(at);
        // Polled again, so that the timer is registered.
        let _ = self.timer.as_mut().poll(cx);
        Ok(())
    }

    /// The client answered a PING.
    fn pong(&mut self, data: [u8; 8]) {
        if data == PING && self.ping_out {
            self.ping_out = false;
            let at = Instant::now() + self.config.keepalive_interval;
            self.timer.as_mut().reset(at);
        }
    }

    /// Reads once and handles every whole frame read.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut chunk);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)).map_err(Error::Io)?;
        let read = buf.filled();
        if read.is_empty() {
            self.read_closed = true;
            return Poll::Ready(Ok(()));
        }
        if self.partial.is_empty() {
            let used = self.receive(read)?;
            if used < read.len() {
                self.partial = read[used..].to_vec();
            }
        } else {
            let mut partial = std::mem::take(&mut self.partial);
            partial.extend_from_slice(read);
            let used = self.receive(&partial)?;
            if used < partial.len() {
                self.partial = partial[used..].to_vec();
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Gives `n` bytes of the connection's window back (and of stream
    /// `id`'s, unless 0 or gone); each window is granted again once a
    /// quarter of it is free.
    fn release(&mut self, id: u32, n: u32) {
        if n == 0 {
            return;
        }
        if let Some(stream) = self.streams.get_mut(&id) {
            if let Some(increment) = stream.grant(n, self.config.stream_window) {
                frame::write_window_update(&mut self.send.out, id, increment);
            }
        }
        self.recv_consumed += n;
        if self.recv_consumed >= self.config.connection_window / 4 {
            frame::write_window_update(&mut self.send.out, 0, self.recv_consumed);
            self.recv_window += i64::from(self.recv_consumed);
            self.recv_consumed = 0;
        }
    }

    /// Remembers a stream reset by `closer`.
    fn remember_closed(&mut self, id: u32, closer: Closer) {
        if self.closed.len() == CLOSED_REMEMBERED {
            self.closed.remove(0);
        }
        self.closed.push((id, closer));
    }

    /// Removes stream `id`, giving back what it received and nobody read.
    fn remove(&mut self, id: u32, reset: bool) -> Option<Stream> {
        let stream = self.streams.remove(&id)?;
        let unread = stream.close(reset);
        self.release(0, unread);
        if self.streams.is_empty() {
            // Its capacity is not kept by an idle connection.
            self.streams = HashMap::new();
        }
        Some(stream)
    }

    /// Polls the streams that were woken; `true` if any was.
    fn poll_streams(&mut self) -> bool {
        let woken = self.ready.take();
        for (i, &id) in woken.iter().enumerate() {
            if self.send.full() {
                // Polled once the output is written.
                self.ready.requeue(&woken[i..]);
                break;
            }
            let Some(stream) = self.streams.get_mut(&id) else {
                continue;
            };
            let responded = stream.responded();
            let polled = stream.poll(&mut self.send);
            if !responded && stream.responded() {
                self.early_resets = self.early_resets.saturating_sub(1);
            }
            let read = stream.take_read();
            match polled {
                Polled::Waiting => {}
                Polled::Blocked(Sent::ConnectionWindow) => self.window_blocked.push(id),
                Polled::Blocked(_) => stream.waker.requeue(),
                Polled::Ended(end) => {
                    tracing::trace!(stream = id, ?end, "HTTP/2 stream ended");
                    self.remove(id, end == StreamEnd::Failed);
                    match end {
                        StreamEnd::Complete => {}
                        // The response is whole: the rest of the request
                        // is not needed (RFC 9113, 8.1).
                        StreamEnd::BeforeRequestEnded => self.reset_stream(id, Reason::NO_ERROR),
                        StreamEnd::Failed => self.reset_stream(id, Reason::INTERNAL_ERROR),
                    }
                }
            }
            // The connection's window, whether the stream goes on or not.
            self.release(id, read);
        }
        !woken.is_empty()
    }

    /// Writes what is waiting; `Ready(Ok(wrote))` once all of it is written.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.send.out.is_empty() {
            return Poll::Ready(Ok(false));
        }
        while self.send.written < self.send.out.len() {
            let out = &self.send.out[self.send.written..];
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.send.written += n;
        }
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        // An idle connection holds no output buffer.
        self.send.out = Vec::new();
        self.send.written = 0;
        Poll::Ready(Ok(true))
    }

    /// Whether the connection has nothing left to do but close: nothing
    /// left to write, and no stream left to serve or nobody to serve it to.
    fn finished(&self) -> bool {
        let written = self.send.out.is_empty();
        match self.phase {
            Phase::Open => self.read_closed && written,
            Phase::Draining => (self.streams.is_empty() || self.read_closed) && written,
            Phase::Failing(_) => written || self.timer.is_elapsed(),
            Phase::Closing(_) => true,
        }
    }

    /// Closes the transport, within the deadline; the connection's result.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !matches!(self.phase, Phase::Closing(_)) {
            let error = match std::mem::replace(&mut self.phase, Phase::Open) {
                Phase::Failing(e) => Some(e),
                _ => None,
            };
            self.drop_streams();
            self.phase = Phase::Closing(error);
            self.deadline();
        }
        if Pin::new(&mut self.io).poll_shutdown(cx).is_pending()
            && self.timer.as_mut().poll(cx).is_pending()
        {
            return Poll::Pending;
        }
        match std::mem::replace(&mut self.phase, Phase::Closing(None)) {
            Phase::Closing(Some(error)) => Poll::Ready(Err(error)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Future for Connection<IO> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.ready.register(cx.waker());
        for _ in 0..ROUNDS {
            if this.finished() {
                return this.poll_close(cx);
            }
            if !ready!(this.round(cx)) {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> crate::server::drain::Graceful for Connection<IO> {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        Connection::graceful_shutdown(self.get_mut());
    }
}
