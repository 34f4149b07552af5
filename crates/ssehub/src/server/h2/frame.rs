//! HTTP/2 frames (RFC 9113, sections 4 and 6), server side: parsing and
//! validating the frames a client sends, and writing the frames a server
//! sends.
//!
//! Pure code without I/O. [`Head::parse`] reads a frame header; once the
//! caller has checked its length against SETTINGS_MAX_FRAME_SIZE and read
//! that many payload bytes, [`parse`] turns header and payload into a
//! [`Frame`] that borrows the payload, or into a [`FrameError`] naming the
//! connection or stream error the RFC requires. What depends on the state
//! of the connection or of a stream (a frame on an idle or closed stream, a
//! header block interrupted by another frame, flow-control windows) is left
//! to the caller.
//!
//! The writers append to a `Vec<u8>`; a server never pads its frames.

use std::fmt;

/// The client connection preface.
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header.
pub(crate) const HEAD_LEN: usize = 9;
/// The default and smallest SETTINGS_MAX_FRAME_SIZE.
pub(crate) const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest SETTINGS_MAX_FRAME_SIZE: 2^24-1.
pub(crate) const MAX_MAX_FRAME_SIZE: u32 = 16_777_215;
/// The largest flow-control window, and the largest
/// SETTINGS_INITIAL_WINDOW_SIZE: 2^31-1.
pub(crate) const MAX_WINDOW_SIZE: u32 = 0x7fff_ffff;
/// The initial flow-control window of the connection and of every stream
/// before SETTINGS_INITIAL_WINDOW_SIZE changes it.
pub(crate) const DEFAULT_WINDOW_SIZE: u32 = 65_535;

/// Clears the reserved bit of a stream identifier or window increment.
const RESERVED_MASK: u32 = 0x7fff_ffff;

/// Frame types (RFC 9113, 6), the `kind` of a [`Head`].
pub(crate) mod kind {
    /// DATA (6.1).
    pub(crate) const DATA: u8 = 0x0;
    /// HEADERS (6.2).
    pub(crate) const HEADERS: u8 = 0x1;
    /// PRIORITY (6.3).
    pub(crate) const PRIORITY: u8 = 0x2;
    /// RST_STREAM (6.4).
    pub(crate) const RST_STREAM: u8 = 0x3;
    /// SETTINGS (6.5).
    pub(crate) const SETTINGS: u8 = 0x4;
    /// PUSH_PROMISE (6.6): never sent by a client.
    pub(crate) const PUSH_PROMISE: u8 = 0x5;
    /// PING (6.7).
    pub(crate) const PING: u8 = 0x6;
    /// GOAWAY (6.8).
    pub(crate) const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE (6.9).
    pub(crate) const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION (6.10).
    pub(crate) const CONTINUATION: u8 = 0x9;
}

/// Frame flags (RFC 9113, 6), bits of the `flags` of a [`Head`].
pub(crate) mod flag {
    /// END_STREAM, on DATA and HEADERS.
    pub(crate) const END_STREAM: u8 = 0x1;
    /// ACK, on SETTINGS and PING.
    pub(crate) const ACK: u8 = 0x1;
    /// END_HEADERS, on HEADERS and CONTINUATION.
    pub(crate) const END_HEADERS: u8 = 0x4;
    /// PADDED, on DATA and HEADERS.
    pub(crate) const PADDED: u8 = 0x8;
    /// PRIORITY, on HEADERS.
    pub(crate) const PRIORITY: u8 = 0x20;
}

/// Settings identifiers the server knows (RFC 9113, 6.5.2; RFC 8441, 3);
/// others are ignored, as required.
pub(crate) mod setting {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub(crate) const HEADER_TABLE_SIZE: u16 = 0x1;
    /// SETTINGS_ENABLE_PUSH.
    pub(crate) const ENABLE_PUSH: u16 = 0x2;
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub(crate) const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub(crate) const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// SETTINGS_MAX_FRAME_SIZE.
    pub(crate) const MAX_FRAME_SIZE: u16 = 0x5;
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub(crate) const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441).
    pub(crate) const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
}

/// Error codes (RFC 9113, 7): a newtype so the values are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reason(pub(crate) u32);

impl Reason {
    /// Graceful shutdown, or no error.
    pub(crate) const NO_ERROR: Reason = Reason(0x0);
    /// An unspecific protocol error.
    pub(crate) const PROTOCOL_ERROR: Reason = Reason(0x1);
    /// An unexpected internal error.
    pub(crate) const INTERNAL_ERROR: Reason = Reason(0x2);
    /// The peer violated flow control.
    pub(crate) const FLOW_CONTROL_ERROR: Reason = Reason(0x3);
    /// A frame arrived after the stream was half-closed.
    pub(crate) const STREAM_CLOSED: Reason = Reason(0x5);
    /// A frame has an invalid size.
    pub(crate) const FRAME_SIZE_ERROR: Reason = Reason(0x6);
    /// The stream was refused before any application processing.
    pub(crate) const REFUSED_STREAM: Reason = Reason(0x7);
    /// The field compression context cannot be maintained.
    pub(crate) const COMPRESSION_ERROR: Reason = Reason(0x9);
    /// The peer generates excessive load.
    pub(crate) const ENHANCE_YOUR_CALM: Reason = Reason(0xb);

    /// The name of a known error code.
    fn name(self) -> Option<&'static str> {
        const NAMES: [&str; 14] = [
            "NO_ERROR",
            "PROTOCOL_ERROR",
            "INTERNAL_ERROR",
            "FLOW_CONTROL_ERROR",
            "SETTINGS_TIMEOUT",
            "STREAM_CLOSED",
            "FRAME_SIZE_ERROR",
            "REFUSED_STREAM",
            "CANCEL",
            "COMPRESSION_ERROR",
            "CONNECT_ERROR",
            "ENHANCE_YOUR_CALM",
            "INADEQUATE_SECURITY",
            "HTTP_1_1_REQUIRED",
        ];
        usize::try_from(self.0)
            .ok()
            .and_then(|code| NAMES.get(code).copied())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => {
                let code = self.0;
                write!(f, "unknown error code {code:#x}")
            }
        }
    }
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    /// The length of the payload, at most 2^24-1.
    pub(crate) len: u32,
    /// The frame type, one of [`kind`] or unknown.
    pub(crate) kind: u8,
    /// The flags, bits of [`flag`].
    pub(crate) flags: u8,
    /// The stream identifier, its reserved bit cleared.
    pub(crate) stream: u32,
}

impl Head {
    /// Reads a frame header.
    pub(crate) fn parse(bytes: &[u8; HEAD_LEN]) -> Head {
        Head {
            len: u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]),
            kind: bytes[3],
            flags: bytes[4],
            stream: u32_at(bytes, 5) & RESERVED_MASK,
        }
    }

    /// Whether `flag` is set.
    fn has(self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// The values of a SETTINGS frame that the server acts on, parsed and
/// validated (only those present are `Some`; of a setting present twice,
/// the last value).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// SETTINGS_HEADER_TABLE_SIZE: the largest HPACK dynamic table the
    /// client's decoder allows the server's encoder.
    pub(crate) header_table_size: Option<u32>,
    /// SETTINGS_ENABLE_PUSH.
    pub(crate) enable_push: Option<bool>,
    /// SETTINGS_MAX_CONCURRENT_STREAMS: how many streams the server may
    /// open (it opens none).
    pub(crate) max_concurrent_streams: Option<u32>,
    /// SETTINGS_INITIAL_WINDOW_SIZE, at most 2^31-1: the initial send
    /// window of every stream.
    pub(crate) initial_window_size: Option<u32>,
    /// SETTINGS_MAX_FRAME_SIZE, in 16384..=16777215: the largest frame
    /// payload the server may send.
    pub(crate) max_frame_size: Option<u32>,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: advisory.
    pub(crate) max_header_list_size: Option<u32>,
}

/// A frame received from a client, borrowing its payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// DATA: `data` without padding; `flow_len` is the whole payload length
    /// (padding included), what flow control counts.
    Data {
        /// The stream, not 0.
        stream: u32,
        /// Whether END_STREAM is set.
        end_stream: bool,
        /// The data, without pad length and padding.
        data: &'a [u8],
        /// The whole payload length, counted by flow control.
        flow_len: u32,
    },
    /// HEADERS: the header block fragment without padding and priority
    /// fields.
    Headers {
        /// The stream, not 0.
        stream: u32,
        /// Whether END_STREAM is set.
        end_stream: bool,
        /// Whether END_HEADERS is set: no CONTINUATION follows.
        end_headers: bool,
        /// The field block fragment.
        fragment: &'a [u8],
    },
    /// PRIORITY (ignored by the server, but validated).
    Priority {
        /// The stream, not 0.
        stream: u32,
    },
    /// RST_STREAM.
    RstStream {
        /// The stream, not 0.
        stream: u32,
        /// The error code.
        reason: Reason,
    },
    /// SETTINGS, not an acknowledgement.
    Settings(Settings),
    /// SETTINGS with ACK: the client applied the server's settings.
    SettingsAck,
    /// PING.
    Ping {
        /// Whether ACK is set: a response to the server's PING.
        ack: bool,
        /// The opaque data, to be echoed.
        data: [u8; 8],
    },
    /// GOAWAY (its debug data is dropped).
    GoAway {
        /// The last stream the client may act on, reserved bit cleared.
        last_stream: u32,
        /// The error code.
        reason: Reason,
    },
    /// WINDOW_UPDATE.
    WindowUpdate {
        /// The stream, or 0 for the connection window.
        stream: u32,
        /// The increment, in 1..=2^31-1.
        increment: u32,
    },
    /// CONTINUATION.
    Continuation {
        /// The stream, not 0.
        stream: u32,
        /// Whether END_HEADERS is set: the header block is complete.
        end_headers: bool,
        /// The field block fragment.
        fragment: &'a [u8],
    },
    /// A frame of an unknown type: ignored (RFC 9113, 4.1).
    Unknown,
}

/// Why a frame is refused: a connection error (GOAWAY with this reason) or
/// a stream error (RST_STREAM of that stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// A connection error (RFC 9113, 5.4.1), with a description.
    Connection(Reason, &'static str),
    /// A stream error (RFC 9113, 5.4.2) of this stream, with a description.
    Stream(u32, Reason, &'static str),
}

/// A connection error.
fn conn(reason: Reason, why: &'static str) -> FrameError {
    FrameError::Connection(reason, why)
}

/// The big-endian `u32` at `at` (the caller checked the length).
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Parses a frame whose payload (`head.len` bytes) is `payload`. The caller
/// has already checked `head.len` against its SETTINGS_MAX_FRAME_SIZE.
///
/// A payload of another length than `head.len` is the caller's bug, reported
/// as a connection `INTERNAL_ERROR`.
pub(crate) fn parse(head: Head, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    if u32::try_from(payload.len()) != Ok(head.len) {
        return Err(conn(
            Reason::INTERNAL_ERROR,
            "frame payload does not have the length of its header",
        ));
    }
    let on_stream = |what: &'static str| {
        if head.stream == 0 {
            Err(conn(Reason::PROTOCOL_ERROR, what))
        } else {
            Ok(())
        }
    };
    let on_connection = |what: &'static str| {
        if head.stream == 0 {
            Ok(())
        } else {
            Err(conn(Reason::PROTOCOL_ERROR, what))
        }
    };
    match head.kind {
        kind::DATA => {
            on_stream("DATA frame on stream 0")?;
            let data = if head.has(flag::PADDED) {
                let Some((&pad, rest)) = payload.split_first() else {
                    return Err(conn(
                        Reason::FRAME_SIZE_ERROR,
                        "padded DATA frame without a pad length",
                    ));
                };
                // The padding must be shorter than the payload (6.1).
                let Some(keep) = rest.len().checked_sub(usize::from(pad)) else {
                    return Err(conn(
                        Reason::PROTOCOL_ERROR,
                        "DATA padding as long as the payload",
                    ));
                };
                &rest[..keep]
            } else {
                payload
            };
            Ok(Frame::Data {
                stream: head.stream,
                end_stream: head.has(flag::END_STREAM),
                data,
                flow_len: head.len,
            })
        }
        kind::HEADERS => {
            on_stream("HEADERS frame on stream 0")?;
            let mut rest = payload;
            let mut pad = 0;
            if head.has(flag::PADDED) {
                let Some((&len, after)) = rest.split_first() else {
                    return Err(conn(
                        Reason::FRAME_SIZE_ERROR,
                        "padded HEADERS frame without a pad length",
                    ));
                };
                pad = usize::from(len);
                rest = after;
            }
            let mut dependency = None;
            if head.has(flag::PRIORITY) {
                if rest.len() < 5 {
                    return Err(conn(
                        Reason::FRAME_SIZE_ERROR,
                        "HEADERS frame too short for its priority",
                    ));
                }
                dependency = Some(u32_at(rest, 0) & RESERVED_MASK);
                rest = &rest[5..];
            }
            // The padding must not exceed what is left for the fragment (6.2).
            let Some(keep) = rest.len().checked_sub(pad) else {
                return Err(conn(
                    Reason::PROTOCOL_ERROR,
                    "HEADERS padding longer than the field block",
                ));
            };
            if dependency == Some(head.stream) {
                return Err(FrameError::Stream(
                    head.stream,
                    Reason::PROTOCOL_ERROR,
                    "HEADERS stream depends on itself",
                ));
            }
            Ok(Frame::Headers {
                stream: head.stream,
                end_stream: head.has(flag::END_STREAM),
                end_headers: head.has(flag::END_HEADERS),
                fragment: &rest[..keep],
            })
        }
        kind::PRIORITY => {
            on_stream("PRIORITY frame on stream 0")?;
            if payload.len() != 5 {
                return Err(FrameError::Stream(
                    head.stream,
                    Reason::FRAME_SIZE_ERROR,
                    "PRIORITY frame not 5 octets long",
                ));
            }
            if u32_at(payload, 0) & RESERVED_MASK == head.stream {
                return Err(FrameError::Stream(
                    head.stream,
                    Reason::PROTOCOL_ERROR,
                    "PRIORITY stream depends on itself",
                ));
            }
            Ok(Frame::Priority {
                stream: head.stream,
            })
        }
        kind::RST_STREAM => {
            on_stream("RST_STREAM frame on stream 0")?;
            if payload.len() != 4 {
                return Err(conn(
                    Reason::FRAME_SIZE_ERROR,
                    "RST_STREAM frame not 4 octets long",
                ));
            }
            Ok(Frame::RstStream {
                stream: head.stream,
                reason: Reason(u32_at(payload, 0)),
            })
        }
        kind::SETTINGS => {
            on_connection("SETTINGS frame on a stream")?;
            if head.has(flag::ACK) {
                if payload.is_empty() {
                    return Ok(Frame::SettingsAck);
                }
                return Err(conn(
                    Reason::FRAME_SIZE_ERROR,
                    "SETTINGS acknowledgement with a payload",
                ));
            }
            parse_settings(payload).map(Frame::Settings)
        }
        kind::PUSH_PROMISE => Err(conn(
            Reason::PROTOCOL_ERROR,
            "PUSH_PROMISE frame from a client",
        )),
        kind::PING => {
            on_connection("PING frame on a stream")?;
            let Ok(data) = <[u8; 8]>::try_from(payload) else {
                return Err(conn(
                    Reason::FRAME_SIZE_ERROR,
                    "PING frame not 8 octets long",
                ));
            };
            Ok(Frame::Ping {
                ack: head.has(flag::ACK),
                data,
            })
        }
        kind::GOAWAY => {
            on_connection("GOAWAY frame on a stream")?;
            if payload.len() < 8 {
                return Err(conn(
                    Reason::FRAME_SIZE_ERROR,
                    "GOAWAY frame shorter than 8 octets",
                ));
            }
            Ok(Frame::GoAway {
                last_stream: u32_at(payload, 0) & RESERVED_MASK,
                reason: Reason(u32_at(payload, 4)),
            })
        }
        kind::WINDOW_UPDATE => {
            if payload.len() != 4 {
                return Err(conn(
                    Reason::FRAME_SIZE_ERROR,
                    "WINDOW_UPDATE frame not 4 octets long",
                ));
            }
            let increment = u32_at(payload, 0) & RESERVED_MASK;
            if increment == 0 {
                let why = "WINDOW_UPDATE with an increment of 0";
                return Err(if head.stream == 0 {
                    conn(Reason::PROTOCOL_ERROR, why)
                } else {
                    FrameError::Stream(head.stream, Reason::PROTOCOL_ERROR, why)
                });
            }
            Ok(Frame::WindowUpdate {
                stream: head.stream,
                increment,
            })
        }
        kind::CONTINUATION => {
            on_stream("CONTINUATION frame on stream 0")?;
            Ok(Frame::Continuation {
                stream: head.stream,
                end_headers: head.has(flag::END_HEADERS),
                fragment: payload,
            })
        }
        _ => Ok(Frame::Unknown),
    }
}

/// Parses and validates the payload of a SETTINGS frame that is not an
/// acknowledgement (RFC 9113, 6.5).
fn parse_settings(payload: &[u8]) -> Result<Settings, FrameError> {
    if !payload.len().is_multiple_of(6) {
        return Err(conn(
            Reason::FRAME_SIZE_ERROR,
            "SETTINGS frame length not a multiple of 6",
        ));
    }
    let mut settings = Settings::default();
    for entry in payload.chunks_exact(6) {
        let id = u16::from_be_bytes([entry[0], entry[1]]);
        let value = u32_at(entry, 2);
        match id {
            setting::HEADER_TABLE_SIZE => settings.header_table_size = Some(value),
            setting::ENABLE_PUSH => {
                settings.enable_push = Some(match value {
                    0 => false,
                    1 => true,
                    _ => {
                        return Err(conn(
                            Reason::PROTOCOL_ERROR,
                            "SETTINGS_ENABLE_PUSH neither 0 nor 1",
                        ))
                    }
                });
            }
            setting::MAX_CONCURRENT_STREAMS => settings.max_concurrent_streams = Some(value),
            setting::INITIAL_WINDOW_SIZE => {
                if value > MAX_WINDOW_SIZE {
                    return Err(conn(
                        Reason::FLOW_CONTROL_ERROR,
                        "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                    ));
                }
                settings.initial_window_size = Some(value);
            }
            setting::MAX_FRAME_SIZE => {
                if !(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) {
                    return Err(conn(
                        Reason::PROTOCOL_ERROR,
                        "SETTINGS_MAX_FRAME_SIZE outside 16384..=16777215",
                    ));
                }
                settings.max_frame_size = Some(value);
            }
            setting::MAX_HEADER_LIST_SIZE => settings.max_header_list_size = Some(value),
            setting::ENABLE_CONNECT_PROTOCOL if value > 1 => {
                return Err(conn(
                    Reason::PROTOCOL_ERROR,
                    "SETTINGS_ENABLE_CONNECT_PROTOCOL neither 0 nor 1",
                ));
            }
            // SETTINGS_ENABLE_CONNECT_PROTOCOL 0 or 1 means nothing from a
            // client; unknown settings are ignored (6.5.2).
            _ => {}
        }
    }
    Ok(settings)
}

/// Appends a frame header. `len` must be below 2^24 (it panics otherwise:
/// the frame would corrupt the connection); the reserved bit of `stream` is
/// cleared.
pub(crate) fn write_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    assert!(
        len <= 0xff_ffff,
        "HTTP/2 frame payload of {len} octets, above 2^24-1"
    );
    let len = len.to_be_bytes();
    out.extend_from_slice(&len[len.len() - 3..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & RESERVED_MASK).to_be_bytes());
}

/// Appends a SETTINGS frame with these (identifier, value) pairs, in order.
pub(crate) fn write_settings(out: &mut Vec<u8>, values: &[(u16, u32)]) {
    out.reserve(HEAD_LEN + 6 * values.len());
    write_head(out, 6 * values.len(), kind::SETTINGS, 0, 0);
    for &(id, value) in values {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// Appends a SETTINGS acknowledgement.
pub(crate) fn write_settings_ack(out: &mut Vec<u8>) {
    write_head(out, 0, kind::SETTINGS, flag::ACK, 0);
}

/// Appends a PING frame, or with `ack` its response.
pub(crate) fn write_ping(out: &mut Vec<u8>, ack: bool, data: [u8; 8]) {
    let flags = if ack { flag::ACK } else { 0 };
    write_head(out, 8, kind::PING, flags, 0);
    out.extend_from_slice(&data);
}

/// Appends a GOAWAY frame with debug data (possibly empty).
pub(crate) fn write_goaway(out: &mut Vec<u8>, last_stream: u32, reason: Reason, debug: &[u8]) {
    out.reserve(HEAD_LEN + 8 + debug.len());
    write_head(out, 8 + debug.len(), kind::GOAWAY, 0, 0);
    out.extend_from_slice(&(last_stream & RESERVED_MASK).to_be_bytes());
    out.extend_from_slice(&reason.0.to_be_bytes());
    out.extend_from_slice(debug);
}

/// Appends a RST_STREAM frame.
pub(crate) fn write_rst_stream(out: &mut Vec<u8>, stream: u32, reason: Reason) {
    debug_assert_ne!(stream, 0, "RST_STREAM on stream 0");
    write_head(out, 4, kind::RST_STREAM, 0, stream);
    out.extend_from_slice(&reason.0.to_be_bytes());
}

/// Appends a WINDOW_UPDATE frame of a stream, or of the connection with
/// stream 0. `increment` must be in 1..=2^31-1.
pub(crate) fn write_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    debug_assert!(
        (1..=MAX_WINDOW_SIZE).contains(&increment),
        "WINDOW_UPDATE increment of {increment}"
    );
    write_head(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&(increment & RESERVED_MASK).to_be_bytes());
}

/// Appends a header block as one HEADERS frame and as many CONTINUATION
/// frames as `max_frame_size` (the client's SETTINGS_MAX_FRAME_SIZE, taken
/// within 16384..=16777215) requires: END_STREAM only on the HEADERS frame,
/// END_HEADERS only on the last frame. The frames must not be interleaved
/// with any other frame of the connection.
pub(crate) fn write_headers(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame_size: u32,
) {
    debug_assert_ne!(stream, 0, "HEADERS on stream 0");
    let max = max_frame_size.clamp(DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE);
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let frames = block.len().div_ceil(max).max(1);
    out.reserve(block.len() + frames * HEAD_LEN);
    let mut kind = kind::HEADERS;
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    let mut rest = block;
    loop {
        let (fragment, after) = rest.split_at(rest.len().min(max));
        if after.is_empty() {
            flags |= flag::END_HEADERS;
        }
        write_head(out, fragment.len(), kind, flags, stream);
        out.extend_from_slice(fragment);
        if after.is_empty() {
            return;
        }
        rest = after;
        kind = kind::CONTINUATION;
        flags = 0;
    }
}

/// Appends the header of one DATA frame of `len` octets, without padding:
/// the caller writes the payload after it (or sends it as a separate
/// buffer), keeping `len` within the client's SETTINGS_MAX_FRAME_SIZE and
/// the flow-control windows.
pub(crate) fn write_data_head(out: &mut Vec<u8>, stream: u32, len: usize, end_stream: bool) {
    debug_assert_ne!(stream, 0, "DATA on stream 0");
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    write_head(out, len, kind::DATA, flags, stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame's bytes: a header from `write_head`, then `payload`.
    fn bytes(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_head(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out
    }

    /// Reads one frame from the front of `bytes`, which must hold exactly
    /// that frame.
    fn read(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
        let (head, payload) = bytes.split_at(HEAD_LEN);
        let head = Head::parse(head.try_into().unwrap());
        assert_eq!(usize::try_from(head.len).unwrap(), payload.len());
        parse(head, payload)
    }

    /// Builds a frame and parses it.
    fn frame(
        kind: u8,
        flags: u8,
        stream: u32,
        payload: &[u8],
    ) -> Result<Frame<'static>, FrameError> {
        let bytes = bytes(kind, flags, stream, payload).leak();
        read(bytes)
    }

    /// The reason of a connection error, failing on anything else.
    fn connection_error(result: Result<Frame<'_>, FrameError>) -> Reason {
        match result {
            Err(FrameError::Connection(reason, _)) => reason,
            other => panic!("expected a connection error, got {other:?}"),
        }
    }

    /// The stream and reason of a stream error, failing on anything else.
    fn stream_error(result: Result<Frame<'_>, FrameError>) -> (u32, Reason) {
        match result {
            Err(FrameError::Stream(stream, reason, _)) => (stream, reason),
            other => panic!("expected a stream error, got {other:?}"),
        }
    }

    /// The SETTINGS payload of these pairs.
    fn settings_payload(values: &[(u16, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        write_settings(&mut out, values);
        out.split_off(HEAD_LEN)
    }

    #[test]
    fn head_parse() {
        let head = Head::parse(&[0x12, 0x34, 0x56, 0x1, 0x25, 0x00, 0x00, 0x01, 0x03]);
        assert_eq!(
            head,
            Head {
                len: 0x12_3456,
                kind: kind::HEADERS,
                flags: 0x25,
                stream: 259
            }
        );
    }

    #[test]
    fn reserved_stream_bit_cleared() {
        let head = Head::parse(&[0, 0, 0, 0, 0, 0x80, 0, 0, 5]);
        assert_eq!(head.stream, 5);
        let head = Head::parse(&[0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(head.stream, 0x7fff_ffff);
        // The writer clears it too.
        let mut out = Vec::new();
        write_head(&mut out, 0, kind::DATA, 0, 0x8000_0003);
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 0, 0, 3]);
    }

    #[test]
    fn write_head_layout() {
        let mut out = Vec::new();
        write_head(&mut out, 0xab_cdef, kind::CONTINUATION, 0x4, 0x0102_0304);
        assert_eq!(out, [0xab, 0xcd, 0xef, 9, 4, 1, 2, 3, 4]);
    }

    #[test]
    #[should_panic(expected = "above 2^24-1")]
    fn write_head_refuses_oversized() {
        write_head(&mut Vec::new(), 1 << 24, kind::DATA, 0, 1);
    }

    #[test]
    fn constants() {
        assert_eq!(PREFACE.len(), 24);
        assert_eq!(DEFAULT_MAX_FRAME_SIZE, 1 << 14);
        assert_eq!(MAX_MAX_FRAME_SIZE, (1 << 24) - 1);
        assert_eq!(MAX_WINDOW_SIZE, (1 << 31) - 1);
    }

    #[test]
    fn reason_display() {
        assert_eq!(Reason::NO_ERROR.to_string(), "NO_ERROR");
        assert_eq!(Reason::PROTOCOL_ERROR.to_string(), "PROTOCOL_ERROR");
        assert_eq!(Reason::FLOW_CONTROL_ERROR.to_string(), "FLOW_CONTROL_ERROR");
        assert_eq!(Reason::ENHANCE_YOUR_CALM.to_string(), "ENHANCE_YOUR_CALM");
        assert_eq!(Reason(0xd).to_string(), "HTTP_1_1_REQUIRED");
        assert_eq!(Reason(0xe).to_string(), "unknown error code 0xe");
        assert_eq!(
            Reason(u32::MAX).to_string(),
            "unknown error code 0xffffffff"
        );
        let all = [
            Reason::NO_ERROR,
            Reason::PROTOCOL_ERROR,
            Reason::INTERNAL_ERROR,
            Reason::FLOW_CONTROL_ERROR,
            Reason(0x4),
            Reason::STREAM_CLOSED,
            Reason::FRAME_SIZE_ERROR,
            Reason::REFUSED_STREAM,
            Reason(0x8),
            Reason::COMPRESSION_ERROR,
            Reason(0xa),
            Reason::ENHANCE_YOUR_CALM,
            Reason(0xc),
            Reason(0xd),
        ];
        for (code, reason) in all.into_iter().enumerate() {
            assert_eq!(usize::try_from(reason.0).unwrap(), code);
        }
    }

    #[test]
    fn payload_length_mismatch() {
        let head = Head {
            len: 3,
            kind: kind::DATA,
            flags: 0,
            stream: 1,
        };
        assert_eq!(connection_error(parse(head, b"ab")), Reason::INTERNAL_ERROR);
    }

    // DATA

    #[test]
    fn data() {
        assert_eq!(
            frame(kind::DATA, flag::END_STREAM, 3, b"hello"),
            Ok(Frame::Data {
                stream: 3,
                end_stream: true,
                data: b"hello",
                flow_len: 5
            })
        );
        assert_eq!(
            frame(kind::DATA, 0, 3, b""),
            Ok(Frame::Data {
                stream: 3,
                end_stream: false,
                data: b"",
                flow_len: 0
            })
        );
    }

    #[test]
    fn data_padded() {
        // Pad length 3, "hi", 3 octets of padding.
        assert_eq!(
            frame(
                kind::DATA,
                flag::PADDED | flag::END_STREAM,
                1,
                b"\x03hi\0\0\0"
            ),
            Ok(Frame::Data {
                stream: 1,
                end_stream: true,
                data: b"hi",
                flow_len: 6
            })
        );
        // Only padding: the pad length is one less than the payload.
        assert_eq!(
            frame(kind::DATA, flag::PADDED, 1, b"\x02\0\0"),
            Ok(Frame::Data {
                stream: 1,
                end_stream: false,
                data: b"",
                flow_len: 3
            })
        );
        // Pad length 0.
        assert_eq!(
            frame(kind::DATA, flag::PADDED, 1, b"\x00x"),
            Ok(Frame::Data {
                stream: 1,
                end_stream: false,
                data: b"x",
                flow_len: 2
            })
        );
    }

    #[test]
    fn data_padding_too_long() {
        // Padding the length of the payload or more (6.1).
        let err = frame(kind::DATA, flag::PADDED, 1, b"\x03\0\0");
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
        let err = frame(kind::DATA, flag::PADDED, 1, b"\xffab");
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
        let err = frame(kind::DATA, flag::PADDED, 1, b"\x01");
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
    }

    #[test]
    fn data_padded_empty() {
        let err = frame(kind::DATA, flag::PADDED, 1, b"");
        assert_eq!(connection_error(err), Reason::FRAME_SIZE_ERROR);
    }

    #[test]
    fn data_on_stream_zero() {
        let err = frame(kind::DATA, 0, 0, b"x");
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
    }

    // HEADERS

    #[test]
    fn headers() {
        assert_eq!(
            frame(kind::HEADERS, flag::END_HEADERS, 1, b"\x82\x86"),
            Ok(Frame::Headers {
                stream: 1,
                end_stream: false,
                end_headers: true,
                fragment: b"\x82\x86"
            })
        );
        assert_eq!(
            frame(kind::HEADERS, flag::END_STREAM, 7, b"\x82"),
            Ok(Frame::Headers {
                stream: 7,
                end_stream: true,
                end_headers: false,
                fragment: b"\x82"
            })
        );
    }

    #[test]
    fn headers_padded() {
        assert_eq!(
            frame(
                kind::HEADERS,
                flag::PADDED | flag::END_HEADERS,
                1,
                b"\x02\x82\x86\0\0"
            ),
            Ok(Frame::Headers {
                stream: 1,
                end_stream: false,
                end_headers: true,
                fragment: b"\x82\x86"
            })
        );
        // All padding, an empty fragment.
        assert_eq!(
            frame(kind::HEADERS, flag::PADDED, 1, b"\x02\0\0"),
            Ok(Frame::Headers {
                stream: 1,
                end_stream: false,
                end_headers: false,
                fragment: b""
            })
        );
    }

    #[test]
    fn headers_priority() {
        // Exclusive dependency on stream 3, weight 16.
        assert_eq!(
            frame(
                kind::HEADERS,
                flag::PRIORITY | flag::END_HEADERS,
                5,
                b"\x80\0\0\x03\x0f\x82"
            ),
            Ok(Frame::Headers {
                stream: 5,
                end_stream: false,
                end_headers: true,
                fragment: b"\x82"
            })
        );
        // Padded and with priority: pad length, priority, fragment, padding.
        let flags = flag::PADDED | flag::PRIORITY | flag::END_HEADERS | flag::END_STREAM;
        assert_eq!(
            frame(kind::HEADERS, flags, 5, b"\x01\0\0\0\0\x0f\x82\x84\0"),
            Ok(Frame::Headers {
                stream: 5,
                end_stream: true,
                end_headers: true,
                fragment: b"\x82\x84"
            })
        );
        // Priority alone, no fragment.
        assert_eq!(
            frame(kind::HEADERS, flag::PRIORITY, 5, b"\0\0\0\0\x0f"),
            Ok(Frame::Headers {
                stream: 5,
                end_stream: false,
                end_headers: false,
                fragment: b""
            })
        );
    }

    #[test]
    fn headers_priority_too_short() {
        let err = frame(kind::HEADERS, flag::PRIORITY, 5, b"\0\0\0\0");
        assert_eq!(connection_error(err), Reason::FRAME_SIZE_ERROR);
        // The pad length takes one of the five.
        let err = frame(
            kind::HEADERS,
            flag::PRIORITY | flag::PADDED,
            5,
            b"\0\0\0\0\0",
        );
        assert_eq!(connection_error(err), Reason::FRAME_SIZE_ERROR);
    }

    #[test]
    fn headers_padded_empty() {
        let err = frame(kind::HEADERS, flag::PADDED, 1, b"");
        assert_eq!(connection_error(err), Reason::FRAME_SIZE_ERROR);
    }

    #[test]
    fn headers_padding_too_long() {
        let err = frame(kind::HEADERS, flag::PADDED, 1, b"\x03\x82\0");
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
        // The priority fields are not room for padding.
        let err = frame(
            kind::HEADERS,
            flag::PADDED | flag::PRIORITY,
            1,
            b"\x02\0\0\0\0\x0f\0",
        );
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
    }

    #[test]
    fn headers_self_dependency() {
        let err = frame(
            kind::HEADERS,
            flag::PRIORITY | flag::END_HEADERS,
            3,
            b"\0\0\0\x03\x0f\x82",
        );
        assert_eq!(stream_error(err), (3, Reason::PROTOCOL_ERROR));
        // The exclusive bit is not part of the stream identifier.
        let err = frame(kind::HEADERS, flag::PRIORITY, 3, b"\x80\0\0\x03\x0f");
        assert_eq!(stream_error(err), (3, Reason::PROTOCOL_ERROR));
        // Without the PRIORITY flag, the same octets are a fragment.
        assert!(frame(kind::HEADERS, 0, 3, b"\0\0\0\x03\x0f").is_ok());
    }

    #[test]
    fn headers_on_stream_zero() {
        let err = frame(kind::HEADERS, flag::END_HEADERS, 0, b"\x82");
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
    }

    // PRIORITY

    #[test]
    fn priority() {
        assert_eq!(
            frame(kind::PRIORITY, 0, 5, b"\x80\0\0\x03\xff"),
            Ok(Frame::Priority { stream: 5 })
        );
        // Flags are ignored.
        assert_eq!(
            frame(kind::PRIORITY, 0xff, 5, b"\0\0\0\0\0"),
            Ok(Frame::Priority { stream: 5 })
        );
    }

    #[test]
    fn priority_on_stream_zero() {
        let err = frame(kind::PRIORITY, 0, 0, b"\0\0\0\x03\x0f");
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
    }

    #[test]
    fn priority_wrong_length() {
        for len in [0, 4, 6] {
            let err = frame(kind::PRIORITY, 0, 5, &vec![0; len]);
            assert_eq!(stream_error(err), (5, Reason::FRAME_SIZE_ERROR));
        }
    }

    #[test]
    fn priority_self_dependency() {
        let err = frame(kind::PRIORITY, 0, 5, b"\0\0\0\x05\x0f");
        assert_eq!(stream_error(err), (5, Reason::PROTOCOL_ERROR));
        let err = frame(kind::PRIORITY, 0, 5, b"\x80\0\0\x05\x0f");
        assert_eq!(stream_error(err), (5, Reason::PROTOCOL_ERROR));
    }

    // RST_STREAM

    #[test]
    fn rst_stream() {
        assert_eq!(
            frame(kind::RST_STREAM, 0, 9, b"\0\0\0\x08"),
            Ok(Frame::RstStream {
                stream: 9,
                reason: Reason(0x8)
            })
        );
    }

    #[test]
    fn rst_stream_on_stream_zero() {
        let err = frame(kind::RST_STREAM, 0, 0, b"\0\0\0\x08");
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
    }

    #[test]
    fn rst_stream_wrong_length() {
        for len in [0, 3, 5] {
            let err = frame(kind::RST_STREAM, 0, 9, &vec![0; len]);
            assert_eq!(connection_error(err), Reason::FRAME_SIZE_ERROR);
        }
    }

    // SETTINGS

    #[test]
    fn settings_all_known() {
        let payload = settings_payload(&[
            (setting::HEADER_TABLE_SIZE, 0),
            (setting::ENABLE_PUSH, 0),
            (setting::MAX_CONCURRENT_STREAMS, 100),
            (setting::INITIAL_WINDOW_SIZE, MAX_WINDOW_SIZE),
            (setting::MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE),
            (setting::MAX_HEADER_LIST_SIZE, u32::MAX),
            (setting::ENABLE_CONNECT_PROTOCOL, 1),
        ]);
        assert_eq!(
            frame(kind::SETTINGS, 0, 0, &payload),
            Ok(Frame::Settings(Settings {
                header_table_size: Some(0),
                enable_push: Some(false),
                max_concurrent_streams: Some(100),
                initial_window_size: Some(MAX_WINDOW_SIZE),
                max_frame_size: Some(MAX_MAX_FRAME_SIZE),
                max_header_list_size: Some(u32::MAX),
            }))
        );
    }

    #[test]
    fn settings_empty_and_partial() {
        assert_eq!(
            frame(kind::SETTINGS, 0, 0, b""),
            Ok(Frame::Settings(Settings::default()))
        );
        let payload =
            settings_payload(&[(setting::ENABLE_PUSH, 1), (setting::MAX_FRAME_SIZE, 16_384)]);
        assert_eq!(
            frame(kind::SETTINGS, 0, 0, &payload),
            Ok(Frame::Settings(Settings {
                enable_push: Some(true),
                max_frame_size: Some(16_384),
                ..Settings::default()
            }))
        );
    }

    #[test]
    fn settings_last_value_wins() {
        let payload = settings_payload(&[
            (setting::INITIAL_WINDOW_SIZE, 10),
            (setting::INITIAL_WINDOW_SIZE, 20),
        ]);
        assert_eq!(
            frame(kind::SETTINGS, 0, 0, &payload),
            Ok(Frame::Settings(Settings {
                initial_window_size: Some(20),
                ..Settings::default()
            }))
        );
    }

    #[test]
    fn settings_unknown_ignored() {
        let payload = settings_payload(&[
            (0, 5),
            (0x7, 1),
            (0x9, 1),
            (0xff, u32::MAX),
            (u16::MAX, 0),
            (setting::MAX_CONCURRENT_STREAMS, 1),
        ]);
        assert_eq!(
            frame(kind::SETTINGS, 0, 0, &payload),
            Ok(Frame::Settings(Settings {
                max_concurrent_streams: Some(1),
                ..Settings::default()
            }))
        );
    }

    #[test]
    fn settings_ack() {
        assert_eq!(
            frame(kind::SETTINGS, flag::ACK, 0, b""),
            Ok(Frame::SettingsAck)
        );
    }

    #[test]
    fn settings_ack_with_payload() {
        let payload = settings_payload(&[(setting::ENABLE_PUSH, 0)]);
        let err = frame(kind::SETTINGS, flag::ACK, 0, &payload);
        assert_eq!(connection_error(err), Reason::FRAME_SIZE_ERROR);
    }

    #[test]
    fn settings_on_a_stream() {
        let err = frame(kind::SETTINGS, 0, 1, b"");
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
        let err = frame(kind::SETTINGS, flag::ACK, 1, b"");
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
    }

    #[test]
    fn settings_length_not_multiple_of_6() {
        for len in [1, 5, 7, 11, 13] {
            let err = frame(kind::SETTINGS, 0, 0, &vec![0; len]);
            assert_eq!(connection_error(err), Reason::FRAME_SIZE_ERROR);
        }
    }

    #[test]
    fn settings_enable_push_invalid() {
        let payload = settings_payload(&[(setting::ENABLE_PUSH, 2)]);
        let err = frame(kind::SETTINGS, 0, 0, &payload);
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
    }

    #[test]
    fn settings_initial_window_size_too_large() {
        let payload = settings_payload(&[(setting::INITIAL_WINDOW_SIZE, 1 << 31)]);
        let err = frame(kind::SETTINGS, 0, 0, &payload);
        assert_eq!(connection_error(err), Reason::FLOW_CONTROL_ERROR);
        let payload = settings_payload(&[(setting::INITIAL_WINDOW_SIZE, u32::MAX)]);
        let err = frame(kind::SETTINGS, 0, 0, &payload);
        assert_eq!(connection_error(err), Reason::FLOW_CONTROL_ERROR);
    }

    #[test]
    fn settings_max_frame_size_out_of_range() {
        for value in [0, 16_383, 1 << 24, u32::MAX] {
            let payload = settings_payload(&[(setting::MAX_FRAME_SIZE, value)]);
            let err = frame(kind::SETTINGS, 0, 0, &payload);
            assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR, "{value}");
        }
    }

    #[test]
    fn settings_enable_connect_protocol_invalid() {
        for value in [0, 1] {
            let payload = settings_payload(&[(setting::ENABLE_CONNECT_PROTOCOL, value)]);
            assert_eq!(
                frame(kind::SETTINGS, 0, 0, &payload),
                Ok(Frame::Settings(Settings::default()))
            );
        }
        let payload = settings_payload(&[(setting::ENABLE_CONNECT_PROTOCOL, 2)]);
        let err = frame(kind::SETTINGS, 0, 0, &payload);
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
    }

    // PUSH_PROMISE

    #[test]
    fn push_promise_from_client() {
        let err = frame(kind::PUSH_PROMISE, flag::END_HEADERS, 1, b"\0\0\0\x02\x82");
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
    }

    // PING

    #[test]
    fn ping() {
        assert_eq!(
            frame(kind::PING, 0, 0, b"12345678"),
            Ok(Frame::Ping {
                ack: false,
                data: *b"12345678"
            })
        );
        assert_eq!(
            frame(kind::PING, flag::ACK, 0, b"abcdefgh"),
            Ok(Frame::Ping {
                ack: true,
                data: *b"abcdefgh"
            })
        );
    }

    #[test]
    fn ping_on_a_stream() {
        let err = frame(kind::PING, 0, 1, b"12345678");
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
    }

    #[test]
    fn ping_wrong_length() {
        for len in [0, 7, 9] {
            let err = frame(kind::PING, 0, 0, &vec![0; len]);
            assert_eq!(connection_error(err), Reason::FRAME_SIZE_ERROR);
        }
    }

    // GOAWAY

    #[test]
    fn goaway() {
        assert_eq!(
            frame(kind::GOAWAY, 0, 0, b"\x80\0\0\x07\0\0\0\x0bslow down"),
            Ok(Frame::GoAway {
                last_stream: 7,
                reason: Reason::ENHANCE_YOUR_CALM
            })
        );
    }

    #[test]
    fn goaway_on_a_stream() {
        let err = frame(kind::GOAWAY, 0, 3, &[0; 8]);
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
    }

    #[test]
    fn goaway_too_short() {
        for len in [0, 4, 7] {
            let err = frame(kind::GOAWAY, 0, 0, &vec![0; len]);
            assert_eq!(connection_error(err), Reason::FRAME_SIZE_ERROR);
        }
    }

    // WINDOW_UPDATE

    #[test]
    fn window_update() {
        assert_eq!(
            frame(kind::WINDOW_UPDATE, 0, 0, b"\0\x01\0\0"),
            Ok(Frame::WindowUpdate {
                stream: 0,
                increment: 65_536
            })
        );
        // The reserved bit is ignored.
        assert_eq!(
            frame(kind::WINDOW_UPDATE, 0, 3, b"\xff\xff\xff\xff"),
            Ok(Frame::WindowUpdate {
                stream: 3,
                increment: MAX_WINDOW_SIZE
            })
        );
    }

    #[test]
    fn window_update_wrong_length() {
        for stream in [0, 1] {
            for len in [0, 3, 5] {
                let err = frame(kind::WINDOW_UPDATE, 0, stream, &vec![1; len]);
                assert_eq!(connection_error(err), Reason::FRAME_SIZE_ERROR);
            }
        }
    }

    #[test]
    fn window_update_zero_increment() {
        let err = frame(kind::WINDOW_UPDATE, 0, 5, b"\0\0\0\0");
        assert_eq!(stream_error(err), (5, Reason::PROTOCOL_ERROR));
        // Zero once the reserved bit is cleared.
        let err = frame(kind::WINDOW_UPDATE, 0, 5, b"\x80\0\0\0");
        assert_eq!(stream_error(err), (5, Reason::PROTOCOL_ERROR));
        let err = frame(kind::WINDOW_UPDATE, 0, 0, b"\0\0\0\0");
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
    }

    // CONTINUATION

    #[test]
    fn continuation() {
        assert_eq!(
            frame(kind::CONTINUATION, flag::END_HEADERS, 1, b"\x84"),
            Ok(Frame::Continuation {
                stream: 1,
                end_headers: true,
                fragment: b"\x84"
            })
        );
        // PADDED means nothing on CONTINUATION.
        assert_eq!(
            frame(kind::CONTINUATION, flag::PADDED, 1, b"\x05"),
            Ok(Frame::Continuation {
                stream: 1,
                end_headers: false,
                fragment: b"\x05"
            })
        );
    }

    #[test]
    fn continuation_on_stream_zero() {
        let err = frame(kind::CONTINUATION, flag::END_HEADERS, 0, b"\x84");
        assert_eq!(connection_error(err), Reason::PROTOCOL_ERROR);
    }

    // Unknown

    #[test]
    fn unknown_type_ignored() {
        for kind in [0xa, 0x10, 0xff] {
            assert_eq!(frame(kind, 0xff, 0, b"whatever"), Ok(Frame::Unknown));
            assert_eq!(frame(kind, 0, 3, b""), Ok(Frame::Unknown));
        }
    }

    // Writers, round trips

    #[test]
    fn write_settings_round_trip() {
        let mut out = Vec::new();
        write_settings(
            &mut out,
            &[
                (setting::MAX_CONCURRENT_STREAMS, 128),
                (setting::INITIAL_WINDOW_SIZE, 1 << 20),
                (setting::ENABLE_CONNECT_PROTOCOL, 1),
            ],
        );
        assert_eq!(out.len(), HEAD_LEN + 18);
        assert_eq!(&out[..HEAD_LEN], [0, 0, 18, 4, 0, 0, 0, 0, 0]);
        assert_eq!(
            read(&out),
            Ok(Frame::Settings(Settings {
                max_concurrent_streams: Some(128),
                initial_window_size: Some(1 << 20),
                ..Settings::default()
            }))
        );
        let mut out = Vec::new();
        write_settings(&mut out, &[]);
        assert_eq!(read(&out), Ok(Frame::Settings(Settings::default())));
    }

    #[test]
    fn write_settings_ack_round_trip() {
        let mut out = Vec::new();
        write_settings_ack(&mut out);
        assert_eq!(out, [0, 0, 0, 4, 1, 0, 0, 0, 0]);
        assert_eq!(read(&out), Ok(Frame::SettingsAck));
    }

    #[test]
    fn write_ping_round_trip() {
        for ack in [false, true] {
            let mut out = Vec::new();
            write_ping(&mut out, ack, *b"\x01\x02\x03\x04\x05\x06\x07\x08");
            assert_eq!(out.len(), HEAD_LEN + 8);
            assert_eq!(
                read(&out),
                Ok(Frame::Ping {
                    ack,
                    data: *b"\x01\x02\x03\x04\x05\x06\x07\x08"
                })
            );
        }
    }

    #[test]
    fn write_goaway_round_trip() {
        let mut out = Vec::new();
        write_goaway(&mut out, 41, Reason::NO_ERROR, b"");
        assert_eq!(out, [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 41, 0, 0, 0, 0]);
        assert_eq!(
            read(&out),
            Ok(Frame::GoAway {
                last_stream: 41,
                reason: Reason::NO_ERROR
            })
        );
        let mut out = Vec::new();
        write_goaway(
            &mut out,
            0x8000_0001,
            Reason::PROTOCOL_ERROR,
            b"bad preface",
        );
        assert_eq!(out.len(), HEAD_LEN + 8 + 11);
        assert!(out.ends_with(b"bad preface"));
        assert_eq!(
            read(&out),
            Ok(Frame::GoAway {
                last_stream: 1,
                reason: Reason::PROTOCOL_ERROR
            })
        );
    }

    #[test]
    fn write_rst_stream_round_trip() {
        let mut out = Vec::new();
        write_rst_stream(&mut out, 13, Reason::REFUSED_STREAM);
        assert_eq!(out, [0, 0, 4, 3, 0, 0, 0, 0, 13, 0, 0, 0, 7]);
        assert_eq!(
            read(&out),
            Ok(Frame::RstStream {
                stream: 13,
                reason: Reason::REFUSED_STREAM
            })
        );
    }

    #[test]
    fn write_window_update_round_trip() {
        for (stream, increment) in [(0, 1), (0, MAX_WINDOW_SIZE), (7, 65_535)] {
            let mut out = Vec::new();
            write_window_update(&mut out, stream, increment);
            assert_eq!(out.len(), HEAD_LEN + 4);
            assert_eq!(read(&out), Ok(Frame::WindowUpdate { stream, increment }));
        }
    }

    #[test]
    fn write_data_head_round_trip() {
        let mut out = Vec::new();
        write_data_head(&mut out, 5, 3, true);
        assert_eq!(out, [0, 0, 3, 0, 1, 0, 0, 0, 5]);
        out.extend_from_slice(b"abc");
        assert_eq!(
            read(&out),
            Ok(Frame::Data {
                stream: 5,
                end_stream: true,
                data: b"abc",
                flow_len: 3
            })
        );
        let mut out = Vec::new();
        write_data_head(&mut out, 5, 0, false);
        assert_eq!(
            read(&out),
            Ok(Frame::Data {
                stream: 5,
                end_stream: false,
                data: b"",
                flow_len: 0
            })
        );
    }

    /// Splits a buffer of frames into (head, payload) pairs.
    fn split_frames(mut bytes: &[u8]) -> Vec<(Head, &[u8])> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let head = Head::parse(bytes[..HEAD_LEN].try_into().unwrap());
            let len = usize::try_from(head.len).unwrap();
            frames.push((head, &bytes[HEAD_LEN..HEAD_LEN + len]));
            bytes = &bytes[HEAD_LEN + len..];
        }
        frames
    }

    #[test]
    fn write_headers_single_frame() {
        for end_stream in [false, true] {
            let mut out = Vec::new();
            write_headers(&mut out, 3, b"\x88\x5f", end_stream, DEFAULT_MAX_FRAME_SIZE);
            assert_eq!(out.len(), HEAD_LEN + 2);
            assert_eq!(
                read(&out),
                Ok(Frame::Headers {
                    stream: 3,
                    end_stream,
                    end_headers: true,
                    fragment: b"\x88\x5f"
                })
            );
        }
        // An empty block is still one HEADERS frame.
        let mut out = Vec::new();
        write_headers(&mut out, 3, b"", true, DEFAULT_MAX_FRAME_SIZE);
        assert_eq!(out, [0, 0, 0, 1, 5, 0, 0, 0, 3]);
    }

    #[test]
    fn write_headers_exactly_max_frame_size() {
        let max = DEFAULT_MAX_FRAME_SIZE;
        let block = vec![0x42; usize::try_from(max).unwrap()];
        let mut out = Vec::new();
        write_headers(&mut out, 1, &block, true, max);
        let frames = split_frames(&out);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0.kind, kind::HEADERS);
        assert_eq!(frames[0].0.flags, flag::END_STREAM | flag::END_HEADERS);
        assert_eq!(frames[0].0.len, max);
    }

    #[test]
    fn write_headers_continuations() {
        let max = 20_000_u32;
        let max_len = usize::try_from(max).unwrap();
        for (len, sizes) in [
            (max_len + 1, vec![max_len, 1]),
            (2 * max_len, vec![max_len, max_len]),
            (2 * max_len + 7, vec![max_len, max_len, 7]),
        ] {
            for end_stream in [false, true] {
                let block: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
                let mut out = Vec::new();
                write_headers(&mut out, 9, &block, end_stream, max);
                let frames = split_frames(&out);
                assert_eq!(frames.len(), sizes.len());
                let mut joined = Vec::new();
                for (i, (head, payload)) in frames.iter().enumerate() {
                    let first = i == 0;
                    let last = i == frames.len() - 1;
                    assert_eq!(head.stream, 9);
                    assert_eq!(usize::try_from(head.len).unwrap(), sizes[i]);
                    let parsed = parse(*head, payload).unwrap();
                    if first {
                        assert_eq!(
                            parsed,
                            Frame::Headers {
                                stream: 9,
                                end_stream,
                                end_headers: last,
                                fragment: payload
                            }
                        );
                        let expected = if end_stream { flag::END_STREAM } else { 0 };
                        assert_eq!(
                            head.flags,
                            expected | if last { flag::END_HEADERS } else { 0 }
                        );
                    } else {
                        assert_eq!(
                            parsed,
                            Frame::Continuation {
                                stream: 9,
                                end_headers: last,
                                fragment: payload
                            }
                        );
                        assert_eq!(head.flags, if last { flag::END_HEADERS } else { 0 });
                    }
                    joined.extend_from_slice(payload);
                }
                assert_eq!(joined, block);
            }
        }
    }

    #[test]
    fn write_headers_max_frame_size_clamped() {
        // Below the smallest allowed value, the smallest is used.
        let block = vec![0; 16_385];
        let mut out = Vec::new();
        write_headers(&mut out, 1, &block, false, 100);
        let frames = split_frames(&out);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].0.len, DEFAULT_MAX_FRAME_SIZE);
        assert_eq!(frames[1].0.len, 1);
    }

    #[test]
    fn writers_append() {
        let mut out = b"xyz".to_vec();
        write_settings_ack(&mut out);
        write_ping(&mut out, true, [0; 8]);
        assert!(out.starts_with(b"xyz"));
        let frames = split_frames(&out[3..]);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].0.kind, kind::SETTINGS);
        assert_eq!(frames[1].0.kind, kind::PING);
    }
}
