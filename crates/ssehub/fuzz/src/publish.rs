//! Publish bodies (`http::parse_updates`, then `UpdateRequest::validate`),
//! form or JSON, the way `POST /.well-known/mercure` reads them.
//!
//! Input: a byte choosing the `Content-Type`, then the body. Properties:
//!
//! * a body is read, or refused with 400 (malformed) or 415 (another
//!   type), never anything else, and never a panic;
//! * what is read, written again as a form (one update) or as JSON, reads
//!   back the same;
//! * an update that passes validation encodes to an SSE frame that parses
//!   to exactly that one event: its id, its type, its `retry`, and its data
//!   (line breaks read as LF), so no field can inject another.

use serde_json::{json, Value};
use ssehub::http::{parse_updates, ApiError};
use ssehub::proto::sse::{ParsedEvent, Parser};
use ssehub::proto::update::{Update, UpdateRequest};

use super::input::Input;

/// The `Content-Type` values tried, picked by the first byte.
const CONTENT_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "application/json",
    "",
    "application/json; charset=utf-8",
    "Application/X-WWW-Form-Urlencoded ; charset=UTF-8",
    "text/plain",
];

/// The id validation gives an update without one.
const NEW_ID: &str = "urn:uuid:0190a3f0-0000-7000-8000-000000000000";

/// Checks one input; see the module documentation.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let content_type = CONTENT_TYPES[usize::from(input.byte()) % CONTENT_TYPES.len()];
    let body = input.rest();
    let (requests, batch) = match parse_updates(content_type, body) {
        Ok(parsed) => parsed,
        Err(ApiError::UnsupportedMediaType(_)) => {
            assert_eq!(
                content_type, "text/plain",
                "a form or JSON body refused as another type"
            );
            return;
        }
        Err(ApiError::BadRequest(_)) => return,
        Err(other) => panic!("a body refused with {other:?}"),
    };
    assert!(!requests.is_empty(), "a body read as no update at all");
    assert!(
        !batch || content_type.contains("json"),
        "a form read as a batch"
    );
    if batch {
        let array: Vec<Value> = requests.iter().map(as_json).collect();
        let again = parse_updates("application/json", json!(array).to_string().as_bytes());
        assert_eq!(
            again.ok(),
            Some((requests.clone(), true)),
            "JSON written again"
        );
    } else {
        let [request] = requests.as_slice() else {
            panic!("one body read as {} updates", requests.len());
        };
        let again = parse_updates("application/json", as_json(request).to_string().as_bytes());
        assert_eq!(
            again.ok(),
            Some((requests.clone(), false)),
            "JSON written again"
        );
        let again = parse_updates("", as_form(request).as_bytes());
        assert_eq!(
            again.ok(),
            Some((requests.clone(), false)),
            "form written again"
        );
    }
    for request in requests {
        if let Ok(update) = request.validate(|| NEW_ID.to_owned()) {
            check_frame(&update);
        }
    }
}

/// `request` as one JSON update.
fn as_json(request: &UpdateRequest) -> Value {
    let mut update = json!({
        "topic": request.topics,
        "data": request.data,
        "private": request.private,
    });
    for (name, value) in optional_fields(request) {
        update[name] = json!(value);
    }
    update
}

/// The optional text fields `request` has, by their wire names.
fn optional_fields(request: &UpdateRequest) -> impl Iterator<Item = (&'static str, &String)> {
    [
        ("id", &request.id),
        ("type", &request.event_type),
        ("retry", &request.retry),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_ref().map(|v| (name, v)))
}

/// `request` as a form body.
fn as_form(request: &UpdateRequest) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for topic in &request.topics {
        form.append_pair("topic", topic);
    }
    form.append_pair("data", &request.data);
    if request.private {
        form.append_key_only("private");
    }
    for (name, value) in optional_fields(request) {
        form.append_pair(name, value);
    }
    form.finish()
}

/// A valid update's frame parses to that update, and to nothing else.
fn check_frame(update: &Update) {
    let frame = update.encode();
    let mut parser = Parser::new();
    let events = parser.feed(&frame);
    let expected = ParsedEvent {
        event_type: update
            .event_type
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "message".to_owned()),
        data: update.data.replace("\r\n", "\n").replace('\r', "\n"),
        last_event_id: update.id.clone(),
    };
    assert_eq!(events, [expected], "{update:?} framed as {frame:?}");
    assert_eq!(
        parser.retry(),
        update.retry,
        "{update:?} framed as {frame:?}"
    );
}
