//! Raw HTTP/2 frames over TLS (ALPN `h2`): what a hostile client sends and
//! a well-behaved library never would (streams reset as soon as opened,
//! header blocks that never end, a wrong preface), and the frames the hub
//! answers with.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The client connection preface.
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types.
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const CONTINUATION: u8 = 0x9;

/// Frame flags.
pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;

/// Error codes.
pub(crate) const PROTOCOL_ERROR: u32 = 0x1;
pub(crate) const CANCEL: u32 = 0x8;
pub(crate) const ENHANCE_YOUR_CALM: u32 = 0xb;

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
    let mut out = Vec::new();
    let fields = [
        (":method", method),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", path),
    ];
    for (name, value) in fields.iter().chain(extra) {
        out.extend(literal_start(name, value.len()));
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// A frame the hub sent.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) payload: Vec<u8>,
}

impl Frame {
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
}

impl<R: AsyncRead + Unpin> Frames<R> {
    /// Frames read from `io`.
    pub(crate) fn new(io: R) -> Frames<R> {
        Frames {
            io,
            buf: Vec::new(),
        }
    }

    /// The next frame, or how the connection ended; panics after [`WAIT`].
    pub(crate) async fn next(&mut self) -> Result<Frame, End> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if self.buf.len() >= 9 {
                let length = usize::try_from(u32::from_be_bytes([
                    0,
                    self.buf[0],
                    self.buf[1],
                    self.buf[2],
                ]))
                .unwrap();
                if self.buf.len() >= 9 + length {
                    let rest = self.buf.split_off(9 + length);
                    let head = std::mem::replace(&mut self.buf, rest);
                    return Ok(Frame {
                        kind: head[3],
                        flags: head[4],
                        payload: head[9..].to_vec(),
                    });
                }
            }
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

    /// Reads until the ACK of [`ping`] `n` (`Ok`) or a GOAWAY or the end
    /// of the connection (`Err`, with the GOAWAY if one came).
    pub(crate) async fn until_pong(&mut self, n: u64) -> Result<(), Option<Frame>> {
        loop {
            match self.next().await {
                Ok(frame) if frame.kind == PING && frame.flags & ACK != 0 => {
                    if frame.payload == n.to_be_bytes() {
                        return Ok(());
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
