//! A worker process: holds its share of the subscriptions, checks that each
//! receives every message once and in order, and records latencies.
//!
//! The orchestrator talks to workers over stdin (commands, one per line) and
//! stdout (JSON reports, one per line).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use ssehub::proto::sse::Parser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tokio::sync::{watch, Semaphore};

use crate::http1::{read_head, Dechunker};
use crate::payload;

/// What a worker is asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Spec {
    /// Global index of this worker's first subscription.
    pub(crate) first: usize,
    /// Number of subscriptions.
    pub(crate) count: usize,
    /// Server address.
    pub(crate) addr: SocketAddr,
    /// Host header.
    pub(crate) host: String,
    /// Request path per subscription index (topics already substituted).
    pub(crate) paths: Vec<String>,
    /// Extra request headers, `Name: value`.
    pub(crate) headers: Vec<String>,
    /// Source addresses to spread connections over.
    pub(crate) sources: Vec<Ipv4Addr>,
    /// Connections opened per second by this worker.
    pub(crate) connect_rate: u32,
    /// The first `stalled` subscriptions stop reading after connecting.
    pub(crate) stalled: usize,
    /// HTTP/2 over TLS instead of one HTTP/1.1 connection per subscription.
    pub(crate) h2: Option<crate::h2_client::H2Spec>,
}

/// A progress or final report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) connected: u64,
    pub(crate) failed: u64,
    pub(crate) received: u64,
    pub(crate) gaps: u64,
    pub(crate) dups: u64,
    /// Subscriptions that are up to date with `target` (storm recovery).
    pub(crate) caught_up: u64,
    /// Latency histogram (microseconds), V2-serialized, base64; only in snapshots.
    #[serde(default)]
    pub(crate) hist: String,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) connected: AtomicU64,
    pub(crate) failed: AtomicU64,
    received: AtomicU64,
    gaps: AtomicU64,
    dups: AtomicU64,
    caught_up: AtomicU64,
}

pub(crate) struct Shared {
    pub(crate) spec: Spec,
    pub(crate) counters: Counters,
    hist: Mutex<Histogram<u64>>,
    /// Bumped to make every subscription reconnect with Last-Event-ID.
    reconnect: watch::Sender<u64>,
    /// The sequence number every subscription must reach to count as caught up.
    target: AtomicU64,
    quit: AtomicBool,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// Runs a worker: reads its spec (one JSON line) from stdin, then commands
/// until stdin closes or says `quit`.
pub(crate) async fn run() {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let first = lines.next_line().await.ok().flatten().unwrap_or_default();
    let spec: Spec =
        serde_json::from_str(&first).expect("a worker spec on the first line of stdin");
    let (reconnect, _) = watch::channel(0);
    let shared = Arc::new(Shared {
        spec,
        counters: Counters::default(),
        hist: Mutex::new(histogram()),
        reconnect,
        target: AtomicU64::new(u64::MAX),
        quit: AtomicBool::new(false),
    });
    let pace = Arc::new(Semaphore::new(0));
    tokio::spawn(pacer(pace.clone(), shared.spec.connect_rate));
    match shared.spec.h2.clone() {
        Some(h2) => crate::h2_client::spawn_all(&shared, &h2, &pace),
        None => {
            for i in 0..shared.spec.count {
                tokio::spawn(subscription(shared.clone(), i, pace.clone()));
            }
        }
    }
    while let Ok(Some(line)) = lines.next_line().await {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("report") => println!(
                "{}",
                serde_json::to_string(&report(&shared, false)).unwrap()
            ),
            Some("snapshot") => {
                println!("{}", serde_json::to_string(&report(&shared, true)).unwrap())
            }
            Some("reconnect") => {
                let target = words
                    .next()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(u64::MAX);
                shared.counters.caught_up.store(0, Ordering::Relaxed);
                shared.target.store(target, Ordering::Relaxed);
                shared.reconnect.send_modify(|n| *n += 1);
            }
            Some("quit") | None => break,
            Some(other) => eprintln!("worker: unknown command {other:?}"),
        }
    }
    shared.quit.store(true, Ordering::Relaxed);
}

/// Releases `rate` connection permits per second.
async fn pacer(pace: Arc<Semaphore>, rate: u32) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (rate as f64 / 100.0).max(0.01);
    let mut owed = 0.0;
    loop {
        tick.tick().await;
        owed += per_tick;
        let n = owed.floor() as usize;
        owed -= n as f64;
        pace.add_permits(n);
    }
}

fn report(shared: &Shared, snapshot: bool) -> Report {
    let c = &shared.counters;
    let hist = if snapshot {
        let mut h = shared.hist.lock().unwrap();
        let mut out = Vec::new();
        V2Serializer::new()
            .serialize(&h, &mut out)
            .expect("serializing a histogram");
        h.reset();
        base64::engine::general_purpose::STANDARD.encode(out)
    } else {
        String::new()
    };
    Report {
        connected: c.connected.load(Ordering::Relaxed),
        failed: c.failed.load(Ordering::Relaxed),
        received: c.received.load(Ordering::Relaxed),
        gaps: c.gaps.load(Ordering::Relaxed),
        dups: c.dups.load(Ordering::Relaxed),
        caught_up: c.caught_up.load(Ordering::Relaxed),
        hist,
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
    let mut reconnect = shared.reconnect.subscribe();
    let mut first = true;
    while !shared.quit.load(Ordering::Relaxed) {
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

#[allow(clippy::too_many_arguments)]
async fn session(
    shared: &Shared,
    source: Ipv4Addr,
    path: &str,
    tracker: &mut Tracker,
    first: bool,
    stalled: bool,
) -> std::io::Result<()> {
    let spec = &shared.spec;
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
    if let Some(id) = tracker.last_id.as_deref() {
        request.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    let (head, rest) = read_head(&mut stream, &mut buf).await?;
    if head.status != 200 {
        return Err(std::io::Error::other(format!("status {}", head.status)));
    }
    if first {
        shared.counters.connected.fetch_add(1, Ordering::Relaxed);
    }
    if stalled {
        // Holds the connection open without reading a byte.
        std::future::pending::<()>().await;
    }
    let mut dechunker = head.chunked.then(Dechunker::default);
    let mut parser = Parser::new();
    let mut body = Vec::with_capacity(4096);
    let mut input = rest;
    let mut read = vec![0u8; 16 << 10];
    loop {
        body.clear();
        match &mut dechunker {
            Some(d) => d.feed(&input, &mut body)?,
            None => body.extend_from_slice(&input),
        }
        tracker.feed(shared, &mut parser, &body);
        let n = stream.read(&mut read).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        input.clear();
        input.extend_from_slice(&read[..n]);
    }
}

/// What one subscription has seen, kept across its reconnections.
#[derive(Default)]
pub(crate) struct Tracker {
    last_seq: HashMap<String, u64>,
    last_id: Option<String>,
}

impl Tracker {
    /// Checks and records every event completed by `bytes`.
    pub(crate) fn feed(&mut self, shared: &Shared, parser: &mut Parser, bytes: &[u8]) {
        let now = payload::now_ns();
        for event in parser.feed(bytes) {
            let Some((topic, seq, sent)) = payload::decode(&event.data) else {
                continue;
            };
            let c = &shared.counters;
            c.received.fetch_add(1, Ordering::Relaxed);
            let last = match self.last_seq.get_mut(topic) {
                Some(last) => last,
                None => self.last_seq.entry(topic.to_string()).or_insert(0),
            };
            match seq.cmp(&(*last + 1)) {
                std::cmp::Ordering::Equal => *last = seq,
                std::cmp::Ordering::Less => {
                    c.dups.fetch_add(1, Ordering::Relaxed);
                }
                std::cmp::Ordering::Greater => {
                    c.gaps.fetch_add(seq - *last - 1, Ordering::Relaxed);
                    *last = seq;
                }
            }
            if seq == shared.target.load(Ordering::Relaxed) {
                c.caught_up.fetch_add(1, Ordering::Relaxed);
            }
            let micros = now.saturating_sub(sent) / 1000;
            let _ = shared.hist.lock().unwrap().record(micros.max(1));
            self.last_id = Some(event.last_event_id);
        }
    }
}

/// Decodes a histogram sent by a worker.
pub(crate) fn decode_hist(b64: &str) -> Histogram<u64> {
    use hdrhistogram::serialization::Deserializer;
    if b64.is_empty() {
        return histogram();
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 histogram");
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .expect("a V2 histogram")
}
