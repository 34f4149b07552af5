//! HTTP/2 at the frame level, over TLS: a connection that does not start
//! with the HTTP/2 preface after choosing `h2` is answered with a GOAWAY
//! and closed cleanly; streams opened and reset at once (rapid reset,
//! CVE-2023-44487) and a header block that never ends (CONTINUATION flood)
//! get the connection cut after a bounded number of frames, the hub's
//! memory bounded and every other client served.

use tokio::io::AsyncWriteExt;

use super::{TlsChild, WATCHED};
use crate::common::h2_frames::{
    connect, frame, literal_start, opening, ping, request_block, reset, send, End, Frames, CANCEL,
    CONTINUATION, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, HEADERS, PROTOCOL_ERROR, SETTINGS,
};
use crate::common::https::{cert_pem, tls_addr, tls_hub, Client, Proto, Req};

/// The path of a subscription to [`WATCHED`].
fn subscription_path() -> String {
    format!(
        "/.well-known/mercure?{}",
        crate::common::topic_query(&[WATCHED])
    )
}

#[tokio::test]
async fn an_invalid_preface_after_alpn_h2_gets_a_goaway_and_a_clean_close() {
    let hub = tls_hub().await;
    let (addr, pem) = (tls_addr(&hub), cert_pem(&hub));
    for sent in [
        &b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
        b"PRI * HTTP/1.1\r\n\r\n",
        // A SETTINGS frame without the preface.
        &frame(SETTINGS, 0, 0, &[]),
    ] {
        let mut tls = connect(addr, &pem).await;
        tls.write_all(sent).await.unwrap();
        let mut frames = Frames::new(tls);
        let first = frames.next().await;
        let goaway = first.as_ref().ok().and_then(|f| f.goaway());
        assert_eq!(goaway, Some((0, PROTOCOL_ERROR)), "{sent:?}: {first:?}");
        let end = frames.next().await.err();
        assert_eq!(end, Some(End::Clean), "{sent:?}: then close_notify");
    }
    // The hub goes on serving HTTP/2.
    let mut client = Client::new(Proto::H2, &hub).await;
    assert_eq!(
        client.send(Req::get("/healthz")).await.status,
        http::StatusCode::OK
    );
}

/// Streams opened and reset in one write, before the next PING.
const RESETS_PER_BATCH: u32 = 50;
/// Streams opened and reset before the test gives up on a GOAWAY.
const RESETS_AT_MOST: u32 = 10_000;
/// The hub must have cut the connection within this many streams.
const CUT_WITHIN: u32 = 1_000;

#[tokio::test]
async fn rapid_reset_is_cut_with_a_goaway() {
    let child = TlsChild::start(&[]).await;
    let mut watcher = child.watch().await;
    let rss_before = child.hub.rss_kib();
    let (read, mut write) = tokio::io::split(connect(child.tls, &child.pem).await);
    let mut frames = Frames::new(read);
    assert!(send(&mut write, &opening()).await);
    let block = request_block("GET", &subscription_path(), &[]);
    // Batches of streams opened and reset at once, each followed by a
    // PING: its answer says the hub read the whole batch.
    let mut opened = 0;
    let goaway = loop {
        assert!(
            opened < RESETS_AT_MOST,
            "{opened} streams opened and reset, and the connection is still served"
        );
        let mut batch = Vec::new();
        for _ in 0..RESETS_PER_BATCH {
            let stream = 2 * opened + 1;
            batch.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &block));
            batch.extend(reset(stream, CANCEL));
            opened += 1;
        }
        batch.extend(ping(opened.into()));
        if !send(&mut write, &batch).await {
            break frames.until_goaway().await;
        }
        if let Err(goaway) = frames.until_pong(opened.into()).await {
            break goaway;
        }
    };
    let goaway = goaway.expect("a GOAWAY before the end of the connection");
    let (last_stream, code) = goaway.goaway().expect("a GOAWAY frame");
    assert_eq!(code, ENHANCE_YOUR_CALM, "{goaway:?}");
    assert!(
        last_stream < 2 * CUT_WITHIN,
        "the hub took up streams up to {last_stream} before cutting the connection"
    );
    child
        .assert_unharmed(&mut watcher, rss_before, "rapid reset")
        .await;
}

/// How a CONTINUATION flood is sent: the bytes each frame carries, frames
/// per write, and writes the hub must not all read.
const CONTINUATION_FLOODS: [(usize, usize, usize); 2] = [
    // Full frames of a header value that never ends: 64 MiB in all.
    (16 << 10, 1, 4096),
    // Empty frames, many per write: a million frames.
    (0, 1000, 1000),
];

#[tokio::test]
async fn continuation_floods_are_cut() {
    let child = TlsChild::start(&[]).await;
    let mut watcher = child.watch().await;
    let rss_before = child.hub.rss_kib();
    for (fragment, per_write, writes) in CONTINUATION_FLOODS {
        let flood =
            format!("CONTINUATION flood of {per_write} × {writes} frames of {fragment} bytes");
        let (read, mut write) = tokio::io::split(connect(child.tls, &child.pem).await);
        assert!(send(&mut write, &opening()).await);
        // A header block whose last field's value is a gigabyte long: it
        // never ends, and neither does the block (no END_HEADERS).
        let mut block = request_block("GET", &subscription_path(), &[]);
        block.extend(literal_start("x-flood", 1 << 30));
        assert!(send(&mut write, &frame(HEADERS, END_STREAM, 1, &block)).await);
        let reader = tokio::spawn(async move { Frames::new(read).until_goaway().await });
        let payload = vec![b'a'; fragment];
        let one_write: Vec<u8> = (0..per_write)
            .flat_map(|_| frame(CONTINUATION, 0, 1, &payload))
            .collect();
        let mut written = 0;
        while written < writes && !reader.is_finished() && send(&mut write, &one_write).await {
            written += 1;
        }
        assert!(
            written < writes,
            "{flood}: the hub read it all without cutting the connection"
        );
        // The connection is cut: a GOAWAY (then the end), or the end.
        let goaway = tokio::time::timeout(crate::common::h2_frames::WAIT, reader)
            .await
            .expect("the connection ends")
            .unwrap();
        if let Some((_, code)) = goaway.as_ref().and_then(|f| f.goaway()) {
            assert_ne!(code, 0, "{flood}: a GOAWAY for an error");
        }
    }
    child
        .assert_unharmed(&mut watcher, rss_before, "CONTINUATION floods")
        .await;
}
