//! Server-Sent Events wire format: a single-allocation encoder for the hot
//! fan-out path, and an incremental parser that follows the WHATWG HTML
//! "event stream interpretation" so tests and load tools see exactly what a
//! browser's `EventSource` would dispatch.

use bytes::Bytes;

/// Fields of one SSE event to encode.
///
/// `id` and `event_type` must not contain CR, LF or NUL: the caller validates
/// them, since a line break would let one event inject fields into the stream
/// and a NUL makes browsers ignore the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFields<'a> {
    /// Event id, always written so reconnecting clients can resume from it.
    pub id: &'a str,
    /// Event type; `None` lets clients fall back to `"message"`.
    pub event_type: Option<&'a str>,
    /// Reconnection time in milliseconds to advertise to the client.
    pub retry: Option<u64>,
    /// Payload; may contain any line breaks, each becomes a `data:` line.
    pub data: &'a str,
}

const EVENT_PREFIX: &[u8] = b"event: ";
const RETRY_PREFIX: &[u8] = b"retry: ";
const ID_PREFIX: &[u8] = b"id: ";
const DATA_PREFIX: &[u8] = b"data: ";

/// Encodes one event into an SSE frame: `event: T\n` (only if a type is
/// set), `retry: N\n` (if set), `id: ID\n`, one `data: LINE\n` per line of
/// data (split on CRLF, lone CR and lone LF; empty data gives one `data: \n`
/// line), then a blank line.
///
/// Data lines that start with a space survive because the parser strips only
/// the single space written after the colon.
pub fn encode_event(fields: &EventFields<'_>) -> Bytes {
    debug_assert!(
        !has_forbidden_field_byte(fields.id),
        "SSE id must not contain CR, LF or NUL"
    );
    debug_assert!(
        !fields.event_type.is_some_and(has_forbidden_field_byte),
        "SSE event type must not contain CR, LF or NUL"
    );

    let mut digits = [0u8; 20];
    let retry = fields.retry.map(|n| format_u64(n, &mut digits));

    // Sized exactly so the frame costs one allocation and no reallocation.
    let mut capacity = ID_PREFIX.len() + fields.id.len() + 1;
    if let Some(ty) = fields.event_type {
        capacity += EVENT_PREFIX.len() + ty.len() + 1;
    }
    if let Some(retry) = retry {
        capacity += RETRY_PREFIX.len() + retry.len() + 1;
    }
    capacity += DataLines::new(fields.data)
        .map(|line| DATA_PREFIX.len() + line.len() + 1)
        .sum::<usize>();
    capacity += 1;

    let mut buf = Vec::with_capacity(capacity);
    if let Some(ty) = fields.event_type {
        push_field(&mut buf, EVENT_PREFIX, ty.as_bytes());
    }
    if let Some(retry) = retry {
        push_field(&mut buf, RETRY_PREFIX, retry);
    }
    push_field(&mut buf, ID_PREFIX, fields.id.as_bytes());
    for line in DataLines::new(fields.data) {
        push_field(&mut buf, DATA_PREFIX, line.as_bytes());
    }
    buf.push(b'\n');
    debug_assert_eq!(buf.len(), capacity, "SSE frame size miscomputed");
    Bytes::from(buf)
}

/// The field that names, on a stream asking for it (`ssehub_matched=1`),
/// a selector through which the stream receives the event. It is not an SSE
/// field: `EventSource` and conforming parsers ignore it.
pub const MATCHED_FIELD: &str = "matched";

/// The shared frame of an event without its final blank line, so that
/// fields can follow it ([`encode_matched`]); no copy, the bytes are shared.
pub fn without_blank_line(frame: &Bytes) -> Bytes {
    debug_assert!(
        frame.ends_with(b"\n\n"),
        "an SSE frame ends with a blank line"
    );
    frame.slice(..frame.len().saturating_sub(1))
}

/// The end of an event frame naming `selectors`: one `matched: SELECTOR`
/// line each, then the blank line ending the event. Selectors never hold
/// CR, LF or NUL: the hub refuses control characters in matchers.
pub fn encode_matched(selectors: &[&str]) -> Bytes {
    let prefix_len = MATCHED_FIELD.len() + 2;
    let len = selectors
        .iter()
        .map(|s| prefix_len + s.len() + 1)
        .sum::<usize>()
        + 1;
    let mut buf = Vec::with_capacity(len);
    for selector in selectors {
        debug_assert!(
            !has_forbidden_field_byte(selector),
            "matcher with a line break"
        );
        buf.extend_from_slice(MATCHED_FIELD.as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(selector.as_bytes());
        buf.push(b'\n');
    }
    buf.push(b'\n');
    Bytes::from(buf)
}

fn has_forbidden_field_byte(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

fn push_field(buf: &mut Vec<u8>, prefix: &[u8], value: &[u8]) {
    buf.extend_from_slice(prefix);
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

/// Writes `n` in decimal at the end of `buf`, avoiding a heap-allocated
/// `to_string` so the frame keeps its single allocation.
fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        // `n % 10` is below 10, so the cast cannot truncate.
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[start..]
}

/// Lines of an event payload, split the way an SSE parser splits them (CRLF,
/// CR or LF), so that every payload line becomes exactly one `data:` line.
/// A trailing terminator yields a final empty line, which is what preserves a
/// trailing newline in the payload across the round trip.
struct DataLines<'a> {
    rest: Option<&'a str>,
}

impl<'a> DataLines<'a> {
    fn new(data: &'a str) -> Self {
        Self { rest: Some(data) }
    }
}

impl<'a> Iterator for DataLines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let bytes = rest.as_bytes();
        match bytes.iter().position(|&b| b == b'\r' || b == b'\n') {
            None => {
                self.rest = None;
                Some(rest)
            }
            Some(end) => {
                let crlf = bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n');
                let next = if crlf { end + 2 } else { end + 1 };
                self.rest = Some(&rest[next..]);
                Some(&rest[..end])
            }
        }
    }
}

/// One event as an `EventSource` would dispatch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    /// Event type; `"message"` when the stream set none (or an empty one).
    pub event_type: String,
    /// Data lines joined with LF, without the final LF.
    pub data: String,
    /// Last event id in force when the event was dispatched; it persists
    /// across events until the stream sets another.
    pub last_event_id: String,
}

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// Progress through the optional UTF-8 byte order mark, which may itself be
/// split across chunks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum BomState {
    /// No byte of the stream seen yet.
    #[default]
    Start,
    /// This many leading bytes of the stream matched the BOM so far.
    Matched(usize),
    /// The BOM was stripped, or the stream turned out not to start with one.
    Done,
}

/// Incremental event stream parser: accepts byte chunks split anywhere,
/// including inside a UTF-8 sequence or between the CR and LF of a CRLF.
///
/// An event that is still incomplete when the stream ends is never
/// dispatched, as in a browser, because its terminating blank line never
/// arrives.
#[derive(Debug, Default)]
pub struct Parser {
    bom: BomState,
    /// Bytes of the current line seen so far; kept as bytes so a UTF-8
    /// sequence split across chunks is decoded whole.
    line: Vec<u8>,
    /// The previous chunk ended with a CR, so an LF opening the next chunk
    /// belongs to the same line terminator.
    skip_lf: bool,
    data: String,
    event_type: String,
    last_event_id: String,
    retry: Option<u64>,
    comments: u64,
}

impl Parser {
    /// Creates a parser positioned at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk of the stream and returns the events it
    /// completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<ParsedEvent> {
        let mut events = Vec::new();
        let mut rest = self.strip_bom(chunk);
        if rest.is_empty() {
            return events;
        }
        if self.skip_lf {
            self.skip_lf = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            let content = &rest[..end];
            let is_cr = rest[end] == b'\r';
            rest = &rest[end + 1..];
            if is_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            if self.line.is_empty() {
                self.process_line(content, &mut events);
            } else {
                // Taken out and put back so the buffer's allocation is reused
                // while `process_line` borrows `self` mutably.
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(content);
                self.process_line(&line, &mut events);
                line.clear();
                self.line = line;
            }
        }
        self.line.extend_from_slice(rest);
        events
    }

    /// The last valid `retry:` value seen (the reconnection time in
    /// milliseconds), if any.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Number of comment lines seen so far, which lets tests observe
    /// heartbeats that dispatch no event.
    pub fn comments(&self) -> u64 {
        self.comments
    }

    /// Removes a BOM from the very start of the stream only: the decoder
    /// strips one, and a later (or second) BOM is ordinary text.
    fn strip_bom<'c>(&mut self, mut chunk: &'c [u8]) -> &'c [u8] {
        loop {
            let matched = match self.bom {
                BomState::Done => return chunk,
                BomState::Start => 0,
                BomState::Matched(n) => n,
            };
            let Some((&byte, tail)) = chunk.split_first() else {
                return chunk;
            };
            if byte == BOM[matched] {
                chunk = tail;
                self.bom = if matched + 1 == BOM.len() {
                    BomState::Done
                } else {
                    BomState::Matched(matched + 1)
                };
            } else {
                // A partial match was stream content after all; it holds no
                // CR or LF, so it simply starts the first line.
                self.line.extend_from_slice(&BOM[..matched]);
                self.bom = BomState::Done;
                return chunk;
            }
        }
    }

    fn process_line(&mut self, line: &[u8], events: &mut Vec<ParsedEvent>) {
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        // Matching on bytes is equivalent to matching decoded text: field
        // names are ASCII, and replacement characters never decode to ASCII.
        // Likewise decoding the value alone equals decoding the whole line,
        // since an ASCII byte always ends any malformed UTF-8 sequence.
        match name {
            b"event" => self.event_type = String::from_utf8_lossy(value).into_owned(),
            b"data" => {
                self.data.push_str(&String::from_utf8_lossy(value));
                self.data.push('\n');
            }
            // An id with NUL is ignored because it could not be sent back in
            // a Last-Event-ID header.
            b"id" if !value.contains(&0) => {
                self.last_event_id = String::from_utf8_lossy(value).into_owned();
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // Saturating: an absurdly large delay still means "wait very
                // long", which is closer to the sender's intent than dropping
                // the field.
                self.retry = Some(value.iter().fold(0u64, |acc, &d| {
                    acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                }));
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, events: &mut Vec<ParsedEvent>) {
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        let event_type = if self.event_type.is_empty() {
            String::from("message")
        } else {
            std::mem::take(&mut self.event_type)
        };
        events.push(ParsedEvent {
            event_type,
            data,
            last_event_id: self.last_event_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use proptest::prelude::*;
    use serde_json::Value;

    fn parse_all(stream: &[u8]) -> (Vec<ParsedEvent>, Parser) {
        let mut parser = Parser::new();
        let events = parser.feed(stream);
        (events, parser)
    }

    fn parse_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<ParsedEvent>, Parser) {
        let mut parser = Parser::new();
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(parser.feed(chunk));
        }
        (events, parser)
    }

    fn event(event_type: &str, data: &str, last_event_id: &str) -> ParsedEvent {
        ParsedEvent {
            event_type: event_type.to_owned(),
            data: data.to_owned(),
            last_event_id: last_event_id.to_owned(),
        }
    }

    /// Vectors whose `expected` is empty because the HTTP layer fails the
    /// connection (non-200 status or a non-event-stream Content-Type), not
    /// because of anything in the body, so a body parser cannot check them.
    fn http_fails_connection(vector: &Value) -> bool {
        let status = vector["status"].as_u64().expect("status");
        let content_type = vector["content_type"].as_str().expect("content_type");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        status != 200 || !essence.eq_ignore_ascii_case("text/event-stream")
    }

    #[test]
    fn wpt_vectors() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/wpt-eventsource-vectors.json"
        );
        let text = std::fs::read_to_string(path).expect("read WPT vectors");
        let vectors: Vec<Value> = serde_json::from_str(&text).expect("parse WPT vectors");
        assert_eq!(vectors.len(), 52);

        let mut checked = 0;
        let mut skipped = Vec::new();
        for vector in &vectors {
            let name = vector["name"].as_str().expect("name");
            if http_fails_connection(vector) {
                skipped.push(name);
                continue;
            }
            let stream = base64::engine::general_purpose::STANDARD
                .decode(vector["stream_b64"].as_str().expect("stream_b64"))
                .expect("valid base64");
            let expected: Vec<ParsedEvent> = vector["expected"]
                .as_array()
                .expect("expected")
                .iter()
                .map(|e| {
                    event(
                        e["type"].as_str().expect("type"),
                        e["data"].as_str().expect("data"),
                        e["lastEventId"].as_str().expect("lastEventId"),
                    )
                })
                .collect();

            let (whole, parser) = parse_all(&stream);
            assert_eq!(whole, expected, "{name}: fed whole");
            if let Some(ms) = vector["request"]["reconnection_time_ms"].as_u64() {
                assert_eq!(parser.retry(), Some(ms), "{name}: retry");
            }

            let (bytewise, _) = parse_chunks(stream.chunks(1));
            assert_eq!(bytewise, expected, "{name}: byte by byte");

            for split in 0..=stream.len() {
                let (head, tail) = stream.split_at(split);
                let (events, _) = parse_chunks([head, tail]);
                assert_eq!(events, expected, "{name}: split at {split}");
            }
            checked += 1;
        }

        assert_eq!(
            skipped,
            [
                "format-mime-bogus",
                "format-mime-valid-bogus",
                "request-status-error: HTTP 204",
                "request-status-error: HTTP 205",
                "request-status-error: HTTP 210",
                "request-status-error: HTTP 299",
                "request-status-error: HTTP 404",
                "request-status-error: HTTP 410",
                "request-status-error: HTTP 503",
            ]
        );
        assert_eq!(checked, 43);
    }

    #[test]
    fn cr_at_chunk_end_then_lf_is_one_line_end() {
        let (events, _) = parse_chunks([&b"data:a\r"[..], b"", b"\ndata:b\r", b"\n\r", b"\n"]);
        assert_eq!(events, [event("message", "a\nb", "")]);
    }

    #[test]
    fn utf8_split_across_chunks_and_invalid_bytes() {
        let (events, _) = parse_chunks([&b"data: \xC3"[..], b"\xA9 \xFF \xE2\x82\n\n"]);
        assert_eq!(events, [event("message", "\u{e9} \u{fffd} \u{fffd}", "")]);
    }

    #[test]
    fn bom_split_across_chunks_and_partial_bom() {
        let (events, _) = parse_chunks([&b"\xEF"[..], b"\xBB", b"\xBFdata:x\n\n"]);
        assert_eq!(events, [event("message", "x", "")]);
        // A BOM prefix that is not a BOM is content: the field name is no
        // longer `data`, so nothing is dispatched.
        let (events, _) = parse_chunks([&b"\xEF\xBB"[..], b"data:x\n\ndata:y\n\n"]);
        assert_eq!(events, [event("message", "y", "")]);
    }

    #[test]
    fn comments_and_retry() {
        let (events, parser) =
            parse_all(b": hi\n:\nretry: 2500\nretry: 12x\n\nretry: 99999999999999999999999\n");
        assert!(events.is_empty());
        assert_eq!(parser.comments(), 2);
        assert_eq!(parser.retry(), Some(u64::MAX));
        assert_eq!(Parser::new().retry(), None);
    }

    fn encode(id: &str, event_type: Option<&str>, retry: Option<u64>, data: &str) -> Bytes {
        encode_event(&EventFields {
            id,
            event_type,
            retry,
            data,
        })
    }

    #[test]
    fn encode_all_fields() {
        assert_eq!(
            encode("urn:1", Some("update"), Some(3000), "a\nb"),
            &b"event: update\nretry: 3000\nid: urn:1\ndata: a\ndata: b\n\n"[..]
        );
        assert_eq!(
            encode("7", None, Some(0), "x"),
            &b"retry: 0\nid: 7\ndata: x\n\n"[..]
        );
        assert_eq!(
            encode("", None, Some(u64::MAX), "x"),
            &b"retry: 18446744073709551615\nid: \ndata: x\n\n"[..]
        );
    }

    #[test]
    fn encode_splits_crlf_cr_and_lf() {
        assert_eq!(
            encode("1", None, None, "a\r\nb\rc\nd\r\r\ne"),
            &b"id: 1\ndata: a\ndata: b\ndata: c\ndata: d\ndata: \ndata: e\n\n"[..]
        );
    }

    #[test]
    fn matched_lines_end_the_shared_frame_and_parsers_ignore_them() {
        let frame = encode("u1", Some("t"), None, "a\nb");
        let head = without_blank_line(&frame);
        assert_eq!(head.as_ptr(), frame.as_ptr(), "shared, not copied");
        let tail = encode_matched(&[" x", "https://a/{id}"]);
        assert_eq!(&tail[..], b"matched:  x\nmatched: https://a/{id}\n\n");
        assert_eq!(&encode_matched(&[])[..], b"\n");
        let whole = [&head[..], &tail[..]].concat();
        let (events, _) = parse_all(&whole);
        assert_eq!(events, [event("t", "a\nb", "u1")]);
        assert_eq!(parse_all(&frame).0, events);
    }

    #[test]
    fn encode_empty_data() {
        assert_eq!(encode("1", None, None, ""), &b"id: 1\ndata: \n\n"[..]);
    }

    #[test]
    fn encode_leading_space_survives() {
        let frame = encode("1", None, None, " x\n  y");
        assert_eq!(frame, &b"id: 1\ndata:  x\ndata:   y\n\n"[..]);
        assert_eq!(parse_all(&frame).0, [event("message", " x\n  y", "1")]);
    }

    #[test]
    fn encode_trailing_newline() {
        let frame = encode("1", None, None, "x\n");
        assert_eq!(frame, &b"id: 1\ndata: x\ndata: \n\n"[..]);
        assert_eq!(parse_all(&frame).0, [event("message", "x\n", "1")]);
    }

    #[test]
    fn comment_frames_are_counted_not_dispatched() {
        let (events, parser) = parse_all(b": ping\n\n");
        assert!(events.is_empty());
        assert_eq!(parser.comments(), 1);
    }

    fn data_strategy() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[ a:\r\n\u{e9}\u{feff}\u{1F600}]{0,24}",]
    }

    proptest! {
        #[test]
        fn round_trip(
            data in data_strategy(),
            event_type in proptest::option::of("[^\r\n\0]+"),
            id in "[^\r\n\0]*",
            retry in proptest::option::of(any::<u64>()),
            chunk_sizes in proptest::collection::vec(1usize..9, 1..16),
        ) {
            let frame = encode(&id, event_type.as_deref(), retry, &data);
            let mut parser = Parser::new();
            let mut events = Vec::new();
            let mut rest = &frame[..];
            for size in chunk_sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at((*size).min(rest.len()));
                events.extend(parser.feed(chunk));
                rest = tail;
            }
            let expected_data = data.replace("\r\n", "\n").replace('\r', "\n");
            let expected_type = event_type.as_deref().unwrap_or("message");
            prop_assert_eq!(events, vec![event(expected_type, &expected_data, &id)]);
            prop_assert_eq!(parser.retry(), retry);
        }
    }
}
