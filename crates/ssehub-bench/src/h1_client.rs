//! Subscriptions over HTTP/1.1: one connection each, reconnecting with
//! Last-Event-ID when asked; and the churn's short-lived ones.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use crate::decode::Body;
use crate::http1::{read_head, Dechunker};
use crate::tracking::{Role, Shared, Tracker};
use crate::wire::{Spec, OPEN_TIMEOUT};

/// Opens every subscription of the worker, one connection each.
pub(crate) fn spawn_all(shared: &Arc<Shared>, pace: &Arc<Semaphore>) {
    for i in 0..shared.spec.count {
        tokio::spawn(subscription(shared.clone(), i, pace.clone()));
    }
}

/// One subscription: connects, reads, and on request reconnects with its
/// last event id, forever.
async fn subscription(shared: Arc<Shared>, i: usize, pace: Arc<Semaphore>) {
    let spec = &shared.spec;
    let source = spec.sources[(spec.first + i) % spec.sources.len()];
    let path = &spec.paths[i];
    let stalled = i < spec.stalled;
    let mut tracker = Tracker::default();
    let mut reconnect = shared.reconnections();
    let mut first = true;
    while !shared.quitting() {
        if first {
            pace.acquire().await.expect("pacer never closes").forget();
        }
        let result = tokio::select! {
            r = session(&shared, source, path, &mut tracker, first, stalled) => r,
            _ = reconnect.changed() => Ok(()),
        };
        if let Err(e) = result {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            if first {
                eprintln!("worker: subscription {} failed: {e}", spec.first + i);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        first = false;
    }
}

/// One connection of a subscription, until it fails or ends.
async fn session(
    shared: &Shared,
    source: Ipv4Addr,
    path: &str,
    tracker: &mut Tracker,
    first: bool,
    stalled: bool,
) -> std::io::Result<()> {
    let (mut stream, opened) = open(&shared.spec, source, path, tracker.last_id()).await?;
    if first {
        shared.counters.connected.fetch_add(1, Ordering::Relaxed);
    }
    if stalled {
        // Holds the connection open without reading a byte.
        std::future::pending::<()>().await;
    }
    match read(shared, &mut stream, opened, tracker).await? {}
}

/// One short-lived subscription of the churn: opens it (within
/// [`OPEN_TIMEOUT`]), reads for `hold`, then drops the connection. `Ok`
/// when it was held for its whole time.
pub(crate) async fn visit(
    shared: &Shared,
    source: Ipv4Addr,
    path: &str,
    hold: Duration,
) -> std::io::Result<()> {
    let (mut stream, opened) =
        tokio::time::timeout(OPEN_TIMEOUT, open(&shared.spec, source, path, None))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    shared.churn.opened.fetch_add(1, Ordering::Relaxed);
    let mut tracker = Tracker::new(Role::Churn);
    match tokio::time::timeout(hold, read(shared, &mut stream, opened, &mut tracker)).await {
        Err(_held) => Ok(()),
        Ok(Err(e)) => Err(e),
        Ok(Ok(never)) => match never {},
    }
}

/// A response just opened: its head and the body bytes read with it.
struct Opened {
    chunked: bool,
    content_encoding: Option<String>,
    rest: Vec<u8>,
}

/// Connects from `source`, asks for `path` (resuming after `last_id`) and
/// reads the response head; an answer other than 200 is an error.
async fn open(
    spec: &Spec,
    source: Ipv4Addr,
    path: &str,
    last_id: Option<&str>,
) -> std::io::Result<(TcpStream, Opened)> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.into(), 0))?;
    let mut stream = socket.connect(spec.addr).await?;
    stream.set_nodelay(true)?;
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n",
        spec.host
    );
    for h in &spec.headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    if let Some(id) = last_id {
        request.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    let (head, rest) = read_head(&mut stream, &mut buf).await?;
    if head.status != 200 {
        return Err(std::io::Error::other(format!("status {}", head.status)));
    }
    Ok((
        stream,
        Opened {
            chunked: head.chunked,
            content_encoding: head.content_encoding,
            rest,
        },
    ))
}

/// Reads the body of an opened response into `tracker` until it fails or
/// ends (the end of a stream is an error: it should last).
async fn read(
    shared: &Shared,
    stream: &mut TcpStream,
    opened: Opened,
    tracker: &mut Tracker,
) -> std::io::Result<Infallible> {
    let mut dechunker = opened.chunked.then(Dechunker::default);
    let mut decoded = Body::new(opened.content_encoding.as_deref())?;
    let mut body = Vec::with_capacity(4096);
    let mut input = opened.rest;
    let mut read = vec![0u8; 16 << 10];
    loop {
        body.clear();
        match &mut dechunker {
            Some(d) => d.feed(&input, &mut body)?,
            None => body.extend_from_slice(&input),
        }
        decoded.feed(shared, tracker, &body)?;
        let n = stream.read(&mut read).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        input.clear();
        input.extend_from_slice(&read[..n]);
    }
}
