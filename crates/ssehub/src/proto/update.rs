//! The update model: what a publisher sends, validated before it is logged.

use std::time::Instant;

use bytes::Bytes;

use super::sse::{encode_event, EventFields};
use super::text::{describe, forbidden_char};

/// The cursor value asking for the whole history; no update may carry it as
/// its id.
pub const EARLIEST: &str = "earliest";

/// The SSE event type of the hub's own 1.0 subscription events, which
/// publishers may not use (a subscriber routing on it could be fooled).
pub const HUB_EVENT_TYPE: &str = "mercure";

/// The longest a topic list of one update may be.
pub const MAX_TOPICS_PER_UPDATE: usize = 1000;

/// A validated update, ready to be appended to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// Event id: the publisher's or a generated `urn:uuid:` UUIDv7.
    pub id: String,
    /// Topics: the first is canonical, the rest are alternates.
    pub topics: Vec<String>,
    /// The payload, sent as `data:` lines.
    pub data: String,
    /// Private updates reach only subscribers whose token covers a topic.
    pub private: bool,
    /// The SSE `event:` type, if any.
    pub event_type: Option<String>,
    /// The SSE `retry:` hint in milliseconds, if any.
    pub retry: Option<u64>,
    /// When the publish request that carried it arrived at this node, on
    /// the last update of the request only (the request is dispatched once
    /// that one is); `None` for updates read back from a store.
    pub received: Option<Instant>,
}

/// Fields of a publish request before validation, whatever the encoding.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpdateRequest {
    /// Every `topic` value, in order.
    pub topics: Vec<String>,
    /// `data`, empty when absent.
    pub data: String,
    /// Whether `private` was present (form) or true (JSON).
    pub private: bool,
    /// `id`, if given.
    pub id: Option<String>,
    /// `type`, if given.
    pub event_type: Option<String>,
    /// `retry` as sent; must be digits.
    pub retry: Option<String>,
}

/// Why a publish request is malformed (answered with 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpdateError {
    /// No `topic` field.
    #[error("missing \"topic\": an update needs at least one topic")]
    NoTopic,
    /// More topics than [`MAX_TOPICS_PER_UPDATE`].
    #[error("too many topics: at most {MAX_TOPICS_PER_UPDATE} per update")]
    TooManyTopics,
    /// An empty topic string.
    #[error("empty \"topic\": a topic must not be an empty string")]
    EmptyTopic,
    /// `retry` is not a non-negative integer.
    #[error("invalid \"retry\" {0:?}: expected a number of milliseconds (digits only)")]
    BadRetry(String),
    /// A topic, `id` or `type` contains a control character (CR, LF or NUL
    /// would break SSE framing, and an id is sent back in a `Last-Event-ID`
    /// header), a line or paragraph separator, or an invisible format
    /// character.
    #[error("invalid \"{field}\": it contains {}, a control, line separator or invisible format character", describe(*.character))]
    ForbiddenChar {
        /// `topic`, `id` or `type`.
        field: &'static str,
        /// The first such character.
        character: char,
    },
    /// A topic that is exactly `*`: every matcher reads `*` as "every
    /// topic", so no subscriber could select that topic alone.
    #[error("invalid \"topic\" \"*\": it is the wildcard matching every topic")]
    WildcardTopic,
    /// `type=mercure` is reserved for the hub's subscription events.
    #[error("invalid \"type\" \"mercure\": it is reserved for the hub's subscription events")]
    ReservedType,
    /// `id` starting with `#` is reserved by the Mercure protocol.
    #[error("invalid \"id\" {0:?}: ids starting with '#' are reserved")]
    ReservedId(String),
    /// An empty `id` would reset a client's last event id.
    #[error("invalid \"id\": it must not be empty")]
    EmptyId,
    /// `earliest` is the cursor asking for the whole history: an update
    /// with that id could never be resumed after.
    #[error(
        "invalid \"id\" \"earliest\": it is reserved for the cursor asking for the whole history"
    )]
    EarliestId,
}

impl UpdateRequest {
    /// Validates the request; an update without an id gets `new_id()`.
    pub fn validate(self, new_id: impl FnOnce() -> String) -> Result<Update, UpdateError> {
        if self.topics.is_empty() {
            return Err(UpdateError::NoTopic);
        }
        if self.topics.len() > MAX_TOPICS_PER_UPDATE {
            return Err(UpdateError::TooManyTopics);
        }
        if self.topics.iter().any(String::is_empty) {
            return Err(UpdateError::EmptyTopic);
        }
        if self.topics.iter().any(|t| t == "*") {
            return Err(UpdateError::WildcardTopic);
        }
        for topic in &self.topics {
            check_field("topic", topic)?;
        }
        let retry = match self.retry {
            None => None,
            Some(r) if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) => {
                Some(r.parse().map_err(|_| UpdateError::BadRetry(r.clone()))?)
            }
            Some(r) => return Err(UpdateError::BadRetry(r)),
        };
        if let Some(t) = &self.event_type {
            check_field("type", t)?;
            if t == HUB_EVENT_TYPE {
                return Err(UpdateError::ReservedType);
            }
        }
        let id = match self.id {
            Some(id) => {
                check_field("id", &id)?;
                if id.is_empty() {
                    return Err(UpdateError::EmptyId);
                }
                if id.starts_with('#') {
                    return Err(UpdateError::ReservedId(id));
                }
                if id == EARLIEST {
                    return Err(UpdateError::EarliestId);
                }
                id
            }
            None => new_id(),
        };
        Ok(Update {
            id,
            topics: self.topics,
            data: self.data,
            private: self.private,
            event_type: self.event_type.filter(|t| !t.is_empty()),
            retry,
            received: None,
        })
    }
}

fn check_field(field: &'static str, value: &str) -> Result<(), UpdateError> {
    match forbidden_char(value) {
        Some(character) => Err(UpdateError::ForbiddenChar { field, character }),
        None => Ok(()),
    }
}

impl Update {
    /// Encodes the update once as an SSE frame, shared by every subscriber.
    pub fn encode(&self) -> Bytes {
        encode_event(&EventFields {
            id: &self.id,
            event_type: self.event_type.as_deref(),
            retry: self.retry,
            data: &self.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(topics: &[&str]) -> UpdateRequest {
        UpdateRequest {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn rejects_malformed_fields() {
        assert_eq!(req(&[]).validate(String::new), Err(UpdateError::NoTopic));
        assert_eq!(
            req(&[""]).validate(String::new),
            Err(UpdateError::EmptyTopic)
        );
        let too_many: Vec<String> = (0..=MAX_TOPICS_PER_UPDATE).map(|i| i.to_string()).collect();
        let r = UpdateRequest {
            topics: too_many,
            ..Default::default()
        };
        assert_eq!(r.validate(String::new), Err(UpdateError::TooManyTopics));
        for bad in ["", "-1", "1.5", "abc", "99999999999999999999999"] {
            let r = UpdateRequest {
                retry: Some(bad.into()),
                ..req(&["t"])
            };
            assert_eq!(
                r.validate(String::new),
                Err(UpdateError::BadRetry(bad.into())),
                "{bad}"
            );
        }
        for (bad, character) in [
            ("a\nb", '\n'),
            ("a\rb", '\r'),
            ("a\0b", '\0'),
            ("a\u{200e}", '\u{200e}'),
        ] {
            let r = UpdateRequest {
                id: Some(bad.into()),
                ..req(&["t"])
            };
            assert_eq!(
                r.validate(String::new),
                Err(UpdateError::ForbiddenChar {
                    field: "id",
                    character
                })
            );
            let r = UpdateRequest {
                event_type: Some(bad.into()),
                ..req(&["t"])
            };
            assert_eq!(
                r.validate(String::new),
                Err(UpdateError::ForbiddenChar {
                    field: "type",
                    character
                })
            );
            assert_eq!(
                req(&["ok", bad]).validate(String::new),
                Err(UpdateError::ForbiddenChar {
                    field: "topic",
                    character
                })
            );
        }
        assert_eq!(
            req(&["a", "*"]).validate(String::new),
            Err(UpdateError::WildcardTopic)
        );
        let r = UpdateRequest {
            event_type: Some("mercure".into()),
            ..req(&["t"])
        };
        assert_eq!(r.validate(String::new), Err(UpdateError::ReservedType));
        let r = UpdateRequest {
            id: Some("#x".into()),
            ..req(&["t"])
        };
        assert_eq!(
            r.validate(String::new),
            Err(UpdateError::ReservedId("#x".into()))
        );
        let r = UpdateRequest {
            id: Some(EARLIEST.into()),
            ..req(&["t"])
        };
        assert_eq!(r.validate(String::new), Err(UpdateError::EarliestId));
    }

    #[test]
    fn keeps_given_fields() {
        let r = UpdateRequest {
            id: Some("my-id".into()),
            retry: Some("250".into()),
            event_type: Some("ping".into()),
            data: "x".into(),
            private: true,
            ..req(&["a", "b"])
        };
        let u = r.validate(String::new).unwrap();
        assert_eq!(u.id, "my-id");
        assert_eq!(u.retry, Some(250));
        assert_eq!(u.event_type.as_deref(), Some("ping"));
        assert_eq!(u.topics, ["a", "b"]);
        assert!(u.private);
    }
}
