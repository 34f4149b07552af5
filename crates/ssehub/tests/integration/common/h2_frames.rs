//! Raw HTTP/2 frames over TLS (ALPN `h2`): what a hostile client sends and
//! a well-behaved library never would (streams reset as soon as opened,
//! header blocks that never end, a wrong preface), and the frames the hub
//! answers with; and [`H2`], a client of raw frames over TLS or plain TCP
//! (h2c) that keeps a client's books (SETTINGS and PINGs answered, the
//! flow-control windows both ways, each stream's response).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The client connection preface.
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types.
pub(crate) const DATA: u8 = 0x0;
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const PRIORITY: u8 = 0x2;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const WINDOW_UPDATE: u8 = 0x8;
pub(crate) const CONTINUATION: u8 = 0x9;

/// Frame flags.
pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;
pub(crate) const PADDED: u8 = 0x8;
/// The PRIORITY flag of a HEADERS frame.
pub(crate) const PRIORITY_FLAG: u8 = 0x20;

/// Settings.
pub(crate) const MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub(crate) const INITIAL_WINDOW_SIZE: u16 = 0x4;
pub(crate) const MAX_FRAME_SIZE: u16 = 0x5;
pub(crate) const MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// Error codes.
pub(crate) const NO_ERROR: u32 = 0x0;
pub(crate) const PROTOCOL_ERROR: u32 = 0x1;
pub(crate) const FLOW_CONTROL_ERROR: u32 = 0x3;
pub(crate) const STREAM_CLOSED: u32 = 0x5;
pub(crate) const FRAME_SIZE_ERROR: u32 = 0x6;
pub(crate) const REFUSED_STREAM: u32 = 0x7;
pub(crate) const CANCEL: u32 = 0x8;
pub(crate) const COMPRESSION_ERROR: u32 = 0x9;
pub(crate) const ENHANCE_YOUR_CALM: u32 = 0xb;

/// Every flow-control window's size before SETTINGS or WINDOW_UPDATE
/// change it, and the largest a window may be.
pub(crate) const DEFAULT_WINDOW: u32 = 65_535;
pub(crate) const MAX_WINDOW: u32 = (1 << 31) - 1;
/// The largest frame payload before SETTINGS_MAX_FRAME_SIZE changes it,
/// and the smallest value that setting may take.
pub(crate) const DEFAULT_MAX_FRAME: u32 = 16_384;

/// The longest a test waits for the hub to answer.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A TLS connection to `addr` trusting exactly `pem` and offering only
/// `h2`, which the hub must choose.
pub(crate) async fn connect(addr: SocketAddr, pem: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls
}

/// One frame, written out.
pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap();
    assert!(length < 1 << 24, "a frame's length has 24 bits");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&length.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The preface and an empty SETTINGS frame: the start of a connection.
pub(crate) fn opening() -> Vec<u8> {
    [PREFACE, &frame(SETTINGS, 0, 0, &[])].concat()
}

/// A PING carrying `n`.
pub(crate) fn ping(n: u64) -> Vec<u8> {
    frame(PING, 0, 0, &n.to_be_bytes())
}

/// A RST_STREAM of `stream` with `code`.
pub(crate) fn reset(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// A SETTINGS frame carrying `values` (identifier, value).
pub(crate) fn settings(values: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> = values
        .iter()
        .flat_map(|(id, value)| [&id.to_be_bytes()[..], &value.to_be_bytes()].concat())
        .collect();
    frame(SETTINGS, 0, 0, &payload)
}

/// A GOAWAY naming `last_stream` with `code`.
pub(crate) fn goaway(last_stream: u32, code: u32) -> Vec<u8> {
    frame(
        GOAWAY,
        0,
        0,
        &[last_stream.to_be_bytes(), code.to_be_bytes()].concat(),
    )
}

/// The header block `block` of `stream` in a HEADERS frame (with `flags`,
/// less END_HEADERS) and as many CONTINUATION frames as it takes to carry
/// it `piece` bytes at a time, the last with END_HEADERS.
pub(crate) fn header_frames(stream: u32, flags: u8, block: &[u8], piece: usize) -> Vec<u8> {
    let pieces: Vec<&[u8]> = block.chunks(piece.max(1)).collect();
    let last = pieces.len().saturating_sub(1);
    let mut out = Vec::new();
    for (i, fragment) in pieces.into_iter().enumerate() {
        let (kind, flags) = if i == 0 {
            (HEADERS, flags & !END_HEADERS)
        } else {
            (CONTINUATION, 0)
        };
        let end = if i == last { END_HEADERS } else { 0 };
        out.extend(frame(kind, flags | end, stream, fragment));
    }
    if out.is_empty() {
        out = frame(HEADERS, flags | END_HEADERS, stream, &[]);
    }
    out
}

/// A WINDOW_UPDATE of `stream` (0: the connection) by `increment`.
pub(crate) fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

/// An HPACK integer of `n` with a `prefix`-bit prefix, the first byte's
/// other bits set to `first`.
fn hpack_int(out: &mut Vec<u8>, first: u8, prefix: u32, mut n: usize) {
    let max = (1usize << prefix) - 1;
    if n < max {
        out.push(first | u8::try_from(n).unwrap());
        return;
    }
    out.push(first | u8::try_from(max).unwrap());
    n -= max;
    while n >= 128 {
        out.push(u8::try_from(n % 128).unwrap() | 0x80);
        n /= 128;
    }
    out.push(u8::try_from(n).unwrap());
}

/// The start of an HPACK literal field without indexing, new name, no
/// Huffman: everything but the value's bytes, whose length is `value_len`.
pub(crate) fn literal_start(name: &str, value_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    hpack_int(&mut out, 0x00, 4, 0);
    hpack_int(&mut out, 0x00, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_int(&mut out, 0x00, 7, value_len);
    out
}

/// The header block of a request `method path` to `localhost` with the
/// `extra` fields, every field a literal (so that blocks do not depend on
/// each other).
pub(crate) fn request_block(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let fields = [
        (":method", method),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", path),
    ];
    [field_block(&fields), field_block(extra)].concat()
}

/// A header block of exactly `fields`, in this order, each a literal
/// without indexing, new name, no Huffman: whatever they are (uppercase
/// names, pseudo-fields anywhere), they are sent as written.
pub(crate) fn field_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend(literal_start(name, value.len()));
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// An HPACK literal field with incremental indexing, new name, no
/// Huffman: the receiver adds it to its dynamic table (as entry 62, the
/// first dynamic index, until another is added).
pub(crate) fn indexed_literal(name: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::new();
    hpack_int(&mut out, 0x40, 6, 0);
    for string in [name, value] {
        hpack_int(&mut out, 0x00, 7, string.len());
        out.extend_from_slice(string.as_bytes());
    }
    out
}

/// An HPACK indexed field: entry `index` of the static (1 to 61) or
/// dynamic table (62 on).
pub(crate) fn indexed(index: usize) -> Vec<u8> {
    let mut out = Vec::new();
    hpack_int(&mut out, 0x80, 7, index);
    out
}

/// The HPACK integer with a `prefix`-bit prefix at the start of `bytes`,
/// and the bytes it took.
fn read_hpack_int(bytes: &[u8], prefix: u32) -> Option<(usize, usize)> {
    let max = (1usize << prefix) - 1;
    let first = usize::from(*bytes.first()?) & max;
    if first < max {
        return Some((first, 1));
    }
    let mut n = max;
    for (i, byte) in bytes.iter().enumerate().skip(1).take(4) {
        n += usize::from(byte & 0x7f) << (7 * (i - 1));
        if byte & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

/// The digits of an HPACK string of three digits, Huffman-coded or not.
fn status_digits(bytes: &[u8]) -> Option<u16> {
    let (length, at) = read_hpack_int(bytes, 7)?;
    let string = bytes.get(at..at + length)?;
    let digits = if bytes[0] & 0x80 == 0 {
        std::str::from_utf8(string).ok()?.to_string()
    } else {
        // The Huffman codes of the digits (RFC 7541, Appendix B): `0` to
        // `2` are 00000 to 00010, `3` to `9` are 011001 to 011111.
        let bit = |i: usize| Some((string.get(i / 8)? >> (7 - i % 8)) & 1 == 1);
        let mut digits = String::new();
        let mut at = 0;
        while digits.len() < 3 {
            let mut code = 0u32;
            for _ in 0..5 {
                code = code << 1 | u32::from(bit(at)?);
                at += 1;
            }
            let digit = match code {
                0..=2 => code,
                0b01100..=0b01111 => {
                    code = code << 1 | u32::from(bit(at)?);
                    at += 1;
                    code.checked_sub(0b011001)? + 3
                }
                _ => return None,
            };
            digits.push(char::from_digit(digit, 10)?);
        }
        digits
    };
    digits.parse().ok()
}

/// The status of a response's header block, its first field (the only
/// pseudo-field of a response, which comes first): an entry of the static
/// table, or a literal value of `:status`, whether Huffman-coded or not.
/// `None` for anything else (an entry of the dynamic table, say).
pub(crate) fn response_status(block: &[u8]) -> Option<u16> {
    let mut at = 0;
    // Dynamic table size updates may open a block.
    while block.get(at)? & 0xe0 == 0x20 {
        at += read_hpack_int(&block[at..], 5)?.1;
    }
    let block = &block[at..];
    let first = *block.first()?;
    if first & 0x80 != 0 {
        let statuses = [200, 204, 206, 304, 400, 404, 500];
        let (index, _) = read_hpack_int(block, 7)?;
        return statuses.get(index.checked_sub(8)?).copied();
    }
    // A literal, with incremental indexing (6-bit prefix) or not (4).
    let prefix = if first & 0x40 != 0 { 6 } else { 4 };
    let (name, at) = read_hpack_int(block, prefix)?;
    if !(8..=14).contains(&name) {
        return None;
    }
    status_digits(&block[at..])
}

/// A frame the hub sent.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
    pub(crate) payload: Vec<u8>,
}

impl Frame {
    /// The 32-bit word at `at` of the payload.
    fn word(&self, at: usize) -> Option<u32> {
        let bytes: [u8; 4] = self.payload.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    }

    /// The error code of a RST_STREAM.
    pub(crate) fn reset_code(&self) -> Option<u32> {
        (self.kind == RST_STREAM).then(|| self.word(0))?
    }

    /// The increment of a WINDOW_UPDATE.
    pub(crate) fn increment(&self) -> Option<u32> {
        (self.kind == WINDOW_UPDATE).then(|| Some(self.word(0)? & 0x7fff_ffff))?
    }

    /// The settings (identifier, value) of a SETTINGS frame.
    pub(crate) fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks_exact(6)
            .map(|s| {
                let value = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
                (u16::from_be_bytes([s[0], s[1]]), value)
            })
            .collect()
    }

    /// What a DATA or HEADERS frame carries: its payload without padding
    /// (and, for HEADERS, without its priority fields).
    pub(crate) fn content(&self) -> &[u8] {
        let mut content = &self.payload[..];
        let mut padding = 0;
        if self.flags & PADDED != 0 {
            padding = usize::from(content[0]);
            content = &content[1..];
        }
        if self.kind == HEADERS && self.flags & PRIORITY_FLAG != 0 {
            content = &content[5..];
        }
        &content[..content.len() - padding]
    }

    /// The last stream id and the error code of a GOAWAY.
    pub(crate) fn goaway(&self) -> Option<(u32, u32)> {
        let word = |at: usize| {
            let bytes: [u8; 4] = self.payload.get(at..at + 4)?.try_into().ok()?;
            Some(u32::from_be_bytes(bytes))
        };
        if self.kind != GOAWAY {
            return None;
        }
        Some((word(0)? & 0x7fff_ffff, word(4)?))
    }
}

/// How a connection ended, seen by the client reading it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// A TLS `close_notify`, then the end of the stream.
    Clean,
    /// The end of the stream without `close_notify`, or a reset.
    Cut(String),
}

/// Reads the hub's frames off `io`.
pub(crate) struct Frames<R> {
    io: R,
    buf: Vec<u8>,
    /// Where the frames not yet returned start in `buf`.
    at: usize,
}

impl<R: AsyncRead + Unpin> Frames<R> {
    /// Frames read from `io`.
    pub(crate) fn new(io: R) -> Frames<R> {
        Frames {
            io,
            buf: Vec::new(),
            at: 0,
        }
    }

    /// The next frame, or how the connection ended; panics after [`WAIT`].
    pub(crate) async fn next(&mut self) -> Result<Frame, End> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let head = &self.buf[self.at..];
            if head.len() >= 9 {
                let length =
                    usize::try_from(u32::from_be_bytes([0, head[0], head[1], head[2]])).unwrap();
                if head.len() >= 9 + length {
                    let got = Frame {
                        kind: head[3],
                        flags: head[4],
                        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]])
                            & 0x7fff_ffff,
                        payload: head[9..9 + length].to_vec(),
                    };
                    self.at += 9 + length;
                    return Ok(got);
                }
            }
            // Only the start of a frame is left: it moves to the front.
            self.buf.drain(..self.at);
            self.at = 0;
            let mut chunk = [0u8; 16 << 10];
            let read = tokio::time::timeout_at(deadline, self.io.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("the hub sent nothing more for {WAIT:?}"));
            match read {
                Ok(0) => return Err(End::Clean),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(End::Cut(e.to_string())),
            }
        }
    }

    /// Reads until a GOAWAY, which it returns, or the end of the
    /// connection (`None`), skipping every other frame.
    pub(crate) async fn until_goaway(&mut self) -> Option<Frame> {
        loop {
            match self.next().await {
                Ok(frame) if frame.kind == GOAWAY => return Some(frame),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Reads until the ACK of [`ping`] `n` (`Ok`, with the number of PING
    /// ACKs read, its own included) or a GOAWAY or the end of the
    /// connection (`Err`, with the GOAWAY if one came).
    pub(crate) async fn until_pong(&mut self, n: u64) -> Result<u64, Option<Frame>> {
        let mut pongs = 0;
        loop {
            match self.next().await {
                Ok(frame) if frame.kind == PING && frame.flags & ACK != 0 => {
                    pongs += 1;
                    if frame.payload == n.to_be_bytes() {
                        return Ok(pongs);
                    }
                }
                Ok(frame) if frame.kind == GOAWAY => return Err(Some(frame)),
                Ok(_) => {}
                Err(_) => return Err(None),
            }
        }
    }
}

/// Writes `bytes`; `false` once the hub closed or reset the connection.
pub(crate) async fn send<W: AsyncWrite + Unpin>(io: &mut W, bytes: &[u8]) -> bool {
    match tokio::time::timeout(WAIT, io.write_all(bytes)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => panic!("the hub neither read nor closed for {WAIT:?}"),
    }
}

/// A flood of writes, made by a task of its own so that a write the hub
/// does not take in is never cut off in the middle of a frame: it goes on
/// whenever the hub reads again.
pub(crate) struct Flood<W> {
    /// How many writes went through.
    written: tokio::sync::watch::Receiver<usize>,
    /// Set to stop the flood after the write under way.
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// The writer back, and whether every write it made went through.
    task: tokio::task::JoinHandle<(W, bool)>,
}

/// How a [`Flood`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flooding {
    /// Every write went through, this many (fewer than asked if stopped).
    Written(usize),
    /// A write failed (the hub closed the connection) after this many.
    Refused(usize),
}

impl<W: AsyncWrite + Unpin + Send + 'static> Flood<W> {
    /// Writes `writes` times on `io`, the bytes `write(i)` the `i`-th time.
    pub(crate) fn start(
        mut io: W,
        writes: usize,
        write: impl Fn(usize) -> Vec<u8> + Send + 'static,
    ) -> Flood<W> {
        use std::sync::atomic::Ordering;
        let (progress, written) = tokio::sync::watch::channel(0);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            for i in 0..writes {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                if io.write_all(&write(i)).await.is_err() {
                    return (io, false);
                }
                progress.send_replace(i + 1);
            }
            (io, true)
        });
        Flood {
            written,
            stop,
            task,
        }
    }

    /// Makes no more writes after the one under way.
    pub(crate) fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits until no write went through for `stall` (a write that waits
    /// that long is taken as blocked: the hub does not read): how many
    /// had; `None` if the flood ended first.
    pub(crate) async fn until_stalled(&mut self, stall: Duration) -> Option<usize> {
        loop {
            let before = *self.written.borrow_and_update();
            match tokio::time::timeout(stall, self.written.changed()).await {
                Err(_) => return Some(before),
                Ok(Ok(())) => {}
                Ok(Err(_)) => return None,
            }
        }
    }

    /// Waits until the flood ended (panics if no write went through for
    /// [`WAIT`]); how, and the writer.
    pub(crate) async fn finish(mut self) -> (Flooding, W) {
        if let Some(written) = self.until_stalled(WAIT).await {
            panic!("the hub took no more of the flood for {WAIT:?} after {written} writes");
        }
        let written = *self.written.borrow();
        let (io, all) = self.task.await.unwrap();
        let end = if all {
            Flooding::Written(written)
        } else {
            Flooding::Refused(written)
        };
        (end, io)
    }
}

/// What a connection runs over: TLS, or plain TCP (h2c).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A stream's response, as far as it came.
#[derive(Debug, Default)]
pub(crate) struct Response {
    /// Its status, once its header block came.
    pub(crate) status: Option<u16>,
    /// The bytes of its DATA frames.
    pub(crate) data: Vec<u8>,
    /// Whether a frame with END_STREAM came.
    pub(crate) ended: bool,
    /// The code of the RST_STREAM the hub sent, if it did.
    pub(crate) reset: Option<u32>,
}

/// How the hub answered a request, or treated a got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A response with this status.
    Status(u16),
    /// A stream error: RST_STREAM with this code.
    Reset(u32),
    /// A connection error: GOAWAY with this code.
    GoAway(u32),
    /// The end of the connection without any of these.
    Closed,
}

/// Flow-control windows of one direction: the connection's, each
/// stream's, and the size new streams start with. They may go negative
/// when SETTINGS lower the initial size (RFC 9113, 6.9.2).
struct Windows {
    connection: i64,
    initial: i64,
    streams: HashMap<u32, i64>,
}

impl Windows {
    fn new() -> Windows {
        Windows {
            connection: DEFAULT_WINDOW.into(),
            initial: DEFAULT_WINDOW.into(),
            streams: HashMap::new(),
        }
    }

    /// The window of `stream` (0: the connection's).
    fn get(&self, stream: u32) -> i64 {
        match stream {
            0 => self.connection,
            _ => self.streams.get(&stream).copied().unwrap_or(self.initial),
        }
    }

    /// The window of `stream` (0: the connection's), to change.
    fn of(&mut self, stream: u32) -> &mut i64 {
        if stream == 0 {
            return &mut self.connection;
        }
        let initial = self.initial;
        self.streams.entry(stream).or_insert(initial)
    }

    /// A new SETTINGS_INITIAL_WINDOW_SIZE: every stream's window moves
    /// by the difference.
    fn set_initial(&mut self, size: u32) {
        let delta = i64::from(size) - self.initial;
        self.streams.values_mut().for_each(|w| *w += delta);
        self.initial = size.into();
    }
}

/// A client connection of raw frames that keeps a client's books: it
/// acknowledges the hub's SETTINGS and answers its PINGs, records every
/// stream's response and every GOAWAY, and tracks the flow-control
/// windows both ways, asserting on every DATA frame that the hub stayed
/// within the credit it was given, and on every frame that it stayed
/// within the client's SETTINGS_MAX_FRAME_SIZE.
pub(crate) struct H2 {
    frames: Frames<ReadHalf<Box<dyn Io>>>,
    write: WriteHalf<Box<dyn Io>>,
    /// The hub's settings, the last value of each.
    pub(crate) hub_settings: HashMap<u16, u32>,
    /// The last stream id and the code of each GOAWAY, in order.
    pub(crate) goaways: Vec<(u32, u32)>,
    responses: HashMap<u32, Response>,
    /// Credit the hub has to send DATA, as the client granted it.
    recv: Windows,
    /// Credit the client has to send DATA, as the hub granted it.
    send: Windows,
    /// The INITIAL_WINDOW_SIZE (if any) of each SETTINGS sent and not yet
    /// acknowledged: it applies to `recv` once acknowledged.
    unacked: VecDeque<Option<u32>>,
    /// The largest SETTINGS_MAX_FRAME_SIZE the client sent: the hub may
    /// use it as soon as it reads it, before its ACK.
    max_frame: u32,
    /// The largest payload of a frame the hub sent.
    largest_frame: usize,
    /// PINGs sent.
    pings: u64,
    /// Whether the connection ended.
    closed: bool,
}

impl H2 {
    /// A connection to the TLS port `addr` (certificate `pem`), its
    /// SETTINGS (`ours`) exchanged.
    pub(crate) async fn tls(addr: SocketAddr, pem: &[u8], ours: &[(u16, u32)]) -> H2 {
        H2::open(Box::new(connect(addr, pem).await), ours, usize::MAX).await
    }

    /// [`H2::tls`], but the preface and the first SETTINGS frame are
    /// written one byte per write (each its own TLS record).
    pub(crate) async fn tls_trickled(addr: SocketAddr, pem: &[u8], ours: &[(u16, u32)]) -> H2 {
        H2::open(Box::new(connect(addr, pem).await), ours, 1).await
    }

    /// A connection to the plain port `addr` with prior knowledge (h2c),
    /// its SETTINGS (`ours`) exchanged.
    pub(crate) async fn plain(addr: SocketAddr, ours: &[(u16, u32)]) -> H2 {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        H2::open(Box::new(tcp), ours, usize::MAX).await
    }

    /// Sends the preface and SETTINGS `ours` on `io`, in writes of `piece`
    /// bytes, and reads until the hub's SETTINGS came and ours were
    /// acknowledged.
    async fn open(io: Box<dyn Io>, ours: &[(u16, u32)], piece: usize) -> H2 {
        let (read, write) = tokio::io::split(io);
        let mut h2 = H2 {
            frames: Frames::new(read),
            write,
            hub_settings: HashMap::new(),
            goaways: Vec::new(),
            responses: HashMap::new(),
            recv: Windows::new(),
            send: Windows::new(),
            unacked: VecDeque::new(),
            max_frame: DEFAULT_MAX_FRAME,
            largest_frame: 0,
            pings: 0,
            closed: false,
        };
        let opening = [PREFACE, &h2.sent_settings(ours)].concat();
        for bytes in opening.chunks(piece) {
            assert!(h2.send(bytes).await);
        }
        let acked = h2.until(|h2| h2.unacked.is_empty()).await;
        assert!(acked, "the hub acknowledged SETTINGS {ours:?}");
        let settled = h2.until(|h2| !h2.hub_settings.is_empty()).await;
        assert!(settled, "the hub sent its SETTINGS");
        h2
    }

    /// Writes `bytes`; `false` once the hub closed the connection.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> bool {
        send(&mut self.write, bytes).await
    }

    /// The SETTINGS frame of `ours`, entered in the books as sent.
    fn sent_settings(&mut self, ours: &[(u16, u32)]) -> Vec<u8> {
        let initial = ours.iter().rev().find(|(id, _)| *id == INITIAL_WINDOW_SIZE);
        self.unacked.push_back(initial.map(|(_, size)| *size));
        for (id, value) in ours {
            if *id == MAX_FRAME_SIZE {
                self.max_frame = self.max_frame.max(*value);
            }
        }
        settings(ours)
    }

    /// Sends SETTINGS `ours` and reads until the hub acknowledged them.
    pub(crate) async fn settle(&mut self, ours: &[(u16, u32)]) {
        let sent = self.sent_settings(ours);
        assert!(self.send(&sent).await);
        let acked = self.until(|h2| h2.unacked.is_empty()).await;
        assert!(acked, "the hub acknowledged SETTINGS {ours:?}");
    }

    /// Sends a PING and reads until its ACK: whatever the hub sent before
    /// answering, it sent before this returns. `false` if the connection
    /// ended first.
    pub(crate) async fn ping_round_trip(&mut self) -> bool {
        self.pings += 1;
        let n = self.pings;
        if !self.send(&ping(n)).await {
            return false;
        }
        loop {
            match self.next().await {
                Ok(f) if f.kind == PING && f.flags & ACK != 0 && f.payload == n.to_be_bytes() => {
                    return true
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// Grants the hub `increment` more bytes on `stream` (0: the
    /// connection).
    pub(crate) async fn grant(&mut self, stream: u32, increment: u32) {
        *self.recv.of(stream) += i64::from(increment);
        assert!(self.send(&window_update(stream, increment)).await);
    }

    /// The credit the hub has left on `stream` (0: the connection).
    pub(crate) fn recv_window(&self, stream: u32) -> i64 {
        self.recv.get(stream)
    }

    /// The response on `stream` so far.
    pub(crate) fn response(&self, stream: u32) -> Option<&Response> {
        self.responses.get(&stream)
    }

    /// Whether the connection ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// The largest payload of a frame the hub sent so far.
    pub(crate) fn largest_frame(&self) -> usize {
        self.largest_frame
    }

    /// The next frame, entered in the books; the end of the connection.
    pub(crate) async fn next(&mut self) -> Result<Frame, End> {
        let got = match self.frames.next().await {
            Ok(got) => got,
            Err(end) => {
                self.closed = true;
                return Err(end);
            }
        };
        let stream = got.stream;
        let max_frame = usize::try_from(self.max_frame).unwrap();
        assert!(
            got.payload.len() <= max_frame,
            "the hub sent a frame of {} bytes, beyond the client's \
             SETTINGS_MAX_FRAME_SIZE of {max_frame}: {:?}",
            got.payload.len(),
            (got.kind, got.flags, got.stream)
        );
        self.largest_frame = self.largest_frame.max(got.payload.len());
        match got.kind {
            DATA => {
                let length = i64::try_from(got.payload.len()).unwrap();
                for window in [0, stream] {
                    let credit = self.recv.of(window);
                    *credit -= length;
                    assert!(
                        *credit >= 0,
                        "the hub sent {length} bytes of DATA on stream {stream}, beyond the \
                         window of {} (stream {window}; 0: the connection)",
                        *credit + length
                    );
                }
                let response = self.responses.entry(stream).or_default();
                response.data.extend_from_slice(got.content());
                response.ended |= got.flags & END_STREAM != 0;
            }
            HEADERS => {
                let response = self.responses.entry(stream).or_default();
                if response.status.is_none() {
                    response.status = response_status(got.content());
                    assert!(response.status.is_some(), "a status: {got:?}");
                }
                response.ended |= got.flags & END_STREAM != 0;
            }
            RST_STREAM => self.responses.entry(stream).or_default().reset = got.reset_code(),
            SETTINGS if got.flags & ACK != 0 => {
                let sent = self.unacked.pop_front().expect("SETTINGS were sent");
                if let Some(size) = sent {
                    self.recv.set_initial(size);
                }
            }
            SETTINGS => {
                for (id, value) in got.settings() {
                    if id == INITIAL_WINDOW_SIZE {
                        self.send.set_initial(value);
                    }
                    self.hub_settings.insert(id, value);
                }
                self.send(&frame(SETTINGS, ACK, 0, &[])).await;
            }
            PING if got.flags & ACK == 0 => {
                self.send(&frame(PING, ACK, 0, &got.payload)).await;
            }
            WINDOW_UPDATE => {
                let increment = got.increment().expect("an increment");
                *self.send.of(stream) += i64::from(increment);
            }
            GOAWAY => self.goaways.push(got.goaway().expect("a GOAWAY")),
            _ => {}
        }
        Ok(got)
    }

    /// Reads frames until `done` holds (`true`) or the connection ended
    /// (`false`, unless `done` holds then).
    pub(crate) async fn until(&mut self, done: impl Fn(&H2) -> bool) -> bool {
        while !done(self) {
            if self.next().await.is_err() {
                return done(self);
            }
        }
        true
    }

    /// Opens `stream` with the header block `block` (one HEADERS frame),
    /// then sends `body` if any (see [`H2::send_body`]): how many times it
    /// waited for credit to send it.
    pub(crate) async fn request(
        &mut self,
        stream: u32,
        block: &[u8],
        body: Option<&[u8]>,
    ) -> usize {
        let flags = END_HEADERS | if body.is_none() { END_STREAM } else { 0 };
        assert!(self.send(&frame(HEADERS, flags, stream, block)).await);
        match body {
            Some(body) => self.send_body(stream, body).await,
            None => 0,
        }
    }

    /// Sends `body` on `stream` in DATA frames, the last with END_STREAM,
    /// never beyond the credit the hub granted (its INITIAL_WINDOW_SIZE
    /// and WINDOW_UPDATEs, the stream's and the connection's) nor its
    /// largest frame: when out of credit, it reads frames until more comes.
    /// How many times it had to wait for credit.
    async fn send_body(&mut self, stream: u32, body: &[u8]) -> usize {
        let largest = self
            .hub_settings
            .get(&MAX_FRAME_SIZE)
            .copied()
            .unwrap_or(DEFAULT_MAX_FRAME);
        let (mut sent, mut waits) = (0, 0);
        loop {
            let credit = (*self.send.of(stream))
                .min(self.send.connection)
                .min(largest.into());
            let left = body.len() - sent;
            if credit <= 0 && left > 0 {
                waits += 1;
                let more = self
                    .until(|h2| h2.send.get(stream).min(h2.send.connection) > 0)
                    .await;
                assert!(
                    more,
                    "the hub granted more credit to send on stream {stream}"
                );
                continue;
            }
            let n = left.min(usize::try_from(credit.max(0)).unwrap());
            let end = if n == left { END_STREAM } else { 0 };
            let chunk = &body[sent..sent + n];
            assert!(self.send(&frame(DATA, end, stream, chunk)).await);
            let n64 = i64::try_from(n).unwrap();
            *self.send.of(stream) -= n64;
            self.send.connection -= n64;
            sent += n;
            if end != 0 {
                return waits;
            }
        }
    }

    /// Reads until the hub answered on `stream` (a status or a reset), or
    /// sent a GOAWAY, or closed the connection.
    pub(crate) async fn answer(&mut self, stream: u32) -> Answer {
        self.until(|h2| {
            let r = h2.response(stream);
            r.is_some_and(|r| r.status.is_some() || r.reset.is_some()) || !h2.goaways.is_empty()
        })
        .await;
        self.outcome(stream, true)
    }

    /// Reads until the hub reset `stream`, sent a GOAWAY or closed the
    /// connection, whatever status it answered before.
    pub(crate) async fn error(&mut self, stream: u32) -> Answer {
        self.until(|h2| {
            let reset = h2.response(stream).is_some_and(|r| r.reset.is_some());
            reset || !h2.goaways.is_empty()
        })
        .await;
        self.outcome(stream, false)
    }

    /// What the books say of `stream`: its reset, else its status (if
    /// `status` counts), else the last GOAWAY, else the end.
    fn outcome(&self, stream: u32, status: bool) -> Answer {
        let response = self.response(stream);
        if let Some(code) = response.and_then(|r| r.reset) {
            return Answer::Reset(code);
        }
        if let Some(s) = response.and_then(|r| r.status).filter(|_| status) {
            return Answer::Status(s);
        }
        match self.goaways.last() {
            Some((_, code)) => Answer::GoAway(*code),
            None => Answer::Closed,
        }
    }

    /// Reads until the hub sent a GOAWAY (the last one's code) or closed
    /// the connection.
    pub(crate) async fn until_goaway(&mut self) -> Answer {
        self.until(|h2| !h2.goaways.is_empty()).await;
        match self.goaways.last() {
            Some((_, code)) => Answer::GoAway(*code),
            None => Answer::Closed,
        }
    }

    /// Reads until `stream` ended, and returns what its DATA frames
    /// carried; panics if it is reset or the connection ends first.
    pub(crate) async fn body(&mut self, stream: u32) -> Vec<u8> {
        let ended = self
            .until(|h2| {
                h2.response(stream)
                    .is_some_and(|r| r.ended || r.reset.is_some())
            })
            .await;
        let response = self.responses.remove(&stream).unwrap_or_default();
        assert!(
            ended && response.reset.is_none(),
            "stream {stream} ended: {response:?}, GOAWAYs {:?}",
            self.goaways
        );
        response.data
    }
}
