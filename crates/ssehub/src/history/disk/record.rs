//! The on-disk record: one update with its position and time, framed with a
//! length and a CRC so a torn or corrupted write is detected.
//!
//! ```text
//! len: u32 LE | crc32(body): u32 LE | body
//! body: seq u64 | unix_ms u64 | flags u8 | [retry u64] | id | [type] | topic count u32 | topics | data
//! strings: u32 LE length, then UTF-8 bytes
//! ```

use crate::proto::update::Update;

/// Bytes before the body: length and CRC.
pub(super) const HEADER_LEN: usize = 8;
/// Largest body accepted when reading; anything larger is corruption.
const MAX_BODY: usize = 256 << 20;

const PRIVATE: u8 = 1;
const HAS_TYPE: u8 = 2;
const HAS_RETRY: u8 = 4;

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub(super) seq: u64,
    pub(super) unix_ms: u64,
    pub(super) update: Update,
}

/// What reading a record from the front of a buffer found.
#[derive(Debug)]
pub(super) enum Decoded {
    /// A valid record and the bytes it took.
    Record(Record, usize),
    /// The buffer ends inside a record (a torn write at the tail).
    Incomplete,
    /// The bytes are not a valid record.
    Corrupt(&'static str),
}

/// Appends the encoding of one record to `out`.
pub(super) fn encode(seq: u64, unix_ms: u64, update: &Update, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&unix_ms.to_le_bytes());
    let flag = |on: bool, bit: u8| if on { bit } else { 0 };
    let flags = flag(update.private, PRIVATE)
        | flag(update.event_type.is_some(), HAS_TYPE)
        | flag(update.retry.is_some(), HAS_RETRY);
    out.push(flags);
    if let Some(retry) = update.retry {
        out.extend_from_slice(&retry.to_le_bytes());
    }
    put_str(out, &update.id);
    if let Some(t) = &update.event_type {
        put_str(out, t);
    }
    out.extend_from_slice(&length(update.topics.len()).to_le_bytes());
    for topic in &update.topics {
        put_str(out, topic);
    }
    put_str(out, &update.data);
    let body = &out[start + HEADER_LEN..];
    let len = length(body.len());
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A length as the format writes it. A record holds one update, which came
/// in a request body of at most `--max-body` bytes (at most 1 GiB).
fn length(n: usize) -> u32 {
    u32::try_from(n).expect("a record is smaller than --max-body, at most 1 GiB")
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&length(s.len()).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Decodes the record at the front of `buf`.
pub(super) fn decode(buf: &[u8]) -> Decoded {
    if buf.len() < HEADER_LEN {
        return Decoded::Incomplete;
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if len > MAX_BODY {
        return Decoded::Corrupt("record length out of range");
    }
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Decoded::Incomplete;
    };
    if crc32fast::hash(body) != crc {
        return Decoded::Corrupt("checksum mismatch");
    }
    match parse_body(body) {
        Some(record) => Decoded::Record(record, HEADER_LEN + len),
        None => Decoded::Corrupt("malformed record body"),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

fn parse_body(body: &[u8]) -> Option<Record> {
    let mut r = Reader(body);
    let seq = r.u64()?;
    let unix_ms = r.u64()?;
    let flags = r.u8()?;
    let retry = if flags & HAS_RETRY != 0 {
        Some(r.u64()?)
    } else {
        None
    };
    let id = r.string()?;
    let event_type = if flags & HAS_TYPE != 0 {
        Some(r.string()?)
    } else {
        None
    };
    let count = r.u32()? as usize;
    let mut topics = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        topics.push(r.string()?);
    }
    let data = r.string()?;
    if !r.0.is_empty() {
        return None;
    }
    let update = Update {
        id,
        topics,
        data,
        private: flags & PRIVATE != 0,
        event_type,
        retry,
        received: None,
    };
    Some(Record {
        seq,
        unix_ms,
        update,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn update(
        id: &str,
        data: &str,
        event_type: Option<&str>,
        retry: Option<u64>,
        private: bool,
    ) -> Update {
        Update {
            id: id.into(),
            topics: vec!["https://a/1".into(), "urn:alt".into()],
            data: data.into(),
            private,
            event_type: event_type.map(String::from),
            retry,
            received: None,
        }
    }

    proptest! {
        #[test]
        fn round_trips(seq: u64, ms: u64, id in "\\PC{1,40}", data in "\\PC{0,200}", t in proptest::option::of("[a-z]{1,8}"), retry: Option<u64>, private: bool) {
            let u = update(&id, &data, t.as_deref(), retry, private);
            let mut buf = Vec::new();
            encode(seq, ms, &u, &mut buf);
            match decode(&buf) {
                Decoded::Record(r, used) => {
                    prop_assert_eq!(used, buf.len());
                    prop_assert_eq!(r, Record { seq, unix_ms: ms, update: u });
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn any_truncation_is_incomplete(cut in 0usize..100) {
            let mut buf = Vec::new();
            encode(1, 2, &update("id", "some data here", Some("t"), Some(3), true), &mut buf);
            let cut = cut % buf.len();
            prop_assert!(matches!(decode(&buf[..cut]), Decoded::Incomplete));
        }

        #[test]
        fn any_flipped_bit_is_detected(byte in 0usize..100, bit in 0u8..8) {
            let mut buf = Vec::new();
            encode(1, 2, &update("id", "some data here", Some("t"), Some(3), true), &mut buf);
            let byte = byte % buf.len();
            buf[byte] ^= 1 << bit;
            prop_assert!(!matches!(decode(&buf), Decoded::Record(..)));
        }
    }
}
