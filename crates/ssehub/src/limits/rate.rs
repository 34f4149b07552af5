//! A rate per key: a token bucket of `burst` requests refilled at `rate`
//! per second, kept as one instant per key (GCRA: the time at which the
//! key's bucket is full again), in a map that forgets idle keys.
//!
//! Keys live in two generations, each at least one refill window long (the
//! time an empty bucket takes to fill). A key not seen for a whole
//! generation is dropped at the next rotation, by which time its bucket is
//! full, exactly as if it had never been seen: forgetting changes nothing.
//! A generation holds at most [`MAX_KEYS`] keys; while it is full of
//! active senders, a new one is refused until the next rotation.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Most keys of one generation.
pub const MAX_KEYS: usize = 65_536;

/// Refused for now: the bucket is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// When the next request would be accepted.
    pub retry_after: Duration,
}

/// Buckets per key.
#[derive(Debug)]
pub struct RateLimiter<K: Hash + Eq> {
    /// Time one request's token takes to come back.
    interval: Duration,
    /// How far ahead of now a bucket may be drawn: `burst - 1` intervals.
    tolerance: Duration,
    /// Time an empty bucket takes to fill: `burst` intervals.
    window: Duration,
    keys: Mutex<Generations<K>>,
}

#[derive(Debug)]
struct Generations<K> {
    /// Per key, when its bucket is full again.
    current: HashMap<K, Instant>,
    previous: HashMap<K, Instant>,
    /// When `current` began.
    since: Instant,
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// `rate` requests per second, `burst` at once.
    pub fn new(rate: NonZeroU32, burst: NonZeroU32) -> RateLimiter<K> {
        let interval = Duration::from_secs(1) / rate.get();
        RateLimiter {
            interval,
            tolerance: interval * (burst.get() - 1),
            window: interval * burst.get(),
            keys: Mutex::new(Generations {
                current: HashMap::new(),
                previous: HashMap::new(),
                since: Instant::now(),
            }),
        }
    }

    /// Takes one request from `key`'s bucket at `now`.
    pub fn check(&self, key: K, now: Instant) -> Result<(), Limited> {
        let mut keys = self.keys.lock();
        keys.rotate(now, self.window);
        let full_at = match keys.current.get(&key) {
            Some(at) => Some(*at),
            None => keys.previous.remove(&key),
        };
        let from = full_at.map_or(now, |at| at.max(now));
        let ahead = from - now;
        if ahead > self.tolerance {
            if let Some(at) = full_at {
                keys.current.insert(key, at);
            }
            return Err(Limited {
                retry_after: ahead - self.tolerance,
            });
        }
        if full_at.is_none() && keys.current.len() >= MAX_KEYS {
            return Err(Limited {
                retry_after: self.window,
            });
        }
        keys.current.insert(key, from + self.interval);
        Ok(())
    }

    /// Keys remembered (both generations).
    pub fn keys(&self) -> usize {
        let keys = self.keys.lock();
        keys.current.len() + keys.previous.len()
    }
}

impl<K> Generations<K> {
    /// Starts a new generation once the current one is a window old,
    /// forgetting the keys of the one before.
    fn rotate(&mut self, now: Instant, window: Duration) {
        let age = now.saturating_duration_since(self.since);
        if age < window {
            return;
        }
        if age >= window * 2 {
            self.current.clear();
            self.previous.clear();
        } else {
            self.previous = std::mem::take(&mut self.current);
        }
        self.since = now;
    }
}

/// Whole seconds to wait, rounded up (at least one), for `Retry-After`.
pub fn seconds_up(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_second(rate: u32, burst: u32) -> RateLimiter<&'static str> {
        RateLimiter::new(
            NonZeroU32::new(rate).unwrap(),
            NonZeroU32::new(burst).unwrap(),
        )
    }

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = per_second(2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("a", t0), Ok(()));
        }
        let refused = limiter.check("a", t0).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_millis(500));
        assert_eq!(seconds_up(refused.retry_after), 1);
        assert_eq!(
            limiter.check("b", t0),
            Ok(()),
            "each key has its own bucket"
        );
        let later = t0 + Duration::from_millis(500);
        assert_eq!(limiter.check("a", later), Ok(()));
        assert!(limiter.check("a", later).is_err());
        // Refilled after a window (1.5 s): the whole burst again.
        let refilled = later + Duration::from_millis(1500);
        for _ in 0..3 {
            assert_eq!(limiter.check("a", refilled), Ok(()));
        }
        assert!(limiter.check("a", refilled).is_err());
    }

    #[test]
    fn idle_keys_are_forgotten_without_changing_anything() {
        let limiter = per_second(1, 2);
        let t0 = Instant::now() + Duration::from_secs(1);
        limiter.check("a", t0).unwrap();
        limiter.check("a", t0).unwrap();
        assert!(limiter.check("a", t0).is_err());
        let t1 = t0 + Duration::from_secs(2);
        limiter.check("b", t1).unwrap();
        assert_eq!(limiter.keys(), 2, "a is in the previous generation");
        let t2 = t1 + Duration::from_secs(2);
        limiter.check("b", t2).unwrap();
        assert_eq!(
            limiter.keys(),
            1,
            "a, idle for a whole window, is forgotten"
        );
        // Forgotten is the same as full: a has its whole burst.
        limiter.check("a", t2).unwrap();
        limiter.check("a", t2).unwrap();
        assert!(limiter.check("a", t2).is_err());
        let t3 = t2 + Duration::from_secs(10);
        assert!(limiter.check("c", t3).is_ok());
        assert_eq!(limiter.keys(), 1, "a long silence forgets everything");
    }

    #[test]
    fn a_full_generation_refuses_new_keys_only() {
        let limiter: RateLimiter<usize> =
            RateLimiter::new(NonZeroU32::new(1).unwrap(), NonZeroU32::new(5).unwrap());
        let now = Instant::now();
        for key in 0..MAX_KEYS {
            limiter.check(key, now).unwrap();
        }
        let refused = limiter.check(MAX_KEYS, now).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(5));
        assert_eq!(limiter.check(0, now), Ok(()), "known keys go on");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(seconds_up(Duration::ZERO), 1);
        assert_eq!(seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(seconds_up(Duration::from_secs(2)), 2);
        assert_eq!(seconds_up(Duration::from_millis(2001)), 3);
    }
}
