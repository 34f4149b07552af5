//! What every published payload carries: a per-topic sequence number and the
//! send time, padded to the requested size.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch (one clock for every process here).
pub(crate) fn now_ns() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}

/// `TOPIC SEQ SEND_NS` then padding up to `size` bytes.
pub(crate) fn encode(topic: &str, seq: u64, size: usize) -> String {
    let mut s = format!("{topic} {seq} {} ", now_ns());
    while s.len() < size {
        s.push('x');
    }
    s
}

/// The topic, sequence number and send time of a payload.
pub(crate) fn decode(data: &str) -> Option<(&str, u64, u64)> {
    let mut parts = data.split(' ');
    Some((
        parts.next()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}
