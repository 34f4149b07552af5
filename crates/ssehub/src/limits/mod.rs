//! The bookkeeping behind the limits on what one client, one token subject
//! or the whole hub may hold or send: places held at once ([`Gate`],
//! [`Counts`]), rates per key ([`RateLimiter`]), and who is counted
//! ([`ClientKey`], [`Sender`]). No I/O: the server and the HTTP handlers
//! decide what a refusal looks like and count it in the metrics.

mod counts;
mod key;
mod rate;

use std::num::NonZeroU32;
use std::sync::Arc;

pub use counts::{Counts, Gate, Held, Pass};
pub use key::{ClientKey, Sender};
pub use rate::{seconds_up, Limited, RateLimiter, MAX_KEYS};

/// `Retry-After` (seconds) of a refusal for lack of a place held at once
/// (a connection, a stream): when one frees up is unknown, and 10 s spreads
/// the retries without keeping clients away long.
pub const RETRY_AFTER_HELD: u64 = 10;

/// A publish rate: `per_second` requests per second, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_second: NonZeroU32,
    /// Requests accepted at once after a pause.
    pub burst: NonZeroU32,
}

/// The per-request limits' state of a hub.
#[derive(Debug)]
pub struct Limits {
    /// Publish requests per sender, if limited.
    pub publish: Option<RateLimiter<Sender>>,
    /// Open streams per token subject.
    pub subscriptions: Arc<Counts<Arc<str>>>,
}

impl Limits {
    /// State for a publish rate, if limited.
    pub fn new(publish: Option<Rate>) -> Limits {
        Limits {
            publish: publish.map(|rate| RateLimiter::new(rate.per_second, rate.burst)),
            subscriptions: Counts::new(),
        }
    }
}
