//! How long a stream lives and how it ends: when its token expires or when
//! it reaches `--max-stream-duration`, each stream at its own age within
//! ±10% so that streams opened together do not all reconnect together; and
//! at shutdown after telling its client to come back after a random delay
//! (`retry:`), so that the clients of a restarted hub do not all return at
//! the same instant.

use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::Rng;
use tokio::time::Instant;

use crate::fanout::{Deadline, Removal};
use crate::hub::Hub;
use crate::metrics::{Limit, StreamEnd};

/// How far from `--max-stream-duration` a stream's own lifetime may be.
const JITTER: RangeInclusive<f64> = 0.9..=1.1;

/// The `retry:` (milliseconds) written to every stream at shutdown is
/// drawn from this range.
const SHUTDOWN_RETRY_MS: RangeInclusive<u32> = 500..=5000;

/// When a stream ends on its own, and why: the earlier of the token's
/// expiry (`exp`, Unix seconds) and the stream's jittered maximum age, if
/// either applies.
pub(super) fn deadline(exp: Option<u64>, max_duration: Option<Duration>) -> Option<Deadline> {
    let expiry = exp.and_then(expiry_of).map(|at| Deadline {
        at,
        why: Removal::TokenExpired,
    });
    let recycle = max_duration
        .and_then(|max| Instant::now().checked_add(jittered(max)))
        .map(|at| Deadline {
            at,
            why: Removal::MaxDuration,
        });
    match (expiry, recycle) {
        (Some(expiry), Some(recycle)) if recycle.at < expiry.at => Some(recycle),
        (Some(expiry), _) => Some(expiry),
        (None, recycle) => recycle,
    }
}

/// Counts a stream's end in the hub's metrics when a limit caused it.
pub(super) fn count(why: StreamEnd, hub: &Hub) {
    if why == StreamEnd::MaxDuration {
        hub.metrics.limits_hit.get(Limit::StreamDuration).inc();
    }
}

/// `max` scaled by a random factor within [`JITTER`].
fn jittered(max: Duration) -> Duration {
    max.mul_f64(rand::thread_rng().gen_range(JITTER))
}

/// The instant a token expiring at Unix time `exp` stops being valid; none
/// when that is too far away to represent.
fn expiry_of(exp: u64) -> Option<Instant> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let left = Duration::from_secs(exp).saturating_sub(now);
    Instant::now().checked_add(left)
}

/// The last frame of a stream ended by the hub's shutdown: when to
/// reconnect, drawn at random within [`SHUTDOWN_RETRY_MS`].
pub(super) fn farewell() -> Bytes {
    let ms = rand::thread_rng().gen_range(SHUTDOWN_RETRY_MS);
    Bytes::from(format!("retry: {ms}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_earlier_deadline_wins() {
        let hour = Some(Duration::from_secs(3600));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let soon = now.as_secs() + 60;
        let late = now.as_secs() + 86_400;
        let why = |exp, max| deadline(exp, max).map(|d| d.why);
        assert_eq!(why(Some(soon), hour), Some(Removal::TokenExpired));
        assert_eq!(why(Some(late), hour), Some(Removal::MaxDuration));
        assert_eq!(why(None, hour), Some(Removal::MaxDuration));
        assert_eq!(why(Some(late), None), Some(Removal::TokenExpired));
        assert!(deadline(None, None).is_none());
    }

    #[test]
    fn lifetimes_and_retries_are_spread() {
        let max = Duration::from_secs(1000);
        let ages: Vec<Duration> = (0..200).map(|_| jittered(max)).collect();
        assert!(ages
            .iter()
            .all(|a| (Duration::from_secs(900)..=Duration::from_secs(1100)).contains(a)));
        assert!(ages.iter().any(|a| *a != ages[0]), "not all the same");
        for _ in 0..100 {
            let frame = String::from_utf8(farewell().to_vec()).unwrap();
            let ms: u32 = frame
                .strip_prefix("retry: ")
                .and_then(|f| f.strip_suffix("\n\n"))
                .unwrap()
                .parse()
                .unwrap();
            assert!(SHUTDOWN_RETRY_MS.contains(&ms), "{frame:?}");
        }
    }
}
