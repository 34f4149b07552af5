//! Compressed streams: real streams of a real hub over HTTP/1.1 (plain and
//! on TLS), HTTP/2 and HTTP/3, decoded with zstd and gzip, against the
//! same stream uncompressed; negotiation (only clients that ask), `Vary`,
//! the clean end (gzip's trailer checked), and curl `--compressed`.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use http::StatusCode;
use ssehub::proto::sse::{ParsedEvent, Parser};
use tokio::io::AsyncReadExt;

use crate::common::https::{
    cert_pem, publish_req, subscribe_req, tls_addr, tls_hub_with, Client, Proto, Req, Res,
};
use crate::common::*;

/// The topic every update of these tests goes to.
const TOPIC: &str = "urn:compressed";

/// Updates published before the streams open (replayed), then after.
const BEFORE: usize = 40;
const AFTER: usize = 260;

/// How a test reaches the hub.
#[derive(Debug, Clone, Copy)]
enum Transport {
    /// HTTP/1.1 on the plain port (the lean stream path).
    Plain,
    /// The TLS port (and QUIC for HTTP/3).
    Tls(Proto),
}

/// A hub with its TLS and QUIC ports, anonymous subscribers, heartbeats
/// every 20 ms (so streams carry many), and `adjust` applied.
async fn hub_with(adjust: impl FnOnce(&mut ssehub::config::Options)) -> TestHub {
    tls_hub_with(|o| {
        o.access.anonymous = Some(true);
        o.stream.heartbeat = Some("20ms".parse().unwrap());
        adjust(o);
    })
    .await
}

/// An update's data: JSON, on one line or (every fifth) on several.
fn json(i: usize) -> String {
    let body = format!(
        "{{\"id\":{i},\"user\":{{\"name\":\"user-{}\",\"plan\":\"pro\"}},\"items\":[{},{},{}],\"note\":\"update number {i} of the stream\"}}",
        i % 17,
        i * 3,
        i * 5 + 1,
        i % 11
    );
    if i.is_multiple_of(5) {
        body.replace(',', ",\n")
    } else {
        body
    }
}

/// Publishes update `i` and returns its id.
async fn publish(client: &mut Client, i: usize) -> String {
    let res = client
        .send(publish_req(&[TOPIC], &[("data", &json(i))]))
        .await;
    assert_eq!(res.status, StatusCode::OK);
    res.text().await
}

/// A subscription of [`TOPIC`] replaying all history, asking for
/// `accept_encoding` if set.
fn subscribe(accept_encoding: Option<&str>, extra_query: &str) -> Req<'static> {
    let mut req = subscribe_req(&[TOPIC], None, Some("earliest"));
    req.path_and_query.push_str(extra_query);
    if let Some(coding) = accept_encoding {
        req.headers.push(("accept-encoding", coding.to_string()));
    }
    req
}

/// A client of `hub` over one transport (over TLS, one connection that
/// every request of the test shares, kept open as long as this lives).
struct Conn {
    base: String,
    http: reqwest::Client,
    tls: Option<Client>,
}

impl Conn {
    async fn new(hub: &TestHub, transport: Transport) -> Conn {
        let tls = match transport {
            Transport::Plain => None,
            Transport::Tls(proto) => Some(Client::new(proto, hub).await),
        };
        Conn {
            base: hub.base.clone(),
            http: hub.http.clone(),
            tls,
        }
    }

    async fn send(&mut self, req: Req<'_>) -> Res {
        if let Some(client) = &mut self.tls {
            return client.send(req).await;
        }
        let url = format!("{}{}", self.base, req.path_and_query);
        let mut r = self.http.request(req.method, url);
        for (k, v) in &req.headers {
            r = r.header(*k, v);
        }
        Res::from_reqwest(r.send().await.unwrap())
    }
}

/// A stream decoded as it comes, keeping every byte it received.
struct Decoding {
    res: Res,
    wire: Vec<u8>,
    /// What it decoded to so far.
    plain: Vec<u8>,
    decoder: Decoder,
    parser: Parser,
    events: Vec<ParsedEvent>,
}

/// An incremental decoder of one content coding.
enum Decoder {
    Identity(Vec<u8>),
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

impl Decoder {
    /// For a response's `Content-Encoding`.
    fn new(encoding: Option<&str>) -> Decoder {
        match encoding {
            None => Decoder::Identity(Vec::new()),
            Some("gzip") => Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(Vec::new()))),
            Some("zstd") => Decoder::Zstd(zstd::stream::write::Decoder::new(Vec::new()).unwrap()),
            Some(other) => panic!("unexpected Content-Encoding {other}"),
        }
    }

    /// Decodes `chunk`; returns what it decoded to so far and forgets it.
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let out = match self {
            Decoder::Identity(out) => {
                out.extend_from_slice(chunk);
                out
            }
            Decoder::Gzip(d) => {
                d.write_all(chunk).expect("valid gzip");
                d.flush().expect("valid gzip");
                d.get_mut()
            }
            Decoder::Zstd(d) => {
                d.write_all(chunk).expect("valid zstd");
                d.flush().expect("valid zstd");
                d.get_mut()
            }
        };
        std::mem::take(out)
    }
}

impl Decoding {
    fn new(res: Res) -> Decoding {
        assert_eq!(res.status, StatusCode::OK);
        let encoding = res
            .headers
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_string());
        Decoding {
            res,
            wire: Vec::new(),
            plain: Vec::new(),
            decoder: Decoder::new(encoding.as_deref()),
            parser: Parser::new(),
            events: Vec::new(),
        }
    }

    /// Reads one chunk; `false` once the body ended.
    async fn read(&mut self) -> bool {
        let Some(chunk) = self.res.next_chunk().await else {
            return false;
        };
        self.wire.extend_from_slice(&chunk);
        let plain = self.decoder.feed(&chunk);
        self.events.extend(self.parser.feed(&plain));
        self.plain.extend_from_slice(&plain);
        true
    }

    /// Reads until `n` events came; panics if the body ends first.
    async fn until(&mut self, n: usize) {
        while self.events.len() < n {
            assert!(
                self.read().await,
                "ended after {} events",
                self.events.len()
            );
        }
    }

    /// Reads to the end of the body; returns every byte it carried,
    /// decoded in one go (which checks that the stream ended as its coding
    /// requires: gzip's trailer, whole zstd frames).
    async fn finish(mut self) -> Vec<u8> {
        while self.read().await {}
        match self.decoder {
            Decoder::Identity(_) => self.wire,
            Decoder::Gzip(_) => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&self.wire[..])
                    .read_to_end(&mut out)
                    .expect("a whole gzip stream, trailer included");
                out
            }
            Decoder::Zstd(_) => zstd::decode_all(&self.wire[..]).expect("whole zstd frames"),
        }
    }
}

/// The frames of a decoded stream that are events (not comments, not
/// `retry:`), byte for byte.
fn event_frames(stream: &[u8]) -> Vec<String> {
    String::from_utf8(stream.to_vec())
        .unwrap()
        .split_inclusive("\n\n")
        .filter(|f| f.starts_with("id: "))
        .map(String::from)
        .collect()
}

/// Streams compressed with each coding and one uncompressed, replaying
/// history then following live updates across heartbeats over
/// `transport`, decode to exactly the uncompressed stream's events; the
/// hub's shutdown ends them cleanly (farewell, then gzip's trailer).
async fn compressed_streams_over(transport: Transport) {
    let mut hub = hub_with(|_| {}).await;
    let mut publisher = Client::new(Proto::H2, &hub).await;
    let mut ids = Vec::new();
    for i in 0..BEFORE {
        ids.push(publish(&mut publisher, i).await);
    }
    let mut streams = Vec::new();
    let mut conn = Conn::new(&hub, transport).await;
    for coding in [None, Some("gzip"), Some("zstd")] {
        let res = conn.send(subscribe(coding, "")).await;
        assert_eq!(
            res.headers
                .get("content-encoding")
                .map(|v| v.to_str().unwrap()),
            coding,
            "{transport:?}"
        );
        let vary: Vec<_> = res.headers.get_all("vary").iter().collect();
        assert!(
            vary.iter()
                .any(|v| v.to_str().unwrap().contains("accept-encoding")),
            "Vary names Accept-Encoding: {vary:?}"
        );
        streams.push(Decoding::new(res));
    }
    for i in BEFORE..BEFORE + AFTER {
        ids.push(publish(&mut publisher, i).await);
        if i.is_multiple_of(50) {
            // Heartbeats between updates.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for stream in &mut streams {
        stream.until(ids.len()).await;
        let got: Vec<_> = stream.events.iter().map(|e| &e.last_event_id).collect();
        assert_eq!(got, ids.iter().collect::<Vec<_>>(), "{transport:?}");
        for (i, e) in stream.events.iter().enumerate() {
            assert_eq!(e.data, json(i), "{transport:?}");
        }
    }
    hub.shutdown().await;
    let mut decoded = Vec::new();
    for stream in streams {
        decoded.push(stream.finish().await);
    }
    drop(conn);
    let plain = event_frames(&decoded[0]);
    assert_eq!(plain.len(), ids.len());
    for (stream, coding) in decoded[1..].iter().zip(["gzip", "zstd"]) {
        assert_eq!(event_frames(stream), plain, "{coding} over {transport:?}");
        let text = String::from_utf8_lossy(stream);
        assert!(text.starts_with(":\n\n"), "the open comment first");
        assert!(
            text.matches(":\n\n").count() > 1,
            "heartbeats between updates ({coding} over {transport:?})"
        );
        assert!(
            text.split_inclusive("\n\n")
                .last()
                .is_some_and(|f| f.starts_with("retry: ")),
            "the farewell last ({coding} over {transport:?})"
        );
    }
}

#[tokio::test]
async fn compressed_streams_over_plain_http1() {
    compressed_streams_over(Transport::Plain).await;
}

#[tokio::test]
async fn compressed_streams_over_http1_on_tls() {
    compressed_streams_over(Transport::Tls(Proto::H1)).await;
}

#[tokio::test]
async fn compressed_streams_over_http2() {
    compressed_streams_over(Transport::Tls(Proto::H2)).await;
}

#[tokio::test]
async fn compressed_streams_over_http3() {
    compressed_streams_over(Transport::Tls(Proto::H3)).await;
}

/// The `Content-Encoding` a stream asking with `accept_encoding` (and
/// `extra_query`) gets from `hub` over HTTP/1.1 and HTTP/2, the same on
/// both; asserts its body is what that says (an open comment).
async fn answered(
    hub: &TestHub,
    accept_encoding: Option<&str>,
    extra_query: &str,
) -> Option<String> {
    let mut seen = Vec::new();
    for transport in [Transport::Plain, Transport::Tls(Proto::H2)] {
        let res = Conn::new(hub, transport)
            .await
            .send(subscribe(accept_encoding, extra_query))
            .await;
        let encoding = res
            .headers
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_string());
        let mut stream = Decoding::new(res);
        while stream.plain.is_empty() {
            assert!(stream.read().await, "the stream opens");
        }
        assert!(stream.plain.starts_with(b":"), "an open comment, decoded");
        seen.push(encoding);
    }
    assert_eq!(seen[0], seen[1], "the same over HTTP/1.1 and HTTP/2");
    seen.swap_remove(0)
}

#[tokio::test]
async fn only_clients_that_ask_get_compression() {
    let hub = hub_with(|_| {}).await;
    for (asked, want) in [
        (None, None),
        (Some("identity"), None),
        (Some("*"), None),
        (Some("br, deflate"), None),
        (Some("gzip;q=0, zstd;q=0"), None),
        (Some("gzip, deflate, br, zstd"), Some("zstd")),
        (Some("zstd;q=0.5, gzip"), Some("gzip")),
        (Some("gzip"), Some("gzip")),
    ] {
        assert_eq!(
            answered(&hub, asked, "").await.as_deref(),
            want,
            "Accept-Encoding: {asked:?}"
        );
    }
    // Streams naming their matchers write per-stream lines: not compressed.
    assert_eq!(
        answered(&hub, Some("gzip, zstd"), "&ssehub_matched=1").await,
        None
    );
}

#[tokio::test]
async fn vary_names_accept_encoding_beside_cors() {
    let hub = hub_with(|_| {}).await;
    let mut req = subscribe(None, "");
    req.headers.push(("origin", "https://app.example".into()));
    let res = Client::new(Proto::H1, &hub).await.send(req).await;
    let vary = res
        .headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(", ");
    assert!(vary.contains("accept-encoding"), "{vary}");
    assert!(vary.contains("origin"), "{vary}");
    assert!(res.headers.get("content-encoding").is_none());
}

#[tokio::test]
async fn compression_off_never_compresses() {
    let hub = hub_with(|o| o.stream.compression = Some("off".into())).await;
    assert_eq!(answered(&hub, Some("gzip, zstd"), "").await, None);
    let res = Conn::new(&hub, Transport::Plain)
        .await
        .send(subscribe(Some("gzip"), ""))
        .await;
    assert!(
        !res.headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("accept-encoding")),
        "nothing varies on Accept-Encoding"
    );
}

/// curl `--compressed` (asking as it does: zstd; or gzip only) over
/// HTTP/1.1 and HTTP/2: it decodes every update, and exits successfully
/// when the hub ends the stream at shutdown (curl checks gzip's trailer).
async fn curl_decodes(http2: bool, accept_encoding: Option<&str>) {
    let mut hub = hub_with(|_| {}).await;
    let mut publisher = Client::new(Proto::H2, &hub).await;
    let mut ids = Vec::new();
    for i in 0..BEFORE {
        ids.push(publish(&mut publisher, i).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert_pem(&hub)).unwrap();
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["--compressed", "-sS", "-N", "--max-time", "60"])
        .args(["-H", "Last-Event-ID: earliest"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(coding) = accept_encoding {
        cmd.args(["-H", &format!("Accept-Encoding: {coding}")]);
    }
    let query = format!("/.well-known/mercure?{}", topic_query(&[TOPIC]));
    if http2 {
        let port = tls_addr(&hub).port();
        cmd.args(["--http2", "--cacert"])
            .arg(&ca)
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .arg(format!("https://localhost:{port}{query}"));
    } else {
        cmd.arg(format!("{}{query}", hub.base));
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => panic!("curl cannot run ({e}): this test needs it (Debian package curl; scripts/install-deps.sh installs it)"),
    };
    for i in BEFORE..BEFORE + AFTER {
        ids.push(publish(&mut publisher, i).await);
    }
    let mut stdout = child.stdout.take().unwrap();
    let mut parser = Parser::new();
    let mut events = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    while events.len() < ids.len() {
        let n = tokio::time::timeout(Duration::from_secs(5), stdout.read(&mut buf))
            .await
            .expect("curl prints within 5 s")
            .unwrap();
        assert!(n > 0, "curl ended after {} events", events.len());
        events.extend(parser.feed(&buf[..n]));
    }
    hub.shutdown().await;
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).await.unwrap();
    events.extend(parser.feed(&rest));
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("curl exits once the stream ends")
        .unwrap();
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: Vec<_> = events.iter().map(|e| e.last_event_id.clone()).collect();
    assert_eq!(got, ids);
    assert!(events.iter().enumerate().all(|(i, e)| e.data == json(i)));
    assert!(parser.retry().is_some(), "the farewell came through");
}

#[tokio::test]
async fn curl_compressed_zstd_over_http1() {
    curl_decodes(false, None).await;
}

#[tokio::test]
async fn curl_compressed_gzip_over_http1() {
    curl_decodes(false, Some("gzip")).await;
}

#[tokio::test]
async fn curl_compressed_zstd_over_http2() {
    curl_decodes(true, None).await;
}

#[tokio::test]
async fn curl_compressed_gzip_over_http2() {
    curl_decodes(true, Some("gzip")).await;
}
