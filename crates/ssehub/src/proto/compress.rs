//! Compressed streams: the coding chosen from `Accept-Encoding`, each frame
//! compressed on its own (so one compressed copy serves every stream of a
//! coding, as the uncompressed frame does), and what a stream adds around
//! the shared copies.
//!
//! - zstd: one complete zstd frame per SSE frame; a zstd stream may be any
//!   sequence of frames, so the stream is the frames one after the other.
//! - gzip: the gzip header once per stream; per SSE frame, raw deflate from
//!   a fresh compressor ended by a sync flush (non-final blocks, byte
//!   aligned, referring to nothing before them); at a clean end, an empty
//!   final block and the trailer (the CRC-32 of everything the stream
//!   carried, combined from each frame's own CRC, and its length).

use std::cell::RefCell;
use std::sync::OnceLock;

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};

/// zstd's level: its default, a good ratio on small JSON frames at a speed
/// that keeps compressing once per update far below the fan-out's cost.
const ZSTD_LEVEL: i32 = 3;

/// deflate's level: zlib's default.
const DEFLATE_LEVEL: u32 = 6;

/// A gzip member's header: magic, deflate, no flags, no time, no extra
/// flags, unknown OS.
const GZIP_HEADER: &[u8] = &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// An empty final deflate block (fixed Huffman codes: `BFINAL=1`,
/// `BTYPE=01`, end of block), written after the last sync flush.
const DEFLATE_END: &[u8] = &[0x03, 0x00];

/// CRC-32's polynomial, bit-reflected.
const CRC_POLY: u32 = 0xedb8_8320;

/// A content coding the hub compresses streams with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Zstandard (RFC 8878).
    Zstd,
    /// gzip (RFC 1952).
    Gzip,
}

impl Coding {
    /// Its name in `Content-Encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// The coding to answer a request with, from its `Accept-Encoding`
    /// values: the one it names with the highest weight (zstd when tied), or
    /// none when it names neither or refuses both (`q=0`). `*` is not taken
    /// as asking for compression: a client must name the coding.
    pub fn negotiate<'a>(accept: impl IntoIterator<Item = &'a [u8]>) -> Option<Coding> {
        let (mut zstd, mut gzip) = (0u16, 0u16);
        for value in accept {
            let Ok(value) = std::str::from_utf8(value) else {
                continue;
            };
            for item in value.split(',') {
                let mut parts = item.split(';');
                let name = parts.next().unwrap_or_default().trim();
                let weight = parts
                    .find_map(|p| {
                        let (k, v) = p.split_once('=')?;
                        k.trim().eq_ignore_ascii_case("q").then(|| weight(v.trim()))
                    })
                    .unwrap_or(Some(1000));
                let Some(weight) = weight else { continue };
                if name.eq_ignore_ascii_case("zstd") {
                    zstd = zstd.max(weight);
                } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                    gzip = gzip.max(weight);
                }
            }
        }
        match (zstd, gzip) {
            (0, 0) => None,
            (z, g) if z >= g => Some(Coding::Zstd),
            _ => Some(Coding::Gzip),
        }
    }
}

/// A `qvalue` in thousandths (`1`, `0.5`, `0.001`), none if malformed.
fn weight(q: &str) -> Option<u16> {
    let (whole, fraction) = q.split_once('.').unwrap_or((q, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// One SSE frame's compressed copies, made the first time a stream of
/// each coding asks and then shared by all of them. Every event carries
/// one: until a compressed stream asks, it is an empty slot of 16 bytes
/// (the copies' own slots, 88 bytes, are allocated at the first ask), so
/// the history of a hub whose streams are not compressed stays as small
/// as without compression.
#[derive(Debug, Default)]
pub struct Compressed {
    copies: OnceLock<Box<Copies>>,
}

/// The copies of one frame, each made when first asked for.
#[derive(Debug, Default)]
struct Copies {
    zstd: OnceLock<Bytes>,
    gzip: OnceLock<Deflated>,
}

/// A frame as raw deflate ending in a sync flush, with what a gzip stream
/// needs to account for it in its trailer.
#[derive(Debug)]
struct Deflated {
    /// The deflate blocks.
    bytes: Bytes,
    /// The CRC-32 of the uncompressed frame.
    crc: u32,
    /// x^(8 * frame length) modulo CRC-32's polynomial: what a stream's CRC
    /// so far is multiplied by to put this frame after it.
    shift: u32,
}

impl Compressed {
    /// No copy made yet (`const`, for the frames that are statics).
    pub const fn new() -> Compressed {
        Compressed {
            copies: OnceLock::new(),
        }
    }

    fn copies(&self) -> &Copies {
        self.copies.get_or_init(Box::default)
    }

    fn zstd(&self, frame: &[u8]) -> &Bytes {
        self.copies()
            .zstd
            .get_or_init(|| Bytes::from(zstd_frame(frame)))
    }

    fn gzip(&self, frame: &[u8]) -> &Deflated {
        self.copies().gzip.get_or_init(|| Deflated {
            bytes: Bytes::from(deflate(frame)),
            crc: crc32fast::hash(frame),
            shift: crc_shift(frame.len()),
        })
    }
}

thread_local! {
    static ZSTD: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DEFLATE: RefCell<Compress> =
        RefCell::new(Compress::new(Compression::new(DEFLATE_LEVEL), false));
}

/// `frame` as one complete zstd frame (a compressor per thread, reused).
fn zstd_frame(frame: &[u8]) -> Vec<u8> {
    ZSTD.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(
                zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("zstd allocates its compressor"),
            );
        }
        let compressor = cell.as_mut().expect("just set");
        compressor
            .compress(frame)
            .expect("zstd compresses into memory")
    })
}

/// `frame` as raw deflate from a fresh compressor, ended by a sync flush.
fn deflate(frame: &[u8]) -> Vec<u8> {
    DEFLATE.with(|cell| {
        let mut c = cell.borrow_mut();
        c.reset();
        let mut out = Vec::with_capacity(frame.len() + frame.len() / 8 + 64);
        loop {
            let done = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
            c.compress_vec(
                &frame[done.min(frame.len())..],
                &mut out,
                FlushCompress::Sync,
            )
            .expect("deflate into memory does not fail");
            // The flush is complete once it left room in the output.
            if out.len() < out.capacity() {
                return out;
            }
            out.reserve(out.capacity());
        }
    })
}

/// a(x) * b(x) modulo CRC-32's polynomial, both bit-reflected.
fn crc_multiply(a: u32, mut b: u32) -> u32 {
    let mut product = 0;
    for bit in (0..32).rev() {
        if a & (1 << bit) != 0 {
            product ^= b;
        }
        b = if b & 1 == 0 {
            b >> 1
        } else {
            (b >> 1) ^ CRC_POLY
        };
    }
    product
}

/// x^(8 * len) modulo CRC-32's polynomial, by squaring.
fn crc_shift(len: usize) -> u32 {
    let mut power = 1 << 31; // x^0
    let mut square = 1 << 23; // x^8: one byte
    let mut n = len;
    while n > 0 {
        if n & 1 == 1 {
            power = crc_multiply(square, power);
        }
        square = crc_multiply(square, square);
        n >>= 1;
    }
    power
}

/// What one compressed stream keeps: its coding and, for gzip, the CRC
/// and length of what it carried so far (for the trailer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoder {
    coding: Coding,
    crc: u32,
    /// The length modulo 2^32, as the trailer holds it.
    size: u32,
}

impl Encoder {
    /// A stream compressed with `coding`, nothing written yet.
    pub fn new(coding: Coding) -> Encoder {
        Encoder {
            coding,
            crc: 0,
            size: 0,
        }
    }

    /// What the stream starts with before its first frame, if anything.
    pub fn header(&self) -> Option<Bytes> {
        (self.coding == Coding::Gzip).then_some(Bytes::from_static(GZIP_HEADER))
    }

    /// `frame` as this stream writes it: its shared compressed copy, held by
    /// `compressed`, made now if no stream of this coding asked before.
    pub fn frame(&mut self, frame: &[u8], compressed: &Compressed) -> Bytes {
        match self.coding {
            Coding::Zstd => compressed.zstd(frame).clone(),
            Coding::Gzip => {
                let deflated = compressed.gzip(frame);
                self.crc = crc_multiply(deflated.shift, self.crc) ^ deflated.crc;
                // The trailer holds the length modulo 2^32: truncation intended.
                #[allow(clippy::cast_possible_truncation)]
                let len = frame.len() as u32;
                self.size = self.size.wrapping_add(len);
                deflated.bytes.clone()
            }
        }
    }

    /// What ends the stream cleanly after its last frame, if anything: for
    /// gzip, the final block and the trailer.
    pub fn finish(&self) -> Option<Bytes> {
        (self.coding == Coding::Gzip).then(|| {
            let mut end = Vec::with_capacity(DEFLATE_END.len() + 8);
            end.extend_from_slice(DEFLATE_END);
            end.extend_from_slice(&self.crc.to_le_bytes());
            end.extend_from_slice(&self.size.to_le_bytes());
            Bytes::from(end)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn negotiate(values: &[&str]) -> Option<Coding> {
        Coding::negotiate(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn an_event_not_compressed_holds_only_an_empty_slot() {
        assert_eq!(std::mem::size_of::<Compressed>(), 16);
        let compressed = Compressed::new();
        assert!(compressed.copies.get().is_none());
        let frame = b"data: x\n\n";
        let first = compressed.zstd(frame).clone();
        assert!(compressed.copies.get().unwrap().gzip.get().is_none());
        assert_eq!(compressed.zstd(frame), &first, "made once, then shared");
    }

    #[test]
    fn negotiation_follows_the_weights_and_needs_a_name() {
        assert_eq!(negotiate(&[]), None);
        assert_eq!(negotiate(&["identity"]), None);
        assert_eq!(negotiate(&["*"]), None, "a wildcard is not asking");
        assert_eq!(negotiate(&["br, deflate"]), None);
        assert_eq!(negotiate(&["gzip, deflate, br, zstd"]), Some(Coding::Zstd));
        assert_eq!(negotiate(&["gzip"]), Some(Coding::Gzip));
        assert_eq!(negotiate(&["x-gzip"]), Some(Coding::Gzip));
        assert_eq!(negotiate(&["GZip;Q=0.5"]), Some(Coding::Gzip));
        assert_eq!(negotiate(&["zstd;q=0.5, gzip"]), Some(Coding::Gzip));
        assert_eq!(negotiate(&["zstd;q=0", "gzip;q=0.001"]), Some(Coding::Gzip));
        assert_eq!(negotiate(&["zstd;q=0, gzip;q=0.000"]), None);
        assert_eq!(
            negotiate(&["gzip;q=2, zstd;q=0.x"]),
            None,
            "malformed weights"
        );
        assert_eq!(negotiate(&["zstd ; q=1.000"]), Some(Coding::Zstd));
    }

    #[test]
    fn combined_crcs_are_the_crc_of_the_whole() {
        let parts: [&[u8]; 5] = [
            b"",
            b":\n\n",
            b"id: 1\ndata: {\"a\":1}\n\n",
            &[0xff; 300],
            b"x",
        ];
        let mut encoder = Encoder::new(Coding::Gzip);
        let mut whole = Vec::new();
        for part in parts {
            encoder.frame(part, &Compressed::new());
            whole.extend_from_slice(part);
            assert_eq!(encoder.crc, crc32fast::hash(&whole));
        }
        assert_eq!(encoder.size as usize, whole.len());
    }

    /// Frames (some shared between the streams) and what each stream made of them.
    fn streams(coding: Coding, frames: &[Vec<u8>]) -> Vec<u8> {
        let shared: Vec<Compressed> = frames.iter().map(|_| Compressed::new()).collect();
        let mut encoder = Encoder::new(coding);
        let mut out = encoder.header().map(|h| h.to_vec()).unwrap_or_default();
        for (frame, compressed) in frames.iter().zip(&shared) {
            out.extend_from_slice(&encoder.frame(frame, compressed));
        }
        out.extend_from_slice(&encoder.finish().unwrap_or_default());
        out
    }

    fn frames() -> Vec<Vec<u8>> {
        (0..200)
            .map(|i| {
                if i % 7 == 0 {
                    b":\n\n".to_vec()
                } else {
                    format!("id: {i}\ndata: {{\"user\":{i},\"name\":\"n{i}\",\"tags\":[\"a\",\"b\"]}}\n\n")
                        .into_bytes()
                }
            })
            .collect()
    }

    #[test]
    fn gzip_streams_decode_whole_with_a_valid_trailer() {
        let frames = frames();
        let stream = streams(Coding::Gzip, &frames);
        let mut decoded = Vec::new();
        // The decoder checks the CRC and length of the trailer.
        flate2::read::GzDecoder::new(&stream[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, frames.concat());
        let mut bad = stream.clone();
        let at = bad.len() - 6;
        bad[at] ^= 1;
        let mut ignored = Vec::new();
        assert!(flate2::read::GzDecoder::new(&bad[..])
            .read_to_end(&mut ignored)
            .is_err());
    }

    #[test]
    fn each_gzip_chunk_stands_alone() {
        // A chunk inflates by itself from a fresh decompressor: nothing in
        // it refers to an earlier frame.
        let frame = b"id: 1\ndata: same same same same\n\n";
        let chunk = Compressed::new().gzip(frame).bytes.clone();
        assert!(chunk.ends_with(&[0, 0, 0xff, 0xff]), "a sync flush");
        let mut inflated = Vec::new();
        let mut d = flate2::write::DeflateDecoder::new(&mut inflated);
        d.write_all(&chunk).unwrap();
        d.flush().unwrap();
        drop(d);
        assert_eq!(inflated, frame);
    }

    #[test]
    fn zstd_streams_are_frames_one_after_the_other() {
        let frames = frames();
        let stream = streams(Coding::Zstd, &frames);
        assert_eq!(zstd::decode_all(&stream[..]).unwrap(), frames.concat());
        let one = Compressed::new();
        let frame = &frames[1];
        assert_eq!(zstd::decode_all(&one.zstd(frame)[..]).unwrap(), *frame);
        assert_eq!(
            one.zstd(frame).as_ptr(),
            one.zstd(frame).as_ptr(),
            "made once"
        );
    }
}
