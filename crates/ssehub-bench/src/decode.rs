//! Undoing a response's `Content-Encoding` (zstd, gzip) as the body comes,
//! so that compressed deliveries are checked like plain ones, and counting
//! the bytes before and after.
//!
//! zstd is decoded frame by frame with one decompressor per thread (the
//! stream keeps only the bytes of an incomplete frame): a hub that sends a
//! frame per update costs a subscriber little here. gzip keeps an inflater
//! per stream.

use std::cell::RefCell;
use std::io;

use std::sync::atomic::Ordering;

use flate2::{Decompress, FlushDecompress, Status};
use ssehub::proto::sse::Parser;
use zstd::zstd_safe;

use crate::tracking::{Shared, Tracker};

/// gzip's fixed header: magic, deflate, then flags, time, extra flags, OS.
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 8];
const GZIP_HEADER_LEN: usize = 10;
/// Bytes of a zstd body kept waiting for the end of a frame, at most.
const MAX_ZSTD_PENDING: usize = 1 << 20;

/// A body's decoder, chosen by its `Content-Encoding`.
pub(crate) enum Decoder {
    /// Not compressed.
    Identity,
    /// Zstandard: the bytes of a frame not complete yet.
    Zstd(Vec<u8>),
    /// gzip: the header is read, then the deflate stream.
    Gzip(Box<Gzip>),
}

/// A gzip stream being inflated.
pub(crate) struct Gzip {
    header: Vec<u8>,
    inflate: Decompress,
    done: bool,
}

thread_local! {
    static ZSTD: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl Decoder {
    /// The decoder for `content_encoding` (absent: identity).
    pub(crate) fn new(content_encoding: Option<&str>) -> io::Result<Decoder> {
        match content_encoding.map(str::trim) {
            None | Some("identity") => Ok(Decoder::Identity),
            Some("zstd") => Ok(Decoder::Zstd(Vec::new())),
            Some("gzip") => Ok(Decoder::Gzip(Box::new(Gzip {
                header: Vec::with_capacity(GZIP_HEADER_LEN),
                inflate: Decompress::new(false),
                done: false,
            }))),
            Some(other) => Err(bad(format!("unsupported Content-Encoding {other}"))),
        }
    }

    /// Appends what `input` decodes to (so far) to `out`.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Decoder::Identity => {
                out.extend_from_slice(input);
                Ok(())
            }
            Decoder::Zstd(pending) => zstd_feed(pending, input, out),
            Decoder::Gzip(gzip) => gzip.feed(input, out),
        }
    }
}

/// Decodes every zstd frame completed by `input`.
fn zstd_feed(pending: &mut Vec<u8>, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    pending.extend_from_slice(input);
    let mut at = 0;
    while at < pending.len() {
        let Ok(len) = zstd_safe::find_frame_compressed_size(&pending[at..]) else {
            break; // not complete yet
        };
        let frame = &pending[at..at + len];
        let size = match zstd_safe::get_frame_content_size(frame) {
            Ok(Some(size)) => usize::try_from(size).map_err(|_| bad("zstd frame too large"))?,
            _ => return Err(bad("a zstd frame without its content size")),
        };
        let decoded = ZSTD.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = Some(zstd::bulk::Decompressor::new()?);
            }
            cell.as_mut().expect("just set").decompress(frame, size)
        })?;
        out.extend_from_slice(&decoded);
        at += len;
    }
    pending.drain(..at);
    if pending.len() > MAX_ZSTD_PENDING {
        return Err(bad("no whole zstd frame in 1 MiB"));
    }
    Ok(())
}

impl Gzip {
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        if self.header.len() < GZIP_HEADER_LEN {
            let n = (GZIP_HEADER_LEN - self.header.len()).min(input.len());
            self.header.extend_from_slice(&input[..n]);
            input = &input[n..];
            if self.header.len() < GZIP_HEADER_LEN {
                return Ok(());
            }
            if self.header[..3] != GZIP_MAGIC || self.header[3] != 0 {
                return Err(bad("not a plain gzip header"));
            }
        }
        // Until the input is used up and the inflater had room for all it
        // could give (or it makes no progress).
        while !self.done {
            out.reserve(input.len() * 4 + 256);
            let (before_in, before_out) = (self.inflate.total_in(), out.len());
            let status = self
                .inflate
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|e| bad(format!("gzip: {e}")))?;
            let used = usize::try_from(self.inflate.total_in() - before_in).unwrap_or(usize::MAX);
            input = &input[used.min(input.len())..];
            // The trailer after the final block is not checked here.
            self.done = status == Status::StreamEnd;
            let full = out.len() == out.capacity();
            if (input.is_empty() && !full) || (used == 0 && out.len() == before_out) {
                break;
            }
        }
        Ok(())
    }
}

/// A response body read by a subscription: decoded, parsed, tracked, and
/// its bytes counted before and after decoding.
pub(crate) struct Body {
    decoder: Decoder,
    parser: Parser,
    plain: Vec<u8>,
}

impl Body {
    /// A body whose `Content-Encoding` is `content_encoding`.
    pub(crate) fn new(content_encoding: Option<&str>) -> io::Result<Body> {
        Ok(Body {
            decoder: Decoder::new(content_encoding)?,
            parser: Parser::new(),
            plain: Vec::new(),
        })
    }

    /// Reads `input`, the next bytes of the body (after any chunked
    /// framing), into `tracker`.
    pub(crate) fn feed(
        &mut self,
        shared: &Shared,
        tracker: &mut Tracker,
        input: &[u8],
    ) -> io::Result<()> {
        self.plain.clear();
        self.decoder.feed(input, &mut self.plain)?;
        let c = &shared.counters;
        c.body_bytes
            .fetch_add(input.len() as u64, Ordering::Relaxed);
        c.decoded_bytes
            .fetch_add(self.plain.len() as u64, Ordering::Relaxed);
        tracker.feed(shared, &mut self.parser, &self.plain);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn decode_split(mut d: Decoder, stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in stream.chunks(7) {
            d.feed(piece, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn frames_and_streams_decode_in_any_pieces() {
        let updates: Vec<String> = (0..50)
            .map(|i| format!("id: {i}\ndata: {{\"n\":{i}}}\n\n"))
            .collect();
        let mut zstd = Vec::new();
        for u in &updates {
            zstd.extend(zstd::bulk::compress(u.as_bytes(), 3).unwrap());
        }
        let d = Decoder::new(Some("zstd")).unwrap();
        assert_eq!(decode_split(d, &zstd), updates.concat().as_bytes());

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(updates.concat().as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let d = Decoder::new(Some("gzip")).unwrap();
        assert_eq!(decode_split(d, &gz), updates.concat().as_bytes());
        assert!(Decoder::new(Some("br")).is_err());
    }
}
