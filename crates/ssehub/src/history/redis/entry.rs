//! How an update is stored as a Redis stream entry, and how a stream id
//! becomes a log position.
//!
//! An entry keeps the update in readable fields (`redis-cli XRANGE` shows
//! them as they were published): `id`, `topics` (a JSON array), `data`, and
//! when set `private` (`1`), `type` and `retry`. The append script adds `n`,
//! the entry's number in the stream (1, 2, 3, ... with no gap).
//!
//! A stream id `MS-N` is a position `MS << 22 | N`: positions then order as
//! stream ids do, and convert back without a lookup. `N` counts entries
//! added within one millisecond, so 2^22 (four million) is out of reach.

use redis::Value;

use crate::proto::update::Update;

/// Bits of a position holding the stream id's sequence part.
pub(super) const SEQ_BITS: u32 = 22;

/// The position of stream id `MS-N`, or `None` if it is not one or `N`
/// does not fit.
pub(super) fn position(stream_id: &str) -> Option<u64> {
    let (ms, n) = stream_id.split_once('-')?;
    let (ms, n) = (ms.parse::<u64>().ok()?, n.parse::<u64>().ok()?);
    (n < 1 << SEQ_BITS && ms < 1 << (64 - SEQ_BITS)).then_some(ms << SEQ_BITS | n)
}

/// The stream id at `position`.
pub(super) fn stream_id(position: u64) -> String {
    format!(
        "{}-{}",
        position >> SEQ_BITS,
        position & ((1 << SEQ_BITS) - 1)
    )
}

/// The fields of the entry holding `update`, as XADD arguments.
pub(super) fn fields(update: &Update) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("id", update.id.clone()),
        (
            "topics",
            serde_json::to_string(&update.topics).expect("strings serialize"),
        ),
        ("data", update.data.clone()),
    ];
    if update.private {
        out.push(("private", "1".into()));
    }
    if let Some(t) = &update.event_type {
        out.push(("type", t.clone()));
    }
    if let Some(r) = update.retry {
        out.push(("retry", r.to_string()));
    }
    out
}

/// Why an entry read from Redis is not an update this hub wrote.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("stream entry {entry}: {problem}")]
pub(super) struct BadEntry {
    entry: String,
    problem: &'static str,
}

/// One decoded entry: its position and update.
pub(super) type Decoded = (u64, Update);

/// Decodes the entries of an XRANGE reply, or of one stream of an XREAD reply:
/// `[[id, [field, value, ...]], ...]`.
pub(super) fn decode_entries(reply: Value) -> Result<Vec<Decoded>, BadEntry> {
    let Value::Array(entries) = reply else {
        return Err(bad("?", "the reply is not an array of entries"));
    };
    entries.into_iter().map(decode_entry).collect()
}

/// Decodes one `[id, [field, value, ...]]` entry.
pub(super) fn decode_entry(entry: Value) -> Result<Decoded, BadEntry> {
    let Value::Array(parts) = entry else {
        return Err(bad("?", "not an [id, fields] pair"));
    };
    let mut parts = parts.into_iter();
    let id = parts
        .next()
        .and_then(text)
        .ok_or_else(|| bad("?", "no id"))?;
    let seq = position(&id).ok_or_else(|| bad(&id, "not a MS-N stream id"))?;
    let Some(Value::Array(flat)) = parts.next() else {
        return Err(bad(&id, "no field list"));
    };
    let mut update = Update {
        id: String::new(),
        topics: Vec::new(),
        data: String::new(),
        private: false,
        event_type: None,
        retry: None,
        received: None,
    };
    let mut flat = flat.into_iter();
    while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
        let (Some(name), Some(value)) = (text(name), text(value)) else {
            return Err(bad(&id, "a field is not UTF-8 text"));
        };
        match name.as_str() {
            "id" => update.id = value,
            "topics" => {
                update.topics = serde_json::from_str(&value)
                    .map_err(|_| bad(&id, "topics is not a JSON array"))?
            }
            "data" => update.data = value,
            "private" => update.private = value == "1",
            "type" => update.event_type = Some(value),
            "retry" => update.retry = Some(value.parse().map_err(|_| bad(&id, "bad retry"))?),
            _ => {}
        }
    }
    if update.id.is_empty() || update.topics.is_empty() {
        return Err(bad(&id, "no id or no topics field"));
    }
    Ok((seq, update))
}

/// The number (`n` field) of a `[id, [field, value, ...]]` entry, if it has
/// one (entries appended by older versions have none).
pub(super) fn entry_number(entry: &Value) -> Option<u64> {
    let Value::Array(parts) = entry else {
        return None;
    };
    let Some(Value::Array(flat)) = parts.get(1) else {
        return None;
    };
    flat.chunks_exact(2).find_map(|pair| match pair {
        [Value::BulkString(name), Value::BulkString(n)] if name == b"n" => {
            std::str::from_utf8(n).ok()?.parse().ok()
        }
        _ => None,
    })
}

/// A bulk or simple string reply as text.
pub(super) fn text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

fn bad(entry: &str, problem: &'static str) -> BadEntry {
    BadEntry {
        entry: entry.to_string(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn positions_order_like_stream_ids_and_convert_back() {
        let ids = ["0-1", "5-0", "5-1", "5-4194303", "6-0", "1732500000000-7"];
        let positions: Vec<u64> = ids.iter().map(|i| position(i).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        for (id, p) in ids.iter().zip(&positions) {
            assert_eq!(&stream_id(*p), id);
        }
        assert_eq!(position("5-4194304"), None, "sequence part too large");
        assert_eq!(position("x-1"), None);
        assert_eq!(position("17"), None);
    }

    #[test]
    fn an_update_survives_its_fields() {
        let update = Update {
            id: "urn:uuid:1".into(),
            topics: vec!["https://e/a".into(), "b\nc".into()],
            data: "line 1\nline 2".into(),
            private: true,
            event_type: Some("t".into()),
            retry: Some(250),
            received: None,
        };
        let mut flat = Vec::new();
        for (name, value) in fields(&update) {
            flat.push(bulk(name));
            flat.push(bulk(&value));
        }
        let entry = |flat| Value::Array(vec![bulk("9-3"), Value::Array(flat)]);
        assert_eq!(entry_number(&entry(flat.clone())), None, "no n field");
        flat.extend([bulk("n"), bulk("42")]);
        assert_eq!(entry_number(&entry(flat.clone())), Some(42));
        let decoded = decode_entries(Value::Array(vec![entry(flat)])).unwrap();
        assert_eq!(decoded, vec![(position("9-3").unwrap(), update)]);
    }

    #[test]
    fn foreign_entries_are_refused_with_their_id() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("1-0"),
            Value::Array(vec![bulk("hello"), bulk("world")]),
        ])]);
        let err = decode_entries(reply).unwrap_err();
        assert!(err.to_string().contains("1-0"), "{err}");
    }
}
