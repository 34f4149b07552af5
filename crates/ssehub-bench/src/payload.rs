//! What every published payload carries: a per-topic sequence number and the
//! send time, padded to the requested size, either with filler (`padded`)
//! or as a realistic JSON document (`json`, for compressed streams: a
//! filler of one repeated byte would compress out of all proportion).

use std::time::{SystemTime, UNIX_EPOCH};

/// The shape of payloads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Shape {
    /// `TOPIC SEQ SEND_NS` then `x` up to the size.
    #[default]
    Padded,
    /// A JSON object `{"topic":..,"seq":..,"sent":..,"items":[..]}`: the
    /// items are records (ids, names, prices, times, flags) drawn from the
    /// sequence number, as an app's update would carry.
    Json,
}

/// Nanoseconds since the Unix epoch (one clock for every process here).
pub(crate) fn now_ns() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}

/// A payload of `shape` about `size` bytes long (exactly, for `padded`
/// and for `json` when `size` leaves room for the header fields).
pub(crate) fn encode(topic: &str, seq: u64, size: usize, shape: Shape) -> String {
    match shape {
        Shape::Padded => {
            let mut s = format!("{topic} {seq} {} ", now_ns());
            while s.len() < size {
                s.push('x');
            }
            s
        }
        Shape::Json => json(topic, seq, size),
    }
}

/// Words the JSON records are made of.
const WORDS: [&str; 24] = [
    "alpha",
    "delivery",
    "pending",
    "shipped",
    "invoice",
    "customer",
    "premium",
    "standard",
    "berlin",
    "lisbon",
    "osaka",
    "toronto",
    "blue",
    "green",
    "large",
    "small",
    "refund",
    "priority",
    "warehouse",
    "north",
    "south",
    "review",
    "accepted",
    "draft",
];

/// A small deterministic generator (xorshift), seeded per payload.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn word(&mut self) -> &'static str {
        WORDS[usize::try_from(self.next() % WORDS.len() as u64).unwrap_or(0)]
    }
}

/// The `json` shape: records appended while they fit, then a `note` of
/// words filling the rest.
fn json(topic: &str, seq: u64, size: usize) -> String {
    let sent = now_ns();
    let mut draw = Draw(seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut s = format!("{{\"topic\":\"{topic}\",\"seq\":{seq},\"sent\":{sent},\"items\":[");
    let close_len = "],\"note\":\"\"}".len();
    for n in 0.. {
        let record = format!(
            "{}{{\"id\":{},\"sku\":\"{}-{}\",\"name\":\"{} {}\",\"price\":{}.{:02},\"qty\":{},\"status\":\"{}\",\"city\":\"{}\",\"updated\":\"2026-12-02T{:02}:{:02}:{:02}Z\",\"gift\":{}}}",
            if n == 0 { "" } else { "," },
            draw.next() % 1_000_000,
            draw.word(),
            draw.next() % 10_000,
            draw.word(),
            draw.word(),
            draw.next() % 500,
            draw.next() % 100,
            draw.next() % 9 + 1,
            draw.word(),
            draw.word(),
            draw.next() % 24,
            draw.next() % 60,
            draw.next() % 60,
            draw.next().is_multiple_of(2),
        );
        if s.len() + record.len() + close_len > size {
            break;
        }
        s.push_str(&record);
    }
    s.push_str("],\"note\":\"");
    while s.len() + 2 < size {
        let word = draw.word();
        let room = size - 2 - s.len();
        s.push_str(&word[..word.len().min(room)]);
        if s.len() + 2 < size {
            s.push(' ');
        }
    }
    s.push_str("\"}");
    s
}

/// The topic, sequence number and send time of a payload of either shape.
pub(crate) fn decode(data: &str) -> Option<(&str, u64, u64)> {
    if let Some(rest) = data.strip_prefix("{\"topic\":\"") {
        let (topic, rest) = rest.split_once("\",\"seq\":")?;
        let (seq, rest) = rest.split_once(",\"sent\":")?;
        let (sent, _) = rest.split_once(',')?;
        return Some((topic, seq.parse().ok()?, sent.parse().ok()?));
    }
    let mut parts = data.split(' ');
    Some((
        parts.next()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_decode_and_json_is_json_of_the_size() {
        for shape in [Shape::Padded, Shape::Json] {
            let p = encode("fanout", 42, 1024, shape);
            let (topic, seq, _) = decode(&p).unwrap();
            assert_eq!((topic, seq, p.len()), ("fanout", 42, 1024), "{shape:?}");
        }
        for size in [0, 100, 300, 1024, 4096] {
            let p = encode("t", 7, size, Shape::Json);
            let v: serde_json::Value = serde_json::from_str(&p).unwrap();
            assert_eq!(v["seq"], 7);
            assert!(p.len() == size || size < 100, "{size}: {}", p.len());
        }
        assert_ne!(
            encode("t", 1, 1024, Shape::Json)[60..],
            encode("t", 2, 1024, Shape::Json)[60..],
            "each payload its own records"
        );
    }
}
