//! Subscribing, whatever the transport: where the client asks to start (its
//! cursor, a time, a number of past updates) resolved to a position in the
//! log, the registration in the fan-out, and the stream that
//! replays the history after the cursor and then follows live updates, with
//! no gap and no duplicate between the two.

mod lifetime;
mod resume;
mod stream;

use std::net::IpAddr;
use std::sync::Arc;

pub use resume::{Resume, ResumeError, MAX_REWIND, REWIND_WINDOW};
pub use stream::SubscriptionBody;

use crate::fanout::{Closed, Registration};
use crate::history::{Log, LogError};
use crate::hub::Hub;
use crate::metrics::Protocol;
use crate::proto::compress::Encoder;
pub use crate::proto::update::EARLIEST;

/// Who opened a stream, for the metrics and the line logged when it ends.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The transport.
    pub protocol: Protocol,
    /// The client's address, when the transport knows it.
    pub ip: Option<IpAddr>,
}

/// How a stream writes each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The event's frame, encoded once and shared by every stream; with an
    /// encoder, the frame's compressed copy, made once and shared by every
    /// stream of that coding.
    Shared(Option<Encoder>),
    /// The shared frame followed by one `matched:` line per matcher of the
    /// stream through which it receives the event (`ssehub_matched=1`).
    Matched,
}

/// Where a stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Live updates only.
    Live,
    /// Replay every retained event after `position` (`None`: all of them),
    /// then live ones.
    After {
        /// The position of the client's last event, if retained.
        position: Option<u64>,
        /// The cursor reported back to the client: its id when retained,
        /// [`EARLIEST`] otherwise (the history it missed may be gone).
        reported: String,
    },
}

impl Start {
    /// Resolves the client's cursor (`Last-Event-ID`). An empty cursor
    /// means "from now on": it resolves to the newest event, so the client
    /// learns where its stream starts (and nothing published while it
    /// registers is lost).
    async fn cursor(log: &dyn Log, mut id: String) -> Result<Start, LogError> {
        if id.is_empty() {
            id = log.last_id().unwrap_or_else(|| EARLIEST.to_string());
        }
        let position = match id.as_str() {
            EARLIEST => None,
            id => log.position(id).await?,
        };
        let reported = match position {
            Some(_) => id,
            None => EARLIEST.to_string(),
        };
        Ok(Start::After { position, reported })
    }
}

/// Registers a stream asking for `registration` and returns it; `exp` is
/// the expiry of the subscriber's token, if any. Registration comes before
/// the history is read: every event is then either in the replay or queued
/// live (or both, and the stream drops the copy). The stream ends when the
/// token expires, or at `--max-stream-duration` (see `lifetime`). Its
/// events are written as `framing` says.
pub fn subscribe(
    hub: &Arc<Hub>,
    registration: Registration,
    exp: Option<u64>,
    start: &Start,
    peer: Peer,
    framing: Framing,
) -> Result<SubscriptionBody, Closed> {
    let deadline = lifetime::deadline(exp, hub.config.limits.max_stream_duration);
    let (sub, rx) = hub.fanout.register(registration, deadline)?;
    if let Some(events) = &hub.subscription_events {
        events.announce(&sub, true);
    }
    Ok(SubscriptionBody::new(
        hub.clone(),
        sub,
        rx,
        start,
        peer,
        framing,
    ))
}
