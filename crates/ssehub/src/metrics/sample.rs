//! Which dispatched events have their deliveries timed.

use std::time::{Duration, Instant};

/// On a busy hub, one dispatched event in this many is timed.
pub const SAMPLE_EVERY: u64 = 16;
/// An event dispatched this long after the last timed one is timed too, so
/// a quiet hub times every event.
const QUIET: Duration = Duration::from_secs(1);

/// Picks the events whose every delivery is timed
/// ([`Metrics::delivery_duration`](super::Metrics::delivery_duration)):
/// the first, then one in [`SAMPLE_EVERY`], and any event at least a
/// second after the last one picked. Reading the clock at each delivery
/// costs about as much as the rest of a delivery's bookkeeping; a sample
/// keeps the histogram's shape at a sixteenth of that cost.
#[derive(Debug, Default)]
pub struct DeliverySampler {
    seen: u64,
    last: Option<Instant>,
}

impl DeliverySampler {
    /// Whether the event dispatched `now` is timed.
    pub fn pick(&mut self, now: Instant) -> bool {
        let due = self.seen.is_multiple_of(SAMPLE_EVERY)
            || self
                .last
                .is_none_or(|last| now.duration_since(last) >= QUIET);
        self.seen += 1;
        if due {
            self.last = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_in_sixteen_when_busy_every_one_when_quiet() {
        let mut sampler = DeliverySampler::default();
        let start = Instant::now();
        let picked: Vec<u64> = (0..40)
            .filter(|i| sampler.pick(start + Duration::from_millis(*i)))
            .collect();
        assert_eq!(picked, [0, 16, 32]);
        let later = start + Duration::from_secs(5);
        assert!(sampler.pick(later), "a second after the last pick");
        assert!(!sampler.pick(later + Duration::from_millis(1)));
        assert!(sampler.pick(later + QUIET));
    }
}
