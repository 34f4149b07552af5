//! HTTP/2 chosen by ALPN on the TLS port: the client's connection preface
//! is checked before the HTTP/2 server takes the connection. Anything else (an HTTP/1.1
//! request, garbage) is a connection error of type `PROTOCOL_ERROR` (RFC
//! 9113, 3.4): it is answered with a GOAWAY frame and a clean close (TLS
//! `close_notify`, then the end of the stream), never with an HTTP/1.1
//! response nor a reset.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::h2::frame::{self, Reason, PREFACE};
use super::http1_stream::Prefixed;

/// What a connection that chose HTTP/2 began with.
pub(super) enum Preface<IO> {
    /// The preface, put back in front for the HTTP/2 server to read.
    Valid(Prefixed<IO>),
    /// Something else: answer it with [`refusal`].
    Invalid(IO),
}

/// Reads the preface, stopping at the first byte that differs from it; a
/// preface not received within `timeout` is a `TimedOut` error.
pub(super) async fn read<IO: AsyncRead + Unpin>(
    mut io: IO,
    timeout: Duration,
) -> io::Result<Preface<IO>> {
    let mut read = [0u8; PREFACE.len()];
    let mut len = 0;
    let deadline = tokio::time::Instant::now() + timeout;
    while len < PREFACE.len() {
        let n = tokio::time::timeout_at(deadline, io.read(&mut read[len..]))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
        if read[..len] != PREFACE[..len] {
            return Ok(Preface::Invalid(io));
        }
    }
    Ok(Preface::Valid(Prefixed::new(read.to_vec(), io)))
}

/// The GOAWAY frame answering an invalid preface: no stream processed,
/// `PROTOCOL_ERROR`, the reason as debug data.
pub(super) fn refusal() -> Vec<u8> {
    let mut goaway = Vec::new();
    let reason = b"invalid HTTP/2 connection preface";
    frame::write_goaway(&mut goaway, 0, Reason::PROTOCOL_ERROR, reason);
    goaway
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn the_preface_is_handed_on_whole() {
        let mut sent = PREFACE.to_vec();
        sent.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
        match read(&sent[..], WAIT).await.unwrap() {
            Preface::Valid(mut prefixed) => {
                assert!(prefixed.is_http2());
                let mut replay = Vec::new();
                prefixed.read_to_end(&mut replay).await.unwrap();
                assert_eq!(replay, sent, "every byte is handed on");
            }
            Preface::Invalid(_) => panic!("a valid preface"),
        }
    }

    #[tokio::test]
    async fn anything_else_is_invalid_at_its_first_wrong_byte() {
        for sent in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
            b"P",
        ] {
            let (mut client, server) = tokio::io::duplex(64);
            tokio::io::AsyncWriteExt::write_all(&mut client, sent)
                .await
                .unwrap();
            // The client's end stays open: a mismatch is seen without
            // waiting for all 24 bytes.
            let got = read(server, WAIT).await;
            let invalid = matches!(got, Ok(Preface::Invalid(_)));
            let cut_short = sent.len() < PREFACE.len() && PREFACE.starts_with(sent);
            if cut_short {
                let kind = got.err().map(|e| e.kind());
                assert_eq!(kind, Some(io::ErrorKind::TimedOut), "{sent:?}");
            } else {
                assert!(invalid, "{sent:?}");
            }
        }
    }

    #[test]
    fn the_refusal_is_one_goaway_frame() {
        let goaway = refusal();
        let length = (usize::from(goaway[1]) << 8) | usize::from(goaway[2]);
        assert_eq!((goaway[0], length + 9), (0, goaway.len()));
        assert_eq!(&goaway[3..5], &[frame::kind::GOAWAY, 0], "type and flags");
        assert_eq!(&goaway[5..13], &[0; 8], "stream 0, last stream 0");
        assert_eq!(&goaway[13..17], &Reason::PROTOCOL_ERROR.0.to_be_bytes());
    }
}
