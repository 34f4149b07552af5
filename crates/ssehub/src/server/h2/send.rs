//! What a connection sends: its output buffer, the client's settings that
//! shape it (frame size, windows) and the connection's send window.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::frame;
use super::hpack;
use super::request::CONNECTION_SPECIFIC;

/// Bytes waiting to be written past which the connection stops reading and
/// stops polling bodies until they are written.
pub(super) const WRITE_HIGH: usize = 64 << 10;

/// How far [`Outgoing::data`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    /// All of it.
    All,
    /// Until the stream's window closed: a WINDOW_UPDATE of the stream
    /// wakes it.
    StreamWindow,
    /// Until the connection's window closed: one of the connection wakes it.
    ConnectionWindow,
    /// Until the output was full: it is polled again once written.
    Full,
}

/// The sending half of a connection.
pub(super) struct Outgoing {
    /// Frames not yet written; allocated only while it holds some.
    pub(super) out: Vec<u8>,
    /// How much of `out` was written.
    pub(super) written: usize,
    /// The connection's send window.
    pub(super) window: i64,
    /// The client's SETTINGS_INITIAL_WINDOW_SIZE.
    pub(super) initial_window: i64,
    /// The client's SETTINGS_MAX_FRAME_SIZE.
    pub(super) max_frame_size: u32,
    /// Whether a header block was sent (the first says the encoder uses no
    /// dynamic table).
    sent_block: bool,
}

impl Default for Outgoing {
    fn default() -> Outgoing {
        Outgoing {
            out: Vec::new(),
            written: 0,
            window: i64::from(frame::DEFAULT_WINDOW_SIZE),
            initial_window: i64::from(frame::DEFAULT_WINDOW_SIZE),
            max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            sent_block: false,
        }
    }
}

/// The fields of `map` that may go out on HTTP/2 (not the
/// connection-specific ones), as HPACK takes them.
fn sendable(map: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    map.iter()
        .filter(|(name, _)| !CONNECTION_SPECIFIC.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()))
}

impl Outgoing {
    /// Bytes waiting to be written.
    fn unwritten(&self) -> usize {
        self.out.len() - self.written
    }

    /// Whether enough waits to be written that bodies wait too.
    pub(super) fn full(&self) -> bool {
        self.unwritten() >= WRITE_HIGH
    }

    /// A response's head on stream `id`.
    pub(super) fn head(&mut self, id: u32, status: StatusCode, fields: &HeaderMap, ends: bool) {
        let mut block = Vec::new();
        let first = !self.sent_block;
        hpack::encode_response(&mut block, first, status.as_u16(), sendable(fields));
        self.block(id, &block, ends);
    }

    /// A response's trailers on stream `id`, which they end.
    pub(super) fn trailers(&mut self, id: u32, fields: &HeaderMap) {
        let mut block = Vec::new();
        hpack::encode_trailers(&mut block, !self.sent_block, sendable(fields));
        self.block(id, &block, true);
    }

    fn block(&mut self, id: u32, block: &[u8], ends: bool) {
        self.sent_block = true;
        frame::write_headers(&mut self.out, id, block, ends, self.max_frame_size);
    }

    /// Writes as much of `data` on stream `id` as the windows and the
    /// output's room allow, taking it from `data`.
    pub(super) fn data(&mut self, id: u32, stream_window: &mut i64, data: &mut Bytes) -> Sent {
        while !data.is_empty() {
            let room = WRITE_HIGH.saturating_sub(self.unwritten());
            let window = (*stream_window).min(self.window);
            let n = usize::try_from(window)
                .unwrap_or(0)
                .min(self.max_frame_size as usize)
                .min(room)
                .min(data.len());
            if n == 0 {
                return if room == 0 {
                    Sent::Full
                } else if self.window <= 0 {
                    Sent::ConnectionWindow
                } else {
                    Sent::StreamWindow
                };
            }
            let chunk = data.split_to(n);
            frame::write_data_head(&mut self.out, id, n, false);
            self.out.extend_from_slice(&chunk);
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            *stream_window -= n;
            self.window -= n;
        }
        Sent::All
    }

    /// Ends stream `id` with an empty DATA frame.
    pub(super) fn end(&mut self, id: u32) {
        frame::write_data_head(&mut self.out, id, 0, true);
    }
}
