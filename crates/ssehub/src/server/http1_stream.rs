//! A lean HTTP/1.1 path for subscription streams, the hub's dominant traffic.
//!
//! hyper keeps a read buffer and a header buffer (8 KiB each) for the whole
//! life of a connection; on a stream that lasts hours and carries a few
//! small events, that is most of what an idle subscriber costs. Here the
//! request head of a plain `GET /.well-known/mercure` is read with a small
//! buffer, handled by the same router as every other request (tokens, CORS,
//! errors: identical), and the response is written directly: the head once,
//! then each frame as a chunk. Buffers live only while a write is under way.
//! Anything else (other paths and methods, bodies, HTTP/2 prefaces,
//! pipelining) is handed to hyper with the bytes already read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::{Buf, Bytes};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tower::ServiceExt;

/// The subscribe path.
const PATH: &str = "/.well-known/mercure";
/// Most headers parsed here (a request with more goes to hyper, which
/// applies `--max-headers`).
const MAX_HEADERS: usize = 64;
/// Bytes of already-ready frames written in one go.
const MAX_BATCH: usize = 64 << 10;

/// What a connection's first request head may be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    /// Time to receive it whole (`--header-timeout`).
    pub(crate) timeout: Duration,
    /// Its largest size, request line included (`--max-header-bytes`).
    pub(crate) max_bytes: usize,
    /// Its most header fields (`--max-headers`).
    pub(crate) max_headers: usize,
}

/// What the start of a connection turned out to be.
pub(crate) enum Sniffed<IO> {
    /// A subscription request, served by [`serve_stream`].
    Stream(IO, Box<http::Request<Body>>),
    /// Anything else, with the bytes read so far put back in front.
    Other(Prefixed<IO>),
    /// A request head larger than allowed (answered 431).
    TooLarge(IO),
}

/// Reads the request head (bounded by `limits`) and decides who serves it;
/// a head not received within the time allowed is a `TimedOut` error.
pub(crate) async fn sniff<IO: AsyncRead + Unpin>(
    mut io: IO,
    limits: HeadLimits,
) -> io::Result<Sniffed<IO>> {
    let mut buf = Vec::with_capacity(512);
    let deadline = tokio::time::Instant::now() + limits.timeout;
    loop {
        match parse(&buf, &limits) {
            Parsed::Stream(request) => return Ok(Sniffed::Stream(io, request)),
            Parsed::Other => return Ok(Sniffed::Other(Prefixed::new(buf, io))),
            Parsed::TooLarge => return Ok(Sniffed::TooLarge(io)),
            Parsed::Partial => {}
        }
        buf.reserve(1024);
        let read = tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await;
        match read {
            Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

enum Parsed {
    Stream(Box<http::Request<Body>>),
    Other,
    TooLarge,
    Partial,
}

/// Parses what was read so far. Synchronous, so the header array lives on
/// the stack for the call only, not in every connection task's state.
fn parse(buf: &[u8], limits: &HeadLimits) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let slots = limits.max_headers.min(MAX_HEADERS);
    let mut req = httparse::Request::new(&mut headers[..slots]);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > limits.max_bytes => Parsed::TooLarge,
        // Pipelined bytes after the head are for hyper to handle.
        Ok(httparse::Status::Complete(len)) if len == buf.len() => {
            stream_request(&req).map_or(Parsed::Other, |r| Parsed::Stream(Box::new(r)))
        }
        Ok(httparse::Status::Partial) if buf.len() < limits.max_bytes => Parsed::Partial,
        Ok(httparse::Status::Partial) => Parsed::TooLarge,
        // Not HTTP/1 (an HTTP/2 preface), too many headers for here, or
        // pipelined: hyper decides.
        _ => Parsed::Other,
    }
}

/// The request as the router sees it, if it is a plain HTTP/1.1 subscription.
fn stream_request(req: &httparse::Request<'_, '_>) -> Option<http::Request<Body>> {
    let path = req.path?;
    let is_subscribe = path == PATH
        || path
            .strip_prefix(PATH)
            .is_some_and(|rest| rest.starts_with('?'));
    if req.method? != "GET" || req.version? != 1 || !is_subscribe {
        return None;
    }
    let mut builder = http::Request::builder()
        .method(http::Method::GET)
        .uri(path)
        .version(http::Version::HTTP_11);
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        // A body, an upgrade or an expectation is for hyper to handle.
        if matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "upgrade" | "expect"
        ) {
            return None;
        }
        builder = builder.header(h.name, h.value);
    }
    builder.body(Body::empty()).ok()
}

/// Serves one subscription request: the router answers, the head is
/// written, and the stream is handed to a task of its own (`done` travels
/// with it, so shutdown still waits for it).
pub(crate) async fn serve_stream<IO, D>(
    mut io: IO,
    req: Box<http::Request<Body>>,
    router: axum::Router,
    done: D,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    D: Send + 'static,
{
    // Boxed: the router's future is large and only needed until the head.
    let response = match Box::pin(router.oneshot(*req)).await {
        Ok(response) => response,
        Err(infallible) => match infallible {},
    };
    let (parts, body) = response.into_parts();
    let streaming = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v == "text/event-stream");
    let mut head = format!("HTTP/1.1 {}\r\n", parts.status).into_bytes();
    // This path frames the body itself (length or chunks) and always closes.
    let framing = [
        http::header::CONTENT_LENGTH,
        http::header::TRANSFER_ENCODING,
        http::header::CONNECTION,
    ];
    for (name, value) in &parts.headers {
        if framing.contains(name) {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    drop(parts);
    if !streaming {
        // An error: small and complete.
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        head.extend_from_slice(
            format!(
                "content-length: {}\r\nconnection: close\r\n\r\n",
                bytes.len()
            )
            .as_bytes(),
        );
        head.extend_from_slice(&bytes);
        let _ = io.write_all(&head).await;
        let _ = io.shutdown().await;
        return;
    }
    head.extend_from_slice(b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n");
    if io.write_all(&head).await.is_ok() {
        // The connection task's state was sized for the handshake, the head
        // and the router; the stream lives on in a task sized for itself.
        tokio::spawn(pump(io, body, done));
    }
}

/// Writes the body's frames as chunks until it ends or the client leaves.
async fn pump<IO: AsyncRead + AsyncWrite + Unpin, D>(mut io: IO, mut body: Body, _done: D) {
    let mut probe = [0u8; 32];
    loop {
        tokio::select! {
            frame = body.frame() => {
                let Some(first) = data(frame) else { break };
                if write_chunks(&mut io, first, &mut body).await.is_err() {
                    return;
                }
            }
            // The client hung up (or sent something, which a stream ignores).
            read = io.read(&mut probe) => if !matches!(read, Ok(n) if n > 0) { return },
        }
    }
    let _ = io.write_all(b"0\r\n\r\n").await;
    let _ = io.shutdown().await;
}

fn data(frame: Option<Result<http_body::Frame<Bytes>, axum::Error>>) -> Option<Bytes> {
    frame?.ok()?.into_data().ok()
}

/// Room in front of a chunk for its size line (16 hex digits and CRLF).
const SIZE_ROOM: usize = 18;

/// Writes `first` and every frame already ready after it as one chunk,
/// built in one buffer (the size line goes in the room left in front).
async fn write_chunks<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    first: Bytes,
    body: &mut Body,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(SIZE_ROOM + first.len() + 2);
    out.resize(SIZE_ROOM, 0);
    out.extend_from_slice(&first);
    drop(first);
    while out.len() - SIZE_ROOM < MAX_BATCH {
        match body.frame().now_or_never().map(data) {
            Some(Some(more)) => out.extend_from_slice(&more),
            _ => break,
        }
    }
    let len = out.len() - SIZE_ROOM;
    let start = put_size_line(&mut out[..SIZE_ROOM], len);
    out.extend_from_slice(b"\r\n");
    io.write_all(&out[start..]).await
}

/// Writes `LEN-IN-HEX\r\n` at the end of `room`; returns where it starts.
fn put_size_line(room: &mut [u8], mut len: usize) -> usize {
    let mut at = room.len() - 2;
    room[at..].copy_from_slice(b"\r\n");
    loop {
        at -= 1;
        room[at] = b"0123456789abcdef"[len % 16];
        len /= 16;
        if len == 0 {
            return at;
        }
    }
}

/// An IO with bytes already read put back in front of it.
pub(crate) struct Prefixed<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO> Prefixed<IO> {
    /// `io` with `prefix`, bytes already read from it, put back in front.
    pub(super) fn new(prefix: Vec<u8>, io: IO) -> Prefixed<IO> {
        Prefixed {
            prefix: Bytes::from(prefix),
            io,
        }
    }

    /// Whether the connection starts with HTTP/2's preface (h2c with prior
    /// knowledge, or h2 after ALPN): the sniffer stops reading at its
    /// version, so that much of it is always there.
    pub(crate) fn is_http2(&self) -> bool {
        self.prefix.starts_with(b"PRI * HTTP/2")
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_lines() {
        for (len, want) in [
            (0usize, "0\r\n"),
            (9, "9\r\n"),
            (255, "ff\r\n"),
            (65536, "10000\r\n"),
        ] {
            let mut room = [0u8; SIZE_ROOM];
            let start = put_size_line(&mut room, len);
            assert_eq!(&room[start..], want.as_bytes());
        }
    }

    const LIMITS: HeadLimits = HeadLimits {
        timeout: Duration::from_secs(1),
        max_bytes: 16 << 10,
        max_headers: 100,
    };

    async fn sniffed(bytes: &[u8]) -> Sniffed<&[u8]> {
        sniff(bytes, LIMITS).await.unwrap()
    }

    #[tokio::test]
    async fn only_plain_subscriptions_take_the_lean_path() {
        let stream =
            b"GET /.well-known/mercure?topic=a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 5\r\n\r\n";
        match sniffed(stream).await {
            Sniffed::Stream(_, req) => {
                assert_eq!(req.uri(), "/.well-known/mercure?topic=a");
                assert_eq!(req.headers()["last-event-id"], "5");
            }
            Sniffed::Other(_) | Sniffed::TooLarge(_) => panic!("a subscription"),
        }
        for other in [
            &b"POST /.well-known/mercure HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"[..],
            b"GET /.well-known/mercure/subscriptions HTTP/1.1\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\n\r\n",
            b"GET /.well-known/mercure HTTP/1.0\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET /.well-known/mercure HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
        ] {
            match sniffed(other).await {
                Sniffed::Stream(..) | Sniffed::TooLarge(_) => {
                    panic!("{:?} must go to hyper", String::from_utf8_lossy(other))
                }
                Sniffed::Other(mut prefixed) => {
                    assert_eq!(prefixed.is_http2(), other.starts_with(b"PRI"));
                    let mut replay = Vec::new();
                    prefixed.read_to_end(&mut replay).await.unwrap();
                    assert_eq!(replay, other, "every byte is handed on");
                }
            }
        }
    }

    #[tokio::test]
    async fn heads_over_the_limits() {
        let mut big = b"GET /.well-known/mercure?topic=a HTTP/1.1\r\nX: ".to_vec();
        big.resize(LIMITS.max_bytes + 10, b'x');
        big.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(sniffed(&big).await, Sniffed::TooLarge(_)), "whole");
        let partial = &big[..big.len() - 4];
        assert!(
            matches!(sniffed(partial).await, Sniffed::TooLarge(_)),
            "partial"
        );
        // Too many fields for here: hyper counts them against --max-headers.
        let mut many = b"GET /.well-known/mercure?topic=a HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(sniffed(&many).await, Sniffed::Other(_)));
        let few = HeadLimits {
            max_headers: 2,
            ..LIMITS
        };
        let three = b"GET /.well-known/mercure HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
        assert!(matches!(
            sniff(&three[..], few).await.unwrap(),
            Sniffed::Other(_)
        ));
        // A client that sends nothing (its end stays open).
        let (_client, server) = tokio::io::duplex(64);
        let quick = HeadLimits {
            timeout: Duration::from_millis(10),
            ..LIMITS
        };
        let timed_out = sniff(server, quick).await.err().map(|e| e.kind());
        assert_eq!(timed_out, Some(io::ErrorKind::TimedOut));
    }
}
