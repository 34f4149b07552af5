//! Just enough HTTP/1.1 for a load generator: write a request, read the
//! response head, and undo chunked transfer encoding on the body.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// A parsed response head.
pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) chunked: bool,
    /// Its `Content-Encoding`, if any.
    pub(crate) content_encoding: Option<String>,
}

/// Reads until the end of the response head; returns it and any body bytes
/// read past it.
pub(crate) async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> io::Result<(Head, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head =
                std::str::from_utf8(&buf[..end]).map_err(|_| bad("response head is not UTF-8"))?;
            let mut lines = head.split("\r\n");
            let status = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("no status line"))?;
            let (mut chunked, mut content_encoding) = (false, None);
            for line in lines {
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
                match name.as_str() {
                    "transfer-encoding" => {
                        chunked |= value.to_ascii_lowercase().contains("chunked")
                    }
                    "content-encoding" => content_encoding = Some(value.to_ascii_lowercase()),
                    _ => {}
                }
            }
            let rest = buf[end + 4..].to_vec();
            return Ok((
                Head {
                    status,
                    chunked,
                    content_encoding,
                },
                rest,
            ));
        }
        if buf.len() > 64 << 10 {
            return Err(bad("response head too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Incremental decoder of a chunked body.
#[derive(Default)]
pub(crate) struct Dechunker {
    /// Bytes left in the current chunk.
    left: usize,
    /// Partial size line, or pending CRLF after a chunk.
    pending: Vec<u8>,
    /// Expecting the CRLF that ends a chunk's data.
    crlf: bool,
}

impl Dechunker {
    /// Appends the body bytes in `input` to `out`.
    pub(crate) fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        while !input.is_empty() {
            if self.left > 0 {
                let n = self.left.min(input.len());
                out.extend_from_slice(&input[..n]);
                self.left -= n;
                input = &input[n..];
                if self.left == 0 {
                    self.crlf = true;
                }
                continue;
            }
            if self.crlf {
                self.pending.push(input[0]);
                input = &input[1..];
                if self.pending.len() == 2 {
                    self.pending.clear();
                    self.crlf = false;
                }
                continue;
            }
            match input.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.pending.extend_from_slice(&input[..i]);
                    input = &input[i + 1..];
                    let line =
                        std::str::from_utf8(&self.pending).map_err(|_| bad("bad chunk size"))?;
                    let size = line.trim().split(';').next().unwrap_or("");
                    self.left =
                        usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
                    self.pending.clear();
                    if self.left == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                None => {
                    self.pending.extend_from_slice(input);
                    input = &[];
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_across_any_split() {
        let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n";
        for split in 0..body.len() {
            let mut d = Dechunker::default();
            let mut out = Vec::new();
            d.feed(&body[..split], &mut out).unwrap();
            d.feed(&body[split..], &mut out).unwrap();
            assert_eq!(out, b"hello, world", "split at {split}");
        }
        let mut d = Dechunker::default();
        assert!(
            d.feed(b"0\r\n\r\n", &mut Vec::new()).is_err(),
            "the last chunk ends the stream"
        );
    }
}
