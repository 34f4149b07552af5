//! Hostile clients at the wire. Here, HTTP/1.1 request framing over raw
//! TCP: each form of request smuggling or malformed length gets one clear
//! answer (or the connection is closed after it), never a second request
//! read from the body, and the hub goes on serving everyone else. In the
//! submodules: hostile input over every protocol ([`input`]), HTTP/2 at
//! the frame level ([`http2`]) and many QUIC connections and streams
//! ([`quic`]).

mod http2;
mod http2_rules;
mod input;
mod quic;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::child_hub::ChildHub;
use crate::common::remote::{open_stream, post_form};
use crate::common::{publisher_token, SseClient, TestHub, SECRET};

/// Longest wait for the hub to answer and close.
const WAIT: Duration = Duration::from_secs(10);

/// The form body of a valid update.
const BODY: &str = "topic=https://example.com/wire&data=hi";

/// Sends `request` on a new connection and reads until the hub closes it.
async fn exchange(hub: &TestHub, request: &[u8]) -> String {
    let addr = hub.base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("the hub closes the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A publish request's head up to its framing headers (which each case
/// adds), asking the hub to close the connection after its answer.
fn head() -> String {
    format!(
        "POST /.well-known/mercure HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/x-www-form-urlencoded\r\n",
        publisher_token()
    )
}

/// The status codes of every response in `answer`.
fn statuses(answer: &str) -> Vec<u16> {
    answer
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| answer.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_read_as_chunked_and_closed() {
    let hub = TestHub::default().await;
    // Content-Length says 4, the chunked body holds the whole update: the
    // chunked framing wins (RFC 9112, 6.3) and the connection is closed.
    let request = format!(
        "{}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{BODY}\r\n0\r\n\r\n",
        head(),
        BODY.len()
    );
    let answer = exchange(&hub, request.as_bytes()).await;
    assert_eq!(statuses(&answer), [200], "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    // A request hidden after an empty chunked body is never answered.
    let request = format!(
        "{}Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: h\r\n\r\n",
        head(),
        BODY.len()
    );
    let answer = exchange(&hub, request.as_bytes()).await;
    assert_eq!(statuses(&answer), [400], "{answer}");
}

#[tokio::test]
async fn malformed_lengths_and_folded_headers_are_400() {
    let hub = TestHub::default().await;
    let n = BODY.len();
    for framing in [
        format!("Content-Length: {n}\r\nContent-Length: 3\r\n"),
        format!("Content-Length: {n}, 3\r\n"),
        "Content-Length: -1\r\n".to_string(),
        "Content-Length: 99999999999999999999999\r\n".to_string(),
        "Content-Length: 0x10\r\n".to_string(),
        format!("X-Folded: a\r\n b\r\nContent-Length: {n}\r\n"),
        "Transfer-Encoding: chunked, gzip\r\n".to_string(),
    ] {
        let request = format!("{}{framing}\r\n{BODY}", head());
        let answer = exchange(&hub, request.as_bytes()).await;
        assert_eq!(statuses(&answer), [400], "{framing:?}: {answer}");
    }
    // None of them stored anything; a well-formed publish still works.
    let request = format!("{}Content-Length: {}\r\n\r\n{BODY}", head(), BODY.len());
    let answer = exchange(&hub, request.as_bytes()).await;
    assert_eq!(statuses(&answer), [200], "{answer}");
    hub.publish_ok(&[("topic", "https://example.com/wire"), ("data", "fence")])
        .await;
    let mut replay = hub.resume(&["https://example.com/wire"], "earliest").await;
    assert_eq!(replay.next().await.data, "hi");
    assert_eq!(
        replay.next().await.data,
        "fence",
        "only the well-formed update was stored"
    );
}

/// The topic the streams open through a flood listen on.
const WATCHED: &str = "urn:wire";

/// How much a hub's resident memory may grow through a flood.
const RSS_GROWTH_KIB: u64 = 32 << 10;

/// A hub as a child process, so that its memory is its own to measure,
/// with its TLS and QUIC port, anonymous subscribers and the test secret
/// for publishers.
struct TlsChild {
    hub: ChildHub,
    /// Its HTTPS address (TCP, and UDP for HTTP/3).
    tls: SocketAddr,
    /// Its certificate.
    pem: Vec<u8>,
    /// An HTTP/2 connection to its plain port, opened at the start: the
    /// hub may be full when an update must be published.
    publisher: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TlsChild {
    /// Starts one with `args` added.
    async fn start(args: &[&str]) -> TlsChild {
        let dir = tempfile::tempdir().unwrap();
        let base = [
            "--store",
            "memory",
            "--anonymous",
            "--publisher-jwt-key",
            SECRET,
        ];
        let mut hub = ChildHub::start(dir.path(), &[&base[..], args].concat(), &[]).await;
        let tls = hub.tls_addr();
        let pem = std::fs::read(dir.path().join("ssehub-data/tls/cert.pem")).unwrap();
        let publisher = reqwest::Client::builder()
            .http2_prior_knowledge()
            .pool_idle_timeout(None)
            .build()
            .unwrap();
        let opened = publisher.get(format!("{}/healthz", hub.base())).send();
        assert!(opened.await.unwrap().status().is_success());
        TlsChild {
            hub,
            tls,
            pem,
            publisher,
            _dir: dir,
        }
    }

    /// A stream to [`WATCHED`] over plain HTTP/1.1, to see that a flood
    /// leaves the others alone.
    async fn watch(&self) -> SseClient {
        open_stream(&self.hub.url(), &[WATCHED], None, None).await
    }

    /// Asserts that `watcher` receives an update published now (over the
    /// connection opened at the start), and that the hub's memory grew by
    /// less than [`RSS_GROWTH_KIB`] since `rss_before`.
    async fn assert_unharmed(&self, watcher: &mut SseClient, rss_before: u64, flood: &str) {
        let (url, token) = (self.hub.url(), publisher_token());
        let form = [("topic", WATCHED), ("data", "after")];
        let published = post_form(&self.publisher, &url, Some(&token), &form);
        let (status, id) = published.await.unwrap();
        assert_eq!(status, reqwest::StatusCode::OK, "{id}");
        assert_eq!(
            watcher.next().await.last_event_id,
            id,
            "a stream open through the {flood} receives what comes after"
        );
        let rss = self.hub.rss_kib();
        assert!(
            rss < rss_before + RSS_GROWTH_KIB,
            "the hub grew from {rss_before} KiB to {rss} KiB through the {flood}"
        );
    }
}
