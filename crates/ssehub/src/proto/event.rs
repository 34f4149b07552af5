//! An update as the log holds it: its position and its SSE frame.

use std::sync::OnceLock;
use std::time::Instant;

use bytes::Bytes;

use super::compress::Compressed;
use super::update::Update;

/// An update as logged: its position and its SSE frame, encoded once.
#[derive(Debug)]
pub struct Event {
    /// Position in the log; strictly increasing in append order.
    pub seq: u64,
    /// The update.
    pub update: Update,
    /// The encoded SSE frame shared by every subscriber.
    pub frame: Bytes,
    /// The frame's compressed copies, made when a stream of a coding first
    /// needs one and shared by every stream of that coding.
    pub compressed: Compressed,
    /// When the fan-out took it, if its deliveries are timed (a sample of
    /// the events dispatched); unset for events only replayed.
    pub dispatched: OnceLock<Instant>,
}

impl Event {
    /// Wraps an update at position `seq`, encoding its frame.
    pub fn new(seq: u64, update: Update) -> Event {
        let frame = update.encode();
        Event {
            seq,
            update,
            frame,
            compressed: Compressed::new(),
            dispatched: OnceLock::new(),
        }
    }
}
