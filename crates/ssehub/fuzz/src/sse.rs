//! The SSE parser (`proto::sse::Parser`) and encoder.
//!
//! Input: a mode byte, then a stream (parser mode) or the fields of one
//! event (encoder mode, high bit set). The low six bits of the mode byte are
//! a chunk size. Properties:
//!
//! * a stream fed in chunks of any size gives the events, the `retry` and
//!   the comment count it gives fed whole (the parser is incremental);
//! * every event parsed, encoded again (`encode_event`), parses back to
//!   itself;
//! * an event encoded from any fields the encoder accepts (no CR, LF or NUL
//!   in its id and type) parses to exactly one event with those fields, its
//!   data's line breaks read as LF.

use ssehub::proto::sse::{encode_event, EventFields, ParsedEvent, Parser};

use super::input::Input;

/// Checks one input; see the module documentation.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let chunk = usize::from(mode & 0x3f).max(1);
    if mode & 0x80 == 0 {
        parsed(input.rest(), chunk);
    } else {
        encoded(input, chunk);
    }
}

/// What a parser made of a whole stream.
#[derive(Debug, PartialEq)]
struct Parsed {
    events: Vec<ParsedEvent>,
    retry: Option<u64>,
    comments: u64,
}

/// Parses `stream` in chunks of `chunk` bytes (all at once when `None`).
fn parse(stream: &[u8], chunk: Option<usize>) -> Parsed {
    let mut parser = Parser::new();
    let events = match chunk {
        None => parser.feed(stream),
        Some(size) => stream.chunks(size).flat_map(|c| parser.feed(c)).collect(),
    };
    Parsed {
        events,
        retry: parser.retry(),
        comments: parser.comments(),
    }
}

fn parsed(stream: &[u8], chunk: usize) {
    let whole = parse(stream, None);
    assert_eq!(
        parse(stream, Some(chunk)),
        whole,
        "chunks of {chunk} bytes parse otherwise than the whole stream"
    );
    for event in &whole.events {
        // The encoder's contract: no NUL in a type (the parser keeps one).
        if event.event_type.contains('\0') {
            continue;
        }
        let frame = encode_event(&EventFields {
            id: &event.last_event_id,
            event_type: Some(&event.event_type),
            retry: None,
            data: &event.data,
        });
        assert_eq!(
            parse(&frame, Some(chunk)).events,
            std::slice::from_ref(event),
            "{event:?} encoded as {frame:?} does not parse back"
        );
    }
}

fn encoded(mut input: Input<'_>, chunk: usize) {
    let retry = (input.byte() & 1 == 1).then(|| input.u64());
    // Fields separated by 0xFF, which UTF-8 never holds: id, type, data.
    let mut fields = input.rest().splitn(3, |&b| b == 0xff);
    let mut field = || fields.next().map(String::from_utf8_lossy);
    let id = field().unwrap_or_default().replace(['\r', '\n', '\0'], "");
    let event_type = field().map(|t| t.replace(['\r', '\n', '\0'], ""));
    let data = field().unwrap_or_default().into_owned();
    let frame = encode_event(&EventFields {
        id: &id,
        event_type: event_type.as_deref(),
        retry,
        data: &data,
    });
    let expected = ParsedEvent {
        event_type: match event_type {
            Some(t) if !t.is_empty() => t,
            _ => "message".to_owned(),
        },
        data: data.replace("\r\n", "\n").replace('\r', "\n"),
        last_event_id: id,
    };
    let parsed = parse(&frame, Some(chunk));
    assert_eq!(parsed.events, [expected], "frame {frame:?}");
    assert_eq!(parsed.retry, retry, "frame {frame:?}");
}
