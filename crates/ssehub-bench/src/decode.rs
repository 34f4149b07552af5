//! Undoing a response's `Content-Encoding` (zstd, gzip) as the body comes,
//! so that compressed deliveries are checked like plain ones, and counting
//! the bytes before and after.
//!
//! Both codings are decoded with one decompressor per thread, not one per
//! stream: a stream keeps only the bytes of a piece not complete yet. This
//! relies on what ssehub sends (each update compressed alone) and checks
//! it: zstd comes as a frame per update, each decoded alone; gzip as a
//! header, then per update deflate blocks ending in a sync flush that
//! reference nothing earlier, each inflated by an inflater reset before it
//! (a piece that referred to earlier bytes fails to inflate: an error). An
//! inflater per stream (a 32 KiB window and the Huffman tables each) made
//! the load tool, not the hub, the bottleneck at 10,000 gzip streams.

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
/// How a sync flush ends deflate data: an empty stored block.
const SYNC_FLUSH_END: [u8; 4] = [0, 0, 0xff, 0xff];
/// Bytes of a body kept waiting for the end of a piece (a zstd frame, a
/// sync-flushed deflate piece), at most.
const MAX_PENDING: usize = 1 << 20;

/// A body's decoder, chosen by its `Content-Encoding`.
pub(crate) enum Decoder {
    /// Not compressed.
    Identity,
    /// Zstandard: the bytes of a frame not complete yet.
    Zstd(Vec<u8>),
    /// gzip: the header, then the bytes of a piece not complete yet.
    Gzip { header: Vec<u8>, pending: Vec<u8> },
}

thread_local! {
    static ZSTD: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(false));
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
            Some("gzip") => Ok(Decoder::Gzip {
                header: Vec::with_capacity(GZIP_HEADER_LEN),
                pending: Vec::new(),
            }),
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
            Decoder::Gzip { header, pending } => gzip_feed(header, pending, input, out),
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
    check_pending(pending)
}

/// Reads the gzip header, then inflates the pieces `input` completes: all
/// the bytes waiting once they end in a sync flush (one piece or several).
/// The end of a stream (the final block and the trailer, at the hub's
/// shutdown) is left waiting, with any piece that came in the same read.
fn gzip_feed(
    header: &mut Vec<u8>,
    pending: &mut Vec<u8>,
    mut input: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    if header.len() < GZIP_HEADER_LEN {
        let n = (GZIP_HEADER_LEN - header.len()).min(input.len());
        header.extend_from_slice(&input[..n]);
        input = &input[n..];
        if header.len() < GZIP_HEADER_LEN {
            return Ok(());
        }
        if header[..3] != GZIP_MAGIC || header[3] != 0 {
            return Err(bad("not a plain gzip header"));
        }
    }
    pending.extend_from_slice(input);
    if !pending.ends_with(&SYNC_FLUSH_END) {
        return check_pending(pending);
    }
    INFLATE.with(|cell| {
        let mut inflate = cell.borrow_mut();
        inflate.reset(false);
        let mut rest = &pending[..];
        while !rest.is_empty() {
            out.reserve(rest.len() * 4 + 256);
            let before = inflate.total_in();
            let status = inflate
                .decompress_vec(rest, out, FlushDecompress::Sync)
                .map_err(|e| bad(format!("gzip piece: {e}")))?;
            let used = usize::try_from(inflate.total_in() - before).unwrap_or(usize::MAX);
            rest = &rest[used.min(rest.len())..];
            if status == Status::StreamEnd && !rest.is_empty() {
                return Err(bad("gzip: bytes after the final block"));
            }
        }
        Ok(())
    })?;
    pending.clear();
    Ok(())
}

/// An error once the bytes waiting for the end of a piece pass [`MAX_PENDING`].
fn check_pending(pending: &[u8]) -> io::Result<()> {
    if pending.len() > MAX_PENDING {
        return Err(bad("no whole compressed piece in 1 MiB"));
    }
    Ok(())
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
    use ssehub::proto::compress::{Coding, Compressed, Encoder};

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

        // gzip as ssehub writes it: its header, a piece per update, then
        // the final block and trailer.
        let mut encoder = Encoder::new(Coding::Gzip);
        let mut gz = encoder.header().unwrap().to_vec();
        for u in &updates {
            gz.extend(encoder.frame(u.as_bytes(), &Compressed::new()));
        }
        let mut d = Decoder::new(Some("gzip")).unwrap();
        let mut out = Vec::new();
        for piece in gz.chunks(7) {
            d.feed(piece, &mut out).unwrap();
        }
        assert_eq!(out, updates.concat().as_bytes());
        // The end of a clean stream (the final block and trailer) waits
        // unread: the load tool's streams are not meant to end.
        d.feed(&encoder.finish().unwrap(), &mut out).unwrap();
        assert_eq!(out, updates.concat().as_bytes());
        assert!(Decoder::new(Some("br")).is_err());
    }

    #[test]
    fn a_gzip_piece_that_refers_to_an_earlier_one_is_an_error() {
        use std::io::Write;
        // One deflate stream across updates, flushed after each: the second
        // piece copies from the first, which ssehub never does.
        let update = b"id: 1\ndata: {\"name\":\"the same long text, again and again\"}\n\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut ends = Vec::new();
        for _ in 0..2 {
            gz.write_all(update).unwrap();
            gz.flush().unwrap();
            ends.push(gz.get_ref().len());
        }
        let bytes = gz.get_ref().clone();
        let mut d = Decoder::new(Some("gzip")).unwrap();
        let mut out = Vec::new();
        d.feed(&bytes[..ends[0]], &mut out).unwrap();
        assert_eq!(out, update, "the first piece stands alone");
        let err = d.feed(&bytes[ends[0]..ends[1]], &mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }
}
