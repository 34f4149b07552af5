//! What `run` and its worker processes say to each other: the spec a worker
//! reads as the first line on its stdin, and the reports it prints as JSON
//! lines, with their latency histograms.

use std::net::{Ipv4Addr, SocketAddr};

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::args::H2Open;

/// The longest a short-lived subscription of a churn may take to be
/// answered.
pub(crate) const OPEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
    pub(crate) h2: Option<H2Spec>,
    /// Short-lived subscriptions to open besides (soak), once told `churn`.
    #[serde(default)]
    pub(crate) churn: Option<ChurnSpec>,
}

/// A worker's churn: short-lived subscriptions, each on its own connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChurnSpec {
    /// Subscriptions opened per second.
    pub(crate) rate: f64,
    /// Shortest and longest time one is held, in milliseconds (drawn
    /// uniformly), after which the worker closes its connection.
    pub(crate) hold_ms: (u64, u64),
    /// Request paths to choose from at random.
    pub(crate) paths: Vec<String>,
}

/// How to reach the hub over HTTP/2.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct H2Spec {
    /// Streams per connection.
    pub(crate) streams: usize,
    /// How they are opened.
    pub(crate) open: H2Open,
    /// TLS server name.
    pub(crate) server_name: String,
    /// PEM of the certificate (or CA) to trust.
    pub(crate) ca_pem: String,
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
    /// Body bytes received as they came (content-coded).
    #[serde(default)]
    pub(crate) body_bytes: u64,
    /// Body bytes received, decoded.
    #[serde(default)]
    pub(crate) decoded_bytes: u64,
    /// The churn's totals.
    #[serde(default)]
    pub(crate) churn: ChurnReport,
    /// Latency histogram (microseconds), V2-serialized, base64; only in snapshots.
    #[serde(default)]
    pub(crate) hist: String,
}

/// The totals of a worker's churn (see [`ChurnSpec`]).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct ChurnReport {
    /// Answered 200.
    pub(crate) opened: u64,
    /// Held for their whole time, then closed by the worker.
    pub(crate) closed: u64,
    /// Refused, unreachable, or ended before their time.
    pub(crate) failed: u64,
    /// Events received.
    pub(crate) received: u64,
    /// Sequence numbers skipped after each subscription's first event of a topic.
    pub(crate) gaps: u64,
    /// Sequence numbers received again or out of order.
    pub(crate) dups: u64,
}

impl std::ops::Add for ChurnReport {
    type Output = ChurnReport;
    fn add(self, r: ChurnReport) -> ChurnReport {
        ChurnReport {
            opened: self.opened + r.opened,
            closed: self.closed + r.closed,
            failed: self.failed + r.failed,
            received: self.received + r.received,
            gaps: self.gaps + r.gaps,
            dups: self.dups + r.dups,
        }
    }
}

/// An empty latency histogram (microseconds, up to a minute).
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// Encodes a histogram for a report.
pub(crate) fn encode_hist(hist: &Histogram<u64>) -> String {
    let mut out = Vec::new();
    V2Serializer::new()
        .serialize(hist, &mut out)
        .expect("serializing a histogram");
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// Decodes a histogram sent by a worker.
pub(crate) fn decode_hist(b64: &str) -> Histogram<u64> {
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
