//! What a connection does with each frame the client sends: the preface
//! and first SETTINGS, header blocks (new requests, trailers), DATA and
//! flow control, resets, PINGs and GOAWAY.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Closer, Connection, Phase};
use crate::server::h2::frame::{self, flag, kind, Frame, FrameError, Head, Reason, Settings};
use crate::server::h2::hpack::DecodeError;
use crate::server::h2::request::Fields;
use crate::server::h2::stream::{Opening, Stream};
use crate::server::h2::wake::StreamWaker;
use crate::server::h2::Error;

/// The largest frame this side accepts (the default: not advertised).
const MAX_FRAME: u32 = frame::DEFAULT_MAX_FRAME_SIZE;
/// HPACK dynamic table size this side's decoder keeps (the default: not
/// advertised, since a client may use it before it reads SETTINGS).
pub(super) const HEADER_TABLE: usize = 4096;
/// The largest window RFC 9113 allows.
const MAX_WINDOW: i64 = frame::MAX_WINDOW_SIZE as i64;
/// A header block still unfinished past this many CONTINUATION frames
/// closes the connection (a flood of empty ones costs no bytes).
const MAX_CONTINUATIONS: u32 = 64;

/// How far the start of a connection was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// The connection preface comes first.
    Preface,
    /// Then a SETTINGS frame.
    Settings,
    /// Then frames of any kind.
    Frames,
}

/// A header block being received over several frames.
pub(super) struct Block {
    stream: u32,
    ends_stream: bool,
    bytes: Vec<u8>,
    continuations: u32,
}

fn head_at(bytes: &[u8]) -> Head {
    let mut head = [0u8; frame::HEAD_LEN];
    head.copy_from_slice(&bytes[..frame::HEAD_LEN]);
    Head::parse(&head)
}

fn len32(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Connection<IO> {
    /// Handles the whole frames at the start of `bytes`; returns how many
    /// bytes they took.
    pub(super) fn receive(&mut self, bytes: &[u8]) -> Result<usize, Error> {
        let mut at = 0;
        if self.start == Start::Preface {
            if bytes.len() < frame::PREFACE.len() {
                return Ok(0);
            }
            if !bytes.starts_with(frame::PREFACE) {
                return Err(Error::protocol(
                    Reason::PROTOCOL_ERROR,
                    "no connection preface",
                ));
            }
            at = frame::PREFACE.len();
            self.start = Start::Settings;
        }
        while bytes.len() - at >= frame::HEAD_LEN && self.serving() {
            let head = head_at(&bytes[at..]);
            if self.start == Start::Settings {
                if head.kind != kind::SETTINGS || head.flags & flag::ACK != 0 {
                    return Err(Error::protocol(
                        Reason::PROTOCOL_ERROR,
                        "the preface is not followed by SETTINGS",
                    ));
                }
                self.start = Start::Frames;
            }
            if head.len > MAX_FRAME {
                return Err(Error::protocol(
                    Reason::FRAME_SIZE_ERROR,
                    "a frame too large",
                ));
            }
            let end = at + frame::HEAD_LEN + head.len as usize;
            if bytes.len() < end {
                break;
            }
            self.frame(head, &bytes[at + frame::HEAD_LEN..end])?;
            at = end;
        }
        Ok(at)
    }

    /// Handles one frame.
    fn frame(&mut self, head: Head, payload: &[u8]) -> Result<(), Error> {
        // Never a field's value: tokens travel in them.
        tracing::trace!(
            kind = head.kind,
            stream = head.stream,
            flags = head.flags,
            len = head.len,
            "HTTP/2 frame received"
        );
        if let Some(block) = &self.block {
            if head.kind != kind::CONTINUATION || head.stream != block.stream {
                return Err(Error::protocol(
                    Reason::PROTOCOL_ERROR,
                    "a header block interrupted by another frame",
                ));
            }
        }
        let frame = match frame::parse(head, payload) {
            Ok(frame) => frame,
            Err(FrameError::Connection(reason, why)) => return Err(Error::protocol(reason, why)),
            // A header block that is not decoded puts HPACK out of step: a
            // stream error may be a connection error (RFC 9113, 5.4.1).
            Err(FrameError::Stream(_, reason, why)) if head.kind == kind::HEADERS => {
                return Err(Error::protocol(reason, why));
            }
            // No reset names a stream the client never opened (5.1).
            Err(FrameError::Stream(id, reason, why)) if id > self.last_stream => {
                return Err(Error::protocol(reason, why));
            }
            Err(FrameError::Stream(id, reason, _)) => return self.reset(id, reason),
        };
        match frame {
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => self.data(stream, end_stream, data, flow_len),
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                fragment,
            } => self.headers(stream, end_stream, end_headers, fragment),
            Frame::Continuation {
                stream,
                end_headers,
                fragment,
            } => self.continuation(stream, end_headers, fragment),
            Frame::RstStream { stream, .. } => self.client_reset(stream),
            Frame::Settings(settings) => self.settings(&settings),
            Frame::Ping { ack: true, data } => {
                self.pong(data);
                Ok(())
            }
            Frame::Ping { ack: false, data } => {
                frame::write_ping(&mut self.send.out, true, data);
                Ok(())
            }
            Frame::GoAway {
                last_stream,
                reason,
            } => {
                tracing::debug!(last_stream, %reason, "HTTP/2 GOAWAY from the client");
                // The client opens no more streams; the open ones finish.
                self.graceful_shutdown();
                Ok(())
            }
            Frame::WindowUpdate { stream, increment } => self.window_update(stream, increment),
            // Priorities are not acted on; they may name any stream (5.1).
            Frame::Priority { .. } | Frame::SettingsAck | Frame::Unknown => Ok(()),
        }
    }

    fn check_not_idle(&self, stream: u32) -> Result<(), Error> {
        if stream > self.last_stream {
            return Err(Error::protocol(
                Reason::PROTOCOL_ERROR,
                "a frame on a stream not opened",
            ));
        }
        Ok(())
    }

    /// Whether frames of closed stream `id` are ignored: this side reset
    /// it (or answered it before its request ended) not long ago, or it
    /// came after this side's GOAWAY.
    fn ignored(&self, id: u32) -> bool {
        self.closed.contains(&(id, Closer::Hub)) || self.goaway.is_some_and(|last| id > last)
    }

    /// Whether the client reset stream `id` not long ago.
    fn reset_by_client(&self, id: u32) -> bool {
        self.closed.contains(&(id, Closer::Client))
    }

    fn settings(&mut self, settings: &Settings) -> Result<(), Error> {
        if let Some(size) = settings.max_frame_size {
            self.send.max_frame_size = size;
        }
        if let Some(window) = settings.initial_window_size {
            let delta = i64::from(window) - self.send.initial_window;
            self.send.initial_window = i64::from(window);
            for stream in self.streams.values_mut() {
                stream.send_window += delta;
                if stream.send_window > MAX_WINDOW {
                    return Err(Error::protocol(
                        Reason::FLOW_CONTROL_ERROR,
                        "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream's window",
                    ));
                }
                if delta > 0 && stream.has_pending() {
                    stream.wake();
                }
            }
        }
        frame::write_settings_ack(&mut self.send.out);
        Ok(())
    }

    fn window_update(&mut self, id: u32, increment: u32) -> Result<(), Error> {
        if id == 0 {
            self.send.window += i64::from(increment);
            if self.send.window > MAX_WINDOW {
                return Err(Error::protocol(
                    Reason::FLOW_CONTROL_ERROR,
                    "a WINDOW_UPDATE overflows the connection's window",
                ));
            }
            for id in std::mem::take(&mut self.window_blocked) {
                if let Some(stream) = self.streams.get(&id) {
                    stream.wake();
                }
            }
            return Ok(());
        }
        self.check_not_idle(id)?;
        let Some(stream) = self.streams.get_mut(&id) else {
            // Closed: a frame the client may still send (RFC 9113, 6.9).
            return Ok(());
        };
        stream.send_window += i64::from(increment);
        if stream.send_window > MAX_WINDOW {
            return self.reset(id, Reason::FLOW_CONTROL_ERROR);
        }
        if stream.has_pending() {
            stream.wake();
        }
        Ok(())
    }

    fn data(&mut self, id: u32, ends: bool, data: &[u8], flow_len: u32) -> Result<(), Error> {
        self.check_not_idle(id)?;
        let flow = i64::from(flow_len);
        if flow > self.recv_window {
            return Err(Error::protocol(
                Reason::FLOW_CONTROL_ERROR,
                "DATA beyond the connection's window",
            ));
        }
        self.recv_window -= flow;
        let Some(stream) = self.streams.get_mut(&id) else {
            self.release(0, flow_len);
            if self.ignored(id) {
                return Ok(());
            }
            return self.reset(id, Reason::STREAM_CLOSED);
        };
        match stream.receive(data, ends, flow) {
            Ok(taken) => {
                // Padding, and data nobody will read, are given back now.
                let now = if taken {
                    flow_len - len32(data)
                } else {
                    flow_len
                };
                self.release(id, now);
                Ok(())
            }
            Err(reason) => {
                self.release(0, flow_len);
                self.reset(id, reason)
            }
        }
    }

    fn headers(
        &mut self,
        id: u32,
        ends: bool,
        end_headers: bool,
        fragment: &[u8],
    ) -> Result<(), Error> {
        if id > self.last_stream && id.is_multiple_of(2) {
            return Err(Error::protocol(
                Reason::PROTOCOL_ERROR,
                "a stream opened with an even id",
            ));
        }
        let block = Block {
            stream: id,
            ends_stream: ends,
            bytes: fragment.to_vec(),
            continuations: 0,
        };
        self.fragment_received(block, end_headers)
    }

    fn continuation(&mut self, id: u32, end_headers: bool, fragment: &[u8]) -> Result<(), Error> {
        let Some(mut block) = self.block.take().filter(|b| b.stream == id) else {
            return Err(Error::protocol(
                Reason::PROTOCOL_ERROR,
                "CONTINUATION without a header block",
            ));
        };
        block.bytes.extend_from_slice(fragment);
        block.continuations += 1;
        self.fragment_received(block, end_headers)
    }

    /// A header block with a fragment more: handled if it ended, else kept
    /// for the next CONTINUATION, within the limits.
    fn fragment_received(&mut self, block: Block, end_headers: bool) -> Result<(), Error> {
        if end_headers {
            return self.header_block(&block);
        }
        self.check_block(&block)?;
        self.block = Some(block);
        Ok(())
    }

    /// An unfinished header block may grow to twice the header list limit
    /// plus 16 KiB (the limit is checked once it is decoded, with a 431
    /// answer) and span [`MAX_CONTINUATIONS`] frames.
    fn check_block(&self, block: &Block) -> Result<(), Error> {
        let limit = 2 * self.config.max_header_list_size as usize + 16 * 1024;
        if block.bytes.len() > limit || block.continuations > MAX_CONTINUATIONS {
            return Err(Error::protocol(
                Reason::ENHANCE_YOUR_CALM,
                "a header block larger than the limit",
            ));
        }
        Ok(())
    }

    /// A whole header block: a new request, or a request's trailers. It is
    /// decoded whatever becomes of it, so that HPACK stays in step.
    fn header_block(&mut self, block: &Block) -> Result<(), Error> {
        let mut fields = Fields::default();
        let limit = self.config.max_header_list_size as usize;
        let decoded = self.decoder.decode(&block.bytes, limit, |name, value| {
            fields.add(name, value);
        });
        let too_large = match decoded {
            Ok(()) => false,
            Err(DecodeError::ListTooLarge) => true,
            Err(DecodeError::Compression(why)) => {
                return Err(Error::protocol(Reason::COMPRESSION_ERROR, why));
            }
        };
        let id = block.stream;
        if let Some(stream) = self.streams.get_mut(&id) {
            // Trailers (their fields are not kept): they end the body.
            let ended = if block.ends_stream {
                stream.receive(&[], true, 0)
            } else {
                Err(Reason::PROTOCOL_ERROR)
            };
            return match ended {
                Ok(_) => Ok(()),
                Err(reason) => self.reset(id, reason),
            };
        }
        if id <= self.last_stream {
            if self.ignored(id) {
                return Ok(());
            }
            if self.reset_by_client(id) {
                return self.reset(id, Reason::STREAM_CLOSED);
            }
            return Err(Error::protocol(
                Reason::PROTOCOL_ERROR,
                "a stream id not above the last one",
            ));
        }
        self.last_stream = id;
        if matches!(self.phase, Phase::Draining) {
            // After GOAWAY: not taken up (the client may retry it elsewhere).
            return Ok(());
        }
        if self.streams.len() >= self.config.max_concurrent_streams as usize {
            self.reset_stream(id, Reason::REFUSED_STREAM);
            return Ok(());
        }
        let request = if too_large {
            None
        } else {
            match fields.request(block.ends_stream) {
                Ok(request) => Some(request),
                Err(why) => {
                    tracing::debug!(stream = id, "malformed request: {why}");
                    return self.reset(id, Reason::PROTOCOL_ERROR);
                }
            }
        };
        let opening = Opening {
            waker: StreamWaker::queued(id, &self.ready),
            send_window: self.send.initial_window,
            recv_window: self.config.stream_window,
            ends: block.ends_stream,
        };
        let stream = match request {
            Some((request, length)) => Stream::new(opening, request, length, &self.handler),
            None => {
                (self.config.on_headers_too_large)();
                Stream::too_large(opening)
            }
        };
        tracing::trace!(stream = id, "HTTP/2 stream opened");
        self.streams.insert(id, stream);
        self.opened = true;
        Ok(())
    }

    /// The client reset a stream.
    fn client_reset(&mut self, id: u32) -> Result<(), Error> {
        self.check_not_idle(id)?;
        let Some(stream) = self.remove(id, true) else {
            return Ok(());
        };
        self.remember_closed(id, Closer::Client);
        if !stream.responded() {
            self.early_resets += 1;
            if self.early_resets > self.config.max_early_resets {
                return Err(Error::protocol(
                    Reason::ENHANCE_YOUR_CALM,
                    "too many streams reset before their response",
                ));
            }
        }
        Ok(())
    }

    /// Resets stream `id` (RST_STREAM with `reason`), which is gone; frames
    /// the client has in flight for it are ignored.
    pub(super) fn reset_stream(&mut self, id: u32, reason: Reason) {
        frame::write_rst_stream(&mut self.send.out, id, reason);
        self.remove(id, true);
        self.remember_closed(id, Closer::Hub);
    }

    /// A stream error: the stream is reset. A client whose errors make
    /// this side reset too many streams loses the connection.
    fn reset(&mut self, id: u32, reason: Reason) -> Result<(), Error> {
        self.reset_stream(id, reason);
        self.error_resets += 1;
        if self.error_resets > self.config.max_error_resets {
            return Err(Error::protocol(
                Reason::ENHANCE_YOUR_CALM,
                "too many streams reset for errors",
            ));
        }
        Ok(())
    }
}
