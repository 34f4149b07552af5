//! Hostile HTTP/1.1 request framing at the wire, over raw TCP: each form of
//! request smuggling or malformed length gets one clear answer (or the
//! connection is closed after it), never a second request read from the
//! body, and the hub goes on serving everyone else.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{publisher_token, TestHub};

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
