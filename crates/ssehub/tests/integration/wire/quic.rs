//! Many QUIC connections and streams: connections over `--max-connections`
//! are refused before their handshake, one connection's requests are taken
//! up `--max-concurrent-streams` at a time, the hub's memory stays bounded
//! and every other client is served.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::future::join_all;
use h3::client::{RequestStream, SendRequest};
use http::StatusCode;
use ssehub::proto::sse::Parser;

use super::{TlsChild, WATCHED};
use crate::common::https::{h3_connect, quic_endpoint};
use crate::common::topic_query;

/// The longest a test waits for an answer: on a loaded machine, a UDP
/// datagram lost on loopback waits for QUIC's retransmission backoff.
const WAIT: Duration = Duration::from_secs(30);

type Send = SendRequest<h3_quinn::OpenStreams, Bytes>;
type Stream = RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// `GET path` on `send`: the stream, once its answer's head came.
async fn get(send: &mut Send, addr: SocketAddr, path: &str) -> (StatusCode, Stream) {
    let req = http::Request::get(format!("https://localhost:{}{path}", addr.port()))
        .body(())
        .unwrap();
    let mut stream = send.send_request(req).await.unwrap();
    stream.finish().await.unwrap();
    let res = tokio::time::timeout(WAIT, stream.recv_response())
        .await
        .expect("an answer")
        .unwrap();
    (res.status(), stream)
}

/// A connection to `addr` on which `GET /healthz` was answered 200, held
/// open by what is returned; or how the hub refused it.
async fn served(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
) -> Result<(quinn::Connection, Send), quinn::ConnectionError> {
    let conn = endpoint.connect(addr, "localhost").unwrap().await?;
    let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
        .await
        .unwrap();
    tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
    let (status, _) = get(&mut send, addr, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    Ok((conn, send))
}

/// Connections held at once.
const CONNECTIONS: usize = 500;
/// Connections opened at once: clients arrive in waves, not all in the
/// same millisecond, which would overflow the UDP buffers of loopback and
/// leave handshakes to QUIC's retransmission backoff.
const WAVE: usize = 10;
/// `--max-connections` of the hub they are opened to.
const ADMITTED: usize = 300;
/// What a QUIC connection held open may cost the hub, on top of the
/// growth allowed to a flood: the state of quinn, rustls and h3 (about
/// 130 KiB each, measured).
const QUIC_CONNECTION_KIB: u64 = 256;

#[tokio::test]
async fn many_quic_connections_are_served_or_refused() {
    let _heavy = crate::common::heavy().await;
    let admitted = ADMITTED.to_string();
    let child = TlsChild::start(&["--max-connections", &admitted]).await;
    let mut watcher = child.watch().await;
    let rss_before = child.hub.rss_kib();
    let endpoint = quic_endpoint(&child.pem);
    let mut results = Vec::new();
    for _ in 0..CONNECTIONS / WAVE {
        results.extend(join_all((0..WAVE).map(|_| served(&endpoint, child.tls))).await);
    }
    let (held, refused): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    for refusal in &refused {
        let refusal = refusal.as_ref().err().unwrap();
        assert!(
            matches!(refusal, quinn::ConnectionError::ConnectionClosed(close)
                if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED),
            "refused before the handshake: {refusal}"
        );
    }
    // One place is the watcher's.
    assert!(
        held.len() < ADMITTED && refused.len() > CONNECTIONS - ADMITTED,
        "{} served, {} refused",
        held.len(),
        refused.len()
    );
    let held_kib = u64::try_from(held.len()).unwrap() * QUIC_CONNECTION_KIB;
    child
        .assert_unharmed(&mut watcher, rss_before + held_kib, "QUIC connections")
        .await;
    // Their places come back as they close.
    for (conn, _) in held.into_iter().flatten() {
        conn.close(0u32.into(), b"done");
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Err(e) = served(&endpoint, child.tls).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no place came back: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `--max-concurrent-streams` of the hub.
const STREAMS_AT_ONCE: usize = 100;
/// Requests sent at once on one connection.
const REQUESTS: usize = 3000;
/// Streams that stay open asked for at once on one connection.
const SUBSCRIPTIONS: usize = 1000;

/// The next event's data on `stream`, read as SSE.
async fn next_data(stream: &mut Stream) -> String {
    let mut parser = Parser::new();
    loop {
        let mut chunk = tokio::time::timeout(WAIT, stream.recv_data())
            .await
            .expect("an event")
            .unwrap()
            .expect("the stream goes on");
        let bytes = chunk.copy_to_bytes(chunk.remaining());
        if let Some(event) = parser.feed(&bytes).into_iter().next() {
            return event.data;
        }
    }
}

#[tokio::test]
async fn thousands_of_streams_on_one_quic_connection_are_taken_up_a_hundred_at_a_time() {
    let _heavy = crate::common::heavy().await;
    let limit = STREAMS_AT_ONCE.to_string();
    let child = TlsChild::start(&["--max-concurrent-streams", &limit]).await;
    let mut watcher = child.watch().await;
    let rss_before = child.hub.rss_kib();
    let endpoint = quic_endpoint(&child.pem);
    let addr = child.tls;

    // Streams that stay open: the hub takes up as many as it allows.
    let send = h3_connect(&endpoint, addr, "localhost").await;
    let path = format!("/.well-known/mercure?{}", topic_query(&[WATCHED]));
    let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..SUBSCRIPTIONS {
        let (mut send, path, answered) = (send.clone(), path.clone(), answered.clone());
        tokio::spawn(async move {
            let (status, stream) = get(&mut send, addr, &path).await;
            assert_eq!(status, StatusCode::OK);
            let _ = answered.send(stream);
        });
    }
    let mut open = Vec::new();
    while open.len() < STREAMS_AT_ONCE {
        let stream = tokio::time::timeout(WAIT, answers.recv()).await;
        open.push(stream.expect("a stream taken up").unwrap());
    }
    child
        .assert_unharmed(&mut watcher, rss_before, "QUIC streams")
        .await;
    for stream in &mut open {
        assert_eq!(next_data(stream).await, "after");
    }
    assert!(
        answers.is_empty(),
        "no more than {STREAMS_AT_ONCE} streams at once"
    );
    drop((open, answers, send));

    // Requests that end are all answered, as streams are given back.
    let send = h3_connect(&endpoint, addr, "localhost").await;
    let statuses = join_all((0..REQUESTS).map(|_| {
        let mut send = send.clone();
        async move { get(&mut send, addr, "/healthz").await.0 }
    }))
    .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    child
        .assert_unharmed(&mut watcher, rss_before, "QUIC requests")
        .await;
}
